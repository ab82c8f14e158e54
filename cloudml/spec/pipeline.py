"""The Pipeline document: typed parameters, step defaults, steps and an optional schedule.

Example:
    >>> from cloudml.spec.pipeline import Pipeline
    >>> p = Pipeline.model_validate({
    ...     "apiVersion": "cloudml/v1", "kind": "Pipeline", "name": "demo",
    ...     "parameters": {"lr": {"type": "float", "default": 0.1, "min": 0, "max": 1}},
    ...     "steps": [{"name": "train", "command": "python train.py --lr {{params.lr}}"}]})
    >>> p.step("train").kind, p.parameters["lr"].default
    ('processing', 0.1)
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from cloudml.spec.steps import (
    Cache,
    ConditionStep,
    FailStep,
    RegisterModelStep,
    Resources,
    Retry,
    Step,
    TaskStep,
    check_code_paths,
    check_framework,
)
from cloudml.spec.types import API_VERSION, Duration, Identifier, SpecModel

__all__ = ["Parameter", "Pipeline", "Schedule", "StepDefaults", "coerce_param"]

ParamType = Literal["string", "int", "float", "bool"]
_PY_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "int": (int,), "float": (float, int), "bool": (bool,)}
_CRON_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*$|^[A-Za-z]{3}(-[A-Za-z]{3})?$")
_CRON_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]


def coerce_param(ptype: str, value: Any) -> Any:
    """Coerce a value (often a CLI string) to a parameter type; raise ValueError when it does not fit.

    Example:
        >>> coerce_param("int", "200"), coerce_param("bool", "true"), coerce_param("float", 1)
        (200, True, 1.0)
    """
    if ptype == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ValueError(f"{value!r} is not a bool (true/false)")
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is a bool, expected {ptype}")
    if ptype == "int":
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and re.fullmatch(r"[-+]?\d+", value.strip()):
            return int(value)
        raise ValueError(f"{value!r} is not an int")
    if ptype == "float":
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"{value!r} is not a float") from None
        if not math.isfinite(number):
            raise ValueError(f"{value!r} is not a finite float")
        return number
    if isinstance(value, (str, int, float)):
        return str(value)
    raise ValueError(f"{value!r} is not a string")


class Parameter(SpecModel):
    """A typed pipeline parameter with an optional default, allowed values and range.

    A parameter without a default is required when the pipeline runs.

    Example:
        >>> Parameter(type="int", default=200, min=10, max=2000).check(5000)
        Traceback (most recent call last):
        ...
        ValueError: 5000 is above the maximum 2000
    """

    type: ParamType
    default: str | int | float | bool | None = None
    description: str | None = None
    allowed: list[str | int | float | bool] | None = Field(None, min_length=1)
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Parameter:
        if (self.min is not None or self.max is not None) and self.type not in ("int", "float"):
            raise ValueError(f"min/max only apply to int and float parameters, not {self.type}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        # distinct error types let validation point at the 'allowed' or 'default' key itself
        if self.allowed is not None:
            try:
                self.__dict__["allowed"] = [coerce_param(self.type, a) for a in self.allowed]
            except ValueError as e:
                raise PydanticCustomError("parameter_allowed", "allowed value {reason}", {"reason": str(e)}) from None
        if self.default is not None:
            try:
                self.__dict__["default"] = self.check(self.default)
            except ValueError as e:
                raise PydanticCustomError("parameter_default", "default {reason}", {"reason": str(e)}) from None
        return self

    def check(self, value: Any) -> Any:
        """Coerce ``value`` to this parameter's type and check allowed values and range.

        Example:
            >>> Parameter(type="string", allowed=["a", "b"]).check("a")
            'a'
        """
        v = coerce_param(self.type, value)
        if self.allowed is not None and v not in self.allowed:
            raise ValueError(f"{v!r} is not one of {self.allowed}")
        if self.min is not None and v < self.min:
            raise ValueError(f"{v!r} is below the minimum {_num(self.min)}")
        if self.max is not None and v > self.max:
            raise ValueError(f"{v!r} is above the maximum {_num(self.max)}")
        return v


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


class StepDefaults(SpecModel):
    """Values every task step inherits unless it sets its own.

    Example:
        >>> StepDefaults(retry={"attempts": 3}, cache=True).retry.attempts
        3
    """

    kind: Literal["processing", "training"] | None = None
    image: str | None = None
    framework: str | None = None
    code: str | None = None
    code_paths: list[str] | None = None
    env: dict[str, str] = Field(default_factory=dict)
    resources: Resources | None = None
    retry: Retry | None = None
    timeout: Duration | None = None
    cache: Cache | None = None

    @field_validator("framework")
    @classmethod
    def _framework(cls, v: str | None) -> str | None:
        return None if v is None else check_framework(v)

    @field_validator("code_paths")
    @classmethod
    def _code_paths(cls, v: list[str] | None) -> list[str] | None:
        return check_code_paths(v)


class Schedule(SpecModel):
    """Run the pipeline on a cron schedule (5 fields: minute hour day-of-month month day-of-week).

    Example:
        >>> Schedule(cron="0 3 * * 1-5").timezone
        'UTC'
    """

    cron: str
    timezone: str = "UTC"
    parameters: dict[str, str | int | float | bool] = Field(default_factory=dict)
    enabled: bool = True

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        fields = v.split()
        if len(fields) != 5:
            raise ValueError(f"cron '{v}' has {len(fields)} fields; write 5: minute hour day month weekday")
        for f, (lo, hi) in zip(fields, _CRON_RANGES, strict=True):
            if not _CRON_FIELD.match(f):
                raise ValueError(f"cron field '{f}' in '{v}' is not valid")
            for n in re.findall(r"(?<![/\d])\d+", f):
                if not lo <= int(n) <= hi:
                    raise ValueError(f"cron field '{f}' in '{v}' is outside {lo}-{hi}")
        from cloudml.cron import parse_cron

        parse_cron(v)  # names in the right field, ranges in order, steps >= 1
        return v

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        if v == "UTC":
            return v
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"time zone '{v}' is not an IANA zone name such as Europe/Berlin or UTC") from None
        return v


class Pipeline(SpecModel):
    """A training pipeline: parameters, steps and their data flow, defaults, schedule.

    Build it from YAML with :func:`cloudml.load`, or in Python with :class:`cloudml.PipelineBuilder`.
    """

    api_version: Literal["cloudml/v1"] = Field(API_VERSION, alias="apiVersion")
    kind: Literal["Pipeline"] = "Pipeline"
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,62}$")
    description: str | None = None
    parameters: dict[Identifier, Parameter] = Field(default_factory=dict)
    defaults: StepDefaults = Field(default_factory=StepDefaults)
    steps: list[Step] = Field(min_length=1)
    schedule: Schedule | None = None
    backend_options: dict[str, dict[str, Any]] = Field(default_factory=dict)

    def step(self, name: str) -> TaskStep | ConditionStep | FailStep | RegisterModelStep:
        """The step called ``name`` (KeyError when there is none).

        Example:
            >>> import cloudml
            >>> b = cloudml.PipelineBuilder("p"); _ = b.add_step("a", command="echo hi")
            >>> p = b.build()
            >>> p.step("a").name
            'a'
        """
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)

    @property
    def step_names(self) -> list[str]:
        """Names in document order."""
        return [s.name for s in self.steps]

    def task_steps(self) -> list[TaskStep]:
        """Only the steps that run code."""
        return [s for s in self.steps if isinstance(s, TaskStep)]

    def effective(self, step: TaskStep) -> TaskStep:
        """``step`` with the pipeline defaults filled in where the step sets nothing.

        Example:
            >>> import cloudml
            >>> b = cloudml.PipelineBuilder("p", defaults={"timeout": "1h"})
            >>> _ = b.add_step("a", command="echo")
            >>> p = b.build()
            >>> p.effective(p.step("a")).timeout
            3600.0
        """
        d = self.defaults
        update: dict[str, Any] = {}
        for field in ("image", "framework", "code", "code_paths", "resources", "retry", "timeout", "cache"):
            if getattr(step, field) is None and getattr(d, field) is not None:
                update[field] = getattr(d, field)
        if d.kind is not None and "kind" not in step.model_fields_set:
            update["kind"] = d.kind
        if d.env:
            update["env"] = {**d.env, **step.env}
        return step.model_copy(update=update) if update else step

    def resolve_parameters(self, values: dict[str, Any] | None = None) -> dict[str, Any]:
        """Defaults overlaid with ``values``, each coerced and range-checked.

        Raises :class:`cloudml.SpecError` listing every bad or missing value.

        Example:
            >>> import cloudml
            >>> b = cloudml.PipelineBuilder("p")
            >>> _ = b.param("n", "int", default=5, min=1)
            >>> _ = b.add_step("a", command="echo {{params.n}}")
            >>> b.build().resolve_parameters({"n": "7"})
            {'n': 7}
        """
        from cloudml.errors import Issue, SpecError

        values = dict(values or {})
        out: dict[str, Any] = {}
        issues: list[Issue] = []
        for name in values:
            if name not in self.parameters:
                issues.append(
                    Issue(
                        f"unknown parameter '{name}'",
                        path=f"parameters.{name}",
                        fix=f"declared parameters: {', '.join(self.parameters) or 'none'}",
                        code="unknown_parameter",
                    )
                )
        for name, p in self.parameters.items():
            raw = values.get(name, p.default)
            if raw is None:
                issues.append(
                    Issue(f"parameter '{name}' has no default and no value", path=f"parameters.{name}",
                          fix=f"pass --param {name}=VALUE", code="missing_parameter")
                )
                continue
            try:
                out[name] = p.check(raw)
            except ValueError as e:
                issues.append(Issue(f"parameter '{name}': {e}", path=f"parameters.{name}",
                                    expected=_describe(p), code="parameter_range"))
        if issues:
            raise SpecError(issues, source=f"parameters of pipeline '{self.name}'")
        return out


def _describe(p: Parameter) -> str:
    bits: list[str] = [p.type]
    if p.allowed is not None:
        bits.append(f"one of {p.allowed}")
    if p.min is not None:
        bits.append(f">= {_num(p.min)}")
    if p.max is not None:
        bits.append(f"<= {_num(p.max)}")
    return " ".join(bits)
