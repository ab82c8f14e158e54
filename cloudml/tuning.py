"""Search strategies for a tuning step, in pure Python (no new dependencies): random, grid and TPE.

Every backend that runs trials itself (the local one) asks a :class:`Sampler` for the point of
trial ``i``; clouds with their own tuning service (SageMaker) use theirs instead.

* ``random``: each dimension uniform (in log space for ``scale: log``); trial ``i`` draws from a
  generator seeded with ``(seed, i)``, so a point does not depend on the order trials finish in.
* ``grid``: the points of :func:`cloudml.spec.tuning.grid_points`, in order.
* ``bayesian``: a small Tree-structured Parzen Estimator (Bergstra et al., 2011), sequential
  model-based optimisation: the first trials are random; after that the finished trials are split
  into the best quarter and the rest, each dimension gets a Parzen density (Gaussian kernels in the
  unit interval, smoothed counts for categoricals) for both groups, 24 candidates are drawn from the
  good density and the one with the highest good/bad density ratio is proposed. Dimensions are
  modelled independently and there is no Gaussian process: it is a light TPE, not SageMaker's
  Bayesian optimiser. Trials running at the same time are proposed from the same finished history
  (with different random draws).

Example:
    >>> from cloudml.spec.tuning import Tuning
    >>> t = Tuning.model_validate({"search_space": {"x": {"type": "float", "min": 0, "max": 1}},
    ...     "objective": {"metric": "m.score"}, "strategy": "bayesian", "max_trials": 20, "seed": 3})
    >>> s = Sampler(t, seed=3)
    >>> history = []
    >>> for i in range(20):
    ...     p = s.propose(i, history)
    ...     history.append((p, -(p["x"] - 0.7) ** 2))
    >>> abs(max(history, key=lambda h: h[1])[0]["x"] - 0.7) < 0.05
    True
"""

from __future__ import annotations

import math
import random
from typing import Any

from cloudml.spec.tuning import SearchParam, Tuning, grid_points

__all__ = ["Sampler", "best_trial", "format_value", "objective_value"]

_CANDIDATES = 24
_GAMMA = 0.25


def format_value(value: Any) -> str:
    """How a searched value is written into a command: ``true``/``false``, ints plain, floats short.

    Example:
        >>> format_value(0.1 + 0.2), format_value(3), format_value(True), format_value("rbf")
        ('0.3', '3', 'true', 'rbf')
    """
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


def objective_value(doc: Any, key: str) -> float:
    """The number at dotted ``key`` of a metrics document; ValueError says what is missing.

    Example:
        >>> objective_value({"val": {"auc": 0.9}}, "val.auc")
        0.9
    """
    cur = doc
    for part in key.split("."):
        if not isinstance(cur, dict) or part not in cur:
            have = ", ".join(sorted(cur)) if isinstance(cur, dict) else type(cur).__name__
            raise ValueError(f"the metrics file has no '{key}' (at '{part}'; found: {have or 'nothing'})")
        cur = cur[part]
    if isinstance(cur, bool) or not isinstance(cur, (int, float)) or not math.isfinite(float(cur)):
        raise ValueError(f"'{key}' in the metrics file is {cur!r}, not a finite number")
    return float(cur)


def best_trial(trials: list[dict[str, Any]], goal: str) -> dict[str, Any] | None:
    """The succeeded trial with the best objective (ties: the lowest trial number).

    Example:
        >>> trials = [{"trial": 0, "status": "succeeded", "objective": 0.8},
        ...           {"trial": 1, "status": "failed", "objective": None},
        ...           {"trial": 2, "status": "succeeded", "objective": 0.9}]
        >>> best_trial(trials, "maximize")["trial"], best_trial(trials, "minimize")["trial"]
        (2, 0)
    """
    ok = [t for t in trials if t.get("status") == "succeeded" and t.get("objective") is not None]
    if not ok:
        return None
    sign = -1.0 if goal == "maximize" else 1.0
    return min(ok, key=lambda t: (sign * float(t["objective"]), int(t["trial"])))


class Sampler:
    """Proposes the point of each trial for one tuning block (see the module doc for the strategies)."""

    def __init__(self, tuning: Tuning, seed: int) -> None:
        self.t = tuning
        self.seed = seed
        self.grid = grid_points(tuning) if tuning.strategy == "grid" else []
        self.startup = max(3, min(10, tuning.trials // 3))

    def propose(self, index: int, history: list[tuple[dict[str, Any], float]]) -> dict[str, Any]:
        """The point for trial ``index``; ``history`` holds (point, objective) of finished trials."""
        if self.t.strategy == "grid":
            return dict(self.grid[index])
        rng = random.Random(f"{self.seed}:{index}")
        if self.t.strategy == "random" or len(history) < self.startup:
            return {n: _draw(d, rng) for n, d in self.t.search_space.items()}
        return self._tpe(rng, history)

    def _tpe(self, rng: random.Random, history: list[tuple[dict[str, Any], float]]) -> dict[str, Any]:
        sign = -1.0 if self.t.objective.goal == "maximize" else 1.0
        ranked = sorted(history, key=lambda h: sign * h[1])
        n_good = max(1, math.ceil(_GAMMA * len(ranked)))
        good, bad = [p for p, _ in ranked[:n_good]], [p for p, _ in ranked[n_good:]]
        point: dict[str, Any] = {}
        for name, dim in self.t.search_space.items():
            point[name] = _tpe_dimension(dim, [g[name] for g in good], [b[name] for b in bad], rng)
        return point


def _to_unit(d: SearchParam, v: float) -> float:
    assert d.min is not None and d.max is not None
    if d.scale == "log":
        return (math.log(v) - math.log(d.min)) / (math.log(d.max) - math.log(d.min))
    return (v - d.min) / (d.max - d.min)


def _from_unit(d: SearchParam, u: float) -> Any:
    assert d.min is not None and d.max is not None
    u = min(1.0, max(0.0, u))
    if d.scale == "log":
        v = math.exp(math.log(d.min) + u * (math.log(d.max) - math.log(d.min)))
    else:
        v = d.min + u * (d.max - d.min)
    if d.type == "int":
        return int(min(d.max, max(d.min, round(v))))
    return float(f"{min(d.max, max(d.min, v)):.8g}")


def _draw(d: SearchParam, rng: random.Random) -> Any:
    if d.type == "categorical":
        return rng.choice(list(d.values or []))
    if d.type == "int" and d.scale == "linear":
        assert d.min is not None and d.max is not None
        return rng.randint(int(d.min), int(d.max))
    return _from_unit(d, rng.random())


def _kde(points: list[float], u: float) -> float:
    """Parzen density at ``u`` on [0, 1]: Gaussian kernels on the points plus a uniform prior."""
    n = len(points)
    bw = max(0.05, 1.0 / (n + 1) ** 0.5 * 0.5)
    total = 1.0  # the uniform prior, weight one point
    for p in points:
        total += math.exp(-0.5 * ((u - p) / bw) ** 2) / (bw * math.sqrt(2 * math.pi))
    return total / (n + 1)


def _tpe_dimension(d: SearchParam, good: list[Any], bad: list[Any], rng: random.Random) -> Any:
    if d.type == "categorical":
        values = list(d.values or [])

        def probs(sample: list[Any]) -> list[float]:
            return [(sum(1 for s in sample if s == v) + 1.0) / (len(sample) + len(values)) for v in values]

        pg, pb = probs(good), probs(bad)
        picks = rng.choices(range(len(values)), weights=pg, k=_CANDIDATES)
        best = max(picks, key=lambda i: (pg[i] / pb[i], -i))
        return values[best]
    ug = [_to_unit(d, float(v)) for v in good]
    ub = [_to_unit(d, float(v)) for v in bad]
    bw = max(0.05, 1.0 / (len(ug) + 1) ** 0.5 * 0.5)
    candidates = []
    for _ in range(_CANDIDATES):
        if rng.random() < 1.0 / (len(ug) + 1):
            candidates.append(rng.random())
        else:
            candidates.append(min(1.0, max(0.0, rng.gauss(rng.choice(ug), bw))))
    best_u = max(candidates, key=lambda u: _kde(ug, u) / _kde(ub, u))
    return _from_unit(d, best_u)
