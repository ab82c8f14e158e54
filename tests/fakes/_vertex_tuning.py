"""Hyperparameter tuning jobs for the Vertex AI fake (what ``aiplatform_v1.JobServiceClient`` sends over REST,
as GCPC's launcher and cloudml's best-trial task call it). Part of tests/fakes/vertex.py (``VertexFake.tuning``).

Routes (``{loc}`` is ``projects/P/locations/L``):

* ``POST /v1/{loc}/hyperparameterTuningJobs``: create; the id is the server's (a number), as on Vertex;
* ``GET /v1/{loc}/hyperparameterTuningJobs/ID`` (404 when absent): each GET advances the job one state,
  ``JOB_STATE_PENDING`` -> ``RUNNING`` -> ``SUCCEEDED`` (trials appear then), or ``FAILED`` when at least
  ``maxFailedTrialCount`` (when above 0) trials did not succeed; ``GET`` of the collection lists them;
* ``POST .../hyperparameterTuningJobs/ID:cancel``: only an unfinished job (else ``FAILED_PRECONDITION``).

Rules enforced on create, from the field docs of ``HyperparameterTuningJob`` and ``StudySpec`` in
google-cloud-aiplatform 2.7 (``aiplatform_v1.types``), not from the service: ``displayName`` is required, at
most 128 characters; ``maxTrialCount`` and ``parallelTrialCount`` are required and positive; ``studySpec.metrics``
is non-empty, each with a ``metricId`` without whitespace, unique, and a goal; ``studySpec.parameters`` is
non-empty, each ``parameterId`` unique with exactly one value spec; a DOUBLE/INTEGER range has min <= max and
a log scale needs min > 0; CATEGORICAL values are non-empty; DISCRETE values are 1 to 1,000, increasing;
``GRID_SEARCH`` takes no DOUBLE parameter (the GCPC docs); ``trialJobSpec.workerPoolSpecs`` is non-empty, the
first with a ``machineSpec.machineType``, a ``replicaCount`` and a ``containerSpec.imageUri``. Enums arrive as
numbers (the REST transport sends ``enum-encoding=int``) or names; both are accepted.

Trials are not run: ``outcomes`` (a list of ``(state, objective)``, one per trial, set by the test) says how
each ends; by default every trial succeeds with an objective of ``0.5 + 0.01 * id``. Each trial gets a point of
the search space (the i-th categorical value, a range's min plus a share of its width).

Example:
    >>> routes = TuningRoutes(lambda code, msg, status="INVALID_ARGUMENT": ValueError(code, msg))
    >>> routes.route("GET", "/v1/projects/p/locations/l/hyperparameterTuningJobs", {}, {})
    {'hyperparameterTuningJobs': []}
"""

from __future__ import annotations

import copy
import itertools
import re
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

__all__ = ["TuningRoutes"]

_COLLECTION = re.compile(r"^/v1/(projects/[^/]+/locations/[^/]+)/hyperparameterTuningJobs$")
_ONE = re.compile(r"^/v1/(projects/[^/]+/locations/[^/]+/hyperparameterTuningJobs/[^/:]+)(:cancel)?$")
_GOALS = {1: "MAXIMIZE", 2: "MINIMIZE", "MAXIMIZE": "MAXIMIZE", "MINIMIZE": "MINIMIZE"}
_ALGORITHMS = {0: "ALGORITHM_UNSPECIFIED", 2: "GRID_SEARCH", 3: "RANDOM_SEARCH", "ALGORITHM_UNSPECIFIED":
               "ALGORITHM_UNSPECIFIED", "GRID_SEARCH": "GRID_SEARCH", "RANDOM_SEARCH": "RANDOM_SEARCH"}
_SCALES = {0: "SCALE_TYPE_UNSPECIFIED", 1: "UNIT_LINEAR_SCALE", 2: "UNIT_LOG_SCALE", 3: "UNIT_REVERSE_LOG_SCALE"}
_SPECS = ("doubleValueSpec", "integerValueSpec", "categoricalValueSpec", "discreteValueSpec")
_STATES = ("JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED")
TERMINAL = ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


class TuningRoutes:
    """The fake's hyperparameter tuning jobs; ``jobs`` holds them by resource name, ``outcomes`` the trials' fate."""

    def __init__(self, error: Callable[..., Exception]) -> None:
        self.error = error
        self.jobs: dict[str, dict[str, Any]] = {}
        self.outcomes: list[tuple[str, float | None]] | None = None
        self._ids = itertools.count(1000)
        self._lock = threading.RLock()

    def route(self, method: str, path: str, query: dict[str, list[str]], body: dict[str, Any]) -> dict[str, Any] | None:
        """Answer a request, or None when it is not a tuning route."""
        m = _COLLECTION.match(path)
        if m and method == "POST":
            return self.create(m[1], body)
        if m and method == "GET":
            with self._lock:
                return {"hyperparameterTuningJobs": [copy.deepcopy(j) for n, j in self.jobs.items()
                                                     if n.startswith(m[1] + "/")]}
        m = _ONE.match(path)
        if m and method == "GET" and not m[2]:
            return self.get(m[1])
        if m and method == "POST" and m[2]:
            return self.cancel(m[1])
        return None

    def _find(self, name: str) -> dict[str, Any]:
        if name not in self.jobs:
            raise self.error(404, f'The HyperparameterTuningJob "{name}" does not exist.', "NOT_FOUND")
        return self.jobs[name]

    def create(self, parent: str, body: dict[str, Any]) -> dict[str, Any]:
        """Check the rules, store a PENDING job, return it."""
        problem = check_job(body)
        if problem:
            raise self.error(400, problem, "INVALID_ARGUMENT")
        with self._lock:
            name = f"{parent}/hyperparameterTuningJobs/{next(self._ids)}"
            job = {**copy.deepcopy(body), "name": name, "state": "JOB_STATE_PENDING", "createTime": _now(),
                   "updateTime": _now()}
            self.jobs[name] = job
            return copy.deepcopy(job)

    def get(self, name: str) -> dict[str, Any]:
        """GET: advance one state; the trials appear when the job succeeds."""
        with self._lock:
            job = self._find(name)
            if job["state"] in _STATES[:-1]:
                job["state"] = _STATES[_STATES.index(job["state"]) + 1]
                job["updateTime"] = _now()
                if job["state"] == "JOB_STATE_SUCCEEDED":
                    job["trials"] = self._trials(job)
                    job["endTime"] = _now()
                    failed = [t for t in job["trials"] if t["state"] != "SUCCEEDED"]
                    limit = int(job.get("maxFailedTrialCount") or 0)
                    if limit and len(failed) >= limit:  # as the field's docs say; 0: the fake never fails the job
                        job["state"] = "JOB_STATE_FAILED"
                        job["error"] = {"code": 9, "message": f"{len(failed)} trials failed; the limit is {limit}."}
            elif job["state"] == "JOB_STATE_CANCELLING":
                job["state"] = "JOB_STATE_CANCELLED"
                job["error"] = {"code": 1, "message": "CANCELLED"}
            return copy.deepcopy(job)

    def cancel(self, name: str) -> dict[str, Any]:
        """POST :cancel on an unfinished job."""
        with self._lock:
            job = self._find(name)
            if job["state"] in TERMINAL or job["state"] == "JOB_STATE_CANCELLING":
                raise self.error(400, f"Cannot cancel {name} in state {job['state']}.", "FAILED_PRECONDITION")
            job["state"] = "JOB_STATE_CANCELLING"
            return {}

    def _trials(self, job: dict[str, Any]) -> list[dict[str, Any]]:
        count = int(job["maxTrialCount"])
        metric = job["studySpec"]["metrics"][0]["metricId"]
        outcomes = self.outcomes or [("SUCCEEDED", 0.5 + 0.01 * (i + 1)) for i in range(count)]
        trials = []
        for i, (state, value) in enumerate(outcomes[:count]):
            trial: dict[str, Any] = {"id": str(i + 1), "state": state, "startTime": _now(), "endTime": _now(),
                                     "parameters": [_point(p, i) for p in job["studySpec"]["parameters"]]}
            if state == "SUCCEEDED" and value is not None:
                trial["finalMeasurement"] = {"stepCount": "1", "metrics": [{"metricId": metric, "value": value}]}
            trials.append(trial)
        return trials


def _point(p: dict[str, Any], i: int) -> dict[str, Any]:
    """The i-th trial's value of one parameter."""
    if "categoricalValueSpec" in p:
        values = p["categoricalValueSpec"]["values"]
        return {"parameterId": p["parameterId"], "value": values[i % len(values)]}
    if "discreteValueSpec" in p:
        values = p["discreteValueSpec"]["values"]
        return {"parameterId": p["parameterId"], "value": values[i % len(values)]}
    spec = p.get("doubleValueSpec") or p["integerValueSpec"]
    lo, hi = float(spec.get("minValue", 0)), float(spec.get("maxValue", 0))
    value = lo + (hi - lo) * ((i * 0.37) % 1.0)
    return {"parameterId": p["parameterId"], "value": round(value) if "integerValueSpec" in p else value}


def _parameter_problem(p: dict[str, Any], algorithm: str) -> str | None:
    pid = p.get("parameterId") or ""
    specs = [k for k in _SPECS if k in p]
    if len(specs) != 1:
        return f"parameter '{pid}' needs exactly one of {', '.join(_SPECS)}, got {specs}"
    spec = p[specs[0]]
    scale = _SCALES.get(p.get("scaleType", 0), p.get("scaleType"))
    if specs[0] in ("doubleValueSpec", "integerValueSpec"):
        # proto3 JSON leaves out zeros: an absent bound is 0
        lo, hi = float(spec.get("minValue", 0)), float(spec.get("maxValue", 0))
        if lo > hi:
            return f"parameter '{pid}': min_value {lo:g} is above max_value {hi:g}"
        if scale == "UNIT_LOG_SCALE" and lo <= 0:
            return f"parameter '{pid}': a log scale needs min_value above 0"
        if specs[0] == "doubleValueSpec" and algorithm == "GRID_SEARCH":
            return f"parameter '{pid}': GRID_SEARCH takes INTEGER, CATEGORICAL and DISCRETE parameters only"
    if specs[0] == "categoricalValueSpec" and not spec.get("values"):
        return f"parameter '{pid}': categorical values are required"
    if specs[0] == "discreteValueSpec":
        values = [float(v) for v in spec.get("values") or []]
        if not values or values != sorted(set(values)) or len(values) > 1000:
            return f"parameter '{pid}': discrete values must be 1 to 1,000 values in increasing order"
    return None


def check_job(body: dict[str, Any]) -> str | None:
    """The first broken rule of a create request (module docstring), or None.

    Example:
        >>> check_job({"displayName": "x"})
        'max_trial_count must be positive'
    """
    if not body.get("displayName") or len(str(body["displayName"])) > 128:
        return "display_name is required, at most 128 characters"
    for key, field in (("maxTrialCount", "max_trial_count"), ("parallelTrialCount", "parallel_trial_count")):
        if int(body.get(key) or 0) <= 0:
            return f"{field} must be positive"
    if int(body.get("maxFailedTrialCount") or 0) < 0:
        return "max_failed_trial_count must not be negative"
    study = body.get("studySpec") or {}
    metrics = study.get("metrics") or []
    if not metrics:
        return "study_spec.metrics is required"
    ids = [m.get("metricId") or "" for m in metrics]
    if any(not i or re.search(r"\s", i) for i in ids) or len(set(ids)) != len(ids):
        return f"study_spec.metrics: metric ids must be non-empty, without whitespace and unique, got {ids}"
    if any(m.get("goal") not in _GOALS for m in metrics):
        return "study_spec.metrics: goal must be MAXIMIZE or MINIMIZE"
    params = study.get("parameters") or []
    if not params:
        return "study_spec.parameters is required"
    pids = [p.get("parameterId") or "" for p in params]
    if any(not i for i in pids) or len(set(pids)) != len(pids):
        return f"study_spec.parameters: parameter ids must be non-empty and unique, got {pids}"
    algorithm = _ALGORITHMS.get(study.get("algorithm", 0))
    if algorithm is None:
        return f"study_spec.algorithm {study.get('algorithm')!r} is not a StudySpec.Algorithm"
    for p in params:
        problem = _parameter_problem(p, algorithm)
        if problem:
            return f"study_spec.parameters: {problem}"
    pools = (body.get("trialJobSpec") or {}).get("workerPoolSpecs") or []
    first = pools[0] if pools else {}
    if not (first.get("machineSpec") or {}).get("machineType"):
        return "trial_job_spec.worker_pool_specs[0].machine_spec.machine_type is required"
    if int(first.get("replicaCount") or 0) < 1:
        return "trial_job_spec.worker_pool_specs[0].replica_count must be at least 1"
    if not (first.get("containerSpec") or {}).get("imageUri"):
        return "trial_job_spec.worker_pool_specs[0].container_spec.image_uri is required"
    return None
