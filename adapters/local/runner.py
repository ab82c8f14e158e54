"""Execute one run of a pipeline on this machine: a scheduler over the compiled local plan.

Steps run as subprocesses in their own process group (or, for Python steps in ``in_process``
mode, inside this process), in parallel up to ``max_workers`` as soon as their upstream steps are
done. Conditions are evaluated on the metrics files steps really wrote; steps on the branch not
taken, and everything downstream of them, are recorded as skipped. A failed step stops its
dependents; independent branches finish unless ``fail_fast`` is set.

Every transition is committed to the metadata store before the next one starts, so a runner
killed at any moment can be resumed: finished steps are kept, the rest run again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudml.adapters.local.metadata import MetadataStore
from cloudml.adapters.local.store import ArtifactStore, digest_path
from cloudml.errors import ArtifactError, CloudMLError
from cloudml.spec.conditions import evaluate_condition, parse_condition
from cloudml.spec.types import parse_duration

__all__ = ["DONE_STATES", "RunExecutor", "StepEvent", "flatten_metrics"]

DONE_STATES = ("succeeded", "cached", "skipped")
Events = Callable[["StepEvent"], None]


@dataclass
class StepEvent:
    """What the live view shows: a step changed state."""

    step: str
    status: str
    attempt: int = 0
    duration: float | None = None
    cache_hit: bool = False
    message: str = ""


def flatten_metrics(data: Any, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a metrics document, keyed by dotted path.

    Example:
        >>> flatten_metrics({"auc": 0.9, "per_class": {"a": 1, "b": "x"}, "ok": True})
        {'auc': 0.9, 'per_class.a': 1.0}
    """
    out: dict[str, float] = {}
    if isinstance(data, dict):
        for k, v in data.items():
            out.update(flatten_metrics(v, f"{prefix}{k}."))
    elif isinstance(data, (int, float)) and not isinstance(data, bool):
        out[prefix[:-1]] = float(data)
    return out


class _StepFailure(Exception):
    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass
class RunExecutor:
    """Runs (or resumes) one run; all state lives in ``meta``, ``store`` and ``run_dir``."""

    run_id: str
    plan: dict[str, Any]
    params: dict[str, Any]
    spec_dir: Path
    run_dir: Path
    meta: MetadataStore
    store: ArtifactStore
    max_workers: int = 4
    use_cache: bool = True
    fail_fast: bool = False
    in_process: bool = False
    on_event: Events | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _code_digests: dict[str, str] = field(default_factory=dict)
    _module_digests: dict[tuple[str, str], str] = field(default_factory=dict)

    # -- driver ------------------------------------------------------------------------------
    def execute(self) -> str:
        """Run every step that is not finished yet; returns the run's final status."""
        steps: dict[str, Any] = self.plan["steps"]
        status = {r["name"]: r["status"] for r in self.meta.steps(self.run_id)}
        results: dict[str, Any] = {}
        for r in self.meta.steps(self.run_id):
            if r["status"] in DONE_STATES:
                results[r["name"]] = r.get("result")
        self.meta.set_run(self.run_id, status="running", started=time.time(), error=None)
        failure: str | None = None
        with ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="cloudml-step") as pool:
            running: dict[Future[tuple[str, Any]], str] = {}
            while True:
                if self.cancel_event.is_set():
                    break
                for name in self._ready(steps, status, running.values()):
                    decision = self._decide(name, steps, status, results)
                    if decision is not None:
                        status[name] = decision[0]
                        self._finish_without_running(name, *decision)
                        continue
                    status[name] = "running"
                    running[pool.submit(self._run_step, name, steps[name])] = name
                if not running:
                    if not self._ready(steps, status, ()):
                        break
                    continue
                done, _ = wait(list(running), timeout=0.5, return_when=FIRST_COMPLETED)
                for fut in done:
                    name = running.pop(fut)
                    final, result = fut.result()
                    status[name] = final
                    results[name] = result
                    if final == "failed":
                        failure = failure or self._failure_text(name)
                        if self.fail_fast:
                            self.cancel_event.set()
            if self.cancel_event.is_set():
                self._kill_all()
                for fut in list(running):
                    name = running.pop(fut)
                    final, _ = fut.result()
                    status[name] = final
        return self._close_run(status, failure)

    def _ready(self, steps: dict[str, Any], status: dict[str, str], running: Any) -> list[str]:
        active = set(running)
        return [n for n, s in steps.items() if status[n] == "pending" and n not in active
                and all(status[u] not in ("pending", "running") for u in s["upstream"])]

    def _decide(self, name: str, steps: dict[str, Any], status: dict[str, str],
                results: dict[str, Any]) -> tuple[str, str] | None:
        """Skip or stop a step whose upstream decided for it; None means: run it."""
        step = steps[name]
        guard = step.get("guard")
        if guard and status.get(guard["condition"]) in DONE_STATES:
            taken = results.get(guard["condition"])
            if status[guard["condition"]] == "skipped" or (taken == "true") != (guard["branch"] == "then"):
                return "skipped", f"branch '{guard['branch']}' of '{guard['condition']}' not taken"
        for up in step["upstream"]:
            if status[up] in ("failed", "upstream_failed", "cancelled"):
                return "upstream_failed", f"upstream step '{up}' did not succeed"
        for up in step["upstream"]:
            if status[up] == "skipped" and not (guard and guard["condition"] == up):
                return "skipped", f"upstream step '{up}' was skipped"
        return None

    def _finish_without_running(self, name: str, state: str, why: str) -> None:
        self.meta.set_step(self.run_id, name, status=state, error=why, finished=time.time())
        self._emit(StepEvent(name, state, message=why))

    def _failure_text(self, name: str) -> str:
        rows = [r for r in self.meta.steps(self.run_id) if r["name"] == name]
        return f"step '{name}' failed: {rows[0]['error'] if rows else 'unknown error'}"

    def _close_run(self, status: dict[str, str], failure: str | None) -> str:
        if self.cancel_event.is_set():
            why = "stopped by --fail-fast after another step failed" if failure else "run cancelled"
            for n, s in status.items():
                if s in ("pending", "running"):
                    status[n] = "cancelled"
                    self.meta.set_step(self.run_id, n, status="cancelled", error=why)
        if self.cancel_event.is_set() and not failure:
            final = "cancelled"
        elif any(s in ("failed", "upstream_failed", "cancelled") for s in status.values()):
            final = "failed"
        else:
            final = "succeeded"
        self.meta.set_run(self.run_id, status=final, finished=time.time(), error=failure)
        return final

    def _emit(self, event: StepEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)

    # -- one step ------------------------------------------------------------------------------
    def _run_step(self, name: str, step: dict[str, Any]) -> tuple[str, Any]:
        started = time.time()
        try:
            kind = step["type"]
            if kind == "condition":
                result = self._condition(name, step)
            elif kind == "fail":
                raise _StepFailure(step["message"], retryable=False)
            elif kind == "register_model":
                result = self._register(name, step)
            else:
                return self._task(name, step)
            self.meta.set_step(self.run_id, name, status="succeeded", result=result, finished=time.time(),
                               started=started)
            self._emit(StepEvent(name, "succeeded", duration=time.time() - started, message=str(result or "")))
            return "succeeded", result
        except (_StepFailure, CloudMLError, OSError) as e:
            self.meta.set_step(self.run_id, name, status="failed", error=str(e), finished=time.time(),
                               started=started)
            self._emit(StepEvent(name, "failed", duration=time.time() - started, message=str(e)))
            return "failed", None

    def _condition(self, name: str, step: dict[str, Any]) -> str:
        expr = parse_condition(step["condition"])
        docs: dict[tuple[str, str], Any] = {}
        for m in expr.metric_operands():
            path = self._output_path(m.step, m.output)
            docs[(m.step, m.output)] = self._read_metrics(path, m.step)
        try:
            value = evaluate_condition(expr, docs, self.params)
        except KeyError as e:
            raise _StepFailure(f"metric {e} is missing from the metrics file", retryable=False) from None
        except TypeError as e:
            raise _StepFailure(f"cannot evaluate '{step['condition']}': {e}", retryable=False) from None
        return "true" if value else "false"

    def _read_metrics(self, path: Path, producer: str) -> Any:
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise _StepFailure(f"step '{producer}' wrote no metrics file at {path}", retryable=False) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise _StepFailure(f"metrics file of step '{producer}' is not JSON: {e}", retryable=False) from None

    def _output_path(self, step: str, output: str) -> Path:
        out = self.plan["steps"][step]["outputs"][output]
        return Path(out["path"])

    def _register(self, name: str, step: dict[str, Any]) -> str:
        model_step, _, model_out = step["model"].partition(".outputs.")
        rows = [r for r in self.meta.io(self.run_id, model_step, "out") if r["name"] == model_out]
        if not rows:
            raise _StepFailure(f"no recorded artifact for {step['model']}", retryable=False)
        metrics: dict[str, Any] = {}
        if step.get("metrics"):
            m_step, _, m_out = step["metrics"].partition(".outputs.")
            metrics = flatten_metrics(self._read_metrics(self._output_path(m_step, m_out), m_step))
        version = self.meta.add_model_version(step["group"], rows[0]["digest"], step.get("approval", "pending"),
                                              metrics, self.run_id, name, step.get("tags", {}),
                                              step.get("description"))
        return f"{step['group']}:v{version}"

    # -- task steps ------------------------------------------------------------------------------
    def _task(self, name: str, step: dict[str, Any]) -> tuple[str, Any]:
        started = time.time()
        try:
            inputs = self._stage_inputs(name, step)
            key = self._cache_key(step, inputs)
        except (_StepFailure, CloudMLError, OSError) as e:
            self.meta.set_step(self.run_id, name, status="failed", error=str(e), finished=time.time())
            self._emit(StepEvent(name, "failed", message=str(e)))
            return "failed", None
        cache = step["cache"]
        if self.use_cache and cache["enabled"]:
            max_age = parse_duration(cache["expire"]) if cache["expire"] else None
            hit = self.meta.cache_get(key, max_age)
            if hit is not None and all(self.store.exists(d) for d in hit["outputs"].values()):
                for out, digest in hit["outputs"].items():
                    self.store.materialize(digest, step["outputs"][out]["path"])
                with self.meta.tx():
                    self._record_outputs(name, step, inputs)
                    self.meta.set_step(self.run_id, name, status="cached", cache_hit=1, cache_key=key,
                                       started=started, finished=time.time(), error=None)
                    if step.get("tuning"):
                        from cloudml.adapters.local.tuning import restore_cached

                        restore_cached(self, name, hit)
                self._emit(StepEvent(name, "cached", cache_hit=True, duration=time.time() - started))
                return "cached", None
        if step.get("tuning"):
            from cloudml.adapters.local.tuning import LocalTuning

            return LocalTuning(self, name, step, inputs, key).run(started)
        attempts = step["retry"]["attempts"]
        backoff = parse_duration(step["retry"]["backoff"])
        cap = parse_duration(step["retry"]["max_backoff"]) if step["retry"].get("max_backoff") else None
        first = 1 + max((a["attempt"] for a in self.meta.attempts(self.run_id, name)), default=0)
        error = ""
        for attempt in range(first, first + attempts):
            if self.cancel_event.is_set():
                break
            self._emit(StepEvent(name, "running", attempt=attempt))
            try:
                self._attempt(name, step, attempt)
                with self.meta.tx():
                    outputs = self._record_outputs(name, step, inputs)
                    self.meta.cache_put(key, self.run_id, name, outputs)
                    self.meta.set_step(self.run_id, name, status="succeeded", cache_key=key, finished=time.time(),
                                       error=None)
            except _StepFailure as e:
                error = str(e)
                if not e.retryable or attempt == first + attempts - 1 or self.cancel_event.is_set():
                    break
                delay = backoff * (2 ** (attempt - first)) * (0.5 + random.random())
                if cap is not None:
                    delay = min(delay, cap)
                self._emit(StepEvent(name, "retrying", attempt=attempt, message=f"{e}; retry in {delay:.1f}s"))
                self.cancel_event.wait(delay)
                continue
            self._emit(StepEvent(name, "succeeded", attempt=attempt, duration=time.time() - started))
            return "succeeded", None
        state = "cancelled" if self.cancel_event.is_set() else "failed"
        self.meta.set_step(self.run_id, name, status=state, error=error or "cancelled", finished=time.time())
        self._emit(StepEvent(name, state, duration=time.time() - started, message=error))
        return state, None

    def _stage_inputs(self, name: str, step: dict[str, Any]) -> dict[str, str]:
        """Copy external inputs into the run and return ``{input: digest}`` for every input."""
        digests: dict[str, str] = {}
        for iname, spec in step["inputs"].items():
            target = Path(spec["path"])
            if "from" in spec:
                producer, _, out = spec["from"].partition(".outputs.")
                rows = [r for r in self.meta.io(self.run_id, producer, "out") if r["name"] == out]
                if not rows:
                    raise _StepFailure(f"input '{iname}': {spec['from']} was never recorded", retryable=False)
                digests[iname] = rows[0]["digest"]
                continue
            uri = spec.get("external") or spec.get("resolve") or ""
            source = self._local_source(uri, name, iname)
            ref = self.store.put(source)
            if not target.exists() or digest_path(target)[0] != ref.digest:
                self.store.materialize(ref.digest, target)
            self.meta.record_io(self.run_id, name, "in", iname, ref.digest, ref.kind, ref.size, None, uri)
            digests[iname] = ref.digest
        return digests

    def _local_source(self, uri: str, step: str, iname: str) -> Path:
        if "://" in uri and not uri.startswith("file://"):
            scheme = uri.split("://", 1)[0]
            raise _StepFailure(f"input '{iname}': the local backend reads local files, not {scheme}:// "
                               f"({uri}); download it first or pass a file path", retryable=False)
        path = Path(uri[len("file://"):] if uri.startswith("file://") else uri)
        if not path.is_absolute():
            path = self.spec_dir / path
        if not path.exists():
            raise _StepFailure(f"input '{iname}': {path} does not exist", retryable=False)
        return path

    def _cache_key(self, step: dict[str, Any], inputs: dict[str, str]) -> str:
        definition = {k: step.get(k) for k in ("kind", "argv", "env", "image", "secrets")}
        if step.get("tuning"):
            definition["tuning"] = step["tuning"]["spec"]
        definition["argv"] = [a.replace(str(self.run_dir), "<run>") for a in step["argv"]]
        definition["env"] = {k: v.replace(str(self.run_dir), "<run>") for k, v in step["env"].items()}
        definition["code"] = self._code_digest(step["cwd"])
        if step.get("code_paths"):
            definition["code_paths"] = [self._code_digest(folder) for folder in step["code_paths"]]
        definition["module"] = self._module_digest(step)
        definition["scripts"] = self._script_digests(step)
        definition["inputs"] = dict(sorted(inputs.items()))
        blob = json.dumps(definition, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()

    def _code_digest(self, cwd: str) -> str:
        if cwd not in self._code_digests:
            folder = self.spec_dir / cwd
            if cwd == "." or not folder.is_dir():
                self._code_digests[cwd] = "-"
            else:
                files = [p for p in folder.rglob("*") if p.is_file() and _is_source(p.relative_to(folder))]
                h = hashlib.sha256()
                for f in sorted(files):
                    h.update(f"{f.relative_to(folder)}\0{digest_path(f)[0]}\n".encode())
                self._code_digests[cwd] = h.hexdigest()
        return self._code_digests[cwd]

    def _module_digest(self, step: dict[str, Any]) -> str:
        """For a python step: digest of its module's file and the .py files beside it (once per run)."""
        argv = step["argv"]
        if "--function" not in argv:
            return "-"
        module = argv[argv.index("--function") + 1].split(":", 1)[0]
        key = (module, argv[argv.index("--code") + 1] if "--code" in argv else step["cwd"])
        if key not in self._module_digests:
            self._module_digests[key] = self._hash_module(module, step)
        return self._module_digests[key]

    def _hash_module(self, module: str, step: dict[str, Any]) -> str:
        argv = step["argv"]
        base = Path(argv[argv.index("--code") + 1]) if "--code" in argv else Path(step["cwd"])
        folder = base if base.is_absolute() else self.spec_dir / base
        rel = Path(*module.split("."))
        for candidate in (folder / rel.with_suffix(".py"), folder / rel / "__init__.py"):
            if candidate.is_file():
                h = hashlib.sha256()
                for f in sorted(f for f in candidate.parent.iterdir() if f.is_file() and _is_source(Path(f.name))):
                    h.update(f"{f.name}\0{digest_path(f)[0]}\n".encode())
                return h.hexdigest()
        return "-"

    def _script_digests(self, step: dict[str, Any]) -> dict[str, str]:
        """Digests of files the command names (``python validate.py``): editing one invalidates the cache."""
        cwd = self.spec_dir / step["cwd"]
        found: dict[str, str] = {}
        for token in step["argv"][1:]:
            if token.startswith("-") or token.startswith(str(self.run_dir)) or len(token) > 512:
                continue
            path = cwd / token
            try:
                if path.is_file():
                    found[token] = digest_path(path)[0]
            except (OSError, ArtifactError):
                continue
        return found

    def _prepare_outputs(self, step: dict[str, Any]) -> None:
        for out in step["outputs"].values():
            path = Path(out["path"])
            folder = path.parent if out["type"] == "metrics" else path
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)

    def _attempt(self, name: str, step: dict[str, Any], attempt: int) -> None:
        log_dir = self.run_dir / "steps" / name / f"attempt-{attempt}"
        log_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_outputs(step)
        self.meta.start_attempt(self.run_id, name, attempt, str(log_dir))
        timeout = parse_duration(step["timeout"]) if step.get("timeout") else None
        if self.in_process and step["argv"][:3] == ["python", "-m", "cloudml.runtime"]:
            code, why = self._in_process(step, log_dir, timeout)
        else:
            code, why = self._subprocess(name, step, log_dir, timeout)
        self.meta.finish_attempt(self.run_id, name, attempt, "succeeded" if code == 0 else "failed", code)
        if code != 0:
            raise _StepFailure(why)

    def _contract_env(self) -> dict[str, str]:
        """The run-level runtime-contract variables (the step's own come from its plan ``env``)."""
        return {"CLOUDML_RUN_ID": self.run_id, "CLOUDML_RUN_DIR": str(self.run_dir), "CLOUDML_BACKEND": "local",
                "CLOUDML_ROOT": str(Path(self.meta.path).resolve().parent)}

    def _env(self, step: dict[str, Any]) -> dict[str, str]:
        env = dict(os.environ)
        env.update(step["env"])
        env.update(self._contract_env())
        env["PYTHONUNBUFFERED"] = "1"
        for var, ref in step.get("secrets", {}).items():
            scheme, _, target = ref.partition("://")
            if scheme != "env":
                raise _StepFailure(f"secret {var}: the local backend resolves env:// references only, not "
                                   f"{scheme}:// (set it as env://NAME for local runs)", retryable=False)
            if target not in os.environ:
                raise _StepFailure(f"secret {var}: environment variable {target} is not set", retryable=False)
            env[var] = os.environ[target]
        return env

    def _argv(self, step: dict[str, Any]) -> list[str]:
        argv = list(step["argv"])
        if argv[:3] == ["python", "-m", "cloudml.runtime"]:
            import cloudml.runtime

            argv[:3] = [sys.executable, cloudml.runtime.__file__]  # by path: skips runpy, ~2 ms a step
        elif argv and argv[0] in ("python", "python3"):
            argv[0] = sys.executable
        for i in range(len(argv) - 1):
            if argv[i] in ("--code", "--code-path"):
                argv[i + 1] = str((self.spec_dir / argv[i + 1]).resolve())
        return argv

    def _subprocess(self, name: str, step: dict[str, Any], log_dir: Path,
                    timeout: float | None) -> tuple[int, str]:
        cwd = (self.spec_dir / step["cwd"]).resolve()
        argv = self._argv(step)
        env = self._env(step)
        with open(log_dir / "stdout.log", "wb") as out, open(log_dir / "stderr.log", "wb") as err:
            try:
                proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=err, start_new_session=True)
            except OSError as e:
                return 127, f"cannot start {argv[0]!r}: {e.strerror}"
            (log_dir / "pid").write_text(str(proc.pid))
            with self._lock:
                self._procs[name] = proc
            if self.cancel_event.is_set():
                _kill_group(proc, grace=0.5)
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                return -9, f"timed out after {step['timeout']} (process group killed)"
            finally:
                with self._lock:
                    self._procs.pop(name, None)
        if code == 0:
            return 0, ""
        if self.cancel_event.is_set():
            return code, "cancelled"
        tail = _tail(log_dir / "stderr.log")
        return code, f"exit code {code}" + (f": {tail}" if tail else "")

    def _in_process(self, step: dict[str, Any], log_dir: Path, timeout: float | None) -> tuple[int, str]:
        from cloudml.runtime import RuntimeCallError, call_step_function, resolve_function, set_step_env

        argv = self._argv(step)
        opts: dict[str, dict[str, str]] = {"--input": {}, "--output": {}, "--param": {}, "--output-type": {}}
        for a in argv:
            for flag, bucket in opts.items():
                if a.startswith(flag + "="):
                    k, _, v = a[len(flag) + 1:].partition("=")
                    bucket[k] = v
        code_dir = argv[argv.index("--code") + 1] if "--code" in argv else str(self.spec_dir / step["cwd"])
        code_paths = [argv[i + 1] for i in range(len(argv) - 1) if argv[i] == "--code-path"]
        digests = {code_dir: self._module_digest(step), **{f: self._code_digest(f) for f in code_paths}}
        with _IMPORT_LOCK:
            if any(_IMPORTED.get(f) != d for f, d in digests.items()):  # code changed since this process imported it
                for folder, digest in digests.items():  # all of them: a step module holds its imports' old objects
                    _forget_modules_under(folder)
                    _IMPORTED[folder] = digest
        box: dict[str, Any] = {}

        contract = {**step["env"], **self._contract_env()}

        def call() -> None:
            set_step_env(contract)
            try:
                with _thread_output(log_dir):  # print() in the step lands in its logs, as for a subprocess
                    target = argv[argv.index("--function") + 1]
                    with _IMPORT_LOCK:  # sys.modules and sys.path are process-wide; steps run in threads
                        _prefer_folder(target.split(":", 1)[0].split(".", 1)[0], code_dir)
                        func = resolve_function(target, code_dir, code_paths)
                    call_step_function(func, opts["--input"], opts["--output"], opts["--param"],
                                       opts["--output-type"])
            except RuntimeCallError as e:
                box["error"] = (2, str(e))
            except Exception as e:
                box["error"] = (1, f"{type(e).__name__}: {e}")
            finally:
                set_step_env(None)

        if timeout is None:
            call()
        else:
            worker = threading.Thread(target=call, daemon=True)
            worker.start()
            worker.join(timeout)
            if worker.is_alive():
                return -9, f"timed out after {step['timeout']} (in-process step abandoned)"
        if "error" in box:
            with open(log_dir / "stderr.log", "a") as fh:
                fh.write(box["error"][1] + "\n")
            return int(box["error"][0]), box["error"][1]
        return 0, ""

    def _record_outputs(self, name: str, step: dict[str, Any], inputs: dict[str, str]) -> dict[str, str]:
        """Check declared outputs, store them, and record lineage, metrics and params."""
        digests: dict[str, str] = {}
        for out, spec in step["outputs"].items():
            path = Path(spec["path"])
            if spec["type"] == "metrics":
                doc = self._read_output_metrics(path, out)
                self.meta.record_metrics(self.run_id, name, flatten_metrics(doc))
            elif not path.is_dir() or not any(path.iterdir()):
                raise _StepFailure(f"declared output '{out}' was not written (expected files in {path})")
            try:
                ref = self.store.put(path)
            except ArtifactError as e:
                raise _StepFailure(f"output '{out}': {e}", retryable=False) from e
            self.meta.record_io(self.run_id, name, "out", out, ref.digest, ref.kind, ref.size, spec["type"])
            digests[out] = ref.digest
        for iname, spec in step["inputs"].items():
            if "from" in spec:
                producer, _, out = spec["from"].partition(".outputs.")
                row = next(r for r in self.meta.io(self.run_id, producer, "out") if r["name"] == out)
                self.meta.record_io(self.run_id, name, "in", iname, row["digest"], "dir", 0, row["type"], spec["from"])
        params = {a.split("=", 2)[1]: a.split("=", 2)[2] for a in step["argv"] if a.startswith("--param=")}
        if params:
            self.meta.record_params(self.run_id, name, params)
        return digests

    def _read_output_metrics(self, path: Path, out: str) -> Any:
        if not path.is_file():
            raise _StepFailure(f"declared metrics output '{out}' was not written (expected {path})")
        try:
            return json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise _StepFailure(f"metrics output '{out}' is not JSON: {e}", retryable=False) from None

    def _kill_all(self) -> None:
        with self._lock:
            procs = list(self._procs.values())
        for proc in procs:
            _kill_group(proc)


def _kill_group(proc: subprocess.Popen[bytes], grace: float = 2.0) -> None:
    """SIGTERM the whole process group, give it ``grace`` seconds, then SIGKILL whatever is left.

    The group is killed even when its leader already exited: children that ignore SIGTERM go too.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


# What this process imported from each code folder (by digest): sys.modules is process-wide, so this
# is too. In-process steps reuse an import until the code behind it changes.
_IMPORTED: dict[str, str] = {}


_IMPORT_LOCK = threading.Lock()


class _ThreadStreams:
    """sys.stdout/sys.stderr while in-process steps run: a step thread's writes go to its log file,
    every other thread's to the stream that was there before."""

    def __init__(self, fallback: Any, which: str) -> None:
        self.fallback = fallback
        self.which = which
        self.targets: dict[int, Any] = {}

    def write(self, text: str) -> int:
        target = self.targets.get(threading.get_ident())
        return int((target or self.fallback).write(text) or 0)

    def flush(self) -> None:
        target = self.targets.get(threading.get_ident())
        (target or self.fallback).flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fallback, name)


_STREAMS_LOCK = threading.Lock()
_STREAMS: dict[str, _ThreadStreams] = {}


@contextlib.contextmanager
def _thread_output(log_dir: Path) -> Any:
    """Send this thread's stdout/stderr to ``log_dir/stdout.log`` and ``stderr.log`` for the duration."""
    ident = threading.get_ident()
    files = {"stdout": open(log_dir / "stdout.log", "a"), "stderr": open(log_dir / "stderr.log", "a")}  # noqa: SIM115
    with _STREAMS_LOCK:
        for which, fh in files.items():
            router = _STREAMS.get(which)
            if router is None or getattr(sys, which) is not router:
                router = _ThreadStreams(getattr(sys, which), which)
                _STREAMS[which] = router
                setattr(sys, which, router)
            router.targets[ident] = fh
    try:
        yield
    finally:
        with _STREAMS_LOCK:
            for which, fh in files.items():
                router = _STREAMS[which]
                router.targets.pop(ident, None)
                fh.close()
                if not router.targets and getattr(sys, which) is router:  # the last step out puts it back
                    setattr(sys, which, router.fallback)
                    del _STREAMS[which]


def _prefer_folder(top: str, folder: str) -> None:
    """Make ``import top`` find ``folder``'s module: two code folders may both have a ``steps`` module."""
    root = str(Path(folder).resolve())
    loaded = sys.modules.get(top)
    file = getattr(loaded, "__file__", None) if loaded is not None else None
    if file and not str(Path(file).resolve()).startswith(root + os.sep):
        for name in [n for n in sys.modules.copy() if n == top or n.startswith(top + ".")]:  # threads import too
            sys.modules.pop(name, None)
    if root in sys.path:
        sys.path.remove(root)
    sys.path.insert(0, root)


def _forget_modules_under(folder: str) -> None:
    """Drop modules loaded from ``folder`` so an in-process step imports the code as it is now."""
    import importlib

    root = str(Path(folder).resolve())
    for name, module in sys.modules.copy().items():  # copy() is atomic; iterating a live view is not
        file = getattr(module, "__file__", None)
        if file and str(Path(file).resolve()).startswith(root + os.sep):
            del sys.modules[name]
    importlib.invalidate_caches()


def _is_source(rel: Path) -> bool:
    """Files that make up a step's code (and the data files beside it, e.g. a schema): not caches or VCS."""
    return not any(part.startswith(".") or part == "__pycache__" for part in rel.parts) and rel.suffix != ".pyc"


def _tail(path: Path, limit: int = 300) -> str:
    """The last non-empty line of a log (where the error is), its beginning kept when it is long."""
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return ""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return ""
    last = lines[-1].strip()
    return last if len(last) <= limit else last[: limit - 1] + "…"
