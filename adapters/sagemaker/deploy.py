"""Deployment spec -> SageMaker deployment guardrails (UpdateEndpoint DeploymentConfig) and CloudWatch alarms.

Pure: it builds request dictionaries; the client sends them.

* ``all_at_once`` / ``blue_green`` -> ``BlueGreenUpdatePolicy`` with ``ALL_AT_ONCE`` and a bake;
* ``canary`` -> ``CANARY`` (``CanarySize`` in capacity percent, at most 50);
* ``linear`` -> ``LINEAR`` (``LinearStepSize`` 10-50%);
* neutral alarms -> ``put_metric_alarm`` on ``AWS/SageMaker`` (``Invocation5XXErrors`` over
  ``Invocations`` as metric math for the error rate, ``ModelLatency`` percentiles in microseconds,
  ``Invocations``), with the ``EndpointName`` and ``VariantName`` dimensions; existing alarms are
  referenced by name. All of them go into ``AutoRollbackConfiguration``.

Example:
    >>> from cloudml.spec.deployment import Deployment
    >>> d = Deployment(endpoint="churn", model={"group": "churn"}, strategy={"canary": {"percent": 10, "bake": "10m"}},
    ...                alarms=[{"name": "errors", "metric": "error_rate", "threshold": 0.01}])
    >>> cfg = deployment_config(d, ["churn-errors"])
    >>> cfg["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    {'Type': 'CANARY', 'WaitIntervalInSeconds': 600, 'CanarySize': {'Type': 'CAPACITY_PERCENT', 'Value': 10}}
"""

from __future__ import annotations

import math
from typing import Any

from cloudml.errors import UnsupportedFeatureError
from cloudml.spec.deployment import Alarm, Canary, Deployment, Linear

__all__ = ["VARIANT", "alarm_name", "alarm_request", "compile_deployment_plan", "deployment_config"]

VARIANT = "AllTraffic"
_COMPARISON = {"gt": "GreaterThanThreshold", "gte": "GreaterThanOrEqualToThreshold", "lt": "LessThanThreshold",
               "lte": "LessThanOrEqualToThreshold"}
_MISSING = {"missing": "missing", "not_breaching": "notBreaching", "breaching": "breaching", "ignore": "ignore"}


def _wait(seconds: float, what: str, feature: str) -> int:
    value = math.ceil(seconds)
    if value > 3600:
        raise UnsupportedFeatureError("sagemaker", None, feature,
                                      f"{what} is {value}s; SageMaker guardrails wait at most 3600s")
    return value


def deployment_config(d: Deployment, alarm_names: list[str]) -> dict[str, Any]:
    """The ``DeploymentConfig`` for UpdateEndpoint (blue/green guardrails with auto-rollback).

    Example:
        >>> d = Deployment(endpoint="ep", model={"group": "g"}, strategy={"blue_green": {"bake": "5m"}})
        >>> deployment_config(d, [])["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
        {'Type': 'ALL_AT_ONCE', 'WaitIntervalInSeconds': 300}
    """
    cfg = d.strategy.config
    feature = f"deploy.{d.strategy.name}"
    routing: dict[str, Any]
    if isinstance(cfg, Canary):
        if cfg.percent > 50:
            raise UnsupportedFeatureError("sagemaker", None, "deploy.canary",
                                          f"canary of {cfg.percent:g}%: SageMaker canaries are at most 50% of the fleet")
        routing = {"Type": "CANARY", "WaitIntervalInSeconds": _wait(cfg.bake, "canary bake", feature),
                   "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": math.ceil(cfg.percent)}}
    elif isinstance(cfg, Linear):
        if not 10 <= cfg.step_percent <= 50:
            raise UnsupportedFeatureError("sagemaker", None, "deploy.linear",
                                          f"linear steps of {cfg.step_percent:g}%: SageMaker takes 10-50%")
        routing = {"Type": "LINEAR", "WaitIntervalInSeconds": _wait(cfg.interval, "linear interval", feature),
                   "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": math.ceil(cfg.step_percent)}}
    elif d.strategy.name in ("all_at_once", "blue_green"):
        routing = {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": _wait(getattr(cfg, "bake", 0.0), "bake", feature)}
    else:
        raise UnsupportedFeatureError("sagemaker", None, f"deploy.{d.strategy.name}",
                                      f"SageMaker guardrails cannot mirror or hold a split; {d.strategy.name} is "
                                      "driven by cloudml's controller over variants (variants.py)")
    termination = _wait(d.rollback.termination_wait, "termination_wait", feature)
    shifts = {"CANARY": 2, "LINEAR": math.ceil(100 / max(1.0, getattr(cfg, "step_percent", 100.0)))}.get(routing["Type"], 1)
    waits = routing["WaitIntervalInSeconds"] * shifts + termination
    if waits >= 28800:
        raise UnsupportedFeatureError("sagemaker", None, feature, f"the waits add up to {waits}s; SageMaker ends a "
                                      "guarded update after at most 28800s")
    # the execution timeout must exceed the total waiting time, whatever max_duration says
    timeout = max(600, waits + 300, min(28800, math.ceil(d.max_duration)))
    config: dict[str, Any] = {"BlueGreenUpdatePolicy": {
        "TrafficRoutingConfiguration": routing,
        "TerminationWaitInSeconds": termination,
        "MaximumExecutionTimeoutInSeconds": min(28800, timeout)}}
    if d.rollback.automatic and alarm_names:
        if len(alarm_names) > 10:
            raise UnsupportedFeatureError("sagemaker", None, "deploy.alarm", "SageMaker rolls back on at most 10 alarms")
        config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": n} for n in alarm_names]}
    return config


def _period(seconds: float) -> int:
    """The nearest period CloudWatch accepts at or above ``seconds``: 10, 20, 30 or a multiple of 60."""
    value = math.ceil(seconds)
    for allowed in (10, 20, 30):
        if value <= allowed:
            return allowed
    return math.ceil(value / 60) * 60


def alarm_name(endpoint: str, alarm: Alarm) -> str:
    """The CloudWatch name cloudml gives a neutral alarm (an existing alarm keeps its own).

    Example:
        >>> alarm_name("churn", Alarm(name="errors", metric="error_rate", threshold=0.01))
        'cloudml-churn-errors'
    """
    return alarm.existing.get("sagemaker") or f"cloudml-{endpoint}-{alarm.name}"


def alarm_request(endpoint: str, alarm: Alarm, variant: str = VARIANT) -> dict[str, Any]:
    """``put_metric_alarm`` keyword arguments for a neutral alarm.

    Example:
        >>> a = Alarm(name="slow", metric="latency_p99", threshold="250ms", period="60s", evaluation_periods=3)
        >>> r = alarm_request("churn", a)
        >>> r["MetricName"], r["ExtendedStatistic"], r["Threshold"]
        ('ModelLatency', 'p99', 250000.0)
    """
    assert alarm.metric is not None and alarm.threshold is not None
    dims = [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant}]
    period = _period(alarm.period)
    if period < 3600 and period * alarm.evaluation_periods > 86_400:
        raise UnsupportedFeatureError("sagemaker", None, "deploy.alarm", f"alarm {alarm.name} looks back "
                                      f"{period * alarm.evaluation_periods}s; CloudWatch evaluates at most one day "
                                      "for periods under an hour")
    req: dict[str, Any] = {
        "AlarmName": alarm_name(endpoint, alarm),
        "AlarmDescription": f"cloudml alarm {alarm.name} ({alarm.metric}) on endpoint {endpoint}",
        "EvaluationPeriods": alarm.evaluation_periods, "DatapointsToAlarm": alarm.required_datapoints,
        "ComparisonOperator": _COMPARISON[alarm.comparison], "TreatMissingData": _MISSING[alarm.treat_missing_data],
        "ActionsEnabled": False,
    }
    if alarm.metric == "error_rate":
        def stat(metric_id: str, name: str) -> dict[str, Any]:
            return {"Id": metric_id, "ReturnData": False, "MetricStat": {"Metric": {
                "Namespace": "AWS/SageMaker", "MetricName": name, "Dimensions": dims}, "Period": period, "Stat": "Sum"}}

        req["Metrics"] = [stat("errors", "Invocation5XXErrors"), stat("invocations", "Invocations"),
                          {"Id": "error_rate", "Expression": "IF(invocations > 0, errors / invocations, 0)",
                           "Label": "error rate", "ReturnData": True}]
        req["Threshold"] = float(alarm.threshold)
        return req
    req.update({"Namespace": "AWS/SageMaker", "Dimensions": dims, "Period": period})
    if alarm.metric == "invocations":
        req.update({"MetricName": "Invocations", "Statistic": "Sum", "Threshold": float(alarm.threshold)})
    else:
        req.update({"MetricName": "ModelLatency", "ExtendedStatistic": alarm.metric.split("_")[1],
                    "Threshold": float(round(alarm.threshold * 1_000_000, 3))})  # ModelLatency is in microseconds
    return req


def model_container(serving: dict[str, Any], package_arn: str, model_data_url: str) -> dict[str, Any]:
    """The CreateModel ``PrimaryContainer``: the registered package, or ``serving.image`` over its model
    data, with ``serving.env`` as the container's environment either way.

    Example:
        >>> model_container({}, "arn:pkg/1", "s3://b/m.tar.gz")
        {'ModelPackageName': 'arn:pkg/1'}
        >>> model_container({"image": "123.dkr.ecr.eu-west-1.amazonaws.com/serve:1", "env": {"MODE": "fast"}},
        ...                 "arn:pkg/1", "s3://b/m.tar.gz")["ModelDataUrl"]
        's3://b/m.tar.gz'
    """
    env = dict(serving.get("env") or {})
    if serving.get("image"):
        container: dict[str, Any] = {"Image": serving["image"], "ModelDataUrl": model_data_url}
    else:
        container = {"ModelPackageName": package_arn}
    if env:
        container["Environment"] = env
    return container


def compile_deployment_plan(d: Deployment, instance_type: str, capture_root: str | None = None) -> dict[str, Any]:
    """Everything the client will send, with the model resolved at deploy time.

    ``capture_root`` (``s3://<bucket>/<prefix>``) is where ``capture`` writes without a ``destination``;
    the plan then carries ``DataCaptureConfig`` (see :mod:`cloudml.adapters.sagemaker.capture`).

    Example:
        >>> d = Deployment(endpoint="ep", model={"group": "g"}, strategy="all_at_once")
        >>> sorted(compile_deployment_plan(d, "ml.m5.large"))[:3]
        ['DeploymentConfig', 'EndpointName', 'ExistingAlarms']
        >>> d = Deployment(endpoint="ep", model={"group": "g"}, capture={"percent": 5})
        >>> compile_deployment_plan(d, "ml.m5.large", "s3://b/ml")["DataCaptureConfig"]["DestinationS3Uri"]
        's3://b/ml/capture/ep'
    """
    from cloudml.adapters.sagemaker.autoscale import autoscaling_plan
    from cloudml.adapters.sagemaker.capture import data_capture_config

    names = [alarm_name(d.endpoint, a) for a in d.alarms]
    plan = {
        "EndpointName": d.endpoint,
        "ModelPackage": d.model.model_dump(),
        "ProductionVariant": {"VariantName": VARIANT, "InstanceType": instance_type,
                              "InitialInstanceCount": d.instances.count, "InitialVariantWeight": 1.0},
        "DeploymentConfig": deployment_config(d, names),
        "PutMetricAlarm": [alarm_request(d.endpoint, a) for a in d.alarms if not a.existing],
        "ExistingAlarms": [a.existing["sagemaker"] for a in d.alarms if a.existing.get("sagemaker")],
        "Serving": {k: v for k, v in (("image", d.serving.image), ("env", dict(d.serving.env))) if v},
    }
    capture = data_capture_config(d, capture_root)
    if capture is not None:
        plan["DataCaptureConfig"] = capture
    scaling = autoscaling_plan(d, instance_type)
    if scaling is not None:
        plan["Autoscaling"] = scaling  # applied to the live variant once the rollout succeeds
    return plan
