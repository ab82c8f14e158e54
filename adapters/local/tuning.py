"""Run a tuning step on the local backend: trials as parallel processes, the best one's outputs kept.

Each trial is the step's own command (or python function) with ``{{tuning.NAME}}`` filled in, run
in ``steps/<step>/trials/<n>/`` (outputs and logs), at most ``min(parallel_trials, max_workers)``
at a time. A trial succeeds when its process exits 0, writes every declared output and its
metrics file holds the objective as a finite number. Failed trials are recorded and tolerated;
the step fails only when no trial succeeded. The best trial's outputs are copied to the step's
own output paths and recorded as the step's outputs, so downstream steps, conditions and the cache
see one ordinary step.

Recorded (``runs show`` / the metadata store): the step row's ``result`` holds a JSON document
``{"strategy", "seed", "key", "best", "trials": [{"trial", "params", "status", "objective",
"error", "outputs", "cached"}]}``, written after every trial; the step's metrics are the best
trial's metrics plus ``tuning.best_objective``, ``tuning.trials``, ``tuning.succeeded_trials`` and
``tuning.failed_trials``; its params are the best trial's values. ``cloudml runs logs RUN STEP``
shows one line per trial (``--stderr``: the failed trials' errors); each trial's own logs are in
``steps/<step>/trials/<n>/``.

Resume and caching: every finished trial is committed as it ends. A resumed run reads the
record back and does not rerun trials that succeeded under the same cache key (same command,
code and inputs); failed trials are run again. Each trial also has its own cache entry (the step's
command, code and inputs plus the trial's values, not the tuning block), so a later run that
proposes the same point (a grid grown by one value, a random search with more trials and the same
seed) reuses it.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloudml.errors import ArtifactError, CloudMLError
from cloudml.spec.refs import substitute
from cloudml.spec.tuning import Tuning
from cloudml.tuning import Sampler, best_trial, format_value, objective_value

if TYPE_CHECKING:
    from cloudml.adapters.local.runner import RunExecutor

__all__ = ["LocalTuning"]


def restore_cached(ex: RunExecutor, name: str, hit: dict[str, Any]) -> None:
    """A cached tuning step shows the trials, tuning metrics and best values of the run it came from."""
    rows = [r for r in ex.meta.steps(hit["run_id"]) if r["name"] == hit["step"]]
    result = rows[0].get("result") if rows else None
    metrics = ex.meta.metrics(hit["run_id"]).get(hit["step"], {})
    ex.meta.set_step(ex.run_id, name, result=result)
    ex.meta.record_metrics(ex.run_id, name, {k: v for k, v in metrics.items() if k.startswith("tuning.")})
    record = json.loads(result) if result else {}
    best = [t for t in record.get("trials", []) if t.get("trial") == record.get("best")]
    if best:
        ex.meta.record_params(ex.run_id, name, dict(best[0]["params"]))


class LocalTuning:
    """One tuning step of one run; ``run()`` returns the step's final state like ``RunExecutor._task``."""

    def __init__(self, ex: RunExecutor, name: str, step: dict[str, Any], inputs: dict[str, str], key: str) -> None:
        self.ex, self.name, self.step, self.inputs, self.key = ex, name, step, inputs, key
        self.cfg: dict[str, Any] = step["tuning"]
        self.tuning = Tuning.model_validate(self.cfg["spec"])
        self.total = int(self.cfg["trials"])
        # a trial's cache key leaves the tuning block out, so another search that proposes the same point reuses it
        self.trial_base = ex._cache_key({k: v for k, v in step.items() if k != "tuning"}, inputs)
        self.record: dict[str, Any] = {}

    # -- driver ------------------------------------------------------------------------------------
    def run(self, started: float) -> tuple[str, Any]:
        from cloudml.adapters.local.runner import StepEvent, _StepFailure

        ex, name = self.ex, self.name
        prior = self._prior()
        seed = prior.get("seed") if prior.get("seed") is not None else self.cfg.get("seed")
        if seed is None:
            seed = random.SystemRandom().randrange(2**31)
        self.record = {"strategy": self.tuning.strategy, "seed": seed, "key": self.key,
                       "goal": self.tuning.objective.goal, "metric": self.tuning.objective.metric, "best": None,
                       "trials": []}
        done: dict[int, dict[str, Any]] = {t["trial"]: t for t in prior.get("trials", []) if self._reusable(t)}
        sampler = Sampler(self.tuning, int(seed))
        workers = max(1, min(int(self.cfg["parallel_trials"]), ex.max_workers))
        ex.meta.start_attempt(ex.run_id, name, 1 + len(ex.meta.attempts(ex.run_id, name)),
                              str(ex.run_dir / "steps" / name / "trials"))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"cloudml-trial-{name}") as pool:
            running: dict[Future[dict[str, Any]], int] = {}
            index = 0
            while index < self.total or running:
                while index < self.total and len(running) < workers and not ex.cancel_event.is_set():
                    if index in done:
                        index += 1
                        continue
                    point = sampler.propose(index, self._history(done))
                    running[pool.submit(self._trial, index, point)] = index
                    index += 1
                if not running:
                    break
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in finished:
                    n = running.pop(fut)
                    done[n] = fut.result()
                    self._save(done)
                    t = done[n]
                    ex._emit(StepEvent(name, "running", message=f"trial {n + 1}/{self.total} {t['status']}"
                                       + (f": objective {t['objective']:g}" if t.get("objective") is not None
                                          else f": {t.get('error', '')}")))
        attempt = len(ex.meta.attempts(ex.run_id, name))
        if ex.cancel_event.is_set():
            ex.meta.finish_attempt(ex.run_id, name, attempt, "cancelled", None)
            ex.meta.set_step(ex.run_id, name, status="cancelled", error="cancelled", finished=time.time())
            ex._emit(StepEvent(name, "cancelled", duration=time.time() - started))
            return "cancelled", None
        try:
            best = self._finish(done)
        except (_StepFailure, CloudMLError, OSError) as e:
            ex.meta.finish_attempt(ex.run_id, name, attempt, "failed", None)
            ex.meta.set_step(ex.run_id, name, status="failed", error=str(e), finished=time.time())
            ex._emit(StepEvent(name, "failed", duration=time.time() - started, message=str(e)))
            return "failed", None
        ex.meta.finish_attempt(ex.run_id, name, attempt, "succeeded", 0)
        ex._emit(StepEvent(name, "succeeded", duration=time.time() - started,
                           message=f"best trial {best['trial']}: {best['objective']:g} {best['params']}"))
        return "succeeded", None

    def _history(self, done: dict[int, dict[str, Any]]) -> list[tuple[dict[str, Any], float]]:
        return [(t["params"], float(t["objective"])) for _, t in sorted(done.items())
                if t["status"] == "succeeded" and t.get("objective") is not None]

    def _prior(self) -> dict[str, Any]:
        rows = [r for r in self.ex.meta.steps(self.ex.run_id) if r["name"] == self.name]
        raw = rows[0].get("result") if rows else None
        try:
            prior = json.loads(raw) if raw else {}
        except (TypeError, json.JSONDecodeError):
            return {}
        return prior if isinstance(prior, dict) and prior.get("key") == self.key else {}

    def _reusable(self, t: dict[str, Any]) -> bool:
        return t.get("status") == "succeeded" and all(self.ex.store.exists(d) for d in t.get("outputs", {}).values())

    def _save(self, done: dict[int, dict[str, Any]]) -> None:
        self.record["trials"] = [done[n] for n in sorted(done)]
        self.ex.meta.set_step(self.ex.run_id, self.name, result=json.dumps(self.record, sort_keys=True))
        folder = self.ex.run_dir / "steps" / self.name / "trials"  # what `cloudml runs logs RUN STEP` shows
        folder.mkdir(parents=True, exist_ok=True)
        lines = [f"trial {t['trial']:>3} {t['status']:<9} "
                 + (f"objective={t['objective']:g} " if t.get("objective") is not None else "")
                 + " ".join(f"{k}={format_value(v)}" for k, v in t["params"].items())
                 + (" (cached)" if t.get("cached") else "") for t in self.record["trials"]]
        (folder / "stdout.log").write_text("\n".join(lines) + "\n")
        (folder / "stderr.log").write_text("".join(f"trial {t['trial']}: {t['error']}\n"
                                                   for t in self.record["trials"] if t.get("error")))

    # -- one trial -----------------------------------------------------------------------------------
    def _trial_step(self, n: int | None, point: dict[str, Any]) -> dict[str, Any]:
        """The step as trial ``n`` runs it (outputs under trials/<n>/), or with n=None at its own paths."""
        values = {"tuning": {k: format_value(v) for k, v in point.items()}}
        base = f"{self.ex.run_dir}/steps/{self.name}/outputs/"
        trial = f"{self.ex.run_dir}/steps/{self.name}/trials/{n:03d}/outputs/" if n is not None else base

        def fill(text: str) -> str:
            return substitute(text, values).replace(base, trial)

        s = dict(self.step)
        s["argv"] = [fill(a) for a in self.step["argv"]]
        s["env"] = {k: fill(v) for k, v in self.step["env"].items()}
        if n is not None:
            s["env"]["CLOUDML_TRIAL"] = str(n)
        s["outputs"] = {o: {**spec, "path": spec["path"].replace(base, trial)}
                        for o, spec in self.step["outputs"].items()}
        return s

    def _trial(self, n: int, point: dict[str, Any]) -> dict[str, Any]:
        from cloudml.adapters.local.runner import _StepFailure

        ex = self.ex
        record: dict[str, Any] = {"trial": n, "params": point, "status": "failed", "objective": None,
                                  "outputs": {}, "cached": False}
        tkey = hashlib.sha256(f"{self.trial_base}\0{json.dumps(point, sort_keys=True)}".encode()).hexdigest()
        step = self._trial_step(n, point)
        cache = self.step["cache"]
        try:
            if ex.use_cache and cache["enabled"]:
                hit = ex.meta.cache_get(tkey)
                if hit is not None and all(ex.store.exists(d) for d in hit["outputs"].values()):
                    for out, digest in hit["outputs"].items():
                        ex.store.materialize(digest, step["outputs"][out]["path"])
                    record.update(self._collect(step), status="succeeded", cached=True)
                    return record
            log_dir = ex.run_dir / "steps" / self.name / "trials" / f"{n:03d}"
            log_dir.mkdir(parents=True, exist_ok=True)
            ex._prepare_outputs(step)
            from cloudml.spec.types import parse_duration

            timeout = parse_duration(step["timeout"]) if step.get("timeout") else None
            if ex.in_process and step["argv"][:3] == ["python", "-m", "cloudml.runtime"]:
                code, why = ex._in_process(step, log_dir, timeout)
            else:
                code, why = ex._subprocess(f"{self.name}#trial-{n}", step, log_dir, timeout)
            if code != 0:
                raise _StepFailure(why)
            record.update(self._collect(step), status="succeeded")
            ex.meta.cache_put(tkey, ex.run_id, self.name, record["outputs"])
        except (_StepFailure, CloudMLError, OSError, ValueError) as e:
            record["error"] = str(e)
        return record

    def _collect(self, step: dict[str, Any]) -> dict[str, Any]:
        """Check and store a trial's outputs; read its objective. Raises on anything missing."""
        from cloudml.adapters.local.runner import _StepFailure

        outputs: dict[str, str] = {}
        objective: float | None = None
        obj = self.cfg["objective"]
        for out, spec in step["outputs"].items():
            path = Path(spec["path"])
            if spec["type"] == "metrics":
                doc = self.ex._read_output_metrics(path, out)
                if out == obj["output"]:
                    try:
                        objective = objective_value(doc, obj["key"])
                    except ValueError as e:
                        raise _StepFailure(f"objective {obj['metric']}: {e}") from None
            elif not path.is_dir() or not any(path.iterdir()):
                raise _StepFailure(f"declared output '{out}' was not written (expected files in {path})")
            try:
                outputs[out] = self.ex.store.put(path).digest
            except ArtifactError as e:
                raise _StepFailure(f"output '{out}': {e}") from e
        return {"outputs": outputs, "objective": objective}

    # -- the end ---------------------------------------------------------------------------------------
    def _finish(self, done: dict[int, dict[str, Any]]) -> dict[str, Any]:
        from cloudml.adapters.local.runner import _StepFailure

        ex, name = self.ex, self.name
        trials = [done[n] for n in sorted(done)]
        best = best_trial(trials, self.tuning.objective.goal)
        if best is None:
            first: dict[str, Any] = trials[0] if trials else {"trial": 0, "params": {}, "error": "no trial ran"}
            shown = ", ".join(f"{k}={format_value(v)}" for k, v in first["params"].items())
            raise _StepFailure(f"all {len(trials)} tuning trials failed; trial {first['trial']} ({shown}): "
                               f"{first.get('error', '')} (logs: steps/{name}/trials/<n>/stderr.log)",
                               retryable=False)
        self.record["best"] = best["trial"]
        final = self._trial_step(None, best["params"])
        for out, digest in best["outputs"].items():
            ex.store.materialize(digest, final["outputs"][out]["path"])
        ok = [t for t in trials if t["status"] == "succeeded"]
        summary = {"tuning.best_objective": float(best["objective"]), "tuning.trials": float(len(trials)),
                   "tuning.succeeded_trials": float(len(ok)), "tuning.failed_trials": float(len(trials) - len(ok))}
        with ex.meta.tx():
            outputs = ex._record_outputs(name, final, self.inputs)
            ex.meta.record_metrics(ex.run_id, name, summary)
            ex.meta.record_params(ex.run_id, name, dict(best["params"]))
            ex.meta.cache_put(self.key, ex.run_id, name, outputs)
            self._save(done)
            ex.meta.set_step(ex.run_id, name, status="succeeded", cache_key=self.key, finished=time.time(),
                             error=None)
        return best
