"""A stateful fake of the Vertex AI REST API (pipeline jobs; models, endpoints and predictions; schedules;
hyperparameter tuning jobs), on 127.0.0.1 only.

Models, endpoints, deployed models, traffic splits and ``:predict`` come from
:class:`tests.fakes._vertex_endpoints.ModelsAndEndpoints`, which enforces the API's traffic rules.

The real google-cloud-aiplatform SDK talks to it over HTTP (``api_transport="rest"``); nothing is
monkeypatched and nothing reaches Google. It also answers the two Cloud Storage routes that
``PipelineJob.submit()`` calls when ``STORAGE_EMULATOR_HOST`` points here.

Example:
    >>> with VertexFake() as fake:
    ...     fake.url.startswith("http://127.0.0.1:")
    True
"""

from __future__ import annotations

import json
import re
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes._gcs import serve_object
from tests.fakes._vertex_endpoints import ApiError, ModelsAndEndpoints
from tests.fakes._vertex_schedules import ScheduleRoutes
from tests.fakes._vertex_tuning import TuningRoutes

__all__ = ["FakeJob", "VertexFake", "vertex_fake"]

_JOB_ID = re.compile(r"^[a-z][-a-z0-9]{0,127}$")
_COLLECTION = re.compile(r"^/v1/projects/([^/]+)/locations/([^/]+)/pipelineJobs$")
_JOB = re.compile(r"^/v1/(projects/[^/]+/locations/[^/]+/pipelineJobs/[^/:]+)(:cancel)?$")
TERMINAL = ("PIPELINE_STATE_SUCCEEDED", "PIPELINE_STATE_FAILED", "PIPELINE_STATE_CANCELLED")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass
class FakeJob:
    """One stored pipeline job: the request as received plus the fake's progress through it."""

    name: str
    body: dict[str, Any]
    tasks: list[str]
    state: str = "PIPELINE_STATE_PENDING"
    fail_task: str | None = None
    fail_message: str = ""
    create_time: str = field(default_factory=_now)
    gets: int = 0

    @property
    def parameter_values(self) -> dict[str, Any]:
        """``runtimeConfig.parameterValues`` exactly as the client sent them (integers arrive as doubles)."""
        return dict(self.body.get("runtimeConfig", {}).get("parameterValues", {}))

    def advance(self) -> None:
        """One step of the state machine: PENDING -> RUNNING -> SUCCEEDED (or FAILED); CANCELLING -> CANCELLED."""
        if self.state == "PIPELINE_STATE_PENDING":
            self.state = "PIPELINE_STATE_RUNNING"
        elif self.state == "PIPELINE_STATE_RUNNING":
            self.state = "PIPELINE_STATE_FAILED" if self.fail_task else "PIPELINE_STATE_SUCCEEDED"
        elif self.state == "PIPELINE_STATE_CANCELLING":
            self.state = "PIPELINE_STATE_CANCELLED"

    def task_details(self) -> list[dict[str, Any]]:
        """Per-task details for the current state (tasks listed in DAG order)."""
        out: list[dict[str, Any]] = []
        failed_seen = False
        for i, task in enumerate(self.tasks):
            if self.state == "PIPELINE_STATE_PENDING":
                break
            if self.state == "PIPELINE_STATE_RUNNING":
                state = "RUNNING" if i == 0 else "PENDING"
            elif self.state == "PIPELINE_STATE_SUCCEEDED":
                state = "SUCCEEDED"
            elif self.state == "PIPELINE_STATE_FAILED":
                state = "NOT_TRIGGERED" if failed_seen else ("FAILED" if task == self.fail_task else "SUCCEEDED")
                failed_seen = failed_seen or task == self.fail_task
            else:  # cancelling / cancelled
                state = "SUCCEEDED" if i == 0 else "CANCELLED"
            row: dict[str, Any] = {"taskId": str(1000 + i), "taskName": task, "state": state,
                                   "createTime": self.create_time}
            if state == "FAILED":
                row["error"] = {"code": 9, "message": self.fail_message}
            if state in ("RUNNING", "SUCCEEDED", "FAILED") and not task.startswith("condition-"):
                # a container task runs as a custom job (sub-DAG condition tasks do not)
                parent, number = self.name.split("/pipelineJobs/")[0], zlib.crc32(f"{self.name}/{task}".encode())
                row["executorDetail"] = {"containerDetail": {"mainJob": f"{parent}/customJobs/{number}"}}
            out.append(row)
        return out

    def resource(self) -> dict[str, Any]:
        """The PipelineJob resource as the REST API returns it."""
        job = {**self.body, "name": self.name, "state": self.state, "createTime": self.create_time,
               "updateTime": _now(), "jobDetail": {"taskDetails": self.task_details()}}
        if self.state == "PIPELINE_STATE_FAILED":
            job["error"] = {"code": 9, "message": "The DAG failed because some tasks failed. The failed tasks are: "
                            f"[{self.fail_task}]."}
        if self.state == "PIPELINE_STATE_CANCELLED":
            job["error"] = {"code": 1, "message": "CANCELLED"}
        return job


def _dag_tasks(spec: dict[str, Any], dag: dict[str, Any]) -> list[str]:
    """Every task name of a DAG and of the sub-DAGs it calls, dependencies first."""
    tasks = dict(dag.get("tasks", {}))
    done: list[str] = []
    while len(done) < len(tasks):
        ready = [n for n, t in tasks.items() if n not in done and all(d in done for d in t.get("dependentTasks", []))]
        if not ready:  # a cycle: validate_ir rejects those; list the rest as they come
            ready = [n for n in tasks if n not in done]
        done.append(ready[0])
    out: list[str] = []
    for name in done:
        out.append(name)
        comp = spec.get("components", {}).get(tasks[name].get("componentRef", {}).get("name", ""), {})
        if "dag" in comp:
            out += _dag_tasks(spec, comp["dag"])
    return out


class VertexFake(ModelsAndEndpoints):
    """The fake server. ``jobs`` holds state; ``fail_next``, ``inject`` and ``paused`` are the test knobs.

    - ``fail_next(task, message)``: the next created job fails at ``task`` (earlier tasks succeed, later
      ones are NOT_TRIGGERED) and the job error names the task.
    - ``inject(code, times=1)``: the next ``times`` Vertex requests get HTTP ``code`` (429, 403, 503...).
    - ``paused = True``: GETs no longer advance jobs (to cancel a job that is surely running).
    - ``advance_per_get = 2``: each GET advances a job two states (a new job reads finished on its first GET).

    Example:
        >>> with VertexFake() as fake:
        ...     fake.inject(429, times=2); len(fake.faults)
        2
    """

    def __init__(self, project: str = "test-proj", location: str = "us-central1") -> None:
        self.project, self.location = project, location
        self.jobs: dict[str, FakeJob] = {}
        self.faults: list[tuple[int, str]] = []
        self.requests: list[tuple[str, str, int]] = []
        self.objects: dict[str, bytes] = {}  # Cloud Storage objects (code bundles), "gs://bucket/name" -> bytes
        self.paused = False
        self.advance_per_get = 1
        self._fail_next: tuple[str, str] | None = None
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        ModelsAndEndpoints.__init__(self)
        self.schedules = ScheduleRoutes(self.check_job, ApiError)  # tests/fakes/_vertex_schedules.py
        self.tuning = TuningRoutes(ApiError)  # hyperparameter tuning jobs: tests/fakes/_vertex_tuning.py

    # -- lifecycle ------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        assert self._server is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> VertexFake:
        """Bind to a free port on 127.0.0.1 and serve on a daemon thread."""
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and free the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> VertexFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- knobs ----------------------------------------------------------------------------------------
    def fail_next(self, task: str, message: str = "The replica workerpool0-0 exited with a non-zero status of 1.") -> None:
        """Make the next created job fail at ``task`` with ``message``."""
        with self._lock:
            self._fail_next = (task, message)

    def inject(self, code: int, times: int = 1, message: str = "") -> None:
        """Answer the next ``times`` Vertex API requests with HTTP ``code`` (Google-style error body)."""
        text = message or {429: "Quota exceeded for aiplatform.googleapis.com/pipeline_job_creation_requests.",
                           403: "Permission 'aiplatform.pipelineJobs.create' denied on resource "
                                f"'//aiplatform.googleapis.com/projects/{self.project}/locations/{self.location}' "
                                "(or it may not exist)."}.get(code, f"injected {code}")
        with self._lock:
            self.faults += [(code, text)] * times

    def job(self, job_id: str) -> FakeJob:
        """A stored job by id or full resource name (KeyError when unknown)."""
        with self._lock:
            for name, job in self.jobs.items():
                if name == job_id or name.rsplit("/", 1)[-1] == job_id:
                    return job
        raise KeyError(job_id)

    # -- the API --------------------------------------------------------------------------------------
    def create(self, project: str, location: str, query: dict[str, list[str]], body: dict[str, Any]) -> dict[str, Any]:
        """POST .../pipelineJobs: the rules the notes list (``check_job``), then a PENDING job."""
        job_id = (query.get("pipelineJobId") or [""])[0]
        if not job_id:
            job_id = re.sub(r"[^-0-9a-z]", "-", str(body.get("displayName", "job")).lower()) + "-" + \
                datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S%f")
        if not _JOB_ID.match(job_id):
            raise ApiError(400, f"pipelineJobId '{job_id}' must match {_JOB_ID.pattern}")
        spec = self.check_job(project, location, body)
        name = f"projects/{project}/locations/{location}/pipelineJobs/{job_id}"
        with self._lock:
            if name in self.jobs:
                raise ApiError(409, f"PipelineJob {name} already exists")
            job = FakeJob(name, body, _dag_tasks(spec, spec.get("root", {}).get("dag", {})))
            if self._fail_next:
                job.fail_task, job.fail_message = self._fail_next
                self._fail_next = None
            self.jobs[name] = job
            return job.resource()

    def check_job(self, project: str, location: str, body: dict[str, Any]) -> dict[str, Any]:
        """The rules a PipelineJob body must meet (a create, or a schedule's run request); returns its spec."""
        from cloudml.adapters.vertex.validate import validate_ir

        spec = body.get("pipelineSpec")
        if not isinstance(spec, dict) or not spec:
            raise ApiError(400, "pipeline_job.pipeline_spec is required")
        if len(str(body.get("displayName", ""))) > 128:
            raise ApiError(400, "display_name must be at most 128 characters")
        problems = validate_ir(spec)
        if problems:
            raise ApiError(400, "Invalid pipeline spec: " + "; ".join(problems[:5]))
        runtime = body.get("runtimeConfig") or {}
        if not runtime.get("gcsOutputDirectory") and not spec.get("defaultPipelineRoot"):
            raise ApiError(400, "pipeline root (runtime_config.gcs_output_directory) is required")
        declared = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
        values = runtime.get("parameterValues") or {}
        for name in values:
            if name not in declared:
                raise ApiError(400, f"The pipeline parameter {name} is not found in the pipeline job input definitions.")
        for name, d in declared.items():
            if name not in values and "defaultValue" not in d and not d.get("isOptional"):
                raise ApiError(400, f"The pipeline parameter {name} is required but no value was given.")
        return spec

    def fire_schedule(self, name: str) -> FakeJob | None:
        """What Vertex does at a fire time: create a job from the schedule's request, unless the schedule is
        not ACTIVE or already has ``maxConcurrentActiveRunCount`` unfinished runs (then the time is skipped,
        as without ``allowQueueing``). Returns the new job, or None when skipped."""
        with self._lock:
            s = self.schedules._find(name)
            mine = [j for j in self.jobs.values() if j.body.get("scheduleName") == name and j.state not in TERMINAL]
            limit = int(s.get("maxConcurrentActiveRunCount") or 0)
            if s["state"] != "ACTIVE" or (limit and len(mine) >= limit):
                return None
            request = s["createPipelineJobRequest"]
            project, location = request["parent"].split("/")[1], request["parent"].split("/")[3]
            body = {**request["pipelineJob"], "scheduleName": name}
            stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S%f")
            job = self.create(project, location, {"pipelineJobId": [f"{s['displayName'][:90]}-{stamp}".lower()]}, body)
            s["startedRunCount"] = str(int(s.get("startedRunCount", "0")) + 1)
            return self.jobs[job["name"]]

    def get(self, name: str) -> dict[str, Any]:
        """GET a job; each GET advances it one state (unless ``paused``)."""
        with self._lock:
            job = self._find(name)
            job.gets += 1
            if not self.paused:
                for _ in range(self.advance_per_get):
                    job.advance()
            return job.resource()

    def cancel(self, name: str) -> dict[str, Any]:
        """POST :cancel: only a non-terminal job; it reads CANCELLING, then CANCELLED."""
        with self._lock:
            job = self._find(name)
            if job.state in TERMINAL or job.state == "PIPELINE_STATE_CANCELLING":
                raise ApiError(400, f"Cannot cancel pipeline job {name} in state {job.state}.", "FAILED_PRECONDITION")
            job.state = "PIPELINE_STATE_CANCELLING"
            return {}

    def list(self, project: str, location: str) -> dict[str, Any]:
        """GET .../pipelineJobs (one page)."""
        prefix = f"projects/{project}/locations/{location}/pipelineJobs/"
        with self._lock:
            return {"pipelineJobs": [j.resource() for n, j in self.jobs.items() if n.startswith(prefix)]}

    def _find(self, name: str) -> FakeJob:
        if name not in self.jobs:
            raise ApiError(404, f"The PipelineJob \"{name}\" does not exist.")
        return self.jobs[name]

    def take_fault(self) -> tuple[int, str] | None:
        """The next injected fault, if any (consumed)."""
        with self._lock:
            return self.faults.pop(0) if self.faults else None


class _Handler(BaseHTTPRequestHandler):
    owner: VertexFake
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        parts = urlsplit(self.path)
        with self.owner._lock:  # logged before the answer leaves, so a caller never sees it before the log does
            self.owner.requests.append((self.command, parts.path, code))
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return {}
        try:
            data = json.loads(raw)
        except ValueError:
            raise ApiError(400, "Invalid JSON payload received.") from None
        if not isinstance(data, dict):
            raise ApiError(400, "Invalid JSON payload received: expected an object.")
        return data

    def _storage(self, path: str) -> None:
        """Cloud Storage as ``PipelineJob.submit()`` sees it: the bucket never exists, creating it works.

        A bucket that exists makes the SDK verify its owner through Resource Manager (gRPC to Google),
        which a fake on 127.0.0.1 cannot answer; a missing one is created and, when the job names a
        service account, granted to it, all through routes served here.
        """
        body = self._body()
        rest = path[len("/storage/v1/b"):].strip("/")
        if self.command == "GET" and rest and "/" not in rest:
            raise ApiError(404, f"The specified bucket does not exist: {rest}", "NOT_FOUND")
        if rest.endswith("/iam"):
            self._send(200, {"kind": "storage#policy", "bindings": body.get("bindings", []), "etag": "CAE="})
            return
        name = str(body.get("name") or rest or "bucket")
        self._send(200, {"kind": "storage#bucket", "name": name, "location": self.owner.location.upper()})

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query)
        fake = self.owner
        try:
            if serve_object(self, path, query):  # Cloud Storage objects: code bundle uploads (tests/fakes/_gcs.py)
                return
            if path.startswith("/storage/v1/b"):  # PipelineJob.submit's bucket check (STORAGE_EMULATOR_HOST)
                self._storage(path)
                return
            fault = fake.take_fault()
            if fault is not None:
                self._body()
                raise ApiError(*fault)
            m = _COLLECTION.match(path)
            if m and self.command == "POST":
                self._send(200, fake.create(m[1], m[2], query, self._body()))
                return
            if m and self.command == "GET":
                self._send(200, fake.list(m[1], m[2]))
                return
            if "/hyperparameterTuningJobs" in path:  # JobService tuning jobs (tests/fakes/_vertex_tuning.py)
                answer = fake.tuning.route(self.command, path, query, self._body())
                if answer is None:
                    raise ApiError(404, f"the fake does not serve {self.command} {path}")
                self._send(200, answer)
                return
            if "/schedules" in path:  # ScheduleService (tests/fakes/_vertex_schedules.py); the body is read once
                answer = fake.schedules.route(self.command, path, query, self._body())
                if answer is None:
                    raise ApiError(404, f"the fake does not serve {self.command} {path}")
                self._send(200, answer)
                return
            m = _JOB.match(path)
            if not m:
                answer = fake.route(self.command, path, query, self._body())
                if answer is not None:
                    if fake.take_lost(self.command, path):  # the change is made, but the caller never hears so
                        raise ApiError(503, "The service is currently unavailable (injected after the change).")
                    self._send(200, answer)
                    return
            if m and self.command == "GET" and not m[2]:
                self._send(200, fake.get(m[1]))
                return
            if m and self.command == "POST" and m[2]:
                self._body()
                self._send(200, fake.cancel(m[1]))
                return
            raise ApiError(404, f"the fake does not serve {self.command} {path}")
        except ApiError as e:
            self._send(e.code, e.body())

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch


@contextmanager
def vertex_fake(**options: Any) -> Iterator[VertexFake]:
    """Start a :class:`VertexFake`, yield it, and stop it.

    Example:
        >>> with vertex_fake() as fake:
        ...     fake.jobs
        {}
    """
    fake = VertexFake(**options).start()
    try:
        yield fake
    finally:
        fake.close()
