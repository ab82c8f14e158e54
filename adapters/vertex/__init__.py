"""The Vertex AI adapter (Google Vertex AI Pipelines (KFP IR), model registry and endpoints).

The compiler (spec -> KFP PipelineSpec IR) is pure and needs no SDK; what it cannot express is
declared in the capabilities and refused by name at compile time. The client (runs, registry,
endpoints through google-cloud-aiplatform, ``pip install 'cloudml[gcp]'``) is tracked in issue 6.

Example:
    >>> import cloudml
    >>> cloudml.registry.adapter_class("vertex").extra
    'gcp'
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from cloudml.adapter import Adapter, Capabilities, Compiled
from cloudml.errors import UnsupportedFeatureError
from cloudml.spec.pipeline import Pipeline

__all__ = ["Options", "VertexAdapter"]

_CLIENT = "the Vertex AI client (runs, registry, endpoints) is not built yet (issue 6)"


class Options(BaseModel):
    """``backend_options.vertex``: settings only the Vertex AI adapter understands."""

    model_config = ConfigDict(extra="forbid")

    machine_type: str | None = Field(None, description="default machine type, e.g. n1-standard-4")
    enable_caching: bool | None = Field(None, description="override every task's caching when the run is submitted")
    failure_policy: Literal["fast", "slow"] | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class VertexAdapter(Adapter):
    """Google Vertex AI Pipelines (KFP IR), model registry and endpoints."""

    name = "vertex"
    extra = "gcp"
    requires = ("google-cloud-aiplatform",)
    description = "Google Vertex AI Pipelines (compiler ready; runs, registry and endpoints not built yet)"
    options_model: ClassVar[type[BaseModel] | None] = Options
    capabilities = Capabilities(
        "vertex",
        {
            "step.python": ("notimpl", "shipping step code to Cloud Storage at submit time is not built yet"),
            "step.code": ("notimpl", "shipping step code to Cloud Storage at submit time is not built yet"),
            "step.framework": ("notimpl", "the table of Vertex prebuilt images is not built yet; set image"),
            "step.secrets": ("notyet", "the KFP IR has no secret injection; read Secret Manager in the step"),
            "step.instance_count": ("notyet", "a KFP container task runs on one node"),
            "step.cache_expiry": ("notyet", "KFP caching has no expiry"),
            "input.parameter": ("notimpl", "a parameter holding an input URI is not built yet"),
            "register_model": ("notimpl", "registering from inside a Vertex pipeline is not built yet"),
            "schedule": ("notimpl", "Vertex pipeline schedules are not built yet"),
            "deploy.shadow": ("notyet", "Vertex endpoints have no mirrored traffic"),
            "deploy.existing_alarm": ("notimpl", "reading Cloud Monitoring alert policies is not built yet"),
            "deploy.capture": ("notimpl", "request/response logging is not built yet"),
            "deploy.autoscale": ("notimpl", "autoscaling bounds are not built yet"),
        },
    )

    def __init__(self, settings: Any = None) -> None:
        from cloudml.config import VertexSettings

        super().__init__(settings or VertexSettings())

    def compile(self, pipeline: Pipeline) -> Compiled:
        """The KFP PipelineSpec IR (schemaVersion 2.1.0) for Vertex AI Pipelines (and open-source KFP)."""
        from cloudml.adapter import pipeline_features
        from cloudml.adapters.vertex.compiler import compile_ir

        self.check_supported(pipeline_features(pipeline))
        return Compiled("vertex", pipeline.name, compile_ir(pipeline, self.settings), "json")

    def validate_compiled(self, compiled: Compiled) -> list[str]:
        """Strict protobuf parses of the IR and its deploymentSpec, plus reference checks."""
        if "pipelineInfo" not in compiled.document:
            return []
        from cloudml.adapters.vertex.validate import validate_ir

        return validate_ir(compiled.document)

    def _client_missing(self, operation: str) -> UnsupportedFeatureError:
        return UnsupportedFeatureError(self.name, None, operation, _CLIENT)

    def run(self, pipeline: Pipeline, parameters: dict[str, Any] | None = None, **options: Any) -> Any:
        """Not built yet: raises UnsupportedFeatureError."""
        raise self._client_missing("run")

    def deploy(self, deployment: Any, **options: Any) -> Any:
        """Not built yet: raises UnsupportedFeatureError."""
        raise self._client_missing("deploy")
