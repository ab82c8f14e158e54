"""The SageMaker adapter (AWS SageMaker Pipelines, model registry and endpoints).

Registered so that configs, backend options and the CLI know it; the compiler and client are
tracked in issue 5. Until they land every feature is declared ``notimpl`` and compiling
raises :class:`cloudml.UnsupportedFeatureError` that says so. Its SDK comes with
``pip install 'cloudml[aws]'``.

Example:
    >>> import cloudml
    >>> cloudml.registry.adapter_class("sagemaker").extra
    'aws'
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from cloudml.adapter import Adapter, Capabilities, Compiled
from cloudml.errors import UnsupportedFeatureError
from cloudml.spec.pipeline import Pipeline

__all__ = ["Options", "SageMakerAdapter"]

_NOT_YET = "the SageMaker compiler is not implemented yet (issue 5)"


class Options(BaseModel):
    """``backend_options.sagemaker``: settings only the SageMaker adapter understands."""

    model_config = ConfigDict(extra="forbid")

    native_guardrails: bool = Field(True, description="use SageMaker deployment guardrails for blue/green, canary, linear")
    volume_size_gb: int = Field(30, ge=1, le=16384)
    instance_type: str | None = Field(None, pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$", description="default ML instance type")
    role_arn: str | None = Field(None, pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
    max_parallel_steps: int | None = Field(None, ge=1, le=200)
    tags: dict[str, str] = Field(default_factory=dict)


class SageMakerAdapter(Adapter):
    """AWS SageMaker Pipelines, model registry and endpoints."""

    name = "sagemaker"
    extra = "aws"
    requires = ("boto3",)
    description = "AWS SageMaker Pipelines, model registry and endpoints (not implemented yet)"
    options_model: ClassVar[type[BaseModel] | None] = Options
    capabilities = Capabilities.all_notimpl("sagemaker", _NOT_YET)

    def compile(self, pipeline: Pipeline) -> Compiled:
        """Not implemented yet: raises UnsupportedFeatureError naming this adapter."""
        raise UnsupportedFeatureError(self.name, None, "compile", _NOT_YET)
