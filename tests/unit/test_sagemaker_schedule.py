"""SageMaker pipeline schedules: cron translation, the CreateSchedule request (botocore's own shapes),
and create-then-update through boto3 against moto (behind tests/fakes/sagemaker.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import botocore.session
import pytest
from botocore.validate import ParamValidator
from hypothesis import given, settings
from hypothesis import strategies as st

import cloudml
from cloudml.adapters.sagemaker import SageMakerAdapter
from cloudml.adapters.sagemaker.schedule import aws_cron, schedule_name, schedule_request
from cloudml.cron import next_fire_times, parse_cron
from cloudml.errors import CompileError
from cloudml.spec.pipeline import Pipeline
from tests.fakes.sagemaker import SageMakerFake, sagemaker_fake

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/x"
BUCKET = "cloudml-schedule-tests"
PIPELINE_ARN = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p"


def pipeline(name: str = "nightly", **schedule: object) -> Pipeline:
    b = cloudml.PipelineBuilder(name, schedule={"cron": "30 2 * * MON-FRI", **schedule})
    b.param("n", int, 3)
    b.param("fast", bool, False)
    b.add_step("a", command="echo {{params.n}} {{params.fast}}", image="python:3.11")
    return b.build()


# -- cron ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("unix", "aws"), [
    ("30 2 * * MON-FRI", "cron(30 2 ? * 2,3,4,5,6 *)"),
    ("0 3 * * *", "cron(0 3 * * ? *)"),
    ("*/20 */6 1,15 JAN-MAR *", "cron(0,20,40 0,6,12,18 1,15 1,2,3 ? *)"),
    ("0 0 * * 0", "cron(0 0 ? * 1 *)"),
    ("0 0 * * 7", "cron(0 0 ? * 1 *)"),
    ("0 0 * * 5-7", "cron(0 0 ? * 1,6,7 *)"),  # Friday to Sunday: a range EventBridge could not wrap
])
def test_unix_cron_becomes_eventbridge_cron(unix: str, aws: str) -> None:
    assert aws_cron(unix) == aws


@pytest.mark.parametrize("expr", ["0 0 13 * FRI", "0 0 */10 * MON"])  # */10 restricts the day too
def test_day_of_month_and_day_of_week_together_is_refused(expr: str) -> None:
    with pytest.raises(CompileError, match="cannot express") as info:
        aws_cron(expr)
    assert "use one of them" in str(info.value.hint)


def _eventbridge_fires(aws: str, t: datetime) -> bool:
    """An independent reading of the six EventBridge fields (lists, '*' and '?' only), for one minute."""
    minute, hour, dom, month, dow, _year = aws[len("cron("):-1].split()

    def ok(field: str, value: int) -> bool:
        return field in ("*", "?") or value in {int(v) for v in field.split(",")}

    weekday = (t.weekday() + 1) % 7 + 1  # EventBridge: 1 = Sunday
    return (ok(minute, t.minute) and ok(hour, t.hour) and ok(month, t.month) and ok(dom, t.day)
            and ok(dow, weekday))


@settings(max_examples=40, deadline=None)
@given(minute=st.sampled_from(["0", "*/15", "5,35"]), hour=st.sampled_from(["*", "3", "8-10"]),
       day=st.sampled_from([("*", "*"), ("1,15", "*"), ("*", "MON-FRI"), ("*", "0"), ("*/10", "*"), ("*", "6,7"),
                            ("*", "*/2")]),
       month=st.sampled_from(["*", "2", "JUN-AUG"]), start=st.integers(min_value=0, max_value=365 * 24 * 60))
def test_eventbridge_expression_fires_exactly_when_the_unix_one_does(minute: str, hour: str, day: tuple[str, str],
                                                                     month: str, start: int) -> None:
    unix = f"{minute} {hour} {day[0]} {month} {day[1]}"
    aws = aws_cron(unix)
    after = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=start)
    for t in next_fire_times(unix, after, 5):
        assert _eventbridge_fires(aws, t), (unix, aws, t)
    # and a minute the Unix expression does not fire on is not fired by EventBridge either
    cron = parse_cron(unix)
    t = after.replace(second=0)
    for _ in range(200):
        t += timedelta(minutes=7)
        unix_fires = t.minute in cron.minutes and t.hour in cron.hours and cron.matches_day(t.date())
        assert _eventbridge_fires(aws, t) == unix_fires, (unix, aws, t)


# -- the request -------------------------------------------------------------------------------------------

def test_the_request_is_valid_for_botocore_and_carries_parameters_zone_and_state() -> None:
    r = schedule_request(pipeline(timezone="Europe/Berlin", parameters={"n": 7, "fast": True}, enabled=False),
                         PIPELINE_ARN, ROLE)
    model = botocore.session.get_session().get_service_model("scheduler")
    report = ParamValidator().validate(r, model.operation_model("CreateSchedule").input_shape)
    assert not report.has_errors(), report.generate_report()
    assert r["Name"] == "cloudml-nightly"
    assert r["ScheduleExpression"] == "cron(30 2 ? * 2,3,4,5,6 *)"
    assert r["ScheduleExpressionTimezone"] == "Europe/Berlin"
    assert r["State"] == "DISABLED"
    assert r["Target"] == {"Arn": PIPELINE_ARN, "RoleArn": ROLE, "SageMakerPipelineParameters": {
        "PipelineParameterList": [{"Name": "n", "Value": "7"}, {"Name": "fast", "Value": "true"}]}}


def test_bad_schedule_parameters_are_refused_before_any_call() -> None:
    with pytest.raises(cloudml.SpecError):
        schedule_request(pipeline(parameters={"n": "many"}), PIPELINE_ARN, ROLE)


def test_schedule_names_fit_eventbridge() -> None:
    assert schedule_name("a" * 80) == "cloudml-" + "a" * 56
    assert len(schedule_name("a" * 80)) == 64


# -- through boto3, against moto ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fake() -> Iterator[SageMakerFake]:
    with sagemaker_fake() as server:
        server.client("s3").create_bucket(Bucket=BUCKET)
        yield server


def test_apply_schedule_publishes_the_pipeline_then_creates_and_updates_the_schedule(fake: SageMakerFake) -> None:
    adapter = cloudml.get_adapter("sagemaker", region=REGION, endpoint_url=fake.url, bucket=BUCKET, role_arn=ROLE)
    assert isinstance(adapter, SageMakerAdapter)
    arn = adapter.apply_schedule(pipeline("sched-a", parameters={"n": 5}))
    assert arn.endswith(":schedule/default/cloudml-sched-a")
    scheduler, sm = fake.client("scheduler"), fake.client("sagemaker")
    got = scheduler.get_schedule(Name="cloudml-sched-a")
    assert got["ScheduleExpression"] == "cron(30 2 ? * 2,3,4,5,6 *)"
    assert got["State"] == "ENABLED"
    assert got["Target"]["Arn"] == sm.describe_pipeline(PipelineName="sched-a")["PipelineArn"]
    assert got["Target"]["SageMakerPipelineParameters"]["PipelineParameterList"] == [{"Name": "n", "Value": "5"}]

    # applying again updates in place (no duplicate, no error)
    again = adapter.apply_schedule(pipeline("sched-a", cron="0 4 * * *", enabled=False))
    assert again == arn
    got = scheduler.get_schedule(Name="cloudml-sched-a")
    assert (got["ScheduleExpression"], got["State"]) == ("cron(0 4 * * ? *)", "DISABLED")
    names = [s["Name"] for s in scheduler.list_schedules()["Schedules"]]
    assert names.count("cloudml-sched-a") == 1


def test_apply_schedule_without_a_schedule_says_what_to_add(fake: SageMakerFake) -> None:
    adapter = cloudml.get_adapter("sagemaker", region=REGION, endpoint_url=fake.url, bucket=BUCKET, role_arn=ROLE)
    b = cloudml.PipelineBuilder("plain")
    b.add_step("a", command="true", image="python:3.11")
    with pytest.raises(cloudml.CloudMLError, match="has no schedule") as info:
        adapter.apply_schedule(b.build())
    assert "schedule:" in str(info.value.hint)


def test_cli_applies_the_schedule_on_sagemaker(fake: SageMakerFake, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from cloudml.cli.main import app

    for key, value in {"CLOUDML_SAGEMAKER_REGION": REGION, "CLOUDML_SAGEMAKER_ENDPOINT_URL": fake.url,
                       "CLOUDML_SAGEMAKER_BUCKET": BUCKET, "CLOUDML_SAGEMAKER_ROLE_ARN": ROLE}.items():
        monkeypatch.setenv(key, value)
    f = tmp_path / "p.yaml"
    f.write_text(cloudml.dumps(pipeline("sched-cli")))
    result = CliRunner().invoke(app, ["schedule", "apply", str(f), "--backend", "sagemaker"])
    assert result.exit_code == 0, result.output
    assert "schedule applied" in result.output and "cloudml-sched-cli" in result.output
    assert fake.client("scheduler").get_schedule(Name="cloudml-sched-cli")["State"] == "ENABLED"
