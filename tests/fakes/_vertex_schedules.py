"""Pipeline schedules for the Vertex AI fake (what ``aiplatform.PipelineJobSchedule`` and the GAPIC
``ScheduleServiceClient`` send over REST). Part of tests/fakes/vertex.py (``VertexFake.schedules``).

Routes (``{loc}`` is ``projects/P/locations/L``):

* ``POST /v1/{loc}/schedules``: create; the id is the server's (a number), as on Vertex;
* ``GET /v1/{loc}/schedules[?filter=display_name="x"]`` and ``GET /v1/{loc}/schedules/ID`` (404 when absent);
* ``PATCH /v1/{loc}/schedules/ID?updateMask=a,b``: replace the masked fields;
* ``POST .../schedules/ID:pause`` and ``:resume``; ``DELETE .../schedules/ID`` (a finished operation).

Rules enforced, from the ``Schedule`` field docs in google-cloud-aiplatform 2.7 (``aiplatform_v1.types``),
not from the service:

* ``displayName`` is required, at most 128 characters;
* ``cron`` is five cron fields, optionally prefixed ``TZ=<zone>`` or ``CRON_TZ=<zone>`` where the zone is an
  IANA name (a Windows name such as ``W. Europe Standard Time`` is refused);
* ``maxConcurrentRunCount`` is required and positive; ``maxConcurrentActiveRunCount``, when set, positive;
* ``createPipelineJobRequest`` has ``parent`` = the schedule's location and a ``pipelineJob`` the fake would
  accept as a pipeline job (valid IR, declared parameter values, a pipeline root);
* an update needs an ``updateMask`` of known fields, may not change the request type or unset a non-empty
  field, and works only on an ACTIVE or PAUSED schedule; pause needs ACTIVE, resume PAUSED
  (``FAILED_PRECONDITION`` otherwise). Unknown schedules are 404. There is no 409 on create: ids are
  the server's, and display names need not be unique (not stated by the docs; the fake allows it).

Whether Vertex accepts ``create_pipeline_job_request`` in an update mask is not documented; the fake does.

Example:
    >>> _cron_problem("TZ=Europe/Berlin 0 3 * * 1"), _cron_problem("TZ=W. Europe Standard Time 0 3 * * 1")[:30]
    (None, "time zone 'W.' is not an IANA ")
"""

from __future__ import annotations

import copy
import itertools
import re
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

__all__ = ["ScheduleRoutes"]

_COLLECTION = re.compile(r"^/v1/(projects/[^/]+/locations/[^/]+)/schedules$")
_ONE = re.compile(r"^/v1/((projects/[^/]+/locations/[^/]+)/schedules/[^/:]+)(:pause|:resume)?$")
_FILTER = re.compile(r'^\s*(?:display_name|displayName)\s*=\s*"([^"]*)"\s*$')
_UPDATABLE = {"display_name", "cron", "start_time", "end_time", "max_run_count", "max_concurrent_run_count",
              "max_concurrent_active_run_count", "allow_queueing", "create_pipeline_job_request"}
_OUTPUT_ONLY = ("name", "state", "createTime", "updateTime", "nextRunTime", "startedRunCount", "lastPauseTime",
                "lastResumeTime", "catchUp", "lastScheduledRunResponse")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _camel(path: str) -> str:
    head, *rest = path.strip().split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def _snake(path: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), path.strip())


def _cron_problem(cron: Any) -> str | None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from cloudml.cron import parse_cron

    text = str(cron or "")
    m = re.match(r"^(?:CRON_TZ|TZ)=(\S+)\s+(.*)$", text)
    if m:
        try:
            ZoneInfo(m[1])
        except (ZoneInfoNotFoundError, ValueError):
            return f"time zone '{m[1]}' is not an IANA time zone name"
        text = m[2]
    try:
        parse_cron(text)
    except ValueError as e:
        return f"invalid cron '{cron}': {e}"
    return None


def _positive(value: Any) -> bool:
    try:
        return int(value) > 0
    except (TypeError, ValueError):
        return False


class ScheduleRoutes:
    """Schedule state and routes. ``check_job(project, location, pipeline_job)`` raises ApiError for a job
    body the fake would refuse; ``error(code, message, status)`` builds that ApiError."""

    def __init__(self, check_job: Callable[[str, str, dict[str, Any]], None],
                 error: Callable[..., Exception]) -> None:
        self.check_job, self.error = check_job, error
        self.schedules: dict[str, dict[str, Any]] = {}
        self.writes: list[tuple[str, str, dict[str, Any]]] = []  # (method, name, body) of every accepted change
        self._ids = itertools.count(4000)
        self._lock = threading.RLock()

    def route(self, method: str, path: str, query: dict[str, list[str]], body: dict[str, Any]) -> dict[str, Any] | None:
        """Answer a ScheduleService request, or None when ``path`` is not one."""
        with self._lock:
            if m := _COLLECTION.match(path):
                if method == "POST":
                    return self.create(m[1], body)
                if method == "GET":
                    return self.list(m[1], (query.get("filter") or [""])[0])
            if m := _ONE.match(path):
                if method == "GET" and not m[3]:
                    return copy.deepcopy(self._find(m[1]))
                if method == "PATCH" and not m[3]:
                    return self.update(m[1], m[2], body, (query.get("updateMask") or [""])[0])
                if method == "POST" and m[3]:
                    return self.pause_or_resume(m[1], m[3][1:])
                if method == "DELETE" and not m[3]:
                    self._find(m[1])
                    del self.schedules[m[1]]
                    self.writes.append(("DELETE", m[1], {}))
                    return {"name": f"{m[1]}/operations/{next(self._ids)}", "done": True,
                            "metadata": {"@type": "type.googleapis.com/google.cloud.aiplatform.v1.DeleteOperationMetadata"},
                            "response": {"@type": "type.googleapis.com/google.protobuf.Empty"}}
        return None

    def _find(self, name: str) -> dict[str, Any]:
        if name not in self.schedules:
            raise self.error(404, f'The Schedule "{name}" does not exist.')
        return self.schedules[name]

    def _check(self, location: str, s: dict[str, Any]) -> None:
        display = str(s.get("displayName") or "")
        if not display:
            raise self.error(400, "schedule.display_name is required")
        if len(display) > 128:
            raise self.error(400, "schedule.display_name must be at most 128 characters")
        problem = _cron_problem(s.get("cron"))
        if problem:
            raise self.error(400, problem)
        if not _positive(s.get("maxConcurrentRunCount")):
            raise self.error(400, "schedule.max_concurrent_run_count must be positive")
        if "maxConcurrentActiveRunCount" in s and not _positive(s["maxConcurrentActiveRunCount"]):
            raise self.error(400, "schedule.max_concurrent_active_run_count must be positive")
        request = s.get("createPipelineJobRequest")
        if not isinstance(request, dict) or "createNotebookExecutionJobRequest" in s:
            raise self.error(400, "schedule.create_pipeline_job_request is required")
        if request.get("parent") != location:
            raise self.error(400, f"create_pipeline_job_request.parent must be {location}, "
                             f"got {request.get('parent')!r}")
        project, loc = location.split("/")[1], location.split("/")[3]
        self.check_job(project, loc, dict(request.get("pipelineJob") or {}))

    def create(self, location: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST .../schedules: the rules above, then an ACTIVE schedule with a fresh server-made id."""
        s = {k: v for k, v in body.items() if k not in _OUTPUT_ONLY}
        self._check(location, s)
        name = f"{location}/schedules/{next(self._ids)}"
        s.update(name=name, state="ACTIVE", createTime=_now(), updateTime=_now(), nextRunTime=_now(),
                 startedRunCount="0")
        self.schedules[name] = s
        self.writes.append(("POST", name, copy.deepcopy(body)))
        return copy.deepcopy(s)

    def list(self, location: str, filter_text: str) -> dict[str, Any]:
        """GET .../schedules; only ``display_name="x"`` filters are understood (others are 400 here)."""
        wanted = None
        if filter_text.strip():
            m = _FILTER.match(filter_text)
            if not m:
                raise self.error(400, f"the fake understands only display_name=\"...\" filters, got {filter_text!r}")
            wanted = m[1]
        rows = [copy.deepcopy(s) for n, s in self.schedules.items()
                if n.startswith(location + "/") and (wanted is None or s["displayName"] == wanted)]
        return {"schedules": rows}

    def update(self, name: str, location: str, body: dict[str, Any], mask: str) -> dict[str, Any]:
        """PATCH: replace the masked fields; the result must pass the create rules again."""
        current = self._find(name)
        if current["state"] not in ("ACTIVE", "PAUSED"):
            raise self.error(400, f"Schedule {name} is {current['state']}; only an active or paused schedule can be "
                             "updated.", "FAILED_PRECONDITION")
        paths = [p for p in mask.split(",") if p.strip()]
        if not paths:
            raise self.error(400, "update_mask is required")
        if "createNotebookExecutionJobRequest" in body:
            raise self.error(400, "the scheduled request type cannot be changed")
        updated = copy.deepcopy(current)
        for path in paths:
            snake = _snake(path)
            if snake not in _UPDATABLE:
                raise self.error(400, f"update_mask path '{path}' is not an updatable Schedule field")
            key = _camel(snake)
            if key not in body or body[key] in (None, "", {}):
                if current.get(key) not in (None, "", {}, False):
                    raise self.error(400, f"schedule.{snake} cannot be unset")
                updated.pop(key, None)
            else:
                updated[key] = copy.deepcopy(body[key])
        self._check(location, updated)
        updated["updateTime"] = _now()
        self.schedules[name] = updated
        self.writes.append(("PATCH", name, {"updateMask": paths, **copy.deepcopy(body)}))
        return copy.deepcopy(updated)

    def pause_or_resume(self, name: str, verb: str) -> dict[str, Any]:
        """``:pause`` (ACTIVE -> PAUSED) or ``:resume`` (PAUSED -> ACTIVE); FAILED_PRECONDITION otherwise."""
        s = self._find(name)
        need, then = ("ACTIVE", "PAUSED") if verb == "pause" else ("PAUSED", "ACTIVE")
        if s["state"] != need:
            raise self.error(400, f"Cannot {verb} schedule {name} in state {s['state']}.", "FAILED_PRECONDITION")
        s["state"] = then
        s["lastPauseTime" if verb == "pause" else "lastResumeTime"] = _now()
        self.writes.append(("POST", f"{name}:{verb}", {}))
        return {}
