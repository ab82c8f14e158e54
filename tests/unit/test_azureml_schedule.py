"""Azure ML pipeline schedules: the cron and time zone translation, the schedule YAML checked with
azure-ai-ml's ``load_schedule``, and create-then-update through the real ``MLClient`` against the fake
(tests/fakes/_azureml_schedules.py) on 127.0.0.1, also through ``cloudml schedule apply``."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("azure.ai.ml")

import cloudml
from cloudml.adapters.azureml import AzureMLAdapter
from cloudml.adapters.azureml.client import load_schedule_files
from cloudml.adapters.azureml.schedule import azure_cron, azure_time_zone, schedule_document, schedule_name
from cloudml.adapters.azureml.timezones import _TABLE, ZONES
from cloudml.config import AzureMLSettings
from cloudml.cron import next_fire_times, parse_cron
from cloudml.errors import CloudMLError, CompileError, UnsupportedFeatureError
from cloudml.spec.pipeline import Pipeline
from tests.fakes.azureml import (
    RESOURCE_GROUP,
    SUBSCRIPTION,
    WORKSPACE,
    AzureMLFake,
    FakeCredential,
    azure_test_env,
    azureml_fake,
    cloud_kwargs,
)

# azure-ai-ml 1.35 pins marshmallow<4 and uses APIs marshmallow 3.26 warns about, thousands of times a run
pytestmark = pytest.mark.filterwarnings("ignore::marshmallow.warnings.Marshmallow4Warning")

DATA = "azureml://datastores/workspaceblobstore/paths/churn/"


def pipeline(name: str = "nightly", **schedule: Any) -> Pipeline:
    b = cloudml.PipelineBuilder(name, schedule={"cron": "30 2 * * MON-FRI", **schedule},
                                backend_options={"azureml": {"compute": "cpu-cluster"}})
    b.param("n", int, 3)
    b.param("fast", bool, False)
    b.param("data", str, DATA)
    b.add_step("a", command="echo {{params.n}} {{params.fast}} {{inputs.raw}}", image="python:3.11",
               inputs={"raw": "{{params.data}}"})
    return b.build()


def _load(p: Pipeline, enabled: bool = True) -> Any:
    adapter = AzureMLAdapter()
    return load_schedule_files(adapter.compile_schedule(p).document, adapter.compile(p).document,
                               Path(tempfile.mkdtemp()), enabled=enabled)


# -- cron ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("unix", "azure"), [
    ("30 2 * * MON-FRI", "30 2 * * 1,2,3,4,5"),
    ("0 3 * * *", "0 3 * * *"),
    ("*/20 */6 * * *", "0,20,40 0,6,12,18 * * *"),
    ("0 0 * * 7", "0 0 * * 0"),
    ("0 0 * * 5-7", "0 0 * * 0,5,6"),
    ("0 0 */1 * *", "0 0 * * *"),  # every day of every month is no restriction
])
def test_unix_cron_becomes_an_ncrontab_expression_azure_reads(unix: str, azure: str) -> None:
    assert azure_cron(unix) == azure


@pytest.mark.parametrize(("expr", "field"), [("0 3 1 * *", "day of the month"), ("0 3 * JAN *", "month"),
                                             ("0 0 13 * FRI", "day of the month")])
def test_day_of_month_and_month_are_refused_because_azure_ignores_them(expr: str, field: str) -> None:
    with pytest.raises(UnsupportedFeatureError, match=f"restricts the {field}") as info:
        azure_cron(expr)
    err = info.value
    assert (err.adapter, err.feature) == ("azureml", "schedule")
    assert "ignore the day-of-month and month" in str(err) and "weekdays" in str(err.hint)


def _azure_fires(expression: str, t: datetime) -> bool:
    """An independent reading of the expressions azure_cron writes (lists and '*'), for one minute."""
    minute, hour, dom, month, dow = expression.split()
    assert (dom, month) == ("*", "*")

    def ok(field: str, value: int) -> bool:
        return field == "*" or value in {int(v) for v in field.split(",")}

    return ok(minute, t.minute) and ok(hour, t.hour) and ok(dow, (t.weekday() + 1) % 7)


@settings(max_examples=40, deadline=None)
@given(minute=st.sampled_from(["0", "*/15", "5,35", "10-12"]), hour=st.sampled_from(["*", "3", "8-10", "*/5"]),
       dow=st.sampled_from(["*", "MON-FRI", "0", "6,7", "*/2", "SUN"]),
       start=st.integers(min_value=0, max_value=365 * 24 * 60))
def test_the_azure_expression_fires_exactly_when_the_unix_one_does(minute: str, hour: str, dow: str,
                                                                   start: int) -> None:
    unix = f"{minute} {hour} * * {dow}"
    azure = azure_cron(unix)
    after = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=start)
    for t in next_fire_times(unix, after, 5):
        assert _azure_fires(azure, t), (unix, azure, t)
    cron = parse_cron(unix)
    t = after.replace(second=0)
    for _ in range(200):
        t += timedelta(minutes=7)
        assert _azure_fires(azure, t) == (t.minute in cron.minutes and t.hour in cron.hours
                                          and cron.matches_day(t.date())), (unix, azure, t)


# -- time zones ------------------------------------------------------------------------------------------

def test_every_mapped_zone_is_a_windows_zone_azure_ml_lists_and_a_real_iana_zone() -> None:
    from zoneinfo import ZoneInfo

    from azure.ai.ml.constants import TimeZone

    assert set(ZONES.values()) <= {t.value for t in TimeZone}
    for iana in ZONES:
        ZoneInfo(iana)  # raises for a typo
    assert len(ZONES) > 400


def test_each_iana_zone_keeps_the_offsets_of_its_windows_zone_reference_zone() -> None:
    """CLDR's table, checked against the tzdata on this machine: six-hourly offsets through 2026-2027."""
    from zoneinfo import ZoneInfo

    reference = {line.partition(" = ")[0]: line.partition(" = ")[2].split()[0] for line in _TABLE.strip().splitlines()}
    times = [datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(hours=6 * i) for i in range(4 * 730)]
    for iana, windows in ZONES.items():
        zone, ref = ZoneInfo(iana), ZoneInfo(reference[windows])
        assert all(t.astimezone(zone).utcoffset() == t.astimezone(ref).utcoffset() for t in times), (iana, windows)


@pytest.mark.parametrize(("iana", "windows"), [("UTC", "UTC"), ("Europe/Berlin", "W. Europe Standard Time"),
                                               ("America/New_York", "Eastern Standard Time"),
                                               ("Asia/Kolkata", "India Standard Time"),
                                               ("Australia/Sydney", "AUS Eastern Standard Time")])
def test_iana_zones_become_windows_zones(iana: str, windows: str) -> None:
    assert azure_time_zone(iana) == windows


def test_a_zone_azure_ml_cannot_name_is_refused_with_the_zone_in_the_message() -> None:
    with pytest.raises(UnsupportedFeatureError, match="time zone 'Africa/Juba' has no Windows time zone") as info:
        AzureMLAdapter().compile(pipeline(timezone="Africa/Juba"))  # refused at compile time too
    assert info.value.feature == "schedule" and "UTC" in str(info.value.hint)


# -- the schedule document, through load_schedule -------------------------------------------------------------

def test_the_schedule_loads_with_azure_ml_and_carries_cron_zone_parameters_and_state() -> None:
    p = pipeline(timezone="Europe/Berlin", parameters={"n": 7, "fast": True,
                                                      "data": "azureml://datastores/workspaceblobstore/paths/b/"})
    entity = _load(p, enabled=False)
    assert type(entity).__name__ == "JobSchedule" and entity.name == "cloudml_nightly"
    assert (entity.trigger.expression, entity.trigger.time_zone) == ("30 2 * * 1,2,3,4,5", "W. Europe Standard Time")
    assert entity.is_enabled is False
    assert entity._validate().passed
    rest = entity._to_rest_object().properties
    assert rest.is_enabled is False and rest.trigger.time_zone == "W. Europe Standard Time"
    inputs = rest.action.job_definition.inputs
    assert (inputs["n"].value, inputs["fast"].value) == ("7", "True")
    assert (inputs["data"].job_input_type, inputs["data"].uri) == ("uri_folder",
                                                                   "azureml://datastores/workspaceblobstore/paths/b/")


def test_parameters_the_schedule_does_not_set_keep_the_job_defaults() -> None:
    rest = _load(pipeline(parameters={"n": 9}))._to_rest_object().properties
    inputs = rest.action.job_definition.inputs
    assert inputs["n"].value == "9" and inputs["fast"].value == "False" and inputs["data"].uri == DATA


def test_bad_schedule_parameters_are_refused_before_any_call() -> None:
    with pytest.raises(cloudml.SpecError):
        AzureMLAdapter().compile_schedule(pipeline(parameters={"n": "many"}))
    with pytest.raises(UnsupportedFeatureError, match="parameter data holds 's3://b/x/'"):
        AzureMLAdapter().compile_schedule(pipeline(parameters={"data": "s3://b/x/"}))


def test_a_file_uri_where_the_pipeline_reads_a_folder_is_refused() -> None:
    with pytest.raises(CompileError, match=r"parameter data: .* is a file but the pipeline reads a folder"):
        AzureMLAdapter().compile_schedule(pipeline(parameters={"data": "azureml://datastores/w/paths/f.csv"}))


def test_schedule_names() -> None:
    assert schedule_name("churn-train.v2") == "cloudml_churn_train_v2"
    with pytest.raises(CompileError, match="has no schedule"):
        b = cloudml.PipelineBuilder("plain")
        b.add_step("a", command="true", image="python:3.11")
        schedule_document(b.build(), {})


# -- through the real MLClient, against the fake ------------------------------------------------------------

@pytest.fixture(scope="module")
def fake() -> Iterator[AzureMLFake]:
    with azureml_fake() as server, azure_test_env(server):
        server.add_compute("cpu-cluster")
        yield server
        assert server.outbound == [], "a request tried to leave 127.0.0.1"


def _adapter(fake: AzureMLFake) -> AzureMLAdapter:
    adapter = AzureMLAdapter(AzureMLSettings(subscription_id=SUBSCRIPTION, resource_group=RESOURCE_GROUP,
                                             workspace=WORKSPACE))
    adapter.client(FakeCredential(), **cloud_kwargs(fake))
    return adapter


def test_apply_creates_the_schedule_then_updates_it_in_place(fake: AzureMLFake) -> None:
    adapter = _adapter(fake)
    ref = adapter.apply_schedule(pipeline("sched-a", parameters={"n": 5}))
    assert ref == f"{fake.ws}/schedules/cloudml_sched_a"
    stored = fake.schedules.schedules["cloudml_sched_a"]["properties"]
    assert stored["trigger"] == {"triggerType": "Cron", "expression": "30 2 * * 1,2,3,4,5", "timeZone": "UTC"}
    assert stored["isEnabled"] is True
    job = stored["action"]["jobDefinition"]
    assert job["jobType"] == "Pipeline" and job["experimentName"] == "sched-a"
    assert job["inputs"]["n"] == {"jobInputType": "literal", "value": "5"}
    assert job["inputs"]["data"] == {"jobInputType": "uri_folder", "uri": DATA}

    # applying again updates the same schedule (a PUT by name): no duplicate, no error
    again = adapter.apply_schedule(pipeline("sched-a", cron="0 4 * * *", timezone="America/New_York", enabled=False))
    assert again == ref
    stored = fake.schedules.schedules["cloudml_sched_a"]["properties"]
    assert stored["trigger"]["expression"] == "0 4 * * *"
    assert stored["trigger"]["timeZone"] == "Eastern Standard Time"
    assert stored["isEnabled"] is False
    assert stored["action"]["jobDefinition"]["inputs"]["n"]["value"] == "3"  # back to the default
    assert [n for n, _ in fake.schedules.puts].count("cloudml_sched_a") == 2
    assert list(fake.schedules.schedules).count("cloudml_sched_a") == 1
    listed = adapter.client().call("schedules.list", lambda ml: [s.name for s in ml.schedules.list()])
    assert "cloudml_sched_a" in listed


def test_the_fake_refuses_what_azure_ml_documents_as_invalid(fake: AzureMLFake) -> None:
    """The fake's rules, through the real client: an IANA zone name and a weekday 7 are refused."""
    from cloudml.errors import BackendValidationError

    client = _adapter(fake).client()
    p = pipeline("sched-bad")
    adapter = AzureMLAdapter()
    schedule, job = adapter.compile_schedule(p).document, adapter.compile(p).document
    schedule["trigger"]["time_zone"] = "Europe/Berlin"
    with pytest.raises(BackendValidationError, match="not a Windows time zone name"):
        client.apply_schedule(schedule, job)
    schedule["trigger"].update(time_zone="UTC", expression="0 3 * * 7")
    with pytest.raises(BackendValidationError, match="outside 0-6"):
        client.apply_schedule(schedule, job)
    assert "cloudml_sched_bad" not in fake.schedules.schedules


def test_apply_without_a_schedule_says_what_to_add(fake: AzureMLFake) -> None:
    b = cloudml.PipelineBuilder("plain")
    b.add_step("a", command="true", image="python:3.11")
    with pytest.raises(CloudMLError, match="has no schedule") as info:
        _adapter(fake).apply_schedule(b.build())
    assert "schedule:" in str(info.value.hint)


def test_cli_applies_the_schedule_on_azureml(fake: AzureMLFake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``cloudml schedule apply --backend azureml``; the CLI's backend factory (cloudml code, not the SDK)
    hands it an adapter whose client is aimed at the fake."""
    from typer.testing import CliRunner

    import cloudml.cli.runs as runs
    from cloudml.cli.main import app

    adapter = _adapter(fake)
    asked: list[str | None] = []
    monkeypatch.setattr(runs, "_backend", lambda name, root=None: asked.append(name) or adapter)
    f = tmp_path / "p.yaml"
    f.write_text(cloudml.dumps(pipeline("sched-cli", timezone="Asia/Tokyo")))
    result = CliRunner().invoke(app, ["schedule", "apply", str(f), "--backend", "azureml"])
    assert result.exit_code == 0, result.output
    assert "schedule applied" in result.output and "cloudml_sched_cli" in result.output
    assert asked == ["azureml"] and adapter.base_dir == tmp_path.resolve()
    trigger = fake.schedules.schedules["cloudml_sched_cli"]["properties"]["trigger"]
    assert trigger["timeZone"] == "Tokyo Standard Time"


def test_cli_refuses_a_schedule_azure_ml_cannot_express_without_a_traceback(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cloudml.cli.main import app

    f = tmp_path / "p.yaml"
    f.write_text(cloudml.dumps(pipeline("sched-monthly", cron="0 3 1 * *")))
    result = CliRunner().invoke(app, ["compile", str(f), "--target", "azureml"])
    assert result.exit_code != 0
    assert "restricts the day of the month" in result.output and "Traceback" not in result.output


# -- input.parameter at run time: the run's value replaces the path ------------------------------------------

def test_a_run_replaces_a_uri_parameter_path_and_refuses_one_azure_cannot_read(fake: AzureMLFake) -> None:
    adapter = _adapter(fake)
    run = adapter.run(pipeline("uri-run"), {"data": "azureml://datastores/workspaceblobstore/paths/new/"})
    stored = fake.job(run.id).body["properties"]["inputs"]
    assert stored["data"] == {"jobInputType": "uri_folder", "uri": "azureml://datastores/workspaceblobstore/paths/new/"}
    assert stored["n"] == {"jobInputType": "literal", "value": "3"}
    before = len(fake.requests)
    with pytest.raises(UnsupportedFeatureError, match="parameter data holds 'gs://b/new/'"):
        adapter.run(pipeline("uri-run"), {"data": "gs://b/new/"})
    assert not any(m == "PUT" and "/jobs/" in p for m, p, _ in fake.requests[before:])
