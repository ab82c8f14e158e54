"""The Vertex AI client: pipeline runs through google-cloud-aiplatform. Needs ``cloudml[gcp]``.

Built: submitting a compiled KFP IR as a ``PipelineJob``, reading its state and task details,
waiting and cancelling. Not built yet: the model registry and endpoints (issue 6).

Every ``google.api_core`` error is translated to a cloudml error at this boundary (see ``translate``);
throttling (429) and unavailable (503) answers are retried with backoff before they surface. The SDK is
imported lazily, inside the client, so ``import cloudml`` stays light.

Example:
    >>> RUN_STATES["PIPELINE_STATE_SUCCEEDED"], STEP_STATES["NOT_TRIGGERED"]
    ('succeeded', 'skipped')
"""

from __future__ import annotations

import json
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from cloudml.errors import (
    AdapterNotInstalledError,
    BackendError,
    BackendValidationError,
    ConfigError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ServiceUnavailableError,
    ThrottlingError,
)

__all__ = ["ERROR_CODES", "RUN_STATES", "STEP_STATES", "VertexClient", "VertexRun", "job_id_for", "translate",
           "translate_code"]

T = TypeVar("T")

RUN_STATES = {
    "PIPELINE_STATE_UNSPECIFIED": "pending", "PIPELINE_STATE_QUEUED": "pending", "PIPELINE_STATE_PENDING": "pending",
    "PIPELINE_STATE_RUNNING": "running", "PIPELINE_STATE_SUCCEEDED": "succeeded", "PIPELINE_STATE_FAILED": "failed",
    "PIPELINE_STATE_CANCELLING": "running", "PIPELINE_STATE_CANCELLED": "cancelled", "PIPELINE_STATE_PAUSED": "running",
}
STEP_STATES = {
    "STATE_UNSPECIFIED": "pending", "PENDING": "pending", "RUNNING": "running", "SUCCEEDED": "succeeded",
    "CANCEL_PENDING": "running", "CANCELLING": "running", "CANCELLED": "cancelled", "FAILED": "failed",
    "SKIPPED": "skipped", "NOT_TRIGGERED": "skipped",
}
TERMINAL = ("succeeded", "failed", "cancelled")
# google.rpc status names (what api_core exceptions carry as ``grpc_status_code.name``) and HTTP codes.
ERROR_CODES: dict[str, type[BackendError]] = {
    "NOT_FOUND": NotFoundError, "404": NotFoundError,
    "PERMISSION_DENIED": PermissionDeniedError, "UNAUTHENTICATED": PermissionDeniedError, "403": PermissionDeniedError,
    "401": PermissionDeniedError,
    "RESOURCE_EXHAUSTED": ThrottlingError, "429": ThrottlingError,
    "INVALID_ARGUMENT": BackendValidationError, "OUT_OF_RANGE": BackendValidationError, "400": BackendValidationError,
    "FAILED_PRECONDITION": ConflictError, "ALREADY_EXISTS": ConflictError, "ABORTED": ConflictError,
    "409": ConflictError,
    "UNIMPLEMENTED": BackendValidationError, "501": BackendValidationError, "405": BackendValidationError,
    "411": BackendValidationError, "416": BackendValidationError, "412": ConflictError,
    "UNAVAILABLE": ServiceUnavailableError, "INTERNAL": ServiceUnavailableError,
    "DEADLINE_EXCEEDED": ServiceUnavailableError, "500": ServiceUnavailableError, "503": ServiceUnavailableError,
    "504": ServiceUnavailableError,
}
_HINTS: dict[type[BackendError], str] = {
    NotFoundError: "check the run id (a job id or projects/P/locations/L/pipelineJobs/ID) and that "
                   "vertex.project and vertex.location name where it ran (the console's Vertex AI Pipelines "
                   "page lists runs)",
    PermissionDeniedError: "grant the caller roles/aiplatform.user (and the run's service account "
                           "roles/storage.objectAdmin on the pipeline root); check `gcloud auth "
                           "application-default login`",
    ThrottlingError: "Vertex AI quota exceeded (about 60 job submissions a minute per region); retry later "
                     "or ask for more quota",
    BackendValidationError: "Vertex AI rejected the request; `cloudml compile --target vertex` and check "
                            "the parameter names and types",
    ConflictError: "the job is not in a state that allows this (already finished, or the job id exists); "
                   "check it with cloudml runs show RUN_ID --backend vertex",
    ServiceUnavailableError: "Vertex AI is unavailable or timed out; retry later",
}
_LOCK = threading.Lock()  # aiplatform.init is process-global; init + construct happen under this lock


def translate_code(code: str) -> type[BackendError]:
    """The cloudml error class for a google.rpc status name or an HTTP status code.

    Example:
        >>> translate_code("RESOURCE_EXHAUSTED").__name__, translate_code("403").__name__
        ('ThrottlingError', 'PermissionDeniedError')
    """
    if code in ERROR_CODES:
        return ERROR_CODES[code]
    return ServiceUnavailableError if code.isdigit() and int(code) >= 500 else BackendError


def translate(exc: Exception, action: str) -> BackendError:
    """A google.api_core / google.auth exception as a cloudml error (raise it ``from exc``).

    Example:
        >>> from google.api_core import exceptions as gexc
        >>> err = translate(gexc.NotFound("job x does not exist"), "get run x")
        >>> type(err).__name__, err.vendor_code, "vertex.location" in (err.hint or "")
        ('NotFoundError', 'NOT_FOUND', True)
    """
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    if isinstance(exc, gexc.GoogleAPICallError):
        code = _status_name(exc)
        cls = translate_code(code)
        if cls is BackendError and exc.code is not None:
            cls = translate_code(str(exc.code))
        if cls is BackendError and isinstance(exc, gexc.ServerError):
            cls = ServiceUnavailableError
        message = _REST_PREFIX.sub("", exc.message or str(exc))
        return cls(f"{action}: {message}", backend="vertex", vendor_code=code, hint=_HINTS.get(cls))
    if isinstance(exc, auth_exc.DefaultCredentialsError):
        return PermissionDeniedError(f"{action}: no Google Cloud credentials", backend="vertex",
                                     hint="run `gcloud auth application-default login` or set "
                                          "GOOGLE_APPLICATION_CREDENTIALS")
    if isinstance(exc, auth_exc.GoogleAuthError):
        return PermissionDeniedError(f"{action}: {exc}", backend="vertex", hint=_HINTS[PermissionDeniedError])
    if isinstance(exc, ValueError):  # the SDK's own checks (unknown parameter names, bad values)
        return BackendValidationError(f"{action}: {exc}", backend="vertex", hint=_HINTS[BackendValidationError])
    raise exc


_REST_PREFIX = re.compile(r"^(GET|POST|PUT|PATCH|DELETE) \S+: ")


def _status_name(exc: Any) -> str:
    """The google.rpc status name: the REST error body's ``status`` (FAILED_PRECONDITION travels as HTTP 400)."""
    response = getattr(exc, "response", None)
    try:
        status = response.json()["error"]["status"] if response is not None else None
    except Exception:  # not JSON, or not a requests response
        status = None
    if status:
        return str(status)
    grpc_code = getattr(exc, "grpc_status_code", None)
    return str(grpc_code.name) if grpc_code is not None else str(exc.code or "")


def job_id_for(pipeline: str) -> str:
    """A fresh job id: ``<pipeline name, lowercased, [^-0-9a-z] -> ->-<UTC stamp>-<random>`` (≤ 128 chars).

    Example:
        >>> job_id_for("Churn_Train").startswith("churn-train-")
        True
    """
    base = re.sub(r"[^-0-9a-z]", "-", pipeline.lower()).strip("-") or "run"
    if not base[0].isalpha():
        base = "p-" + base
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
    return f"{base[:100]}-{stamp}-{uuid.uuid4().hex[:6]}"


def _enum_name(value: Any) -> str:
    return str(getattr(value, "name", value))


@dataclass
class VertexRun:
    """A Vertex AI pipeline job: ``id``, ``status``, ``error``, ``steps``, ``wait``, ``cancel``, ``logs``.

    ``id`` is the full resource name ``projects/P/locations/L/pipelineJobs/ID``. Every read of
    ``status``, ``error`` or ``steps`` fetches the job again (``client.get_job``).

    Example (a stand-in client instead of Vertex):
        >>> from types import SimpleNamespace as NS
        >>> task = NS(task_name="train", state=NS(name="FAILED"), error=NS(message="exit 2"), task_id=7)
        >>> job = NS(state=NS(name="PIPELINE_STATE_FAILED"), error=NS(message="DAG failed"),
        ...          job_detail=NS(task_details=[task]))
        >>> run = VertexRun(NS(get_job=lambda name: NS(gca_resource=job)), "projects/p/locations/l/pipelineJobs/j")
        >>> run.wait(timeout=1, poll=0.01), run.error
        ('failed', "step 'train' failed: exit 2")
        >>> run.steps
        [{'name': 'train', 'status': 'failed', 'error': 'exit 2', 'task_id': '7', 'job': None}]
    """

    client: VertexClient
    name: str

    def __repr__(self) -> str:
        return f"VertexRun({self.name!r})"

    @property
    def id(self) -> str:
        """The job's resource name."""
        return self.name

    def _resource(self) -> Any:
        return self.client.get_job(self.name).gca_resource

    @property
    def status(self) -> str:
        """Neutral status: pending, running, succeeded, failed or cancelled."""
        return RUN_STATES.get(_enum_name(self._resource().state), "running")

    @property
    def error(self) -> str | None:
        """Why the job failed, naming the failed tasks; None while it has not failed."""
        res = self._resource()
        status = RUN_STATES.get(_enum_name(res.state), "running")
        job_error = res.error.message if res.error and res.error.message else None
        if status != "failed":
            return job_error if status == "cancelled" else None
        failed = [s for s in _steps(res) if s["status"] == "failed"]
        if failed:
            return "; ".join(f"step '{s['name']}' failed: {s['error'] or 'no reason given'}" for s in failed)
        return job_error or "pipeline job failed"

    @property
    def steps(self) -> list[dict[str, Any]]:
        """One entry per task in the job's task details: name, neutral status, error, task id."""
        return _steps(self._resource())

    def step(self, name: str) -> dict[str, Any]:
        """The entry of one task (KeyError when the job has no such task).

        Example (a stand-in client instead of Vertex):
            >>> from types import SimpleNamespace as NS
            >>> job = NS(state=NS(name="PIPELINE_STATE_RUNNING"), job_detail=NS(task_details=[]))
            >>> VertexRun(NS(get_job=lambda name: NS(gca_resource=job)), "projects/p/locations/l/pipelineJobs/j").step("x")
            Traceback (most recent call last):
            ...
            KeyError: 'x'
        """
        for row in self.steps:
            if row["name"] == name:
                return row
        raise KeyError(name)

    def logs(self, step: str, attempt: int | None = None, stream: str = "stdout") -> str:
        """Where a task's logs are: a Cloud Logging filter and a Logs Explorer link. Logs are not fetched.

        A task that ran a container has a Vertex custom job (the task details' ``main_job``); its logs
        are ``resource.type="ml_job"`` with that job's id, stdout and stderr together (``attempt`` and
        ``stream`` cannot narrow them). Before the task has a job (pending, skipped, cached), the filter
        is the pipeline job's own log. Reading the entries would need google-cloud-logging and the
        ``logging.viewer`` role, which this client does not assume.

        Example (a stand-in client instead of Vertex):
            >>> from types import SimpleNamespace as NS
            >>> detail = NS(container_detail=NS(main_job="projects/1/locations/l/customJobs/77"))
            >>> task = NS(task_name="train", state=NS(name="RUNNING"), error=None, task_id=7, executor_detail=detail)
            >>> job = NS(state=NS(name="PIPELINE_STATE_RUNNING"), job_detail=NS(task_details=[task]))
            >>> run = VertexRun(NS(get_job=lambda name: NS(gca_resource=job)), "projects/p/locations/l/pipelineJobs/j")
            >>> print(run.logs("train").splitlines()[0])
            Cloud Logging (project p): resource.type="ml_job" resource.labels.job_id="77"
        """
        parts = self.name.split("/")
        project, job = (parts[1], parts[-1]) if len(parts) >= 6 else ("", self.name)
        row = self.step(step)
        if row.get("job"):
            query = f'resource.type="ml_job" resource.labels.job_id="{str(row["job"]).rsplit("/", 1)[-1]}"'
        else:
            query = (f'resource.type="aiplatform.googleapis.com/PipelineJob" '
                     f'resource.labels.pipeline_job_id="{job}"')
        from urllib.parse import quote

        url = f"https://console.cloud.google.com/logs/query;query={quote(query, safe='')}?project={project}"
        return f"Cloud Logging (project {project}): {query}\n{url}\n"

    def wait(self, timeout: float | None = None, poll: float = 10.0) -> str:
        """Poll until the job ends or ``timeout`` seconds pass; returns the neutral status.

        Example: see :class:`VertexRun` (``run.wait(timeout=1, poll=0.01)`` returned ``'failed'``).
        """
        deadline = None if timeout is None else time.time() + timeout
        while True:
            status = self.status
            now = time.time()
            if status in TERMINAL or (deadline is not None and now >= deadline):
                return status
            time.sleep(poll if deadline is None else max(0.0, min(poll, deadline - now)))

    def cancel(self) -> None:
        """Ask Vertex to cancel the job (it moves to CANCELLING, then CANCELLED).

        A finished job answers FAILED_PRECONDITION, raised as ConflictError.

        Example:
            >>> from types import SimpleNamespace as NS
            >>> asked = []
            >>> client = NS(get_job=lambda name: NS(cancel=lambda: asked.append(name)), call=lambda a, fn: fn())
            >>> VertexRun(client, "projects/p/locations/l/pipelineJobs/j").cancel(); asked
            ['projects/p/locations/l/pipelineJobs/j']
        """
        job = self.client.get_job(self.name)
        self.client.call(f"cancel run {self.name}", job.cancel)


def _steps(resource: Any) -> list[dict[str, Any]]:
    out = []
    for t in resource.job_detail.task_details:
        err = t.error.message if t.error and t.error.message else None
        out.append({"name": t.task_name, "status": STEP_STATES.get(_enum_name(t.state), "pending"),
                    "error": err, "task_id": str(t.task_id), "job": _main_job(t)})
    return out


def _main_job(task: Any) -> str | None:
    """The Vertex custom job a container task ran as (None before it has one, or for a DAG task)."""
    detail = getattr(task, "executor_detail", None)
    container = getattr(detail, "container_detail", None)
    job = getattr(container, "main_job", None) or getattr(getattr(detail, "custom_job_detail", None), "job", None)
    return str(job) if job else None


class VertexClient:
    """google-cloud-aiplatform for pipeline runs, with retries and translated errors.

    ``api_endpoint`` (or ``settings.api_endpoint``) overrides the Vertex endpoint; an ``http://`` one
    (a local fake) switches to the REST transport and, unless ``credentials`` are given, to anonymous
    credentials (no token is ever sent in clear text). Otherwise ``credentials`` default to
    Application Default Credentials.

    Example:
        >>> from cloudml.config import VertexSettings
        >>> VertexClient(VertexSettings(project="my-project"), retry_delay=0.5).max_attempts
        5
    """

    def __init__(self, settings: Any, credentials: Any = None, api_endpoint: str | None = None, *,
                 max_attempts: int = 5, retry_delay: float = 1.0) -> None:
        self.settings = settings
        self.credentials = credentials
        self.api_endpoint = api_endpoint or getattr(settings, "api_endpoint", None)
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay

    def _sdk(self) -> Any:
        try:
            from google.cloud import aiplatform
        except ImportError:
            raise AdapterNotInstalledError("vertex", "gcp", ["google-cloud-aiplatform"]) from None
        return aiplatform

    def _require_project(self) -> None:
        if not self.settings.project:
            raise ConfigError("Vertex AI needs a project", hint="set vertex.project in cloudml.yaml or "
                              "CLOUDML_VERTEX_PROJECT")

    def _init(self, aiplatform: Any) -> None:
        self._require_project()
        kwargs: dict[str, Any] = {"project": self.settings.project, "location": self.settings.location}
        credentials = self.credentials
        if credentials is None and self.api_endpoint and self.api_endpoint.startswith("http://"):
            from google.auth.credentials import AnonymousCredentials

            credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]  # plain HTTP: a local fake
        if credentials is not None:
            kwargs["credentials"] = credentials
        if self.api_endpoint:
            kwargs["api_endpoint"] = self.api_endpoint
            kwargs["api_transport"] = "rest" if self.api_endpoint.startswith("http://") else None
        aiplatform.init(**kwargs)

    def call(self, action: str, fn: Callable[[], T]) -> T:
        """Run one SDK call; retry throttling/unavailable with backoff; translate every vendor error.

        Example:
            >>> from cloudml.config import VertexSettings
            >>> VertexClient(VertexSettings()).call("add", lambda: 1 + 1)
            2
        """
        from google.api_core import exceptions as gexc
        from google.auth import exceptions as auth_exc

        attempt = 0
        while True:
            attempt += 1
            try:
                return fn()
            except (gexc.GoogleAPICallError, auth_exc.GoogleAuthError, ValueError) as e:
                err = translate(e, action)
                if err.retryable and attempt < self.max_attempts:
                    time.sleep(self.retry_delay * 2 ** (attempt - 1))
                    continue
                raise err from e

    # -- runs -----------------------------------------------------------------------------------------
    def submit(self, ir: dict[str, Any], parameters: dict[str, Any] | None = None, *,
               display_name: str | None = None, job_id: str | None = None, enable_caching: bool | None = None,
               labels: dict[str, str] | None = None, failure_policy: str | None = None) -> VertexRun:
        """Submit a compiled IR as a pipeline job; returns at once with a :class:`VertexRun`.

        The job id is set explicitly, so a retried create is idempotent (an ALREADY_EXISTS answer to a
        retry means the first attempt landed).

        Example (settings are checked before the SDK is imported or anything is sent):
            >>> from cloudml.config import VertexSettings
            >>> VertexClient(VertexSettings(project="my-project")).submit({"pipelineInfo": {"name": "p"}})
            Traceback (most recent call last):
            ...
            cloudml.errors.ConfigError: Vertex AI runs need a pipeline root (gs://...)
        """
        self._require_project()
        name = str(ir.get("pipelineInfo", {}).get("name", "pipeline"))
        root = self.settings.pipeline_root or ir.get("defaultPipelineRoot")
        if not root:
            raise ConfigError("Vertex AI runs need a pipeline root (gs://...)",
                              hint="set vertex.pipeline_root in cloudml.yaml or CLOUDML_VERTEX_PIPELINE_ROOT")
        aiplatform = self._sdk()
        job_id = job_id or job_id_for(name)
        with tempfile.TemporaryDirectory(prefix="cloudml-vertex-") as tmp:
            template = Path(tmp) / f"{name}.json"
            template.write_text(json.dumps(ir), encoding="utf-8")
            with _LOCK:
                self._init(aiplatform)
                job = self.call("prepare run", lambda: aiplatform.PipelineJob(
                    display_name=(display_name or name)[:128], template_path=str(template), job_id=job_id,
                    pipeline_root=root, parameter_values=dict(parameters or {}), enable_caching=enable_caching,
                    labels=labels or None, failure_policy=failure_policy))
        first = [True]

        def create() -> None:
            try:
                job.submit(service_account=self.settings.service_account)
            except Exception as e:  # only AlreadyExists on a retry is swallowed
                from google.api_core import exceptions as gexc

                if isinstance(e, gexc.AlreadyExists) and not first[0]:
                    return
                first[0] = False
                raise

        self.call(f"submit run of {name}", create)
        return VertexRun(self, job.resource_name if _has_name(job) else self._name(job_id))

    # -- code bundles ----------------------------------------------------------------------------------
    def _storage(self) -> Any:
        """A google-cloud-storage client with the same project and credentials as the Vertex calls."""
        try:
            from google.cloud import storage
        except ImportError:
            raise AdapterNotInstalledError("vertex", "gcp", ["google-cloud-storage"]) from None
        credentials = self.credentials
        options: dict[str, Any] = {}
        if self.api_endpoint and self.api_endpoint.startswith("http://"):  # a local fake serves storage too
            from google.auth.credentials import AnonymousCredentials

            credentials = credentials or AnonymousCredentials()  # type: ignore[no-untyped-call]
            options["client_options"] = {"api_endpoint": self.api_endpoint}
        return storage.Client(project=self.settings.project, credentials=credentials, **options)

    def upload_code(self, ir: dict[str, Any], pipeline: Any, base_dir: Path) -> list[str]:
        """Upload every code bundle the IR names (code folder, ``code_paths`` folders and cloudml's runtime);
        returns the URIs written.

        Bundles are content-addressed (``<root>/cloudml/code/<sha256>.tar.gz``), one per distinct
        (``code``, ``code_paths``) of the steps, so one already in the bucket is skipped, and a concurrent
        writer of the same bundle is no error. A pipeline without python, tuning or code steps sends nothing.

        Example:
            >>> from cloudml.config import VertexSettings
            >>> VertexClient(VertexSettings()).upload_code({"deploymentSpec": {}}, None, Path("."))
            []
        """
        from cloudml.adapters.vertex.bundles import CODE_PREFIX, bundle_uri, code_digest
        from cloudml.codebundle import step_bundle

        text = json.dumps(ir.get("deploymentSpec", {}))
        if f"/{CODE_PREFIX}/" not in text:
            return []
        steps = (pipeline.effective(t) for t in pipeline.task_steps())
        found = [step_bundle(base_dir, s) for s in steps if s.code or s.code_paths or s.python or s.tuning]
        bundles = {code_digest(b): b for b in found}
        root = self.settings.pipeline_root or ir.get("defaultPipelineRoot")
        if not root:
            raise ConfigError("uploading step code needs a pipeline root (gs://...)",
                              hint="set vertex.pipeline_root in cloudml.yaml or CLOUDML_VERTEX_PIPELINE_ROOT")
        self._require_project()
        client = self._storage()
        uploaded = []
        for digest, bundle in sorted(bundles.items()):
            if f"/{CODE_PREFIX}/{digest}.tar.gz" not in text:
                continue
            uri = bundle_uri(str(root), digest)
            bucket_name, _, key = uri[len("gs://"):].partition("/")
            if self._put_once(client, bucket_name, key, bundle):
                uploaded.append(uri)
        return uploaded

    def _put_once(self, client: Any, bucket: str, key: str, bundle: Any) -> bool:
        """Create the bundle object unless it exists (``ifGenerationMatch=0``); True when this call wrote it."""
        from google.api_core import exceptions as gexc

        from cloudml.adapters.vertex.bundles import build_bundle

        blob = client.bucket(bucket).blob(key)
        if self.call(f"check code bundle gs://{bucket}/{key}", blob.exists):
            return False

        def put() -> bool:
            try:
                blob.upload_from_string(build_bundle(bundle), content_type="application/gzip", if_generation_match=0)
            except gexc.PreconditionFailed:  # another submit wrote the same bundle first: same bytes
                return False
            return True

        return self.call(f"upload code bundle gs://{bucket}/{key}", put)

    def _name(self, job_id: str) -> str:
        if job_id.startswith("projects/"):
            return job_id
        return f"projects/{self.settings.project}/locations/{self.settings.location}/pipelineJobs/{job_id}"

    def get_job(self, run_id: str) -> Any:
        """The SDK's ``PipelineJob`` for a run id or resource name (fetched; errors translated).

        Example:
            >>> from cloudml.config import VertexSettings
            >>> VertexClient(VertexSettings()).get_job("abc")
            Traceback (most recent call last):
            ...
            cloudml.errors.ConfigError: Vertex AI needs a project
        """
        self._require_project()
        aiplatform = self._sdk()
        name = self._name(run_id)
        with _LOCK:
            self._init(aiplatform)
            return self.call(f"get run {name}", lambda: aiplatform.PipelineJob.get(name))

    def get_run(self, run_id: str) -> VertexRun:
        """A handle on an existing job (raises NotFoundError, with a hint, when it does not exist).

        Example:
            >>> from cloudml.config import VertexSettings
            >>> VertexClient(VertexSettings(project="my-project"))._name("abc")
            'projects/my-project/locations/us-central1/pipelineJobs/abc'
        """
        job = self.get_job(run_id)
        return VertexRun(self, str(job.resource_name))


def _has_name(job: Any) -> bool:
    try:
        return bool(job.resource_name)
    except Exception:  # the SDK raises when the resource was never created
        return False
