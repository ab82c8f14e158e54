"""Managed online endpoints as a :class:`cloudml.rollout.TrafficBackend` for the core rollout controller.

Azure ML has no guarded rollout of its own (no auto-rollback anywhere in azure-ai-ml): the controller
drives it. What this backend does, in the order the notes require:

* ``create_deployment``: create the endpoint if it is missing (``online_endpoints.begin_create_or_update``),
  then the deployment (with a data collector when the spec captures traffic: :mod:`.capture`), and
  wait for its long-running operation. A failed provisioning is a
  DeploymentError carrying the tail of ``get_logs``. Traffic is only ever set after this returns.
* ``set_traffic``: check the rules the SDK leaves to the service (integer shares summing to 100, mirror
  at most 50% on one deployment that takes no live traffic), then a full endpoint PUT with ``traffic``
  and ``mirror_traffic``, wait for the operation, and re-read the endpoint until it shows the requested
  split with the zero entries dropped (the SDK strips them and traffic is eventually consistent).
* ``alarm_datapoints``: Azure Monitor metrics per deployment (see :mod:`.monitoring`).
* ``delete_deployment``: delete and wait; a deployment that is gone is a NotFoundError.

Example:
    >>> check_traffic({"blue": 90, "green": 10}, {})
    >>> check_traffic({"blue": 100}, {"green": 60})
    Traceback (most recent call last):
    cloudml.errors.DeploymentError: Azure ML mirrors at most 50% of requests; asked for 60% ({'green': 60})
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
import time
from typing import Any

from cloudml.errors import BackendError, BackendValidationError, DeploymentError, NotFoundError

__all__ = ["INSTANCE_TYPES", "AzureMLEndpoints", "check_traffic", "deployment_name", "nonzero"]

# neutral sizes -> managed online endpoint SKUs (override with instances.instance_type.azureml)
# (azure-ai-ml warns below Standard_DS3_v2: it is the smallest general-purpose size it recommends)
INSTANCE_TYPES = {"cpu-small": "Standard_DS3_v2", "cpu-medium": "Standard_DS4_v2", "cpu-large": "Standard_DS5_v2",
                  "gpu-small": "Standard_NC4as_T4_v3", "gpu-large": "Standard_NC24ads_A100_v4"}
_READY = "succeeded"


def nonzero(split: dict[str, int] | None) -> dict[str, int]:
    """A traffic map without its zero entries (what azure-ai-ml sends and the service shows).

    Example:
        >>> nonzero({"blue": 100, "green": 0})
        {'blue': 100}
    """
    return {k: int(v) for k, v in (split or {}).items() if int(v) != 0}


def check_traffic(weights: dict[str, int], mirror: dict[str, int]) -> None:
    """Refuse a split Azure ML would reject (azure-ai-ml sends any map unchanged). Raises DeploymentError.

    Example:
        >>> check_traffic({"blue": 70}, {})
        Traceback (most recent call last):
        cloudml.errors.DeploymentError: traffic must sum to 100 on Azure ML, got 70 ({'blue': 70})
    """
    hint = "this is a cloudml bug if the rollout controller sent it; `cloudml rollback ENDPOINT` restores blue"
    for kind, split in (("traffic", weights), ("mirror traffic", mirror)):
        bad = {k: v for k, v in split.items() if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 100}
        if bad:
            raise DeploymentError(f"{kind} shares are whole percentages from 0 to 100, got {bad}", hint=hint)
    live = nonzero(weights)
    if live and sum(live.values()) != 100:
        raise DeploymentError(f"traffic must sum to 100 on Azure ML, got {sum(live.values())} ({weights})", hint=hint)
    mirrored = nonzero(mirror)
    if len(mirrored) > 1:
        raise DeploymentError(f"Azure ML mirrors traffic to one deployment only, got {sorted(mirrored)}", hint=hint)
    if sum(mirrored.values()) > 50:
        raise DeploymentError(f"Azure ML mirrors at most 50% of requests; asked for {sum(mirrored.values())}% "
                              f"({mirrored})", hint="set strategy.shadow.percent to 50 or less")
    both = sorted(set(mirrored) & set(live))
    if both:
        raise DeploymentError(f"deployment {both[0]} cannot take live and mirrored traffic at once on Azure ML",
                              hint=hint)


def deployment_name(group: str, version: int) -> str:
    """An Azure deployment name for a model version: 3-32 letters, digits and '-', starting with a letter.

    Example:
        >>> deployment_name("churn", 3)
        'churn-v3'
        >>> len(deployment_name("a-very-long-model-group-name-for-churn-prediction", 12))
        32
    """
    slug = re.sub(r"[^a-z0-9-]", "-", group.lower()).strip("-") or "model"
    if not slug[0].isalpha():
        slug = f"m-{slug}"
    suffix = f"-v{version}"
    name = f"{slug}{suffix}"
    if len(name) <= 32:
        return name
    digest = hashlib.sha256(group.encode()).hexdigest()[:6]
    return f"{slug[: 32 - len(suffix) - 7].rstrip('-')}-{digest}{suffix}"


def _state(value: Any) -> str:
    return str(getattr(value, "value", value) or "").lower()


class AzureMLEndpoints:
    """The TrafficBackend over ``MLClient.online_endpoints`` / ``online_deployments`` of one workspace.

    ``client`` is an :class:`~cloudml.adapters.azureml.client.AzureMLClient`; ``metrics`` an
    :class:`~cloudml.adapters.azureml.monitoring.AzureMonitorMetrics` (None: alarms see no data);
    ``poll`` and ``traffic_timeout`` bound the re-reads after a traffic change.

    Example:
        >>> from cloudml.rollout import RolloutController, FileStateStore
        >>> backend = AzureMLEndpoints(client, metrics)  # doctest: +SKIP
        >>> RolloutController(backend, FileStateStore(root)).deploy(d, model_name="churn-v2",
        ...     model={"group": "churn", "version": 2, "type": "mlflow_model"}).outcome.value  # doctest: +SKIP
        'succeeded'
    """

    def __init__(self, client: Any, metrics: Any = None, *, poll: float = 1.0, traffic_timeout: float = 120.0,
                 options: dict[str, Any] | None = None, state_root: Any = None) -> None:
        self.client = client
        self.state_root = state_root
        self.metrics = metrics
        self.poll = poll
        self.traffic_timeout = traffic_timeout
        self.options = options or {}
        self._write = threading.Lock()  # a traffic PUT replaces the whole endpoint: one writer at a time

    # -- endpoint ------------------------------------------------------------------------------------------
    def get_endpoint(self, endpoint: str) -> Any:
        """The ``ManagedOnlineEndpoint`` (NotFoundError when there is none).

        Example:
            >>> backend.get_endpoint("churn").traffic  # doctest: +SKIP
            {'churn-v1': 100}
        """
        return self.client.call("online_endpoints.get", lambda ml: ml.online_endpoints.get(endpoint))

    def ensure_endpoint(self, endpoint: str) -> Any:
        """The endpoint, created first (key auth, no traffic) when it does not exist.

        Example:
            >>> backend.ensure_endpoint("churn").name  # doctest: +SKIP
            'churn'
        """
        try:
            return self.get_endpoint(endpoint)
        except NotFoundError:
            from azure.ai.ml.entities import ManagedOnlineEndpoint

            ep = ManagedOnlineEndpoint(name=endpoint, auth_mode="key", tags={"cloudml.managed": "true"},
                                       description="managed by cloudml's rollout controller")
            return self.client.call("online_endpoints.begin_create_or_update",
                                    lambda ml: ml.online_endpoints.begin_create_or_update(ep).result())

    # -- TrafficBackend --------------------------------------------------------------------------------------
    def create_deployment(self, endpoint: str, name: str, deployment: Any, model: dict[str, Any]) -> None:
        """Create the endpoint if needed, then the deployment; returns once its provisioning succeeded.

        Example:
            >>> backend.create_deployment("churn", "churn-v2", d, {"group": "churn", "version": 2,
            ...                           "type": "mlflow_model"})  # doctest: +SKIP
        """
        spec = self.deployment_entity(endpoint, name, deployment, model)  # refused before any request
        self.ensure_endpoint(endpoint)
        try:
            self.client.call("online_deployments.begin_create_or_update",
                             lambda ml: ml.online_deployments.begin_create_or_update(spec).result())
        except BackendError as e:
            if e.retryable:  # throttled or 5xx even after azure-core's retries: the rollout can be resumed
                raise
            raise DeploymentError(f"deployment {name} of endpoint {endpoint} failed: {e}" + self._logs(endpoint, name),
                                  hint=f"az ml online-deployment get-logs -e {endpoint} -n {name}") from e
        if not self.is_ready(endpoint, name):
            raise DeploymentError(f"deployment {name} of endpoint {endpoint} did not provision"
                                  + self._logs(endpoint, name),
                                  hint=f"az ml online-deployment get-logs -e {endpoint} -n {name}")

    def _logs(self, endpoint: str, name: str) -> str:
        try:
            text = self.client.call("online_deployments.get_logs",
                                    lambda ml: ml.online_deployments.get_logs(name, endpoint, lines=20))
        except Exception:  # logs are a courtesy: never hide the real error behind them
            return ""
        lines = [ln for ln in str(text or "").splitlines() if ln.strip()]
        return f"; last log line: {lines[-1]}" if lines else ""

    def deployment_entity(self, endpoint: str, name: str, deployment: Any, model: dict[str, Any]) -> Any:
        """The ``ManagedOnlineDeployment`` for a model version (no request is sent).

        MLflow models deploy without code. Other models need an environment (``backend_options.azureml
        .environment``, or ``serving.image``) and a scoring script (``code`` + ``scoring_script``).
        With ``capture`` enabled the deployment carries a data collector (payload logging of requests and
        responses, see :mod:`.capture`); a destination Azure cannot write to is refused here.

        Example:
            >>> backend.deployment_entity("churn", "churn-v2", d, {"group": "churn", "version": 2,
            ...                           "type": "mlflow_model"}).instance_type  # doctest: +SKIP
            'Standard_DS3_v2'
        """
        from azure.ai.ml.entities import CodeConfiguration, Environment, ManagedOnlineDeployment

        from cloudml.adapters.azureml.capture import data_collector

        opts = {**self.options, **(deployment.backend_options.get("azureml") or {})}
        instances = deployment.instances
        kwargs: dict[str, Any] = {
            "name": name, "endpoint_name": endpoint, "model": f"azureml:{model['group']}:{model['version']}",
            "instance_type": instances.instance_type.get("azureml") or INSTANCE_TYPES[instances.type],
            "instance_count": instances.count, "environment_variables": dict(deployment.serving.env) or None,
            "tags": {"cloudml.model": f"{model['group']}:{model['version']}"},
        }
        if model.get("type") != "mlflow_model":
            environment = opts.get("environment") or deployment.serving.image
            if not environment or not opts.get("scoring_script") or not opts.get("code"):
                raise BackendValidationError(
                    f"model {model['group']} v{model['version']} is a {model.get('type') or 'custom_model'}: Azure ML "
                    "needs an environment and a scoring script to serve it", backend="azureml",
                    hint="set backend_options.azureml.environment (or serving.image), .code and .scoring_script, "
                    "or register the model with type mlflow_model")
            kwargs["environment"] = environment if str(environment).startswith("azureml:") else \
                Environment(image=environment)
            kwargs["code_configuration"] = CodeConfiguration(code=opts["code"], scoring_script=opts["scoring_script"])
        collector = data_collector(deployment, name)  # a new one per entity: azure-ai-ml consumes it when sending
        if collector is not None:
            kwargs["data_collector"] = collector
        return ManagedOnlineDeployment(**kwargs)

    def is_ready(self, endpoint: str, name: str) -> bool:
        """True once the deployment's provisioning succeeded (False while creating, failed or missing).

        Example:
            >>> backend.is_ready("churn", "churn-v2")  # doctest: +SKIP
            True
        """
        try:
            d = self.client.call("online_deployments.get", lambda ml: ml.online_deployments.get(name, endpoint))
        except NotFoundError:
            return False
        return _state(d.provisioning_state) == _READY

    def set_traffic(self, endpoint: str, weights: dict[str, int], mirror: dict[str, int]) -> None:
        """Check the split, PUT the whole endpoint, wait for the operation and for the split to show.

        Example:
            >>> backend.set_traffic("churn", {"churn-v1": 90, "churn-v2": 10}, {})  # doctest: +SKIP
        """
        check_traffic(weights, mirror)
        with self._write:
            ep = self.get_endpoint(endpoint)
            ep.traffic = {k: int(v) for k, v in weights.items()}
            ep.mirror_traffic = {k: int(v) for k, v in mirror.items()}
            self.client.call("online_endpoints.begin_create_or_update",
                             lambda ml: ml.online_endpoints.begin_create_or_update(ep).result())
            want = (nonzero(weights), nonzero(mirror))
            deadline = time.monotonic() + self.traffic_timeout
            while True:
                seen = self.get_endpoint(endpoint)
                got = (nonzero(seen.traffic), nonzero(seen.mirror_traffic))
                if got == want:
                    return
                if time.monotonic() >= deadline:
                    raise DeploymentError(f"endpoint {endpoint} still shows traffic {got[0]} and mirror {got[1]} "
                                          f"{self.traffic_timeout:g}s after asking for {want[0]} and {want[1]}",
                                          hint=f"az ml online-endpoint show -n {endpoint}; then "
                                          f"`cloudml rollout resume {endpoint}`")
                time.sleep(self.poll)

    def alarm_datapoints(self, endpoint: str, name: str, alarm: Any) -> list[float | None]:
        """The alarm metric of one deployment per complete period, oldest first (no metrics reader: no data).

        Example:
            >>> backend.alarm_datapoints("churn", "churn-v2", alarm)  # doctest: +SKIP
            [0.001, 0.0, 0.002]
        """
        if self.metrics is None:
            return [None] * alarm.evaluation_periods
        return list(self.metrics.datapoints(endpoint, name, alarm))

    def existing_alarm_state(self, endpoint: str, name: str, alarm: Any) -> Any:
        """An ``existing`` alarm (an Azure Monitor metric alert) for one deployment, as an AlarmStatus.

        ``alarm.existing["azureml"]`` names the rule: ``<rule>`` in the workspace's resource group or
        ``<resource group>/<rule>``. Ready for the controller; today the core controller skips
        ``existing`` alarms, so ``deploy.existing_alarm`` stays a declared gap.

        Example:
            >>> backend.existing_alarm_state("churn", "churn-v2", Alarm(name="a", existing={"azureml": "5xx"}))  # doctest: +SKIP
            AlarmStatus(name='5xx', state='OK', ...)
        """
        ref = str(alarm.existing.get("azureml") or "")
        if not ref or self.metrics is None:
            raise DeploymentError(f"alarm {alarm.name} names no Azure metric alert rule (existing.azureml)",
                                  hint="existing: {azureml: <rule name> or <resource group>/<rule name>}")
        group, _, rule = ref.rpartition("/")
        return self.metrics.alert_state(group or str(self.client.settings.resource_group), rule, name)

    def delete_deployment(self, endpoint: str, name: str) -> None:
        """Delete a deployment that takes no traffic and wait for it to go; NotFoundError when it is gone.

        Example:
            >>> backend.delete_deployment("churn", "churn-v1")  # doctest: +SKIP
        """
        self.client.call("online_deployments.begin_delete",
                         lambda ml: ml.online_deployments.begin_delete(name, endpoint).result())

    # -- reading -------------------------------------------------------------------------------------------
    def periods(self, endpoint: str, name: str, period: int, count: int) -> list[dict[str, Any]]:
        """Per-period requests and error rate of a deployment from Azure Monitor ([] without a metrics reader).

        Example:
            >>> backend.periods("churn", "churn-v2", 60, 5)[-1]["error_rate"]  # doctest: +SKIP
            0.0
        """
        return [] if self.metrics is None else list(self.metrics.periods(endpoint, name, period, count))

    def delete(self, endpoint: str) -> None:
        """Delete the endpoint with its deployments (waited for) and forget its rollout state.

        Example:
            >>> backend.delete("churn")  # doctest: +SKIP
        """
        import shutil

        self.client.call("online_endpoints.begin_delete",
                         lambda ml: ml.online_endpoints.begin_delete(name=endpoint).result())
        if self.state_root is not None:
            shutil.rmtree(self.state_root / "endpoints" / endpoint, ignore_errors=True)

    def list(self) -> list[str]:
        """Endpoints of the workspace that cloudml manages (tag ``cloudml.managed``).

        Example:
            >>> backend.list()  # doctest: +SKIP
            ['churn']
        """
        found = self.client.call("online_endpoints.list", lambda ml: list(ml.online_endpoints.list()))
        return sorted(str(e.name) for e in found if (e.tags or {}).get("cloudml.managed"))

    def status(self, endpoint: str) -> dict[str, Any]:
        """Deployments (provisioning state, model, instances), traffic and mirror, and the scoring URI.

        The shape is the local backend's (``traffic.weights``, ``traffic.mirror``, ``deployments.<name>.ready``),
        which the CLI shows.

        Example:
            >>> backend.status("churn")["traffic"]  # doctest: +SKIP
            {'weights': {'churn-v2': 100}, 'mirror': {}}
        """
        ep = self.get_endpoint(endpoint)
        found = self.client.call("online_deployments.list", lambda ml: list(ml.online_deployments.list(endpoint)))
        deployments = {
            d.name: {"state": _state(d.provisioning_state), "ready": _state(d.provisioning_state) == _READY,
                     "model": (d.tags or {}).get("cloudml.model") or str(d.model), "instance_type": d.instance_type,
                     "instance_count": d.instance_count}
            for d in found}
        return {"endpoint": endpoint, "state": _state(ep.provisioning_state), "deployments": deployments,
                "traffic": {"weights": nonzero(ep.traffic), "mirror": nonzero(ep.mirror_traffic)},
                "url": ep.scoring_uri}


class AzureMLRollouts:
    """The adapter's rollouts: the controller over :class:`AzureMLEndpoints`, its state, lock and requests.

    State lives in ``<state_dir>/azureml/<subscription>/<resource group>/<workspace>`` (a
    :class:`~cloudml.rollout.FileStateStore`), so a controller killed at any point can be resumed from
    another process, and ``promote``/``rollback`` from another process reach the controller driving it.

    Example:
        >>> rollouts = AzureMLRollouts(adapter)  # doctest: +SKIP
        >>> rollouts.deploy(deployment).outcome.value  # doctest: +SKIP
        'succeeded'
    """

    def __init__(self, adapter: Any) -> None:
        self.adapter = adapter

    @property
    def root(self) -> Any:
        """The state folder of this workspace's endpoints.

        Example:
            >>> rollouts.root  # doctest: +SKIP
            PosixPath('.cloudml/azureml/0000.../rg/ws')
        """
        from pathlib import Path

        s = self.adapter.settings
        return Path(s.state_dir) / "azureml" / str(s.subscription_id) / str(s.resource_group) / str(s.workspace)

    def store(self) -> Any:
        """The rollout state store (files under :attr:`root`).

        Example:
            >>> rollouts.store().load("churn")["status"]  # doctest: +SKIP
            'succeeded'
        """
        from cloudml.rollout import FileStateStore

        return FileStateStore(self.root)

    def backend(self, poll: float = 5.0) -> AzureMLEndpoints:
        """The TrafficBackend (Azure ML client plus Azure Monitor metrics).

        Example:
            >>> rollouts.backend().status("churn")["traffic"]  # doctest: +SKIP
            {'churn-v2': 100}
        """
        return AzureMLEndpoints(self.adapter.client(), self.adapter.metrics(), poll=poll, state_root=self.root)

    def controller(self, stop: threading.Event | None = None, poll: float = 5.0) -> Any:
        """A rollout controller over this workspace's endpoints.

        Example:
            >>> rollouts.controller().resume("churn").outcome.value  # doctest: +SKIP
            'succeeded'
        """
        from cloudml.rollout import RolloutController

        return RolloutController(self.backend(poll), self.store(), poll=poll, stop=stop)

    def deploy(self, deployment: Any, **options: Any) -> Any:
        """Resolve the model, then drive the rollout; a deployment that fails to provision ends ``failed``.

        Example:
            >>> rollouts.deploy(deployment, poll=1.0).outcome.value  # doctest: +SKIP
            'succeeded'
        """
        from cloudml.adapters.azureml.registry import resolve_model

        self.adapter.compile_deployment(deployment)  # capability and Azure-rule checks, before any request
        client = self.adapter.client()
        model = resolve_model(client, deployment.model.group, deployment.model.version)
        azure_model = client.call("models.get", lambda ml: ml.models.get(model.group, str(model.version)))
        info = {"group": model.group, "version": model.version, "uri": model.uri,
                "type": str(getattr(azure_model, "type", None) or "custom_model")}
        name = deployment_name(model.group, model.version)
        AzureMLEndpoints(client).deployment_entity(deployment.endpoint, name, deployment, info)  # refused early
        with self.lock(deployment.endpoint):
            ctl = self.controller(options.get("stop"), options.get("poll", 5.0))
            before = (ctl.store.load(deployment.endpoint) or {}).get("status")
            try:
                return ctl.deploy(deployment, model_name=name, model=info)
            except (DeploymentError, BackendError) as e:
                if before in ("in_progress", "rolling_back"):  # refused by the controller: not this rollout's failure
                    raise
                return self._fail_unstarted(ctl, deployment.endpoint, e)

    def _fail_unstarted(self, ctl: Any, endpoint: str, error: Exception) -> Any:
        """Green failed before taking any traffic: end the rollout ``failed`` (blue keeps 100%), or re-raise."""
        state = ctl.store.load(endpoint) or {}
        retryable = isinstance(error, BackendError) and error.retryable
        untouched = state.get("status") == "in_progress" and not state.get("weights", {}).get(state.get("green"), 0) \
            and not state.get("mirror")
        if retryable or not untouched:
            if isinstance(error, DeploymentError | BackendError) and not error.hint:
                error.hint = f"cloudml rollout resume {endpoint}  (or cloudml rollback {endpoint})"
            raise error
        # the controller has no public "fail" transition: its rollback with failed=True is the one that
        # records a failed outcome and removes green (blue, if any, keeps all the traffic)
        result = ctl._rollback(state, f"deployment {state.get('green')} failed: {error}", None, None, failed=True)
        if not state.get("blue"):  # a first deployment: nothing to roll back to, and nothing is live either
            with contextlib.suppress(NotFoundError):
                ctl.backend.delete_deployment(endpoint, state["green"])
            saved = ctl.store.load(endpoint) or state
            saved.update(live=None, removed=[*saved.get("removed", []), state["green"]])
            ctl.store.save(endpoint, saved)
        return result

    def resume(self, endpoint: str, **options: Any) -> Any:
        """Resume an interrupted rollout (it finishes or rolls back).

        Example:
            >>> rollouts.resume("churn").outcome.value  # doctest: +SKIP
            'rolled_back'
        """
        with self.lock(endpoint):
            return self.controller(options.get("stop"), options.get("poll", 5.0)).resume(endpoint)

    def manual(self, endpoint: str, action: str, timeout: float | None = None) -> Any:
        """``promote`` or ``rollback`` now; when another process drives the rollout, ask it and wait.

        Example:
            >>> rollouts.manual("churn", "rollback").outcome.value  # doctest: +SKIP
            'rolled_back'
        """
        from cloudml.rollout import MANUAL_TIMEOUT, manual_action

        return manual_action(lambda: self.controller(poll=1.0), lambda: self.lock(endpoint), endpoint, action,
                             timeout=MANUAL_TIMEOUT if timeout is None else timeout)

    def status(self, endpoint: str) -> dict[str, Any]:
        """What Azure ML shows (deployments, traffic, mirror, URL) plus the rollout state.

        Example:
            >>> rollouts.status("churn")["rollout"]["status"]  # doctest: +SKIP
            'succeeded'
        """
        out = self.backend().status(endpoint)
        rollout = self.store().load(endpoint) or {}
        out["rollout"] = {k: rollout.get(k) for k in ("status", "live", "blue", "green", "outcome")}
        return out

    def invoke(self, endpoint: str, instances: list[Any], deployment: str | None = None) -> dict[str, Any]:
        """POST ``{"instances": [...]}`` to the scoring URI with the endpoint key (``deployment`` pins one).

        The request is sent here rather than through ``online_endpoints.invoke``: azure-ai-ml 1.35 writes
        the ``azureml-model-deployment`` header into a shared class-level dict, so one pinned call pins
        every later call of the process.

        Example:
            >>> rollouts.invoke("churn", [[1.0, 2.0]])  # doctest: +SKIP
            {'predictions': [0]}
        """
        import json

        from azure.core import PipelineClient
        from azure.core.exceptions import AzureError
        from azure.core.rest import HttpRequest

        client = self.adapter.client()
        ep = client.call("online_endpoints.get", lambda ml: ml.online_endpoints.get(endpoint))
        keys = client.call("online_endpoints.get_keys", lambda ml: ml.online_endpoints.get_keys(endpoint))
        key = getattr(keys, "primary_key", None) or getattr(keys, "access_token", None) or ""
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
        if deployment:
            headers["azureml-model-deployment"] = deployment
        request = HttpRequest("POST", ep.scoring_uri, json={"instances": instances}, headers=headers)
        try:
            pipeline: Any = PipelineClient(base_url=ep.scoring_uri)
            with pipeline:
                response = pipeline.send_request(request)
        except AzureError as e:
            raise DeploymentError(f"endpoint {endpoint} could not be reached: {e}",
                                  hint=f"az ml online-endpoint show -n {endpoint}") from e
        if response.status_code == 404:
            raise NotFoundError(f"endpoint {endpoint}: {response.text()[:300]}", backend="azureml",
                                hint=f"cloudml endpoints status {endpoint} --backend azureml")
        if response.status_code >= 400:
            raise DeploymentError(f"endpoint {endpoint} answered {response.status_code}: {response.text()[:300]}",
                                  hint=f"az ml online-deployment get-logs -e {endpoint} -n DEPLOYMENT")
        return dict(json.loads(response.text() or "{}"))

    def lock(self, endpoint: str) -> Any:
        """An exclusive, non-blocking lock on the endpoint's state (one controller at a time per machine).

        Example:
            >>> with rollouts.lock("churn"):  # doctest: +SKIP
            ...     pass
        """
        import contextlib
        import fcntl

        folder = self.root / "endpoints" / endpoint

        @contextlib.contextmanager
        def held() -> Any:
            folder.mkdir(parents=True, exist_ok=True)
            with open(folder / ".lock", "a+") as fh:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise DeploymentError(f"another controller is working on endpoint {endpoint}",
                                          hint=f"wait for it, or stop it and run `cloudml rollout resume {endpoint}`"
                                          ) from None
                yield

        return held()
