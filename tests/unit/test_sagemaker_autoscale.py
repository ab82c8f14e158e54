"""``deploy.autoscale`` on SageMaker: Application Auto Scaling of the live production variant.

The requests are checked against botocore's RegisterScalableTarget and PutScalingPolicy shapes; both
rollout engines run with boto3 against the SageMaker fake, which forwards Application Auto Scaling to
moto_server and refuses, as SageMaker does, an update that changes the instance type of a variant
still registered for scaling.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError

import cloudml
from cloudml.adapter import RolloutOutcome
from cloudml.adapters.sagemaker import SageMakerAdapter
from cloudml.adapters.sagemaker.autoscale import (
    SCALABLE_DIMENSION,
    autoscaling_plan,
    instance_vcpus,
    resource_id,
)
from cloudml.errors import PermissionDeniedError, UnsupportedFeatureError
from cloudml.spec.deployment import Deployment
from cloudml.spec.validate import validate_data
from tests.fakes.sagemaker import SageMakerFake, sagemaker_fake
from tests.unit.test_sagemaker_deploy import request_problems

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/x"
BUCKET = "cloudml-autoscale"
CONTROLLER = {"sagemaker": {"native_guardrails": False}}
_AAS = botocore.session.get_session().get_service_model("application-autoscaling")
REGISTER = _AAS.operation_model("RegisterScalableTarget").input_shape
PUT_POLICY = _AAS.operation_model("PutScalingPolicy").input_shape


def deployment(endpoint: str = "churn", **fields: Any) -> Deployment:
    doc = {"apiVersion": "cloudml/v1", "kind": "Deployment", "endpoint": endpoint,
           "model": {"group": "churn", "version": 1}, **fields}
    d = validate_data(doc)
    assert isinstance(d, Deployment)
    return d


def _scale(**autoscale: Any) -> dict[str, Any]:
    return {"count": autoscale.get("min", 1), "autoscale": {"min": 1, "max": 4, **autoscale}}


# -- the requests ----------------------------------------------------------------------------------------

def _requests(plan: dict[str, Any], variant: str = "AllTraffic") -> list[tuple[dict[str, Any], Any]]:
    rid = resource_id("churn", variant)
    return [({"ResourceId": rid, **plan["ScalableTarget"]}, REGISTER),
            *(({"ResourceId": rid, **p}, PUT_POLICY) for p in plan["ScalingPolicies"])]


def test_invocations_target_uses_the_predefined_metric() -> None:
    plan = autoscaling_plan(deployment(instances=_scale(min=2, max=6, target_invocations_per_instance=600)),
                            "ml.m5.large")
    assert plan is not None
    assert plan["ScalableTarget"] == {"ServiceNamespace": "sagemaker", "ScalableDimension": SCALABLE_DIMENSION,
                                      "MinCapacity": 2, "MaxCapacity": 6}
    [policy] = plan["ScalingPolicies"]
    assert policy["PolicyType"] == "TargetTrackingScaling"
    assert policy["TargetTrackingScalingPolicyConfiguration"] == {
        "TargetValue": 600.0,
        "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}}
    for request, shape in _requests(plan):
        assert request_problems(request, shape) == []


@pytest.mark.parametrize(("instance_type", "percent", "target"), [
    ("ml.m5.large", 70, 140.0),  # 2 vCPUs: SageMaker's CPUUtilization goes to 200%
    ("ml.m5.4xlarge", 50, 800.0),
    ("ml.c5.9xlarge", 25, 900.0),  # not in cloudml's table: 9xlarge is 36 vCPUs
    ("ml.g5.12xlarge", 10, 480.0),
])
def test_cpu_target_is_a_customized_metric_scaled_by_vcpus(instance_type: str, percent: float, target: float) -> None:
    d = deployment(instances={**_scale(target_cpu_percent=percent), "instance_type": {"sagemaker": instance_type}})
    plan = SageMakerAdapter().compile_deployment(d).document["Autoscaling"]
    [policy] = plan["ScalingPolicies"]
    config = policy["TargetTrackingScalingPolicyConfiguration"]
    assert config["TargetValue"] == target and policy["PolicyName"] == "cloudml-churn-cpu"
    assert config["CustomizedMetricSpecification"] == {
        "MetricName": "CPUUtilization", "Namespace": "/aws/sagemaker/Endpoints",
        "Dimensions": [{"Name": "EndpointName", "Value": "churn"}, {"Name": "VariantName", "Value": "<variant>"}],
        "Statistic": "Average", "Unit": "Percent"}
    for request, shape in _requests(plan):
        assert request_problems(request, shape) == []


def test_both_targets_make_two_policies_and_none_defaults_to_cpu_60() -> None:
    both = autoscaling_plan(deployment(instances=_scale(target_invocations_per_instance=100, target_cpu_percent=50)),
                            "ml.m5.large")
    assert both is not None and [p["PolicyName"] for p in both["ScalingPolicies"]] == [
        "cloudml-churn-invocations", "cloudml-churn-cpu"]
    bare = autoscaling_plan(deployment(instances=_scale()), "ml.m5.xlarge")
    assert bare is not None and [p["TargetTrackingScalingPolicyConfiguration"]["TargetValue"]
                                 for p in bare["ScalingPolicies"]] == [240.0]
    assert autoscaling_plan(deployment(), "ml.m5.large") is None


def test_refusals() -> None:
    with pytest.raises(UnsupportedFeatureError, match="at least one instance") as info:
        SageMakerAdapter().compile_deployment(deployment(instances={"count": 1, "autoscale": {"min": 0, "max": 2}}))
    assert (info.value.adapter, info.value.feature) == ("sagemaker", "deploy.autoscale")
    with pytest.raises(UnsupportedFeatureError, match="vCPU"):
        instance_vcpus("ml.inf2.weird")
    assert SageMakerAdapter.capabilities.supports("deploy.autoscale")


def test_both_engines_plan_autoscaling() -> None:
    for options in ({}, CONTROLLER):
        plan = cloudml.compile(deployment(instances=_scale(max=3), backend_options=options), "sagemaker").document
        assert plan["Autoscaling"]["ScalableTarget"]["MaxCapacity"] == 3


# -- both engines, against the fake ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def fake() -> Iterator[SageMakerFake]:
    with sagemaker_fake(activation_seconds=0.05, rollback_seconds=0.1, weights_seconds=0.05,
                        poll_interval=0.02) as server:
        yield server


_ADAPTERS: dict[str, SageMakerAdapter] = {}


def _adapter(fake: SageMakerFake) -> tuple[SageMakerAdapter, str]:
    """The module's adapter on the fake (boto3 clients are built once) and a fresh model group."""
    if fake.url not in _ADAPTERS:
        adapter = cloudml.get_adapter("sagemaker", region=REGION, endpoint_url=fake.url, bucket=BUCKET, role_arn=ROLE)
        assert isinstance(adapter, SageMakerAdapter)
        _ADAPTERS[fake.url] = adapter
    a = _ADAPTERS[fake.url]
    group = f"grp-{uuid.uuid4().hex[:8]}"
    for i in (1, 2, 3):
        a.register_model(group, f"s3://{BUCKET}/m{i}.tar.gz", image="img:1")
    return a, group


def _scaling(fake: SageMakerFake, endpoint: str, variant: str) -> tuple[tuple[int, int] | None, list[str]]:
    aas = fake.client("application-autoscaling")
    rid = resource_id(endpoint, variant)
    targets = aas.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[rid])["ScalableTargets"]
    policies = aas.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=rid)["ScalingPolicies"]
    bounds = (targets[0]["MinCapacity"], targets[0]["MaxCapacity"]) if targets else None
    return bounds, sorted(p["PolicyName"] for p in policies if p["ResourceId"] == rid)


def _ops(fake: SageMakerFake, mark: int) -> list[str]:
    return [r.operation for r in fake.requests[mark:]]


def test_native_guardrails_register_after_success_and_reregister_around_updates(fake: SageMakerFake) -> None:
    a, group = _adapter(fake)
    endpoint = f"ep-{uuid.uuid4().hex[:8]}"
    first = deployment(endpoint, model={"group": group, "version": 1}, strategy="all_at_once",
                       instances=_scale(min=1, max=4, target_invocations_per_instance=300, target_cpu_percent=50))
    result = a.deploy(first, poll=0.02)
    assert result.outcome is RolloutOutcome.SUCCEEDED, result
    assert _scaling(fake, endpoint, "AllTraffic") == ((1, 4), [f"cloudml-{endpoint}-cpu",
                                                                f"cloudml-{endpoint}-invocations"])
    assert result.history[-1]["event"] == "autoscaling"
    # a new instance type: SageMaker refuses it while the variant is registered, so cloudml takes it off first
    mark = len(fake.requests)
    second = deployment(endpoint, model={"group": group, "version": 2}, strategy={"blue_green": {"bake": "0.1s"}},
                        instances={**_scale(min=2, max=5, target_invocations_per_instance=200),
                                   "instance_type": {"sagemaker": "ml.m5.xlarge"}})
    result = a.deploy(second, poll=0.02)
    assert result.outcome is RolloutOutcome.SUCCEEDED, result
    ops = _ops(fake, mark)
    assert ops.index("DeregisterScalableTarget") < ops.index("UpdateEndpoint") < ops.index("RegisterScalableTarget")
    assert ops.count("DeleteScalingPolicy") == 2
    assert _scaling(fake, endpoint, "AllTraffic") == ((2, 5), [f"cloudml-{endpoint}-invocations"])  # cpu gone
    # no autoscale in the next deployment: none afterwards
    third = deployment(endpoint, model={"group": group, "version": 3}, strategy={"blue_green": {"bake": "0.1s"}},
                       instances={"count": 2, "instance_type": {"sagemaker": "ml.m5.xlarge"}})
    assert a.deploy(third, poll=0.02).outcome is RolloutOutcome.SUCCEEDED
    assert _scaling(fake, endpoint, "AllTraffic") == (None, [])


def test_the_fake_refuses_an_instance_type_change_on_a_registered_variant(fake: SageMakerFake) -> None:
    a, group = _adapter(fake)
    endpoint = f"ep-{uuid.uuid4().hex[:8]}"
    first = deployment(endpoint, model={"group": group, "version": 1}, strategy="all_at_once", instances=_scale())
    assert a.deploy(first, poll=0.02).outcome is RolloutOutcome.SUCCEEDED
    sm = fake.client("sagemaker")
    config = sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
    variant = sm.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"][0]
    sm.create_endpoint_config(EndpointConfigName=f"{endpoint}-bigger", ProductionVariants=[
        {k: variant[k] for k in ("VariantName", "ModelName", "InitialInstanceCount")} | {"InstanceType": "ml.m5.2xlarge"}])
    with pytest.raises(ClientError, match="registered for automatic scaling"):
        sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=f"{endpoint}-bigger")


def test_a_rolled_back_update_puts_the_old_scaling_back(fake: SageMakerFake) -> None:
    a, group = _adapter(fake)
    endpoint = f"ep-{uuid.uuid4().hex[:8]}"
    first = deployment(endpoint, model={"group": group, "version": 1}, strategy="all_at_once",
                       instances=_scale(min=1, max=3, target_invocations_per_instance=100))
    assert a.deploy(first, poll=0.02).outcome is RolloutOutcome.SUCCEEDED
    fake.fail_next_update(endpoint)
    second = deployment(endpoint, model={"group": group, "version": 2}, strategy={"blue_green": {"bake": "0.1s"}},
                        instances=_scale(min=2, max=8, target_cpu_percent=40))
    result = a.deploy(second, poll=0.02)
    assert result.outcome is not RolloutOutcome.SUCCEEDED, result
    assert _scaling(fake, endpoint, "AllTraffic") == ((1, 3), [f"cloudml-{endpoint}-invocations"])


def test_the_controller_moves_scaling_to_the_new_variant(fake: SageMakerFake, tmp_path: Path) -> None:
    a, group = _adapter(fake)
    endpoint = f"ep-{uuid.uuid4().hex[:8]}"
    options = {"poll": 0.02, "state_dir": str(tmp_path)}
    v1, v2 = f"{group}-v1", f"{group}-v2"
    first = deployment(endpoint, model={"group": group, "version": 1}, strategy="all_at_once",
                       backend_options=CONTROLLER, instances=_scale(max=3, target_invocations_per_instance=100))
    assert a.deploy(first, **options).outcome is RolloutOutcome.SUCCEEDED
    assert _scaling(fake, endpoint, v1) == ((1, 3), [f"cloudml-{endpoint}-invocations"])
    mark = len(fake.requests)
    canary = deployment(endpoint, model={"group": group, "version": 2}, backend_options=CONTROLLER,
                        strategy={"canary": {"percent": 20, "bake": "0.05s"}},
                        instances=_scale(max=5, target_invocations_per_instance=150))
    assert a.deploy(canary, **options).outcome is RolloutOutcome.SUCCEEDED
    assert _scaling(fake, endpoint, v1) == (None, [])  # taken off before the config that retires v1
    assert _scaling(fake, endpoint, v2) == ((1, 5), [f"cloudml-{endpoint}-invocations"])
    ops = _ops(fake, mark)
    assert ops.index("DeregisterScalableTarget") < len(ops) - 1 - ops[::-1].index("UpdateEndpoint")
    # a shadow that is discarded leaves the live variant's scaling alone
    shadow = deployment(endpoint, model={"group": group, "version": 3}, backend_options=CONTROLLER,
                        strategy={"shadow": {"percent": 10, "duration": "0.05s"}}, instances=_scale(max=9))
    assert a.deploy(shadow, **options).outcome is RolloutOutcome.SUCCEEDED
    assert _scaling(fake, endpoint, v2) == ((1, 5), [f"cloudml-{endpoint}-invocations"])


def test_updates_without_autoscale_survive_a_policy_without_application_autoscaling(fake: SageMakerFake) -> None:
    a, group = _adapter(fake)
    endpoint = f"ep-{uuid.uuid4().hex[:8]}"
    first = deployment(endpoint, model={"group": group, "version": 1}, strategy="all_at_once")
    assert a.deploy(first, poll=0.02).outcome is RolloutOutcome.SUCCEEDED
    fake.inject("DescribeScalableTargets", "AccessDeniedException", times=2)  # one per deploy below (not retried)
    second = deployment(endpoint, model={"group": group, "version": 2}, strategy={"blue_green": {"bake": "0.1s"}})
    result = a.deploy(second, poll=0.02)
    assert result.outcome is RolloutOutcome.SUCCEEDED, result
    assert any("autoscaling not checked" in e["event"] for e in result.history)
    third = deployment(endpoint, model={"group": group, "version": 3}, strategy={"blue_green": {"bake": "0.1s"}},
                       instances=_scale())
    with pytest.raises(PermissionDeniedError):  # asked for autoscaling: the missing permission is an error
        a.deploy(third, poll=0.02)
    live = fake.client("sagemaker").describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
    assert live == result.history[0]["config"]  # stopped before UpdateEndpoint: v2 still serves
