"""The Azure ML adapter (Azure ML pipeline jobs, model registry and managed online endpoints).

The compiler (spec -> Azure ML pipeline job, CLI v2 schema) is pure and needs no SDK; what it
cannot express is declared in the capabilities and refused by name at compile time. The client
(runs, registry, managed online endpoints through azure-ai-ml, ``pip install 'cloudml[azure]'``)
is tracked in issue 7.

Example:
    >>> import cloudml
    >>> cloudml.registry.adapter_class("azureml").extra
    'azure'
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from cloudml.adapter import Adapter, Capabilities, Compiled
from cloudml.errors import UnsupportedFeatureError
from cloudml.spec.pipeline import Pipeline

__all__ = ["AzureMLAdapter", "Options"]

_CLIENT = "the Azure ML client (runs, registry, endpoints) is not built yet (issue 7)"


class Options(BaseModel):
    """``backend_options.azureml``: settings only the Azure ML adapter understands."""

    model_config = ConfigDict(extra="forbid")

    compute: str | None = Field(None, description="compute cluster name, or 'serverless'")
    instance_type: str | None = Field(None, description="default VM size, e.g. Standard_DS3_v2")


class AzureMLAdapter(Adapter):
    """Azure ML pipeline jobs, model registry and managed online endpoints."""

    name = "azureml"
    extra = "azure"
    requires = ("azure-ai-ml", "azure-identity")
    description = "Azure ML pipeline jobs (compiler ready; runs, registry and endpoints not built yet)"
    options_model: ClassVar[type[BaseModel] | None] = Options
    capabilities = Capabilities(
        "azureml",
        {
            "step.python": ("notimpl", "shipping cloudml's runtime with the code is not built yet"),
            "step.framework": ("notimpl", "the table of Azure ML curated environments is not built yet; set image"),
            "step.secrets": ("notyet", "command jobs have no secret injection; read Key Vault in the step"),
            "step.retry": ("notyet", "Azure ML command steps have no retries"),
            "step.cache_expiry": ("notyet", "Azure ML reuse has no expiry"),
            "step.depends_on": ("notyet", "Azure ML orders nodes by their data bindings only"),
            "input.parameter": ("notimpl", "a parameter holding an input URI is not built yet"),
            "condition": ("notimpl", "if_else nodes are private preview; the opt-in is not built yet"),
            "condition.or": ("notimpl", "if_else nodes are private preview; the opt-in is not built yet"),
            "register_model": ("notimpl", "registering from inside an Azure ML pipeline is not built yet"),
            "schedule": ("notimpl", "Azure ML job schedules are not built yet"),
            "deploy.existing_alarm": ("notimpl", "reading Azure Monitor alerts is not built yet"),
            "deploy.capture": ("notimpl", "data collection is not built yet"),
            "deploy.autoscale": ("notimpl", "autoscale settings are not built yet"),
        },
    )

    def __init__(self, settings: Any = None) -> None:
        from cloudml.config import AzureMLSettings

        super().__init__(settings or AzureMLSettings())

    def compile(self, pipeline: Pipeline) -> Compiled:
        """The Azure ML pipeline job (CLI v2 schema) as YAML."""
        from cloudml.adapter import pipeline_features
        from cloudml.adapters.azureml.compiler import compile_job

        self.check_supported(pipeline_features(pipeline))
        return Compiled("azureml", pipeline.name, compile_job(pipeline, self.settings), "yaml")

    def validate_compiled(self, compiled: Compiled) -> list[str]:
        """Reference checks azure-ai-ml misses, then ``load_job`` when the SDK is installed."""
        if compiled.document.get("type") != "pipeline":
            return []
        from cloudml.adapters.azureml.validate import validate_job

        return validate_job(compiled.document)

    def _client_missing(self, operation: str) -> UnsupportedFeatureError:
        return UnsupportedFeatureError(self.name, None, operation, _CLIENT)

    def run(self, pipeline: Pipeline, parameters: dict[str, Any] | None = None, **options: Any) -> Any:
        """Not built yet: raises UnsupportedFeatureError."""
        raise self._client_missing("run")

    def deploy(self, deployment: Any, **options: Any) -> Any:
        """Not built yet: raises UnsupportedFeatureError."""
        raise self._client_missing("deploy")
