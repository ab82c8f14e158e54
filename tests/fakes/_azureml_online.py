"""The Azure ML fake's model registry, managed online endpoints, scoring and Azure Monitor metrics.

Part of tests/fakes/azureml.py (``AzureMLFake.online``); kept apart so the pipeline-job half stays
readable. Routes (``{ws}`` is the workspace ARM id; every ARM route needs ``api-version`` and a bearer
token, checked by the caller):

* ``GET {ws}/models``, ``GET {ws}/models/{name}/versions`` (paged: ``nextLink`` after
  :attr:`OnlineFake.page_size` rows), ``GET|PUT {ws}/models/{name}/versions/{v}``: a PUT on an existing
  version may change tags and description only (409 ``Conflict`` when ``modelUri`` changes);
* ``GET|PUT|DELETE {ws}/onlineEndpoints/{e}``, ``POST {ws}/onlineEndpoints/{e}/listKeys``;
* ``GET {ws}/onlineEndpoints/{e}/deployments``, ``GET|PUT|DELETE .../deployments/{d}``,
  ``POST .../deployments/{d}/getLogs``;
* ``GET {ws}/onlineEndpoints/{e}/providers/Microsoft.Insights/metrics``: the datapoints the test set;
* ``GET /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.Insights/metricAlerts/{rule}/status``:
  the status entries the test set (:meth:`OnlineFake.set_alert`), 404 for an unknown rule;
* ``GET /online-operations/{id}``: long-running operations (``Azure-AsyncOperation``);
* ``POST /online-score/{e}``: the scoring URI (traffic-weighted, ``azureml-model-deployment`` pins one).

Service rules enforced on an endpoint PUT (400 ``BadArgument``, messages like the service's): traffic
names existing deployments whose provisioning succeeded and sums to 100 (or is empty); mirrored traffic
names at most one such deployment, at most 50% in total, and never one that takes live traffic. A
deployment that takes live or mirrored traffic cannot be deleted (400). PUTs are long-running: the
change lands once the operation reports Succeeded, after :attr:`OnlineFake.provision_polls` polls
answered ``InProgress``; after a traffic change, :attr:`OnlineFake.traffic_lag` endpoint GETs still show
the old split (traffic is eventually consistent).
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.fakes.azureml import AzureMLFake

Reply = tuple[int, Any, dict[str, str]]
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,30}[A-Za-z0-9]$")
_GRAINS = {"PT1M": 60, "PT5M": 300, "PT15M": 900, "PT30M": 1800, "PT1H": 3600, "PT6H": 21600, "PT12H": 43200,
           "P1D": 86400}


def _err(status: int, code: str, message: str) -> Reply:
    return status, {"error": {"code": code, "message": message}}, {}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000+00:00", time.gmtime())


def _system_data() -> dict[str, Any]:
    now = _now()
    return {"createdAt": now, "createdBy": "cloudml-tests", "createdByType": "User", "lastModifiedAt": now,
            "lastModifiedBy": "cloudml-tests", "lastModifiedByType": "User"}


@dataclass
class Operation:
    """A long-running operation: ``polls`` InProgress answers, then ``apply`` runs and it reports the result."""

    polls: int
    apply: Callable[[], str | None]  # returns an error message when the operation fails
    status: str = "InProgress"
    error: str | None = None


@dataclass
class Endpoint:
    """One online endpoint: its stored body, the split clients see, and reads still showing the old split."""

    name: str
    body: dict[str, Any]
    state: str = "Creating"
    traffic: dict[str, int] = field(default_factory=dict)
    mirror: dict[str, int] = field(default_factory=dict)
    stale: list[tuple[dict[str, int], dict[str, int]]] = field(default_factory=list)


@dataclass
class OnlineDeployment:
    """One deployment of an endpoint and its provisioning state."""

    name: str
    body: dict[str, Any]
    state: str = "Creating"
    error: str | None = None


class OnlineFake:
    """Registry, endpoints, deployments, metrics and faults; reached as ``AzureMLFake.online``."""

    def __init__(self, fake: AzureMLFake) -> None:
        self.fake = fake
        self.models: dict[str, dict[str, dict[str, Any]]] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self.deployments: dict[str, dict[str, OnlineDeployment]] = {}
        self.operations: dict[str, Operation] = {}
        self.metrics: dict[tuple[str, str, str, str], list[float | None]] = {}
        self.endpoint_puts: list[dict[str, Any]] = []
        self.invocations: list[tuple[str, str]] = []
        self.page_size = 3
        self.provision_polls = 1
        self.traffic_lag = 0
        self.alerts: dict[str, list[dict[str, Any]]] = {}
        self._faults: list[dict[str, Any]] = []
        self._fail_deployments: dict[str, str] = {}

    # -- knobs ---------------------------------------------------------------------------------------------
    def fault(self, status: int = 503, times: int = 1, *, method: str | None = None, path_contains: str = "",
              retry_after: float = 0.01) -> None:
        """Answer the next ``times`` requests matching ``method``/``path_contains`` with ``status``."""
        self._faults.append({"status": status, "times": times, "method": method, "path": path_contains,
                             "retry_after": retry_after})

    def fail_deployment(self, name: str, message: str) -> None:
        """The next deployment called ``name`` fails to provision with ``message``."""
        self._fail_deployments[name] = message

    def set_latency(self, endpoint: str, deployment: str, values_ms: list[float | None],
                    metric: str = "RequestLatency_P99") -> None:
        """Per-minute latency (ms) of one deployment, oldest first, ending at the last complete minute."""
        self.metrics[(endpoint, deployment, metric, "")] = list(values_ms)

    def set_requests(self, endpoint: str, deployment: str, by_class: dict[str, list[float | None]]) -> None:
        """Per-minute request counts of one deployment by ``statusCodeClass`` ("2xx", "4xx", "5xx")."""
        for cls, values in by_class.items():
            self.metrics[(endpoint, deployment, "RequestsPerMinute", cls)] = list(values)

    def set_alert(self, rule: str, statuses: list[tuple[dict[str, str], str]]) -> None:
        """The status entries of metric alert rule ``rule``: ``(dimensions, status)`` pairs."""
        self.alerts[rule] = [{"dimensions": dict(d), "status": st} for d, st in statuses]

    def traffic(self, endpoint: str) -> dict[str, int]:
        """The split the service applied (what scoring uses), zeros dropped."""
        return dict(self.endpoints[endpoint].traffic)

    def mirror(self, endpoint: str) -> dict[str, int]:
        """The mirrored shares the service applied."""
        return dict(self.endpoints[endpoint].mirror)

    # -- dispatch ------------------------------------------------------------------------------------------
    def take_fault(self, method: str, path: str) -> Reply | None:
        """A configured fault for this request, if any (counted down)."""
        for f in self._faults:
            if f["times"] > 0 and (f["method"] in (None, method)) and f["path"] in path:
                f["times"] -= 1
                code = "TooManyRequests" if f["status"] == 429 else "ServiceUnavailable"
                status, body, _ = _err(f["status"], code, f"injected {f['status']}")
                return status, body, {"Retry-After": str(f["retry_after"])}
        return None

    def route(self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str],
              raw: bytes, rest: str | None) -> Reply | None:
        """Handle a request of this half of the fake; None when the path is not ours."""
        if path.startswith("/online-operations/"):
            return self._operation(path.rsplit("/", 1)[1])
        if path.startswith("/online-score/") and method == "POST":
            return self._score(urllib.parse.unquote(path.rsplit("/", 1)[1]), headers, raw)
        alert = re.match(r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Insights/metricAlerts/"
                         r"([^/]+)/status$", path, re.IGNORECASE)
        if alert and method == "GET":
            return self._alert_status(urllib.parse.unquote(alert.group(1)), path, query)
        if rest is None:
            return None
        parts = [urllib.parse.unquote(p) for p in rest.split("/") if p]
        if parts[:1] == ["models"]:
            return self._models(method, parts[1:], query, raw)
        if parts[:1] == ["onlineEndpoints"]:
            if len(parts) == 1:
                return 200, {"value": [self._endpoint_json(e) for e in self.endpoints.values()]}, {}
            if parts[2:5] == ["providers", "Microsoft.Insights", "metrics"]:
                return self._metrics(parts[1], query, rest)
            return self._endpoints(method, parts[1], parts[2:], raw)
        return None

    # -- long-running operations --------------------------------------------------------------------------
    def _start(self, apply: Callable[[], str | None], *, delete: bool = False) -> dict[str, str]:
        op_id = uuid.uuid4().hex
        if delete:  # the SDK parses a delete's Retry-After as an int: the operation is done on its first poll
            self.operations[op_id] = Operation(0, apply)
            return {"Azure-AsyncOperation": f"{self.fake.url}/online-operations/{op_id}"}
        self.operations[op_id] = Operation(self.provision_polls, apply)
        return {"Azure-AsyncOperation": f"{self.fake.url}/online-operations/{op_id}", "Retry-After": "0.01"}

    def _operation(self, op_id: str) -> Reply:
        op = self.operations.get(op_id)
        if op is None:
            return _err(404, "NotFound", f"operation {op_id} was not found")
        if op.status == "InProgress":
            if op.polls > 0:
                op.polls -= 1
                return 200, {"status": "InProgress"}, {"Retry-After": "0.01"}
            op.error = op.apply()
            op.status = "Failed" if op.error else "Succeeded"
        body: dict[str, Any] = {"status": op.status}
        if op.error:
            body["error"] = {"code": "DeploymentFailed", "message": op.error}
        return 200, body, {}

    # -- models --------------------------------------------------------------------------------------------
    def _model_json(self, name: str, version: str) -> dict[str, Any]:
        stored = self.models[name][version]
        return {"id": f"{self.fake.ws}/models/{name}/versions/{version}", "name": version,
                "type": "Microsoft.MachineLearningServices/workspaces/models/versions",
                "systemData": stored["systemData"], "properties": stored["properties"]}

    def _models(self, method: str, parts: list[str], query: dict[str, list[str]], raw: bytes) -> Reply:
        if not parts and method == "GET":
            rows = [{"id": f"{self.fake.ws}/models/{n}", "name": n, "systemData": _system_data(),
                     "properties": {"latestVersion": max(v, key=_version_key), "description": None, "tags": {}}}
                    for n, v in sorted(self.models.items()) if v]
            return 200, {"value": rows}, {}
        if len(parts) == 2 and parts[1] == "versions" and method == "GET":
            versions = sorted(self.models.get(parts[0], {}), key=_version_key, reverse=True)
            if query.get("$top"):
                versions = versions[: int(query["$top"][0])]
            skip = int(query.get("$skip", ["0"])[0])
            page = versions[skip: skip + self.page_size]
            out: dict[str, Any] = {"value": [self._model_json(parts[0], v) for v in page]}
            if skip + self.page_size < len(versions):
                base = f"{self.fake.url}{self.fake.ws}/models/{parts[0]}/versions"
                out["nextLink"] = f"{base}?api-version=2023-08-01-preview&$skip={skip + self.page_size}"
            return 200, out, {}
        if len(parts) == 3 and parts[1] == "versions":
            name, version = parts[0], parts[2]
            known = self.models.get(name, {})
            if method == "GET":
                if version not in known:
                    return _err(404, "UserError", f"model {name}:{version} was not found")
                return 200, self._model_json(name, version), {}
            if method == "PUT":
                props = json.loads(raw or b"{}").get("properties", {})
                if not props.get("modelUri"):
                    return _err(400, "UserError", "properties.modelUri is required")
                if version in known:
                    old = known[version]["properties"]
                    if old.get("modelUri") != props.get("modelUri"):
                        return _err(409, "Conflict", f"model {name}:{version} already exists with another "
                                    "modelUri; model versions are immutable")
                    old.update(tags=props.get("tags") or {}, description=props.get("description"))
                    return 200, self._model_json(name, version), {}
                for key in ("tags", "properties", "flavors"):
                    props[key] = props.get(key) or {}
                known[version] = {"properties": props, "systemData": _system_data()}
                self.models[name] = known
                return 201, self._model_json(name, version), {}
        return _err(404, "NotFound", f"no route {method} models/{'/'.join(parts)}")

    # -- endpoints and deployments -------------------------------------------------------------------------
    def _endpoint_json(self, ep: Endpoint) -> dict[str, Any]:
        traffic, mirror = ep.stale.pop(0) if ep.stale else (ep.traffic, ep.mirror)
        props = {**ep.body.get("properties", {}), "traffic": dict(traffic), "mirrorTraffic": dict(mirror),
                 "provisioningState": ep.state, "scoringUri": f"{self.fake.url}/online-score/{ep.name}",
                 "swaggerUri": f"{self.fake.url}/online-score/{ep.name}/swagger.json"}
        props.setdefault("properties", {})
        return {"id": f"{self.fake.ws}/onlineEndpoints/{ep.name}", "name": ep.name, "location": "westeurope",
                "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints", "kind": "Managed",
                "identity": {"type": "SystemAssigned", "principalId": str(uuid.UUID(int=3)),
                             "tenantId": str(uuid.UUID(int=1))},
                "tags": ep.body.get("tags") or {}, "systemData": _system_data(), "properties": props}

    def _deployment_json(self, endpoint: str, d: OnlineDeployment) -> dict[str, Any]:
        props = {**d.body.get("properties", {}), "provisioningState": d.state}
        props.setdefault("scaleSettings", {"scaleType": "Default"})
        props.setdefault("endpointComputeType", "Managed")
        return {"id": f"{self.fake.ws}/onlineEndpoints/{endpoint}/deployments/{d.name}", "name": d.name,
                "location": "westeurope", "kind": "Managed", "tags": d.body.get("tags") or {},
                "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments",
                "systemData": _system_data(), "properties": props,
                "sku": d.body.get("sku") or {"name": "Default", "capacity": 1}}

    def _endpoints(self, method: str, name: str, extra: list[str], raw: bytes) -> Reply:
        ep = self.endpoints.get(name)
        if not extra and method == "PUT":
            return self._put_endpoint(name, json.loads(raw or b"{}"))
        if ep is None:
            return _err(404, "ResourceNotFound", f"online endpoint {name} was not found")
        if not extra and method == "GET":
            return 200, self._endpoint_json(ep), {}
        if not extra and method == "DELETE":
            del self.endpoints[name]
            self.deployments.pop(name, None)
            return 202, None, self._start(lambda: None, delete=True)
        if extra == ["listKeys"] and method == "POST":
            return 200, {"primaryKey": f"key-{name}-1", "secondaryKey": f"key-{name}-2"}, {}
        if extra == ["deployments"] and method == "GET":
            rows = [self._deployment_json(name, d) for d in self.deployments.get(name, {}).values()]
            return 200, {"value": rows}, {}
        if len(extra) >= 2 and extra[0] == "deployments":
            return self._deployment(method, ep, extra[1], extra[2:], raw)
        return _err(404, "NotFound", f"no route {method} onlineEndpoints/{name}/{'/'.join(extra)}")

    def _put_endpoint(self, name: str, body: dict[str, Any]) -> Reply:
        if not _NAME.match(name):
            return _err(400, "BadArgument", f"endpoint name {name!r} must be 3-32 characters, start with a letter "
                        "and hold letters, digits and '-'")
        props = body.get("properties", {})
        if props.get("authMode") not in ("Key", "AMLToken", "AADToken"):
            return _err(400, "BadArgument", "properties.authMode must be Key, AMLToken or AADToken")
        traffic = {k: int(v) for k, v in (props.get("traffic") or {}).items()}
        mirror = {k: int(v) for k, v in (props.get("mirrorTraffic") or {}).items()}
        problem = self._traffic_problem(name, traffic, mirror)
        if problem:
            return _err(400, "BadArgument", problem)
        self.endpoint_puts.append(body)
        ep = self.endpoints.get(name)
        created = ep is None
        if ep is None:
            ep = self.endpoints[name] = Endpoint(name, body)
            self.deployments.setdefault(name, {})
        else:
            ep.state = "Updating"
        traffic = {k: v for k, v in traffic.items() if v > 0}
        mirror = {k: v for k, v in mirror.items() if v > 0}

        def apply(ep: Endpoint = ep) -> str | None:
            if (ep.traffic, ep.mirror) != (traffic, mirror):
                ep.stale = [(dict(ep.traffic), dict(ep.mirror))] * self.traffic_lag
            ep.body, ep.traffic, ep.mirror, ep.state = body, traffic, mirror, "Succeeded"
            return None

        headers = self._start(apply)
        return (201 if created else 200), self._endpoint_json(ep), headers

    def _traffic_problem(self, name: str, traffic: dict[str, int], mirror: dict[str, int]) -> str | None:
        known = self.deployments.get(name, {})
        for kind, split in (("traffic", traffic), ("mirror traffic", mirror)):
            for d, share in split.items():
                if share < 0 or share > 100:
                    return f"{kind} of deployment {d} must be between 0 and 100, got {share}"
                if share and d not in known:
                    return f"deployment {d} does not exist on endpoint {name}; {kind} can only name its deployments"
                if share and known[d].state != "Succeeded":
                    return f"deployment {d} is {known[d].state}; {kind} needs a deployment that succeeded"
        total = sum(traffic.values())
        if total not in (0, 100):
            return f"traffic values must sum to 100, got {total}"
        live_mirrored = [d for d, s in mirror.items() if s and traffic.get(d, 0)]
        if live_mirrored:
            return f"deployment {live_mirrored[0]} cannot take live and mirror traffic at once"
        if len([d for d, s in mirror.items() if s]) > 1:
            return "only one deployment can take mirror traffic"
        if sum(mirror.values()) > 50:
            return f"mirror traffic cannot exceed 50%, got {sum(mirror.values())}"
        return None

    def _deployment(self, method: str, ep: Endpoint, name: str, extra: list[str], raw: bytes) -> Reply:
        known = self.deployments.setdefault(ep.name, {})
        if not extra and method == "PUT":
            body = json.loads(raw or b"{}")
            props = body.get("properties", {})
            model = str(props.get("model") or "")
            m = re.search(r"/models/([^/]+)/versions/([^/]+)$", model)
            if not m or m.group(2) not in self.models.get(m.group(1), {}):
                return _err(400, "BadArgument", f"model {model or '(none)'} was not found in the workspace")
            if not props.get("instanceType"):
                return _err(400, "BadArgument", "properties.instanceType is required for managed deployments")
            failure = self._fail_deployments.pop(name, None)
            d = known.get(name)
            if d is None:
                d = known[name] = OnlineDeployment(name, body)
            else:
                d.body, d.state = body, "Updating"

            def apply(d: OnlineDeployment = d) -> str | None:
                d.state, d.error = ("Failed", failure) if failure else ("Succeeded", None)
                return failure

            headers = self._start(apply)
            return 201, self._deployment_json(ep.name, d), headers
        d = known.get(name)
        if d is None:
            return _err(404, "ResourceNotFound", f"deployment {name} of endpoint {ep.name} was not found")
        if not extra and method == "GET":
            return 200, self._deployment_json(ep.name, d), {}
        if not extra and method == "DELETE":
            if ep.traffic.get(name) or ep.mirror.get(name):
                return _err(400, "BadArgument", f"deployment {name} takes traffic on endpoint {ep.name}; "
                            "set its traffic and mirror traffic to 0 before deleting it")
            del known[name]
            return 202, None, self._start(lambda: None, delete=True)
        if extra == ["getLogs"] and method == "POST":
            return 200, {"content": f"deployment {name}: {d.error or 'started'}\n"}, {}
        return _err(404, "NotFound", f"no route {method} deployments/{name}/{'/'.join(extra)}")

    # -- scoring -------------------------------------------------------------------------------------------
    def _score(self, endpoint: str, headers: dict[str, str], raw: bytes) -> Reply:
        ep = self.endpoints.get(endpoint)
        if ep is None:
            return _err(404, "NotFound", f"no endpoint {endpoint}")
        if headers.get("authorization") != f"Bearer key-{endpoint}-1":
            return _err(401, "Unauthorized", "the endpoint key is wrong")
        pinned = headers.get("azureml-model-deployment")
        if pinned:
            if pinned not in self.deployments.get(endpoint, {}):
                return _err(404, "NotFound", f"deployment {pinned} was not found on {endpoint}")
            target = pinned
        elif not ep.traffic:
            return _err(503, "NoTraffic", f"endpoint {endpoint} sends no traffic to any deployment")
        else:  # deterministic weighted round robin over 100 slots
            slot = len(self.invocations) % 100
            acc, target = 0, next(iter(ep.traffic))
            for d, share in sorted(ep.traffic.items()):
                acc += share
                if slot < acc:
                    target = d
                    break
        self.invocations.append((endpoint, target))
        instances = json.loads(raw or b"{}").get("instances", [])
        return 200, {"predictions": [0 for _ in instances], "deployment": target}, {"azureml-model-deployment": target}

    def _alert_status(self, rule: str, path: str, query: dict[str, list[str]]) -> Reply:
        if "api-version" not in query:
            return _err(400, "MissingApiVersionParameter", "the api-version query parameter is required")
        if rule not in self.alerts:
            return _err(404, "ResourceNotFound", f"metric alert rule {rule} was not found")
        base = path.removesuffix("/status")
        return 200, {"value": [{"name": f"{rule}-{i}", "id": f"{base}/status/{i}",
                                "type": "Microsoft.Insights/metricAlerts/status",
                                "properties": {**entry, "timestamp": _now()}}
                               for i, entry in enumerate(self.alerts[rule])]}, {}

    # -- Azure Monitor metrics -----------------------------------------------------------------------------
    def _metrics(self, endpoint: str, query: dict[str, list[str]], rest: str) -> Reply:
        if endpoint not in self.endpoints:
            return _err(404, "ResourceNotFound", f"online endpoint {endpoint} was not found")
        interval = query.get("interval", ["PT1M"])[0]
        if interval not in _GRAINS:
            return _err(400, "BadRequest", f"interval {interval} is not a supported time grain")
        grain = _GRAINS[interval]
        try:
            start_s, end_s = query["timespan"][0].split("/")
            start, end = _parse_time(start_s), _parse_time(end_s)
        except (KeyError, ValueError):
            return _err(400, "BadRequest", "timespan must be 'start/end' in ISO 8601")
        names = query.get("metricnames", [""])[0].split(",")
        aggregation = query.get("aggregation", ["Average"])[0].split(",")[0].lower()
        filters = dict(re.findall(r"(\w+) eq '([^']*)'", query.get("$filter", [""])[0]))
        deployment = filters.get("deployment")
        if not deployment:
            return _err(400, "BadRequest", "this fake needs $filter with deployment eq '<name>'")
        slots = max(0, int((end - start).total_seconds() // grain))
        stamps = [start + timedelta(seconds=grain * i) for i in range(slots)]
        key = {"average": "average", "total": "total", "maximum": "maximum", "minimum": "minimum"}[aggregation]
        value = []
        for name in names:
            series = []
            wanted = filters.get("statusCodeClass")
            classes = [""] if name != "RequestsPerMinute" or wanted is None else (
                ["1xx", "2xx", "3xx", "4xx", "5xx"] if wanted == "*" else [wanted])
            for cls in classes:
                points = self.metrics.get((endpoint, deployment, name, cls))
                if points is None and name == "RequestsPerMinute" and not cls:  # not split: summed over classes
                    points = _summed([v for (e, d, n, c), v in self.metrics.items()
                                      if (e, d, n) == (endpoint, deployment, name)])
                if points is None:
                    continue
                shown = ([None] * slots + points)[-slots:] if slots else []
                data = [{"timeStamp": s.strftime("%Y-%m-%dT%H:%M:%SZ"), **({} if v is None else {key: v})}
                        for s, v in zip(stamps, shown, strict=True)]
                meta = [{"name": {"value": "deployment", "localizedValue": "deployment"}, "value": deployment}]
                if cls:
                    meta.append({"name": {"value": "statusCodeClass", "localizedValue": "statusCodeClass"},
                                 "value": cls})
                series.append({"metadatavalues": meta, "data": data})
            value.append({"id": f"{self.fake.ws}/onlineEndpoints/{endpoint}/providers/Microsoft.Insights/metrics/{name}",
                          "type": "Microsoft.Insights/metrics", "name": {"value": name, "localizedValue": name},
                          "unit": "Count" if name == "RequestsPerMinute" else "MilliSeconds",
                          "timeseries": series, "errorCode": "Success"})
        return 200, {"cost": 0, "timespan": query["timespan"][0], "interval": interval, "value": value,
                     "namespace": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints",
                     "resourceregion": "westeurope"}, {}


def _summed(series: list[list[float | None]]) -> list[float | None] | None:
    if not series:
        return None
    width = max(len(s) for s in series)
    padded = [[None] * (width - len(s)) + s for s in series]
    out: list[float | None] = []
    for column in zip(*padded, strict=True):
        present = [v for v in column if v is not None]
        out.append(sum(present) if present else None)
    return out


def _version_key(v: str) -> tuple[int, str]:
    return (int(v), "") if v.isdigit() else (-1, v)


def _parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
