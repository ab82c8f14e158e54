"""Build a pipeline in Python. The result is the same validated model YAML gives.

Handles make references safe to write: ``step.outputs["model"]`` is the reference
``train.outputs.model``, ``params`` handles render as ``{{params.x}}`` in commands, and comparisons
on metric handles build condition expressions.

Example:
    >>> import cloudml
    >>> b = cloudml.PipelineBuilder("churn-training")
    >>> min_auc = b.param("min_auc", "float", default=0.85)
    >>> prep = b.add_step("prep", command="python prep.py --out {{outputs.data}}", outputs={"data": "dataset"})
    >>> train = b.add_step("train", python="src.train:fit", inputs={"train": prep.outputs["data"]},
    ...                    outputs={"model": "model", "metrics": "metrics"})
    >>> _ = b.condition("gate", train.outputs["metrics"]["auc"] >= min_auc, then=["register"], else_=["reject"])
    >>> _ = b.register_model("register", model=train.outputs["model"], group="churn")
    >>> _ = b.fail("reject", "AUC below {{params.min_auc}}")
    >>> p = b.build()
    >>> str(p.step("gate").condition)
    'train.outputs.metrics["auc"] >= params.min_auc'
    >>> p == cloudml.loads(cloudml.dumps(p))
    True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from cloudml.spec.conditions import (
    And,
    Compare,
    Expr,
    LiteralOperand,
    MetricOperand,
    Not,
    Operand,
    Or,
    ParamOperand,
)

if TYPE_CHECKING:
    from cloudml.spec.pipeline import Pipeline

__all__ = ["ConditionHandle", "MetricHandle", "OutputHandle", "ParamHandle", "PipelineBuilder", "StepHandle"]


def _operand(value: Any) -> Operand:
    if isinstance(value, MetricHandle):
        return value.operand
    if isinstance(value, ParamHandle):
        return ParamOperand(value.name)
    if isinstance(value, (int, float, str, bool)):
        return LiteralOperand(value)
    raise TypeError(f"cannot compare with {value!r}; use a number, string, bool, metric or parameter")


class _Comparable:
    def _cmp(self, op: str, other: Any) -> ConditionHandle:
        return ConditionHandle(Compare(_operand(self), op, _operand(other)))  # type: ignore[arg-type]

    def __ge__(self, other: Any) -> ConditionHandle:
        return self._cmp(">=", other)

    def __gt__(self, other: Any) -> ConditionHandle:
        return self._cmp(">", other)

    def __le__(self, other: Any) -> ConditionHandle:
        return self._cmp("<=", other)

    def __lt__(self, other: Any) -> ConditionHandle:
        return self._cmp("<", other)

    def eq(self, other: Any) -> ConditionHandle:
        """``self == other`` as a condition (``==`` itself keeps its Python meaning)."""
        return self._cmp("==", other)

    def ne(self, other: Any) -> ConditionHandle:
        """``self != other`` as a condition."""
        return self._cmp("!=", other)


class ParamHandle(_Comparable):
    """A declared parameter. ``str(handle)`` is ``{{params.name}}``, for commands and inputs."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __str__(self) -> str:
        return f"{{{{params.{self.name}}}}}"

    def __format__(self, spec: str) -> str:
        return str(self)


class MetricHandle(_Comparable):
    """A value inside a metrics output: ``handle["key"]`` goes deeper."""

    def __init__(self, operand: MetricOperand) -> None:
        self.operand = operand

    def __getitem__(self, key: str | int) -> MetricHandle:
        o = self.operand
        return MetricHandle(MetricOperand(o.step, o.output, (*o.path, key)))


class OutputHandle:
    """``step.outputs["name"]``: renders as ``step.outputs.name``; index it to read a metric."""

    def __init__(self, step: str, output: str) -> None:
        self.step = step
        self.output = output

    def __str__(self) -> str:
        return f"{self.step}.outputs.{self.output}"

    def __getitem__(self, key: str | int) -> MetricHandle:
        return MetricHandle(MetricOperand(self.step, self.output, (key,)))


class _Outputs:
    def __init__(self, step: str) -> None:
        self._step = step

    def __getitem__(self, name: str) -> OutputHandle:
        return OutputHandle(self._step, name)

    def __getattr__(self, name: str) -> OutputHandle:
        if name.startswith("_"):
            raise AttributeError(name)
        return OutputHandle(self._step, name)


class StepHandle:
    """A step added to a builder; ``.outputs["x"]`` (or ``.outputs.x``) references its outputs."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.outputs = _Outputs(name)

    def __str__(self) -> str:
        return self.name


class ConditionHandle:
    """A condition expression; combine with ``&``, ``|`` and ``~``."""

    def __init__(self, expr: Expr) -> None:
        self.expr = expr

    def __and__(self, other: ConditionHandle) -> ConditionHandle:
        return ConditionHandle(And((self.expr, other.expr)))

    def __or__(self, other: ConditionHandle) -> ConditionHandle:
        return ConditionHandle(Or((self.expr, other.expr)))

    def __invert__(self) -> ConditionHandle:
        return ConditionHandle(Not(self.expr))

    def __str__(self) -> str:
        return str(self.expr)

    def __bool__(self) -> bool:
        raise TypeError("a condition is evaluated when the pipeline runs; pass it to builder.condition(...)")


def _plain(value: Any) -> Any:
    """Turn handles into the strings the spec uses, recursively."""
    if isinstance(value, (ParamHandle, OutputHandle, StepHandle, ConditionHandle)):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class PipelineBuilder:
    """Collect parameters and steps, then :meth:`build` a validated :class:`~cloudml.spec.pipeline.Pipeline`.

    ``build`` raises the same :class:`cloudml.SpecError` a YAML file would, listing every issue.
    """

    def __init__(self, name: str, *, description: str | None = None, defaults: Mapping[str, Any] | None = None,
                 schedule: Mapping[str, Any] | str | None = None,
                 backend_options: Mapping[str, Any] | None = None) -> None:
        self._doc: dict[str, Any] = {"apiVersion": "cloudml/v1", "kind": "Pipeline", "name": name}
        if description:
            self._doc["description"] = description
        if defaults:
            self._doc["defaults"] = _plain(defaults)
        if schedule:
            self._doc["schedule"] = {"cron": schedule} if isinstance(schedule, str) else _plain(schedule)
        if backend_options:
            self._doc["backend_options"] = _plain(backend_options)
        self._params: dict[str, Any] = {}
        self._steps: list[dict[str, Any]] = []

    def param(self, name: str, type: str | type, default: Any = None, *, description: str | None = None,
              allowed: Iterable[Any] | None = None, min: float | None = None,
              max: float | None = None) -> ParamHandle:
        """Declare a typed parameter (``"string"``, ``"int"``, ``"float"``, ``"bool"`` or the Python type).

        Example:
            >>> b = PipelineBuilder("p")
            >>> str(b.param("lr", float, 0.1, min=0, max=1))
            '{{params.lr}}'
        """
        names: dict[Any, str] = {str: "string", int: "int", float: "float", bool: "bool"}
        spec: dict[str, Any] = {"type": names.get(type, type)}
        for key, value in (("default", default), ("description", description), ("min", min), ("max", max)):
            if value is not None:
                spec[key] = value
        if allowed is not None:
            spec["allowed"] = list(allowed)
        self._params[name] = spec
        return ParamHandle(name)

    def _add(self, name: str, fields: Mapping[str, Any]) -> StepHandle:
        step = {"name": name, **{k: _plain(v) for k, v in fields.items() if v is not None}}
        self._steps.append(step)
        return StepHandle(name)

    def add_step(self, name: str, **fields: Any) -> StepHandle:
        """Add a task step; ``fields`` are the step's YAML fields (command or python, inputs, outputs…).

        Example:
            >>> b = PipelineBuilder("p")
            >>> b.add_step("hello", command="echo hi", timeout="5m").name
            'hello'
        """
        if "else_" in fields:
            raise TypeError("'else_' belongs to builder.condition(...)")
        return self._add(name, fields)

    def condition(self, name: str, condition: ConditionHandle | str, *, then: Iterable[StepHandle | str] = (),
                  else_: Iterable[StepHandle | str] = (), depends_on: Iterable[str] = ()) -> StepHandle:
        """Add a gate: run ``then`` steps when ``condition`` holds, ``else_`` steps otherwise."""
        fields: dict[str, Any] = {"condition": str(condition), "then": [str(s) for s in then],
                                  "else": [str(s) for s in else_]}
        if depends_on:
            fields["depends_on"] = list(depends_on)
        return self._add(name, fields)

    def fail(self, name: str, message: str, *, depends_on: Iterable[str] = ()) -> StepHandle:
        """Add a step that ends the run as failed with ``message``."""
        return self._add(name, {"fail": message, "depends_on": list(depends_on) or None})

    def register_model(self, name: str, *, model: OutputHandle | str, group: str,
                       metrics: OutputHandle | str | None = None, approval: str = "pending",
                       **extra: Any) -> StepHandle:
        """Add a step that registers ``model`` in ``group``."""
        spec = {"model": str(model), "group": group, "approval": approval, **extra}
        if metrics is not None:
            spec["metrics"] = str(metrics)
        return self._add(name, {"register_model": spec})

    def to_dict(self) -> dict[str, Any]:
        """The document as plain data (what ``build`` validates)."""
        doc = dict(self._doc)
        if self._params:
            doc["parameters"] = dict(self._params)
        doc["steps"] = [dict(s) for s in self._steps]
        return doc

    def build(self) -> Pipeline:
        """Validate and return the pipeline. Raises :class:`cloudml.SpecError` listing every issue."""
        from cloudml.spec.pipeline import Pipeline
        from cloudml.spec.validate import validate_data

        result = validate_data(self.to_dict())
        assert isinstance(result, Pipeline)
        return result
