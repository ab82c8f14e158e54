"""The local adapter: runs, resume, and the model registry, all under one root folder.

Layout of the root (``.cloudml`` by default)::

    meta.db            SQLite metadata (WAL)
    store/objects/     content-addressed artifacts
    runs/<run-id>/     working folders: steps/<step>/outputs/..., attempt logs, inputs/

Example:
    >>> import cloudml, tempfile
    >>> backend = cloudml.get_adapter("local", root=tempfile.mkdtemp())
    >>> b = cloudml.PipelineBuilder("hello"); _ = b.add_step("say", command="echo hello")
    >>> run = backend.run(b.build())
    >>> run.wait()
    'succeeded'
    >>> run.logs("say").strip()
    'hello'
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from cloudml.adapter import Adapter, Capabilities, Compiled, ModelVersion, RolloutResult, deployment_features
from cloudml.adapters.local.metadata import MetadataStore
from cloudml.adapters.local.runner import DONE_STATES, Events, RunExecutor
from cloudml.adapters.local.store import ArtifactStore
from cloudml.config import LocalSettings
from cloudml.errors import CloudMLError, DeploymentError, NotFoundError, RunError
from cloudml.spec.deployment import Deployment
from cloudml.spec.pipeline import Pipeline

__all__ = ["LocalAdapter", "LocalOptions", "LocalRun"]

TERMINAL = ("succeeded", "failed", "cancelled")


class LocalOptions(BaseModel):
    """``backend_options.local``: per-spec knobs for the local backend."""

    model_config = ConfigDict(extra="forbid")

    max_workers: int | None = None
    fail_fast: bool = False
    in_process: bool | None = None


class LocalRun:
    """A handle on one local run: ``status``, ``steps``, ``logs``, ``artifacts``, ``metrics``, ``wait``, ``cancel``."""

    def __init__(self, backend: LocalAdapter, run_id: str, executor: RunExecutor | None = None,
                 thread: threading.Thread | None = None) -> None:
        self.backend = backend
        self.id = run_id
        self._executor = executor
        self._thread = thread

    def __repr__(self) -> str:
        return f"LocalRun({self.id!r}, status={self.status!r})"

    @property
    def status(self) -> str:
        """pending, running, succeeded, failed or cancelled."""
        return str(self.backend.meta.get_run(self.id)["status"])

    @property
    def error(self) -> str | None:
        """Why the run failed (the first failing step and its cause), else None."""
        value = self.backend.meta.get_run(self.id)["error"]
        return None if value is None else str(value)

    @property
    def steps(self) -> list[dict[str, Any]]:
        """One row per step: name, status, attempts, cache_hit, started, finished, error, result."""
        return self.backend.meta.steps(self.id)

    def step(self, name: str) -> dict[str, Any]:
        """The row of one step (KeyError when the run has no such step)."""
        for row in self.steps:
            if row["name"] == name:
                return row
        raise KeyError(name)

    @property
    def metrics(self) -> dict[str, dict[str, float]]:
        """``{step: {metric: value}}`` from every metrics output."""
        return self.backend.meta.metrics(self.id)

    @property
    def pipeline(self) -> str:
        """The name of the pipeline this run executes."""
        return str(self.backend.meta.get_run(self.id)["pipeline"])

    @property
    def parameters(self) -> dict[str, Any]:
        """The run's parameter values (defaults filled in)."""
        return dict(self.backend.meta.get_run(self.id)["parameters"])

    @property
    def params(self) -> dict[str, dict[str, Any]]:
        """``{step: {name: value}}``: the parameters each Python step was called with."""
        return self.backend.meta.params(self.id)

    @property
    def artifacts(self) -> list[dict[str, Any]]:
        """Outputs written by the run's steps, with their SHA-256 digests."""
        return self.backend.meta.io(self.id, direction="out")

    def output_path(self, step: str, output: str) -> Path:
        """Where an output of a step lives in the run folder."""
        plan = self.backend.meta.get_run(self.id)["plan"]
        return Path(plan["steps"][step]["outputs"][output]["path"])

    def logs(self, step: str, attempt: int | None = None, stream: str = "stdout") -> str:
        """The stdout (or stderr) of a step's attempt (the last one by default)."""
        rows = self.backend.meta.attempts(self.id, step)
        if not rows:
            return ""
        if attempt is None:
            row = rows[-1]
        else:
            found = [r for r in rows if r["attempt"] == attempt]
            if not found:
                raise NotFoundError(f"step '{step}' of run {self.id} has no attempt {attempt} "
                                    f"(attempts: {', '.join(str(r['attempt']) for r in rows)})", backend="local")
            row = found[0]
        path = Path(row["log_dir"]) / f"{stream}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait(self, timeout: float | None = None) -> str:
        """Block until the run ends (or ``timeout`` seconds pass); returns its status."""
        if self._thread is not None:
            self._thread.join(timeout)
        else:
            deadline = None if timeout is None else time.time() + timeout
            while self.status not in TERMINAL and (deadline is None or time.time() < deadline):
                time.sleep(0.1)
        return self.status

    def cancel(self) -> None:
        """Stop the run: running steps' process groups are killed, pending steps are cancelled."""
        if self._executor is None:
            raise RunError(f"run {self.id} is not executing in this process", hint="stop the process that runs it")
        self._executor.cancel_event.set()


class LocalAdapter(Adapter):
    """Runs pipelines as local processes and serves endpoints on 127.0.0.1."""

    name = "local"
    extra = None
    requires = ()
    description = "runs on this machine: processes, files, SQLite, HTTP endpoints"
    options_model: ClassVar[type[BaseModel] | None] = LocalOptions
    capabilities = Capabilities(
        "local",
        {"deploy.existing_alarm": ("never", "cloud alarms cannot be read locally; use a neutral alarm"),
         "deploy.serving_image": ("never", "local endpoints serve the model in a Python worker process, not a "
                                  "container; use serving.predictor for custom serving code")},
    )

    def __init__(self, settings: LocalSettings | None = None) -> None:
        super().__init__(settings or LocalSettings())
        self.settings: LocalSettings
        self.root = Path(self.settings.root).resolve()
        self._meta: MetadataStore | None = None
        self._store: ArtifactStore | None = None

    # lazily opened so that compiling never touches the disk
    @property
    def meta(self) -> MetadataStore:
        """The metadata store of this root (opened on first use)."""
        if self._meta is None:
            self._meta = MetadataStore(self.root / "meta.db")
        return self._meta

    @property
    def store(self) -> ArtifactStore:
        """The artifact store of this root (opened on first use)."""
        if self._store is None:
            self._store = ArtifactStore(self.root / "store")
        return self._store

    def compile(self, pipeline: Pipeline) -> Compiled:
        """The local execution plan (see :mod:`cloudml.adapters.local.compiler`)."""
        from cloudml.adapters.local.compiler import compile_plan

        return Compiled("local", pipeline.name, compile_plan(pipeline), "json")

    # -- runs ------------------------------------------------------------------------------
    def run(self, pipeline: Pipeline, parameters: dict[str, Any] | None = None, **options: Any) -> LocalRun:
        """Start a run in the background and return its handle; ``wait()`` for the outcome.

        Options: ``spec_dir`` (where relative code and data paths start; default: the working
        directory), ``max_workers``, ``use_cache`` (default True), ``fail_fast``, ``in_process``,
        ``on_event`` (a callback for each step transition).
        """
        from cloudml.adapters.local.compiler import compile_plan
        from cloudml.loader import to_data

        self.check_supported(_features(pipeline))
        values = pipeline.resolve_parameters(parameters)
        spec_dir = Path(options.pop("spec_dir", None) or os.getcwd()).resolve()
        _check_code_paths(pipeline, spec_dir)
        run_id = f"{pipeline.name}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
        run_dir = self.root / "runs" / run_id
        run_dir.mkdir(parents=True)
        plan = compile_plan(pipeline, parameters=values, run_dir=str(run_dir))
        self.meta.create_run(run_id, pipeline.name, values, to_data(pipeline), plan, str(spec_dir))
        return self._start(run_id, **options)

    def resume(self, run_id: str, **options: Any) -> LocalRun:
        """Re-run only the failed, cancelled or never-run steps of ``run_id``; finished steps are kept."""
        try:
            row = self.meta.get_run(run_id)
        except KeyError:
            raise NotFoundError(f"no run '{run_id}' under {self.root}", backend="local",
                                hint="`cloudml runs list` shows the runs") from None
        lock = self._lock_run(run_id)  # before touching anything: a live run must not be disturbed
        self.store.clean_tmp()
        for step in self.meta.steps(run_id):
            if step["status"] == "running":
                _kill_orphan(run_id, self.meta.attempts(run_id, step["name"]))
            if step["status"] not in DONE_STATES:
                self.meta.set_step(run_id, step["name"], status="pending", error=None, finished=None)
        self.meta.set_run(run_id, status="pending", resumed=row["resumed"] + 1, finished=None)
        return self._start(run_id, lock=lock, **options)

    def _lock_run(self, run_id: str) -> Any:
        lock_path = self.root / "runs" / run_id / ".lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(lock_path, "a+")  # noqa: SIM115 - held for the whole run, closed by the run thread
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise RunError(f"run {run_id} is being executed by another process", hint="wait for it to finish") from None
        return lock

    def _start(self, run_id: str, *, max_workers: int | None = None, use_cache: bool = True,
               fail_fast: bool = False, in_process: bool | None = None, on_event: Events | None = None,
               lock: Any = None) -> LocalRun:
        row = self.meta.get_run(run_id)
        opts = row["spec"].get("backend_options", {}).get("local", {})
        workers = max_workers or opts.get("max_workers") or self.settings.max_workers or (os.cpu_count() or 2) * 2
        executor = RunExecutor(
            run_id=run_id, plan=row["plan"], params=row["parameters"], spec_dir=Path(row["spec_dir"]),
            run_dir=self.root / "runs" / run_id, meta=self.meta, store=self.store, max_workers=int(workers),
            use_cache=use_cache, fail_fast=fail_fast or bool(opts.get("fail_fast")),
            in_process=_first(in_process, opts.get("in_process"), self.settings.in_process), on_event=on_event,
        )
        if lock is None:
            lock = self._lock_run(run_id)

        def body() -> None:
            try:
                executor.execute()
                if self.settings.tracking == "mlflow":
                    self._track(run_id)
            except Exception as e:  # recorded, never lost: the run shows why it stopped
                self.meta.set_run(run_id, status="failed", finished=time.time(), error=f"runner crashed: {e!r}")
            finally:
                lock.close()

        thread = threading.Thread(target=body, name=f"cloudml-run-{run_id}")
        thread.start()
        return LocalRun(self, run_id, executor, thread)

    def _track(self, run_id: str) -> None:
        """Log a finished run to MLflow; a tracking failure is recorded on the run, never lost."""
        from cloudml.adapters.local.tracking import log_run

        uri = self.settings.mlflow_tracking_uri or f"sqlite:///{self.root / 'mlflow.db'}"
        try:
            mlflow_id = log_run(self.meta, run_id, uri, self.root / "mlflow-artifacts")
        except Exception as e:
            self.meta.set_run(run_id, tracking=f"failed: {e}")
        else:
            self.meta.set_run(run_id, tracking=f"mlflow:{mlflow_id}")

    def get_run(self, run_id: str) -> LocalRun:
        """A handle on an existing run of this root."""
        try:
            self.meta.get_run(run_id)
        except KeyError:
            raise NotFoundError(f"no run '{run_id}' under {self.root}", backend="local",
                                hint="`cloudml runs list` shows the runs") from None
        return LocalRun(self, run_id)

    def list_runs(self, pipeline: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Recent runs, newest first."""
        return self.meta.list_runs(pipeline, limit)

    # -- model registry ----------------------------------------------------------------------
    def register_model(self, group: str, uri: str, **info: Any) -> ModelVersion:
        """Register a model folder or file (copied into the store) as the next version of ``group``."""
        approval = info.get("approval", "pending")
        if approval not in ("pending", "approved", "rejected"):
            raise CloudMLError(f"approval must be pending, approved or rejected, not {approval!r}")
        ref = self.store.put(Path(uri))
        version = self.meta.add_model_version(group, ref.digest, info.get("approval", "pending"),
                                              info.get("metrics", {}), info.get("run_id"), info.get("step"),
                                              info.get("tags", {}), info.get("description"))
        return self._model(group, version)

    def _model(self, group: str, version: int) -> ModelVersion:
        for row in self.meta.model_versions(group):
            if row["version"] == version:
                return _to_model(row, self.store)
        raise NotFoundError(f"model {group} v{version} does not exist", backend="local",
                            hint="`cloudml models list` shows registered versions")

    def list_models(self, group: str | None = None) -> list[ModelVersion]:
        """Registered versions (newest first within each group)."""
        return [_to_model(r, self.store) for r in self.meta.model_versions(group)]

    def set_approval(self, group: str, version: int, approval: str) -> ModelVersion:
        """Approve, reject or reset a version to pending."""
        if approval not in ("pending", "approved", "rejected"):
            raise CloudMLError(f"approval must be pending, approved or rejected, not {approval!r}")
        try:
            self.meta.set_approval(group, version, approval)
        except KeyError:
            raise NotFoundError(f"model {group} v{version} does not exist", backend="local") from None
        return self._model(group, version)

    def latest_approved(self, group: str) -> ModelVersion:
        """The newest approved version of ``group``."""
        for row in self.meta.model_versions(group):
            if row["approval"] == "approved":
                return _to_model(row, self.store)
        raise NotFoundError(f"model group '{group}' has no approved version", backend="local",
                            hint=f"approve one: cloudml models approve {group} VERSION")


    # -- endpoints ------------------------------------------------------------------------------
    @property
    def endpoints(self) -> Any:
        """The gateway and worker processes of this root (:class:`LocalEndpoints`)."""
        from cloudml.adapters.local.serving.endpoints import LocalEndpoints

        return LocalEndpoints(self.root, host=self.settings.host, port=self.settings.port)

    def controller(self, stop: threading.Event | None = None, poll: float = 0.2) -> Any:
        """A rollout controller over this root's endpoints, with state in files under the root."""
        from cloudml.adapters.local.serving.endpoints import FileStateStore
        from cloudml.rollout import RolloutController

        return RolloutController(self.endpoints, FileStateStore(self.root), poll=poll, stop=stop)

    def resolve_model(self, group: str, version: int | str) -> ModelVersion:
        """A registry version by number, ``latest`` or ``latest-approved``."""
        if version == "latest-approved":
            return self.latest_approved(group)
        versions = self.list_models(group)
        if not versions:
            raise NotFoundError(f"model group '{group}' has no versions", backend="local",
                                hint="register one by running a pipeline with a register_model step")
        if version == "latest":
            return versions[0]
        return self._model(group, int(version))

    def deploy(self, deployment: Deployment, **options: Any) -> RolloutResult:
        """Roll out ``deployment`` on a local endpoint and return the typed outcome.

        Options: ``stop`` (a threading.Event that pauses the controller, as a kill would),
        ``poll`` (seconds between alarm checks, default 0.2).
        """
        self.check_supported(deployment_features(deployment))
        model = self.resolve_model(deployment.model.group, deployment.model.version)
        digest = Path(model.uri).name
        name = f"{model.group}-v{model.version}"
        info = {"uri": model.uri, "digest": digest, "group": model.group, "version": model.version}
        self.endpoints.gateway_url()  # the gateway is this machine's, not the deployment's: its errors stop here
        with self._endpoint_lock(deployment.endpoint):
            return self.controller(options.get("stop"), options.get("poll", 0.2)).deploy(  # type: ignore[no-any-return]
                deployment, model_name=name, model=info)

    def resume_rollout(self, endpoint: str, **options: Any) -> RolloutResult:
        """Resume an interrupted rollout: it finishes or rolls back."""
        with self._endpoint_lock(endpoint):
            return self.controller(options.get("stop"), options.get("poll", 0.2)).resume(endpoint)  # type: ignore[no-any-return]

    def promote(self, endpoint: str) -> RolloutResult:
        """Skip the remaining bakes of a rollout in progress: all traffic to green, retire blue.

        When another process is driving the rollout, it is asked to promote, and this call waits.
        """
        return self._manual(endpoint, "promote")

    def rollback(self, endpoint: str) -> RolloutResult:
        """Return all traffic to the previous deployment now (asking a running controller when there is one)."""
        return self._manual(endpoint, "rollback")

    def _manual(self, endpoint: str, action: str) -> RolloutResult:
        from cloudml.rollout import manual_action

        return manual_action(self.controller, lambda: self._endpoint_lock(endpoint), endpoint, action)

    def endpoint_status(self, endpoint: str) -> dict[str, Any]:
        """Deployments, readiness, traffic split, metrics and rollout state."""
        return dict(self.endpoints.status(endpoint))

    def invoke(self, endpoint: str, instances: list[Any], **options: Any) -> dict[str, Any]:
        """Send ``{"instances": [...]}`` through the gateway (``deployment=`` pins one deployment)."""
        from cloudml.adapters.local.serving.endpoints import http_json

        headers = {"x-cloudml-deployment": options["deployment"]} if options.get("deployment") else None
        url = f"{self.endpoints.gateway_url(start=False)}/endpoints/{endpoint}/predict"
        status, body = http_json("POST", url, {"instances": instances}, headers=headers)
        if status == 404:
            raise NotFoundError(str(body.get("error")), backend="local", hint="cloudml endpoints list")
        if status >= 400:
            raise DeploymentError(f"endpoint {endpoint} answered {status}: {body.get('error', body)}")
        return dict(body)

    def _endpoint_lock(self, endpoint: str) -> Any:
        import contextlib

        @contextlib.contextmanager
        def lock() -> Any:
            folder = self.root / "endpoints" / endpoint
            folder.mkdir(parents=True, exist_ok=True)
            with open(folder / ".lock", "a+") as fh:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise DeploymentError(f"another controller is working on endpoint {endpoint}",
                                          hint="wait for it, or stop it and run `cloudml rollout resume`") from None
                yield

        return lock()


def _first(*values: bool | None) -> bool:
    return bool(next((v for v in values if v is not None), False))


def _to_model(row: dict[str, Any], store: ArtifactStore) -> ModelVersion:
    return ModelVersion(
        group=row["grp"], version=row["version"], uri=str(store.path(row["digest"])), approval=row["approval"],
        metrics=row["metrics"], run_id=row["run_id"], tags=row["tags"],
        created_at=datetime.fromtimestamp(row["created"], tz=timezone.utc),
    )


def _check_code_paths(pipeline: Pipeline, spec_dir: Path) -> None:
    """Every ``code_paths`` folder exists before anything runs (CompileError names the step and folder)."""
    from cloudml.codebundle import step_bundle

    for step in pipeline.task_steps():
        s = pipeline.effective(step)
        if s.code_paths:
            step_bundle(spec_dir, s.model_copy(update={"code": None}))  # code folders: checked as before, per step


def _features(pipeline: Pipeline) -> list[Any]:
    from cloudml.adapter import pipeline_features

    return pipeline_features(pipeline)


def _kill_orphan(run_id: str, attempts: list[dict[str, Any]]) -> None:
    """Kill step processes left behind by a runner that died (the attempt's, and a tuning step's trials),
    if they are still ours and alive."""
    if not attempts:
        return
    log_dir = Path(attempts[-1]["log_dir"])
    for pid_file in [log_dir / "pid", *sorted((log_dir.parent / "trials").glob("*/pid"))]:
        try:
            pid = int(pid_file.read_text())
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except (OSError, ValueError):
            continue
        if f"CLOUDML_RUN_ID={run_id}".encode() in environ.split(b"\0"):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
