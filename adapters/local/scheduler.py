"""Run a pipeline on its cron schedule on this machine (``cloudml schedule``).

A foreground loop: compute the next fire time of ``pipeline.schedule`` in its time zone, sleep until
then, start a run with the schedule's parameters. Runs never overlap: when a fire time comes while
the previous run is still going, that fire time is skipped and reported (cron's own behaviour is to
start another copy; for training pipelines a pile-up is the worse failure). On exit (``max_runs``
reached, ``until`` passed, or Ctrl-C) the loop waits for the run in flight, so no run is left
half-done by the scheduler going away. The clock and the sleep are injectable for tests.

Example:
    >>> import cloudml
    >>> from datetime import datetime, timezone
    >>> b = cloudml.PipelineBuilder("nightly", schedule="0 3 * * *"); _ = b.add_step("a", command="true")
    >>> [t.isoformat() for t in upcoming(b.build(), 2, datetime(2026, 11, 27, tzinfo=timezone.utc))]
    ['2026-11-27T03:00:00+00:00', '2026-11-28T03:00:00+00:00']
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from cloudml.cron import next_fire_times
from cloudml.errors import CloudMLError

__all__ = ["ScheduleEvent", "run_schedule", "upcoming"]


@dataclass
class ScheduleEvent:
    """One thing the scheduler did: ``waiting`` (until ``at``), ``started`` (``run_id``), ``skipped``,
    ``finished`` (``run_id``, ``status``).

    Example:
        >>> ScheduleEvent("skipped", reason="previous run still running").kind
        'skipped'
    """

    kind: str
    at: datetime | None = None
    run_id: str | None = None
    status: str | None = None
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _schedule(pipeline: Any) -> Any:
    if pipeline.schedule is None:
        raise CloudMLError(f"pipeline '{pipeline.name}' has no schedule",
                        hint="add `schedule: {cron: \"0 3 * * *\"}` to the pipeline, or use `cloudml run`")
    return pipeline.schedule


def upcoming(pipeline: Any, count: int = 5, after: datetime | None = None) -> list[datetime]:
    """The next ``count`` fire times of the pipeline's schedule, in its time zone.

    Example:
        >>> import cloudml
        >>> from datetime import datetime, timezone
        >>> b = cloudml.PipelineBuilder("p", schedule={"cron": "0 9 * * MON", "timezone": "America/New_York"})
        >>> _ = b.add_step("a", command="true")
        >>> upcoming(b.build(), 1, datetime(2026, 11, 27, tzinfo=timezone.utc))[0].isoformat()
        '2026-11-30T09:00:00-05:00'
    """
    s = _schedule(pipeline)
    return next_fire_times(s.cron, after or datetime.now(timezone.utc), count, s.timezone)


def run_schedule(adapter: Any, pipeline: Any, *, spec_dir: str | None = None, max_runs: int | None = None,
                 until: datetime | None = None, on_event: Callable[[ScheduleEvent], None] | None = None,
                 now: Callable[[], datetime] | None = None, sleep: Callable[[float], None] = time.sleep,
                 parameters: dict[str, Any] | None = None, run_now: bool = False,
                 **run_options: Any) -> list[str]:
    """Start a run at every fire time until ``max_runs`` runs started or ``until`` passed; returns run ids.

    ``parameters`` override the schedule's own; ``run_now`` starts one run at once before the first
    fire time (a smoke test of a schedule that fires at night).

    Example:
        >>> import cloudml, tempfile
        >>> from datetime import datetime, timedelta, timezone
        >>> from cloudml.adapters.local.backend import LocalAdapter
        >>> from cloudml.config import LocalSettings
        >>> clock = [datetime(2026, 11, 27, 2, 59, 30, tzinfo=timezone.utc)]
        >>> def tick(seconds): clock[0] += timedelta(seconds=seconds)
        >>> b = cloudml.PipelineBuilder("nightly", schedule="0 3 * * *"); _ = b.add_step("a", command="true")
        >>> adapter = LocalAdapter(LocalSettings(root=tempfile.mkdtemp()))
        >>> ids = run_schedule(adapter, b.build(), max_runs=1, now=lambda: clock[0], sleep=tick)
        >>> adapter.get_run(ids[0]).status, clock[0].isoformat()
        ('succeeded', '2026-11-27T03:00:00+00:00')
    """
    s = _schedule(pipeline)
    if not s.enabled:
        raise CloudMLError(f"the schedule of pipeline '{pipeline.name}' is disabled (enabled: false)",
                           hint="set schedule.enabled: true, or start a run now with `cloudml run`")
    clock = now or (lambda: datetime.now(timezone.utc))
    emit = on_event or (lambda e: None)
    started: list[str] = []
    active: Any = None
    values = {**s.parameters, **(parameters or {})}
    try:
        if run_now and (max_runs is None or max_runs > 0):
            active = adapter.run(pipeline, dict(values), spec_dir=spec_dir, **run_options)
            started.append(active.id)
            emit(ScheduleEvent("started", at=clock(), run_id=active.id))
        while max_runs is None or len(started) < max_runs:
            fire = next_fire_times(s.cron, clock(), 1, s.timezone)
            if not fire or (until is not None and fire[0] > until):
                break
            emit(ScheduleEvent("waiting", at=fire[0]))
            while (left := (fire[0] - clock()).total_seconds()) > 0:
                sleep(min(left, 60.0))  # short naps: a suspended laptop or a clock change is noticed
            if active is not None and active.status not in ("succeeded", "failed", "cancelled"):
                emit(ScheduleEvent("skipped", at=fire[0], run_id=active.id,
                                   reason="the previous run is still running"))
                continue
            if active is not None:
                emit(ScheduleEvent("finished", run_id=active.id, status=active.status))
            active = adapter.run(pipeline, dict(values), spec_dir=spec_dir, **run_options)
            started.append(active.id)
            emit(ScheduleEvent("started", at=fire[0], run_id=active.id))
    finally:
        if active is not None:
            status = active.wait()
            emit(ScheduleEvent("finished", run_id=active.id, status=status))
    return started
