"""Vertex AI endpoints as a :class:`cloudml.rollout.TrafficBackend` for the core rollout controller.

A cloudml endpoint is one Vertex ``Endpoint`` (display name = the endpoint name, label
``cloudml_endpoint``), created on first use. Each controller deployment (``churn-v3``) is one
``DeployedModel`` with that display name; Vertex gives it a numeric id. The mapping name -> id (and the
endpoint's resource name) is saved in ``<state root>/endpoints/<endpoint>/vertex.json`` next to the
controller's ``rollout.json``, so a resumed controller finds what a killed one created; when the file
lags behind (killed between the deploy and the save), the deployed model is found by display name.

Traffic goes through ``Endpoint.update(traffic_split=...)``; after every write the endpoint is read
again and the split compared, so a change the API did not apply never goes unnoticed. A deployment is
undeployed only when it takes no traffic (the SDK would otherwise silently rescale the others).

Example:
    >>> machine_for(Instances(type="gpu-small"))
    ('n1-standard-8', 'NVIDIA_TESLA_T4', 1)
    >>> to_split({"churn-v1": 90, "churn-v2": 10, "gone": 0}, {"churn-v1": "11", "churn-v2": "22", "gone": "33"})
    {'11': 90, '22': 10}
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cloudml.errors import (
    BackendError,
    BackendValidationError,
    ConflictError,
    DeploymentError,
    NotFoundError,
    UnsupportedFeatureError,
)
from cloudml.spec.deployment import Alarm, Deployment, Instances

__all__ = ["ENDPOINT_LABEL", "MACHINES", "VertexEndpoints", "capture_config", "deployed_model_for", "machine_for",
           "to_split"]

ENDPOINT_LABEL = "cloudml_endpoint"
# neutral size -> (machine type, accelerator type, accelerator count)
MACHINES: dict[str, tuple[str, str | None, int]] = {
    "cpu-small": ("n1-standard-2", None, 0),
    "cpu-medium": ("n1-standard-4", None, 0),
    "cpu-large": ("n1-standard-8", None, 0),
    "gpu-small": ("n1-standard-8", "NVIDIA_TESLA_T4", 1),
    "gpu-large": ("a2-highgpu-1g", "NVIDIA_TESLA_A100", 1),
}
_HINTS: dict[type[BackendError], str] = {
    NotFoundError: "the endpoint or deployed model is gone: `cloudml endpoints status {endpoint} --backend vertex`; "
                   "check vertex.project and vertex.location",
    BackendValidationError: "Vertex AI refused the endpoint change (traffic must be whole percentages summing to "
                            "100 over deployed models); `cloudml rollout history {endpoint}` shows what was asked",
    ConflictError: "the endpoint is not in a state that allows this (a deployed model still takes traffic, or "
                   "another change is running); `cloudml endpoints status {endpoint} --backend vertex`, then "
                   "`cloudml rollout resume {endpoint}` or `cloudml rollback {endpoint}`",
}


def machine_for(instances: Instances) -> tuple[str, str | None, int]:
    """Machine type, accelerator and accelerator count for the neutral instance size (or its override).

    Example:
        >>> machine_for(Instances(type="cpu-small", instance_type={"vertex": "n1-highmem-4"}))
        ('n1-highmem-4', None, 0)
    """
    override = instances.instance_type.get("vertex")
    if override:
        return override, None, 0
    return MACHINES[instances.type]


def deployed_model_for(name: str, deployment: Deployment, model_resource: str) -> Any:
    """The ``DeployedModel`` request for a deployment: machine, accelerator, replicas and autoscaling targets.

    Example:
        >>> d = Deployment(endpoint="churn", model={"group": "churn"},
        ...                instances={"count": 2, "autoscale": {"min": 1, "max": 4, "target_cpu_percent": 60}})
        >>> dm = deployed_model_for("churn-v2", d, "projects/p/locations/l/models/7@2")
        >>> dm.dedicated_resources.min_replica_count, dm.dedicated_resources.max_replica_count
        (1, 4)
        >>> dm.dedicated_resources.autoscaling_metric_specs[0].target
        60
    """
    from google.cloud.aiplatform_v1 import types

    machine, accelerator, count = machine_for(deployment.instances)
    scale = deployment.instances.autoscale
    if scale is not None and scale.min < 1:
        raise UnsupportedFeatureError("vertex", None, "deploy.autoscale",
                                      "Vertex AI dedicated endpoints keep at least one replica (autoscale.min >= 1)")
    spec = types.MachineSpec(machine_type=machine)
    if accelerator:
        spec.accelerator_type = getattr(types.AcceleratorType, accelerator)
        spec.accelerator_count = count
    replicas = deployment.instances.count
    resources = types.DedicatedResources(machine_spec=spec, min_replica_count=scale.min if scale else replicas,
                                         max_replica_count=scale.max if scale else replicas)
    metric = "aiplatform.googleapis.com/prediction/online/"
    if scale is not None and scale.target_cpu_percent:
        resources.autoscaling_metric_specs.append(types.AutoscalingMetricSpec(
            metric_name=metric + "cpu/utilization", target=int(scale.target_cpu_percent)))
    if scale is not None and scale.target_invocations_per_instance:
        resources.autoscaling_metric_specs.append(types.AutoscalingMetricSpec(
            metric_name=metric + "request_count", target=scale.target_invocations_per_instance))
    return types.DeployedModel(model=model_resource, display_name=name, dedicated_resources=resources)


def capture_config(deployment: Deployment, project: str) -> dict[str, Any] | None:
    """The endpoint's ``predict_request_response_logging_config`` for ``deployment.capture`` (None: leave it).

    ``destination`` must be ``bq://project[.dataset[.table]]``; without one, the project's (Vertex creates
    the dataset and the ``request_response_logging`` table).

    Example:
        >>> d = Deployment(endpoint="churn", model={"group": "churn"}, capture={"percent": 25})
        >>> capture_config(d, "my-project")
        {'enabled': True, 'sampling_rate': 0.25, 'bigquery_destination': {'output_uri': 'bq://my-project'}}
        >>> capture_config(Deployment(endpoint="churn", model={"group": "churn"},
        ...                           capture={"destination": "gs://b/c"}), "p")
        Traceback (most recent call last):
        ...
        cloudml.errors.DeploymentError: Vertex AI captures requests to BigQuery: capture.destination must be bq://project[.dataset[.table]], not 'gs://b/c'
    """
    capture = deployment.capture
    if capture is None:
        return None
    if not capture.enabled:
        return {"enabled": False, "sampling_rate": 0.0, "bigquery_destination": {"output_uri": ""}}
    uri = capture.destination or f"bq://{project}"
    if not uri.startswith("bq://"):
        raise DeploymentError("Vertex AI captures requests to BigQuery: capture.destination must be "
                              f"bq://project[.dataset[.table]], not {uri!r}",
                              hint="set capture.destination to a bq:// table, or leave it out to let Vertex create one")
    return {"enabled": True, "sampling_rate": capture.percent / 100, "bigquery_destination": {"output_uri": uri}}


def to_split(weights: dict[str, int], ids: dict[str, str]) -> dict[str, int]:
    """Controller weights (deployment name -> percent) as a Vertex traffic split (deployed id -> percent).

    Zero shares are left out (a deployed model missing from the split takes no traffic).

    Example:
        >>> to_split({"churn-v1": 90, "churn-v2": 10, "churn-v0": 0}, {"churn-v1": "111", "churn-v2": "222"})
        {'111': 90, '222': 10}
    """
    missing = sorted(n for n, w in weights.items() if w > 0 and n not in ids)
    if missing:
        raise DeploymentError(f"no deployed model is known for {', '.join(missing)}",
                              hint="cloudml rollout resume ENDPOINT re-reads the endpoint")
    return {ids[n]: int(w) for n, w in weights.items() if w > 0}


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class VertexEndpoints:
    """Endpoints, deployed models and traffic splits through ``aiplatform.Endpoint``; a TrafficBackend.

    ``client`` is the adapter's :class:`~cloudml.adapters.vertex.client.VertexClient` (its ``call``
    retries throttling and unavailability and translates errors); ``root`` is the state folder;
    ``metrics`` reads alarm datapoints (:class:`~cloudml.adapters.vertex.monitoring.VertexMetrics`).

    Example:
        >>> import tempfile, pathlib
        >>> eps = VertexEndpoints(None, pathlib.Path(tempfile.mkdtemp()))
        >>> eps.mapping("churn")
        {'endpoint': None, 'deployed': {}}
    """

    def __init__(self, client: Any, root: Path, metrics: Any = None) -> None:
        self.client = client
        self.root = root
        self.metrics = metrics

    # -- plumbing -----------------------------------------------------------------------------------
    def _call(self, action: str, fn: Callable[[], Any], endpoint: str = "ENDPOINT") -> Any:
        from cloudml.adapters.vertex.client import _LOCK

        def locked() -> Any:
            with _LOCK:  # aiplatform.init is process-global: init and the call happen together
                self.client._init(self.client._sdk())
                return fn()

        try:
            return self.client.call(action, locked)
        except BackendError as e:
            hint = _HINTS.get(type(e))
            e.hint = hint.format(endpoint=endpoint) if hint else e.hint
            raise

    def _path(self, endpoint: str) -> Path:
        return self.root / "endpoints" / endpoint / "vertex.json"

    def mapping(self, endpoint: str) -> dict[str, Any]:
        """The saved ``{"endpoint": resource name, "deployed": {name: {"id", "model"}}}`` of an endpoint.

        Example: see :class:`VertexEndpoints`.
        """
        try:
            data = json.loads(self._path(endpoint).read_text())
        except FileNotFoundError:
            return {"endpoint": None, "deployed": {}}
        return {"endpoint": data.get("endpoint"), "deployed": dict(data.get("deployed", {}))}

    def _save(self, endpoint: str, data: dict[str, Any]) -> None:
        _write_json(self._path(endpoint), data)

    def _sdk(self) -> Any:
        return self.client._sdk()

    def resource(self, endpoint: str, *, create: bool = False) -> Any:
        """The ``aiplatform.Endpoint`` of a cloudml endpoint (created when ``create`` and missing).

        Example: ``eps.resource("churn", create=True).display_name`` -> ``'churn'``.
        """
        aiplatform = self._sdk()
        data = self.mapping(endpoint)
        if data["endpoint"]:
            try:
                return self._call(f"read endpoint {endpoint}", lambda: aiplatform.Endpoint(data["endpoint"]), endpoint)
            except NotFoundError:
                if not create:
                    raise
                data = {"endpoint": None, "deployed": {}}
        def find_or_create() -> Any:  # retried as a whole: a create whose answer was lost is found, not repeated
            found = aiplatform.Endpoint.list(filter=f'labels.{ENDPOINT_LABEL}="{endpoint}"')
            if found or not create:
                return found[0] if found else None
            return aiplatform.Endpoint.create(display_name=endpoint, labels={ENDPOINT_LABEL: endpoint}, sync=True)

        ep = self._call(f"find or create endpoint {endpoint}" if create else f"find endpoint {endpoint}",
                        find_or_create, endpoint)
        if ep is None:
            raise NotFoundError(f"Vertex AI has no endpoint {endpoint!r}", backend="vertex",
                                hint="deploy to it first: cloudml deploy DEPLOYMENT.yaml --backend vertex")
        data["endpoint"] = str(ep.resource_name)
        self._save(endpoint, data)
        return ep

    def _gca(self, endpoint: str) -> Any:
        """The endpoint resource as Vertex has it now (fetched again)."""
        aiplatform = self._sdk()
        name = self.mapping(endpoint)["endpoint"] or str(self.resource(endpoint).resource_name)
        return self._call(f"read endpoint {endpoint}", lambda: aiplatform.Endpoint(name).gca_resource, endpoint)

    def _ids(self, endpoint: str, gca: Any = None) -> dict[str, str]:
        """Deployment name -> deployed model id, from the saved mapping, completed from the endpoint itself."""
        data = self.mapping(endpoint)
        ids = {n: str(v["id"]) for n, v in data["deployed"].items() if v.get("id")}
        gca = gca if gca is not None else self._gca(endpoint)
        live = {str(d.id): str(d.display_name) for d in gca.deployed_models}
        ids = {n: i for n, i in ids.items() if i in live}
        for deployed_id, name in live.items():
            ids.setdefault(name, deployed_id)
        return ids

    # -- the TrafficBackend -------------------------------------------------------------------------
    def create_deployment(self, endpoint: str, name: str, deployment: Deployment, model: dict[str, Any]) -> None:
        """Start deploying the model version ``model["resource"]`` as ``name``, taking no traffic; do not wait.

        The DeployModel operation's name is saved; :meth:`is_ready` follows it (Vertex deploys take
        minutes, and the SDK's own wait gives up after 900 s). Idempotent: a deployed model already called
        ``name``, or a deploy of it already in flight (a controller killed mid-deploy), is kept.

        Example: ``eps.create_deployment("churn", "churn-v2", deployment, {"resource": "projects/.../models/7@2"})``.
        """
        ep_name = str(self.resource(endpoint, create=True).resource_name)
        self.set_capture(endpoint, deployment)
        if self.is_ready(endpoint, name):
            return
        entry = self.mapping(endpoint)["deployed"].get(name) or {}
        if entry.get("operation") and not entry.get("error"):
            return  # a deploy of it is already running
        aiplatform = self._sdk()
        deployed_model = deployed_model_for(name, deployment, str(model["resource"]))

        def deploy() -> str | None:
            ep = aiplatform.Endpoint(ep_name)
            if any(str(d.display_name) == name for d in ep.gca_resource.deployed_models):
                return None  # a retried call whose first attempt landed
            current = {str(k): int(v) for k, v in ep.gca_resource.traffic_split.items()}
            # no traffic for the new model: "0" names it in a split that keeps the current shares. On an endpoint
            # without traffic (a first deployment, which goes live anyway) it gets 100, as the SDK itself insists
            split = {**current, "0": 0} if current else {"0": 100}
            op = ep.api_client.deploy_model(endpoint=ep_name, deployed_model=deployed_model, traffic_split=split)
            return str(op.operation.name)

        try:
            operation = self._call(f"deploy {name} on {endpoint}", deploy, endpoint)
        except ConflictError as e:  # a retried request whose first attempt started the deploy
            if "already exists" not in str(e):
                raise
            operation = None
        data = self.mapping(endpoint)
        data["deployed"][name] = {"id": None, "operation": operation, "model": model.get("resource")}
        self._save(endpoint, data)

    def set_capture(self, endpoint: str, deployment: Deployment) -> None:
        """Apply ``deployment.capture`` as the endpoint's request-response logging to BigQuery (when it differs).

        Vertex logs per endpoint, not per deployed model: blue's requests are captured too while both
        serve. Without ``destination`` Vertex creates the dataset ``logging_<endpoint>_<id>`` in the project.

        Example: ``eps.set_capture("churn", deployment)``.
        """
        wanted = capture_config(deployment, str(self.client.settings.project))
        if wanted is None:
            return
        from google.protobuf import field_mask_pb2

        aiplatform = self._sdk()
        ep_name = self.mapping(endpoint)["endpoint"]

        def update() -> None:
            ep = aiplatform.Endpoint(ep_name)
            current = ep.gca_resource.predict_request_response_logging_config
            if (current.enabled, round(current.sampling_rate, 6), current.bigquery_destination.output_uri) == (
                    wanted["enabled"], round(wanted["sampling_rate"], 6), wanted["bigquery_destination"]["output_uri"]):
                return
            gca = type(ep.gca_resource)(name=ep_name, predict_request_response_logging_config=wanted)
            ep.api_client.update_endpoint(endpoint=gca, update_mask=field_mask_pb2.FieldMask(
                paths=["predict_request_response_logging_config"]))

        self._call(f"set request-response logging of {endpoint}", update, endpoint)

    def is_ready(self, endpoint: str, name: str) -> bool:
        """True once ``name`` is a deployed model of the endpoint (its DeployModel operation has finished).

        A deploy operation that failed is recorded (``endpoint_status`` shows its error) and raises
        DeploymentError with it, so the controller ends the rollout at once instead of at its ready timeout.

        Example: ``eps.is_ready("churn", "churn-v2")`` -> ``True``.
        """
        try:
            gca = self._gca(endpoint)
        except NotFoundError:
            return False
        live = {str(d.display_name): str(d.id) for d in gca.deployed_models}
        data = self.mapping(endpoint)
        entry = data["deployed"].get(name)
        if name in live:
            if entry is None or entry.get("id") != live[name]:
                data["deployed"][name] = {**(entry or {}), "id": live[name], "operation": None}
                self._save(endpoint, data)
            return True
        if entry and entry.get("operation") and not entry.get("error"):
            error = self._operation_error(endpoint, str(entry["operation"]))
            if error:
                entry["error"] = error
                self._save(endpoint, data)
        if entry and entry.get("error"):
            raise DeploymentError(f"Vertex AI could not deploy {name}: {entry['error']}",
                                  hint=f"cloudml endpoints show {endpoint} --backend vertex")
        return False

    def _operation_error(self, endpoint: str, operation: str) -> str | None:
        """The error of a finished operation, or None (still running, or succeeded)."""
        aiplatform = self._sdk()
        ep_name = self.mapping(endpoint)["endpoint"]
        op = self._call(f"read operation {operation}", lambda: aiplatform.Endpoint(ep_name).api_client.get_operation(
            {"name": operation}), endpoint)
        if op.done and op.error.code:
            return f"{op.error.message} (code {op.error.code})"
        return None

    def set_traffic(self, endpoint: str, weights: dict[str, int], mirror: dict[str, int]) -> None:
        """Set the endpoint's traffic split, then read it back and compare.

        Example: ``eps.set_traffic("churn", {"churn-v1": 90, "churn-v2": 10}, {})``.
        """
        if mirror:
            raise UnsupportedFeatureError("vertex", None, "deploy.shadow", "Vertex endpoints have no mirrored traffic")
        aiplatform = self._sdk()
        gca = self._gca(endpoint)
        split = to_split(weights, self._ids(endpoint, gca))
        name = self.mapping(endpoint)["endpoint"]
        self._call(f"set traffic of {endpoint} to {weights}",
                   lambda: aiplatform.Endpoint(name).update(traffic_split=split), endpoint)
        now = {str(k): int(v) for k, v in self._gca(endpoint).traffic_split.items() if int(v) > 0}
        if now != split:
            raise DeploymentError(f"Vertex AI did not apply the traffic split of {endpoint}: asked {split}, "
                                  f"reads {now}", hint=f"cloudml rollout resume {endpoint}")

    def alarm_datapoints(self, endpoint: str, name: str, alarm: Alarm) -> list[float | None]:
        """The alarm's metric for deployed model ``name``, per complete period, from Cloud Monitoring.

        Example: ``eps.alarm_datapoints("churn", "churn-v2", alarm)`` -> ``[0.0, 0.31]``.
        """
        if self.metrics is None:
            return [None] * alarm.evaluation_periods
        ids = self._ids(endpoint)
        if name not in ids:
            return [None] * alarm.evaluation_periods
        endpoint_id = str(self.mapping(endpoint)["endpoint"]).rsplit("/", 1)[-1]
        return list(self.metrics.datapoints(endpoint_id, ids[name], alarm))

    def delete_deployment(self, endpoint: str, name: str) -> None:
        """Undeploy ``name``; refuses while it takes traffic, or while its deploy is still running.

        A deploy in flight cannot be cancelled on Vertex: removing it raises ``DeploymentError`` (the
        controller's rollback stops there, and ``resume_rollout`` later finishes it), so a model never keeps
        running unnoticed after a rollback.

        Example: ``eps.delete_deployment("churn", "churn-v1")``.
        """
        gca = self._gca(endpoint)
        ids = self._ids(endpoint, gca)
        if name not in ids:
            entry = self.mapping(endpoint)["deployed"].get(name) or {}
            in_flight = bool(entry.get("operation")) and not entry.get("error") and not self.is_ready(endpoint, name)
            if in_flight and not (self.mapping(endpoint)["deployed"].get(name) or {}).get("error"):  # is_ready
                raise DeploymentError(                                                            # records failures
                    f"{name} is still being deployed on {endpoint}; it can be undeployed once the deploy ends "
                    "(a Vertex deploy cannot be cancelled)",
                    hint=f"cloudml rollout resume {endpoint} in a few minutes finishes removing it")
            if name not in self._ids(endpoint):
                data = self.mapping(endpoint)
                if name in data["deployed"] and not data["deployed"][name].get("error"):  # a failed deploy stays
                    data["deployed"].pop(name)                                            # listed with its error
                    self._save(endpoint, data)
                raise NotFoundError(f"{endpoint} has no deployed model {name}", backend="vertex")
            gca = self._gca(endpoint)
            ids = self._ids(endpoint, gca)
        deployed_id = ids[name]
        share = int(dict(gca.traffic_split).get(deployed_id, 0))
        if share > 0:
            raise DeploymentError(f"{name} still takes {share}% of {endpoint}; shift its traffic away first",
                                  hint=f"cloudml rollback {endpoint}")
        aiplatform = self._sdk()
        ep_name = self.mapping(endpoint)["endpoint"]
        self._call(f"undeploy {name} from {endpoint}", lambda: _undeploy(aiplatform.Endpoint(ep_name), deployed_id),
                   endpoint)
        data = self.mapping(endpoint)
        data["deployed"].pop(name, None)
        self._save(endpoint, data)

    # -- whole endpoints -------------------------------------------------------------------------------
    def status(self, endpoint: str) -> dict[str, Any]:
        """Deployed models (name, id, model, share) and the traffic split, as Vertex reports them now.

        The shape is the local backend's (``traffic.weights``, ``deployments.<name>.ready``), which the CLI shows.

        Example: ``eps.status("churn")["traffic"]["weights"]`` -> ``{'churn-v2': 100}``.
        """
        gca = self._gca(endpoint)
        split = {str(k): int(v) for k, v in gca.traffic_split.items()}
        deployments = {str(d.display_name): {"id": str(d.id), "model": str(d.model), "ready": True,
                                             "version": str(d.model_version_id), "traffic": split.get(str(d.id), 0),
                                             "machine_type": str(d.dedicated_resources.machine_spec.machine_type)}
                       for d in gca.deployed_models}
        for n, entry in self.mapping(endpoint)["deployed"].items():
            if n not in deployments and entry.get("operation"):
                deployments[n] = {"id": None, "model": entry.get("model"), "ready": False, "traffic": 0,
                                  "operation": entry["operation"], "error": entry.get("error")}
        weights = {n: d["traffic"] for n, d in deployments.items() if d["traffic"]}
        return {"endpoint": endpoint, "resource": str(gca.name), "deployments": deployments,
                "traffic": {"weights": weights, "mirror": {}}}

    def list(self) -> list[str]:
        """cloudml endpoints of this project and location (Vertex endpoints labelled ``cloudml_endpoint``).

        Example: ``eps.list()`` -> ``['churn']``.
        """
        aiplatform = self._sdk()
        found = self._call("list endpoints", lambda: aiplatform.Endpoint.list(filter=f"labels.{ENDPOINT_LABEL}:*"))
        return sorted(str(dict(e.labels)[ENDPOINT_LABEL]) for e in found if ENDPOINT_LABEL in dict(e.labels or {}))

    def delete(self, endpoint: str) -> None:
        """Undeploy every deployed model, delete the Vertex endpoint and forget its state.

        Example: ``eps.delete("churn")``.
        """
        import shutil

        ep = self.resource(endpoint)
        name = str(ep.resource_name)
        aiplatform = self._sdk()

        def undeploy_all_and_delete() -> None:
            target = aiplatform.Endpoint(name)
            for d in sorted(target.gca_resource.deployed_models, key=lambda d: int(
                    dict(target.gca_resource.traffic_split).get(str(d.id), 0))):
                target.undeploy(str(d.id))  # the ones without traffic first; the last one holds it all
                target = aiplatform.Endpoint(name)
            target.delete()

        self._call(f"delete endpoint {endpoint}", undeploy_all_and_delete, endpoint)
        shutil.rmtree(self.root / "endpoints" / endpoint, ignore_errors=True)

    def predict(self, endpoint: str, instances: Sequence[Any]) -> dict[str, Any]:
        """Send ``instances`` to the endpoint's ``:predict``; returns predictions and who served them.

        Example: ``eps.predict("churn", [[1, 2]])["deployment"]`` -> ``'churn-v2'``.
        """
        aiplatform = self._sdk()
        name = self.mapping(endpoint)["endpoint"] or str(self.resource(endpoint).resource_name)
        answer = self._call(f"predict on {endpoint}", lambda: aiplatform.Endpoint(name).predict(instances=list(instances)),
                            endpoint)
        by_id = {v: k for k, v in self._ids(endpoint).items()}
        deployed_id = str(answer.deployed_model_id)
        return {"predictions": list(answer.predictions), "deployed_model_id": deployed_id,
                "deployment": by_id.get(deployed_id), "model_version_id": str(answer.model_version_id)}


def _undeploy(ep: Any, deployed_id: str) -> None:
    """Undeploy a deployed model that takes no traffic, sending the remaining split explicitly."""
    remaining = {str(k): int(v) for k, v in ep.gca_resource.traffic_split.items() if str(k) != deployed_id and int(v)}
    if not any(str(d.id) == deployed_id for d in ep.gca_resource.deployed_models):
        return  # a retried call whose first attempt landed
    ep.undeploy(deployed_id, traffic_split=remaining or None)

