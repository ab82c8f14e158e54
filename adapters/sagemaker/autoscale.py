"""``instances.autoscale`` on SageMaker: Application Auto Scaling of the live production variant.

After a rollout succeeds, the variant that serves (``endpoint/<endpoint>/variant/<variant>``,
dimension ``sagemaker:variant:DesiredInstanceCount``) is registered as a scalable target with
``MinCapacity``/``MaxCapacity`` from ``autoscale.min``/``max`` and gets target-tracking policies:

* ``target_invocations_per_instance`` -> the predefined metric ``SageMakerVariantInvocationsPerInstance``
  (invocations per instance **per minute**);
* ``target_cpu_percent`` -> a customized metric, ``CPUUtilization`` in ``/aws/sagemaker/Endpoints`` with the
  ``EndpointName`` and ``VariantName`` dimensions, ``Average``, ``Percent``. SageMaker sums the cores (a
  4-vCPU instance reports 0-400%), so the target is the neutral percent times the instance's vCPUs;
* neither -> CPU at 60%, the default Vertex AI uses, so a bare ``{min, max}`` scales the same way on both.

SageMaker refuses an UpdateEndpoint that changes the instance type of a variant registered for
scaling, so the native guardrail path takes the variant's policies and target off before the update
(:func:`remove`) and, if the update does not succeed, puts back what was there (:func:`restore`). The
controller path takes them off a variant it retires; the new variant is registered once it is live.

Example:
    >>> from cloudml.spec.deployment import Deployment
    >>> d = Deployment(endpoint="churn", model={"group": "churn"}, instances={"count": 2,
    ...                "autoscale": {"min": 2, "max": 6, "target_invocations_per_instance": 600}})
    >>> plan = autoscaling_plan(d, "ml.m5.large")
    >>> plan["ScalableTarget"]["MinCapacity"], plan["ScalingPolicies"][0]["PolicyName"]
    (2, 'cloudml-churn-invocations')
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

from cloudml.errors import NotFoundError, UnsupportedFeatureError
from cloudml.spec.deployment import Deployment

__all__ = ["DEFAULT_CPU_PERCENT", "NAMESPACE", "SCALABLE_DIMENSION", "apply", "autoscaling_plan", "current",
           "instance_vcpus", "remove", "resource_id", "restore"]

NAMESPACE = "sagemaker"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
DEFAULT_CPU_PERCENT = 60.0
_SIZE_VCPUS = {"medium": 2, "large": 2, "xlarge": 4}


def resource_id(endpoint: str, variant: str) -> str:
    """Application Auto Scaling's id of a production variant.

    Example:
        >>> resource_id("churn", "AllTraffic")
        'endpoint/churn/variant/AllTraffic'
    """
    return f"endpoint/{endpoint}/variant/{variant}"


def instance_vcpus(instance_type: str) -> int:
    """vCPUs of an ML instance type: cloudml's instance table, else the size (large 2, xlarge 4, Nxlarge 4N).

    Example:
        >>> instance_vcpus("ml.m5.large"), instance_vcpus("ml.c5.9xlarge"), instance_vcpus("ml.g5.12xlarge")
        (2, 36, 48)
    """
    from cloudml.adapters.sagemaker.resources import _CPU_TYPES, _GPU_TYPES

    for row in (*_CPU_TYPES, *_GPU_TYPES):
        if row[0] == instance_type:
            return int(row[1])
    size = instance_type.rsplit(".", 1)[-1]
    if size in _SIZE_VCPUS:
        return _SIZE_VCPUS[size]
    match = re.fullmatch(r"(\d+)xlarge", size)
    if match:
        return 4 * int(match.group(1))
    raise UnsupportedFeatureError("sagemaker", None, "deploy.autoscale", f"target_cpu_percent needs the vCPU count "
                                  f"of {instance_type} (SageMaker's CPUUtilization adds up the cores), which cloudml "
                                  "does not know", hint="use target_invocations_per_instance, or an ml.<family>."
                                  "<N>xlarge type")


def autoscaling_plan(d: Deployment, instance_type: str) -> dict[str, Any] | None:
    """The scalable target and target-tracking policies for ``d`` (None without ``instances.autoscale``).

    ``ResourceId`` is added per variant when they are applied (:func:`apply`). ``min`` must be at least 1:
    a real-time variant keeps an instance.

    Example:
        >>> d = Deployment(endpoint="ep", model={"group": "g"}, instances={"type": "cpu-medium", "count": 1,
        ...                "autoscale": {"min": 1, "max": 3, "target_cpu_percent": 70}})
        >>> p = autoscaling_plan(d, "ml.m5.xlarge")["ScalingPolicies"][0]
        >>> p["PolicyName"], p["TargetTrackingScalingPolicyConfiguration"]["TargetValue"]
        ('cloudml-ep-cpu', 280.0)
    """
    scale = d.instances.autoscale
    if scale is None:
        return None
    if scale.min < 1:
        raise UnsupportedFeatureError("sagemaker", None, "deploy.autoscale", "a SageMaker real-time variant keeps "
                                      "at least one instance (autoscale.min >= 1)")
    policies: list[dict[str, Any]] = []

    def policy(kind: str, config: dict[str, Any]) -> dict[str, Any]:
        return {"PolicyName": f"cloudml-{d.endpoint}-{kind}", "ServiceNamespace": NAMESPACE,
                "ScalableDimension": SCALABLE_DIMENSION, "PolicyType": "TargetTrackingScaling",
                "TargetTrackingScalingPolicyConfiguration": config}

    if scale.target_invocations_per_instance is not None:
        policies.append(policy("invocations", {
            "TargetValue": float(scale.target_invocations_per_instance),
            "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}}))
    cpu = scale.target_cpu_percent
    if cpu is None and not policies:
        cpu = DEFAULT_CPU_PERCENT
    if cpu is not None:
        policies.append(policy("cpu", {
            "TargetValue": round(float(cpu) * instance_vcpus(instance_type), 3),
            "CustomizedMetricSpecification": {
                "MetricName": "CPUUtilization", "Namespace": "/aws/sagemaker/Endpoints",
                "Dimensions": [{"Name": "EndpointName", "Value": d.endpoint}, {"Name": "VariantName", "Value": "<variant>"}],
                "Statistic": "Average", "Unit": "Percent"}}))
    return {"ScalableTarget": {"ServiceNamespace": NAMESPACE, "ScalableDimension": SCALABLE_DIMENSION,
                               "MinCapacity": scale.min, "MaxCapacity": scale.max},
            "ScalingPolicies": policies}


def _for_variant(request: Any, variant: str) -> Any:
    if isinstance(request, dict):
        if request.get("Name") == "VariantName":
            return {**request, "Value": variant}
        return {k: _for_variant(v, variant) for k, v in request.items()}
    if isinstance(request, list):
        return [_for_variant(v, variant) for v in request]
    return request


def apply(client: Any, endpoint: str, variant: str, plan: dict[str, Any]) -> None:
    """RegisterScalableTarget, then PutScalingPolicy for each policy, on ``variant`` of ``endpoint``.

    Example:
        >>> apply(sagemaker_client, "churn", "AllTraffic", plan["Autoscaling"])  # doctest: +SKIP
    """
    rid = resource_id(endpoint, variant)
    client.call("application-autoscaling", "register_scalable_target", ResourceId=rid, **plan["ScalableTarget"])
    for policy in plan["ScalingPolicies"]:
        client.call("application-autoscaling", "put_scaling_policy", ResourceId=rid, **_for_variant(policy, variant))


def current(client: Any, endpoint: str, variant: str) -> dict[str, Any] | None:
    """The variant's scalable target and policies as they are (None when it is not registered), for :func:`restore`.

    Example:
        >>> current(sagemaker_client, "churn", "AllTraffic")["ScalableTarget"]["MaxCapacity"]  # doctest: +SKIP
        6
    """
    rid = resource_id(endpoint, variant)
    targets = client.call("application-autoscaling", "describe_scalable_targets", ServiceNamespace=NAMESPACE,
                          ResourceIds=[rid], ScalableDimension=SCALABLE_DIMENSION).get("ScalableTargets", [])
    if not targets:
        return None
    target = targets[0]
    policies = client.call("application-autoscaling", "describe_scaling_policies", ServiceNamespace=NAMESPACE,
                           ResourceId=rid, ScalableDimension=SCALABLE_DIMENSION).get("ScalingPolicies", [])
    keep = ("PolicyName", "ServiceNamespace", "ScalableDimension", "PolicyType", "StepScalingPolicyConfiguration",
            "TargetTrackingScalingPolicyConfiguration", "PredictiveScalingPolicyConfiguration")
    return {"ScalableTarget": {"ServiceNamespace": NAMESPACE, "ScalableDimension": SCALABLE_DIMENSION,
                               "MinCapacity": int(target["MinCapacity"]), "MaxCapacity": int(target["MaxCapacity"])},
            "ScalingPolicies": [{k: p[k] for k in keep if p.get(k) is not None} for p in policies
                                if p.get("ResourceId", rid) == rid]}


def remove(client: Any, endpoint: str, variant: str) -> dict[str, Any] | None:
    """Delete the variant's scaling policies, then deregister it (as AWS asks before an UpdateEndpoint).

    Returns what was there (None if nothing), for :func:`restore`.

    Example:
        >>> saved = remove(sagemaker_client, "churn", "AllTraffic")  # doctest: +SKIP
    """
    saved = current(client, endpoint, variant)
    if saved is None:
        return None
    rid = resource_id(endpoint, variant)
    for policy in saved["ScalingPolicies"]:
        with contextlib.suppress(NotFoundError):  # gone meanwhile
            client.call("application-autoscaling", "delete_scaling_policy", PolicyName=policy["PolicyName"],
                        ServiceNamespace=NAMESPACE, ResourceId=rid, ScalableDimension=SCALABLE_DIMENSION)
    with contextlib.suppress(NotFoundError):
        client.call("application-autoscaling", "deregister_scalable_target", ServiceNamespace=NAMESPACE,
                    ResourceId=rid, ScalableDimension=SCALABLE_DIMENSION)
    return saved


def restore(client: Any, endpoint: str, variant: str, saved: dict[str, Any] | None) -> None:
    """Put back what :func:`remove` took off (nothing when ``saved`` is None).

    Example:
        >>> restore(sagemaker_client, "churn", "AllTraffic", saved)  # doctest: +SKIP
    """
    if saved is not None:
        apply(client, endpoint, variant, saved)
