"""The Vertex AI adapter: KFP IR pipelines, the Vertex AI Model Registry, and endpoints with guarded rollouts.

The compiler (spec -> KFP PipelineSpec IR) is pure and needs no SDK; what it cannot express is
declared in the capabilities and refused by name at compile time. Runs (submit, status, task
details, wait, cancel) go through google-cloud-aiplatform (``pip install 'cloudml[gcp]'``, see
``client.py``). The model registry is Vertex's (``registry.py``: one Model per group, versions via
``parent_model``, approval as a label plus the ``approved`` alias). Deployments are rolled out by the
core controller (``cloudml.rollout``) over Vertex endpoints (``endpoints.py``: deployed models and
traffic splits), with neutral alarms read from Cloud Monitoring (``monitoring.py``).

Example:
    >>> import cloudml
    >>> cloudml.registry.adapter_class("vertex").extra
    'gcp'
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from cloudml.adapter import Adapter, Capabilities, Compiled, ModelVersion, RolloutResult
from cloudml.spec.pipeline import Pipeline

if TYPE_CHECKING:
    from cloudml.spec.deployment import Deployment

__all__ = ["Options", "VertexAdapter"]


class Options(BaseModel):
    """``backend_options.vertex``: settings only the Vertex AI adapter understands."""

    model_config = ConfigDict(extra="forbid")

    enable_caching: bool | None = Field(None, description="override every task's caching when the run is submitted")
    failure_policy: Literal["fast", "slow"] | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    runtime_image: str | None = Field(None, description="image with cloudml[gcp] installed that register tasks "
                                      "run in (default: the pipeline's defaults.image)")


class VertexAdapter(Adapter):
    """Google Vertex AI: pipelines (KFP IR), Model Registry, endpoints rolled out by the core controller.

    Example:
        >>> VertexAdapter.capabilities.level("deploy.canary"), VertexAdapter.capabilities.level("deploy.shadow")
        ('supported', 'notyet')
    """

    name = "vertex"
    extra = "gcp"
    requires = ("google-cloud-aiplatform",)
    description = "Google Vertex AI: pipelines, model registry, endpoints with controller-driven rollouts"
    options_model: ClassVar[type[BaseModel] | None] = Options
    capabilities = Capabilities(
        "vertex",
        {
            "deploy.serving_image": ("notimpl", "Vertex fixes the serving container when a model version is "
                                     "registered (register_model.image or framework); a deploy-time image is not applied"),
            "deploy.serving_env": ("notimpl", "Vertex fixes the serving container's environment at registration; "
                                   "a deploy-time environment is not applied"),
            "deploy.predictor": ("notimpl", "a cloudml predictor class needs a serving container that loads it; "
                                 "register the model with such an image"),
            "step.secrets": ("notyet", "the KFP IR has no secret injection; read Secret Manager in the step"),
            "step.instance_count": ("notyet", "a KFP container task runs on one node"),
            "step.cache_expiry": ("notyet", "KFP caching has no expiry"),
            "deploy.shadow": ("notyet", "Vertex endpoints have no mirrored traffic"),
            "deploy.existing_alarm": ("notyet", "Cloud Monitoring's API lists alert policies but not whether they "
                                      "are firing (no incident API); use a neutral alarm"),
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
        ir, values, opts = self._prepare(pipeline, parameters, options.get("spec_dir"))
        # use_cache=False turns caching off for every task; True (the CLI default) keeps each step's own setting
        caching = False if options.get("use_cache") is False else opts.enable_caching
        policy = opts.failure_policy or ("fast" if options.get("fail_fast") else None)
        handle = self.client().submit(ir, values, job_id=options.get("job_id"), enable_caching=caching,
                                      labels=opts.labels or None, failure_policy=policy)
        if options.get("wait"):
            handle.wait(options.get("timeout"), options.get("poll", 10.0))
        return handle

    def _prepare(self, pipeline: Pipeline, parameters: dict[str, Any] | None,
                 spec_dir: str | None = None) -> tuple[dict[str, Any], dict[str, Any], Options]:
        """Check values (parameter inputs must be gs:// URIs), compile, upload code bundles: what a run or a
        schedule sends, before any Vertex request."""
        from cloudml.adapter import pipeline_features
        from cloudml.adapters.vertex.compiler import compile_ir
        from cloudml.adapters.vertex.inputs import check_input_uris

        values = pipeline.resolve_parameters(parameters)
        check_input_uris(pipeline, values)
        self.check_supported(pipeline_features(pipeline))
        opts = Options.model_validate(pipeline.backend_options.get("vertex", {}))
        base_dir = Path(spec_dir) if spec_dir else self.base_dir  # code folders start here
        ir = compile_ir(pipeline, self.settings, base_dir)
        self.client().upload_code(ir, pipeline, base_dir)  # content-addressed bundles; present ones are skipped
        declared = ir.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
        return ir, {k: v for k, v in values.items() if k in declared}, opts

    def apply_schedule(self, pipeline: Pipeline) -> str:
        """Create or update the pipeline's Vertex AI schedule; returns the schedule's resource name.

        The schedule's run is the compiled IR (code bundles uploaded first, as for :meth:`run`) with
        ``schedule.parameters`` as parameter values; cron is ``TZ=<zone> m h d M w``; at most one run at a
        time, as with ``cloudml schedule run`` (a fire time during a run is skipped). The schedule is
        found by its display name ``cloudml-<pipeline>``, so applying again updates it in place;
        ``enabled: false`` pauses it. See ``schedule.py``.

        Example:
            >>> import cloudml
            >>> b = cloudml.PipelineBuilder("p", schedule={"cron": "0 3 1 * MON"})
            >>> _ = b.add_step("a", command="echo hi", image="alpine")
            >>> VertexAdapter().apply_schedule(b.build())
            Traceback (most recent call last):
            ...
            cloudml.errors.UnsupportedFeatureError: vertex cannot express 'schedule': cron '0 3 1 * MON' restricts both the day of the month and the day of the week; Vertex AI does not document whether a day must then match either or both
        """
        from cloudml.adapters.vertex.schedule import apply, vertex_cron
        from cloudml.errors import ConfigError

        s = pipeline.schedule
        if s is None:
            raise ConfigError(f"pipeline '{pipeline.name}' has no schedule",
                              hint="add `schedule: {cron: \"0 3 * * *\"}` to the pipeline")
        cron = vertex_cron(s.cron, s.timezone)  # refused before any call
        ir, values, opts = self._prepare(pipeline, dict(s.parameters))
        return apply(self.client(), ir, values, cron=cron, enabled=s.enabled, enable_caching=opts.enable_caching,
                     labels=opts.labels or None, failure_policy=opts.failure_policy)

    def get_run(self, run_id: str) -> Any:
        """A handle on a pipeline job (by id or full resource name).

        Example:
            >>> VertexAdapter().get_run("churn-train-20260101000000-abc123")
            Traceback (most recent call last):
            ...
            cloudml.errors.ConfigError: Vertex AI needs a project
        """
        return self.client().get_run(run_id)

    # -- model registry (Vertex AI Model Registry; see registry.py) ---------------------------------------
    def registry(self) -> Any:
        """The :class:`~cloudml.adapters.vertex.registry.VertexRegistry` over this adapter's client.

        Example:
            >>> VertexAdapter().registry().register("churn", "gs://b/churn/1", image="")
            Traceback (most recent call last):
            ...
            cloudml.errors.BackendValidationError: registering on Vertex AI needs the serving image
        """
        from cloudml.adapters.vertex.registry import VertexRegistry

        return VertexRegistry(self.client())

    def register_model(self, group: str, uri: str, **info: Any) -> ModelVersion:
        """Upload ``uri`` (a gs:// model folder) as the next version of ``group``; needs ``image=`` (serving).

        Also takes ``approval``, ``metrics``, ``tags``, ``run_id`` and ``aliases`` (Vertex version aliases).

        Example:
            >>> VertexAdapter().register_model("churn", "gs://b/churn/1")
            Traceback (most recent call last):
            ...
            cloudml.errors.BackendValidationError: registering on Vertex AI needs the serving image
        """
        return self.registry().register(  # type: ignore[no-any-return]
            group, uri, image=info.get("image") or "", approval=info.get("approval", "pending"),
            metrics=info.get("metrics"), tags=info.get("tags"), run_id=info.get("run_id"), aliases=info.get("aliases"))

    def list_models(self, group: str | None = None) -> list[ModelVersion]:
        """Versions of ``group`` (every cloudml group when None), newest first.

        Example:
            >>> VertexAdapter().list_models("churn")
            Traceback (most recent call last):
            ...
            cloudml.errors.ConfigError: Vertex AI needs a project
        """
        return list(self.registry().versions(group))

    def set_approval(self, group: str, version: int, approval: str) -> ModelVersion:
        """Approve, reject or reset a version (label ``cloudml_approval``; alias ``approved`` on the newest).

        Example:
            >>> VertexAdapter().set_approval("churn", 1, "maybe")
            Traceback (most recent call last):
            ...
            cloudml.errors.CloudMLError: approval must be pending, approved or rejected, not 'maybe'
        """
        return self.registry().set_approval(group, version, approval)  # type: ignore[no-any-return]

    def latest_approved(self, group: str) -> ModelVersion:
        """The newest approved version of ``group`` (NotFoundError with the approve command when none).

        Example:
            >>> VertexAdapter().latest_approved("churn")
            Traceback (most recent call last):
            ...
            cloudml.errors.ConfigError: Vertex AI needs a project
        """
        return self.registry().latest_approved(group)  # type: ignore[no-any-return]

    def resolve_model(self, group: str, version: int | str) -> ModelVersion:
        """A registry version by number, ``latest`` or ``latest-approved``.

        Example:
            >>> VertexAdapter().resolve_model("churn", "latest")
            Traceback (most recent call last):
            ...
            cloudml.errors.ConfigError: Vertex AI needs a project
        """
        return self.registry().resolve(group, version)  # type: ignore[no-any-return]

    # -- endpoints (Vertex AI endpoints driven by the core rollout controller; see endpoints.py) ----------
    def state_root(self) -> Path:
        """Where the controller keeps this cloud's rollout state: ``<state_dir>/vertex/<project>/<location>``.

        Example:
            >>> from cloudml.config import VertexSettings
            >>> str(VertexAdapter(VertexSettings(project="my-project", state_dir="/tmp/s")).state_root())
            '/tmp/s/vertex/my-project/us-central1'
        """
        settings: Any = self.settings
        return Path(str(settings.state_dir)) / "vertex" / str(settings.project) / str(settings.location)

    def metrics(self) -> Any:
        """The Cloud Monitoring reader for alarms (tests set ``_metrics`` to one on a fake gRPC channel).

        Example:
            >>> from cloudml.config import VertexSettings
            >>> VertexAdapter(VertexSettings(project="my-project")).metrics().project
            'my-project'
        """
        if getattr(self, "_metrics", None) is None:
            from cloudml.adapters.vertex.monitoring import VertexMetrics

            client = self.client()
            self._metrics = VertexMetrics(self.settings.project, call=client.call, credentials=client.credentials,
                                          endpoint=self.settings.monitoring_endpoint)
        return self._metrics

    @property
    def endpoints(self) -> Any:
        """The endpoints of this project and location as a TrafficBackend (:class:`VertexEndpoints`).

        A property, as on the local backend (the CLI calls ``adapter.endpoints.list()``).

        Example:
            >>> import tempfile
            >>> from cloudml.config import VertexSettings
            >>> a = VertexAdapter(VertexSettings(project="my-project", state_dir=tempfile.mkdtemp()))
            >>> a.endpoints.mapping("churn")["deployed"]
            {}
        """
        from cloudml.adapters.vertex.endpoints import VertexEndpoints

        return VertexEndpoints(self.client(), self.state_root(), self.metrics())

    def controller(self, stop: threading.Event | None = None, poll: float = 10.0,
                   ready_timeout: float = 1800.0) -> Any:
        """The core rollout controller over this adapter's endpoints, with state under :meth:`state_root`.

        ``ready_timeout`` (default 30 min: Vertex deploys take minutes) bounds the wait for a new
        deployed model; past it, the rollout is rolled back as failed.

        Example:
            >>> from cloudml.config import VertexSettings
            >>> VertexAdapter(VertexSettings(project="my-project")).controller(poll=1).poll
            1
        """
        from cloudml.rollout import FileStateStore, RolloutController

        return RolloutController(self.endpoints, FileStateStore(self.state_root()), poll=poll, stop=stop,
                                 ready_timeout=ready_timeout)

    def _options_controller(self, options: dict[str, Any]) -> Any:
        return self.controller(options.get("stop"), float(options.get("poll", 10.0)),
                               float(options.get("ready_timeout", 1800.0)))

    def deploy(self, deployment: Deployment, **options: Any) -> RolloutResult:
        """Roll ``deployment`` out on a Vertex AI endpoint through the core controller; the typed outcome.

        Strategies: all_at_once, blue_green, canary and linear move the endpoint's traffic split; shadow
        is refused (Vertex has no mirrored traffic). Options: ``stop`` (a threading.Event that pauses
        the controller, as a kill would), ``poll`` (seconds between checks, default 10) and
        ``ready_timeout`` (seconds to wait for the new deployed model, default 1800).

        Example:
            >>> from cloudml.spec.deployment import Deployment
            >>> d = Deployment(endpoint="churn", model={"group": "churn"}, strategy={"shadow": {"percent": 10}})
            >>> VertexAdapter().deploy(d)
            Traceback (most recent call last):
            ...
            cloudml.errors.UnsupportedFeatureError: vertex cannot express 'deploy.shadow': Vertex endpoints have no mirrored traffic
        """
        from cloudml.adapter import deployment_features
        from cloudml.adapters.vertex.endpoints import capture_config

        self.check_supported(deployment_features(deployment))
        capture_config(deployment, str(self.settings.project))  # a bad capture destination fails before any call
        model = self.resolve_model(deployment.model.group, deployment.model.version)
        info = {"resource": model.tags.get("vertex_model"), "group": model.group, "version": model.version,
                "uri": model.uri}
        with self._endpoint_lock(deployment.endpoint):
            return self._options_controller(options).deploy(  # type: ignore[no-any-return]
                deployment, model_name=f"{model.group}-v{model.version}", model=info)

    def resume_rollout(self, endpoint: str, **options: Any) -> RolloutResult:
        """Continue a rollout a killed controller left behind: it finishes or rolls back.

        Example:
            >>> import tempfile
            >>> from cloudml.config import VertexSettings
            >>> VertexAdapter(VertexSettings(project="my-project", state_dir=tempfile.mkdtemp())).resume_rollout("churn")
            Traceback (most recent call last):
            ...
            cloudml.errors.NotFoundError: endpoint churn has no rollout
        """
        with self._endpoint_lock(endpoint):
            return self._options_controller(options).resume(endpoint)  # type: ignore[no-any-return]

    def promote(self, endpoint: str) -> RolloutResult:
        """Skip the remaining bakes: all traffic to the new deployment, retire the old one.

        When another process drives the rollout, it is asked to promote, and this call waits.

        Example: ``VertexAdapter(settings).promote("churn").outcome`` -> ``RolloutOutcome.SUCCEEDED``.
        """
        return self._manual(endpoint, "promote")

    def rollback(self, endpoint: str) -> RolloutResult:
        """Send all traffic back to the previous deployment now (asking a running controller when there is one).

        Example: ``VertexAdapter(settings).rollback("churn").outcome`` -> ``RolloutOutcome.ROLLED_BACK``.
        """
        return self._manual(endpoint, "rollback")

    def _manual(self, endpoint: str, action: str) -> RolloutResult:
        from cloudml.rollout import manual_action

        return manual_action(self.controller, lambda: self._endpoint_lock(endpoint), endpoint, action)

    def endpoint_status(self, endpoint: str) -> dict[str, Any]:
        """Deployed models, traffic split (as Vertex reports it now) and the controller's rollout state.

        Example: ``VertexAdapter(settings).endpoint_status("churn")["traffic"]["weights"]`` -> ``{'churn-v2': 100}``.
        """
        from cloudml.rollout import FileStateStore

        status = dict(self.endpoints.status(endpoint))
        rollout = FileStateStore(self.state_root()).load(endpoint) or {}
        status["rollout"] = {k: rollout.get(k) for k in ("status", "live", "blue", "green", "outcome")}
        return status

    def invoke(self, endpoint: str, instances: list[Any], **options: Any) -> dict[str, Any]:
        """Send ``{"instances": [...]}`` to the endpoint's ``:predict``; says which deployment answered.

        ``deployment=`` (pin one deployment) is refused: Vertex routes by the traffic split only.

        Example: ``VertexAdapter(settings).invoke("churn", [[1.0, 2.0]])["deployment"]`` -> ``'churn-v2'``.
        """
        if options.get("deployment"):
            from cloudml.errors import UnsupportedFeatureError

            raise UnsupportedFeatureError("vertex", None, "invoke deployment=", "Vertex AI routes every request by the "
                                          "endpoint's traffic split; a request cannot name one deployed model",
                                          hint=f"cloudml endpoints show {endpoint} --backend vertex shows the split")
        return dict(self.endpoints.predict(endpoint, instances))

    def _endpoint_lock(self, endpoint: str) -> Any:
        """One controller per endpoint on this machine: an exclusive lock file under the state root."""
        import contextlib
        import fcntl

        from cloudml.errors import DeploymentError

        @contextlib.contextmanager
        def lock() -> Any:
            folder = self.state_root() / "endpoints" / endpoint
            folder.mkdir(parents=True, exist_ok=True)
            with open(folder / ".lock", "a+") as fh:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise DeploymentError(f"another controller is working on endpoint {endpoint}",
                                          hint="wait for it, or stop it and run `cloudml rollout resume`") from None
                yield

        return lock()
