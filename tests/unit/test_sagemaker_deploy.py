"""SageMaker deployments: guardrail DeploymentConfig, CloudWatch alarm requests, and their botocore shapes.

botocore's ParamValidator checks types, required members and unknown keys but, of the ranges in the
model, only minimums (``botocore.validate.range_check``). :func:`shape_problems` adds the maximums and
enums, so a request here is checked against everything the botocore model states.
"""

from __future__ import annotations

from typing import Any

import botocore.session
import pytest
from botocore.model import Shape
from botocore.validate import ParamValidator

from cloudml.adapters.sagemaker import SageMakerAdapter
from cloudml.adapters.sagemaker.deploy import (
    VARIANT,
    alarm_name,
    alarm_request,
    compile_deployment_plan,
    deployment_config,
)
from cloudml.config import SageMakerSettings
from cloudml.errors import UnsupportedFeatureError
from cloudml.spec.deployment import Alarm, Deployment
from cloudml.spec.validate import validate_data

_SESSION = botocore.session.get_session()
UPDATE_ENDPOINT = _SESSION.get_service_model("sagemaker").operation_model("UpdateEndpoint").input_shape
PUT_METRIC_ALARM = _SESSION.get_service_model("cloudwatch").operation_model("PutMetricAlarm").input_shape
DIMS = [{"Name": "EndpointName", "Value": "churn"}, {"Name": "VariantName", "Value": VARIANT}]


def deployment(**fields: Any) -> Deployment:
    doc = {"apiVersion": "cloudml/v1", "kind": "Deployment", "endpoint": "churn", "model": {"group": "churn"}, **fields}
    d = validate_data(doc)
    assert isinstance(d, Deployment)
    return d


def shape_problems(value: Any, shape: Shape, path: str = "") -> list[str]:
    """Ranges (min and max) and enums from the botocore model, which ParamValidator does not all check."""
    problems: list[str] = []
    meta = shape.metadata
    kind = shape.type_name
    size = len(value) if kind in ("string", "list", "map") and hasattr(value, "__len__") else value
    if kind in ("string", "list", "map", "integer", "long", "double", "float") and isinstance(size, (int, float)):
        if "min" in meta and size < meta["min"]:
            problems.append(f"{path}: {size} below min {meta['min']}")
        if "max" in meta and size > meta["max"]:
            problems.append(f"{path}: {size} above max {meta['max']}")
    if kind == "string" and shape.enum and value not in shape.enum:
        problems.append(f"{path}: {value!r} not one of {shape.enum}")
    if kind == "structure" and isinstance(value, dict):
        for key, member in value.items():
            if key in shape.members:
                problems += shape_problems(member, shape.members[key], f"{path}.{key}".lstrip("."))
    elif kind == "list" and isinstance(value, list):
        for i, item in enumerate(value):
            problems += shape_problems(item, shape.member, f"{path}[{i}]")
    return problems


def request_problems(request: dict[str, Any], shape: Shape) -> list[str]:
    report = ParamValidator().validate(request, shape)
    return ([report.generate_report()] if report.has_errors() else []) + shape_problems(request, shape)


def update_endpoint(config: dict[str, Any]) -> list[str]:
    return request_problems({"EndpointName": "churn", "EndpointConfigName": "churn-2", "DeploymentConfig": config},
                            UPDATE_ENDPOINT)


ERRORS = {"name": "errors", "metric": "error_rate", "threshold": 0.01}


# -- the checker is not vacuous --------------------------------------------------------------------

def test_shape_checks_catch_types_ranges_and_enums() -> None:
    good = {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE",
                                                                      "WaitIntervalInSeconds": 0}}}
    assert update_endpoint(good) == []
    wait = good["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert any("Invalid type" in p for p in update_endpoint({"BlueGreenUpdatePolicy": {
        "TrafficRoutingConfiguration": {**wait, "WaitIntervalInSeconds": "0"}}}))
    assert any("above max 3600" in p for p in update_endpoint({"BlueGreenUpdatePolicy": {
        "TrafficRoutingConfiguration": {**wait, "WaitIntervalInSeconds": 3601}}}))
    assert any("not one of" in p for p in update_endpoint({"BlueGreenUpdatePolicy": {
        "TrafficRoutingConfiguration": {**wait, "Type": "BOGUS"}}}))
    assert any("Missing required" in p for p in update_endpoint({"BlueGreenUpdatePolicy": {}}))


# -- strategies ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("strategy", "routing"), [
    ({"all_at_once": {}}, {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}),
    ({"all_at_once": {"bake": "2m"}}, {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 120}),
    ("blue_green", {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 300}),
    ({"blue_green": {"bake": "1h"}}, {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 3600}),
    ({"canary": {"percent": 10, "bake": "10m"}},
     {"Type": "CANARY", "WaitIntervalInSeconds": 600, "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10}}),
    ({"canary": {"percent": 12.5, "bake": "90.2s"}},
     {"Type": "CANARY", "WaitIntervalInSeconds": 91, "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 13}}),
    ({"canary": {"percent": 50}},
     {"Type": "CANARY", "WaitIntervalInSeconds": 600, "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 50}}),
    ({"linear": {"step_percent": 25, "interval": "5m"}},
     {"Type": "LINEAR", "WaitIntervalInSeconds": 300, "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 25}}),
    ({"linear": {"step_percent": 10}},
     {"Type": "LINEAR", "WaitIntervalInSeconds": 300, "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 10}}),
    ({"linear": {"step_percent": 50, "interval": "1h"}},
     {"Type": "LINEAR", "WaitIntervalInSeconds": 3600, "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 50}}),
])
def test_strategy_routing_shapes(strategy: Any, routing: dict[str, Any]) -> None:
    d = deployment(strategy=strategy, alarms=[ERRORS], rollback={"termination_wait": "5m"}, max_duration="2h")
    cfg = deployment_config(d, ["cloudml-churn-errors"])
    shifts = {"CANARY": 2, "LINEAR": -(-100 // routing.get("LinearStepSize", {}).get("Value", 100))}.get(routing["Type"], 1)
    timeout = max(7200, routing["WaitIntervalInSeconds"] * shifts + 300 + 300)  # exceeds every wait
    assert cfg == {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": routing, "TerminationWaitInSeconds": 300,
                                             "MaximumExecutionTimeoutInSeconds": timeout},
                   "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "cloudml-churn-errors"}]}}
    assert update_endpoint(cfg) == []


@pytest.mark.parametrize(("max_duration", "timeout"), [
    ("1s", 600), ("9m", 600), ("10m", 600), ("1h", 3600), ("90.5m", 5430), ("8h", 28800), ("30h", 28800),
])
def test_maximum_execution_timeout_is_clamped_to_600_28800(max_duration: str, timeout: int) -> None:
    cfg = deployment_config(deployment(strategy="all_at_once", max_duration=max_duration), [])
    assert cfg["BlueGreenUpdatePolicy"]["MaximumExecutionTimeoutInSeconds"] == timeout
    assert update_endpoint(cfg) == []


def test_termination_wait_rounds_up_and_defaults_to_zero() -> None:
    assert deployment_config(deployment(), [])["BlueGreenUpdatePolicy"]["TerminationWaitInSeconds"] == 0
    cfg = deployment_config(deployment(rollback={"termination_wait": "1.2s"}), [])
    assert cfg["BlueGreenUpdatePolicy"]["TerminationWaitInSeconds"] == 2
    cfg = deployment_config(deployment(rollback={"termination_wait": "1h"}), [])
    assert cfg["BlueGreenUpdatePolicy"]["TerminationWaitInSeconds"] == 3600


def test_auto_rollback_lists_every_alarm_when_automatic() -> None:
    d = deployment(alarms=[ERRORS, {"name": "ext", "existing": {"sagemaker": "team-alarm"}}])
    names = [alarm_name("churn", a) for a in d.alarms]
    assert names == ["cloudml-churn-errors", "team-alarm"]
    cfg = deployment_config(d, names)
    assert cfg["AutoRollbackConfiguration"] == {"Alarms": [{"AlarmName": "cloudml-churn-errors"},
                                                           {"AlarmName": "team-alarm"}]}
    manual = deployment(alarms=[ERRORS], rollback={"automatic": False})
    assert "AutoRollbackConfiguration" not in deployment_config(manual, names)
    assert "AutoRollbackConfiguration" not in deployment_config(deployment(), [])


def test_more_than_ten_rollback_alarms_are_refused() -> None:
    alarms = [{**ERRORS, "name": f"e{i}"} for i in range(11)]
    d = deployment(alarms=alarms)
    with pytest.raises(UnsupportedFeatureError, match="at most 10 alarms"):
        deployment_config(d, [alarm_name("churn", a) for a in d.alarms])
    ten = deployment(alarms=alarms[:10])
    assert update_endpoint(deployment_config(ten, [alarm_name("churn", a) for a in ten.alarms])) == []


@pytest.mark.parametrize(("strategy", "feature", "text"), [
    ({"canary": {"percent": 50.5}}, "deploy.canary", "at most 50%"),
    ({"canary": {"percent": 75}}, "deploy.canary", "canary of 75%"),
    ({"linear": {"step_percent": 9.9}}, "deploy.linear", "linear steps of 9.9%"),
    ({"linear": {"step_percent": 51}}, "deploy.linear", "SageMaker takes 10-50%"),
    ({"shadow": {"percent": 20}}, "deploy.shadow", "shadow"),
])
def test_strategies_sagemaker_cannot_express(strategy: Any, feature: str, text: str) -> None:
    with pytest.raises(UnsupportedFeatureError, match=text.replace(".", r"\.")) as info:
        deployment_config(deployment(strategy=strategy), [])
    assert (info.value.adapter, info.value.feature) == ("sagemaker", feature)


@pytest.mark.parametrize("fields", [
    {"strategy": {"blue_green": {"bake": "61m"}}},
    {"strategy": {"canary": {"percent": 10, "bake": "2h"}}},
    {"strategy": {"linear": {"step_percent": 20, "interval": "3601s"}}},
    {"rollback": {"termination_wait": "1h1s"}},
])
def test_waits_above_an_hour_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(UnsupportedFeatureError, match="at most 3600s"):
        deployment_config(deployment(**fields), [])


@pytest.mark.parametrize(("strategy", "feature"), [({"canary": {"percent": 10, "bake": "2h"}}, "deploy.canary"),
                                                   ({"linear": {"step_percent": 20, "interval": "2h"}}, "deploy.linear")])
def test_a_wait_refusal_names_the_strategy_in_use(strategy: Any, feature: str) -> None:
    with pytest.raises(UnsupportedFeatureError) as info:
        deployment_config(deployment(strategy=strategy), [])
    assert info.value.feature == feature


def test_the_execution_timeout_exceeds_the_total_wait() -> None:
    d = deployment(strategy={"blue_green": {"bake": "1h"}}, rollback={"termination_wait": "30m"})
    try:
        policy = deployment_config(d, [])["BlueGreenUpdatePolicy"]
    except UnsupportedFeatureError:
        return  # refusing is as good as fixing the timeout
    waits = policy["TrafficRoutingConfiguration"]["WaitIntervalInSeconds"] + policy["TerminationWaitInSeconds"]
    assert policy["MaximumExecutionTimeoutInSeconds"] > waits


# -- alarms ----------------------------------------------------------------------------------------

def test_error_rate_is_metric_math_over_5xx_and_invocations() -> None:
    req = alarm_request("churn", Alarm(name="errors", metric="error_rate", threshold="2%", period="5m",
                                       evaluation_periods=3, datapoints_to_alarm=2))

    def stat(metric_id: str, name: str) -> dict[str, Any]:
        return {"Id": metric_id, "ReturnData": False, "MetricStat": {"Metric": {
            "Namespace": "AWS/SageMaker", "MetricName": name, "Dimensions": DIMS}, "Period": 300, "Stat": "Sum"}}

    assert req == {
        "AlarmName": "cloudml-churn-errors", "AlarmDescription": "cloudml alarm errors (error_rate) on endpoint churn",
        "EvaluationPeriods": 3, "DatapointsToAlarm": 2, "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "missing", "ActionsEnabled": False, "Threshold": 0.02,
        "Metrics": [stat("errors", "Invocation5XXErrors"), stat("invocations", "Invocations"),
                    {"Id": "error_rate", "Expression": "IF(invocations > 0, errors / invocations, 0)",
                     "Label": "error rate", "ReturnData": True}]}
    assert "Namespace" not in req and "Period" not in req  # metric math alarms carry them per metric
    assert request_problems(req, PUT_METRIC_ALARM) == []


@pytest.mark.parametrize(("metric", "threshold", "stat", "micros"), [
    ("latency_p50", "50ms", "p50", 50_000.0), ("latency_p90", "0.25s", "p90", 250_000.0),
    ("latency_p99", "1.5s", "p99", 1_500_000.0), ("latency_p99", "0.3ms", "p99", 300.0),
])
def test_latency_percentiles_are_model_latency_in_microseconds(metric: str, threshold: str, stat: str,
                                                              micros: float) -> None:
    req = alarm_request("churn", Alarm(name="slow", metric=metric, threshold=threshold))
    assert (req["Namespace"], req["MetricName"], req["ExtendedStatistic"], req["Threshold"]) == (
        "AWS/SageMaker", "ModelLatency", stat, micros)
    assert req["Dimensions"] == DIMS and req["Period"] == 60 and "Statistic" not in req
    assert request_problems(req, PUT_METRIC_ALARM) == []


def test_invocations_is_a_sum_per_period() -> None:
    req = alarm_request("churn", Alarm(name="calls", metric="invocations", threshold=5, comparison="lt",
                                       treat_missing_data="breaching"), variant="green")
    assert (req["MetricName"], req["Statistic"], req["Threshold"], req["ComparisonOperator"], req["TreatMissingData"]) == (
        "Invocations", "Sum", 5.0, "LessThanThreshold", "breaching")
    assert req["Dimensions"][1] == {"Name": "VariantName", "Value": "green"}
    assert request_problems(req, PUT_METRIC_ALARM) == []


@pytest.mark.parametrize(("comparison", "operator"), [
    ("gt", "GreaterThanThreshold"), ("gte", "GreaterThanOrEqualToThreshold"), ("lt", "LessThanThreshold"),
    ("lte", "LessThanOrEqualToThreshold"),
])
@pytest.mark.parametrize(("missing", "treat"), [
    ("missing", "missing"), ("not_breaching", "notBreaching"), ("breaching", "breaching"), ("ignore", "ignore"),
])
@pytest.mark.parametrize("metric", ["error_rate", "latency_p99", "invocations"])
def test_comparisons_and_missing_data_map_and_fit_put_metric_alarm(comparison: str, operator: str, missing: str,
                                                                   treat: str, metric: str) -> None:
    threshold: Any = "100ms" if metric.startswith("latency") else 0.5
    req = alarm_request("churn", Alarm(name="a", metric=metric, threshold=threshold, comparison=comparison,
                                       treat_missing_data=missing))
    assert (req["ComparisonOperator"], req["TreatMissingData"]) == (operator, treat)
    assert request_problems(req, PUT_METRIC_ALARM) == []


@pytest.mark.parametrize(("period", "seconds"), [("10s", 10), ("5s", 10), ("1m", 60), ("61s", 120), ("90s", 120),
                                                 ("5m", 300), ("1h", 3600)])
def test_alarm_periods(period: str, seconds: int) -> None:
    req = alarm_request("churn", Alarm(name="calls", metric="invocations", threshold=1, period=period))
    assert req["Period"] == seconds


@pytest.mark.parametrize("period", ["15s", "45s"])
def test_every_alarm_period_is_one_cloudwatch_accepts(period: str) -> None:
    req = alarm_request("churn", Alarm(name="calls", metric="invocations", threshold=1, period=period))
    assert req["Period"] in (10, 20, 30) or req["Period"] % 60 == 0


def test_the_alarm_evaluation_window_fits_cloudwatch() -> None:
    try:
        req = alarm_request("churn", Alarm(name="calls", metric="invocations", threshold=1, period="30m",
                                           evaluation_periods=60))
    except UnsupportedFeatureError:
        return
    assert req["Period"] * req["EvaluationPeriods"] <= 86_400


def test_alarm_names() -> None:
    assert alarm_name("churn", Alarm(**ERRORS)) == "cloudml-churn-errors"
    assert alarm_name("churn", Alarm(name="x", existing={"sagemaker": "my-alarm"})) == "my-alarm"


# -- the plan the adapter compiles -------------------------------------------------------------------

def test_the_adapter_compiles_the_whole_plan() -> None:
    d = deployment(strategy={"canary": {"percent": 10, "bake": "10m"}}, instances={"type": "gpu-small", "count": 2},
                   alarms=[ERRORS, {"name": "slow", "metric": "latency_p99", "threshold": "250ms"},
                           {"name": "ext", "existing": {"sagemaker": "team-alarm"}}])
    compiled = SageMakerAdapter(SageMakerSettings(region="us-east-1")).compile_deployment(d)
    plan = compiled.document
    assert (compiled.target, compiled.name) == ("sagemaker", "churn")
    assert plan["ProductionVariant"] == {"VariantName": VARIANT, "InstanceType": "ml.g4dn.xlarge",
                                         "InitialInstanceCount": 2, "InitialVariantWeight": 1.0}
    assert plan["ModelPackage"] == {"group": "churn", "version": "latest-approved"}
    assert [r["AlarmName"] for r in plan["PutMetricAlarm"]] == ["cloudml-churn-errors", "cloudml-churn-slow"]
    assert plan["ExistingAlarms"] == ["team-alarm"]
    assert plan["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"] == [
        {"AlarmName": "cloudml-churn-errors"}, {"AlarmName": "cloudml-churn-slow"}, {"AlarmName": "team-alarm"}]
    assert update_endpoint(plan["DeploymentConfig"]) == []
    for req in plan["PutMetricAlarm"]:
        assert request_problems(req, PUT_METRIC_ALARM) == []
    assert compile_deployment_plan(d, "ml.g4dn.xlarge") == plan


def test_an_instance_type_override_wins_over_the_neutral_size() -> None:
    d = deployment(instances={"type": "cpu-large", "instance_type": {"sagemaker": "ml.c5.xlarge"}})
    plan = SageMakerAdapter().compile_deployment(d).document
    assert plan["ProductionVariant"]["InstanceType"] == "ml.c5.xlarge"
    assert SageMakerAdapter().compile_deployment(deployment()).document["ProductionVariant"]["InstanceType"] == (
        "ml.m5.large")


def test_the_adapter_declares_one_deployment_gap() -> None:
    """capture and autoscale are built (test_sagemaker_capture.py, test_sagemaker_autoscale.py); a cloudml
    predictor class has no SageMaker container to load it (serving.image + serving.env do)."""
    assert [f for f in SageMakerAdapter.capabilities.gaps if f.startswith("deploy.")] == ["deploy.predictor"]


def test_serving_image_and_env_reach_the_model_container() -> None:
    from cloudml.adapters.sagemaker.deploy import model_container

    plan = SageMakerAdapter().compile_deployment(deployment(serving={"image": "1.dkr.ecr.eu-west-1.amazonaws.com/s:1",
                                                                     "env": {"SAGEMAKER_PROGRAM": "inference.py"}}))
    serving = plan.document["Serving"]
    assert serving == {"image": "1.dkr.ecr.eu-west-1.amazonaws.com/s:1", "env": {"SAGEMAKER_PROGRAM": "inference.py"}}
    container = model_container(serving, "arn:aws:sagemaker:eu-west-1:1:model-package/g/1", "s3://b/model.tar.gz")
    assert container == {"Image": "1.dkr.ecr.eu-west-1.amazonaws.com/s:1", "ModelDataUrl": "s3://b/model.tar.gz",
                         "Environment": {"SAGEMAKER_PROGRAM": "inference.py"}}
    only_env = model_container({"env": {"A": "1"}}, "arn:pkg", "s3://b/m.tar.gz")
    assert only_env == {"ModelPackageName": "arn:pkg", "Environment": {"A": "1"}}
    import botocore.session

    shape = botocore.session.get_session().get_service_model("sagemaker").shape_for("ContainerDefinition")
    assert set(container) <= set(shape.members) and set(only_env) <= set(shape.members)


def test_shadow_and_native_guardrails_false_go_to_the_controller() -> None:
    """Shadow has no guardrail mode; native_guardrails: false opts any strategy into cloudml's controller."""
    assert SageMakerAdapter.capabilities.supports("deploy.shadow")
    shadow = SageMakerAdapter().compile_deployment(deployment(strategy={"shadow": {"percent": 20}})).document
    assert shadow["Mode"] == "controller" and "DeploymentConfig" not in shadow
    for strategy in ("all_at_once", "blue_green", {"canary": {"percent": 10}}, {"linear": {"step_percent": 20}}):
        d = deployment(strategy=strategy, backend_options={"sagemaker": {"native_guardrails": False}})
        assert SageMakerAdapter().compile_deployment(d).document["Mode"] == "controller"
    ab = SageMakerAdapter().compile_deployment(deployment(strategy={"ab_test": {"percent": 30}})).document
    assert ab["Mode"] == "controller" and ab["Variant"]["Kind"] == "ProductionVariants"
    for strategy in ({"shadow": {"percent": 20}}, {"ab_test": {"percent": 20}}):
        with pytest.raises(UnsupportedFeatureError, match="cannot mirror or hold a split"):
            deployment_config(deployment(strategy=strategy), [])
