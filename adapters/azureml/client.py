"""The Azure ML client: pipeline-job runs through ``azure.ai.ml.MLClient``. Needs ``cloudml[azure]``.

azure-ai-ml is imported inside functions only, so ``import cloudml`` stays light. Every azure.core
error is translated to a cloudml error at this boundary (see :func:`translate`); throttling (429,
with ``Retry-After``) and 5xx answers are retried by azure-core's retry policy before they surface.

Example:
    >>> translate_status(429).__name__, translate_status(404).__name__
    ('ThrottlingError', 'NotFoundError')
"""

from __future__ import annotations

import copy
import os
import re
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

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

__all__ = ["RUN_STATES", "STEP_STATES", "AzureMLClient", "AzureMLRun", "job_name", "load_schedule_files",
           "stage_code", "translate", "translate_status"]

# Azure ML job states -> cloudml's neutral run states (the vocabulary SageMakerRun.status uses)
RUN_STATES = {"NotStarted": "running", "Starting": "running", "Provisioning": "running", "Preparing": "running",
              "Queued": "running", "Running": "running", "Finalizing": "running", "CancelRequested": "running",
              "NotResponding": "running", "Paused": "running", "Unknown": "running",
              "Completed": "succeeded", "Failed": "failed", "Canceled": "cancelled"}
STEP_STATES = {**RUN_STATES, "NotStarted": "pending", "Starting": "pending", "Provisioning": "pending",
               "Preparing": "pending", "Queued": "pending"}
_TERMINAL = ("succeeded", "failed", "cancelled")
_STATUS_ERRORS: dict[int, type[BackendError]] = {
    400: BackendValidationError, 401: PermissionDeniedError, 403: PermissionDeniedError, 404: NotFoundError,
    409: ConflictError, 412: ConflictError, 429: ThrottlingError,
}


def _import_error() -> AdapterNotInstalledError:
    return AdapterNotInstalledError("azureml", "azure", ["azure-ai-ml"])


def translate_status(status: int) -> type[BackendError]:
    """The cloudml error class for an HTTP status an Azure ML call answered with.

    Example:
        >>> translate_status(403).__name__, translate_status(503).__name__, translate_status(418).__name__
        ('PermissionDeniedError', 'ServiceUnavailableError', 'BackendError')
    """
    if status in _STATUS_ERRORS:
        return _STATUS_ERRORS[status]
    return ServiceUnavailableError if status >= 500 else BackendError


def _hint(cls: type[BackendError], action: str, workspace: str) -> str | None:
    if cls is NotFoundError:
        return (f"check the name and that workspace {workspace} is the right one: "
                f"az ml job list --workspace-name {workspace}" if "job" in action else
                f"check that it exists in workspace {workspace}")
    if cls is PermissionDeniedError:
        return (f"the identity needs the 'AzureML Data Scientist' role (or Contributor) on workspace {workspace}; "
                "check `az account show` and the role assignments")
    if cls is ThrottlingError:
        return "Azure ML throttled the calls even after retries; wait a minute and try again"
    if cls is BackendValidationError and "compute" in action:
        return f"check the compute names in backend_options.azureml: az ml compute list --workspace-name {workspace}"
    if cls is ServiceUnavailableError:
        return "Azure ML answered with a server error; try again, then check https://status.azure.com"
    return None


def translate(exc: Exception, action: str, workspace: str = "?") -> BackendError:
    """An azure.core (or azure-ai-ml) exception as a cloudml error (raise it ``from exc``).

    Example:
        >>> from azure.core.exceptions import ResourceNotFoundError
        >>> err = translate(ResourceNotFoundError("job x was not found"), "jobs.get", "ws")
        >>> type(err).__name__, err.hint.startswith("check the name")
        ('NotFoundError', True)
    """
    from azure.ai.ml.exceptions import MlException
    from azure.core.exceptions import (
        AzureError,
        ClientAuthenticationError,
        HttpResponseError,
        ResourceExistsError,
        ResourceNotFoundError,
        ServiceRequestError,
    )

    cls: type[BackendError]
    code: str | None = None
    message = str(getattr(exc, "message", None) or exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, HttpResponseError):
        error = getattr(exc, "error", None)
        code = getattr(error, "code", None) or (str(exc.status_code) if exc.status_code else None)
        if error is not None and getattr(error, "message", None):
            message = str(error.message)
    if isinstance(exc, ResourceNotFoundError):
        cls = NotFoundError
    elif isinstance(exc, ClientAuthenticationError):
        cls = PermissionDeniedError
    elif isinstance(exc, ResourceExistsError):
        cls = ConflictError
    elif isinstance(exc, HttpResponseError) and exc.status_code:
        cls = translate_status(int(exc.status_code))
    elif isinstance(exc, ServiceRequestError):
        cls = ServiceUnavailableError
    elif isinstance(exc, MlException):  # an AzureError too: the SDK's own checks (a missing compute, a bad job)
        message = _ml_message(exc)
        denied = "(AuthorizationFailed)" in message or "(AuthenticationFailed)" in message
        cls = PermissionDeniedError if denied else BackendValidationError
    elif isinstance(exc, AzureError):
        cls = BackendError
    else:
        raise exc
    topic = f"{action} compute" if ".compute:" in message else action
    return cls(f"{action}: {message}", backend="azureml", vendor_code=code, hint=_hint(cls, topic, workspace))


def _ml_message(exc: Exception) -> str:
    """An azure-ai-ml exception's message; its validation reports are JSON, made one readable line here."""
    import json

    text = str(getattr(exc, "message", None) or exc).strip()
    try:
        report = json.loads(text)
    except ValueError:
        return text.splitlines()[0] if text else type(exc).__name__
    errors = report.get("errors", []) if isinstance(report, dict) else []
    parts = [f"{e.get('path', '?')}: {str(e.get('message', '')).splitlines()[0]}" for e in errors if isinstance(e, dict)]
    return "; ".join(parts) or text


def _state(status: Any) -> str:
    """The raw Azure ML state string (the SDK hands back a str enum or a str)."""
    return str(getattr(status, "value", status) or "Unknown")


@dataclass
class AzureMLRun:
    """A pipeline job: status, steps (child jobs), error, wait, cancel.

    Example:
        >>> run = AzureMLRun(client=None, name="churn_20260101_abc123")  # doctest: +SKIP
        >>> run.wait(timeout=3600)  # doctest: +SKIP
        'succeeded'
    """

    client: Any  # AzureMLClient
    name: str

    @property
    def id(self) -> str:
        """The job name (what ``az ml job show -n`` takes)."""
        return self.name

    @property
    def native_status(self) -> str:
        """Azure ML's own state (NotStarted, Queued, Running, Completed, Failed, Canceled, ...)."""
        return _state(self.client.call("jobs.get", lambda ml: ml.jobs.get(self.name)).status)

    @property
    def status(self) -> str:
        """Neutral status: running, succeeded, failed or cancelled."""
        return RUN_STATES.get(self.native_status, "running")

    @property
    def steps(self) -> list[dict[str, Any]]:
        """One entry per child (step) job: name (the node), neutral status, child job name, failure reason.

        Example:
            >>> [(s["name"], s["status"]) for s in run.steps]  # doctest: +SKIP
            [('prep', 'succeeded'), ('train', 'failed'), ('evaluate', 'cancelled')]
        """
        children = self.client.call("jobs.list", lambda ml: list(ml.jobs.list(parent_job_name=self.name)))
        out = []
        for child in children:
            status = STEP_STATES.get(_state(child.status), "running")
            out.append({"name": child.display_name or child.name, "status": status, "job": child.name,
                        "error": self.client.run_error(child.name) if status == "failed" else None})
        return out

    @property
    def error(self) -> str | None:
        """Why the job failed, naming the failed step(s); None unless it failed.

        Example:
            >>> run.error  # doctest: +SKIP
            "step 'train' failed: exit code 2: ValueError: n_estimators must be positive"
        """
        native = self.native_status
        if RUN_STATES.get(native) != "failed":
            return None
        failed = [s for s in self.steps if s["status"] == "failed"]
        if failed:
            return "; ".join(f"step '{s['name']}' failed: {s['error'] or 'no reason given'}" for s in failed)
        return self.client.run_error(self.name) or f"job {self.name} {native}"

    def logs(self, step: str, attempt: int | None = None, stream: str = "stdout") -> str:
        """Where a step's logs are (Azure ML keeps them with the child job, under ``user_logs/``).

        ``attempt`` and ``stream`` are accepted for the CLI's sake: Azure ML keeps one log folder per
        node, with stdout and stderr together.

        Example:
            >>> run.logs("train")  # doctest: +SKIP
            'Azure ML job ..._train: az ml job download -n ..._train --all (logs under user_logs/)'
        """
        for s in self.steps:
            if s["name"] == step:
                return f"Azure ML job {s['job']}: az ml job download -n {s['job']} --all (logs under user_logs/)"
        return ""

    def wait(self, timeout: float | None = None, poll: float = 10.0) -> str:
        """Poll until the job ends or ``timeout`` seconds pass; returns the neutral status.

        Example:
            >>> run.wait(timeout=3600, poll=30)  # doctest: +SKIP
            'succeeded'
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.status
            if status in _TERMINAL or (deadline is not None and time.monotonic() >= deadline):
                return status
            time.sleep(poll)

    def cancel(self) -> None:
        """Ask Azure ML to cancel the job (``jobs.begin_cancel``) and wait for the request to be accepted.

        Cancelling a job that already ended is a ConflictError.

        Example:
            >>> run.cancel(); run.wait()  # doctest: +SKIP
            'cancelled'
        """
        self.client.call("jobs.begin_cancel", lambda ml: ml.jobs.begin_cancel(self.name, polling_interval=0).result())


class AzureMLClient:
    """``azure.ai.ml.MLClient`` for one workspace, with translated errors.

    ``credential`` defaults to ``azure.identity.DefaultAzureCredential``; ``mlclient_kwargs`` go to
    ``MLClient`` unchanged (``cloud_metadata``, ``transport``, ``per_call_policies``...).

    Example:
        >>> from cloudml.config import AzureMLSettings
        >>> s = AzureMLSettings(subscription_id="0000", resource_group="rg", workspace="ws")
        >>> client = AzureMLClient(s, credential=object())  # doctest: +SKIP
        >>> client.submit(job_document, {"n_estimators": 300}).wait()  # doctest: +SKIP
        'succeeded'
    """

    def __init__(self, settings: Any, credential: Any = None, **mlclient_kwargs: Any) -> None:
        # azure-ai-ml reads its private-preview switch once, when it is first imported: if_else nodes
        # (preview conditions) load only when the switch was on by then
        flag = "AZURE_ML_CLI_PRIVATE_FEATURES_ENABLED"
        if getattr(settings, "enable_preview_conditions", False) and "azure.ai.ml" not in sys.modules:
            os.environ.setdefault(flag, "true")
        self.preview_enabled = os.environ.get(flag, "").lower() == "true"
        try:
            from azure.ai.ml import MLClient
        except ImportError as e:
            raise _import_error() from e
        missing = [k for k in ("subscription_id", "resource_group", "workspace") if not getattr(settings, k, None)]
        if missing:
            raise ConfigError(f"Azure ML needs {', '.join(missing)}",
                              hint="set them under azureml: in cloudml.yaml or as CLOUDML_AZUREML_"
                              + ", CLOUDML_AZUREML_".join(m.upper() for m in missing))
        if credential is None:
            try:
                from azure.identity import DefaultAzureCredential
            except ImportError as e:
                raise AdapterNotInstalledError("azureml", "azure", ["azure-identity"]) from e
            credential = DefaultAzureCredential()
        self.settings = settings
        self.workspace = str(settings.workspace)
        mlclient_kwargs.setdefault("enable_telemetry", False)
        self.ml = MLClient(credential, settings.subscription_id, settings.resource_group, settings.workspace,
                           **mlclient_kwargs)

    def call(self, action: str, fn: Any) -> Any:
        """Run ``fn(ml_client)``; azure errors come back as cloudml errors.

        Example:
            >>> client.call("jobs.get", lambda ml: ml.jobs.get("nope"))  # doctest: +SKIP
            Traceback (most recent call last):
            cloudml.errors.NotFoundError: jobs.get: job nope was not found
        """
        from azure.ai.ml.exceptions import MlException
        from azure.core.exceptions import AzureError

        try:
            return fn(self.ml)
        except (AzureError, MlException) as e:
            raise translate(e, action, self.workspace) from e

    def run_error(self, name: str) -> str | None:
        """The error message run history keeps for a job or child job (None when there is none).

        Example:
            >>> client.run_error("churn_20260101_120000_ab12cd_train")  # doctest: +SKIP
            'exit code 2: ValueError: ...'
        """
        def read(ml: Any) -> Any:
            # azure-ai-ml keeps no error on its Job entities; run history does (a private operations object)
            return ml.jobs._runs_operations.get_run(name)

        try:
            run = self.call("runs.get", read)
        except NotFoundError:
            return None
        root = getattr(getattr(run, "error", None), "error", None)
        return str(root.message) if root is not None and root.message else None

    def submit(self, document: dict[str, Any], parameters: dict[str, Any] | None = None, *,
               base_dir: Path | None = None, name: str | None = None,
               experiment_name: str | None = None) -> AzureMLRun:
        """Submit a compiled pipeline job (the compiler's dict) with ``parameters`` as its inputs.

        Unknown parameters are refused before any request. Relative ``code:`` folders are resolved
        against ``base_dir``. A node that runs cloudml's runtime entry point (python steps, emulated
        retries) gets a staged copy of its code folder with ``cloudml_runtime.py`` added (a folder of its
        own when it has no code); azure-ai-ml uploads the folders during the submit.

        Example:
            >>> run = client.submit(compile_job(pipeline, settings), {"n_estimators": 300})  # doctest: +SKIP
            >>> run.status  # doctest: +SKIP
            'running'
        """
        from cloudml.adapters.azureml.schedule import uri_input

        self._check_preview(document)
        document = copy.deepcopy(document)
        inputs = document.setdefault("inputs", {})
        unknown = sorted(set(parameters or {}) - set(inputs))
        if unknown:
            raise BackendValidationError(f"unknown parameter(s) {', '.join(unknown)}", backend="azureml",
                                         hint=f"declared parameters: {', '.join(inputs) or 'none'}")
        inputs.update({k: uri_input(k, inputs[k], v) for k, v in (parameters or {}).items()})
        if not inputs:
            document.pop("inputs")
        with tempfile.TemporaryDirectory(prefix="cloudml-azureml-code-") as staging:
            stage_code(document, base_dir or Path("."), Path(staging))
            job = _load(document)
            job.name = name or job_name(str(document.get("display_name") or "pipeline"))
            experiment = experiment_name or document.get("experiment_name") or job.name
            created = self.call("jobs.create_or_update",
                                lambda ml: ml.jobs.create_or_update(job, experiment_name=experiment))
        return AzureMLRun(self, created.name)

    def _check_preview(self, document: dict[str, Any]) -> None:
        preview = sorted(n for n, job in (document.get("jobs") or {}).items() if job.get("type") == "if_else")
        if preview and not self.preview_enabled:
            raise ConfigError(f"the job has preview condition nodes ({', '.join(preview)}) but azure-ai-ml was "
                              "imported before its private-preview switch was on",
                              hint="export AZURE_ML_CLI_PRIVATE_FEATURES_ENABLED=true before starting Python "
                                   "(or create the Azure ML client before anything imports azure.ai.ml)")

    def apply_schedule(self, schedule: dict[str, Any], job: dict[str, Any], *, enabled: bool = True,
                       base_dir: Path | None = None) -> str:
        """Create or update a job schedule (schedule.py's document plus the compiled job); returns its ARM id.

        Both are loaded with ``load_schedule`` (the job as the file the schedule points at), code folders
        staged as for :meth:`submit`, then sent with ``schedules.begin_create_or_update``: a PUT of the
        schedule by name, so applying again updates it in place.

        Example:
            >>> client.apply_schedule(schedule_document(p, job), job)  # doctest: +SKIP
            '/subscriptions/.../workspaces/my-workspace/schedules/cloudml_churn'
        """
        self._check_preview(job)
        document = copy.deepcopy(job)
        with tempfile.TemporaryDirectory(prefix="cloudml-azureml-schedule-") as staging:
            stage_code(document, base_dir or Path("."), Path(staging))
            entity = load_schedule_files(schedule, document, Path(staging), enabled=enabled)
            created = self.call("schedules.begin_create_or_update",
                                lambda ml: ml.schedules.begin_create_or_update(entity).result())
        s = self.settings  # the entity read back carries no ARM id: build it
        return (f"/subscriptions/{s.subscription_id}/resourceGroups/{s.resource_group}/providers/"
                f"Microsoft.MachineLearningServices/workspaces/{s.workspace}/schedules/{created.name}")

    def get_run(self, run_id: str) -> AzureMLRun:
        """A handle on an existing job; NotFoundError (with a hint) when there is no such job.

        Example:
            >>> client.get_run("churn_20260101_120000_ab12cd").status  # doctest: +SKIP
            'succeeded'
        """
        self.call("jobs.get", lambda ml: ml.jobs.get(run_id))
        return AzureMLRun(self, run_id)


def stage_code(document: dict[str, Any], base_dir: Path, staging: Path) -> None:
    """Point every node's ``code:`` at an absolute folder; nodes running cloudml's runtime get a staged copy.

    The copy holds the code folder (``__pycache__`` and ``.git`` left out) plus ``cloudml_runtime.py``
    (and, for a node behind a condition guard, ``cloudml_conditions.py``: the runtime's evaluator when the
    image has no cloudml); nodes sharing a folder share its copy. Edits ``document`` in place.

    Example:
        >>> import tempfile
        >>> doc = {"jobs": {"a": {"component": {"command": "python cloudml_runtime.py --function m:f"}}}}
        >>> stage_code(doc, Path("."), Path(tempfile.mkdtemp()))
        >>> sorted(p.name for p in Path(doc["jobs"]["a"]["component"]["code"]).iterdir())
        ['cloudml_runtime.py']
    """
    import shutil

    import cloudml.runtime
    from cloudml.adapters.azureml.compiler import CONDITIONS_FILE, RUNTIME_FILE
    from cloudml.spec import conditions

    staged: dict[str, str] = {}
    for node in document.get("jobs", {}).values():
        comp = (node.get("component") or node.get("trial")) if isinstance(node, dict) else None  # trial: a sweep
        if not isinstance(comp, dict):
            continue
        code = comp.get("code")
        if RUNTIME_FILE not in str(comp.get("command", "")):
            if code:
                comp["code"] = str((base_dir / code).resolve())
            continue
        key = str(code or "")
        if key not in staged:
            dest = staging / f"code_{len(staged)}"
            if code:
                source = (base_dir / code).resolve()
                if not source.is_dir():
                    raise BackendValidationError(f"code folder {source} does not exist", backend="azureml",
                                                 hint="code paths are relative to the pipeline file")
                shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__", ".git"))
            else:
                dest.mkdir()
            shutil.copyfile(cloudml.runtime.__file__, dest / RUNTIME_FILE)
            staged[key] = str(dest)
        if "--guard" in str(comp.get("command", "")):  # the guard's evaluator, for images without cloudml
            shutil.copyfile(conditions.__file__, Path(staged[key]) / CONDITIONS_FILE)
        comp["code"] = staged[key]


def job_name(pipeline: str) -> str:
    """A fresh, readable job name: the pipeline name, a UTC timestamp and a random suffix.

    Example:
        >>> job_name("churn-train").startswith("churn_train_")
        True
    """
    slug = re.sub(r"[^A-Za-z0-9_]", "_", pipeline).strip("_") or "pipeline"
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d_%H%M%S")
    return f"{slug[:200]}_{stamp}_{uuid.uuid4().hex[:6]}"


def load_schedule_files(schedule: dict[str, Any], job: dict[str, Any], folder: Path, *, enabled: bool = True) -> Any:
    """The schedule as a ``JobSchedule``, the SDK's way: the job and the schedule written as YAML files in
    ``folder`` (the schedule's ``create_job.job`` names the job file) and read with ``load_schedule``.

    ``enabled`` is not part of the YAML schema (``is_enabled`` is dump-only); it is set on the entity as
    azure-ai-ml's own ``schedules.begin_disable`` does.

    Example:
        >>> load_schedule_files(schedule_document(p, job), job, Path(tempfile.mkdtemp())).trigger.expression  # doctest: +SKIP
        '0 3 * * *'
    """
    try:
        # azure-ai-ml 1.35 does not re-export it from azure.ai.ml (the az ml CLI imports it from here too)
        from azure.ai.ml.entities._load_functions import load_schedule
    except ImportError as e:
        raise _import_error() from e
    import yaml

    from cloudml.adapters.azureml.schedule import JOB_FILE

    (folder / JOB_FILE).write_text(yaml.safe_dump(job, sort_keys=False))
    path = folder / "schedule.yaml"
    path.write_text(yaml.safe_dump(schedule, sort_keys=False))
    try:
        entity = load_schedule(source=str(path))
    except Exception as e:  # marshmallow and the SDK's own types; any of them is a bad schedule
        raise BackendValidationError(f"azure-ai-ml refused the compiled schedule: {type(e).__name__}: "
                                     f"{str(e)[:500]}", backend="azureml") from e
    entity._is_enabled = enabled
    return entity


def _load(document: dict[str, Any]) -> Any:
    """The document as a ``PipelineJob``, the SDK's way (YAML file + ``load_job``)."""
    try:
        from azure.ai.ml import load_job
    except ImportError as e:
        raise _import_error() from e
    import yaml

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "job.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        try:
            return load_job(source=str(path))
        except Exception as e:  # the SDK raises marshmallow and its own types; any of them is a bad job
            raise BackendValidationError(f"azure-ai-ml refused the compiled job: {type(e).__name__}: {str(e)[:500]}",
                                         backend="azureml", hint="`cloudml validate SPEC --target azureml` "
                                         "lists the problems") from e
