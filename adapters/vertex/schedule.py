"""Pipeline schedules on Vertex AI: a ``Schedule`` resource whose ``createPipelineJobRequest`` is the compiled run.

The pure part (:func:`vertex_cron`, :func:`schedule_display_name`) runs at compile time; :func:`apply`
sends the schedule through google-cloud-aiplatform's ``PipelineJobSchedule`` (create, pause, resume,
list) and its GAPIC ``ScheduleServiceClient`` (``update_schedule``), over the client's settings.

* cron: Vertex takes a five-field cron prefixed with ``TZ=<IANA zone>`` ("The ${IANA_TIME_ZONE} may only
  be a valid string from IANA time zone database", the ``Schedule.cron`` field docs), so the spec's IANA
  zone is written as is. Every restricted field is written as the explicit list of its values (no
  names or steps to translate). A day-of-month **and** a day-of-week together is refused: the Vertex
  docs only point at Wikipedia's cron page and do not say whether such a day must match either field
  or both, and a guess would run the pipeline on the wrong days.
* overlap: ``max_concurrent_run_count`` and ``max_concurrent_active_run_count`` are both 1, with no
  queueing, as cloudml's local scheduler never overlaps runs (a fire time during a run is skipped). The
  first alone only limits *starting* runs ("not the execution of the operations/jobs created by the
  requests", its field docs); the second limits runs in a non-terminal state.
* idempotent: the schedule is found by its display name ``cloudml-<pipeline>`` (Vertex gives schedules
  server-made ids) and updated in place (``PATCH`` with an update mask) when it exists.
* ``enabled: false``: the schedule is created (or kept) and paused; applying it enabled resumes it.

Example:
    >>> vertex_cron("30 2 * * MON-FRI", "Europe/Berlin")
    'TZ=Europe/Berlin 30 2 * * 1,2,3,4,5'
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from cloudml.cron import parse_cron
from cloudml.errors import ConflictError, UnsupportedFeatureError

__all__ = ["UPDATE_MASK", "apply", "schedule_display_name", "vertex_cron"]

# what an update replaces: the time specification, the overlap limits and the run request (template,
# parameter values, pipeline root, labels, service account)
UPDATE_MASK = ["cron", "max_concurrent_run_count", "max_concurrent_active_run_count", "create_pipeline_job_request"]
_FULL = {"minute": 60, "hour": 24, "day": 31, "month": 12, "weekday": 7}


def _values(values: frozenset[int], size: int) -> str:
    return "*" if len(values) == size else ",".join(str(v) for v in sorted(values))


def vertex_cron(expression: str, timezone: str = "UTC") -> str:
    """The spec's cron and IANA time zone as the ``cron`` of a Vertex AI ``Schedule``.

    Example:
        >>> vertex_cron("*/20 8-9 * * *"), vertex_cron("0 3 1 * *", "America/Chicago")
        ('TZ=UTC 0,20,40 8,9 * * *', 'TZ=America/Chicago 0 3 1 * *')
        >>> vertex_cron("0 3 1 * MON")
        Traceback (most recent call last):
        cloudml.errors.UnsupportedFeatureError: vertex cannot express 'schedule': cron '0 3 1 * MON' restricts both the day of the month and the day of the week; Vertex AI does not document whether a day must then match either or both
    """
    c = parse_cron(expression)
    days, weekdays = _values(c.days, _FULL["day"]), _values(c.weekdays, _FULL["weekday"])
    if not (c.any_day or c.any_weekday) and "*" in (days, weekdays):
        days = weekdays = "*"  # cron's "either" rule with one field covering every day: every day
    if days != "*" and weekdays != "*":
        raise UnsupportedFeatureError(
            "vertex", None, "schedule", f"cron '{expression}' restricts both the day of the month and the day of the "
            "week; Vertex AI does not document whether a day must then match either or both",
            hint="restrict one of them, or let the first step skip the days it should not run on")
    fields = [_values(c.minutes, _FULL["minute"]), _values(c.hours, _FULL["hour"]), days,
              _values(c.months, _FULL["month"]), weekdays]
    return f"TZ={timezone} " + " ".join(fields)


def schedule_display_name(pipeline: str) -> str:
    """The display name cloudml finds its schedule by (Vertex allows up to 128 characters).

    Example:
        >>> schedule_display_name("churn-train")
        'cloudml-churn-train'
    """
    return f"cloudml-{pipeline}"[:128]


def apply(client: Any, ir: dict[str, Any], values: dict[str, Any], *, cron: str, enabled: bool = True,
          enable_caching: bool | None = None, labels: dict[str, str] | None = None,
          failure_policy: str | None = None) -> str:
    """Create or update the schedule that runs ``ir`` with ``values``; returns its resource name.

    ``client`` is a :class:`~cloudml.adapters.vertex.client.VertexClient` (settings, retries, errors).

    Example:
        >>> apply(adapter.client(), ir, {"n": 5}, cron="TZ=UTC 0 3 * * *")  # doctest: +SKIP
        'projects/my-project/locations/us-central1/schedules/123'
    """
    from cloudml.adapters.vertex.client import _LOCK
    from cloudml.config import VertexSettings

    settings: VertexSettings = client.settings
    client._require_project()
    root = settings.pipeline_root or ir.get("defaultPipelineRoot")
    if not root:
        from cloudml.errors import ConfigError

        raise ConfigError("a Vertex AI schedule needs a pipeline root (gs://...)",
                          hint="set vertex.pipeline_root in cloudml.yaml or CLOUDML_VERTEX_PIPELINE_ROOT")
    aiplatform = client._sdk()
    name = str(ir.get("pipelineInfo", {}).get("name", "pipeline"))
    display = schedule_display_name(name)
    with tempfile.TemporaryDirectory(prefix="cloudml-vertex-schedule-") as tmp, _LOCK:
        template = Path(tmp) / f"{name}.json"
        template.write_text(json.dumps(ir), encoding="utf-8")
        client._init(aiplatform)
        job = client.call("prepare schedule", lambda: aiplatform.PipelineJob(
            display_name=name[:128], template_path=str(template), pipeline_root=root,
            parameter_values=dict(values), enable_caching=enable_caching, labels=labels or None,
            failure_policy=failure_policy))
        wanted = aiplatform.PipelineJobSchedule(pipeline_job=job, display_name=display)
        found = client.call(f"list schedules named {display}", lambda: aiplatform.PipelineJobSchedule.list(
            filter=f'display_name="{display}"'))
        if len(found) > 1:
            raise ConflictError(f"{len(found)} Vertex AI schedules are named {display}: "
                                f"{', '.join(s.resource_name for s in found)}", backend="vertex",
                                hint="delete all but one in the console (Vertex AI > Pipelines > Schedules), "
                                     "then apply again")
        if not found:
            client.call(f"create schedule {display}", lambda: wanted.create(
                cron=cron, max_concurrent_run_count=1, max_concurrent_active_run_count=1, allow_queueing=False,
                service_account=settings.service_account))
            current = wanted
        else:
            current = found[0]
            _update(client, current, wanted, cron, settings.service_account)
        state = _state(current)
        if not enabled and state == "ACTIVE":
            client.call(f"pause schedule {display}", current.pause)
        elif enabled and state == "PAUSED":
            client.call(f"resume schedule {display}", current.resume)
        return str(current.resource_name)


def _state(schedule: Any) -> str:
    return str(getattr(schedule.gca_resource.state, "name", schedule.gca_resource.state))


def _update(client: Any, current: Any, wanted: Any, cron: str, service_account: str | None) -> None:
    """PATCH the found schedule with the new cron, limits and run request (its name and history stay)."""
    from google.protobuf import field_mask_pb2

    if _state(current) == "COMPLETED":
        raise ConflictError(f"Vertex AI schedule {current.resource_name} is completed and cannot be updated",
                            backend="vertex", hint="delete it in the console, then apply again")
    body = type(current.gca_resource)(
        name=current.resource_name, display_name=current.gca_resource.display_name, cron=cron,
        max_concurrent_run_count=1, max_concurrent_active_run_count=1,
        create_pipeline_job_request=wanted._gca_resource.create_pipeline_job_request)  # built, not sent yet
    if service_account:
        body.create_pipeline_job_request.pipeline_job.service_account = service_account
    mask = field_mask_pb2.FieldMask(paths=UPDATE_MASK)
    updated = client.call(f"update schedule {current.resource_name}",
                          lambda: current.api_client.update_schedule(schedule=body, update_mask=mask))
    current._gca_resource = updated
