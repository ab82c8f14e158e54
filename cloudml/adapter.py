"""The one interface every backend implements, and capabilities declared as data.

An adapter compiles specs (pure: no SDK, no network), runs pipelines, keeps a model registry and
rolls out deployments. What it supports is a :class:`Capabilities` table that docs, the CLI
(``cloudml backends``), the compile-time check and the conformance tests all read.

Example:
    >>> import cloudml
    >>> local = cloudml.get_adapter("local")
    >>> local.capabilities.level("condition")
    'supported'
    >>> sorted(cloudml.registry.adapter_names())
    ['azureml', 'local', 'sagemaker', 'vertex']
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from cloudml.errors import AdapterNotInstalledError, UnsupportedFeatureError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from cloudml.spec.deployment import Deployment
    from cloudml.spec.pipeline import Pipeline

__all__ = [
    "FEATURES",
    "Adapter",
    "Capabilities",
    "Compiled",
    "FeatureUse",
    "ModelVersion",
    "RolloutOutcome",
    "RolloutResult",
    "RunState",
    "capabilities_markdown",
    "deployment_features",
    "pipeline_features",
]

Level = Literal["supported", "notimpl", "notyet", "never"]

FEATURES: dict[str, str] = {
    "step.command": "a step that runs a command",
    "step.python": "a step that runs a Python function through cloudml.runtime",
    "step.image": "a step with an explicit container image",
    "step.framework": "a framework shortcut resolved to a prebuilt image",
    "step.code": "a code directory shipped with the step",
    "step.code_paths": "more code directories the step imports from, shipped with it",
    "step.env": "environment variables",
    "step.secrets": "secrets by reference",
    "step.training": "a step of kind 'training'",
    "step.resources": "cpu / memory requests",
    "step.gpu": "GPUs",
    "step.instance_count": "more than one instance for a step",
    "step.retry": "retries of a failed step",
    "step.timeout": "a per-step timeout",
    "step.cache": "step caching on/off",
    "step.cache_expiry": "an expiry on cached results",
    "step.depends_on": "explicit ordering edges",
    "step.tuning": "hyperparameter tuning: trials over a search space, the best one kept",
    "input.external": "external URIs as inputs",
    "input.parameter": "a parameter holding an input URI",
    "condition": "condition steps on metrics",
    "condition.or": "'or' / 'not' inside a condition",
    "fail": "fail steps",
    "register_model": "model registration",
    "schedule": "a cron schedule",
    "deploy.ab_test": "A/B tests: a fixed live split for a set time, then conclude",
    "deploy.all_at_once": "all-at-once deployments",
    "deploy.blue_green": "blue/green deployments with a bake",
    "deploy.canary": "canary deployments",
    "deploy.linear": "linear traffic shifting",
    "deploy.shadow": "shadow (mirrored) deployments",
    "deploy.alarm": "neutral alarms evaluated during bakes",
    "deploy.existing_alarm": "alarms that already exist in the cloud",
    "deploy.autoscale": "autoscaling bounds",
    "deploy.capture": "request/response capture",
    "deploy.serving_image": "serving.image: the container that serves the model",
    "deploy.serving_env": "serving.env: environment variables of the serving container",
    "deploy.predictor": "serving.predictor: a cloudml predictor class (module:Class)",
    "deploy.auto_rollback": "automatic rollback on alarm",
}


@dataclass(frozen=True)
class FeatureUse:
    """One use of a feature by a spec: which feature, where (step) and a detail for messages."""

    feature: str
    step: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class Capabilities:
    """Feature -> support level (``supported`` when absent from ``gaps``), with reasons.

    Example:
        >>> c = Capabilities("x", gaps={"step.timeout": ("notyet", "the cloud has no per-task timeout")})
        >>> c.level("step.timeout"), c.level("fail"), c.reason("step.timeout")
        ('notyet', 'supported', 'the cloud has no per-task timeout')
    """

    adapter: str
    gaps: Mapping[str, tuple[Level, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.gaps) - set(FEATURES)
        if unknown:
            raise ValueError(f"unknown features in {self.adapter} capabilities: {sorted(unknown)}")

    def level(self, feature: str) -> Level:
        """``supported``, ``notimpl`` (not done yet), ``notyet`` (the cloud lacks it) or ``never``."""
        return self.gaps[feature][0] if feature in self.gaps else "supported"

    def reason(self, feature: str) -> str:
        """Why a feature is a gap ('' when supported)."""
        return self.gaps[feature][1] if feature in self.gaps else ""

    def supports(self, feature: str) -> bool:
        """True when the feature compiles and runs on this adapter."""
        return feature not in self.gaps

    def as_table(self) -> list[dict[str, str]]:
        """One row per feature: feature, description, level, reason (what docs render)."""
        return [
            {"feature": f, "description": d, "level": self.level(f), "reason": self.reason(f)}
            for f, d in FEATURES.items()
        ]

    @classmethod
    def all_notimpl(cls, adapter: str, reason: str) -> Capabilities:
        """Every feature marked ``notimpl``: an adapter registered ahead of its implementation."""
        return cls(adapter, {f: ("notimpl", reason) for f in FEATURES})


_LEVEL_TEXT = {"supported": "✓", "notimpl": "not built yet", "notyet": "cloud lacks it", "never": "by design"}


def capabilities_markdown(caps: list[Capabilities]) -> str:
    """A Markdown matrix of features by adapter (what the docs embed; ``cloudml backends --markdown``).

    Example:
        >>> md = capabilities_markdown([Capabilities("a"), Capabilities("b", {"fail": ("never", "no")})])
        >>> print(md.splitlines()[0]); print([ln for ln in md.splitlines() if "`fail`" in ln][0])
        | feature | what it is | a | b |
        | `fail` | fail steps | ✓ | by design: no |
    """
    head = "| feature | what it is | " + " | ".join(c.adapter for c in caps) + " |"
    rule = "|---|---|" + "---|" * len(caps)
    rows = [head, rule]
    for feature, what in FEATURES.items():
        cells = []
        for c in caps:
            level = c.level(feature)
            detail = f": {c.reason(feature)}" if level in ("notyet", "never") else ""
            cells.append(_LEVEL_TEXT[level] + detail)
        rows.append(f"| `{feature}` | {what} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def pipeline_features(p: Pipeline) -> list[FeatureUse]:
    """Every feature a pipeline uses, with the step that uses it.

    Example:
        >>> import cloudml
        >>> b = cloudml.PipelineBuilder("p"); _ = b.add_step("a", command="echo", timeout="1m")
        >>> p = b.build()
        >>> [f.feature for f in pipeline_features(p)]
        ['step.command', 'step.timeout']
    """
    from cloudml.spec.conditions import And, Compare
    from cloudml.spec.refs import ExternalRef, ParamSourceRef
    from cloudml.spec.steps import ConditionStep, FailStep, RegisterModelStep, TaskStep

    uses: list[FeatureUse] = []
    if p.schedule is not None:
        uses.append(FeatureUse("schedule", None, p.schedule.cron))
    for raw in p.steps:
        n = raw.name
        if raw.depends_on:
            uses.append(FeatureUse("step.depends_on", n))
        if isinstance(raw, ConditionStep):
            uses.append(FeatureUse("condition", n, str(raw.condition)))
            if not isinstance(raw.condition, (Compare, And)) or any(
                not isinstance(t, Compare) for t in getattr(raw.condition, "terms", ())
            ):
                uses.append(FeatureUse("condition.or", n, str(raw.condition)))
            continue
        if isinstance(raw, FailStep):
            uses.append(FeatureUse("fail", n))
            continue
        if isinstance(raw, RegisterModelStep):
            uses.append(FeatureUse("register_model", n, raw.register_model.group))
            continue
        assert isinstance(raw, TaskStep)
        s = p.effective(raw)
        uses.append(FeatureUse("step.python" if s.python else "step.command", n))
        checks: list[tuple[bool, str, str]] = [
            (s.image is not None, "step.image", s.image or ""),
            (s.framework is not None, "step.framework", s.framework or ""),
            (s.code is not None, "step.code", s.code or ""),
            (bool(s.code_paths), "step.code_paths", ", ".join(s.code_paths or ())),
            (bool(s.env), "step.env", ""),
            (bool(s.secrets), "step.secrets", ""),
            (s.kind == "training", "step.training", ""),
            (s.resources is not None and (s.resources.cpu is not None or s.resources.memory is not None),
             "step.resources", ""),
            (s.resources is not None and s.resources.gpu > 0, "step.gpu", ""),
            (s.resources is not None and s.resources.instance_count > 1, "step.instance_count", ""),
            (s.retry is not None and s.retry.attempts > 1, "step.retry", ""),
            (s.timeout is not None, "step.timeout", ""),
            (s.cache is not None, "step.cache", ""),
            (s.cache is not None and s.cache.expire is not None, "step.cache_expiry", ""),
            (s.tuning is not None, "step.tuning", s.tuning.strategy if s.tuning else ""),
        ]
        uses += [FeatureUse(f, n, d) for used, f, d in checks if used]
        for spec in s.inputs.values():
            if isinstance(spec.ref, ExternalRef):
                uses.append(FeatureUse("input.external", n, spec.from_))
            elif isinstance(spec.ref, ParamSourceRef):
                uses.append(FeatureUse("input.parameter", n, spec.from_))
    return uses


def deployment_features(d: Deployment) -> list[FeatureUse]:
    """Every feature a deployment uses.

    Example:
        >>> from cloudml.spec.deployment import Deployment
        >>> d = Deployment(endpoint="ep", model={"group": "g"}, strategy="all_at_once")
        >>> [f.feature for f in deployment_features(d)]
        ['deploy.all_at_once', 'deploy.auto_rollback']
    """
    uses = [FeatureUse(f"deploy.{d.strategy.name}", None, d.endpoint)]
    for a in d.alarms:
        uses.append(FeatureUse("deploy.existing_alarm" if a.existing else "deploy.alarm", None, a.name))
    if d.instances.autoscale is not None:
        uses.append(FeatureUse("deploy.autoscale"))
    if d.capture is not None and d.capture.enabled:
        uses.append(FeatureUse("deploy.capture"))
    if d.serving.image:
        uses.append(FeatureUse("deploy.serving_image"))
    if d.serving.env:
        uses.append(FeatureUse("deploy.serving_env"))
    if d.serving.predictor:
        uses.append(FeatureUse("deploy.predictor"))
    if d.rollback.automatic:
        uses.append(FeatureUse("deploy.auto_rollback"))
    return uses


@dataclass
class Compiled:
    """What a compiler produced (pipeline or deployment): the target's native document and its format.

    Example:
        >>> c = Compiled("local", "p", {"steps": []})
        >>> c.dumps()
        '{\\n  "steps": []\\n}\\n'
    """

    target: str
    name: str
    document: Any
    format: Literal["json", "yaml"] = "json"

    def dumps(self) -> str:
        """The document as text, stable byte for byte for the same input."""
        if self.format == "yaml":
            import yaml

            return str(yaml.safe_dump(self.document, sort_keys=False, allow_unicode=True))
        return json.dumps(self.document, indent=2, sort_keys=False, ensure_ascii=False) + "\n"


class RunState(str, Enum):
    """Neutral run and step states every adapter maps its own onto."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    CACHED = "cached"

    @property
    def terminal(self) -> bool:
        """True once the run or step will not change state again."""
        return self not in (RunState.PENDING, RunState.RUNNING)


@dataclass
class ModelVersion:
    """One registered model version, the same shape on every backend."""

    group: str
    version: int
    uri: str
    approval: Literal["pending", "approved", "rejected"] = "pending"
    metrics: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    created_at: datetime | None = None
    tags: dict[str, str] = field(default_factory=dict)


class RolloutOutcome(str, Enum):
    """How a rollout ended."""

    SUCCEEDED = "succeeded"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"


@dataclass
class RolloutResult:
    """The typed result of a rollout: succeeded, rolled back (which alarm, when, value) or failed (why)."""

    endpoint: str
    outcome: RolloutOutcome
    alarm: str | None = None
    metric_value: float | None = None
    at: datetime | None = None
    reason: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)


class Adapter(ABC):
    """Base of every backend. Subclasses set the class attributes and implement what they support.

    Operations an adapter does not implement raise :class:`UnsupportedFeatureError` naming the
    adapter and the operation, never a bare ``NotImplementedError``.
    """

    name: ClassVar[str]
    extra: ClassVar[str | None] = None
    requires: ClassVar[tuple[str, ...]] = ()  # distribution names, e.g. "boto3"
    capabilities: ClassVar[Capabilities]
    options_model: ClassVar[type[BaseModel] | None] = None
    description: ClassVar[str] = ""

    def __init__(self, settings: Any = None) -> None:
        self.settings = settings
        self.base_dir = Path(".")  # where a spec's relative paths (code folders) start

    # -- installation -----------------------------------------------------------------------
    @classmethod
    def missing_requirements(cls) -> list[str]:
        """Distributions this adapter needs that are not installed (checked without importing anything)."""
        import importlib.metadata

        missing: list[str] = []
        for dist in cls.requires:
            try:
                importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                missing.append(dist)
        return missing

    @classmethod
    def require(cls) -> None:
        """Raise :class:`AdapterNotInstalledError` (with the pip command) when an SDK is missing."""
        missing = cls.missing_requirements()
        if missing:
            raise AdapterNotInstalledError(cls.name, cls.extra or cls.name, missing)

    # -- compile ----------------------------------------------------------------------------
    def check_supported(self, uses: Iterable[FeatureUse]) -> None:
        """Raise :class:`UnsupportedFeatureError` for the first feature this adapter cannot express."""
        for use in uses:
            if not self.capabilities.supports(use.feature):
                raise UnsupportedFeatureError(self.name, use.step, use.feature, self.capabilities.reason(use.feature),
                                              hint="`cloudml backends --features` shows what each backend supports")

    @abstractmethod
    def compile(self, pipeline: Pipeline) -> Compiled:
        """Translate a validated pipeline into this target's native document. Pure: no network."""

    def compile_deployment(self, deployment: Deployment) -> Compiled:
        """Translate a deployment into this target's rollout plan. Pure: no network.

        The default checks capabilities and returns the neutral rollout plan the core
        controller executes; adapters with native rollouts (SageMaker) override it.
        """
        from cloudml.rollout_plan import plan_rollout

        self.check_supported(deployment_features(deployment))
        return Compiled(self.name, deployment.endpoint, plan_rollout(deployment), "json")

    def validate_compiled(self, compiled: Compiled) -> list[str]:
        """Check a compiled document with the target's own validator; returns problems (empty = fine)."""
        return []

    # -- everything below talks to the backend ------------------------------------------------
    def _unsupported(self, operation: str) -> UnsupportedFeatureError:
        return UnsupportedFeatureError(self.name, None, operation, f"the {self.name} adapter does not implement "
                                       f"'{operation}' yet", hint="run `cloudml backends` to see what each supports")

    def run(self, pipeline: Pipeline, parameters: dict[str, Any] | None = None, **options: Any) -> Any:
        """Submit a run and return a Run handle (``wait()``, ``status``, ``steps``, ``logs``...)."""
        raise self._unsupported("run")

    def get_run(self, run_id: str) -> Any:
        """A handle on an existing run."""
        raise self._unsupported("get_run")

    def register_model(self, group: str, uri: str, **info: Any) -> ModelVersion:
        """Register a model version."""
        raise self._unsupported("register_model")

    def list_models(self, group: str | None = None) -> list[ModelVersion]:
        """Registered versions, newest first."""
        raise self._unsupported("list_models")

    def set_approval(self, group: str, version: int, approval: str) -> ModelVersion:
        """Approve or reject a model version."""
        raise self._unsupported("set_approval")

    def latest_approved(self, group: str) -> ModelVersion:
        """The newest approved version of a group."""
        raise self._unsupported("latest_approved")

    def deploy(self, deployment: Deployment, **options: Any) -> RolloutResult:
        """Roll out a deployment with its strategy, alarms and rollback."""
        raise self._unsupported("deploy")

    def rollback(self, endpoint: str) -> RolloutResult:
        """Return all traffic to the previous deployment."""
        raise self._unsupported("rollback")

    def resume_rollout(self, endpoint: str, **options: Any) -> RolloutResult:
        """Continue an interrupted rollout; it finishes or rolls back."""
        raise self._unsupported("resume_rollout")

    def promote(self, endpoint: str) -> RolloutResult:
        """Skip the remaining bakes of a rollout in progress."""
        raise self._unsupported("promote")

    def endpoint_status(self, endpoint: str) -> dict[str, Any]:
        """Deployments, traffic shares and alarm states of an endpoint."""
        raise self._unsupported("endpoint_status")

    def rollout_state(self, endpoint: str) -> dict[str, Any] | None:
        """The rollout controller's saved state of the endpoint's latest rollout, or None when there was none.

        It holds ``status``, ``blue``/``green``/``live``, ``weights``, ``phases`` and ``history`` (every
        transition with its time): e.g. when an A/B split started and ended. Backends whose rollouts the
        core controller drives (every built-in one) expose ``controller()``; others raise.

        Example:
            >>> import cloudml, tempfile
            >>> cloudml.get_adapter("local", root=tempfile.mkdtemp()).rollout_state("churn") is None
            True
        """
        controller = getattr(self, "controller", None)
        if controller is None:
            raise self._unsupported("rollout_state")
        state = controller().store.load(endpoint)
        return dict(state) if state is not None else None

    def invoke(self, endpoint: str, instances: list[Any], **options: Any) -> dict[str, Any]:
        """Send ``{"instances": [...]}`` to an endpoint."""
        raise self._unsupported("invoke")

    def iam_policy(self) -> dict[str, Any]:
        """The least-privilege cloud policy for this adapter's own calls."""
        raise self._unsupported("iam_policy")
