"""The Azure ML fake with data assets and the service's data-collector rules, for deploy.capture tests.

:class:`CaptureFake` extends :class:`tests.fakes.azureml.AzureMLFake` (started the same way, with
:func:`capture_fake`) with what a deployment that collects data needs:

* ``GET|PUT {ws}/data/{name}/versions/{v}`` and ``GET {ws}/data/{name}/versions``: data assets. A PUT
  on an existing version with a different ``dataUri`` is a 409 ``UserError`` whose message says the
  version "already exists" (azure-ai-ml then reads the existing one back, as against the service);
* ``GET {ws}/datastores/{name}``: the workspace's datastores (``workspaceblobstore`` and those added
  with :meth:`CaptureFake.add_datastore`); 404 for any other;
* the ``properties.dataCollector`` of a deployment PUT is checked before the online half stores the
  deployment (400 ``BadArgument``, messages like the service's): every collection has
  ``dataCollectionMode`` ``Enabled`` or ``Disabled``, a ``samplingRate`` in (0, 1] when set, a
  ``dataId`` naming a data asset of this workspace when set, a ``rollingRate`` of Minute, Hour or Day
  when set; payload logging needs both ``request`` and ``response`` or neither. The deployment GET
  answers with the body as stored, so the collector is kept.

What the real service checks on a collector beyond these is not known here (unverified).
"""

from __future__ import annotations

import contextlib
import json
import re
import urllib.parse
from collections.abc import Iterator
from typing import Any

from tests.fakes.azureml import _WS, AzureMLFake, _error, _system_data, azureml_fake

__all__ = ["CaptureFake", "capture_fake"]

Reply = tuple[int, Any, dict[str, str]]
_DEPLOYMENT = re.compile(r"^/onlineEndpoints/[^/]+/deployments/[^/]+/?$")


class CaptureFake(AzureMLFake):
    """The fake plus data assets, datastores and the data-collector rules of a deployment PUT."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[tuple[str, str], dict[str, Any]] = {}
        self.datastores: set[str] = {"workspaceblobstore"}
        self.collector_puts: list[dict[str, Any]] = []

    def add_datastore(self, name: str) -> None:
        """A datastore ``azureml://datastores/<name>/...`` paths may name."""
        self.datastores.add(name)

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Reply:
        """Data assets, datastores and collector checks first; everything else as the base fake."""
        url = urllib.parse.urlsplit(raw_path)
        m = _WS.match(url.path)
        if m is not None and headers.get("authorization", "").startswith("Bearer "):
            rest = m.group("rest") or ""
            parts = [urllib.parse.unquote(p) for p in rest.split("/") if p]
            with self.lock:
                if parts[:1] == ["data"]:
                    return self._data(method, parts[1:], body)
                if parts[:1] == ["datastores"] and len(parts) == 2 and method == "GET":
                    return self._datastore(parts[1])
                if method == "PUT" and _DEPLOYMENT.match(rest):
                    problem = self._collector_problem(json.loads(body or b"{}"))
                    if problem:
                        return _error(400, "BadArgument", problem)
        return super().handle(method, raw_path, headers, body)

    # -- data assets -----------------------------------------------------------------------------------
    def _data_json(self, name: str, version: str) -> dict[str, Any]:
        return {"id": f"{self.ws}/data/{name}/versions/{version}", "name": version,
                "type": "Microsoft.MachineLearningServices/workspaces/data/versions",
                "systemData": _system_data(), "properties": self.data[(name, version)]}

    def _data(self, method: str, parts: list[str], raw: bytes) -> Reply:
        if len(parts) == 2 and parts[1] == "versions" and method == "GET":
            rows = [self._data_json(n, v) for n, v in self.data if n == parts[0]]
            return 200, {"value": rows}, {}
        if len(parts) != 3 or parts[1] != "versions":
            return _error(404, "NotFound", f"no route {method} data/{'/'.join(parts)}")
        name, version = parts[0], parts[2]
        if method == "PUT":
            props = json.loads(raw or b"{}").get("properties", {})
            uri = str(props.get("dataUri") or "")
            if not uri.startswith(("azureml://", "https://", "wasbs://", "abfss://")):
                return _error(400, "UserError", f"data {name}:{version} needs a dataUri on a datastore, got {uri!r}")
            ds = re.match(r"^azureml://datastores/([^/]+)/paths/", uri)
            if ds and ds.group(1) not in self.datastores:
                return _error(400, "UserError", f"datastore {ds.group(1)} was not found in the workspace")
            kept = self.data.get((name, version))
            if kept is not None and kept.get("dataUri") != uri:
                return _error(409, "UserError", f"data {name} version {version} already exists with dataUri "
                              f"{kept.get('dataUri')}; use a new version")
            self.data[(name, version)] = {**props, "dataUri": uri}
            return (200 if kept else 201), self._data_json(name, version), {}
        if method == "GET":
            if (name, version) not in self.data:
                return _error(404, "UserError", f"data {name} version {version} was not found")
            return 200, self._data_json(name, version), {}
        return _error(404, "NotFound", f"no route {method} data/{'/'.join(parts)}")

    def _datastore(self, name: str) -> Reply:
        if name not in self.datastores:
            return _error(404, "UserError", f"datastore {name} was not found")
        return 200, {"id": f"{self.ws}/datastores/{name}", "name": name, "systemData": _system_data(),
                     "type": "Microsoft.MachineLearningServices/workspaces/datastores",
                     "properties": {"datastoreType": "AzureBlob", "accountName": "cloudmlfake",
                                    "containerName": f"azureml-{name}", "endpoint": "core.windows.net",
                                    "protocol": "https", "isDefault": name == "workspaceblobstore",
                                    "credentials": {"credentialsType": "None"}}}, {}

    # -- the collector rules --------------------------------------------------------------------------------
    def _collector_problem(self, body: dict[str, Any]) -> str | None:
        collector = (body.get("properties") or {}).get("dataCollector")
        if collector is None:
            return None
        self.collector_puts.append(collector)
        collections = collector.get("collections")
        if not isinstance(collections, dict) or not collections:
            return "dataCollector.collections must name at least one collection"
        rolling = collector.get("rollingRate")
        if rolling is not None and str(rolling).lower() not in ("minute", "hour", "day"):
            return f"dataCollector.rollingRate must be Minute, Hour or Day, got {rolling!r}"
        if ("request" in collections) != ("response" in collections):
            return "payload logging needs both the 'request' and the 'response' collections"
        for name, c in collections.items():
            mode = str((c or {}).get("dataCollectionMode") or "")
            if mode.lower() not in ("enabled", "disabled"):
                return f"collection {name}: dataCollectionMode must be Enabled or Disabled, got {mode!r}"
            rate = (c or {}).get("samplingRate")
            if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int | float)
                                     or not 0 < float(rate) <= 1):
                return f"collection {name}: samplingRate must be greater than 0 and at most 1, got {rate!r}"
            data_id = (c or {}).get("dataId")
            if data_id is not None:
                m = re.match(rf"^{re.escape(self.ws)}/data/([^/]+)/versions/([^/]+)$", str(data_id), re.IGNORECASE)
                if not m or (m.group(1), m.group(2)) not in self.data:
                    return f"collection {name}: dataId {data_id} is not a data asset of this workspace"
        return None


@contextlib.contextmanager
def capture_fake() -> Iterator[CaptureFake]:
    """Start a :class:`CaptureFake` on 127.0.0.1 (a free port) in a thread; stop it on exit."""
    with azureml_fake(CaptureFake) as fake:
        assert isinstance(fake, CaptureFake)
        yield fake
