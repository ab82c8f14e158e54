"""The Deployment document: which model goes behind which endpoint, how traffic moves, what rolls it back.

Strategies: ``all_at_once``, ``blue_green`` (shift after readiness, then bake), ``canary`` (percent,
bake, then the rest and bake again), ``linear`` (step percent every interval), ``shadow`` (mirror a
percentage, compare, then promote or discard).

Alarm thresholds are neutral: ``error_rate`` is a fraction (``0.01`` or ``"1%"``), latency metrics
take a duration (``"250ms"``), ``invocations`` a count per period.

Example:
    >>> from cloudml.spec.deployment import Deployment
    >>> d = Deployment.model_validate({"apiVersion": "cloudml/v1", "kind": "Deployment", "endpoint": "churn",
    ...     "model": {"group": "churn"}, "strategy": {"canary": {"percent": 10, "bake": "10m"}},
    ...     "alarms": [{"name": "slow", "metric": "latency_p99", "threshold": "250ms"}]})
    >>> d.strategy.name, d.strategy.canary.bake, d.alarms[0].threshold
    ('canary', 600.0, 0.25)
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_serializer, model_validator

from cloudml.spec.types import API_VERSION, Duration, SpecModel, format_duration, parse_duration

__all__ = [
    "ABTest",
    "Alarm",
    "AllAtOnce",
    "Autoscale",
    "BlueGreen",
    "Canary",
    "DataCapture",
    "Deployment",
    "Instances",
    "Linear",
    "ModelRef",
    "Rollback",
    "Serving",
    "Shadow",
    "Strategy",
]

INSTANCE_SIZES = ("cpu-small", "cpu-medium", "cpu-large", "gpu-small", "gpu-large")
AlarmMetric = Literal["error_rate", "latency_p50", "latency_p90", "latency_p99", "invocations"]
STRATEGY_NAMES = ("ab_test", "all_at_once", "blue_green", "canary", "linear", "shadow")


class ModelRef(SpecModel):
    """A model from the registry: a group plus a version number, ``latest-approved`` or ``latest``.

    Example:
        >>> ModelRef(group="churn").version, ModelRef(group="churn", version=3).version
        ('latest-approved', 3)
    """

    group: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}$")
    version: int | Literal["latest-approved", "latest"] = "latest-approved"

    @field_validator("version")
    @classmethod
    def _positive(cls, v: int | str) -> int | str:
        if isinstance(v, int) and v < 1:
            raise ValueError("model versions start at 1")
        return v


class Autoscale(SpecModel):
    """Autoscaling bounds and the per-instance target that drives them."""

    min: int = Field(ge=0)
    max: int = Field(ge=1)
    target_invocations_per_instance: int | None = Field(None, ge=1)
    target_cpu_percent: float | None = Field(None, gt=0, le=100)

    @model_validator(mode="after")
    def _bounds(self) -> Autoscale:
        if self.min > self.max:
            raise ValueError(f"autoscale min {self.min} is greater than max {self.max}")
        return self


class Instances(SpecModel):
    """Instance size (neutral, e.g. ``cpu-small``) and count, with per-cloud type overrides."""

    type: str = "cpu-small"
    count: int = Field(1, ge=1, le=100)
    autoscale: Autoscale | None = None
    instance_type: dict[str, str] = Field(default_factory=dict, description="per-adapter override")

    @field_validator("type")
    @classmethod
    def _size(cls, v: str) -> str:
        if v not in INSTANCE_SIZES:
            raise ValueError(
                f"'{v}' is not a neutral size ({', '.join(INSTANCE_SIZES)}); put a cloud's own type "
                "under instance_type: {sagemaker: ml.m5.large}"
            )
        return v

    @model_validator(mode="after")
    def _count_in_bounds(self) -> Instances:
        a = self.autoscale
        if a is not None and not a.min <= self.count <= a.max:
            raise ValueError(f"count {self.count} is outside autoscale bounds {a.min}..{a.max}")
        return self


class AllAtOnce(SpecModel):
    """Shift all traffic once the new deployment is ready; watch the alarms for ``bake``."""

    bake: Duration = 0.0


class BlueGreen(SpecModel):
    """Shift all traffic to green after readiness, then bake with alarms armed."""

    bake: Duration = 300.0


class Canary(SpecModel):
    """Send ``percent`` to green, bake, then the rest, then bake again (``final_bake``, default ``bake``)."""

    percent: float = Field(gt=0, lt=100)
    bake: Duration = 600.0
    final_bake: Duration | None = None


class Linear(SpecModel):
    """Move ``step_percent`` more to green every ``interval``, baking after each step."""

    step_percent: float = Field(gt=0, lt=100)
    interval: Duration = 300.0


class Shadow(SpecModel):
    """Mirror ``percent`` of requests to green (clients never see its answers) for ``duration``.

    Then promote green when ``promote`` is true and no alarm fired, or discard it.
    """

    percent: float = Field(gt=0, le=100)
    duration: Duration = 600.0
    promote: bool = False


class ABTest(SpecModel):
    """Split live traffic at a fixed ``percent`` to green (B) for ``duration``; blue (A) keeps the rest.

    The alarms guard B the whole time. When the test ends, ``conclude`` decides: ``rollback`` (the
    default) keeps A and removes B, ``promote`` moves everything to B. Decide earlier with
    ``cloudml rollout promote`` or ``cloudml rollback`` once the analysis (``cloudml.abtest``) says who won.

    Example:
        >>> ABTest(percent=50, duration="1h").conclude
        'rollback'
    """

    percent: float = Field(50.0, gt=0, lt=100)
    duration: Duration = 3600.0
    conclude: Literal["rollback", "promote"] = "rollback"


class Strategy(SpecModel):
    """Exactly one strategy. Shorthand: ``strategy: blue_green`` uses that strategy's defaults.

    Example:
        >>> Strategy.model_validate("blue_green").name
        'blue_green'
    """

    ab_test: ABTest | None = None
    all_at_once: AllAtOnce | None = None
    blue_green: BlueGreen | None = None
    canary: Canary | None = None
    linear: Linear | None = None
    shadow: Shadow | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, v: Any) -> Any:
        if isinstance(v, str):
            if v not in STRATEGY_NAMES:
                raise ValueError(f"unknown strategy '{v}'; one of {', '.join(STRATEGY_NAMES)}")
            return {v: {}}
        return v

    @model_validator(mode="after")
    def _exactly_one(self) -> Strategy:
        chosen = [n for n in STRATEGY_NAMES if getattr(self, n) is not None]
        if len(chosen) != 1:
            raise ValueError(f"choose exactly one strategy of {', '.join(STRATEGY_NAMES)} (found {len(chosen)})")
        return self

    @property
    def name(self) -> str:
        """The chosen strategy's name."""
        return next(n for n in STRATEGY_NAMES if getattr(self, n) is not None)

    @property
    def config(self) -> ABTest | AllAtOnce | BlueGreen | Canary | Linear | Shadow:
        """The chosen strategy's settings."""
        value: ABTest | AllAtOnce | BlueGreen | Canary | Linear | Shadow = getattr(self, self.name)
        return value

    @model_serializer(mode="wrap")
    def _only_chosen(self, handler: Any) -> Any:
        out: dict[str, Any] = handler(self)
        return {k: v for k, v in out.items() if v is not None}


class Alarm(SpecModel):
    """A neutral alarm on one deployment's metrics, with CloudWatch's evaluation semantics.

    The alarm goes to ALARM when ``datapoints_to_alarm`` of the last ``evaluation_periods`` periods
    breach ``threshold``. ``existing`` names alarms that already exist in a cloud instead.

    Example:
        >>> a = Alarm(name="errors", metric="error_rate", threshold="1%", evaluation_periods=3, datapoints_to_alarm=2)
        >>> a.threshold, a.comparison
        (0.01, 'gt')
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
    metric: AlarmMetric | None = None
    threshold: float | None = None
    comparison: Literal["gt", "gte", "lt", "lte"] = "gt"
    period: Duration = 60.0
    evaluation_periods: int = Field(1, ge=1, le=100)
    datapoints_to_alarm: int | None = Field(None, ge=1)
    treat_missing_data: Literal["missing", "not_breaching", "breaching", "ignore"] = "missing"
    existing: dict[str, str] = Field(default_factory=dict, description="adapter: name/id of an existing alarm")

    @model_validator(mode="before")
    @classmethod
    def _threshold_units(cls, v: Any) -> Any:
        if not isinstance(v, dict) or v.get("threshold") is None:
            return v
        metric, raw = v.get("metric"), v["threshold"]
        if isinstance(raw, bool):
            raise ValueError("threshold must be a number, not a boolean")
        if isinstance(metric, str) and metric.startswith("latency"):
            if not isinstance(raw, str):
                raise ValueError(f"latency threshold needs a unit: write '{raw}ms' or '{raw}s'")
            return {**v, "threshold": parse_duration(raw)}
        if metric == "error_rate" and isinstance(raw, str) and raw.strip().endswith("%"):
            return {**v, "threshold": float(raw.strip()[:-1]) / 100}
        return v

    @model_validator(mode="after")
    def _complete(self) -> Alarm:
        if self.existing:
            if self.metric is not None or self.threshold is not None:
                raise ValueError("an alarm is either neutral (metric + threshold) or 'existing', not both")
            return self
        if self.metric is None or self.threshold is None:
            raise ValueError("a neutral alarm needs 'metric' and 'threshold' (or name cloud alarms under 'existing')")
        if self.metric == "error_rate" and not 0 <= self.threshold <= 1:
            raise ValueError("error_rate threshold is a fraction between 0 and 1 (or a percentage like '1%')")
        if self.threshold < 0:
            raise ValueError("threshold cannot be negative")
        if self.datapoints_to_alarm is not None and self.datapoints_to_alarm > self.evaluation_periods:
            raise ValueError("datapoints_to_alarm cannot exceed evaluation_periods")
        return self

    @model_serializer(mode="wrap")
    def _units_out(self, handler: Any) -> Any:
        out: dict[str, Any] = handler(self)
        if self.metric and self.metric.startswith("latency") and self.threshold is not None:
            out["threshold"] = format_duration(self.threshold)
        return out

    @property
    def required_datapoints(self) -> int:
        """``datapoints_to_alarm``, defaulting to ``evaluation_periods`` as in CloudWatch."""
        return self.datapoints_to_alarm or self.evaluation_periods


class Rollback(SpecModel):
    """Automatic rollback when an alarm fires; the old deployment is kept ``termination_wait``."""

    automatic: bool = True
    termination_wait: Duration = 0.0


class DataCapture(SpecModel):
    """Record a share of requests and responses, e.g. for drift detection."""

    enabled: bool = True
    percent: float = Field(100.0, gt=0, le=100)
    destination: str | None = None


class Serving(SpecModel):
    """How to serve the model: a custom predictor (``module:Class``), image and environment."""

    predictor: str | None = Field(None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    image: str | None = None
    env: dict[str, str] = Field(default_factory=dict)


class Deployment(SpecModel):
    """A model deployment behind an endpoint, with a rollout strategy, alarms and rollback."""

    api_version: Literal["cloudml/v1"] = Field(API_VERSION, alias="apiVersion")
    kind: Literal["Deployment"] = "Deployment"
    endpoint: str = Field(pattern=r"^[a-z][a-z0-9-]{1,31}$", description="3-32 chars: Azure's limit is the tightest")
    model: ModelRef
    instances: Instances = Field(default_factory=Instances)
    strategy: Strategy = Field(default_factory=lambda: Strategy(blue_green=BlueGreen()))
    alarms: list[Alarm] = Field(default_factory=list)
    rollback: Rollback = Field(default_factory=Rollback)
    max_duration: Duration = Field(3600.0, description="give up and roll back after this long")
    capture: DataCapture | None = None
    serving: Serving = Field(default_factory=Serving)
    backend_options: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Deployment:
        names = [a.name for a in self.alarms]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate alarm names: {', '.join(dupes)}")
        return self
