"""Models, endpoints and deployed models for the Vertex AI fake (tests/fakes/vertex.py), with the API's rules.

State lives on :class:`ModelsAndEndpoints`, which ``VertexFake`` inherits; ``route`` answers the REST
paths of ModelService and EndpointService (and PredictionService ``:predict``) that the real
google-cloud-aiplatform SDK calls. Long-running operations finish at once (``done: true``), as the notes
show the SDK accepts, except deployModel when ``deploy_delay_gets`` or ``fail_next_deploy`` is set; each
is kept and can be read again under ``.../operations/N``.

Rules enforced (each a Google-style error; see tests/fakes/README.md):

- a traffic split has integer percentages >= 0 that sum to 100 (or is empty) and names deployed ids;
- the key ``"0"`` (the model being deployed) is valid only in ``deployModel``;
- ``deployModel`` needs an existing model version that supports DEDICATED_RESOURCES, a machine type;
- a deployed model that holds traffic cannot be undeployed unless the request moves its share away;
- version aliases are unique within a model and never look like a version id (``v1``); ``default``
  is set only by an upload (``is_default_version``) and moves to the new version.

Example:
    >>> state = ModelsAndEndpoints()
    >>> state._check_split({"1": 60, "2": 40}, {"1", "2"}, allow_zero_key=False)
    >>> state._check_split({"1": 60}, {"1"}, allow_zero_key=False)
    Traceback (most recent call last):
    ...
    tests.fakes._vertex_endpoints.ApiError: traffic_split must sum to 100, got 60 ({'1': 60})
"""

from __future__ import annotations

import itertools
import random
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

__all__ = ["ApiError", "FakeEndpoint", "FakeModel", "ModelsAndEndpoints"]

_STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 409: "ALREADY_EXISTS",
           429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
_BASE = r"^/v1/(projects/[^/]+/locations/[^/]+)"
_MODELS = re.compile(_BASE + r"/models(:upload)?$")
_MODEL = re.compile(_BASE + r"/models/([^/:@]+)(?:@([^/:]+))?(:listVersions|:mergeVersionAliases)?$")
_ENDPOINTS = re.compile(_BASE + r"/endpoints$")
_ENDPOINT = re.compile(_BASE + r"/endpoints/([^/:]+)(:deployModel|:undeployModel|:predict)?$")
_OPERATION = re.compile(r"^/(?:v1|ui)/(projects/[^/]+/locations/[^/]+/(?:.+/)?operations/[^/]+)$")  # GAPIC REST
# get_operation picks the first matching URI of its http_options, which for aiplatform is the /ui/ one
_ALIAS = re.compile(r"^[a-z][a-zA-Z0-9-]{0,126}[a-z0-9-]$")
_LABEL = re.compile(r"^[\w-]{0,63}$")
_TYPE = "type.googleapis.com/google.cloud.aiplatform.v1."
_LOGGING = "predictRequestResponseLoggingConfig"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


class ApiError(Exception):
    """An error the fake answers with, as Google writes it: ``{"error": {code, message, status}}``."""

    def __init__(self, code: int, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status or _STATUS.get(code, "UNKNOWN")

    def body(self) -> dict[str, Any]:
        """The JSON error body."""
        return {"error": {"code": self.code, "message": self.message, "status": self.status}}


@dataclass
class FakeModel:
    """One model (a registry entry) with its versions: ``versions[version_id]`` is the Model resource."""

    name: str
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)

    def find(self, ref: str | None) -> dict[str, Any]:
        """A version by id or alias (the ``default`` alias when ``ref`` is None)."""
        ref = ref or "default"
        if ref in self.versions:
            return self.versions[ref]
        for v in self.versions.values():
            if ref in v.get("versionAliases", []):
                return v
        raise ApiError(404, f"Model {self.name}@{ref} does not exist.")

    def latest_default(self) -> dict[str, Any]:
        """The version carrying the ``default`` alias."""
        return self.find("default")


@dataclass
class FakeEndpoint:
    """One endpoint: its resource (``deployedModels``, ``trafficSplit``) as the REST API returns it."""

    name: str
    resource: dict[str, Any]

    @property
    def deployed_ids(self) -> set[str]:
        """Ids of the deployed models."""
        return {d["id"] for d in self.resource.get("deployedModels", [])}

    @property
    def traffic(self) -> dict[str, int]:
        """The current traffic split (id -> percent)."""
        return dict(self.resource.get("trafficSplit", {}))

    def deployed(self, deployed_id: str) -> dict[str, Any]:
        """A deployed model by id."""
        for d in self.resource.get("deployedModels", []):
            if d["id"] == deployed_id:
                return dict(d)
        raise ApiError(404, f"DeployedModel {deployed_id} does not exist in Endpoint {self.name}.")


class ModelsAndEndpoints:
    """State and rules of ModelService/EndpointService; mixed into ``VertexFake``.

    Knobs: ``lose_answer("POST /v1/.../models:upload")`` carries out a request and answers 503 anyway
    (a retried change); ``deploy_delay_gets = N`` keeps each new deployModel LRO running (``done: false``, the model
    not yet on the endpoint) for the next N GETs of anything; ``fail_next_deploy = "message"`` makes the
    next deploy LRO end with that error (the model never appears). ``predict_error_rate[deployed id or display name] = 0.5`` makes that share of the ``:predict``
    calls it serves fail with 500, ``predict_latency_ms[...]`` sets its latency (20 ms by default);
    ``predict_log`` lists ``(endpoint, deployed_id, ok)``; ``on_predict(endpoint, deployed_id, ok,
    latency_ms)`` is called for every prediction (the Cloud Monitoring fake subscribes to it).
    """

    def __init__(self) -> None:
        self.models: dict[str, FakeModel] = {}
        self.endpoints: dict[str, FakeEndpoint] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self.predict_error_rate: dict[str, float] = {}
        self.predict_latency_ms: dict[str, float] = {}
        self.predict_log: list[tuple[str, str, bool]] = []
        self.on_predict: Any = None
        self.deploy_delay_gets = 0
        self.fail_next_deploy: str | None = None
        self._pending: dict[str, dict[str, Any]] = {}
        self._lost: list[str] = []
        self._ids = itertools.count(1000)
        self._rng = random.Random(7)
        if not hasattr(self, "_lock"):
            self._lock = threading.RLock()

    def lose_answer(self, fragment: str, times: int = 1) -> None:
        """Carry out the next ``times`` requests whose ``"METHOD path"`` contains ``fragment``, then answer 503.

        The caller retries a change that already happened: what idempotent clients must survive.
        """
        with self._lock:
            self._lost += [fragment] * times

    def take_lost(self, method: str, path: str) -> bool:
        """Whether this request's answer is to be lost (consumes one matching ``lose_answer``)."""
        from urllib.parse import unquote

        line = f"{method} {unquote(path)}"
        with self._lock:
            for i, fragment in enumerate(self._lost):
                if fragment in line:
                    del self._lost[i]
                    return True
        return False

    # -- helpers ----------------------------------------------------------------------------------------
    def _new_id(self) -> str:
        return str(next(self._ids)) + str(self._rng.randrange(10**8, 10**9))

    def _operation(self, parent: str, kind: str, response: dict[str, Any] | None, response_type: str) -> dict[str, Any]:
        op_name = f"{parent}/operations/{self._new_id()}"
        op = {"name": op_name, "done": True,
              "metadata": {"@type": _TYPE + f"{kind}OperationMetadata", "genericMetadata": {"createTime": _now()}},
              "response": {"@type": response_type if "." in response_type else _TYPE + response_type,
                           **(response or {})}}
        self.operations[op_name] = op
        return op

    @staticmethod
    def _check_labels(labels: Any) -> None:
        if not isinstance(labels, dict):
            raise ApiError(400, "labels must be a map")
        if len(labels) > 64:
            raise ApiError(400, "at most 64 labels")
        for k, v in labels.items():
            if not k or not _LABEL.match(k) or not _LABEL.match(str(v)) or k != k.lower() or str(v) != str(v).lower():
                raise ApiError(400, f"label {k}={v!r}: keys and values are lowercase letters, digits, _ and -, "
                                    "at most 63 characters")

    def _check_split(self, split: dict[str, Any], deployed: set[str], *, allow_zero_key: bool) -> None:
        for key, value in split.items():
            if key == "0" and not allow_zero_key:
                raise ApiError(400, "traffic_split key '0' (the model being deployed) is only valid in DeployModel")
            if key != "0" and key not in deployed:
                raise ApiError(400, f"traffic_split names DeployedModel {key}, which is not deployed on this endpoint")
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ApiError(400, f"traffic_split[{key}] must be a non-negative integer, got {value!r}")
        if split and sum(split.values()) != 100:
            raise ApiError(400, f"traffic_split must sum to 100, got {sum(split.values())} ({split})")

    # -- models -------------------------------------------------------------------------------------------
    def _model(self, name: str) -> FakeModel:
        if name not in self.models:
            raise ApiError(404, f"Model {name} does not exist.")
        return self.models[name]

    def upload_model(self, parent: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST .../models:upload: a new model, or a new version of ``parentModel``."""
        model = dict(body.get("model") or {})
        if not model.get("displayName"):
            raise ApiError(400, "model.display_name is required")
        if len(model["displayName"]) > 128:
            raise ApiError(400, "model.display_name must be at most 128 characters")
        if not (model.get("containerSpec") or {}).get("imageUri"):
            raise ApiError(400, "model.container_spec.image_uri is required for a custom model")
        self._check_labels(model.get("labels", {}))
        aliases = list(model.get("versionAliases", []))
        make_default = "default" in aliases  # how the SDK says is_default_version=True
        aliases = [a for a in aliases if a != "default"]
        for alias in aliases:
            if not _ALIAS.match(alias) or re.match(r"^v\d+$", alias):
                raise ApiError(400, f"version alias {alias!r} must match {_ALIAS.pattern} and not look like "
                                    "a version id (v1)")
        parent_model = body.get("parentModel")
        if parent_model:
            fm = self._model(parent_model.split("@")[0])
        else:
            fm = FakeModel(f"{parent}/models/{body.get('modelId') or self._new_id()}")
            if fm.name in self.models:
                raise ApiError(409, f"Model {fm.name} already exists.")
        for alias in aliases:
            if any(alias in v.get("versionAliases", []) for v in fm.versions.values()):
                raise ApiError(400, f"alias {alias!r} is already used by another version of {fm.name}")
        version_id = str(len(fm.versions) + 1)
        if make_default or not fm.versions:  # "default" moves to the new version (the first one always has it)
            for v in fm.versions.values():
                v["versionAliases"] = [a for a in v.get("versionAliases", []) if a != "default"]
            aliases = ["default", *aliases]
        model.update(name=fm.name, versionId=version_id, versionAliases=aliases, createTime=_now(),
                     updateTime=_now(), versionCreateTime=_now(), versionUpdateTime=_now(),
                     supportedDeploymentResourcesTypes=["DEDICATED_RESOURCES"], labels=model.get("labels", {}))
        fm.versions[version_id] = model
        self.models[fm.name] = fm
        return self._operation(parent, "UploadModel", {"model": fm.name, "modelVersionId": version_id},
                               "UploadModelResponse")

    def get_model(self, name: str, ref: str | None) -> dict[str, Any]:
        """GET a model version (``@id`` or ``@alias``; the default version otherwise)."""
        return _versioned(self._model(name).find(ref))

    def list_models(self, parent: str, query: dict[str, list[str]]) -> dict[str, Any]:
        """GET .../models: the default version of every model, filtered by ``display_name`` or ``labels.k``."""
        flt = (query.get("filter") or [""])[0]
        out = [_versioned(m.latest_default()) for n, m in self.models.items() if n.startswith(parent + "/")]
        return {"models": [m for m in out if _matches(m, flt)]}

    def list_versions(self, name: str, query: dict[str, list[str]]) -> dict[str, Any]:
        """GET .../models/ID:listVersions, filtered like ``list_models``."""
        flt = (query.get("filter") or [""])[0]
        return {"models": [_versioned(v) for v in self._model(name).versions.values() if _matches(v, flt)]}

    def update_model(self, name: str, ref: str | None, query: dict[str, list[str]], body: dict[str, Any]) -> dict[str, Any]:
        """PATCH a model version: ``labels``, ``versionDescription``, ``description``, ``displayName``."""
        version = self._model(name).find(ref)
        mask = [p.strip() for p in (query.get("updateMask") or [""])[0].split(",") if p.strip()]
        if not mask:
            raise ApiError(400, "update_mask is required")
        allowed = {"labels": "labels", "version_description": "versionDescription",
                   "versionDescription": "versionDescription", "description": "description",
                   "display_name": "displayName", "displayName": "displayName"}
        for path in mask:
            if path not in allowed:
                raise ApiError(400, f"update_mask path {path!r} is not updatable")
            key = allowed[path]
            if key == "labels":
                self._check_labels(body.get("labels", {}))
            version[key] = body.get(key, {} if key == "labels" else "")
        version["versionUpdateTime"] = version["updateTime"] = _now()
        return _versioned(version)

    def merge_aliases(self, name: str, ref: str | None, body: dict[str, Any]) -> dict[str, Any]:
        """POST :mergeVersionAliases: ``alias`` adds, ``-alias`` removes; aliases stay unique in the model."""
        fm = self._model(name)
        version = fm.find(ref)
        aliases = list(version.get("versionAliases", []))
        for change in body.get("versionAliases", []):
            remove = change.startswith("-")
            alias = change[1:] if remove else change
            if alias == "default":
                raise ApiError(400, "the 'default' alias cannot be merged; upload with is_default_version")
            if not _ALIAS.match(alias) or re.match(r"^v\d+$", alias):
                raise ApiError(400, f"version alias {alias!r} is invalid")
            if remove:
                aliases = [a for a in aliases if a != alias]
            elif alias not in aliases:
                if any(alias in v.get("versionAliases", []) for v in fm.versions.values() if v is not version):
                    raise ApiError(400, f"alias {alias!r} is already used by another version of {name}")
                aliases.append(alias)
        version["versionAliases"] = aliases
        return _versioned(version)

    # -- endpoints ------------------------------------------------------------------------------------
    def _endpoint(self, name: str) -> FakeEndpoint:
        if name not in self.endpoints:
            raise ApiError(404, f"Endpoint {name} does not exist.")
        return self.endpoints[name]

    def create_endpoint(self, parent: str, query: dict[str, list[str]], body: dict[str, Any]) -> dict[str, Any]:
        """POST .../endpoints: an LRO whose response is the new, empty endpoint."""
        if not body.get("displayName"):
            raise ApiError(400, "endpoint.display_name is required")
        self._check_labels(body.get("labels", {}))
        self._check_logging(body.get(_LOGGING) or {})
        endpoint_id = (query.get("endpointId") or [""])[0] or self._new_id()
        name = f"{parent}/endpoints/{endpoint_id}"
        if name in self.endpoints:
            raise ApiError(409, f"Endpoint {name} already exists.")
        resource = {**body, "name": name, "deployedModels": [], "trafficSplit": {}, "createTime": _now(),
                    "updateTime": _now(), "etag": "1"}
        self.endpoints[name] = FakeEndpoint(name, resource)
        return self._operation(parent, "CreateEndpoint", dict(resource), "Endpoint")

    @staticmethod
    def _check_logging(config: dict[str, Any]) -> None:
        """Request-response logging: a sampling rate in (0, 1] and a ``bq://`` destination."""
        if not config.get("enabled"):
            return
        rate = config.get("samplingRate", 0)
        if not isinstance(rate, (int, float)) or not 0 < rate <= 1:
            raise ApiError(400, f"predict_request_response_logging_config.sampling_rate must be in (0, 1], got {rate!r}")
        uri = str((config.get("bigqueryDestination") or {}).get("outputUri", ""))
        if not uri.startswith("bq://"):
            raise ApiError(400, f"bigquery_destination.output_uri must be bq://project[.dataset[.table]], got {uri!r}")

    def get_endpoint(self, name: str) -> dict[str, Any]:
        """GET an endpoint."""
        return dict(self._endpoint(name).resource)

    def list_endpoints(self, parent: str, query: dict[str, list[str]]) -> dict[str, Any]:
        """GET .../endpoints, filtered by ``display_name`` or ``labels.k``."""
        flt = (query.get("filter") or [""])[0]
        return {"endpoints": [dict(e.resource) for n, e in self.endpoints.items()
                              if n.startswith(parent + "/") and _matches(e.resource, flt)]}

    def delete_endpoint(self, name: str) -> dict[str, Any]:
        """DELETE an endpoint without deployed models."""
        ep = self._endpoint(name)
        if ep.deployed_ids:
            raise ApiError(400, f"Endpoint {name} has deployed models; undeploy them first", "FAILED_PRECONDITION")
        del self.endpoints[name]
        return self._operation(name.rsplit("/endpoints/", 1)[0], "Delete", {}, "type.googleapis.com/google.protobuf.Empty")

    def update_endpoint(self, name: str, query: dict[str, list[str]], body: dict[str, Any]) -> dict[str, Any]:
        """PATCH an endpoint: ``trafficSplit`` (checked), request-response logging (checked), labels, names."""
        ep = self._endpoint(name)
        mask = [p.strip() for p in (query.get("updateMask") or [""])[0].split(",") if p.strip()]
        if not mask:
            raise ApiError(400, "update_mask is required")
        keys = {"traffic_split": "trafficSplit", "trafficSplit": "trafficSplit", "labels": "labels",
                "display_name": "displayName", "displayName": "displayName", "description": "description",
                "predict_request_response_logging_config": _LOGGING, _LOGGING: _LOGGING}
        for path in mask:
            if path not in keys:
                raise ApiError(400, f"update_mask path {path!r} is not updatable")
            key = keys[path]
            if key == "trafficSplit":
                self._check_split(dict(body.get("trafficSplit", {})), ep.deployed_ids, allow_zero_key=False)
                ep.resource["trafficSplit"] = dict(body.get("trafficSplit", {}))
            else:
                if key == "labels":
                    self._check_labels(body.get("labels", {}))
                if key == _LOGGING:
                    self._check_logging(body.get(_LOGGING) or {})
                ep.resource[key] = body.get(key)
        ep.resource["etag"] = str(int(ep.resource.get("etag", "1")) + 1)
        ep.resource["updateTime"] = _now()
        return dict(ep.resource)

    def deploy_model(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST :deployModel: check the model, resources and split; the new id replaces key ``"0"``."""
        ep = self._endpoint(name)
        dm = dict(body.get("deployedModel") or {})
        model_ref = str(dm.get("model", ""))
        base, _, ref = model_ref.partition("@")
        version = self._model(base).find(ref or None)
        if "DEDICATED_RESOURCES" not in version.get("supportedDeploymentResourcesTypes", []):
            raise ApiError(400, f"Model {model_ref} does not support dedicated resources")
        resources = dm.get("dedicatedResources") or {}
        if not (resources.get("machineSpec") or {}).get("machineType"):
            raise ApiError(400, "deployed_model.dedicated_resources.machine_spec.machine_type is required")
        if int(resources.get("minReplicaCount", 0)) < 1:
            raise ApiError(400, "dedicated_resources.min_replica_count must be at least 1")
        split = dict(body.get("trafficSplit") or {})
        self._check_split(split, ep.deployed_ids, allow_zero_key=True)
        if split and "0" not in split:
            raise ApiError(400, "traffic_split must give the model being deployed (key '0') a share, even 0")
        pending_names = [p["dm"].get("displayName") for p in self._pending.values() if p["endpoint"] == name]
        if dm.get("displayName") and (dm.get("displayName") in pending_names or any(
                d.get("displayName") == dm.get("displayName") for d in ep.resource["deployedModels"])):
            raise ApiError(409, f"a DeployedModel named {dm.get('displayName')!r} already exists on {name}")
        new_id = self._new_id()
        dm.update(id=new_id, model=f"{base}", modelVersionId=version["versionId"], createTime=_now())
        op = self._operation(name, "DeployModel", {"deployedModel": {"id": new_id}}, "DeployModelResponse")
        pending = {"endpoint": name, "dm": dm, "split": split, "left": self.deploy_delay_gets,
                   "response": op.pop("response"), "error": self.fail_next_deploy}
        self.fail_next_deploy = None
        op["done"] = False
        self._pending[op["name"]] = pending
        if pending["left"] <= 0 and not pending["error"]:
            self._finish_deploy(op["name"])
        return dict(op)

    def _finish_deploy(self, op_name: str) -> None:
        """The deploy LRO ends: the model is listed on the endpoint and the split applied (or the LRO fails)."""
        pending = self._pending.pop(op_name)
        op = self.operations[op_name]
        op["done"] = True
        if pending["error"]:
            op["error"] = {"code": 9, "message": pending["error"]}
            return
        ep = self._endpoint(pending["endpoint"])
        ep.resource["deployedModels"].append(pending["dm"])
        if pending["split"]:
            new_id = pending["dm"]["id"]
            ep.resource["trafficSplit"] = {(new_id if k == "0" else k): v for k, v in pending["split"].items()}
        ep.resource["updateTime"] = _now()
        op["response"] = pending["response"]

    def _tick(self) -> None:
        """A GET of an endpoint or an operation: every deploy in progress comes one GET closer to its end."""
        for op_name, pending in list(self._pending.items()):
            pending["left"] -= 1
            if pending["left"] <= 0:
                self._finish_deploy(op_name)

    def undeploy_model(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST :undeployModel: the id must exist and must not keep traffic after the call."""
        ep = self._endpoint(name)
        deployed_id = str(body.get("deployedModelId", ""))
        ep.deployed(deployed_id)
        split = dict(body.get("trafficSplit") or {})
        remaining = ep.deployed_ids - {deployed_id}
        if split:
            if split.get(deployed_id):
                raise ApiError(400, f"traffic_split still gives DeployedModel {deployed_id} traffic",
                               "FAILED_PRECONDITION")
            split.pop(deployed_id, None)
            self._check_split(split, remaining, allow_zero_key=False)
        elif ep.traffic.get(deployed_id, 0) > 0 and remaining:
            raise ApiError(400, f"DeployedModel {deployed_id} holds {ep.traffic[deployed_id]}% of the traffic of "
                                f"{name}; move its traffic away before undeploying it", "FAILED_PRECONDITION")
        ep.resource["deployedModels"] = [d for d in ep.resource["deployedModels"] if d["id"] != deployed_id]
        if split:
            ep.resource["trafficSplit"] = split
        else:
            ep.resource["trafficSplit"] = {k: v for k, v in ep.traffic.items() if k != deployed_id}
        ep.resource["updateTime"] = _now()
        return self._operation(name, "UndeployModel", {}, "UndeployModelResponse")

    def predict(self, name: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """POST :predict: pick a deployed model by the traffic split; echo the instances as predictions."""
        ep = self._endpoint(name)
        instances = body.get("instances")
        if not isinstance(instances, list) or not instances:
            raise ApiError(400, "instances must be a non-empty list")
        split = {k: v for k, v in ep.traffic.items() if v > 0}
        if not split:
            raise ApiError(400, f"Endpoint {name} has no traffic split; deploy a model first", "FAILED_PRECONDITION")
        pick = self._rng.choices(list(split), weights=list(split.values()))[0]
        dm = ep.deployed(pick)
        label = str(dm.get("displayName", ""))
        ok = self._rng.random() >= self.predict_error_rate.get(pick, self.predict_error_rate.get(label, 0.0))
        self.predict_log.append((name, pick, ok))
        if self.on_predict is not None:
            self.on_predict(name, pick, ok, self.predict_latency_ms.get(pick, self.predict_latency_ms.get(label, 20.0)))
        if not ok:
            raise ApiError(500, f"the model server of DeployedModel {pick} failed", "INTERNAL")
        return 200, {"predictions": [{"instance": i, "deployedModelId": pick} for i in instances],
                     "deployedModelId": pick, "model": dm["model"], "modelVersionId": dm.get("modelVersionId", "")}

    # -- routing ----------------------------------------------------------------------------------------
    def route(self, method: str, path: str, query: dict[str, list[str]], body: dict[str, Any]) -> dict[str, Any] | None:
        """Answer a ModelService/EndpointService request, or None when the path is not one of them."""
        from urllib.parse import unquote

        with self._lock:
            return self._route(method, unquote(path), query, body)

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: dict[str, Any]) -> dict[str, Any] | None:
        if method == "GET":
            self._tick()
        if (m := _OPERATION.match(path)) and method == "GET":
            if m[1] not in self.operations:
                raise ApiError(404, f"Operation {m[1]} does not exist.")
            return self.operations[m[1]]
        if m := _MODELS.match(path):
            if method == "POST" and m[2]:
                return self.upload_model(m[1], body)
            if method == "GET" and not m[2]:
                return self.list_models(m[1], query)
        if m := _MODEL.match(path):
            name = f"{m[1]}/models/{m[2]}"
            if method == "GET" and m[4] == ":listVersions":
                return self.list_versions(name, query)
            if method == "POST" and m[4] == ":mergeVersionAliases":
                return self.merge_aliases(name, m[3], body)
            if method == "GET" and not m[4]:
                return self.get_model(name, m[3])
            if method == "PATCH" and not m[4]:
                return self.update_model(name, m[3], query, body)
        if m := _ENDPOINTS.match(path):
            if method == "POST":
                return self.create_endpoint(m[1], query, body)
            if method == "GET":
                return self.list_endpoints(m[1], query)
        if m := _ENDPOINT.match(path):
            name = f"{m[1]}/endpoints/{m[2]}"
            verbs = {(None, "GET"): lambda: self.get_endpoint(name),
                     (None, "PATCH"): lambda: self.update_endpoint(name, query, body),
                     (None, "DELETE"): lambda: self.delete_endpoint(name),
                     (":deployModel", "POST"): lambda: self.deploy_model(name, body),
                     (":undeployModel", "POST"): lambda: self.undeploy_model(name, body),
                     (":predict", "POST"): lambda: self.predict(name, body)[1]}
            fn = verbs.get((m[3], method))
            if fn is not None:
                return fn()
        return None


def _versioned(version: dict[str, Any]) -> dict[str, Any]:
    return dict(version)


def _matches(resource: dict[str, Any], flt: str) -> bool:
    """The filters the adapter sends: ``display_name="x"``, ``labels.k="v"`` and ``labels.k:*``, joined by AND."""
    for term in [t.strip() for t in re.split(r"\s+AND\s+", flt) if t.strip()]:
        exists = re.match(r"^labels\.([\w-]+)\s*:\s*\*$", term)
        if exists:
            if exists[1] not in resource.get("labels", {}):
                return False
            continue
        m = re.match(r'^(display_name|displayName|labels\.[\w-]+)\s*=\s*"?([^"]*)"?$', term)
        if not m:
            raise ApiError(400, f"the fake cannot evaluate filter term {term!r}")
        key, value = m[1], m[2]
        if key.startswith("labels."):
            if resource.get("labels", {}).get(key[7:]) != value:
                return False
        elif resource.get("displayName") != value:
            return False
    return True
