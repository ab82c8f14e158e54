"""Compare runs side by side: parameters, logged step parameters and metrics, plus a plot.

Input is backend-neutral: a :class:`RunSummary` per run (``summarize`` builds one from any run handle
that has ``id``, ``status`` and ``metrics``, and optionally ``parameters`` and ``params``). The
comparison marks which parameters differ and, for each metric, the change against the first run
(the baseline). ``write_plot`` draws the metrics as grouped bars (PNG or SVG, needs matplotlib:
``pip install 'cloudml[plot]'``).

Example:
    >>> a = RunSummary("r1", "churn", "succeeded", {"C": 1.0}, {"evaluate.auc": 0.81})
    >>> b = RunSummary("r2", "churn", "succeeded", {"C": 0.1}, {"evaluate.auc": 0.86})
    >>> c = compare([a, b])
    >>> [(row.name, row.differs) for row in c.parameters]
    [('C', True)]
    >>> round(c.metrics[0].delta or 0, 2)
    0.05
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudml.errors import CloudMLError

__all__ = ["Comparison", "Row", "RunSummary", "compare", "summarize", "write_plot"]


@dataclass
class RunSummary:
    """What a comparison needs of one run. Metric names are ``step.metric``; parameters are flat.

    Example:
        >>> RunSummary("r1", "churn", "succeeded", {"C": 1}, {"evaluate.auc": 0.9}).metrics["evaluate.auc"]
        0.9
    """

    id: str
    pipeline: str
    status: str
    parameters: dict[str, Any]
    metrics: dict[str, float]
    step_params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Row:
    """One line of the comparison: a name and one value per run (None where a run lacks it).

    Example:
        >>> Row("C", [1, 2], True).values
        [1, 2]
    """

    name: str
    values: list[Any]
    differs: bool
    delta: float | None = None


@dataclass
class Comparison:
    """Parameters, logged step parameters and metrics of several runs, aligned by name.

    Example:
        >>> c = compare([RunSummary("a", "p", "succeeded", {}, {"m.x": 1.0}),
        ...              RunSummary("b", "p", "failed", {}, {"m.x": 3.0})])
        >>> c.metrics[0].delta
        2.0
    """

    runs: list[RunSummary]
    parameters: list[Row]
    step_params: list[Row]
    metrics: list[Row]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form (``cloudml runs compare --json``).

        Example:
            >>> compare([RunSummary("a", "p", "succeeded", {"n": 1}, {})]).as_dict()["runs"]
            ['a']
        """
        def rows(items: list[Row]) -> list[dict[str, Any]]:
            return [{"name": r.name, "values": r.values, "differs": r.differs, "delta": r.delta} for r in items]

        return {"runs": [r.id for r in self.runs], "pipelines": [r.pipeline for r in self.runs],
                "status": [r.status for r in self.runs], "parameters": rows(self.parameters),
                "step_params": rows(self.step_params), "metrics": rows(self.metrics)}


def _same(values: list[Any]) -> bool:
    keys = [json.dumps(v, sort_keys=True, default=str) for v in values]
    return len(set(keys)) == 1


def _rows(dicts: list[dict[str, Any]]) -> list[Row]:
    names: list[str] = []
    for d in dicts:
        names += [k for k in d if k not in names]
    return [Row(n, [d.get(n) for d in dicts], not _same([d.get(n) for d in dicts])) for n in sorted(names)]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def compare(runs: list[RunSummary]) -> Comparison:
    """Align the runs' parameters and metrics by name; metric deltas are last run minus first.

    Example:
        >>> c = compare([RunSummary("a", "p", "succeeded", {"n": 1}, {"t.acc": 0.5}),
        ...              RunSummary("b", "p", "succeeded", {"n": 1}, {"t.acc": 0.75})])
        >>> c.parameters[0].differs, c.metrics[0].delta
        (False, 0.25)
    """
    if not runs:
        raise CloudMLError("nothing to compare", hint="name at least one run: cloudml runs compare RUN RUN")
    metrics = _rows([r.metrics for r in runs])
    for row in metrics:
        first, last = _number(row.values[0]), _number(row.values[-1])
        row.delta = None if first is None or last is None or len(runs) < 2 else round(last - first, 12)
    return Comparison(list(runs), _rows([r.parameters for r in runs]), _rows([r.step_params for r in runs]), metrics)


def _flat(nested: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {f"{step}.{name}": value for step, values in nested.items() for name, value in values.items()}


def summarize(handle: Any, pipeline: str = "", parameters: dict[str, Any] | None = None) -> RunSummary:
    """A RunSummary from a run handle (LocalRun, SageMakerRun, ...): ``metrics`` is ``{step: {name: value}}``.

    Example:
        >>> class Handle:
        ...     id, status, metrics = "r1", "succeeded", {"evaluate": {"auc": 0.9}}
        >>> summarize(Handle(), "churn", {"C": 1}).metrics
        {'evaluate.auc': 0.9}
    """
    params = parameters if parameters is not None else dict(getattr(handle, "parameters", {}) or {})
    step_params = getattr(handle, "params", None) or {}
    return RunSummary(str(handle.id), pipeline or str(getattr(handle, "pipeline", "")), str(handle.status),
                      dict(params), _flat(dict(handle.metrics or {})), _flat(dict(step_params)))


def write_plot(comparison: Comparison, path: str | Path) -> Path:
    """Grouped bars, one group per metric and one bar per run; PNG or SVG by the file's suffix.

    Example:
        >>> import tempfile, pathlib
        >>> c = compare([RunSummary("a", "p", "succeeded", {}, {"t.acc": 0.5}),
        ...              RunSummary("b", "p", "succeeded", {}, {"t.acc": 0.7})])
        >>> out = write_plot(c, pathlib.Path(tempfile.mkdtemp()) / "cmp.png")
        >>> out.stat().st_size > 1000
        True
    """
    path = Path(path)
    if path.suffix.lower() not in (".png", ".svg"):
        raise CloudMLError(f"cannot draw '{path.name}': the plot is written as .png or .svg",
                           hint="name the file with a .png or .svg suffix")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        from cloudml.errors import AdapterNotInstalledError

        raise AdapterNotInstalledError("runs compare (plot)", "plot", ["matplotlib"]) from None
    rows = [r for r in comparison.metrics if any(_number(v) is not None for v in r.values)]
    if not rows:
        raise CloudMLError("the runs logged no numeric metrics to plot",
                           hint="write metrics with cloudml.runtime.log_metrics or a metrics output")
    n = len(comparison.runs)
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(rows) * max(1, n / 2)), 3.6), dpi=110)
    for i, run in enumerate(comparison.runs):
        xs = [j + (i - (n - 1) / 2) * width for j in range(len(rows))]
        ys = [_number(r.values[i]) or 0.0 for r in rows]
        bars = ax.bar(xs, ys, width, label=run.id)
        for bar, r in zip(bars, rows, strict=True):
            v = _number(r.values[i])
            if v is not None:
                ax.annotate(f"{v:.3g}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                            ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([r.name for r in rows], rotation=20, ha="right", fontsize=8)
    ax.set_title("metrics by run")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
