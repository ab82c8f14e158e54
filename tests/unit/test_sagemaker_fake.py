"""The SageMaker fake (tests/fakes/sagemaker.py) driven by real boto3 clients over HTTP, moto behind it."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.fakes.sagemaker import MotoServer, SageMakerFake, sagemaker_fake

ROLE = "arn:aws:iam::123456789012:role/sagemaker"


@pytest.fixture(scope="module")
def fake() -> Iterator[SageMakerFake]:
    with sagemaker_fake(activation_seconds=0.1, rollback_seconds=0.5, stop_seconds=0.3) as server:
        yield server


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _endpoint(fake: SageMakerFake, *, count: int = 4, new_variant: str = "main") -> tuple[str, str, str, str]:
    """An endpoint on config ``old``, a config ``new`` and an OK alarm; returns (endpoint, old, new, alarm)."""
    sm, cw = fake.client("sagemaker"), fake.client("cloudwatch")
    name, old, new, alarm = _name("ep"), _name("cfg-old"), _name("cfg-new"), _name("ep-5xx")
    for model in (old, new):
        sm.create_model(ModelName=model, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "img:latest"})
    for config, variant in ((old, "main"), (new, new_variant)):
        sm.create_endpoint_config(EndpointConfigName=config, ProductionVariants=[{
            "VariantName": variant, "ModelName": config, "InitialInstanceCount": count,
            "InstanceType": "ml.m5.large", "InitialVariantWeight": 1.0}])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=old)
    cw.put_metric_alarm(AlarmName=alarm, Namespace="AWS/SageMaker", MetricName="Invocation5XXErrors",
                        Dimensions=[{"Name": "EndpointName", "Value": name}, {"Name": "VariantName", "Value": "main"}],
                        Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=1,
                        ComparisonOperator="GreaterThanThreshold")
    return name, old, new, alarm


def _deployment(kind: str, alarm: str, *, size: dict[str, Any] | None = None, wait: int = 1,
                timeout: int = 600) -> dict[str, Any]:
    routing: dict[str, Any] = {"Type": kind, "WaitIntervalInSeconds": wait}
    if size is not None:
        routing["CanarySize" if kind == "CANARY" else "LinearStepSize"] = size
    return {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": routing, "TerminationWaitInSeconds": 0,
                                      "MaximumExecutionTimeoutInSeconds": timeout},
            "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": alarm}]}}


def _percent(value: int) -> dict[str, Any]:
    return {"Type": "CAPACITY_PERCENT", "Value": value}


def _watch(sm: Any, name: str, on_baking: Any = None, timeout: float = 20.0) -> list[tuple[str, str, str]]:
    """Poll DescribeEndpoint until InService; (EndpointStatus, EndpointConfigName, VariantStatus) seen."""
    seen: list[tuple[str, str, str]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        desc = sm.describe_endpoint(EndpointName=name)
        variant = (desc["ProductionVariants"][0].get("VariantStatus") or [{"Status": ""}])[0]["Status"]
        seen.append((desc["EndpointStatus"], desc["EndpointConfigName"], variant))
        if desc["EndpointStatus"] == "InService":
            return seen
        if variant == "Baking" and on_baking is not None:
            on_baking()
            on_baking = None
        time.sleep(0.1)
    raise AssertionError(f"endpoint {name} not InService after {timeout}s: {seen[-3:]}")


# ---------------------------------------------------------------------------------------------- proxying
def test_forwards_every_protocol_byte_for_byte(fake: SageMakerFake) -> None:
    s3, cw = fake.client("s3"), fake.client("cloudwatch")
    payload = bytes(range(256)) * 64
    s3.create_bucket(Bucket="fake-bytes")
    s3.put_object(Bucket="fake-bytes", Key="a/b.bin", Body=payload)
    assert s3.get_object(Bucket="fake-bytes", Key="a/b.bin")["Body"].read() == payload
    assert s3.head_object(Bucket="fake-bytes", Key="a/b.bin")["ContentLength"] == len(payload)
    name, *_ = _endpoint(fake)
    cw.put_metric_data(Namespace="AWS/SageMaker", MetricData=[{"MetricName": "ModelLatency", "Value": 12.5}])
    assert cw.list_metrics(Namespace="AWS/SageMaker", MetricName="ModelLatency")["Metrics"]
    sts = fake.client("sts")  # query protocol
    assert sts.get_caller_identity()["Account"] == "123456789012"
    handled = {(r.service, r.operation): r.handled_by for r in fake.requests}
    assert handled[("s3", "PUT /fake-bytes/a/b.bin")] == "moto"
    assert handled[("GraniteServiceVersion20100801", "PutMetricData")] == "moto"  # CBOR
    assert handled[("sts", "GetCallerIdentity")] == "moto"  # query
    assert handled[("SageMaker", "CreateEndpoint")] == "fake"  # forwarded, and the fake forgets stale state
    assert fake.client("sagemaker").describe_endpoint(EndpointName=name)["EndpointStatus"] == "InService"


# ------------------------------------------------------------------------------------ deployment guardrails
def test_canary_succeeds_when_alarms_stay_ok(fake: SageMakerFake) -> None:
    sm = fake.client("sagemaker")
    name, old, new, alarm = _endpoint(fake, count=4)
    config = _deployment("CANARY", alarm, size=_percent(25))
    sm.update_endpoint(EndpointName=name, EndpointConfigName=new, DeploymentConfig=config)
    seen = _watch(sm, name)
    assert seen[0][:2] == ("Updating", old)
    assert "Baking" in {v for _, _, v in seen}  # ActivatingTraffic lasts 0.1 s here: read it from history
    desc = sm.describe_endpoint(EndpointName=name)
    assert (desc["EndpointStatus"], desc["EndpointConfigName"]) == ("InService", new)
    assert desc["LastDeploymentConfig"] == config
    assert fake.wait_for_deployment(name).history[1:5] == [
        "ActivatingTraffic 25%", "Baking 25%", "ActivatingTraffic 100%", "Baking 100%"]
    assert desc["ProductionVariants"][0]["DesiredInstanceCount"] == 4


def test_canary_rolls_back_to_the_old_config_when_an_alarm_fires(fake: SageMakerFake) -> None:
    sm, cw = fake.client("sagemaker"), fake.client("cloudwatch")
    name, old, new, alarm = _endpoint(fake, count=2)
    config = _deployment("CANARY", alarm, size={"Type": "INSTANCE_COUNT", "Value": 1}, wait=2)
    sm.update_endpoint(EndpointName=name, EndpointConfigName=new, DeploymentConfig=config)
    seen = _watch(sm, name, on_baking=lambda: cw.set_alarm_state(
        AlarmName=alarm, StateValue="ALARM", StateReason="5xx above threshold"))
    assert "RollingBack" in {s for s, _, _ in seen}
    desc = sm.describe_endpoint(EndpointName=name)
    assert (desc["EndpointStatus"], desc["EndpointConfigName"]) == ("InService", old)
    assert not desc.get("FailureReason")  # as the real service often does: only the config name tells
    assert desc["LastDeploymentConfig"] == config
    deployment = fake.wait_for_deployment(name)
    assert (deployment.outcome, deployment.reason) == ("RolledBack", f"alarm {alarm} in ALARM")
    assert "ActivatingTraffic 100%" not in deployment.history


def test_linear_shifts_in_steps_and_timeout_rolls_back(fake: SageMakerFake) -> None:
    sm = fake.client("sagemaker")
    scale, provisioning = fake.time_scale, fake.provisioning_seconds
    try:
        fake.time_scale = 0.002  # service seconds -> real seconds: a 600 s bake lasts 1.2 s
        name, _, new, alarm = _endpoint(fake, count=4)
        sm.update_endpoint(EndpointName=name, EndpointConfigName=new,
                           DeploymentConfig=_deployment("LINEAR", alarm, size=_percent(25), wait=60))
        assert fake.wait_for_deployment(name, timeout=15).outcome == "Succeeded"
        assert [h for h in fake.wait_for_deployment(name).history if h.startswith("Baking")] == [
            "Baking 25%", "Baking 50%", "Baking 75%", "Baking 100%"]
        fake.provisioning_seconds = 1000  # the new fleet takes longer than MaximumExecutionTimeoutInSeconds
        name, old, new, alarm = _endpoint(fake)
        sm.update_endpoint(EndpointName=name, EndpointConfigName=new,
                           DeploymentConfig=_deployment("ALL_AT_ONCE", alarm, wait=60, timeout=600))
        deployment = fake.wait_for_deployment(name, timeout=15)
    finally:
        fake.time_scale, fake.provisioning_seconds = scale, provisioning
    assert deployment.outcome == "RolledBack" and "MaximumExecutionTimeoutInSeconds" in deployment.reason
    assert sm.describe_endpoint(EndpointName=name)["EndpointConfigName"] == old


@pytest.mark.parametrize(("case", "message"), [
    ("canary-60", "CanarySize"),
    ("bogus-type", "enum value set: [ALL_AT_ONCE, CANARY, LINEAR]"),
    ("both-policies", "only one of BlueGreenUpdatePolicy or RollingUpdatePolicy"),
    ("missing-alarm", "do not exist"),
    ("linear-5", "LinearStepSize"),
    ("renamed-variant", "variant names"),
    ("timeout-below-waits", "MaximumExecutionTimeoutInSeconds"),
])
def test_update_endpoint_validation(fake: SageMakerFake, case: str, message: str) -> None:
    sm = fake.client("sagemaker")
    name, old, new, alarm = _endpoint(fake, new_variant="other" if case == "renamed-variant" else "main")
    config = {
        "canary-60": _deployment("CANARY", alarm, size=_percent(60)),
        "bogus-type": _deployment("BOGUS", alarm),
        "both-policies": {**_deployment("ALL_AT_ONCE", alarm), "RollingUpdatePolicy": {
            "MaximumBatchSize": _percent(25), "WaitIntervalInSeconds": 1}},
        "missing-alarm": _deployment("ALL_AT_ONCE", "no-such-alarm"),
        "linear-5": _deployment("LINEAR", alarm, size=_percent(5)),
        "renamed-variant": _deployment("ALL_AT_ONCE", alarm),
        "timeout-below-waits": _deployment("ALL_AT_ONCE", alarm, wait=900, timeout=600),
    }[case]
    with pytest.raises(ClientError) as info:
        sm.update_endpoint(EndpointName=name, EndpointConfigName=new, DeploymentConfig=config)
    error = info.value.response["Error"]
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["Code"] == "ValidationException" and message in error["Message"]
    desc = sm.describe_endpoint(EndpointName=name)
    assert (desc["EndpointStatus"], desc["EndpointConfigName"]) == ("InService", old)


def test_update_of_an_updating_endpoint_is_rejected(fake: SageMakerFake) -> None:
    sm = fake.client("sagemaker")
    name, _, new, alarm = _endpoint(fake)
    sm.update_endpoint(EndpointName=name, EndpointConfigName=new,
                       DeploymentConfig=_deployment("ALL_AT_ONCE", alarm, wait=1))
    listed = {e["EndpointName"]: e["EndpointStatus"] for e in sm.list_endpoints(MaxResults=100)["Endpoints"]}
    assert listed[name] == "Updating"
    with pytest.raises(ClientError, match="Cannot update in-progress endpoint"):
        sm.update_endpoint(EndpointName=name, EndpointConfigName=new)
    assert fake.wait_for_deployment(name).outcome == "Succeeded"


def test_plain_update_may_rename_variants(fake: SageMakerFake) -> None:
    sm = fake.client("sagemaker")
    name, _, new, _ = _endpoint(fake, new_variant="other")
    sm.update_endpoint(EndpointName=name, EndpointConfigName=new)  # no DeploymentConfig: all at once, no bake
    assert fake.wait_for_deployment(name).outcome == "Succeeded"
    desc = sm.describe_endpoint(EndpointName=name)
    assert (desc["EndpointConfigName"], desc["ProductionVariants"][0]["VariantName"]) == (new, "other")
    assert "LastDeploymentConfig" not in desc


# ------------------------------------------------------------------------------ variants, shadows, weights

def test_fake_variant_and_shadow_rules(fake: SageMakerFake) -> None:
    sm = fake.client("sagemaker")
    model = _name("m")
    sm.create_model(ModelName=model, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "img:1"})

    def variant(name: str, weight: float) -> dict[str, Any]:
        return {"VariantName": name, "ModelName": model, "InstanceType": "ml.m5.large", "InitialInstanceCount": 1,
                "InitialVariantWeight": weight}

    bad = {"two production with a shadow": ([variant("a", 1), variant("b", 1)], [variant("s", 1)]),
           "duplicate names": ([variant("a", 1)], [variant("a", 1)]),
           "no production weight": ([variant("a", 0)], [])}
    for case, (production, shadow) in bad.items():
        with pytest.raises(ClientError) as info:
            sm.create_endpoint_config(EndpointConfigName=_name("cfg"), ProductionVariants=production,
                                      **({"ShadowProductionVariants": shadow} if shadow else {}))
        assert info.value.response["Error"]["Code"] == "ValidationException", case
    config, endpoint = _name("cfg"), _name("ep")
    sm.create_endpoint_config(EndpointConfigName=config, ProductionVariants=[variant("a", 1)],
                              ShadowProductionVariants=[variant("s", 0.5)])
    assert sm.describe_endpoint_config(EndpointConfigName=config)["ShadowProductionVariants"][0]["VariantName"] == "s"
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=config)
    assert _weights(sm, endpoint) == ({"a": 1.0}, {"s": 0.5})
    for desired in ([{"VariantName": "nope", "DesiredWeight": 1.0}], [{"VariantName": "a", "DesiredWeight": 0.0}],
                    [{"VariantName": "a", "DesiredWeight": 1.0}, {"VariantName": "a", "DesiredWeight": 2.0}]):
        with pytest.raises(ClientError, match="ValidationException"):
            sm.update_endpoint_weights_and_capacities(EndpointName=endpoint, DesiredWeightsAndCapacities=desired)
    saved, fake.weights_seconds = fake.weights_seconds, 0.5
    try:
        sm.update_endpoint_weights_and_capacities(EndpointName=endpoint, DesiredWeightsAndCapacities=[
            {"VariantName": "s", "DesiredWeight": 0.2}])
    finally:
        fake.weights_seconds = saved
    desc = sm.describe_endpoint(EndpointName=endpoint)
    assert desc["EndpointStatus"] == "Updating" and desc["ShadowProductionVariants"][0]["DesiredWeight"] == 0.2
    assert desc["ShadowProductionVariants"][0]["CurrentWeight"] == 0.5
    with pytest.raises(ClientError, match="in-progress"):  # one change at a time
        sm.update_endpoint_weights_and_capacities(EndpointName=endpoint, DesiredWeightsAndCapacities=[
            {"VariantName": "a", "DesiredWeight": 2.0}])
    time.sleep(0.55)
    assert sm.describe_endpoint(EndpointName=endpoint)["EndpointStatus"] == "InService"
    assert _weights(sm, endpoint) == ({"a": 1.0}, {"s": 0.2})
    sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=_config(sm, [variant("a", 1), variant("b", 3)]))
    with pytest.raises(ClientError, match="in-progress"):  # weights wait for a plain update too
        sm.update_endpoint_weights_and_capacities(EndpointName=endpoint, DesiredWeightsAndCapacities=[
            {"VariantName": "a", "DesiredWeight": 2.0}])
    assert fake.wait_for_deployment(endpoint).outcome == "Succeeded"
    assert _weights(sm, endpoint) == ({"a": 1.0, "b": 3.0}, {})  # variants added and the shadow removed


def _weights(sm: Any, endpoint: str) -> tuple[dict[str, float], dict[str, float]]:
    desc = sm.describe_endpoint(EndpointName=endpoint)
    return ({v["VariantName"]: v["CurrentWeight"] for v in desc["ProductionVariants"]},
            {v["VariantName"]: v["CurrentWeight"] for v in desc.get("ShadowProductionVariants", [])})


def _config(sm: Any, production: list[dict[str, Any]]) -> str:
    name = _name("cfg")
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=production)
    return name


# ------------------------------------------------------------------------------------------------ pipelines
DEFINITION = {"Version": "2020-12-01", "Metadata": {},
              "Parameters": [{"Name": "MinAuc", "Type": "Float", "DefaultValue": 0.8}],
              "Steps": [
                  {"Name": "train", "Type": "Training", "Arguments": {"InputDataConfig": [{"ChannelName": "train",
                      "DataSource": {"S3DataSource": {"S3Uri": {"Get": "Steps.prep.ProcessingOutputConfig."
                                                                       "Outputs['train'].S3Output.S3Uri"}}}}]}},
                  {"Name": "prep", "Type": "Processing", "Arguments": {}},
                  {"Name": "gate", "Type": "Condition", "DependsOn": ["train"], "Arguments": {
                      "Conditions": [{"Type": "GreaterThanOrEqualTo", "LeftValue": 0.9,
                                      "RightValue": {"Get": "Parameters.MinAuc"}}],
                      "IfSteps": [{"Name": "register", "Type": "RegisterModel",
                                   "Arguments": {"ModelPackageGroupName": "churn"}}],
                      "ElseSteps": [{"Name": "too_low", "Type": "Fail",
                                     "Arguments": {"ErrorMessage": "AUC below MinAuc"}}]}}]}


def _execution(fake: SageMakerFake) -> str:
    sm = fake.client("sagemaker")
    pipeline = _name("pipe")
    sm.create_pipeline(PipelineName=pipeline, PipelineDefinition=json.dumps(DEFINITION), RoleArn=ROLE)
    return str(sm.start_pipeline_execution(PipelineName=pipeline)["PipelineExecutionArn"])


def test_execution_steps_follow_the_definition_and_the_condition_outcome(fake: SageMakerFake) -> None:
    sm = fake.client("sagemaker")
    arn = _execution(fake)
    steps = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn, SortOrder="Ascending")["PipelineExecutionSteps"]
    assert [(s["StepName"], s["StepStatus"]) for s in steps] == [
        ("prep", "Succeeded"), ("train", "Succeeded"), ("gate", "Succeeded"), ("register", "Succeeded")]
    assert steps[2]["Metadata"]["Condition"]["Outcome"] == "True"
    assert steps[3]["Metadata"]["RegisterModel"]["Arn"].endswith(":model-package/churn/1")
    newest_first = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
    assert newest_first[0]["StepName"] == "register"
    page = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn, MaxResults=3)
    assert len(page["PipelineExecutionSteps"]) == 3 and page["NextToken"]

    failed = _execution(fake)
    fake.set_condition_outcome("gate", False, execution_arn=failed)
    steps = sm.list_pipeline_execution_steps(PipelineExecutionArn=failed)["PipelineExecutionSteps"]
    assert (steps[0]["StepName"], steps[0]["StepStatus"], steps[0]["FailureReason"]) == (
        "too_low", "Failed", "AUC below MinAuc")
    assert sm.describe_pipeline_execution(PipelineExecutionArn=failed)["PipelineExecutionStatus"] == "Failed"
    assert sm.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"] == "Succeeded"
    with pytest.raises(ClientError, match="Could not find pipeline execution"):
        sm.list_pipeline_execution_steps(PipelineExecutionArn=arn + "x")


def test_controlled_statuses_and_stop(fake: SageMakerFake) -> None:
    sm = fake.client("sagemaker")
    arn = _execution(fake)
    fake.set_execution_steps(arn, [{"StepName": "prep", "StepStatus": "Succeeded"},
                                   {"StepName": "train", "StepStatus": "Executing"}])
    fake.set_execution_status(arn, ["Executing", "Executing", "Succeeded"])
    statuses = [sm.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"] for _ in range(4)]
    assert statuses == ["Executing", "Executing", "Succeeded", "Succeeded"]
    with pytest.raises(ClientError, match="cannot be stopped"):
        sm.stop_pipeline_execution(PipelineExecutionArn=arn)

    fake.set_execution_status(arn, "Executing")
    sm.stop_pipeline_execution(PipelineExecutionArn=arn)
    assert sm.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"] == "Stopping"
    deadline = time.monotonic() + 5
    while sm.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"] != "Stopped":
        assert time.monotonic() < deadline, "execution never reached Stopped"
        time.sleep(0.05)
    steps = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
    assert {s["StepName"]: s["StepStatus"] for s in steps} == {"prep": "Succeeded", "train": "Stopped"}

    other = _execution(fake)
    fake.set_execution_status(other, "Failed", failure_reason="train: AlgorithmError")
    desc = sm.describe_pipeline_execution(PipelineExecutionArn=other)
    assert (desc["PipelineExecutionStatus"], desc["FailureReason"]) == ("Failed", "train: AlgorithmError")
    summaries = sm.list_pipeline_executions(PipelineName=other.split("/")[-3])["PipelineExecutionSummaries"]
    assert summaries[0]["PipelineExecutionStatus"] == "Failed"


# ---------------------------------------------------------------------------------------- fault injection
def test_throttling_then_success_with_retries(fake: SageMakerFake) -> None:
    sm = boto3.client("sagemaker", endpoint_url=fake.url, config=Config(retries={"mode": "standard", "max_attempts": 5}))
    fake.clear_requests()
    fake.inject("CreatePipeline", "ThrottlingException", times=2)
    fake.inject("SageMaker.DescribePipelineExecution", 503, times=1)
    pipeline = _name("pipe")
    sm.create_pipeline(PipelineName=pipeline, PipelineDefinition=json.dumps(DEFINITION), RoleArn=ROLE)
    arn = sm.start_pipeline_execution(PipelineName=pipeline)["PipelineExecutionArn"]
    assert sm.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"] == "Succeeded"
    assert [(r.status, r.handled_by) for r in fake.calls("CreatePipeline")] == [
        (400, "fault"), (400, "fault"), (200, "moto")]
    assert [r.status for r in fake.calls("DescribePipelineExecution")] == [503, 200]


def test_throttling_without_retries_surfaces_the_code(fake: SageMakerFake) -> None:
    sm = fake.client("sagemaker", total_max_attempts=1)  # no retry
    fake.inject("CreateModelPackage", "ThrottlingException")
    with pytest.raises(ClientError) as info:
        sm.create_model_package(ModelPackageGroupName="churn", ModelPackageDescription="x")
    assert info.value.response["Error"] == {"Code": "ThrottlingException", "Message": "Rate exceeded"}
    fake.inject("DescribeAlarms", 503)  # CloudWatch speaks CBOR: the error is CBOR too
    with pytest.raises(ClientError) as info:
        fake.client("cloudwatch").describe_alarms()
    assert info.value.response["Error"]["Code"] == "ServiceUnavailable"
    fake.inject("GetCallerIdentity", "ThrottlingException")  # STS speaks query: XML error
    with pytest.raises(ClientError, match="ThrottlingException"):
        fake.client("sts").get_caller_identity()


# ----------------------------------------------------------------------------------------------- lifecycle
def test_close_stops_moto_and_every_thread() -> None:
    before = set(threading.enumerate())
    with sagemaker_fake() as fake:
        assert isinstance(fake.moto, MotoServer)
        pid = fake.moto.pid
        name, _, new, alarm = _endpoint(fake)
        fake.client("sagemaker").update_endpoint(  # still baking when the fake closes
            EndpointName=name, EndpointConfigName=new, DeploymentConfig=_deployment("ALL_AT_ONCE", alarm, wait=60))
    assert not set(threading.enumerate()) - before
    assert subprocess.run(["ps", "-p", str(pid)], capture_output=True).returncode != 0
