"""The SageMaker client and adapter (runs, registry, deploys, errors, IAM) against the SageMaker fake.

Real boto3 clients talk over HTTP to tests/fakes/sagemaker.py on 127.0.0.1, with moto_server behind
it (CONVENTIONS rule 7). One fake serves the whole module; every test uses its own resource names.
"""

from __future__ import annotations

import ast
import json
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError
from typer.testing import CliRunner

import cloudml
import cloudml.adapters.sagemaker as sagemaker_pkg
import cloudml.runtime
from cloudml.adapter import RolloutOutcome
from cloudml.adapters.sagemaker import SageMakerAdapter
from cloudml.adapters.sagemaker.client import (
    API_CALLS,
    SageMakerClient,
    SageMakerRun,
    iam_policy,
    translate_code,
)
from cloudml.adapters.sagemaker.compiler import ROLE_PARAMETER, ROOT_PARAMETER, RUNTIME_FILE, code_digest
from cloudml.config import SageMakerSettings
from cloudml.errors import (
    BackendError,
    BackendValidationError,
    CompileError,
    ConfigError,
    NotFoundError,
    PermissionDeniedError,
    RunError,
    ServiceUnavailableError,
    ThrottlingError,
)
from cloudml.spec.deployment import Deployment
from cloudml.spec.pipeline import Pipeline
from cloudml.spec.validate import validate_data
from tests.fakes.sagemaker import RecordedRequest, SageMakerFake, sagemaker_fake

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/x"
BUCKET = "cloudml-client-tests"


@pytest.fixture(scope="module")
def fake() -> Iterator[SageMakerFake]:
    with sagemaker_fake(activation_seconds=0.1, rollback_seconds=0.3, stop_seconds=1.0) as server:
        server.client("s3").create_bucket(Bucket=BUCKET)
        yield server


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _adapter(fake: SageMakerFake, base_dir: Path | None = None, **settings: Any) -> SageMakerAdapter:
    merged: dict[str, Any] = {"bucket": BUCKET, "role_arn": ROLE, **settings}
    a = cloudml.get_adapter("sagemaker", region=REGION, endpoint_url=fake.url, **merged)
    assert isinstance(a, SageMakerAdapter) and a.settings.endpoint_url == fake.url
    if base_dir is not None:
        a.base_dir = base_dir
    return a


def _client(fake: SageMakerFake, max_attempts: int) -> SageMakerClient:
    """A client with few retries (``max_attempts`` counts retries: attempts = max_attempts + 1)."""
    return SageMakerClient(SageMakerSettings(region=REGION, bucket=BUCKET, role_arn=ROLE, endpoint_url=fake.url),
                           max_attempts=max_attempts)


def _since(fake: SageMakerFake, mark: int, operation: str | None = None) -> list[RecordedRequest]:
    rows = fake.requests[mark:]
    return [r for r in rows if operation is None or r.operation == operation]


# -- pipelines -------------------------------------------------------------------------------------

def _code_folder(base: Path) -> Path:
    src = base / "src"
    (src / "pkg").mkdir(parents=True, exist_ok=True)
    (src / "__pycache__").mkdir(exist_ok=True)
    (src / "train.py").write_text("def fit(**kw):\n    return {'auc': 0.9}\n")
    (src / "pkg" / "util.py").write_text("X = 1\n")
    (src / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"\0compiled")
    return src


def test_upload_code_packs_code_paths_beside_the_code_folder(fake: SageMakerFake, tmp_path: Path) -> None:
    src = _code_folder(tmp_path)
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "helpers.py").write_text("Y = 2\n")
    name = _name("paths")
    b = cloudml.PipelineBuilder(name, defaults={"code": "src", "framework": "sklearn==1.2", "code_paths": ["lib"]})
    b.add_step("train", python="train:fit", outputs={"m": "metrics"})
    pipeline = b.build()
    a = _adapter(fake, tmp_path)
    definition = a.compile(pipeline).document
    [uri] = a.client().upload_code(definition, pipeline, tmp_path)
    prefix = uri.split(f"s3://{BUCKET}/", 1)[1]
    keys = {o["Key"][len(prefix):] for o in fake.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]}
    assert keys == {"train.py", "pkg/util.py", RUNTIME_FILE, "_cloudml_paths/0-lib/helpers.py"}
    assert src.is_dir()


def _churn(name: str, min_auc: float = 0.85) -> Pipeline:
    """A python training step with a code folder, an evaluation, a metric gate, register or fail."""
    b = cloudml.PipelineBuilder(name)
    threshold = b.param("min_auc", "float", default=min_auc)
    b.param("epochs", "int", default=3)
    b.param("fast", "bool", default=True)
    b.param("label", "string", default="x")
    train = b.add_step("train", kind="training", python="train:fit", code="src", image="python:3.11",
                       outputs={"model": "model"}, params={"epochs": "{{params.epochs}}"})
    ev = b.add_step("evaluate", python="train:fit", code="src", image="python:3.11",
                    inputs={"model": train.outputs["model"]}, outputs={"metrics": "metrics"})
    b.condition("gate", ev.outputs["metrics"]["auc"] >= threshold, then=["register"], else_=["reject"])
    b.register_model("register", model=train.outputs["model"], group=name, image="img:1")
    b.fail("reject", "AUC below {{params.min_auc}}")
    return b.build()


def _hello(name: str) -> Pipeline:
    b = cloudml.PipelineBuilder(name)
    b.add_step("hello", command="echo hi", image="python:3.11")
    return b.build()


def test_run_uploads_code_creates_then_updates_and_sends_string_parameters(fake: SageMakerFake,
                                                                           tmp_path: Path) -> None:
    src = _code_folder(tmp_path)
    a = _adapter(fake, tmp_path)
    name = _name("churn")
    s3, sm = fake.client("s3"), fake.client("sagemaker")
    pipeline = _churn(name)
    mark = len(fake.requests)

    run = a.run(pipeline, {"epochs": 5, "label": "a b"})

    # the code bundle: content-addressed, the folder's files (no __pycache__) plus cloudml's runtime
    digest = code_digest(src)
    root = f"cloudml/{name}/code/{digest}/"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"cloudml/{name}/")["Contents"]}
    assert keys == {root + "train.py", root + "pkg/util.py", root + RUNTIME_FILE}
    runtime = s3.get_object(Bucket=BUCKET, Key=root + RUNTIME_FILE)["Body"].read()
    assert runtime == Path(cloudml.runtime.__file__).read_bytes()
    assert s3.get_object(Bucket=BUCKET, Key=root + "train.py")["Body"].read() == (src / "train.py").read_bytes()

    # the pipeline was created (not updated) with the compiled definition, which names that bundle
    ops = [r.operation for r in _since(fake, mark) if not r.operation.startswith("PUT ")]
    assert ops[:2] == ["CreatePipeline", "StartPipelineExecution"] and "UpdatePipeline" not in ops
    compiled = a.compile(pipeline).document
    assert f"s3://{BUCKET}/{root}" in json.dumps(compiled)
    stored = sm.describe_pipeline_definition_for_execution(PipelineExecutionArn=run.arn)["PipelineDefinition"]
    assert json.loads(stored) == compiled
    assert sm.describe_pipeline(PipelineName=name)["RoleArn"] == ROLE

    # every parameter travels as a string; role and root are not parameters when the settings have them
    params = sm.list_pipeline_parameters_for_execution(PipelineExecutionArn=run.arn)["PipelineParameters"]
    assert {p["Name"]: p["Value"] for p in params} == {"min_auc": "0.85", "epochs": "5", "fast": "true",
                                                       "label": "a b"}
    declared = {p["Name"] for p in compiled["Parameters"]}
    assert ROLE_PARAMETER not in declared and ROOT_PARAMETER not in declared

    # a second run of a changed pipeline: CreatePipeline is refused, so the pipeline is updated
    mark = len(fake.requests)
    second = a.run(_churn(name, min_auc=0.9), {"fast": False})
    ops = [(r.operation, r.status) for r in _since(fake, mark) if not r.operation.startswith("PUT ")]
    assert ops[:3] == [("CreatePipeline", 400), ("UpdatePipeline", 200), ("StartPipelineExecution", 200)]
    assert second.arn != run.arn
    defaults = {p["Name"]: p.get("DefaultValue") for p in
                json.loads(sm.describe_pipeline(PipelineName=name)["PipelineDefinition"])["Parameters"]}
    assert defaults["min_auc"] == 0.9
    params = sm.list_pipeline_parameters_for_execution(PipelineExecutionArn=second.arn)["PipelineParameters"]
    assert {p["Name"]: p["Value"] for p in params} == {"min_auc": "0.9", "epochs": "3", "fast": "false",
                                                       "label": "x"}
    assert all(isinstance(p["Value"], str) for p in params)

    # the fake lists the steps of the definition; the gate takes IfSteps by default
    assert {s["name"]: s["status"] for s in run.steps} == {"train": "succeeded", "evaluate": "succeeded",
                                                           "gate": "succeeded", "register": "succeeded"}
    assert run.status == "succeeded" and run.error is None


def test_role_and_root_parameters_only_without_settings(fake: SageMakerFake, tmp_path: Path) -> None:
    """Without role/bucket the definition declares them as parameters; `run` still needs both settings."""
    _code_folder(tmp_path)
    pipeline = _churn(_name("portable"))
    bare = SageMakerAdapter(SageMakerSettings(region=REGION, endpoint_url=fake.url))
    bare.base_dir = tmp_path
    doc = bare.compile(pipeline).document
    declared = {p["Name"]: p for p in doc["Parameters"]}
    assert declared[ROLE_PARAMETER] == {"Name": ROLE_PARAMETER, "Type": "String"}
    assert declared[ROOT_PARAMETER] == {"Name": ROOT_PARAMETER, "Type": "String"}
    assert doc["Steps"][0]["Arguments"]["RoleArn"] == {"Get": f"Parameters.{ROLE_PARAMETER}"}

    mark = len(fake.requests)
    with pytest.raises(ConfigError, match="execution role"):
        bare.run(pipeline)
    no_bucket = SageMakerAdapter(SageMakerSettings(region=REGION, role_arn=ROLE, endpoint_url=fake.url))
    no_bucket.base_dir = tmp_path
    with pytest.raises(BackendValidationError, match="S3 bucket"):
        no_bucket.run(pipeline)
    assert _since(fake, mark) == []  # refused before any AWS call


@pytest.fixture(scope="module")
def hello_run(fake: SageMakerFake) -> SageMakerRun:
    run = _adapter(fake).run(_hello(_name("hello")))
    assert isinstance(run, SageMakerRun)
    return run


@pytest.mark.parametrize(("native", "neutral"), [
    ("Executing", "running"), ("Stopping", "running"), ("Succeeded", "succeeded"), ("Failed", "failed"),
    ("Stopped", "cancelled"), ("CompletedWithFailures", "failed"),
])
def test_run_status_mapping(fake: SageMakerFake, hello_run: SageMakerRun, native: str, neutral: str) -> None:
    fake.set_execution_status(hello_run.arn, native)
    assert hello_run.status == neutral
    assert _adapter(fake).get_run(hello_run.arn).status == neutral


def test_run_steps_mapping_and_cache_hits(fake: SageMakerFake) -> None:
    run = _adapter(fake).run(_hello(_name("steps")))
    job = "arn:aws:sagemaker:us-east-1:123456789012:processing-job/pipelines-abc-prep"
    fake.set_execution_steps(run.arn, [
        {"StepName": "prep", "StepStatus": "Succeeded", "CacheHitResult": {"SourcePipelineExecutionArn": run.arn},
         "Metadata": {"ProcessingJob": {"Arn": job}}},
        {"StepName": "train", "StepStatus": "Succeeded", "AttemptCount": 3},
        {"StepName": "flaky", "StepStatus": "Failed", "FailureReason": "ClientError: exit code 1"},
        {"StepName": "stopped", "StepStatus": "Stopped"},
        {"StepName": "stopping", "StepStatus": "Stopping"},
        {"StepName": "busy", "StepStatus": "Executing"},
        {"StepName": "queued", "StepStatus": "Starting"},
    ])
    steps = {s["name"]: s for s in run.steps}
    assert {n: s["status"] for n, s in steps.items()} == {
        "prep": "cached", "train": "succeeded", "flaky": "failed", "stopped": "cancelled", "stopping": "running",
        "busy": "running", "queued": "pending"}
    assert steps["prep"]["cache_hit"] == 1 and steps["train"]["cache_hit"] == 0
    assert steps["prep"]["job"] == job and steps["train"]["attempts"] == 3
    assert steps["flaky"]["error"] == "ClientError: exit code 1"


def test_run_steps_follow_next_token(fake: SageMakerFake) -> None:
    run = _adapter(fake).run(_hello(_name("paged")))
    fake.set_execution_steps(run.arn, [{"StepName": f"s{i:02d}", "StepStatus": "Succeeded"} for i in range(60)])
    mark = len(fake.requests)
    assert sorted(s["name"] for s in run.steps) == [f"s{i:02d}" for i in range(60)]
    assert len(_since(fake, mark, "ListPipelineExecutionSteps")) == 2  # 50 per page by default


def test_condition_else_branch_fails_the_run(fake: SageMakerFake, tmp_path: Path) -> None:
    _code_folder(tmp_path)
    run = _adapter(fake, tmp_path).run(_churn(_name("gate")))
    fake.set_condition_outcome("gate", False, execution_arn=run.arn)
    states = {s["name"]: s["status"] for s in run.steps}
    assert states == {"train": "succeeded", "evaluate": "succeeded", "gate": "succeeded", "reject": "failed"}
    assert run.status == "failed"


def test_run_error(fake: SageMakerFake) -> None:
    run = _adapter(fake).run(_hello(_name("err")))
    assert run.error is None
    fake.set_execution_status(run.arn, "Failed", failure_reason="Step train failed: OutOfMemory")
    assert run.error == "Step train failed: OutOfMemory"
    fake.set_execution_status(run.arn, "CompletedWithFailures")
    fake.set_execution_steps(run.arn, [{"StepName": "a", "StepStatus": "Succeeded"},
                                       {"StepName": "b", "StepStatus": "Failed", "FailureReason": "boom"}])
    assert run.error == "step 'b' failed: boom"  # the failed step is named


def test_run_error_names_the_failed_step(fake: SageMakerFake) -> None:
    run = _adapter(fake).run(_hello(_name("errstep")))
    fake.set_execution_steps(run.arn, [{"StepName": "prep", "StepStatus": "Succeeded"},
                                       {"StepName": "gatekeeper", "StepStatus": "Failed",
                                        "FailureReason": "AlgorithmError: exit code 3"}])
    assert run.status == "failed"
    assert "gatekeeper" in (run.error or "")


def test_cancel_stops_the_execution(fake: SageMakerFake) -> None:
    run = _adapter(fake).run(_hello(_name("cancel")))
    fake.set_execution_steps(run.arn, [{"StepName": "prep", "StepStatus": "Succeeded"},
                                       {"StepName": "hello", "StepStatus": "Executing"}])
    assert run.status == "running"
    mark = len(fake.requests)
    run.cancel()
    assert [r.status for r in _since(fake, mark, "StopPipelineExecution")] == [200]
    assert run.status == "running"  # Stopping
    assert run.wait(timeout=10, poll=0.05) == "cancelled"
    assert {s["name"]: s["status"] for s in run.steps} == {"prep": "succeeded", "hello": "cancelled"}
    with pytest.raises(BackendValidationError, match="cannot be stopped"):  # already stopped
        run.cancel()


def test_wait_polls_until_terminal(fake: SageMakerFake) -> None:
    run = _adapter(fake).run(_hello(_name("wait")))
    fake.set_execution_status(run.arn, ["Executing", "Executing", "Succeeded"])
    mark = len(fake.requests)
    assert run.wait(timeout=10, poll=0.01) == "succeeded"
    assert len(_since(fake, mark, "DescribePipelineExecution")) == 3
    fake.set_execution_status(run.arn, "Executing")
    started = time.monotonic()
    assert run.wait(timeout=0.2, poll=0.02) == "running"
    assert time.monotonic() - started < 2


def test_logs_point_at_cloudwatch_log_groups(fake: SageMakerFake, tmp_path: Path) -> None:
    _code_folder(tmp_path)
    run = _adapter(fake, tmp_path).run(_churn(_name("logs")))
    execution = run.arn.rsplit("/", 1)[1]
    assert run.logs("train") == (f"CloudWatch Logs: log group /aws/sagemaker/TrainingJobs, "
                                 f"streams pipelines-{execution}-train/*")
    assert run.logs("evaluate") == (f"CloudWatch Logs: log group /aws/sagemaker/ProcessingJobs, "
                                    f"streams pipelines-{execution}-evaluate/*")
    assert run.logs("gate") == "" and run.logs("no-such-step") == ""


@pytest.mark.parametrize(("metadata", "forbidden", "expected"), [
    ({"TransformJob": {"Arn": "arn:aws:sagemaker:us-east-1:123456789012:transform-job/pipelines-x-score"}},
     "ProcessingJobs", "/aws/sagemaker/TransformJobs"),
    ({"RegisterModel": {"Arn": "arn:aws:sagemaker:us-east-1:123456789012:model-package/churn/1"}},
     "ProcessingJobs", ""),
])
def test_logs_for_other_step_kinds(fake: SageMakerFake, metadata: dict[str, Any], forbidden: str,
                                   expected: str) -> None:
    run = _adapter(fake).run(_hello(_name("logkind")))
    fake.set_execution_steps(run.arn, [{"StepName": "s", "StepStatus": "Succeeded", "Metadata": metadata}])
    text = run.logs("s")
    assert forbidden not in text and expected in text


# -- model registry --------------------------------------------------------------------------------

def test_registry_versions_approval_and_latest_approved(fake: SageMakerFake) -> None:
    a = _adapter(fake)
    group = _name("grp")
    with pytest.raises(CompileError, match="serving image"):
        a.register_model(group, f"s3://{BUCKET}/m0.tar.gz")
    mark = len(fake.requests)
    v1 = a.register_model(group, f"s3://{BUCKET}/m1.tar.gz", image="img:1", metrics={"auc": 0.91},
                          tags={"team": "risk"})
    v2 = a.register_model(group, f"s3://{BUCKET}/m2.tar.gz", image="img:1")
    v3 = a.register_model(group, f"s3://{BUCKET}/m3.tar.gz", image="img:1", approval="approved")
    assert [r.status for r in _since(fake, mark, "CreateModelPackageGroup")] == [200]  # created once
    assert [r.status for r in _since(fake, mark, "DescribeModelPackageGroup")] == [400, 200, 200]
    assert (v1.group, v1.version, v1.uri, v1.approval) == (group, 1, f"s3://{BUCKET}/m1.tar.gz", "pending")
    assert v1.metrics == {"auc": 0.91} and v1.tags == {"team": "risk"}
    assert (v2.version, v3.version, v3.approval) == (2, 3, "approved")

    assert [(m.version, m.approval) for m in a.list_models(group)] == [(3, "approved"), (2, "pending"),
                                                                       (1, "pending")]
    with pytest.raises(CompileError):
        a.list_models()

    assert a.set_approval(group, 1, "approved").approval == "approved"
    assert a.latest_approved(group).version == 3
    assert a.set_approval(group, 3, "rejected").approval == "rejected"
    assert a.latest_approved(group).version == 1
    assert a.set_approval(group, 1, "rejected").approval == "rejected"
    with pytest.raises(NotFoundError, match="no approved version"):
        a.latest_approved(group)
    assert a.set_approval(group, 2, "approved").approval == "approved"
    assert a.latest_approved(group).version == 2
    assert {m.version: m.approval for m in a.list_models(group)} == {1: "rejected", 2: "approved", 3: "rejected"}
    with pytest.raises(NotFoundError):
        a.set_approval(group, 9, "approved")
    with pytest.raises(NotFoundError):
        a.latest_approved(_name("nogroup"))


# -- deployments -----------------------------------------------------------------------------------

ALARMS = [{"name": "errors", "metric": "error_rate", "threshold": 0.01, "period": "10s"},
          {"name": "slow", "metric": "latency_p99", "threshold": "250ms", "period": "10s"}]


def _deployment(endpoint: str, group: str, **fields: Any) -> Deployment:
    doc = {"apiVersion": "cloudml/v1", "kind": "Deployment", "endpoint": endpoint,
           "model": {"group": group, "version": "latest"}, "instances": {"count": 2}, **fields}
    d = validate_data(doc)
    assert isinstance(d, Deployment)
    return d


def test_first_deploy_creates_the_endpoint(fake: SageMakerFake) -> None:
    a = _adapter(fake)
    endpoint, group = _name("ep"), _name("dg")
    a.register_model(group, f"s3://{BUCKET}/m1.tar.gz", image="img:1")
    mark = len(fake.requests)
    result = a.deploy(_deployment(endpoint, group, strategy="all_at_once"), poll=0.05)
    assert result.outcome is RolloutOutcome.SUCCEEDED, result
    requested = result.history[0]["config"]
    assert requested.startswith(f"{endpoint}-v1-")
    desc = a.endpoint_status(endpoint)
    assert (desc["EndpointStatus"], desc["EndpointConfigName"]) == ("InService", requested)
    assert _since(fake, mark, "CreateEndpoint") and not _since(fake, mark, "UpdateEndpoint")
    sm = fake.client("sagemaker")
    model = sm.describe_model(ModelName=requested)
    assert model["PrimaryContainer"]["ModelPackageName"].endswith(f"model-package/{group}/1")
    variant = sm.describe_endpoint_config(EndpointConfigName=requested)["ProductionVariants"][0]
    assert (variant["VariantName"], variant["InstanceType"], variant["InitialInstanceCount"]) == \
        ("AllTraffic", "ml.m5.large", 2)


def test_canary_update_then_alarm_rollback(fake: SageMakerFake) -> None:
    a = _adapter(fake)
    sm, cw = fake.client("sagemaker"), fake.client("cloudwatch")
    endpoint, group = _name("ep"), _name("dg")
    for i in (1, 2, 3):
        a.register_model(group, f"s3://{BUCKET}/m{i}.tar.gz", image="img:1")
    # 1. model v1 creates the endpoint... (the group's newest is v3: pin versions explicitly)
    first = a.deploy(_deployment(endpoint, group, model={"group": group, "version": 1}, strategy="all_at_once"),
                     poll=0.05)
    assert first.outcome is RolloutOutcome.SUCCEEDED

    # 2. ...v2 goes through the fake's guardrails as a canary with a short bake, and lands
    canary = _deployment(endpoint, group, model={"group": group, "version": 2}, alarms=ALARMS,
                         strategy={"canary": {"percent": 25, "bake": "1s"}})
    mark = len(fake.requests)
    second = a.deploy(canary, poll=0.05)
    assert second.outcome is RolloutOutcome.SUCCEEDED, second
    v2_config = second.history[0]["config"]
    assert v2_config.startswith(f"{endpoint}-v2-")
    assert sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"] == v2_config
    assert [r.status for r in _since(fake, mark, "UpdateEndpoint")] == [200]
    dep = fake.deployment(endpoint)
    assert dep is not None and dep.outcome == "Succeeded" and dep.traffic_steps == [25.0, 100.0]
    assert dep.deployment_config["AutoRollbackConfiguration"] == {
        "Alarms": [{"AlarmName": f"cloudml-{endpoint}-errors"}, {"AlarmName": f"cloudml-{endpoint}-slow"}]}
    assert [r.status for r in _since(fake, mark, "PutMetricAlarm")] == [200, 200]

    # the alarms reached CloudWatch with the right metrics and dimensions
    dims = [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": "AllTraffic"}]
    alarms = {x["AlarmName"]: x for x in cw.describe_alarms(AlarmNamePrefix=f"cloudml-{endpoint}-")["MetricAlarms"]}
    assert set(alarms) == {f"cloudml-{endpoint}-errors", f"cloudml-{endpoint}-slow"}
    slow = alarms[f"cloudml-{endpoint}-slow"]
    assert (slow["Namespace"], slow["MetricName"], slow["ExtendedStatistic"], slow["Period"], slow["Threshold"]) == \
        ("AWS/SageMaker", "ModelLatency", "p99", 10, 250000.0)
    assert slow["Dimensions"] == dims
    errors = alarms[f"cloudml-{endpoint}-errors"]
    stats = {m["Id"]: m["MetricStat"] for m in errors["Metrics"] if "MetricStat" in m}
    assert {k: v["Metric"]["MetricName"] for k, v in stats.items()} == {"errors": "Invocation5XXErrors",
                                                                        "invocations": "Invocations"}
    assert all(v["Metric"]["Dimensions"] == dims and v["Period"] == 10 for v in stats.values())
    assert errors["Threshold"] == 0.01

    # 3. v3 during whose canary bake cloudml's error alarm fires: SageMaker (the fake) rolls back
    tripped: list[str] = []
    alarm = f"cloudml-{endpoint}-errors"

    def trip() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            d = fake.deployment(endpoint)
            if d is not None and d is not dep and d.history and d.history[-1].startswith("Baking"):
                cw.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="test: 5xx burst")
                tripped.append(d.history[-1])
                return
            time.sleep(0.02)

    watcher = threading.Thread(target=trip, daemon=True)
    watcher.start()
    third = a.deploy(_deployment(endpoint, group, model={"group": group, "version": 3}, alarms=ALARMS,
                                 strategy={"canary": {"percent": 25, "bake": "2s"}}), poll=0.05)
    watcher.join(timeout=20)
    assert tripped == ["Baking 25%"]
    assert third.outcome is RolloutOutcome.ROLLED_BACK, third
    assert third.alarm == alarm
    assert third.history[0]["config"].startswith(f"{endpoint}-v3-")
    desc = sm.describe_endpoint(EndpointName=endpoint)
    assert (desc["EndpointStatus"], desc["EndpointConfigName"]) == ("InService", v2_config)
    rolled = fake.deployment(endpoint)
    assert rolled is not None and rolled.outcome == "RolledBack" and alarm in rolled.reason
    assert "Baking 100%" not in rolled.history


def test_deploy_unknown_version_is_not_found(fake: SageMakerFake) -> None:
    a = _adapter(fake)
    group = _name("dg")
    a.register_model(group, f"s3://{BUCKET}/m1.tar.gz", image="img:1")
    with pytest.raises(NotFoundError):
        a.deploy(_deployment(_name("ep"), group, model={"group": group, "version": 7}), poll=0.05)


def test_deploy_latest_of_empty_group_is_not_found(fake: SageMakerFake) -> None:
    with pytest.raises(NotFoundError):
        _adapter(fake).deploy(_deployment(_name("ep"), _name("empty")), poll=0.05)


def test_invoke(fake: SageMakerFake) -> None:
    assert fake.moto is not None
    endpoint = _name("inv")
    body = json.dumps({"region": REGION, "results": [{"Body": json.dumps({"predictions": [0.25]}),
                                                       "ContentType": "application/json"}]}).encode()
    request = urllib.request.Request(f"{fake.moto.url}/moto-api/static/sagemaker/endpoint-results", data=body,
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 201
    a = _adapter(fake)
    assert a.invoke(endpoint, [[1.0, 2.0]]) == {"predictions": [0.25]}
    with pytest.raises(RunError, match="not a JSON object"):
        a.invoke(_name("canned"), [[1.0]])  # moto's canned answer is the text "body"


# -- faults and errors -----------------------------------------------------------------------------

@pytest.mark.parametrize("operation", ["CreatePipeline", "StartPipelineExecution"])
def test_throttling_is_retried(fake: SageMakerFake, operation: str) -> None:
    a = _adapter(fake)
    mark = len(fake.requests)
    fake.inject(operation, "ThrottlingException", times=2)
    run = a.run(_hello(_name("throttled")))
    assert run.status == "succeeded"
    assert [r.handled_by for r in _since(fake, mark, operation)] == ["fault", "fault", "moto"]


@pytest.mark.parametrize(("operation", "error", "times", "expected", "code"), [
    ("CreatePipeline", "ThrottlingException", 2, ThrottlingError, "ThrottlingException"),
    ("StartPipelineExecution", "ThrottlingException", 2, ThrottlingError, "ThrottlingException"),
    ("StartPipelineExecution", 503, 2, ServiceUnavailableError, "ServiceUnavailable"),
    ("StartPipelineExecution", "InternalFailure", 2, ServiceUnavailableError, "InternalFailure"),
    ("CreatePipeline", "AccessDeniedException", 1, PermissionDeniedError, "AccessDeniedException"),
    ("StartPipelineExecution", "ResourceNotFound", 1, NotFoundError, "ResourceNotFound"),
])
def test_errors_surface_translated_and_chained(fake: SageMakerFake, operation: str, error: str | int, times: int,
                                               expected: type[BackendError], code: str) -> None:
    """One retry (two attempts): more injected faults than that surface as cloudml errors."""
    client = _client(fake, max_attempts=1)
    name = _name("faulty")
    if operation == "StartPipelineExecution":
        client.upsert_pipeline(name, _adapter(fake).compile(_hello(name)).document, ROLE)
    mark = len(fake.requests)
    fake.inject(operation, error, times=times)
    with pytest.raises(expected) as info:
        if operation == "CreatePipeline":
            client.upsert_pipeline(name, _adapter(fake).compile(_hello(name)).document, ROLE)
        else:
            client.start(name, {})
    assert type(info.value) is expected
    assert isinstance(info.value.__cause__, ClientError)
    assert info.value.__cause__.response["Error"]["Code"] == code
    assert info.value.vendor_code == code
    assert str(info.value).startswith(f"sagemaker.{'create_pipeline' if operation == 'CreatePipeline' else 'start_pipeline_execution'}")
    assert [r.handled_by for r in _since(fake, mark, operation)] == ["fault"] * times  # every fault consumed
    if expected is PermissionDeniedError:
        assert "cloudml iam-policy --target sagemaker" in (info.value.hint or "")


def test_cloudwatch_and_s3_errors_are_translated(fake: SageMakerFake, tmp_path: Path) -> None:
    client = _client(fake, max_attempts=1)
    mark = len(fake.requests)
    fake.inject("DescribeAlarms", "ThrottlingException", times=2)  # CloudWatch speaks CBOR
    with pytest.raises(ThrottlingError) as info:
        client.call("cloudwatch", "describe_alarms", AlarmNames=["x"])
    assert isinstance(info.value.__cause__, ClientError)
    assert [r.handled_by for r in _since(fake, mark, "DescribeAlarms")] == ["fault", "fault"]

    key = f"{_name('up')}/file.py"
    fake.inject(f"PUT /{BUCKET}/{key}", "AccessDenied", times=1)
    with pytest.raises(PermissionDeniedError) as denied:
        client.call("s3", "upload_file", Filename=cloudml.runtime.__file__, Bucket=BUCKET, Key=key)
    assert denied.value.vendor_code == "AccessDenied"
    cause = denied.value.__cause__
    assert cause is not None and isinstance(cause.__cause__ or cause.__context__, ClientError)


def test_unknown_resources_map_as_declared(fake: SageMakerFake) -> None:
    a = _adapter(fake)
    for call in (lambda: a.endpoint_status(_name("nope")),
                 lambda: a.get_run("arn:aws:sagemaker:us-east-1:123456789012:pipeline/nope/execution/x").status):
        with pytest.raises((NotFoundError, BackendValidationError)) as info:
            call()
        assert info.value.vendor_code is not None
        assert type(info.value) is translate_code(info.value.vendor_code, 400)
        assert isinstance(info.value.__cause__, ClientError)


@pytest.mark.parametrize(("service", "operation", "kwargs"), [
    ("cloudwatch", "describe_alarm_history", {"AlarmName": "x"}),
    ("sagemaker", "retry_pipeline_execution",
     {"PipelineExecutionArn": "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/x",
      "ClientRequestToken": "0123456789abcdef0123456789abcdef"}),
])
def test_moto_not_implemented_is_service_unavailable(fake: SageMakerFake, service: str, operation: str,
                                                     kwargs: dict[str, Any]) -> None:
    client = _client(fake, max_attempts=0)
    with pytest.raises(ServiceUnavailableError, match="does not implement") as info:
        client.call(service, operation, **kwargs)
    assert info.value.vendor_code == "500"
    assert isinstance(info.value.__cause__, ClientError)


def test_connection_refused_is_service_unavailable() -> None:
    client = SageMakerClient(SageMakerSettings(region=REGION, endpoint_url="http://127.0.0.1:1"), max_attempts=0)
    with pytest.raises(ServiceUnavailableError):
        client.call("sagemaker", "describe_endpoint", EndpointName="x")


# every error code the botocore models declare for the operations the client calls

_SESSION = botocore.session.get_session()
_S3_UPLOAD_OPS = ("PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload",
                  "AbortMultipartUpload")  # what s3transfer's upload_file calls
_GENERIC = [("*", "ThrottlingException", 400), ("*", "Throttling", 400), ("*", "InternalFailure", 500),
            ("*", "ServiceUnavailable", 503), ("*", "AccessDenied", 403), ("*", "AccessDeniedException", 400),
            ("*", "ExpiredToken", 400), ("*", "ExpiredTokenException", 400)]


def _api_name(service: str, method: str) -> str:
    client = _SESSION.create_client(service, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    return str(client.meta.method_to_api_mapping[method])


def _declared_errors() -> list[tuple[str, str, int]]:
    found: dict[tuple[str, str, int], None] = {}
    for service, method in API_CALLS:
        model = _SESSION.get_service_model(service)
        names = _S3_UPLOAD_OPS if (service, method) == ("s3", "upload_file") else (_api_name(service, method),)
        for name in names:
            for shape in model.operation_model(name).error_shapes:
                meta = shape.metadata.get("error", {})
                found[(service, meta.get("code", shape.name), int(meta.get("httpStatusCode", 400)))] = None
    return [*found, *_GENERIC]


DECLARED = _declared_errors()


def test_declared_error_list_is_not_vacuous() -> None:
    codes = {code for _, code, _ in DECLARED}
    assert len(codes) >= 15
    assert {"ResourceNotFound", "ResourceLimitExceeded", "ConflictException", "ModelError", "LimitExceeded"} <= codes


@pytest.mark.parametrize(("service", "code", "status"), [
    pytest.param(*row, id=f"{row[0]}:{row[1]}") for row in DECLARED
])
def test_every_declared_error_code_is_mapped(service: str, code: str, status: int) -> None:
    cls = translate_code(code, status)
    assert issubclass(cls, BackendError) and cls is not BackendError, f"{service} {code} ({status}) -> {cls.__name__}"


# -- IAM -------------------------------------------------------------------------------------------

class _Calls(ast.NodeVisitor):
    """``x.call("svc", "op", ...)`` and ``x.pages("op", ...)`` (SageMaker) call sites, with their function."""

    def __init__(self, path: Path) -> None:
        self.path, self.stack = path, [""]
        self.literal: set[tuple[str, str]] = set()
        self.dynamic: set[str] = set()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.stack.append(node.name)
        self.generic_visit(node)
        self.stack.pop()

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in ("call", "pages"):
            args = [a.value if isinstance(a, ast.Constant) and isinstance(a.value, str) else None
                    for a in node.args[:2]]
            if func.attr == "call" and len(args) == 2 and None not in args:
                self.literal.add((str(args[0]), str(args[1])))
            elif func.attr == "pages" and args and args[0] is not None:
                self.literal.add(("sagemaker", str(args[0])))
            else:
                self.dynamic.add(f"{self.path.name}:{node.lineno} in {self.stack[-1]}()")
        self.generic_visit(node)


def _source_calls() -> tuple[set[tuple[str, str]], set[str]]:
    literal: set[tuple[str, str]] = set()
    dynamic: set[str] = set()
    for path in sorted(Path(sagemaker_pkg.__file__).parent.glob("*.py")):
        visitor = _Calls(path)
        visitor.visit(ast.parse(path.read_text(), str(path)))
        literal |= visitor.literal
        dynamic |= visitor.dynamic
    return literal, dynamic


def test_every_call_in_the_source_is_in_api_calls() -> None:
    literal, dynamic = _source_calls()
    assert ("sagemaker", "update_endpoint") in literal and ("s3", "upload_file") in literal
    assert not literal - set(API_CALLS), f"calls missing from API_CALLS: {sorted(literal - set(API_CALLS))}"
    assert not set(API_CALLS) - literal, f"API_CALLS the source never makes: {sorted(set(API_CALLS) - literal)}"
    # the only call with a computed operation is the pager itself
    assert {d.split(" in ")[1] for d in dynamic} == {"pages()"}, dynamic


def test_iam_policy_has_an_action_for_every_call() -> None:
    policy = iam_policy()
    actions = set(policy["Statement"][0]["Action"])
    prefix = {"sagemaker": "sagemaker", "sagemaker-runtime": "sagemaker", "cloudwatch": "cloudwatch", "s3": "s3",
              "scheduler": "scheduler", "application-autoscaling": "application-autoscaling"}
    iam_names = {("s3", "upload_file"): "PutObject", ("s3", "list_objects_v2"): "ListBucket"}  # IAM != API name
    for service, method in API_CALLS:
        api = iam_names.get((service, method)) or _api_name(service, method)
        assert f"{prefix[service]}:{api}" in actions, (service, method)
    assert "s3:AbortMultipartUpload" in actions  # upload_file aborts a failed multipart upload
    assert len(actions) == len(set(API_CALLS)) + 1  # nothing beyond the calls
    pass_role = policy["Statement"][1]
    assert pass_role["Action"] == "iam:PassRole"
    assert pass_role["Condition"]["StringEquals"]["iam:PassedToService"] == [
        "sagemaker.amazonaws.com", "scheduler.amazonaws.com"]  # the execution role; the schedule's target role


def test_cli_iam_policy_prints_json() -> None:
    from cloudml.cli.main import app

    result = CliRunner().invoke(app, ["iam-policy", "--target", "sagemaker"])
    assert result.exit_code == 0, result.output
    policy = json.loads(result.stdout)
    assert policy == iam_policy()
    assert "sagemaker:CreatePipeline" in policy["Statement"][0]["Action"]
