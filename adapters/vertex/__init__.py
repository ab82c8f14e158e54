"""The Vertex AI adapter (Google Vertex AI Pipelines (KFP IR), model registry and endpoints).

Registered so that configs, backend options and the CLI know it; the compiler and client are
tracked in issue 6. Until they land every feature is declared ``notimpl`` and compiling
raises :class:`cloudml.UnsupportedFeatureError` that says so. Its SDK comes with
``pip install 'cloudml[gcp]'``.

Example:
    >>> import cloudml
    >>> cloudml.registry.adapter_class("vertex").extra
    'gcp'
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from cloudml.adapter import Adapter, Capabilities, Compiled
from cloudml.errors import UnsupportedFeatureError
from cloudml.spec.pipeline import Pipeline

__all__ = ["Options", "VertexAdapter"]

_NOT_YET = "the Vertex AI compiler is not implemented yet (issue 6)"


class Options(BaseModel):
    """``backend_options.vertex``: settings only the Vertex AI adapter understands."""

    model_config = ConfigDict(extra="forbid")

    machine_type: str | None = Field(None, description="default machine type, e.g. n1-standard-4")
    accelerator_type: str | None = Field(None, description="e.g. NVIDIA_TESLA_T4")
    enable_caching: bool | None = None
    failure_policy: Literal["fast", "slow"] | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class VertexAdapter(Adapter):
    """Google Vertex AI Pipelines (KFP IR), model registry and endpoints."""

    name = "vertex"
    extra = "gcp"
    requires = ("google.cloud.aiplatform",)
    description = "Google Vertex AI Pipelines (KFP IR), model registry and endpoints (not implemented yet)"
    options_model: ClassVar[type[BaseModel] | None] = Options
    capabilities = Capabilities.all_notimpl("vertex", _NOT_YET)

    def compile(self, pipeline: Pipeline) -> Compiled:
        """Not implemented yet: raises UnsupportedFeatureError naming this adapter."""
        raise UnsupportedFeatureError(self.name, None, "compile", _NOT_YET)
