"""Turn a Deployment's strategy into the neutral sequence of phases a rollout controller executes.

Phases: ``create`` (start green), ``wait_ready``, ``shift`` (set weights), ``mirror`` (shadow
share), ``bake`` (watch alarms for a while; any ALARM rolls back), ``promote`` / ``discard``
(shadow), ``conclude`` (an A/B test that keeps blue), ``retire`` (remove blue after the termination wait). Weights are integer percentages that
always sum to 100 and only ever name deployments that are ready.

Example:
    >>> from cloudml.spec.deployment import Deployment
    >>> from cloudml.rollout_plan import plan_rollout
    >>> d = Deployment(endpoint="churn", model={"group": "churn"},
    ...                strategy={"canary": {"percent": 10, "bake": "5m"}},
    ...                alarms=[{"name": "err", "metric": "error_rate", "threshold": 0.01}])
    >>> [(p["phase"], p.get("weights")) for p in plan_rollout(d)["phases"]]
    [('create', None), ('wait_ready', None), ('shift', {'blue': 90, 'green': 10}), ('bake', None), ('shift', {'blue': 0, 'green': 100}), ('bake', None), ('retire', None)]
"""

from __future__ import annotations

from typing import Any

from cloudml.spec.deployment import ABTest, Canary, Deployment, Linear, Shadow
from cloudml.spec.types import format_duration

__all__ = ["linear_steps", "plan_rollout"]


def linear_steps(step_percent: float) -> list[int]:
    """Green's share after each linear step, ending at 100.

    Example:
        >>> linear_steps(30)
        [30, 60, 90, 100]
    """
    shares: list[int] = []
    i = 1
    while not shares or shares[-1] < 100:
        share = min(100, max(1, round(step_percent * i)))
        if not shares or share > shares[-1]:
            shares.append(share)
        i += 1
    return shares


def _shift(green: int) -> dict[str, Any]:
    return {"phase": "shift", "weights": {"blue": 100 - green, "green": green}}


def _bake(seconds: float, alarms: list[str]) -> dict[str, Any]:
    return {"phase": "bake", "duration": format_duration(seconds), "seconds": seconds, "alarms": alarms}


def plan_rollout(d: Deployment) -> dict[str, Any]:
    """The rollout plan for a deployment, as plain data (what ``cloudml compile`` prints for a Deployment).

    Example:
        >>> from cloudml.spec.deployment import Deployment
        >>> d = Deployment(endpoint="ep", model={"group": "g"}, strategy={"linear": {"step_percent": 50}},
        ...                alarms=[{"name": "slow", "metric": "latency_p99", "threshold": "300ms"}])
        >>> [p.get("weights", {}).get("green") for p in plan_rollout(d)["phases"] if p["phase"] == "shift"]
        [50, 100]
    """
    alarms = [a.name for a in d.alarms]
    cfg = d.strategy.config
    phases: list[dict[str, Any]] = [{"phase": "create", "deployment": "green", "model": d.model.model_dump()},
                                    {"phase": "wait_ready", "deployment": "green"}]
    if isinstance(cfg, Shadow):
        phases += [
            {"phase": "mirror", "deployment": "green", "percent": max(1, round(cfg.percent))},
            _bake(cfg.duration, alarms),
            {"phase": "promote" if cfg.promote else "discard", "deployment": "green"},
        ]
        if cfg.promote:
            phases.append(_shift(100))
    elif isinstance(cfg, ABTest):
        phases += [_shift(max(1, min(99, round(cfg.percent)))), _bake(cfg.duration, alarms)]
        if cfg.conclude == "promote":
            phases.append(_shift(100))
        else:
            phases.append({"phase": "conclude", "keep": "blue"})
    elif isinstance(cfg, Canary):
        phases += [_shift(max(1, round(cfg.percent))), _bake(cfg.bake, alarms), _shift(100),
                   _bake(cfg.final_bake if cfg.final_bake is not None else cfg.bake, alarms)]
    elif isinstance(cfg, Linear):
        for share in linear_steps(cfg.step_percent):
            phases += [_shift(share), _bake(cfg.interval, alarms)]
    else:
        phases += [_shift(100), _bake(cfg.bake, alarms)]
    if not (isinstance(cfg, Shadow) and not cfg.promote) and not (isinstance(cfg, ABTest) and cfg.conclude == "rollback"):
        phases.append({"phase": "retire", "deployment": "blue",
                       "after": format_duration(d.rollback.termination_wait)})
    return {
        "endpoint": d.endpoint,
        "strategy": d.strategy.name,
        "model": d.model.model_dump(),
        "alarms": [a.model_dump(mode="json", exclude_defaults=True) for a in d.alarms],
        "rollback": {"automatic": d.rollback.automatic,
                     "termination_wait": format_duration(d.rollback.termination_wait),
                     "on": "any alarm in ALARM during a bake" if d.rollback.automatic else "manual only"},
        "max_duration": format_duration(d.max_duration),
        "phases": phases,
    }
