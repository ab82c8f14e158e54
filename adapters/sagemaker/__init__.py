"""The SageMaker adapter: pipeline definitions (compiler), and, later, runs, registry and endpoints (client).

The compiler is pure (no boto3, no credentials, no network): ``cloudml compile --target sagemaker``
works anywhere. Running, the model registry and endpoint deployments go through boto3 and need
``pip install 'cloudml[aws]'``; that client is not built yet (issue 5), so those calls raise
UnsupportedFeatureError naming the operation.

Example:
    >>> import cloudml
    >>> cloudml.registry.adapter_class("sagemaker").extra
    'aws'
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from cloudml.adapter import Adapter, Capabilities, Compiled, deployment_features
from cloudml.config import SageMakerSettings
from cloudml.spec.deployment import Deployment
from cloudml.spec.pipeline import Pipeline

__all__ = ["Options", "SageMakerAdapter"]


class Options(BaseModel):
    """``backend_options.sagemaker``: settings only the SageMaker adapter understands."""

    model_config = ConfigDict(extra="forbid")

    native_guardrails: bool = Field(True, description="use SageMaker deployment guardrails for blue/green, canary, linear")
    volume_size_gb: int = Field(30, ge=1, le=16384)
    instance_type: str | None = Field(None, pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$", description="default ML instance type")
    role_arn: str | None = Field(None, pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
    max_parallel_steps: int | None = Field(None, ge=1, le=200)
    tags: dict[str, str] = Field(default_factory=dict)


_CLIENT = "the SageMaker client (runs, registry, endpoints) is not built yet (issue 5)"


class SageMakerAdapter(Adapter):
    """AWS SageMaker Pipelines, model registry and endpoints."""

    name = "sagemaker"
    extra = "aws"
    requires = ("boto3",)
    description = "AWS SageMaker Pipelines (compiler ready; runs, registry and endpoints not built yet)"
    options_model: ClassVar[type[BaseModel] | None] = Options
    capabilities = Capabilities(
        "sagemaker",
        {
            "step.secrets": ("notyet", "SageMaker jobs have no secret injection; read secrets in the step"),
            "schedule": ("notimpl", "EventBridge schedules for pipelines are not built yet"),
            "deploy.shadow": ("notimpl", "shadow variants through the core rollout controller are not built yet"),
            "deploy.capture": ("notimpl", "DataCaptureConfig is not built yet"),
            "deploy.autoscale": ("notimpl", "Application Auto Scaling policies are not built yet"),
        },
    )

    def __init__(self, settings: SageMakerSettings | None = None) -> None:
        super().__init__(settings or SageMakerSettings())
        self.settings: SageMakerSettings

    def compile(self, pipeline: Pipeline) -> Compiled:
        """The SageMaker pipeline definition (JSON)."""
        from cloudml.adapters.sagemaker.compiler import compile_definition

        return Compiled("sagemaker", pipeline.name, compile_definition(pipeline, self.settings, self.base_dir), "json")

    def compile_deployment(self, deployment: Deployment) -> Compiled:
        """Endpoint variant, DeploymentConfig (guardrails) and CloudWatch alarm requests."""
        from cloudml.adapters.sagemaker.deploy import compile_deployment_plan
        from cloudml.adapters.sagemaker.resources import deploy_instance_type

        self.check_supported(deployment_features(deployment))
        plan = compile_deployment_plan(deployment, deploy_instance_type(deployment.instances))
        return Compiled("sagemaker", deployment.endpoint, plan, "json")

    def validate_compiled(self, compiled: Compiled) -> list[str]:
        """botocore's own parameter validation of CreatePipeline and of every step's Arguments."""
        if compiled.document.get("Version") != "2020-12-01":
            return []
        from cloudml.adapters.sagemaker.validate import validate_definition

        return validate_definition(compiled.document)

    def _client_missing(self, operation: str) -> Any:
        from cloudml.errors import UnsupportedFeatureError

        return UnsupportedFeatureError(self.name, None, operation, _CLIENT)

    def run(self, pipeline: Pipeline, parameters: dict[str, Any] | None = None, **options: Any) -> Any:
        """Not built yet: raises UnsupportedFeatureError."""
        raise self._client_missing("run")

    def deploy(self, deployment: Deployment, **options: Any) -> Any:
        """Not built yet: raises UnsupportedFeatureError."""
        raise self._client_missing("deploy")

