"""Cron parsing and fire times (cloudml.cron), the local scheduler loop and `cloudml schedule`."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import cloudml
from cloudml.adapters.local.backend import LocalAdapter
from cloudml.adapters.local.scheduler import ScheduleEvent, run_schedule, upcoming
from cloudml.cli.main import app
from cloudml.config import LocalSettings
from cloudml.cron import next_fire_times, parse_cron

UTC = timezone.utc


# -- parsing ------------------------------------------------------------------------------------------

def test_fields_ranges_steps_lists_and_names() -> None:
    c = parse_cron("5/20 0-6/3 1,15,31 JAN-MAR MON-FRI")
    assert sorted(c.minutes) == [5, 25, 45]
    assert sorted(c.hours) == [0, 3, 6]
    assert sorted(c.days) == [1, 15, 31]
    assert sorted(c.months) == [1, 2, 3]
    assert sorted(c.weekdays) == [1, 2, 3, 4, 5]
    assert not c.any_day and not c.any_weekday


def test_sunday_is_0_and_7() -> None:
    assert parse_cron("0 0 * * 7").weekdays == parse_cron("0 0 * * 0").weekdays == parse_cron("0 0 * * SUN").weekdays


@pytest.mark.parametrize(("expr", "message"), [
    ("0 25 * * *", "hour '25' is outside 0-23"),
    ("0 0 * MON *", "not a number, range or name"),
    ("0 0 * * JAN", "not a number, range or name"),
    ("5-1 * * * *", "reversed"),
    ("*/0 * * * *", "step must be at least 1"),
    ("0 0 * *", "has 4 fields"),
])
def test_bad_expressions_name_the_problem(expr: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_cron(expr)


@pytest.mark.parametrize(("schedule", "message"), [
    ({"cron": "0 0 * MON *"}, "not a number, range or name"),
    ({"cron": "0 3 * * *", "timezone": "Mars/Olympus"}, "not an IANA zone name"),
])
def test_the_spec_refuses_what_the_scheduler_could_not_run(schedule: dict[str, Any], message: str) -> None:
    doc = {"kind": "Pipeline", "name": "p", "schedule": schedule, "steps": [{"name": "a", "command": "true"}]}
    with pytest.raises(cloudml.SpecError, match=message):
        cloudml.loads(yaml.safe_dump(doc))


# -- fire times ---------------------------------------------------------------------------------------

def test_day_of_month_and_day_of_week_match_either_when_both_are_set() -> None:
    times = next_fire_times("0 0 13 * FRI", datetime(2026, 11, 1, tzinfo=UTC), 4)
    assert [t.date().isoformat() for t in times] == ["2026-11-06", "2026-11-13", "2026-11-20", "2026-11-27"]


def test_strictly_after_and_in_the_schedule_zone() -> None:
    start = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)  # 09:00 in Berlin
    times = next_fire_times("0 9 * * *", start, 1, "Europe/Berlin")
    assert times[0].isoformat() == "2026-11-28T09:00:00+01:00"


def test_a_wall_time_skipped_by_dst_does_not_fire_and_a_repeated_one_fires_once() -> None:
    spring = next_fire_times("30 2 * * *", datetime(2026, 3, 28, 12, tzinfo=UTC), 2, "Europe/Berlin")
    assert [t.date().isoformat() for t in spring] == ["2026-03-30", "2026-03-31"]  # 29 March has no 02:30
    autumn = next_fire_times("30 2 * * *", datetime(2026, 10, 24, 12, tzinfo=UTC), 2, "Europe/Berlin")
    assert [t.date().isoformat() for t in autumn] == ["2026-10-25", "2026-10-26"]


def test_rare_and_impossible_expressions() -> None:
    assert next_fire_times("0 0 31 2 *", datetime(2026, 1, 1, tzinfo=UTC), 1) == []
    leap = next_fire_times("0 0 29 2 *", datetime(2026, 1, 1, tzinfo=UTC), 1)
    assert leap[0].date().isoformat() == "2028-02-29"


def test_a_naive_start_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_fire_times("* * * * *", datetime(2026, 1, 1), 1)


def _field() -> st.SearchStrategy[str]:
    return st.sampled_from(["*", "*/7", "0", "5", "1-3", "10-20/5", "3,9,27"])


@settings(max_examples=60, deadline=None)
@given(minute=_field(), hour=st.sampled_from(["*", "0", "6-9", "*/5", "23"]),
       dom=st.sampled_from(["*", "1", "10-12", "31", "*/10"]), month=st.sampled_from(["*", "2", "6-8", "JAN,DEC"]),
       dow=st.sampled_from(["*", "0", "MON-FRI", "6,7"]),
       offset=st.integers(min_value=0, max_value=60 * 24 * 400))
def test_fire_times_agree_with_a_minute_by_minute_scan(minute: str, hour: str, dom: str, month: str, dow: str,
                                                        offset: int) -> None:
    expr = f"{minute} {hour} {dom} {month} {dow}"
    cron = parse_cron(expr)
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=offset)
    got = next_fire_times(expr, start, 3)
    expected, t = [], start.replace(second=0) + timedelta(minutes=1)
    horizon = start + timedelta(days=3)
    while len(expected) < 3 and t <= horizon:
        if t.minute in cron.minutes and t.hour in cron.hours and cron.matches_day(t.date()):
            expected.append(t)
        t += timedelta(minutes=1)
    assert got[:len(expected)] == expected
    if len(expected) < 3:  # the scan stopped at the horizon: whatever else was found lies beyond it
        assert all(x > horizon for x in got[len(expected):])


# -- the local scheduler --------------------------------------------------------------------------------

class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)


def pipeline(command: str = "true", **schedule: Any) -> Any:
    b = cloudml.PipelineBuilder("nightly", schedule={"cron": "*/10 * * * *", **schedule})
    b.add_step("a", command=command)
    return b.build()


def test_runs_start_at_each_fire_time_with_the_schedule_parameters(tmp_path: Path) -> None:
    b = cloudml.PipelineBuilder("nightly", schedule={"cron": "*/10 * * * *", "parameters": {"n": 7}})
    b.param("n", int, 1)
    b.add_step("a", command="echo {{params.n}}")
    adapter = LocalAdapter(LocalSettings(root=str(tmp_path / "state")))
    clock = FakeClock(datetime(2026, 11, 27, 3, 1, tzinfo=UTC))
    events: list[ScheduleEvent] = []
    ids = run_schedule(adapter, b.build(), max_runs=2, now=clock, sleep=clock.sleep, on_event=events.append,
                       use_cache=False)
    assert len(ids) == 2
    started = [e for e in events if e.kind == "started"]
    assert started[0].at is not None and started[0].at.isoformat() == "2026-11-27T03:10:00+00:00"
    assert all(e.at is not None and e.at.minute % 10 == 0 and e.at.second == 0 for e in started)
    # the fake clock races ahead while a real run works: fire times then are skipped, never stacked
    assert [e.kind for e in events if e.kind in ("started", "finished")] == ["started", "finished"] * 2
    for run_id in ids:
        run = adapter.get_run(run_id)
        assert run.status == "succeeded"
        assert run.logs("a").strip() == "7"
    assert max(clock.slept) <= 60.0  # short naps, so a clock change is noticed


def test_run_now_and_parameter_overrides(tmp_path: Path) -> None:
    b = cloudml.PipelineBuilder("nightly", schedule={"cron": "0 3 * * *", "parameters": {"n": 7}})
    b.param("n", int, 1)
    b.add_step("a", command="echo {{params.n}}")
    adapter = LocalAdapter(LocalSettings(root=str(tmp_path / "state")))
    clock = FakeClock(datetime(2026, 11, 27, 12, 0, tzinfo=UTC))
    events: list[ScheduleEvent] = []
    ids = run_schedule(adapter, b.build(), max_runs=1, now=clock, sleep=clock.sleep, on_event=events.append,
                       parameters={"n": 9}, run_now=True)
    assert len(ids) == 1 and clock.slept == []  # at once, not at 03:00 tomorrow
    assert adapter.get_run(ids[0]).logs("a").strip() == "9"
    assert [e.kind for e in events] == ["started", "finished"]


def test_a_fire_time_during_a_running_run_is_skipped_not_stacked(tmp_path: Path) -> None:
    adapter = LocalAdapter(LocalSettings(root=str(tmp_path / "state")))
    clock = FakeClock(datetime(2026, 11, 27, 3, 9, tzinfo=UTC))
    events: list[ScheduleEvent] = []
    ids = run_schedule(adapter, pipeline("sleep 1"), max_runs=2, now=clock, sleep=clock.sleep,
                       on_event=events.append)
    kinds = [e.kind for e in events]
    assert "skipped" in kinds
    assert kinds.index("skipped") < [i for i, k in enumerate(kinds) if k == "started"][1]
    assert [adapter.get_run(i).status for i in ids] == ["succeeded", "succeeded"]
    assert kinds[-1] == "finished"  # the loop waited for the last run


def test_until_stops_the_loop_and_a_disabled_or_missing_schedule_is_refused(tmp_path: Path) -> None:
    adapter = LocalAdapter(LocalSettings(root=str(tmp_path / "state")))
    clock = FakeClock(datetime(2026, 11, 27, 3, 1, tzinfo=UTC))
    assert run_schedule(adapter, pipeline(), until=datetime(2026, 11, 27, 3, 5, tzinfo=UTC), now=clock,
                        sleep=clock.sleep) == []
    with pytest.raises(cloudml.CloudMLError, match="disabled") as info:
        run_schedule(adapter, pipeline(enabled=False), max_runs=1, now=clock, sleep=clock.sleep)
    assert "cloudml run" in str(info.value.hint)
    b = cloudml.PipelineBuilder("plain")
    b.add_step("a", command="true")
    with pytest.raises(cloudml.CloudMLError, match="has no schedule"):
        upcoming(b.build())


# -- the CLI ----------------------------------------------------------------------------------------------

def test_cli_prints_the_next_fire_times(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("kind: Pipeline\nname: p\nschedule: {cron: '30 2 * * MON-FRI', timezone: Europe/Berlin}\n"
                 "steps: [{name: a, command: 'true'}]\n")
    result = CliRunner().invoke(app, ["schedule", "next", str(f), "-n", "3"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "30 2 * * MON-FRI" in lines[0] and "Europe/Berlin" in lines[0]
    assert len([line for line in lines[1:] if "02:30" in line]) == 3


def test_cli_runs_the_schedule_and_refuses_a_pipeline_without_one(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("kind: Pipeline\nname: p\nsteps: [{name: a, command: 'true'}]\n")
    result = CliRunner().invoke(app, ["schedule", "run", str(f), "--root", str(tmp_path / "s")])
    assert result.exit_code == 1
    assert "has no schedule" in result.output and "cloudml run" in result.output
    g = tmp_path / "s.yaml"
    g.write_text("kind: Pipeline\nname: s\nschedule: {cron: '0 3 * * *'}\nparameters: {n: {type: int, default: 1}}\n"
                 "steps: [{name: a, command: 'echo {{params.n}}'}]\n")
    result = CliRunner().invoke(app, ["schedule", "run", str(g), "--max-runs", "1", "--now", "-p", "n=3",
                                      "--root", str(tmp_path / "s")])  # --now: no waiting until 03:00
    assert result.exit_code == 0, result.output
    assert "started" in result.output and "succeeded" in result.output
    run_id = LocalAdapter(LocalSettings(root=str(tmp_path / "s"))).list_runs()[0]["id"]
    assert LocalAdapter(LocalSettings(root=str(tmp_path / "s"))).get_run(run_id).logs("a").strip() == "3"
    result = CliRunner().invoke(app, ["schedule", "run", str(g), "--max-runs", "1", "--now", "-p", "x=1",
                                      "--root", str(tmp_path / "s")])
    assert result.exit_code == 2 and "unknown parameter 'x'" in result.output
    result = CliRunner().invoke(app, ["schedule", "apply", str(g), "--backend", "local"])
    assert result.exit_code == 1 and "cloudml schedule run" in result.output
