"""Alarm evaluation with CloudWatch's semantics, for every backend that has no native alarms.

An alarm looks at the last ``evaluation_periods`` complete periods of one metric. Each period
either breaches the threshold, does not, or has no data. Missing periods are handled by
``treat_missing_data``:

* ``missing`` — ignored; with no data at all the state is ``INSUFFICIENT_DATA``;
* ``not_breaching`` / ``breaching`` — counted as good / bad;
* ``ignore`` — the current state is kept when data is missing.

The state is ``ALARM`` when at least ``datapoints_to_alarm`` periods breach, else ``OK``.

Example:
    >>> from cloudml.spec.deployment import Alarm
    >>> a = Alarm(name="err", metric="error_rate", threshold=0.05, evaluation_periods=3, datapoints_to_alarm=2)
    >>> evaluate_alarm(a, [0.0, 0.2, 0.3]).state
    'ALARM'
    >>> evaluate_alarm(a, [None, None, None]).state
    'INSUFFICIENT_DATA'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from cloudml.spec.deployment import Alarm

__all__ = ["AlarmState", "AlarmStatus", "breaches", "evaluate_alarm", "percentile"]

AlarmState = Literal["OK", "ALARM", "INSUFFICIENT_DATA"]


@dataclass(frozen=True)
class AlarmStatus:
    """An alarm's state, the datapoints it saw (oldest first) and the value that decided it."""

    name: str
    state: AlarmState
    datapoints: tuple[float | None, ...]
    breaching: int
    value: float | None
    reason: str


def breaches(value: float, comparison: str, threshold: float) -> bool:
    """Whether one datapoint breaches.

    Example:
        >>> breaches(0.3, "gt", 0.25), breaches(0.25, "gt", 0.25), breaches(0.25, "gte", 0.25)
        (True, False, True)
    """
    return {"gt": value > threshold, "gte": value >= threshold, "lt": value < threshold,
            "lte": value <= threshold}[comparison]


def evaluate_alarm(alarm: Alarm, datapoints: Sequence[float | None],
                   previous: AlarmState = "INSUFFICIENT_DATA") -> AlarmStatus:
    """Evaluate ``alarm`` over per-period datapoints (oldest first; ``None`` = no data in that period).

    Only the last ``evaluation_periods`` datapoints count.

    Example:
        >>> from cloudml.spec.deployment import Alarm
        >>> a = Alarm(name="slow", metric="latency_p99", threshold="250ms", treat_missing_data="breaching")
        >>> evaluate_alarm(a, [None]).state, evaluate_alarm(a, [0.1]).state
        ('ALARM', 'OK')
    """
    assert alarm.threshold is not None and alarm.metric is not None
    recent: list[float | None] = list(datapoints)[-alarm.evaluation_periods:]
    padding: list[float | None] = [None] * (alarm.evaluation_periods - len(recent))
    window = padding + recent
    need = alarm.required_datapoints
    bad = good = 0
    worst: float | None = None
    for value in window:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            if alarm.treat_missing_data == "breaching":
                bad += 1
            elif alarm.treat_missing_data == "not_breaching":
                good += 1
            continue
        if breaches(value, alarm.comparison, alarm.threshold):
            bad += 1
            worst = value if worst is None else _worse(worst, value, alarm.comparison)
        else:
            good += 1
    present = [v for v in window if v is not None and not (isinstance(v, float) and math.isnan(v))]
    last = present[-1] if present else None
    value = worst if worst is not None else last
    if bad >= need:
        reason = f"{bad} of the last {alarm.evaluation_periods} periods breached {alarm.comparison} {alarm.threshold:g}"
        return AlarmStatus(alarm.name, "ALARM", tuple(window), bad, value, reason)
    if bad + good == 0:
        state: AlarmState = previous if alarm.treat_missing_data == "ignore" else "INSUFFICIENT_DATA"
        return AlarmStatus(alarm.name, state, tuple(window), 0, None, "no data in the evaluation window")
    return AlarmStatus(alarm.name, "OK", tuple(window), bad, value,
                       f"{bad} of {alarm.evaluation_periods} periods breached (needs {need})")


def _worse(a: float, b: float, comparison: str) -> float:
    return max(a, b) if comparison in ("gt", "gte") else min(a, b)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by nearest rank; None for no values.

    Example:
        >>> percentile([1, 2, 3, 4, 100], 50), percentile([], 99)
        (3, None)
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]
