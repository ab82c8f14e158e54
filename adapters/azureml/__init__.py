"""The Azure ML adapter: pipeline-job runs, the model registry and managed online endpoints.

The compiler (spec -> Azure ML pipeline job, CLI v2 schema) is pure and needs no SDK; what it
cannot express is declared in the capabilities and refused by name at compile time. Conditions
compile to runtime guards on the nodes of their branches (guards.py), or with
``enable_preview_conditions`` to the private-preview ``if_else`` nodes. Runs go through
azure-ai-ml's ``MLClient`` (``pip install 'cloudml[azure]'``, see client.py): submit, status, steps,
wait, cancel. The registry (registry.py) keeps approval in a tag. Deployments roll out on managed
online endpoints through the core rollout controller (endpoints.py), with alarms read from Azure
Monitor metrics (monitoring.py).

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


class Options(BaseModel):
    """``backend_options.azureml``: settings only the Azure ML adapter understands."""

    model_config = ConfigDict(extra="forbid")

    compute: str | None = Field(None, description="compute cluster name, or 'serverless'")
    instance_type: str | None = Field(None, description="default VM size, e.g. Standard_DS3_v2")
    environment: str | None = Field(None, description="deployments of non-MLflow models: the serving environment "
                                    "(azureml:<name>:<version> or an image)")
    code: str | None = Field(None, description="deployments of non-MLflow models: the scoring code "
                             "(azureml:<code asset> or a folder)")
    scoring_script: str | None = Field(None, description="deployments of non-MLflow models: the script in code, "
                                       "e.g. score.py")
    runtime_image: str | None = Field(None, description="image with cloudml[azure] installed that register nodes "
                                      "run cloudml's runtime in (defaults.image when unset)")


class AzureMLAdapter(Adapter):
    """Azure ML pipeline jobs, model registry and managed online endpoints."""

    name = "azureml"
    extra = "azure"
    requires = ("azure-ai-ml", "azure-identity")
    description = "Azure ML pipeline jobs, model registry, managed online endpoints with controller-driven rollouts"
    options_model: ClassVar[type[BaseModel] | None] = Options
    capabilities = Capabilities(
        "azureml",
        {
            "deploy.predictor": ("notimpl", "Azure ML serves custom code through a scoring script: set "
                                 "backend_options.azureml.code and .scoring_script instead"),
            "step.secrets": ("notyet", "command jobs have no secret injection; read Key Vault in the step"),
            "step.cache_expiry": ("notyet", "Azure ML reuse has no expiry"),
            "step.depends_on": ("notyet", "Azure ML orders nodes by their data bindings only"),
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
        return Compiled("azureml", pipeline.name, compile_job(pipeline, self.settings, self.base_dir), "yaml")

    def validate_compiled(self, compiled: Compiled) -> list[str]:
        """Reference checks azure-ai-ml misses, then ``load_job`` when the SDK is installed."""
        if compiled.document.get("type") != "pipeline":
            return []
        from cloudml.adapters.azureml.validate import validate_job

        return validate_job(compiled.document)

    # -- the client (azure-ai-ml) ----------------------------------------------------------------------
    def client(self, credential: Any = None, **mlclient_kwargs: Any) -> Any:
        """The azure-ai-ml client (cached); AdapterNotInstalledError without the azure extra.

        Arguments are used the first time only (or when given again): a credential and ``MLClient``
        keyword arguments such as ``cloud_metadata`` or ``transport``.

        Example:
            >>> from azure.identity import AzureCliCredential  # doctest: +SKIP
            >>> backend.client(AzureCliCredential()).workspace  # doctest: +SKIP
            'my-workspace'
        """
        self.require()
        from cloudml.adapters.azureml.client import AzureMLClient

        if getattr(self, "_client", None) is None or credential is not None or mlclient_kwargs:
            self._client = AzureMLClient(self.settings, credential, **mlclient_kwargs)
            self._credential, self._mlclient_kwargs = credential, dict(mlclient_kwargs)
            self._metrics: Any = None
        return self._client

    def run(self, pipeline: Pipeline, parameters: dict[str, Any] | None = None, **options: Any) -> Any:
        """Compile, check ``parameters`` against the spec, submit the pipeline job; returns an AzureMLRun.

        Options: ``wait=True`` waits for the end (``timeout``, ``poll`` seconds), ``name`` sets the job
        name, ``experiment_name`` the experiment, ``spec_dir`` where relative code folders start.

        Example:
            >>> backend = cloudml.get_adapter("azureml", subscription_id="...", resource_group="rg",
            ...                               workspace="ws")  # doctest: +SKIP
            >>> backend.run(cloudml.load("pipeline.yaml"), {"n_estimators": 300}, wait=True).status  # doctest: +SKIP
            'succeeded'
        """
        from pathlib import Path

        values = pipeline.resolve_parameters(parameters)  # unknown or bad values: SpecError, no request sent
        base_dir = Path(options["spec_dir"]) if options.get("spec_dir") else self.base_dir
        kept, self.base_dir = self.base_dir, base_dir  # code and code_paths start there, when compiling too
        try:
            document = self.compile(_with_values(pipeline, values)).document
        finally:
            self.base_dir = kept
        handle = self.client().submit(document, values, base_dir=base_dir, name=options.get("name"),
                                      experiment_name=options.get("experiment_name"))
        if options.get("wait"):
            handle.wait(options.get("timeout"), options.get("poll", 10.0))
        return handle

    def compile_schedule(self, pipeline: Pipeline) -> Compiled:
        """The pipeline's ``schedule:`` as an Azure ML job schedule YAML (``load_schedule``'s schema); it runs
        the compiled job, written as ``job.yaml`` beside it (schedule.py).

        Example:
            >>> import cloudml
            >>> b = cloudml.PipelineBuilder("p", schedule={"cron": "0 3 * * MON", "timezone": "America/Chicago"})
            >>> _ = b.add_step("a", command="echo hi", image="python:3.11")
            >>> AzureMLAdapter().compile_schedule(b.build()).document["trigger"]
            {'type': 'cron', 'expression': '0 3 * * 1', 'time_zone': 'Central Standard Time'}
        """
        from cloudml.adapters.azureml.schedule import schedule_document

        if pipeline.schedule is not None:
            pipeline = _with_values(pipeline, pipeline.resolve_parameters(dict(pipeline.schedule.parameters)))
        return Compiled("azureml", pipeline.name, schedule_document(pipeline, self.compile(pipeline).document), "yaml")

    def apply_schedule(self, pipeline: Pipeline) -> str:
        """Create or update the pipeline's Azure ML job schedule (a cron trigger that creates the compiled
        pipeline job); returns the schedule's ARM id.

        ``schedule.parameters`` override the job's input defaults; ``enabled: false`` keeps the schedule,
        disabled. Applying again updates it in place (a PUT by name: ``cloudml_<pipeline>``).

        Example:
            >>> backend.apply_schedule(cloudml.load("pipeline.yaml"))  # doctest: +SKIP
            '/subscriptions/.../workspaces/my-workspace/schedules/cloudml_churn'
        """
        from cloudml.errors import ConfigError

        if pipeline.schedule is None:
            raise ConfigError(f"pipeline '{pipeline.name}' has no schedule",
                              hint="add `schedule: {cron: \"0 3 * * *\"}` to the pipeline")
        schedule = self.compile_schedule(pipeline).document  # cron, time zone and parameters: refused before any call
        job = self.compile(_with_values(pipeline, pipeline.resolve_parameters(dict(pipeline.schedule.parameters))))
        return str(self.client().apply_schedule(schedule, job.document, enabled=pipeline.schedule.enabled,
                                                base_dir=self.base_dir))

    def get_run(self, run_id: str) -> Any:
        """A handle on an existing pipeline job (by name); NotFoundError when there is none.

        Example:
            >>> backend.get_run("azure_reference_20260101_120000_ab12cd").status  # doctest: +SKIP
            'succeeded'
        """
        return self.client().get_run(run_id)

    # -- model registry (registry.py) --------------------------------------------------------------------
    def register_model(self, group: str, uri: str, **info: Any) -> Any:
        """Register ``uri`` as the next version of ``group``; returns a ModelVersion.

        ``info``: ``approval`` (pending, approved, rejected), ``metrics``, ``tags``, ``description``,
        ``run_id`` and ``type`` (``custom_model`` by default, ``mlflow_model`` deploys without code).

        Example:
            >>> backend.register_model("churn", "azureml://datastores/workspaceblobstore/paths/churn/",
            ...                        type="mlflow_model", approval="approved").version  # doctest: +SKIP
            1
        """
        from cloudml.adapters.azureml.registry import register_model

        return register_model(self.client(), group, uri, approval=info.get("approval", "pending"),
                              metrics=info.get("metrics"), tags=info.get("tags"), description=info.get("description"),
                              run_id=info.get("run_id"), model_type=info.get("type", "custom_model"))

    def list_models(self, group: str | None = None) -> list[Any]:
        """Registered versions, newest first within each group.

        Example:
            >>> [m.version for m in backend.list_models("churn")]  # doctest: +SKIP
            [2, 1]
        """
        from cloudml.adapters.azureml.registry import list_models

        return list_models(self.client(), group)

    def set_approval(self, group: str, version: int, approval: str) -> Any:
        """Approve, reject or reset a version (the ``cloudml.approval`` tag).

        Example:
            >>> backend.set_approval("churn", 2, "approved").approval  # doctest: +SKIP
            'approved'
        """
        from cloudml.adapters.azureml.registry import set_approval

        return set_approval(self.client(), group, version, approval)

    def latest_approved(self, group: str) -> Any:
        """The newest approved version of ``group``.

        Example:
            >>> backend.latest_approved("churn").version  # doctest: +SKIP
            2
        """
        from cloudml.adapters.azureml.registry import latest_approved

        return latest_approved(self.client(), group)

    # -- managed online endpoints (endpoints.py, monitoring.py) -------------------------------------------
    def compile_deployment(self, deployment: Any) -> Compiled:
        """The neutral rollout plan, after the checks Azure ML needs (mirror at most 50%, whole-minute alarms).

        Example:
            >>> from cloudml.spec.deployment import Deployment
            >>> d = Deployment(endpoint="churn", model={"group": "churn"}, strategy={"shadow": {"percent": 80}})
            >>> AzureMLAdapter().compile_deployment(d)
            Traceback (most recent call last):
            cloudml.errors.UnsupportedFeatureError: azureml cannot express 'deploy.shadow': Azure ML mirrors at most 50% of requests; shadow.percent is 80
        """
        from cloudml.adapters.azureml.capture import collector_spec

        compiled = super().compile_deployment(deployment)
        collector_spec(deployment, "check")  # a capture destination Azure ML cannot write to fails here already
        shadow = deployment.strategy.shadow
        if shadow is not None and shadow.percent > 50:
            raise UnsupportedFeatureError(self.name, None, "deploy.shadow", "Azure ML mirrors at most 50% of "
                                          f"requests; shadow.percent is {shadow.percent:g}",
                                          hint="set strategy.shadow.percent to 50 or less")
        return compiled

    def metrics(self, credential: Any = None, **monitor_kwargs: Any) -> Any:
        """The Azure Monitor reader for alarms (``azure-mgmt-monitor``), cached like :meth:`client`.

        By default it uses the client's credential and, when ``client()`` was aimed at another cloud
        through ``cloud_metadata``, that cloud's resource manager and the same per-call policies.

        Example:
            >>> backend.metrics().resource_uri("churn")  # doctest: +SKIP
            '/subscriptions/.../workspaces/my-workspace/onlineEndpoints/churn'
        """
        if getattr(self, "_metrics", None) is not None and credential is None and not monitor_kwargs:
            return self._metrics
        try:
            from azure.mgmt.monitor import MonitorManagementClient
        except ImportError as e:
            from cloudml.errors import AdapterNotInstalledError

            raise AdapterNotInstalledError("azureml", "azure", ["azure-mgmt-monitor"]) from e
        from cloudml.adapters.azureml.client import translate
        from cloudml.adapters.azureml.monitoring import AzureMonitorMetrics

        client = self.client()
        known = getattr(self, "_mlclient_kwargs", {})
        if not monitor_kwargs:
            base = (known.get("cloud_metadata") or {}).get("resource_manager")
            monitor_kwargs = {k: known[k] for k in ("per_call_policies", "transport") if k in known}
            if base:
                monitor_kwargs["base_url"] = str(base).rstrip("/")
        credential = credential or getattr(self, "_credential", None)
        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        monitor = MonitorManagementClient(credential, str(self.settings.subscription_id), **monitor_kwargs)

        def call(action: str, fn: Any) -> Any:
            from azure.core.exceptions import AzureError

            try:
                return fn(monitor)
            except AzureError as e:
                raise translate(e, action, client.workspace) from e

        workspace_id = (f"/subscriptions/{self.settings.subscription_id}/resourceGroups/{self.settings.resource_group}"
                        f"/providers/Microsoft.MachineLearningServices/workspaces/{self.settings.workspace}")
        self._metrics = AzureMonitorMetrics(call, workspace_id)
        return self._metrics

    def _rollouts(self) -> Any:
        from cloudml.adapters.azureml.endpoints import AzureMLRollouts

        return AzureMLRollouts(self)

    @property
    def endpoints(self) -> Any:
        """The workspace's managed online endpoints as a TrafficBackend (:class:`AzureMLEndpoints`).

        A property, as on the local and Vertex backends (the CLI calls ``adapter.endpoints.list()``).

        Example:
            >>> backend.endpoints.list()  # doctest: +SKIP
            ['churn']
        """
        return self._rollouts().backend()

    def controller(self, stop: Any = None, poll: float = 5.0) -> Any:
        """The core rollout controller over :attr:`endpoints`, with its state under ``state_dir``.

        Example:
            >>> backend.controller().store.load("churn")["status"]  # doctest: +SKIP
            'succeeded'
        """
        return self._rollouts().controller(stop, poll)

    def deploy(self, deployment: Any, **options: Any) -> Any:
        """Roll ``deployment`` out on a managed online endpoint through the core controller; a RolloutResult.

        Options: ``stop`` (a threading.Event that pauses the controller, as a kill would) and ``poll``
        (seconds between alarm checks and traffic re-reads, default 5).

        Example:
            >>> backend.deploy(cloudml.load("deployment.yaml")).outcome.value  # doctest: +SKIP
            'succeeded'
        """
        return self._rollouts().deploy(deployment, **options)

    def resume_rollout(self, endpoint: str, **options: Any) -> Any:
        """Resume an interrupted rollout from its saved state: it finishes or rolls back.

        Example:
            >>> backend.resume_rollout("churn").outcome.value  # doctest: +SKIP
            'succeeded'
        """
        return self._rollouts().resume(endpoint, **options)

    def promote(self, endpoint: str) -> Any:
        """Skip the remaining bakes: all traffic to the new deployment, retire the old one.

        Example:
            >>> backend.promote("churn").outcome.value  # doctest: +SKIP
            'succeeded'
        """
        return self._rollouts().manual(endpoint, "promote")

    def rollback(self, endpoint: str) -> Any:
        """All traffic back to the previous deployment now, mirror cleared, the new one removed.

        Example:
            >>> backend.rollback("churn").outcome.value  # doctest: +SKIP
            'rolled_back'
        """
        return self._rollouts().manual(endpoint, "rollback")

    def endpoint_status(self, endpoint: str) -> dict[str, Any]:
        """Deployments, traffic, mirror, scoring URL and rollout state of an endpoint.

        Example:
            >>> backend.endpoint_status("churn")["traffic"]  # doctest: +SKIP
            {'churn-v2': 100}
        """
        return dict(self._rollouts().status(endpoint))

    def invoke(self, endpoint: str, instances: list[Any], **options: Any) -> dict[str, Any]:
        """Send ``{"instances": [...]}`` to the endpoint (``deployment=`` pins one deployment).

        Example:
            >>> backend.invoke("churn", [[0.1, 0.2]])  # doctest: +SKIP
            {'predictions': [0]}
        """
        return dict(self._rollouts().invoke(endpoint, instances, options.get("deployment")))


def _with_values(pipeline: Pipeline, values: dict[str, Any]) -> Pipeline:
    """The pipeline with ``values`` as the defaults of parameters that have none: an Azure ML pipeline job
    carries a value for every input, and at submit (or schedule) time those values are known."""
    if all(p.default is not None for p in pipeline.parameters.values()):
        return pipeline
    return pipeline.model_copy(update={"parameters": {
        n: p if p.default is not None else p.model_copy(update={"default": values[n]})
        for n, p in pipeline.parameters.items()}})
