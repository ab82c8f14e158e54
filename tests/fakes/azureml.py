"""An Azure ML fake for tests: a stateful ARM + run-history server on 127.0.0.1 for the real ``MLClient``.

The real ``azure.ai.ml.MLClient`` is pointed at it through ``cloud_metadata`` (see :func:`ml_client`);
nothing in azure-ai-ml or azure-core is patched (CONVENTIONS rule 7). It serves what a pipeline-job
submit, poll, list-children and cancel need (``{ws}`` is
``/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices/workspaces/{ws}``):

* ``GET {ws}``: the workspace (location, discoveryUrl, storage account, ...);
* ``GET /discovery``: the workspace discovery document (``api`` points back at the fake);
* ``GET {ws}/computes/{name}``: a compute cluster, 404 ``ResourceNotFound`` unless it was added;
* ``PUT {ws}/environments/{name}/versions/{v}`` and ``PUT {ws}/components/{name}/versions/{v}``:
  stored and echoed back with an ARM ``id`` and ``systemData``;
* ``PUT {ws}/jobs/{name}``: the pipeline job; ``GET {ws}/jobs/{name}``; ``POST {ws}/jobs/{name}/cancel``
  (202 + ``Location``, the operation reports Succeeded on its first poll);
* ``GET /history/v1.0{ws}/runs/{id}`` and ``.../runs/{id}/children``: run-history records of the job and
  of its child (step) jobs, with ``error.error.message`` on failed ones.

Rules enforced (each answered the way ARM answers, so the SDK raises its real exception types):

* every ARM route needs an ``api-version`` query (400 ``MissingApiVersionParameter``), every request a
  ``Authorization: Bearer`` header (401 ``AuthenticationFailed``);
* a job PUT must have ``properties.jobType == "Pipeline"``, an ``x-azureml-token`` header, at least one
  node, and every node's ``componentId`` (a sweep node's ``trial``) must name a component PUT earlier
  (400 ``UserError``);
* unknown jobs, runs and computes are 404 ``ResourceNotFound``; cancelling a terminal job is 409
  ``Conflict``;
* job state advances on each job GET: NotStarted -> Queued -> Running -> Completed (or Failed, or
  Canceled after a cancel); child jobs appear once the job is Running, one per node;
* knobs: :meth:`AzureMLFake.fail_next` (the next submitted job fails at a node, with a message),
  :meth:`AzureMLFake.throttle` (the next N requests get 429 with ``Retry-After``),
  :meth:`AzureMLFake.forbid` (the next N matching requests, job PUTs by default, get 403
  ``AuthorizationFailed``), :meth:`AzureMLFake.add_compute`.

The model registry, managed online endpoints (deployments, traffic and mirror rules, long-running
operations), scoring and Azure Monitor metrics are served by ``fake.online``
(tests/fakes/_azureml_online.py, documented there and in tests/fakes/README.md); job schedules by
``fake.schedules`` (tests/fakes/_azureml_schedules.py, documented there).

GETs are safe to repeat (the SDK is chatty): tests never assert exact request counts. The server binds
127.0.0.1 only; a CONNECT or an absolute-URL request (a proxied outbound attempt, see the proxy tripwire
in :func:`azure_test_env`) is refused and recorded in ``outbound``.

Example::

    with azureml_fake() as fake, azure_test_env(fake):
        ml = ml_client(fake)
        ml.jobs.create_or_update(job)
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import os
import re
import socket
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fakes._azureml_code import CodeFake
from tests.fakes._azureml_online import OnlineFake
from tests.fakes._azureml_schedules import ScheduleFake

__all__ = ["AzureMLFake", "FakeCredential", "azure_test_env", "azureml_fake", "ml_client"]

SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
RESOURCE_GROUP = "rg-cloudml"
WORKSPACE = "ws-cloudml"
_TERMINAL = ("Completed", "Failed", "Canceled")
_PROGRESS = {"NotStarted": "Queued", "Queued": "Running", "Running": "Completed", "CancelRequested": "Canceled"}
_WS = re.compile(r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
                 r"Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/]+)(?P<rest>/.*)?$", re.IGNORECASE)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000+00:00", time.gmtime())


def _system_data() -> dict[str, Any]:
    now = _now()
    return {"createdAt": now, "createdBy": "cloudml-tests", "createdByType": "User", "lastModifiedAt": now,
            "lastModifiedBy": "cloudml-tests", "lastModifiedByType": "User"}


@dataclass
class FakeJob:
    """One stored pipeline job and its emulated progress."""

    name: str
    body: dict[str, Any]
    status: str = "NotStarted"
    fail_node: str | None = None
    fail_message: str = ""
    children: dict[str, str] = field(default_factory=dict)  # node -> status

    @property
    def nodes(self) -> list[str]:
        """Node names, in the order the job PUT listed them."""
        return list(self.body["properties"].get("jobs", {}))


class AzureMLFake:
    """The server state and its knobs; start it with :func:`azureml_fake`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.computes: set[str] = set()
        self.environments: dict[str, dict[str, Any]] = {}
        self.components: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, FakeJob] = {}
        self.outbound: list[str] = []
        self.requests: list[tuple[str, str, int]] = []
        self._throttle = 0
        self._retry_after = 0
        self._forbid = 0
        self._forbid_match = ("PUT", "/jobs/")
        self._fail: tuple[str, str] | None = None
        self.code = CodeFake(self)  # code versions and their blob uploads: tests/fakes/_azureml_code.py
        self.online = OnlineFake(self)  # registry, online endpoints, scoring, metrics: tests/fakes/_azureml_online.py
        self.schedules = ScheduleFake(self)  # job schedules: tests/fakes/_azureml_schedules.py
        # the managed-identity endpoint Azure ML compute exposes to a job (MSI_ENDPOINT / MSI_SECRET)
        self.msi_secret = "fake-msi-secret"
        self.msi_requests: list[dict[str, str]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.ws = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/"
                   f"Microsoft.MachineLearningServices/workspaces/{WORKSPACE}")

    # -- knobs ---------------------------------------------------------------------------------------------
    def add_compute(self, name: str) -> None:
        """Create a compute cluster the job may name."""
        self.computes.add(name)

    def fail_next(self, node: str, message: str) -> None:
        """The next submitted job fails at ``node`` with ``message`` (the nodes after it never run)."""
        self._fail = (node, message)

    def throttle(self, times: int, retry_after: int = 0) -> None:
        """Answer the next ``times`` requests with 429 and ``Retry-After``."""
        self._throttle, self._retry_after = times, retry_after

    def forbid(self, times: int = 1, method: str = "PUT", path_contains: str = "/jobs/") -> None:
        """Answer the next ``times`` matching requests (default: job PUTs) with 403 ``AuthorizationFailed``."""
        self._forbid, self._forbid_match = times, (method, path_contains)

    # -- state -----------------------------------------------------------------------------------------
    def job(self, name: str) -> FakeJob:
        """The stored job (KeyError if it was never PUT)."""
        return self.jobs[name]

    def _advance(self, job: FakeJob) -> None:
        if job.status in _TERMINAL:
            return
        nxt = _PROGRESS[job.status]
        if nxt == "Completed" and job.fail_node:
            nxt = "Failed"
        job.status = nxt
        if nxt == "Running":
            job.children = {n: "Running" for n in job.nodes}
        elif nxt in _TERMINAL:
            reached = True
            for n in job.nodes:
                if not reached:
                    job.children[n] = "Canceled" if nxt != "Completed" else "Completed"
                elif nxt == "Failed" and n == job.fail_node:
                    job.children[n], reached = "Failed", False
                else:
                    job.children[n] = "Canceled" if nxt == "Canceled" else "Completed"

    def _job_json(self, job: FakeJob) -> dict[str, Any]:
        body = copy.deepcopy(job.body)
        body["properties"]["status"] = job.status
        return {"id": f"{self.ws}/jobs/{job.name}", "name": job.name, "type": "Microsoft.MachineLearningServices/"
                "workspaces/jobs", "systemData": _system_data(), "properties": body["properties"]}

    def _run_json(self, run_id: str, name: str, status: str, error: str | None) -> dict[str, Any]:
        run: dict[str, Any] = {"runId": run_id, "displayName": name, "status": status, "createdUtc": _now(),
                               "experimentId": "cloudml", "properties": {}, "tags": {}}
        if error:
            run["error"] = {"error": {"code": "UserError", "message": error}}
        return run

    def _children(self, job: FakeJob) -> list[dict[str, Any]]:
        return [self._run_json(f"{job.name}_{n}", n, s,
                               job.fail_message if s == "Failed" else None) for n, s in job.children.items()]

    # -- routing -------------------------------------------------------------------------------------------
    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any, dict[str, str]]:
        """One request -> (status, JSON body or None, extra headers)."""
        url = urllib.parse.urlsplit(raw_path)
        query = urllib.parse.parse_qs(url.query)
        path = url.path
        if path == "/discovery":
            return 200, {"api": self.url, "catalog": self.url, "experimentation": self.url, "history": self.url,
                         "modelmanagement": self.url, "pipelines": self.url, "studio": self.url}, {}
        if path == MSI_PATH:  # the compute's managed identity: a token per resource, for the secret header
            return self._msi_token(query, headers)
        blob = self.code.blob(method, path, query, headers, body)  # SAS-authorised blob service, no bearer token
        if blob is not None:
            return blob
        if not headers.get("authorization", "").startswith("Bearer "):
            return _error(401, "AuthenticationFailed", "no bearer token in the Authorization header")
        with self.lock:
            if self._throttle > 0:
                self._throttle -= 1
                code, payload, extra = _error(429, "TooManyRequests", "the request rate is too high")
                return code, payload, {**extra, "Retry-After": str(self._retry_after)}
            if self._forbid > 0 and method == self._forbid_match[0] and self._forbid_match[1] in path:
                self._forbid -= 1
                return _error(403, "AuthorizationFailed", "the client does not have authorization to perform "
                              "action 'Microsoft.MachineLearningServices/workspaces/jobs/write'")
            faulted = self.online.take_fault(method, path)
            if faulted is not None:
                return faulted
            m = _WS.match(path)
            if m is None or "api-version" in query:
                routed = self.online.route(method, path, query, headers, body, m.group("rest") or "" if m else None)
                if routed is not None:
                    return routed
            if path.startswith("/history/v1.0/"):
                return self._history(method, path.removeprefix("/history/v1.0"))
            if path.startswith("/operations/"):
                return 200, {"status": "Succeeded"}, {}
            m = _WS.match(path)
            if not m:
                return _error(404, "NotFound", f"no route {method} {path}")
            if "api-version" not in query:
                return _error(400, "MissingApiVersionParameter", "the api-version query parameter is required")
            return self._arm(method, m.group("rest") or "", headers, body)

    def _msi_token(self, query: dict[str, list[str]], headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        """``GET /msi/token?api-version=2017-09-01&resource=R[&clientid=C]`` with header ``secret``: the
        App Service 2017-09-01 shape azure-identity's Azure ML managed identity source reads."""
        if headers.get("secret") != self.msi_secret:
            return 400, {"error": "invalid_request", "error_description": "wrong or missing secret header"}, {}
        resource = (query.get("resource") or [""])[0]
        self.msi_requests.append({"resource": resource, "clientid": (query.get("clientid") or [""])[0]})
        expires = int(time.time()) + 3600
        token = _jwt({"aud": resource.removesuffix(".default").rstrip("/"), "tid": str(uuid.UUID(int=1)),
                      "oid": str(uuid.UUID(int=3)), "exp": expires})
        return 200, {"access_token": token, "expires_on": expires, "resource": resource, "token_type": "Bearer"}, {}

    def _arm(self, method: str, rest: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any, dict[str, str]]:
        parts = [urllib.parse.unquote(p) for p in rest.split("/") if p]
        if not parts and method == "GET":
            return 200, self._workspace(), {}
        if len(parts) == 2 and parts[0] == "computes" and method == "GET":
            if parts[1] not in self.computes:
                return _error(404, "ResourceNotFound", f"compute {parts[1]} was not found")
            return 200, {"id": f"{self.ws}/computes/{parts[1]}", "name": parts[1], "location": "westeurope",
                         "type": "Microsoft.MachineLearningServices/workspaces/computes",
                         "systemData": _system_data(), "properties": {"computeType": "AmlCompute",
                                                                        "provisioningState": "Succeeded",
                                                                        "properties": {"vmSize": "Standard_DS3_v2"}}}, {}
        if len(parts) == 4 and parts[0] in ("environments", "components") and parts[2] == "versions":
            key = f"{parts[1]}/{parts[3]}"
            store = self.environments if parts[0] == "environments" else self.components
            if method == "PUT":
                payload = json.loads(raw or b"{}")
                store[key] = payload
            elif key not in store:
                return _error(404, "ResourceNotFound", f"{parts[0][:-1]} {key} was not found")
            out = {"id": f"{self.ws}/{parts[0]}/{parts[1]}/versions/{parts[3]}", "name": parts[3],
                   "systemData": _system_data(), **{k: v for k, v in store[key].items() if k != "id"}}
            return (201 if method == "PUT" else 200), out, {}
        scheduled = self.schedules.arm(method, parts, raw)
        if scheduled is not None:
            return scheduled
        code = self.code.arm(method, parts, raw)
        if code is not None:
            return code
        if len(parts) >= 2 and parts[0] == "jobs":
            return self._jobs(method, parts[1], parts[2:], headers, raw)
        return _error(404, "NotFound", f"no route {method} {rest}")

    def _workspace(self) -> dict[str, Any]:
        return {"id": self.ws, "name": WORKSPACE, "location": "westeurope", "kind": "Default",
                "type": "Microsoft.MachineLearningServices/workspaces", "systemData": _system_data(),
                "properties": {"workspaceId": str(uuid.UUID(int=7)), "discoveryUrl": f"{self.url}/discovery",
                               "mlFlowTrackingUri": f"azureml://{self.url}/mlflow",
                               "storageAccount": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/"
                               "providers/Microsoft.Storage/storageAccounts/cloudmlfake"}}

    def _jobs(self, method: str, name: str, extra: list[str], headers: dict[str, str],
              raw: bytes) -> tuple[int, Any, dict[str, str]]:
        if method == "PUT" and not extra:
            problem = self._job_problem(json.loads(raw or b"{}"), headers)
            if problem:
                return _error(400, "UserError", problem)
            job = FakeJob(name, json.loads(raw))
            if self._fail:
                job.fail_node, job.fail_message = self._fail
                self._fail = None
            self.jobs[name] = job
            return 201, self._job_json(job), {}
        if name not in self.jobs:
            return _error(404, "ResourceNotFound", f"job {name} was not found")
        job = self.jobs[name]
        if method == "GET" and not extra:
            self._advance(job)
            return 200, self._job_json(job), {}
        if method == "POST" and extra == ["cancel"]:
            if job.status in _TERMINAL:
                return _error(409, "Conflict", f"job {name} is {job.status} and cannot be canceled")
            job.status = "CancelRequested"
            return 202, None, {"Location": f"{self.url}/operations/{uuid.uuid4().hex}"}
        return _error(404, "NotFound", f"no route {method} jobs/{name}/{'/'.join(extra)}")

    def _job_problem(self, body: dict[str, Any], headers: dict[str, str]) -> str | None:
        props = body.get("properties", {})
        if props.get("jobType") != "Pipeline":
            return f"properties.jobType must be Pipeline, got {props.get('jobType')!r}"
        if not headers.get("x-azureml-token"):
            return "pipeline jobs need the x-azureml-token header"
        nodes = props.get("jobs") or {}
        if not nodes:
            return "a pipeline job needs at least one node"
        for node, spec in nodes.items():
            trial = spec.get("trial") if spec.get("type") == "sweep" else None  # a sweep node names its trial's
            ref = str(spec.get("componentId") or (trial.get("componentId") if isinstance(trial, dict) else trial) or "")
            m = re.search(r"/components/([^/]+)/versions/([^/]+)$", ref)
            if not m or f"{m.group(1)}/{m.group(2)}" not in self.components:
                return f"node {node}: component {ref or '(none)'} was not created"
        return None

    def _history(self, method: str, path: str) -> tuple[int, Any, dict[str, str]]:
        m = _WS.match(path)
        parts = [p for p in ((m.group("rest") or "") if m else "").split("/") if p]
        if method != "GET" or len(parts) < 2 or parts[0] != "runs":
            return _error(404, "NotFound", f"no route {method} {path}")
        run_id = parts[1]
        if run_id in self.jobs:
            job = self.jobs[run_id]
            if parts[2:] == ["children"]:
                return 200, {"value": self._children(job)}, {}
            failed = [f"step {n} failed: {job.fail_message}" for n, s in job.children.items() if s == "Failed"]
            return 200, self._run_json(run_id, job.name, job.status, "; ".join(failed) or None), {}
        for job in self.jobs.values():
            for child in self._children(job):
                if child["runId"] == run_id and not parts[2:]:
                    return 200, child, {}
        return _error(404, "ResourceNotFound", f"run {run_id} was not found")


MSI_PATH = "/msi/token"


def _error(status: int, code: str, message: str) -> tuple[int, Any, dict[str, str]]:
    return status, {"error": {"code": code, "message": message}}, {}


def _handler(fake: AzureMLFake) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def setup(self) -> None:
            super().setup()  # headers and body go out in two writes: without this, Nagle costs ~40 ms a request
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_CONNECT(self) -> None:
            fake.outbound.append(f"CONNECT {self.path}")
            self._send(403, {"error": {"code": "Outbound", "message": "no network in tests"}}, {})

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.path.startswith("http://") or self.path.startswith("https://"):
                fake.outbound.append(f"{self.command} {self.path}")
                self._send(403, {"error": {"code": "Outbound", "message": "no network in tests"}}, {})
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, payload, extra = fake.handle(self.command, self.path, headers, body)
            fake.requests.append((self.command, self.path, status))
            self._send(status, payload, extra)

        def _send(self, status: int, payload: Any, extra: dict[str, str]) -> None:
            data = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-ms-request-id", uuid.uuid4().hex)
            for k, v in extra.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = _any

    return Handler


@contextlib.contextmanager
def azureml_fake(cls: type[AzureMLFake] | None = None) -> Iterator[AzureMLFake]:
    """Start the fake (or a subclass, ``cls``) on 127.0.0.1 (a free port) in a thread; stop it on exit."""
    fake = (cls or AzureMLFake)()
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()


@contextlib.contextmanager
def azure_test_env(fake: AzureMLFake) -> Iterator[None]:
    """Hermetic SDK settings plus the proxy tripwire: outbound attempts reach the fake and are refused.

    Restores the environment on exit, including ``AZUREML_CURRENT_CLOUD``, which ``MLClient(cloud=...)``
    sets process-wide.
    """
    values = {"AZURE_ML_DISABLE_ON_DISK_CACHE": "true", "HTTP_PROXY": fake.url, "HTTPS_PROXY": fake.url,
              "http_proxy": fake.url, "https_proxy": fake.url, "NO_PROXY": "127.0.0.1,localhost",
              "no_proxy": "127.0.0.1,localhost"}
    old = {k: os.environ.get(k) for k in [*values, "AZUREML_CURRENT_CLOUD"]}  # MLClient(cloud=...) sets the last
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _jwt(claims: dict[str, Any]) -> str:
    def part(d: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


class FakeCredential:
    """An azure-core credential: unsigned JWTs whose ``aud`` is the scope's resource (as AAD issues them)."""

    def __init__(self) -> None:
        self.expires = int(time.time()) + 3600

    def _token(self, scopes: tuple[str, ...]) -> str:
        resource = scopes[0].removesuffix(".default").rstrip("/") if scopes else "https://management.azure.com"
        return _jwt({"aud": resource, "tid": str(uuid.UUID(int=1)), "oid": str(uuid.UUID(int=2)),
                     "exp": self.expires})

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        """An ``AccessToken``."""
        from azure.core.credentials import AccessToken

        return AccessToken(self._token(scopes), self.expires)

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        """An ``AccessTokenInfo`` (azure-core 1.41 asks for this one)."""
        from azure.core.credentials import AccessTokenInfo

        return AccessTokenInfo(self._token(scopes), self.expires)


def cloud_kwargs(fake: AzureMLFake) -> dict[str, Any]:
    """``MLClient`` keyword arguments that aim it at the fake (cloud metadata + the http-allowed policy)."""
    from azure.core.pipeline.policies import SansIOHTTPPolicy

    class AllowHttp(SansIOHTTPPolicy):  # type: ignore[type-arg]
        def on_request(self, request: Any) -> None:
            request.context["enforce_https"] = False

    metadata = {"azure_portal": fake.url + "/", "resource_manager": fake.url + "/",
                "active_directory": fake.url + "/", "aml_resource_id": fake.url + "/",
                "storage_endpoint": "core.windows.net", "registry_discovery_endpoint": fake.url + "/"}
    # azure-ai-ml registers a cloud once per name and process: one name per fake, or a second fake is never reached
    return {"cloud": f"CloudmlFake{fake.server.server_address[1]}", "cloud_metadata": metadata,
            "per_call_policies": [AllowHttp()],
            "enable_telemetry": False}


def ml_client(fake: AzureMLFake) -> Any:
    """A real ``MLClient`` aimed at the fake."""
    from azure.ai.ml import MLClient

    return MLClient(FakeCredential(), SUBSCRIPTION, RESOURCE_GROUP, WORKSPACE, **cloud_kwargs(fake))
