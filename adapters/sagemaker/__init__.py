"""The SageMaker adapter: pipeline definitions (compiler), runs, the model registry and endpoints (client).

The compiler is pure (no boto3, no credentials, no network): ``cloudml compile --target sagemaker``
works anywhere. Running, the model registry and endpoint deployments go through boto3 and need
``pip install 'cloudml[aws]'``.

Endpoints roll out two ways. By default ``all_at_once``, ``blue_green``, ``canary`` and ``linear`` use
SageMaker's own deployment guardrails (UpdateEndpoint with a BlueGreenUpdatePolicy and CloudWatch-alarm
auto-rollback). ``shadow``, ``ab_test``, and every strategy with ``backend_options: {sagemaker:
{native_guardrails: false}}``, are driven by cloudml's core rollout controller over production and shadow variants
(:mod:`cloudml.adapters.sagemaker.variants`), with state in files under ``state_dir/sagemaker/<region>`` so
``resume_rollout``, ``promote`` and ``rollback`` work from another process. Both give the same
:class:`~cloudml.adapter.RolloutResult`, and both apply ``capture`` (DataCaptureConfig,
:mod:`~cloudml.adapters.sagemaker.capture`) and ``instances.autoscale`` (Application Auto Scaling of the
live variant, :mod:`~cloudml.adapters.sagemaker.autoscale`). Step ``secrets`` are resolved inside the
jobs by cloudml's runtime (only their references are in the definition).

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

    native_guardrails: bool = Field(True, description="use SageMaker deployment guardrails for all_at_once, blue_green, "
                                    "canary and linear; false: cloudml's rollout controller over production variants "
                                    "(shadow always uses the controller)")
    volume_size_gb: int = Field(30, ge=1, le=16384)
    instance_type: str | None = Field(None, pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$", description="default ML instance type")
    role_arn: str | None = Field(None, pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
    max_parallel_steps: int | None = Field(None, ge=1, le=200)
    tags: dict[str, str] = Field(default_factory=dict, description="tags on the pipeline")


class SageMakerAdapter(Adapter):
    """AWS SageMaker Pipelines, model registry and endpoints."""

    name = "sagemaker"
    extra = "aws"
    requires = ("boto3",)
    description = "AWS SageMaker Pipelines, model registry and endpoints with native guardrails"
    options_model: ClassVar[type[BaseModel] | None] = Options
    capabilities = Capabilities(
        "sagemaker",
        {
            "deploy.predictor": ("notimpl", "a cloudml predictor class needs an inference container that loads it; "
                                 "set serving.image to one (with serving.env) instead"),
        },
    )

    def __init__(self, settings: SageMakerSettings | None = None) -> None:
        super().__init__(settings or SageMakerSettings())
        self.settings: SageMakerSettings

    def compile(self, pipeline: Pipeline) -> Compiled:
        """The SageMaker pipeline definition (JSON); refuses, by name, what SageMaker cannot express."""
        from cloudml.adapter import pipeline_features
        from cloudml.adapters.sagemaker.compiler import compile_definition

        self.check_supported(pipeline_features(pipeline))
        return Compiled("sagemaker", pipeline.name, compile_definition(pipeline, self.settings, self.base_dir), "json")

    def compile_deployment(self, deployment: Deployment) -> Compiled:
        """Endpoint variant, DeploymentConfig (guardrails) and CloudWatch alarm requests."""
        from cloudml.adapters.sagemaker.capture import settings_root
        from cloudml.adapters.sagemaker.deploy import compile_deployment_plan
        from cloudml.adapters.sagemaker.resources import deploy_instance_type
        from cloudml.adapters.sagemaker.variants import controller_plan

        self.check_supported(deployment_features(deployment))
        instance_type = deploy_instance_type(deployment.instances)
        root = settings_root(self.settings)
        if self.uses_controller(deployment):
            return Compiled("sagemaker", deployment.endpoint, controller_plan(deployment, instance_type, root), "json")
        plan = compile_deployment_plan(deployment, instance_type, root)
        return Compiled("sagemaker", deployment.endpoint, plan, "json")

    @staticmethod
    def uses_controller(deployment: Deployment) -> bool:
        """True when cloudml's rollout controller drives the deployment: ``shadow`` and ``ab_test`` (guardrails can
        neither mirror nor hold a split), and any strategy with ``native_guardrails: false``.

        Example:
            >>> from cloudml.spec.deployment import Deployment
            >>> shadow = Deployment(endpoint="ep", model={"group": "g"}, strategy={"shadow": {"percent": 10}})
            >>> canary = Deployment(endpoint="ep", model={"group": "g"}, strategy={"canary": {"percent": 10}})
            >>> SageMakerAdapter.uses_controller(shadow), SageMakerAdapter.uses_controller(canary)
            (True, False)
        """
        if deployment.strategy.name in ("shadow", "ab_test"):  # guardrails cannot hold a split or mirror
            return True
        return not Options.model_validate(deployment.backend_options.get("sagemaker", {})).native_guardrails

    def validate_compiled(self, compiled: Compiled) -> list[str]:
        """botocore's own parameter validation of CreatePipeline and of every step's Arguments."""
        if compiled.document.get("Version") != "2020-12-01":
            return []
        from cloudml.adapters.sagemaker.validate import validate_definition

        return validate_definition(compiled.document)

    # -- the client (boto3) ----------------------------------------------------------------------------
    def client(self) -> Any:
        """The boto3-backed client (raises AdapterNotInstalledError without the aws extra)."""
        self.require()
        from cloudml.adapters.sagemaker.client import SageMakerClient

        if getattr(self, "_client", None) is None:
            self._client = SageMakerClient(self.settings)
        return self._client

    def _role(self) -> str:
        if not self.settings.role_arn:
            from cloudml.errors import ConfigError

            raise ConfigError("SageMaker needs an execution role", hint="set sagemaker.role_arn in cloudml.yaml "
                              "or CLOUDML_SAGEMAKER_ROLE_ARN")
        return self.settings.role_arn

    def run(self, pipeline: Pipeline, parameters: dict[str, Any] | None = None, **options: Any) -> Any:
        """Upload code bundles, create or update the pipeline, and start an execution."""
        client, values, _ = self._publish(pipeline, pipeline.resolve_parameters(parameters))
        return client.start(pipeline.name, values)

    def apply_schedule(self, pipeline: Pipeline) -> str:
        """Publish the pipeline and create or update its EventBridge Scheduler schedule; returns the schedule ARN.

        The schedule starts executions with ``schedule.parameters`` (plus the execution role and
        artifact root cloudml passes to every execution); ``enabled: false`` keeps it, disabled.

        Example:
            >>> import cloudml
            >>> adapter = cloudml.get_adapter("sagemaker")  # doctest: +SKIP
            >>> adapter.apply_schedule(cloudml.load("pipeline.yaml"))  # doctest: +SKIP
            'arn:aws:scheduler:eu-west-1:123456789012:schedule/default/cloudml-churn'
        """
        from cloudml.adapters.sagemaker.schedule import schedule_request
        from cloudml.errors import ConfigError

        if pipeline.schedule is None:
            raise ConfigError(f"pipeline '{pipeline.name}' has no schedule",
                              hint="add `schedule: {cron: \"0 3 * * *\"}` to the pipeline")
        request = schedule_request(pipeline, "arn:placeholder", self._role())  # checks cron and parameters first
        client, values, arn = self._publish(pipeline, pipeline.resolve_parameters(dict(pipeline.schedule.parameters)))
        internal = {k: v for k, v in values.items() if k not in pipeline.parameters}
        target = request["Target"]
        target["Arn"] = arn
        if internal:
            plist = target.setdefault("SageMakerPipelineParameters", {"PipelineParameterList": []})
            plist["PipelineParameterList"] += [{"Name": k, "Value": str(v)} for k, v in internal.items()]
        return str(client.upsert_schedule(request))

    def _publish(self, pipeline: Pipeline, values: dict[str, Any]) -> tuple[Any, dict[str, Any], str]:
        """Upload code and create or update the pipeline: the client, ``values`` plus cloudml's own
        parameters, and the pipeline ARN."""
        from cloudml.adapter import pipeline_features
        from cloudml.adapters.sagemaker.compiler import ROLE_PARAMETER, ROOT_PARAMETER

        self.check_supported(pipeline_features(pipeline))
        definition = self.compile(pipeline).document
        client = self.client()
        declared = {p["Name"] for p in definition["Parameters"]}
        if ROLE_PARAMETER in declared:
            values[ROLE_PARAMETER] = self._role()
        if ROOT_PARAMETER in declared:
            bucket, prefix = client._bucket_prefix(pipeline.name)
            values[ROOT_PARAMETER] = f"s3://{bucket}/{prefix}"
        client.upload_code(definition, pipeline, self.base_dir)
        opts = Options.model_validate(pipeline.backend_options.get("sagemaker", {}))
        arn = client.upsert_pipeline(pipeline.name, definition, opts.role_arn or self._role(), opts.max_parallel_steps,
                                     opts.tags)
        return client, values, arn

    def get_run(self, run_id: str) -> Any:
        """A handle on an execution (by ARN)."""
        from cloudml.adapters.sagemaker.client import SageMakerRun

        return SageMakerRun(self.client(), run_id)

    def register_model(self, group: str, uri: str, **info: Any) -> Any:
        """Register ``uri`` (an s3:// model.tar.gz) as a new model package; needs ``image=``."""
        if not info.get("image"):
            from cloudml.errors import CompileError

            raise CompileError("registering on SageMaker needs the serving image", hint="pass image=...")
        return self.client().register(group, uri, info["image"], info.get("approval", "pending"),
                                      info.get("metrics"), info.get("tags"))

    def list_models(self, group: str | None = None) -> list[Any]:
        """Versions of a model package group, newest first."""
        if group is None:
            from cloudml.errors import CompileError

            raise CompileError("listing SageMaker models needs a model package group name")
        return list(self.client().versions(group))

    def set_approval(self, group: str, version: int, approval: str) -> Any:
        """Approve or reject a model package version."""
        return self.client().set_approval(group, version, approval)

    def latest_approved(self, group: str) -> Any:
        """The newest approved version of a group."""
        from cloudml.errors import NotFoundError

        versions = self.client().versions(group, "approved")
        if not versions:
            raise NotFoundError(f"model package group '{group}' has no approved version", backend="sagemaker",
                                hint=f"cloudml models approve {group} VERSION --backend sagemaker")
        return versions[0]

    def _resolve_model(self, deployment: Deployment) -> Any:
        from cloudml.errors import NotFoundError

        version, group = deployment.model.version, deployment.model.group
        if version == "latest-approved":
            return self.latest_approved(group)
        hint = f"cloudml models list {group} --backend sagemaker"
        if isinstance(version, int):
            client = self.client()
            try:
                arn = client.package_arn(group, version)
            except NotFoundError as e:
                raise NotFoundError(f"model package group '{group}' has no version {version}", backend="sagemaker",
                                    hint=hint) from e
            return client._version(client.call("sagemaker", "describe_model_package", ModelPackageName=arn))
        versions = self.client().versions(group)
        found = versions[:1] if version == "latest" else [m for m in versions if m.version == version]
        if not found:
            raise NotFoundError(f"model package group '{group}' has no version {version}", backend="sagemaker",
                                hint=hint)
        return found[0]

    def deploy(self, deployment: Deployment, **options: Any) -> Any:
        """Roll out ``deployment`` and return the typed :class:`~cloudml.adapter.RolloutResult`.

        Native guardrails (UpdateEndpoint + CloudWatch auto-rollback) unless the deployment is a shadow
        or an A/B test, or sets ``native_guardrails: false``; then cloudml's controller drives production/shadow
        variants. Options: ``poll`` (seconds between checks, default 15), ``stop`` (a threading.Event
        that pauses the controller, as a kill would), ``state_dir`` (overrides the settings).

        Example:
            >>> import cloudml
            >>> adapter = cloudml.get_adapter("sagemaker")  # doctest: +SKIP
            >>> adapter.deploy(cloudml.load("deployment.yaml")).outcome.value  # doctest: +SKIP
            'succeeded'
        """
        plan = self.compile_deployment(deployment).document
        client = self.client()
        model = self._resolve_model(deployment)
        if plan.get("Mode") == "controller":
            from cloudml.adapters.sagemaker.variants import adopt, endpoint_lock, variant_name

            info = {"group": model.group, "version": model.version, "instance_type": plan["Variant"]["InstanceType"],
                    "package_arn": model.run_id or client.package_arn(model.group, model.version),
                    "model_data_url": model.uri}
            with endpoint_lock(self._state_root(options), deployment.endpoint):
                controller = self.controller(**options)
                adopt(controller.backend, controller.store, deployment.endpoint)
                name = variant_name(model.group, model.version)
                result = controller.deploy(deployment, model_name=name, model=info)
                live = (controller.store.load(deployment.endpoint) or {}).get("live")
                if result.outcome.value == "succeeded" and plan.get("Autoscaling") and live == name:
                    from cloudml.adapters.sagemaker import autoscale

                    autoscale.apply(client, deployment.endpoint, name, plan["Autoscaling"])  # the new live variant
                return result
        from cloudml.errors import DeploymentError
        from cloudml.rollout import FileStateStore

        state = FileStateStore(self._state_root(options)).load(deployment.endpoint) or {}
        if state.get("status") in ("in_progress", "rolling_back"):
            raise DeploymentError(f"endpoint {deployment.endpoint} has a rollout by cloudml's controller in progress",
                                  hint=f"cloudml rollout resume {deployment.endpoint}  (or cloudml rollback "
                                  f"{deployment.endpoint})")
        return client.deploy(plan, model, self._role(), poll=options.get("poll", 15.0),
                             timeout=deployment.max_duration + 600)

    # -- rollouts driven by cloudml's controller -------------------------------------------------------
    def _state_root(self, options: dict[str, Any]) -> Any:
        from pathlib import Path

        base = Path(options.get("state_dir") or getattr(self.settings, "state_dir", None) or ".cloudml")
        return base / "sagemaker" / (self.settings.region or "default-region")  # never the local backend's files

    def controller(self, **options: Any) -> Any:
        """A :class:`cloudml.rollout.RolloutController` over this account's endpoint variants.

        State lives in ``<state_dir>/sagemaker/<region>/endpoints/<endpoint>/rollout.json`` (``state_dir``
        option, else the settings' ``state_dir``, else ``.cloudml``). Options: ``poll``, ``stop``, ``ready_timeout``.

        Example:
            >>> ctl = cloudml.get_adapter("sagemaker").controller(poll=5)  # doctest: +SKIP
            >>> ctl.resume("churn").outcome.value  # doctest: +SKIP
            'succeeded'
        """
        from cloudml.adapters.sagemaker.variants import VariantTraffic
        from cloudml.rollout import FileStateStore, RolloutController

        poll = float(options.get("poll", 15.0))
        traffic = VariantTraffic(self.client(), self._role(), poll=poll)
        return RolloutController(traffic, FileStateStore(self._state_root(options)), poll=poll,
                                 stop=options.get("stop"), ready_timeout=float(options.get("ready_timeout", 3600.0)))

    def resume_rollout(self, endpoint: str, **options: Any) -> Any:
        """Resume an interrupted controller-driven rollout: it finishes or rolls back.

        Example:
            >>> cloudml.get_adapter("sagemaker").resume_rollout("churn").outcome.value  # doctest: +SKIP
            'succeeded'
        """
        from cloudml.adapters.sagemaker.variants import endpoint_lock

        with endpoint_lock(self._state_root(options), endpoint):
            return self.controller(**options).resume(endpoint)

    def promote(self, endpoint: str, **options: Any) -> Any:
        """Skip the remaining bakes of a controller-driven rollout (asking its controller when one runs).

        Example:
            >>> cloudml.get_adapter("sagemaker").promote("churn").outcome.value  # doctest: +SKIP
            'succeeded'
        """
        return self._manual(endpoint, "promote", options)

    def rollback(self, endpoint: str, **options: Any) -> Any:
        """Send all traffic back to the previous variant of a controller-driven rollout.

        Example:
            >>> cloudml.get_adapter("sagemaker").rollback("churn").outcome.value  # doctest: +SKIP
            'rolled_back'
        """
        return self._manual(endpoint, "rollback", options)

    def _manual(self, endpoint: str, action: str, options: dict[str, Any]) -> Any:
        from cloudml.adapters.sagemaker.variants import endpoint_lock
        from cloudml.errors import NotFoundError
        from cloudml.rollout import MANUAL_TIMEOUT, FileStateStore, manual_action

        root = self._state_root(options)
        if FileStateStore(root).load(endpoint) is None:
            raise NotFoundError(f"endpoint {endpoint} has no rollout driven by cloudml's controller under {root}",
                                backend="sagemaker", hint="native guardrail rollouts roll back by themselves on their "
                                "alarms; to go back afterwards, deploy the previous model version")
        return manual_action(lambda: self.controller(**options), lambda: endpoint_lock(root, endpoint), endpoint,
                             action, timeout=float(options.get("timeout", MANUAL_TIMEOUT)))

    def iam_policy(self) -> dict[str, Any]:
        """The IAM policy the client's calls need, generated from its list of calls."""
        from cloudml.adapters.sagemaker.client import iam_policy

        return iam_policy()

    def endpoint_status(self, endpoint: str, **options: Any) -> dict[str, Any]:
        """DescribeEndpoint, as a dict, plus ``rollout`` (the controller's state) when cloudml's controller drove it.

        Example:
            >>> cloudml.get_adapter("sagemaker").endpoint_status("churn")["EndpointStatus"]  # doctest: +SKIP
            'InService'
        """
        from cloudml.rollout import FileStateStore

        status = dict(self.client().call("sagemaker", "describe_endpoint", EndpointName=endpoint))
        state = FileStateStore(self._state_root(options)).load(endpoint)
        if state is not None:
            status["rollout"] = {k: state.get(k) for k in ("status", "blue", "green", "live", "weights", "mirror",
                                                           "outcome")}
        return status

    def invoke(self, endpoint: str, instances: list[Any], **options: Any) -> dict[str, Any]:
        """Send ``{"instances": [...]}`` to the endpoint."""
        return dict(self.client().invoke(endpoint, instances))

