"""The Vertex AI adapter (Google Vertex AI Pipelines (KFP IR); model registry and endpoints not built yet).

The compiler (spec -> KFP PipelineSpec IR) is pure and needs no SDK; what it cannot express is
declared in the capabilities and refused by name at compile time. Runs (submit, status, task
details, wait, cancel) go through google-cloud-aiplatform (``pip install 'cloudml[gcp]'``, see
``client.py``). The model registry and endpoints are not built yet (issue 6) and raise
UnsupportedFeatureError naming the operation.

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

_CLIENT = "the Vertex AI model registry and endpoints are not built yet (issue 6)"


class Options(BaseModel):
    """``backend_options.vertex``: settings only the Vertex AI adapter understands."""

    model_config = ConfigDict(extra="forbid")

    enable_caching: bool | None = Field(None, description="override every task's caching when the run is submitted")
    failure_policy: Literal["fast", "slow"] | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class VertexAdapter(Adapter):
    """Google Vertex AI Pipelines (KFP IR): compile and run; registry and endpoints not built yet."""

    name = "vertex"
    extra = "gcp"
    requires = ("google-cloud-aiplatform",)
    description = "Google Vertex AI Pipelines (compile and run; registry and endpoints not built yet)"
    options_model: ClassVar[type[BaseModel] | None] = Options
    capabilities = Capabilities(
        "vertex",
        {
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
        return Compiled("vertex", pipeline.name, compile_ir(pipeline, self.settings, self.base_dir), "json")

    def validate_compiled(self, compiled: Compiled) -> list[str]:
        """Strict protobuf parses of the IR and its deploymentSpec, plus reference checks."""
        if "pipelineInfo" not in compiled.document:
            return []
        from cloudml.adapters.vertex.validate import validate_ir

        return validate_ir(compiled.document)

    def _client_missing(self, operation: str) -> UnsupportedFeatureError:
        return UnsupportedFeatureError(self.name, None, operation, _CLIENT)

    # -- the client (google-cloud-aiplatform) -------------------------------------------------------
    def client(self) -> Any:
        """The aiplatform-backed client (raises AdapterNotInstalledError without the gcp extra).

        Example:
            >>> from cloudml.config import VertexSettings
            >>> VertexAdapter(VertexSettings(project="my-project")).client().settings.project
            'my-project'
        """
        self.require()
        from cloudml.adapters.vertex.client import VertexClient

        if getattr(self, "_client", None) is None:
            self._client = VertexClient(self.settings)
        return self._client

    def run(self, pipeline: Pipeline, parameters: dict[str, Any] | None = None, **options: Any) -> Any:
        """Compile, check the parameter values, submit a pipeline job and return its VertexRun.

        Options: ``wait`` (block until the job ends), ``timeout`` and ``poll`` (for ``wait``),
        ``job_id``, ``use_cache=False`` (turns caching off for every task), ``fail_fast`` (Vertex's
        fast failure policy), ``spec_dir`` (where ``code:`` folders start; code bundles are uploaded
        under the pipeline root first) and ``max_workers`` (ignored: Vertex has its own parallelism). Parameter values are checked against the spec before any request.

        Example:
            >>> import cloudml
            >>> b = cloudml.PipelineBuilder("p"); _ = b.add_step("a", command="echo hi", image="alpine")
            >>> VertexAdapter().run(b.build(), {"nope": 1})
            Traceback (most recent call last):
            ...
            cloudml.errors.SpecError: 1 problem in parameters of pipeline 'p':
            <spec>: parameters.nope: unknown parameter 'nope'
                fix: declared parameters: none
        """
        from pathlib import Path

        from cloudml.adapter import pipeline_features
        from cloudml.adapters.vertex.compiler import compile_ir

        values = pipeline.resolve_parameters(parameters)
        self.check_supported(pipeline_features(pipeline))
        base_dir = Path(options["spec_dir"]) if options.get("spec_dir") else self.base_dir  # code folders start here
        ir = compile_ir(pipeline, self.settings, base_dir)
        self.client().upload_code(ir, pipeline, base_dir)  # content-addressed bundles; present ones are skipped
        declared = ir.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
        values = {k: v for k, v in values.items() if k in declared}
        opts = Options.model_validate(pipeline.backend_options.get("vertex", {}))
        # use_cache=False turns caching off for every task; True (the CLI default) keeps each step's own setting
        caching = False if options.get("use_cache") is False else opts.enable_caching
        policy = opts.failure_policy or ("fast" if options.get("fail_fast") else None)
        handle = self.client().submit(ir, values, job_id=options.get("job_id"), enable_caching=caching,
                                      labels=opts.labels or None, failure_policy=policy)
        if options.get("wait"):
            handle.wait(options.get("timeout"), options.get("poll", 10.0))
        return handle

    def get_run(self, run_id: str) -> Any:
        """A handle on a pipeline job (by id or full resource name).

        Example:
            >>> VertexAdapter().get_run("churn-train-20260101000000-abc123")
            Traceback (most recent call last):
            ...
            cloudml.errors.ConfigError: Vertex AI needs a project
        """
        return self.client().get_run(run_id)

    def deploy(self, deployment: Any, **options: Any) -> Any:
        """Not built yet: raises UnsupportedFeatureError."""
        raise self._client_missing("deploy")
