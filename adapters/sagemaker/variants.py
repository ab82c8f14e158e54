"""SageMaker endpoints driven by cloudml's core rollout controller, through production and shadow variants.

Used for ``shadow`` and ``ab_test`` deployments (guardrails can neither mirror nor hold a split), and for
every strategy when ``backend_options.sagemaker.native_guardrails`` is false. :class:`VariantTraffic` implements :class:`cloudml.rollout.TrafficBackend`:

* a deployment is a **variant** named after the model version (``churn-v3``), with its own SageMaker model;
* ``create_deployment`` -> a fresh EndpointConfig with the current variants (at their current weights)
  plus the new one (weight 0, or a ``ShadowProductionVariants`` entry for a shadow), then UpdateEndpoint
  (CreateEndpoint for a new endpoint);
* ``set_traffic`` -> UpdateEndpointWeightsAndCapacities: a variant's weight is its integer percentage; a
  shadow variant's weight is its mirrored share of the production total. Promoting a shadow variant to
  production traffic needs a new EndpointConfig (SageMaker cannot move a variant between the two lists);
* ``alarm_datapoints`` -> CloudWatch GetMetricData on ``AWS/SageMaker`` with the ``EndpointName`` and
  ``VariantName`` dimensions, complete periods only;
* ``delete_deployment`` -> a fresh EndpointConfig without the variant, then UpdateEndpoint;
* ``capture`` -> the deployment's ``DataCaptureConfig`` on the configs its rollout creates, carried over
  from the current config by later traffic changes and removals;
* ``instances.autoscale`` -> a retired variant is deregistered from Application Auto Scaling before the
  config without it; the adapter registers the new live variant once the rollout succeeds.

Every call that changes the endpoint first waits until it is ``InService`` (SageMaker refuses changes to
an updating endpoint) and then waits for its own change to finish, so a resumed controller always sees a
settled endpoint. A config SageMaker does not apply (it returns to the old one, e.g. for lack of capacity)
raises :class:`~cloudml.errors.DeploymentError` with SageMaker's ``FailureReason``; the rollout stays
resumable, and a rollback ignores a variant that never arrived. The controller's state lives in files
(:class:`cloudml.rollout.FileStateStore`).

Example:
    >>> from cloudml.spec.deployment import Deployment
    >>> d = Deployment(endpoint="churn", model={"group": "churn"}, strategy={"shadow": {"percent": 20}})
    >>> plan = controller_plan(d, "ml.m5.large")
    >>> plan["Mode"], plan["Traffic"]["ShadowWeight"], [p["phase"] for p in plan["Rollout"]["phases"]][:3]
    ('controller', 20.0, ['create', 'wait_ready', 'mirror'])
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cloudml.alarms import AlarmState, AlarmStatus
from cloudml.errors import BackendValidationError, DeploymentError, NotFoundError, PermissionDeniedError
from cloudml.rollout_plan import plan_rollout
from cloudml.spec.deployment import Alarm, Deployment, Shadow

__all__ = ["VariantTraffic", "adopt", "controller_plan", "endpoint_lock", "metric_queries", "period_values", "variant_name"]

SETTLING = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting")
_VARIANT_KEYS = ("VariantName", "ModelName", "InitialInstanceCount", "InstanceType", "InitialVariantWeight",
                 "AcceleratorType", "CoreDumpConfig", "ServerlessConfig", "VolumeSizeInGB",
                 "ModelDataDownloadTimeoutInSeconds", "ContainerStartupHealthCheckTimeoutInSeconds",
                 "EnableSSMAccess", "ManagedInstanceScaling", "RoutingConfig", "InferenceAmiVersion")


def variant_name(group: str, version: int) -> str:
    """The variant (and controller deployment) name of a model version: SageMaker's 63-character pattern.

    Example:
        >>> variant_name("churn", 3)
        'churn-v3'
    """
    suffix = f"-v{version}"
    return f"{group[:63 - len(suffix)]}{suffix}"


def _unique(prefix: str) -> str:
    """A fresh resource name (models, endpoint configs): at most 63 characters."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
    return f"{prefix[:44].rstrip('-')}-{stamp}-{uuid.uuid4().hex[:4]}"


def _period(seconds: float) -> int:
    from cloudml.adapters.sagemaker.deploy import _period as cloudwatch_period

    return cloudwatch_period(seconds)


def controller_plan(d: Deployment, instance_type: str, capture_root: str | None = None) -> dict[str, Any]:
    """What ``compile`` shows for a controller-driven deployment: the neutral plan and the variant requests.

    Neutral alarms are read per variant with GetMetricData; alarms named under ``existing`` are read
    with DescribeAlarms (:meth:`VariantTraffic.existing_alarm_state`).

    Example:
        >>> d = Deployment(endpoint="churn", model={"group": "churn"}, strategy={"canary": {"percent": 10}},
        ...                backend_options={"sagemaker": {"native_guardrails": False}})
        >>> p = controller_plan(d, "ml.m5.large")
        >>> p["Variant"]["InstanceType"], p["Traffic"]["Operation"]
        ('ml.m5.large', 'UpdateEndpointWeightsAndCapacities')
    """
    from cloudml.adapters.sagemaker.autoscale import autoscaling_plan
    from cloudml.adapters.sagemaker.capture import data_capture_config

    cfg = d.strategy.config
    traffic: dict[str, Any] = {"Operation": "UpdateEndpointWeightsAndCapacities", "Weights": "integer percentages"}
    if isinstance(cfg, Shadow):
        traffic["ShadowWeight"] = float(max(1, round(cfg.percent)))
    plan = {
        "EndpointName": d.endpoint,
        "Mode": "controller",
        "ModelPackage": d.model.model_dump(),
        "Variant": {"InstanceType": instance_type, "InitialInstanceCount": d.instances.count,
                    "Kind": "ShadowProductionVariants" if isinstance(cfg, Shadow) else "ProductionVariants"},
        "Traffic": traffic,
        "Alarms": [{"name": a.name, "metric": a.metric, "queries": metric_queries(d.endpoint, "<variant>", a)}
                   for a in d.alarms if not a.existing],
        "ExistingAlarms": [a.existing["sagemaker"] for a in d.alarms if a.existing.get("sagemaker")],
        "Rollout": plan_rollout(d),
    }
    capture = data_capture_config(d, capture_root)
    if capture is not None:
        plan["DataCaptureConfig"] = capture  # on every endpoint config the controller creates
    scaling = autoscaling_plan(d, instance_type)
    if scaling is not None:
        plan["Autoscaling"] = scaling  # registered for the new variant once it is live
    return plan


def metric_queries(endpoint: str, variant: str, alarm: Alarm) -> list[dict[str, Any]]:
    """GetMetricData queries for one neutral alarm on one variant (AWS/SageMaker metrics).

    ``error_rate`` reads ``Invocation5XXErrors`` and ``Invocations`` sums (the rate is computed per
    period by :func:`period_values`), latencies read ``ModelLatency`` percentiles (microseconds),
    ``invocations`` the ``Invocations`` sum.

    Example:
        >>> a = Alarm(name="slow", metric="latency_p99", threshold="250ms", period="60s")
        >>> q = metric_queries("churn", "churn-v2", a)[0]
        >>> q["Id"], q["MetricStat"]["Stat"], q["MetricStat"]["Metric"]["Dimensions"][1]
        ('latency', 'p99', {'Name': 'VariantName', 'Value': 'churn-v2'})
    """
    assert alarm.metric is not None
    dims = [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant}]
    period = _period(alarm.period)

    def stat(query_id: str, metric: str, statistic: str) -> dict[str, Any]:
        return {"Id": query_id, "ReturnData": True, "MetricStat": {
            "Metric": {"Namespace": "AWS/SageMaker", "MetricName": metric, "Dimensions": dims},
            "Period": period, "Stat": statistic}}

    if alarm.metric == "error_rate":
        return [stat("errors", "Invocation5XXErrors", "Sum"), stat("invocations", "Invocations", "Sum")]
    if alarm.metric == "invocations":
        return [stat("invocations", "Invocations", "Sum")]
    return [stat("latency", "ModelLatency", alarm.metric.split("_")[1])]


def period_values(alarm: Alarm, results: list[dict[str, Any]], start: float, period: int,
                  count: int) -> list[float | None]:
    """Per-period values in the alarm's neutral unit (oldest first; None where a period has no data).

    Example:
        >>> a = Alarm(name="errors", metric="error_rate", threshold=0.1)
        >>> res = [{"Id": "errors", "Timestamps": [60.0], "Values": [3.0]},
        ...        {"Id": "invocations", "Timestamps": [0.0, 60.0], "Values": [10.0, 10.0]}]
        >>> period_values(a, res, 0.0, 60, 2)
        [0.0, 0.3]
    """
    series: dict[str, list[float | None]] = {}
    for result in results:
        values: list[float | None] = [None] * count
        for ts, value in zip(result.get("Timestamps", []), result.get("Values", []), strict=False):
            stamp = ts.timestamp() if isinstance(ts, datetime) else float(ts)
            index = math.floor((stamp - start) / period + 1e-9)
            if 0 <= index < count and value is not None:
                values[index] = float(value)
        series[str(result.get("Id"))] = values
    empty: list[float | None] = [None] * count
    if alarm.metric == "error_rate":
        errors, calls = series.get("errors", empty), series.get("invocations", empty)
        return [None if c is None else ((e or 0.0) / c if c > 0 else 0.0) for e, c in zip(errors, calls, strict=True)]
    if alarm.metric == "invocations":
        return series.get("invocations", empty)
    return [None if v is None else v / 1_000_000 for v in series.get("latency", empty)]  # microseconds -> seconds


@dataclass
class _Layout:
    """The endpoint's current config: production and shadow variants (config shapes) and current weights."""

    config: str
    production: list[dict[str, Any]]
    shadow: list[dict[str, Any]]
    weights: dict[str, float]
    capture: dict[str, Any] | None = None  # the config's DataCaptureConfig, carried to the next config

    def names(self, which: list[dict[str, Any]]) -> list[str]:
        return [str(v["VariantName"]) for v in which]


class VariantTraffic:
    """A :class:`cloudml.rollout.TrafficBackend` over SageMaker variants (see the module docstring).

    ``client`` is a :class:`~cloudml.adapters.sagemaker.client.SageMakerClient`; ``poll`` is the pause
    between DescribeEndpoint calls while an endpoint settles; ``timeout`` bounds each wait.

    Example:
        >>> from cloudml.rollout import FileStateStore, RolloutController
        >>> traffic = VariantTraffic(adapter.client(), role_arn)  # doctest: +SKIP
        >>> RolloutController(traffic, FileStateStore(Path(".cloudml"))).deploy(d, model_name="churn-v2",
        ...     model={"package_arn": arn, "instance_type": "ml.m5.large"})  # doctest: +SKIP
    """

    def __init__(self, client: Any, role_arn: str, *, poll: float = 15.0, timeout: float = 3600.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.role_arn = role_arn
        self.poll = poll
        self.timeout = timeout
        self.clock = clock

    # -- reading the endpoint ---------------------------------------------------------------------------
    def describe(self, endpoint: str) -> dict[str, Any] | None:
        """DescribeEndpoint, or None when the endpoint does not exist.

        Example:
            >>> VariantTraffic(client, role).describe("churn")["EndpointStatus"]  # doctest: +SKIP
            'InService'
        """
        try:
            return dict(self.client.call("sagemaker", "describe_endpoint", EndpointName=endpoint))
        except (NotFoundError, BackendValidationError) as e:
            if isinstance(e, NotFoundError) or "could not find" in str(e).lower():
                return None
            raise

    def settled(self, endpoint: str, *, failed_ok: bool = False) -> dict[str, Any] | None:
        """DescribeEndpoint once the endpoint is no longer creating or updating (None if it does not exist).

        A ``Failed`` endpoint is a DeploymentError with SageMaker's reason, unless ``failed_ok``.

        Example:
            >>> VariantTraffic(client, role, poll=1).settled("churn")["EndpointStatus"]  # doctest: +SKIP
            'InService'
        """
        deadline = self.clock() + self.timeout
        while True:
            desc = self.describe(endpoint)
            if desc is None or desc["EndpointStatus"] not in SETTLING:
                if desc is not None and desc["EndpointStatus"] == "Failed" and not failed_ok:
                    raise DeploymentError(f"endpoint {endpoint} is Failed: {desc.get('FailureReason') or 'no reason'}",
                                          hint=f"aws sagemaker describe-endpoint --endpoint-name {endpoint}")
                return desc
            if self.clock() > deadline:
                raise DeploymentError(f"endpoint {endpoint} still {desc['EndpointStatus']} after {self.timeout:g}s",
                                      hint="cloudml rollout resume " + endpoint)
            time.sleep(self.poll)

    def _layout(self, desc: dict[str, Any]) -> _Layout:
        config = self.client.call("sagemaker", "describe_endpoint_config",
                                  EndpointConfigName=desc["EndpointConfigName"])
        weights = {str(v["VariantName"]): float(v.get("CurrentWeight", v.get("DesiredWeight", 0.0)))
                   for v in desc.get("ProductionVariants", []) + desc.get("ShadowProductionVariants", [])}

        def shapes(variants: list[dict[str, Any]]) -> list[dict[str, Any]]:
            out = []
            for v in variants:
                shape = {k: v[k] for k in _VARIANT_KEYS if k in v}
                shape["InitialVariantWeight"] = weights.get(v["VariantName"], float(v.get("InitialVariantWeight", 1.0)))
                out.append(shape)
            return out

        return _Layout(str(desc["EndpointConfigName"]), shapes(config.get("ProductionVariants", [])),
                       shapes(config.get("ShadowProductionVariants", [])), weights,
                       dict(config["DataCaptureConfig"]) if config.get("DataCaptureConfig") else None)

    # -- TrafficBackend -----------------------------------------------------------------------------------
    def create_deployment(self, endpoint: str, name: str, deployment: Deployment, model: dict[str, Any]) -> None:
        """Add variant ``name`` serving ``model`` (``package_arn``, ``instance_type``) with no traffic yet.

        A new endpoint is created with the variant alone. On a shadow deployment the variant is a
        shadow variant mirroring the planned share; SageMaker allows one production and one shadow
        variant then. Calling it again for a variant that exists does nothing (a resumed controller).

        Example:
            >>> traffic.create_deployment("churn", "churn-v2", d, {"package_arn": arn,
            ...                           "instance_type": "ml.m5.large"})  # doctest: +SKIP
        """
        desc = self.settled(endpoint)
        layout = self._layout(desc) if desc is not None else None
        if layout is not None and name in layout.names(layout.production + layout.shadow):
            return
        model_name = _unique(f"{endpoint}-{name}")
        from cloudml.adapters.sagemaker.deploy import model_container

        serving = {k: v for k, v in (("image", deployment.serving.image), ("env", dict(deployment.serving.env))) if v}
        container = model_container(serving, model["package_arn"], str(model.get("model_data_url") or ""))
        self.client.call("sagemaker", "create_model", ModelName=model_name, ExecutionRoleArn=self.role_arn,
                         PrimaryContainer=container)
        variant = {"VariantName": name, "ModelName": model_name, "InstanceType": model["instance_type"],
                   "InitialInstanceCount": deployment.instances.count}
        capture = self._capture(deployment)
        if layout is None:
            config = self._create_config(endpoint, [{**variant, "InitialVariantWeight": 1.0}], [], capture)
            self.client.call("sagemaker", "create_endpoint", EndpointName=endpoint, EndpointConfigName=config)
            self._applied(endpoint, config)
            return
        cfg = deployment.strategy.config
        if isinstance(cfg, Shadow):
            if len(layout.production) != 1 or layout.shadow:
                raise DeploymentError(
                    f"a shadow deployment on SageMaker needs exactly one production variant and no shadow variant; "
                    f"{endpoint} has production {layout.names(layout.production)} and shadow "
                    f"{layout.names(layout.shadow)}", hint="finish or roll back the split first")
            total = sum(layout.weights.get(n, 0.0) for n in layout.names(layout.production)) or 1.0
            shadow = [{**variant, "InitialVariantWeight": total * max(1, round(cfg.percent)) / 100}]
            self._reconfigure(endpoint, layout.production, shadow, capture)
        else:
            self._reconfigure(endpoint, [*layout.production, {**variant, "InitialVariantWeight": 0.0}], layout.shadow,
                              capture)

    def _capture(self, deployment: Deployment) -> dict[str, Any] | None:
        """The deployment's DataCaptureConfig (None: no capture), its destination resolved from the settings."""
        from cloudml.adapters.sagemaker.capture import complete_capture, data_capture_config, settings_root

        settings = getattr(self.client, "settings", None)
        return complete_capture(data_capture_config(deployment, settings_root(settings)), deployment.endpoint, settings)

    def is_ready(self, endpoint: str, name: str) -> bool:
        """True when the deployed config has variant ``name`` with running instances.

        Example:
            >>> traffic.is_ready("churn", "churn-v2")  # doctest: +SKIP
            True
        """
        desc = self.describe(endpoint)
        if desc is None or desc["EndpointStatus"] in ("Creating", "Failed", "Deleting", "OutOfService"):
            return False
        for variant in desc.get("ProductionVariants", []) + desc.get("ShadowProductionVariants", []):
            if variant.get("VariantName") == name:
                return int(variant.get("CurrentInstanceCount", 1)) >= 1
        return False

    def set_traffic(self, endpoint: str, weights: dict[str, int], mirror: dict[str, int]) -> None:
        """Production weights (percentages) and mirrored shares; waits until the endpoint is InService again.

        Production variants missing from ``weights`` get 0. A shadow variant given production traffic is
        promoted through a new EndpointConfig; otherwise one UpdateEndpointWeightsAndCapacities call.

        Example:
            >>> traffic.set_traffic("churn", {"churn-v1": 90, "churn-v2": 10}, {})  # doctest: +SKIP
        """
        desc = self.settled(endpoint)
        if desc is None:
            raise NotFoundError(f"endpoint {endpoint} does not exist", backend="sagemaker")
        layout = self._layout(desc)
        production, shadow = layout.names(layout.production), layout.names(layout.shadow)
        gone = {n for n in set(weights) | set(mirror) if not weights.get(n) and not mirror.get(n)}
        unknown = sorted((set(weights) | set(mirror)) - set(production) - set(shadow) - gone)
        if unknown:
            raise DeploymentError(f"endpoint {endpoint} has no variants {unknown}",
                                  hint=f"aws sagemaker describe-endpoint --endpoint-name {endpoint}")
        if any(mirror.get(n, 0) > 0 for n in production):
            raise DeploymentError("SageMaker mirrors traffic only to a shadow variant",
                                  hint="deploy it with strategy shadow")
        total = float(sum(weights.values()) or 100)
        promoted = [n for n in shadow if weights.get(n, 0) > 0]
        if promoted:
            keep = [v for v in layout.shadow if v["VariantName"] not in promoted]
            moved = [v for v in layout.shadow if v["VariantName"] in promoted]
            new_prod = [{**v, "InitialVariantWeight": float(weights.get(v["VariantName"], 0))}
                        for v in layout.production + moved]
            new_shadow = [{**v, "InitialVariantWeight": total * mirror.get(v["VariantName"], 0) / 100} for v in keep]
            self._reconfigure(endpoint, new_prod, new_shadow, layout.capture)
            return
        desired = {n: float(weights.get(n, 0)) for n in production}
        desired.update({n: total * mirror.get(n, 0) / 100 for n in shadow})
        if all(math.isclose(layout.weights.get(n, -1.0), w) for n, w in desired.items()):
            return  # already so (a resumed controller repeating its last step)
        self.client.call("sagemaker", "update_endpoint_weights_and_capacities", EndpointName=endpoint,
                         DesiredWeightsAndCapacities=[{"VariantName": n, "DesiredWeight": w}
                                                      for n, w in desired.items()])
        self.settled(endpoint)

    def alarm_datapoints(self, endpoint: str, name: str, alarm: Alarm) -> list[float | None]:
        """The alarm metric of variant ``name`` for the last ``evaluation_periods`` complete periods.

        Example:
            >>> traffic.alarm_datapoints("churn", "churn-v2", alarm)  # doctest: +SKIP
            [0.0, 0.002, None]
        """
        period, count = _period(alarm.period), alarm.evaluation_periods
        end = math.floor(self.clock() / period) * period
        start = end - period * count
        resp = self.client.call("cloudwatch", "get_metric_data", MetricDataQueries=metric_queries(endpoint, name, alarm),
                                StartTime=datetime.fromtimestamp(start, timezone.utc),
                                EndTime=datetime.fromtimestamp(end, timezone.utc), ScanBy="TimestampAscending")
        return period_values(alarm, list(resp.get("MetricDataResults", [])), start, period, count)

    def existing_alarm_state(self, endpoint: str, name: str, alarm: Alarm) -> AlarmStatus:
        """The state CloudWatch gives an alarm named under ``existing.sagemaker`` (DescribeAlarms).

        CloudWatch evaluates such an alarm on whatever it watches (cloudml does not know its
        dimensions); a missing alarm has ``INSUFFICIENT_DATA``.

        Example:
            >>> a = Alarm(name="ext", existing={"sagemaker": "team-5xx"})
            >>> traffic.existing_alarm_state("churn", "churn-v2", a).state  # doctest: +SKIP
            'OK'
        """
        cloud_name = alarm.existing.get("sagemaker", "")
        resp = self.client.call("cloudwatch", "describe_alarms", AlarmNames=[cloud_name]) if cloud_name else {}
        found = list(resp.get("MetricAlarms", [])) + list(resp.get("CompositeAlarms", []))
        if not found:
            return AlarmStatus(alarm.name, "INSUFFICIENT_DATA", (), 0, None, f"no CloudWatch alarm named {cloud_name!r}")
        value = str(found[0].get("StateValue", "INSUFFICIENT_DATA"))
        state: AlarmState = "OK" if value == "OK" else "ALARM" if value == "ALARM" else "INSUFFICIENT_DATA"
        return AlarmStatus(alarm.name, state, (), 0, None,
                           f"CloudWatch alarm {cloud_name}: {found[0].get('StateReason') or value}")

    def delete_deployment(self, endpoint: str, name: str) -> None:
        """Remove variant ``name`` with a config without it; it must take no production traffic.

        The last variant of an endpoint that never served (a first deployment that failed) goes with
        the endpoint itself (DeleteEndpoint).

        Example:
            >>> traffic.delete_deployment("churn", "churn-v1")  # doctest: +SKIP
        """
        desc = self.settled(endpoint, failed_ok=True)
        layout = self._layout(desc) if desc is not None else None
        if desc is None or layout is None or name not in layout.names(layout.production + layout.shadow):
            raise NotFoundError(f"endpoint {endpoint} has no variant {name}", backend="sagemaker")
        production = [v for v in layout.production if v["VariantName"] != name]
        if not production and desc["EndpointStatus"] == "Failed":
            self.client.call("sagemaker", "delete_endpoint", EndpointName=endpoint)
            return
        if name in layout.names(layout.production) and layout.weights.get(name, 0.0) > 0:
            raise DeploymentError(f"variant {name} still takes traffic on {endpoint}; shift it away first")
        if not production:
            raise DeploymentError(f"variant {name} is the last production variant of {endpoint}")
        from cloudml.adapters.sagemaker import autoscale

        with contextlib.suppress(PermissionDeniedError):  # without the permissions, SageMaker says if it matters
            autoscale.remove(self.client, endpoint, name)  # a retired variant stops being a scalable target first
        self._reconfigure(endpoint, production, [v for v in layout.shadow if v["VariantName"] != name], layout.capture)

    # -- changing the config ------------------------------------------------------------------------------
    def _create_config(self, endpoint: str, production: list[dict[str, Any]], shadow: list[dict[str, Any]],
                       capture: dict[str, Any] | None = None) -> str:
        name = _unique(endpoint)
        self.client.call("sagemaker", "create_endpoint_config", EndpointConfigName=name, ProductionVariants=production,
                         **({"ShadowProductionVariants": shadow} if shadow else {}),
                         **({"DataCaptureConfig": capture} if capture else {}))
        return name

    def _reconfigure(self, endpoint: str, production: list[dict[str, Any]], shadow: list[dict[str, Any]],
                     capture: dict[str, Any] | None = None) -> None:
        """UpdateEndpoint to a fresh config (with ``capture`` as its DataCaptureConfig), and wait until applied."""
        config = self._create_config(endpoint, production, shadow, capture)
        self.client.call("sagemaker", "update_endpoint", EndpointName=endpoint, EndpointConfigName=config)
        self._applied(endpoint, config)

    def _applied(self, endpoint: str, config: str) -> None:
        """Wait for the endpoint to settle; a config SageMaker did not apply (no capacity, a model that does
        not start: it returns to the old config) is a DeploymentError with SageMaker's reason."""
        desc = self.settled(endpoint)
        if desc is None or desc.get("EndpointConfigName") != config:
            reason = (desc or {}).get("FailureReason") or "no reason given"
            raise DeploymentError(f"SageMaker did not apply endpoint config {config} to {endpoint}: {reason}",
                                  hint=f"cloudml rollout resume {endpoint} (tries again) or cloudml rollback {endpoint}")


def adopt(traffic: VariantTraffic, store: Any, endpoint: str) -> str | None:
    """Align the controller's saved state with the endpoint before a rollout; returns the live variant.

    An endpoint created or changed outside the controller (native guardrails, the console) is adopted
    when exactly one production variant takes traffic: the controller then treats it as blue. An
    endpoint split between several variants is refused (finish or roll back the split first); a
    deleted endpoint makes the next rollout a first deployment.

    Example:
        >>> adopt(VariantTraffic(client, role), FileStateStore(Path(".cloudml")), "churn")  # doctest: +SKIP
        'AllTraffic'
    """
    state = store.load(endpoint)
    if state and state.get("status") in ("in_progress", "rolling_back"):
        return None  # the controller refuses a new rollout and says how to resume
    desc = traffic.settled(endpoint)
    live = [str(v["VariantName"]) for v in (desc or {}).get("ProductionVariants", [])
            if float(v.get("CurrentWeight", 0.0)) > 0]
    known = (state or {}).get("live")
    if (known is not None and [known] == live) or (desc is None and known is None):
        return known
    if desc is not None and len(live) != 1:
        raise DeploymentError(f"endpoint {endpoint} sends traffic to {len(live)} variants {live}; a rollout starts "
                              "from one live variant", hint="set the weights back to one variant first")
    history = list((state or {}).get("history", []))[-200:]
    history.append({"at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "t": time.time(),
                    "event": "adopted" if live else "endpoint gone", **({"deployment": live[0]} if live else {})})
    store.save(endpoint, {"endpoint": endpoint, "status": "succeeded", "live": live[0] if live else None,
                          "history": history, "outcome": {"outcome": "succeeded"}})
    return live[0] if live else None


@contextlib.contextmanager
def endpoint_lock(root: Path, endpoint: str) -> Iterator[None]:
    """One controller per endpoint and state folder: a second one gets a DeploymentError at once.

    Example:
        >>> import tempfile
        >>> with endpoint_lock(Path(tempfile.mkdtemp()), "churn"):
        ...     pass
    """
    folder = root / "endpoints" / endpoint
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DeploymentError(f"another controller is working on endpoint {endpoint}",
                                  hint="wait for it, or stop it and run `cloudml rollout resume`") from None
        yield
