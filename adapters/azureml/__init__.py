"""The Azure ML adapter (Azure ML pipeline jobs, model registry and managed online endpoints).

Registered so that configs, backend options and the CLI know it; the compiler and client are
tracked in issue 7. Until they land every feature is declared ``notimpl`` and compiling
raises :class:`cloudml.UnsupportedFeatureError` that says so. Its SDK comes with
``pip install 'cloudml[azure]'``.

Example:
    >>> import cloudml
    >>> cloudml.registry.adapter_class("azureml").extra
    'azure'
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from cloudml.adapter import Adapter, Capabilities, Compiled
from cloudml.errors import UnsupportedFeatureError
from cloudml.spec.pipeline import Pipeline

__all__ = ["AzureMLAdapter", "Options"]

_NOT_YET = "the Azure ML compiler is not implemented yet (issue 7)"


class Options(BaseModel):
    """``backend_options.azureml``: settings only the Azure ML adapter understands."""

    model_config = ConfigDict(extra="forbid")

    compute: str | None = Field(None, description="compute cluster name, or 'serverless'")
    instance_type: str | None = Field(None, description="e.g. Standard_DS3_v2")
    environment: str | None = Field(None, description="a registered environment, e.g. azureml:AzureML-sklearn-1.5@latest")
    experiment_name: str | None = None
    enable_preview_conditions: bool = Field(False, description="compile conditions to private-preview if_else nodes")


class AzureMLAdapter(Adapter):
    """Azure ML pipeline jobs, model registry and managed online endpoints."""

    name = "azureml"
    extra = "azure"
    requires = ("azure-ai-ml", "azure-identity")
    description = "Azure ML pipeline jobs, model registry and managed online endpoints (not implemented yet)"
    options_model: ClassVar[type[BaseModel] | None] = Options
    capabilities = Capabilities.all_notimpl("azureml", _NOT_YET)

    def compile(self, pipeline: Pipeline) -> Compiled:
        """Not implemented yet: raises UnsupportedFeatureError naming this adapter."""
        raise UnsupportedFeatureError(self.name, None, "compile", _NOT_YET)
