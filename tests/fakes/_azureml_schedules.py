"""Job schedules for the Azure ML fake (what ``ml_client.schedules`` sends).

Part of tests/fakes/azureml.py (``AzureMLFake.schedules``). Routes (``{ws}`` is the workspace ARM id):

* ``PUT {ws}/schedules/{name}``: create (201) or replace (200) the schedule, answered with
  ``Azure-AsyncOperation`` (the operation reports Succeeded on its first poll, then the SDK GETs it);
* ``GET {ws}/schedules/{name}`` (404 ``ResourceNotFound`` when absent) and ``GET {ws}/schedules``;
* ``DELETE {ws}/schedules/{name}``: 202, only once the schedule is disabled.

Rules enforced (400 ``UserError`` otherwise), each from Azure ML's documentation, not from the service:

* ``properties.action`` is ``actionType: CreateJob`` with a ``jobDefinition`` of ``jobType: Pipeline``
  whose nodes name components PUT earlier;
* ``properties.trigger`` is ``triggerType: Cron`` with a five-field NCrontab expression: numbers, ``*``,
  ``a-b``, ``/n`` and lists; minutes 0-59, hours 0-23, weekdays 0-6 or their names (the schedule docs);
* ``timeZone`` is a Windows time zone name that azure-ai-ml lists (``azure.ai.ml.constants.TimeZone``;
  "TimeZone should follow Windows time zone format", the REST reference), default UTC;
* a schedule must be disabled before it is deleted (the schedule docs).

The docs also say day-of-month and month values "are ignored and treated as ``*``": the fake stores the
expression as sent and :meth:`ScheduleFake.effective` gives what would run.

Every PUT body is kept in :attr:`ScheduleFake.puts` (name, body), the current state in
:attr:`ScheduleFake.schedules`.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
import uuid
from typing import Any

__all__ = ["ScheduleFake"]

Answer = tuple[int, Any, dict[str, str]]
_NUMBER = r"(?:\d+|[A-Za-z]{3})"
_PART = re.compile(rf"^(?:\*|{_NUMBER}(?:-{_NUMBER})?)(?:/\d+)?$")
_DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 6)]


def _error(status: int, code: str, message: str) -> Answer:
    return status, {"error": {"code": code, "message": message}}, {}


def _cron_problem(expression: str) -> str | None:
    fields = str(expression).split()
    if len(fields) != 5:
        return f"cron expression '{expression}' must have 5 fields"
    for i, text in enumerate(fields):
        lo, hi = _RANGES[i]
        for part in text.split(","):
            if not _PART.match(part):
                return f"cron field '{text}' is not valid NCrontab"
            for word in re.findall(r"[A-Za-z]+|\d+", part.split("/")[0]):
                if word.isalpha():
                    if i != 4 or word.upper() not in _DAYS:
                        return f"cron field '{text}': '{word}' is not a day name"
                elif not lo <= int(word) <= hi:
                    return f"cron field '{text}': {word} is outside {lo}-{hi}"
    return None


class ScheduleFake:
    """The workspace's job schedules."""

    def __init__(self, owner: Any) -> None:
        self.owner = owner
        self.lock = threading.Lock()
        self.schedules: dict[str, dict[str, Any]] = {}  # name -> the ARM resource as answered
        self.puts: list[tuple[str, dict[str, Any]]] = []

    def effective(self, name: str) -> str:
        """The stored expression as Azure ML runs it: day-of-month and month read as ``*``."""
        minute, hour, _dom, _month, dow = self.schedules[name]["properties"]["trigger"]["expression"].split()
        return f"{minute} {hour} * * {dow}"

    def arm(self, method: str, parts: list[str], raw: bytes) -> Answer | None:
        """A ``schedules`` request (``parts`` after the workspace id), or None when it is not one."""
        if not parts or parts[0] != "schedules":
            return None
        with self.lock:
            if len(parts) == 1 and method == "GET":
                return 200, {"value": [copy.deepcopy(s) for s in self.schedules.values()]}, {}
            if len(parts) != 2:
                return _error(404, "NotFound", f"no route {method} {'/'.join(parts)}")
            name = parts[1]
            if method == "PUT":
                return self._put(name, json.loads(raw or b"{}"))
            if name not in self.schedules:
                return _error(404, "ResourceNotFound", f"schedule {name} was not found")
            if method == "GET":
                return 200, copy.deepcopy(self.schedules[name]), {}
            if method == "DELETE":
                if self.schedules[name]["properties"].get("isEnabled", True):
                    return _error(400, "UserError", f"schedule {name} is enabled; disable it before deleting it")
                del self.schedules[name]
                return 202, None, {"Location": f"{self.owner.url}/operations/{uuid.uuid4().hex}"}
        return _error(404, "NotFound", f"no route {method} schedules/{name}")

    def _put(self, name: str, body: dict[str, Any]) -> Answer:
        problem = self._problem(body)
        if problem:
            return _error(400, "UserError", problem)
        self.puts.append((name, copy.deepcopy(body)))
        props = copy.deepcopy(body.get("properties", {}))
        props.setdefault("isEnabled", True)
        props["trigger"].setdefault("timeZone", "UTC")
        props["provisioningState"] = "Succeeded"
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000000+00:00", time.gmtime())
        existed = name in self.schedules
        created = self.schedules[name]["systemData"]["createdAt"] if existed else now
        self.schedules[name] = {
            "id": f"{self.owner.ws}/schedules/{name}", "name": name,
            "type": "Microsoft.MachineLearningServices/workspaces/schedules",
            "systemData": {"createdAt": created, "createdBy": "cloudml-tests", "createdByType": "User",
                           "lastModifiedAt": now, "lastModifiedBy": "cloudml-tests", "lastModifiedByType": "User"},
            "properties": props}
        operation = f"{self.owner.url}/operations/{uuid.uuid4().hex}"
        return (200 if existed else 201), copy.deepcopy(self.schedules[name]), {"Azure-AsyncOperation": operation}

    def _problem(self, body: dict[str, Any]) -> str | None:
        from azure.ai.ml.constants import TimeZone

        props = body.get("properties") or {}
        action = props.get("action") or {}
        if action.get("actionType") != "CreateJob":
            return f"properties.action.actionType must be CreateJob, got {action.get('actionType')!r}"
        job = action.get("jobDefinition") or {}
        if job.get("jobType") != "Pipeline":
            return f"the scheduled job must be a Pipeline job, got {job.get('jobType')!r}"
        for node, spec in (job.get("jobs") or {}).items():
            ref = str(spec.get("componentId", ""))
            m = re.search(r"/components/([^/]+)/versions/([^/]+)$", ref)
            if not m or f"{m.group(1)}/{m.group(2)}" not in self.owner.components:
                return f"node {node}: component {ref[:80] or '(none)'} was not created"
        trigger = props.get("trigger") or {}
        if trigger.get("triggerType") != "Cron":
            return f"cloudml's fake serves cron triggers only, got {trigger.get('triggerType')!r}"
        problem = _cron_problem(str(trigger.get("expression", "")))
        if problem:
            return problem
        zone = trigger.get("timeZone", "UTC")
        if zone not in {t.value for t in TimeZone}:
            return f"time zone '{zone}' is not a Windows time zone name Azure ML accepts"
        return None
