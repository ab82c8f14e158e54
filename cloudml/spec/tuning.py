"""The neutral hyperparameter-tuning block of a task step: search space, objective, strategy, limits.

A task step with ``tuning:`` runs as several *trials*; each trial gets one point of the search
space through ``{{tuning.NAME}}`` placeholders (command, args, env, python ``params``) and, for a
``python`` step, as keyword arguments of the same names. The objective is a key of one of the
step's own ``metrics`` outputs; the best trial's outputs become the step's outputs.

Example:
    >>> t = Tuning.model_validate({
    ...     "search_space": {"lr": {"type": "float", "min": 1e-4, "max": 0.1, "scale": "log"},
    ...                      "kernel": {"type": "categorical", "values": ["rbf", "linear"]}},
    ...     "objective": {"metric": "metrics.auc", "goal": "maximize"}, "max_trials": 8, "parallel_trials": 2})
    >>> t.objective.output, t.objective.key, t.strategy, t.trials
    ('metrics', 'auc', 'random', 8)
    >>> Tuning.model_validate({"search_space": {"d": {"type": "int", "min": 2, "max": 4}},
    ...     "objective": {"metric": "m.loss", "goal": "minimize"}, "strategy": "grid"}).trials
    3
"""

from __future__ import annotations

import itertools
import math
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from cloudml.spec.types import Identifier, SpecModel

__all__ = ["MAX_GRID", "Objective", "SearchParam", "Tuning", "grid_points"]

Scalar = str | int | float | bool
MAX_GRID = 10_000
_METRIC_RE = r"^[A-Za-z_][A-Za-z0-9_]*\.[^\s.][^\s]*$"


class SearchParam(SpecModel):
    """One dimension of a search space: a ``float`` or ``int`` range, or ``categorical`` values.

    ``scale: log`` samples a range uniformly in log space (``min`` must be above 0). ``grid_step``
    spaces the points of a range for ``strategy: grid`` (ints default to every whole number).

    Example:
        >>> SearchParam(type="int", min=2, max=10).points()[:3]
        [2, 3, 4]
        >>> SearchParam(type="float", min=0, max=1, grid_step=0.25).points()
        [0.0, 0.25, 0.5, 0.75, 1.0]
    """

    type: Literal["float", "int", "categorical"]
    min: int | float | None = Field(None, description="lowest value of a float/int range (inclusive)")
    max: int | float | None = Field(None, description="highest value of a float/int range (inclusive)")
    scale: Literal["linear", "log"] = "linear"
    grid_step: float | None = Field(None, gt=0, description="spacing of a range's points for strategy: grid")
    values: list[Scalar] | None = Field(None, description="the choices of a categorical dimension")

    @model_validator(mode="after")
    def _shape(self) -> SearchParam:
        if self.type == "categorical":
            if self.min is not None or self.max is not None or self.grid_step is not None or self.scale != "linear":
                raise ValueError("a categorical dimension takes 'values' only (no min, max, grid_step or scale)")
            if not self.values:
                raise ValueError("no valid point: a categorical dimension needs at least one entry under 'values'")
            if len({repr(v) for v in self.values}) != len(self.values):
                raise ValueError("categorical 'values' repeat an entry; list each choice once")
            return self
        if self.values is not None:
            raise ValueError(f"a {self.type} range takes min and max, not 'values' (use type: categorical)")
        if self.min is None or self.max is None:
            raise ValueError(f"a {self.type} range needs both 'min' and 'max'")
        if self.type == "int" and not (float(self.min).is_integer() and float(self.max).is_integer()):
            raise ValueError(f"an int range needs whole-number bounds, got min {self.min:g}, max {self.max:g}")
        if self.min >= self.max:
            raise ValueError(f"no valid point: min {self.min:g} >= max {self.max:g}; set min below max "
                             "(for a single value, leave it out of the search space)")
        if self.scale == "log" and self.min <= 0:
            raise ValueError(f"no valid point on a log scale: min {self.min:g} must be above 0; raise min or "
                             "use scale: linear")
        if self.type == "int" and self.grid_step is not None and not float(self.grid_step).is_integer():
            raise ValueError(f"an int range needs a whole-number grid_step, got {self.grid_step:g}")
        return self

    def points(self) -> list[Any] | None:
        """The grid points of this dimension, or None when it is continuous without a ``grid_step``."""
        if self.type == "categorical":
            return list(self.values or [])
        assert self.min is not None and self.max is not None
        if self.type == "int":
            step = int(self.grid_step or 1)
            return list(range(int(self.min), int(self.max) + 1, step))
        if self.grid_step is None or self.scale == "log":
            return None
        count = math.floor((self.max - self.min) / self.grid_step + 1e-9) + 1
        return [round(self.min + i * self.grid_step, 12) for i in range(count)]


class Objective(SpecModel):
    """What a trial is judged by: ``metric: OUTPUT.KEY`` of one of the step's own metrics outputs.

    ``KEY`` may be a dotted path into the JSON (``metrics.per_class.f1``).

    Example:
        >>> o = Objective(metric="metrics.val.auc"); (o.output, o.key, o.goal)
        ('metrics', 'val.auc', 'maximize')
    """

    metric: Annotated[str, StringConstraints(pattern=_METRIC_RE)] = Field(
        description="OUTPUT.KEY: a key of one of this step's metrics outputs, e.g. metrics.auc")
    goal: Literal["maximize", "minimize"] = "maximize"

    @property
    def output(self) -> str:
        """The metrics output the objective is read from."""
        return self.metric.split(".", 1)[0]

    @property
    def key(self) -> str:
        """The (dotted) key inside that metrics file."""
        return self.metric.split(".", 1)[1]


class Tuning(SpecModel):
    """A step's tuning block.

    ``max_trials`` (default 10; for ``grid`` the size of the grid) counts trials in total and
    ``parallel_trials`` (default 1) how many run at once. ``seed`` makes ``random`` and ``bayesian``
    reproducible (a run without one draws a seed and records it).
    """

    search_space: dict[Identifier, SearchParam] = Field(min_length=1)
    objective: Objective
    strategy: Literal["random", "grid", "bayesian"] = "random"
    max_trials: int | None = Field(None, ge=1, le=MAX_GRID)
    parallel_trials: int = Field(1, ge=1, le=100)
    seed: int | None = Field(None, ge=0, le=2**31 - 1)

    @model_validator(mode="after")
    def _grid(self) -> Tuning:
        if self.strategy != "grid":
            return self
        size = 1
        for name, dim in self.search_space.items():
            pts = dim.points()
            if pts is None:
                why = "a log-scale range" if dim.scale == "log" else "a continuous range without 'grid_step'"
                raise ValueError(f"strategy grid: '{name}' is {why}, which has no grid points; give it a "
                                 "'grid_step' (linear scale) or list the points as type: categorical")
            size *= len(pts)
            if size > MAX_GRID:
                raise ValueError(f"strategy grid: the grid has more than {MAX_GRID} points; coarsen the steps")
        if self.max_trials is not None and self.max_trials < size:
            raise ValueError(f"strategy grid: the grid has {size} points but max_trials is {self.max_trials}; "
                             f"set max_trials: {size} (or leave it out), or coarsen the grid")
        return self

    @property
    def trials(self) -> int:
        """How many trials run: ``max_trials``, else 10, else (grid) the number of grid points."""
        if self.strategy == "grid":
            return min(self.max_trials or MAX_GRID, len(grid_points(self)))
        return self.max_trials or 10


def grid_points(t: Tuning) -> list[dict[str, Any]]:
    """Every point of a grid, in a fixed order (the search space's order, last name fastest).

    Example:
        >>> t = Tuning.model_validate({"search_space": {"a": {"type": "int", "min": 1, "max": 2},
        ...     "k": {"type": "categorical", "values": ["x", "y"]}}, "objective": {"metric": "m.v"},
        ...     "strategy": "grid"})
        >>> grid_points(t)
        [{'a': 1, 'k': 'x'}, {'a': 1, 'k': 'y'}, {'a': 2, 'k': 'x'}, {'a': 2, 'k': 'y'}]
    """
    names = list(t.search_space)
    axes = [t.search_space[n].points() or [] for n in names]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes)]
