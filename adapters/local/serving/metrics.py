"""Per-deployment request metrics kept by the local gateway, in one-second buckets.

Each bucket holds the request count, the error count (5xx answers and model exceptions) and a
bounded sample of latencies. Periods of any whole number of seconds are aggregated from buckets,
so alarms can ask for "the last 3 complete 60 s periods" and tests for "the last 3 complete 1 s
periods". Also rendered as Prometheus text.

Example:
    >>> m = DeploymentMetrics()
    >>> m.record(0.010, error=False, now=100.2); m.record(0.030, error=True, now=100.7)
    >>> m.periods(period=1, count=2, now=101.5)
    [{'start': 99, 'requests': 0, 'errors': 0, 'latencies': []}, {'start': 100, 'requests': 2, 'errors': 1, 'latencies': [0.01, 0.03]}]
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from typing import Any

__all__ = ["LATENCY_BUCKETS", "DeploymentMetrics", "period_value", "prometheus_text"]

KEEP_SECONDS = 3600
SAMPLES_PER_BUCKET = 2000
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _Bucket:
    __slots__ = ("errors", "latencies", "requests", "second")

    def __init__(self, second: int) -> None:
        self.second = second
        self.requests = 0
        self.errors = 0
        self.latencies: list[float] = []


class DeploymentMetrics:
    """Thread-safe counters and latency samples for one deployment."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[int, _Bucket] = {}
        self._order: deque[int] = deque()
        self.total = 0
        self.total_errors = 0
        self.histogram = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.inflight = 0

    def record(self, latency: float, *, error: bool, now: float | None = None) -> None:
        """Count one finished request."""
        second = int(now if now is not None else time.time())
        with self._lock:
            bucket = self._buckets.get(second)
            if bucket is None:
                bucket = self._buckets[second] = _Bucket(second)
                self._order.append(second)
                while self._order and self._order[0] < second - KEEP_SECONDS:
                    self._buckets.pop(self._order.popleft(), None)
            bucket.requests += 1
            bucket.errors += int(error)
            if len(bucket.latencies) < SAMPLES_PER_BUCKET:
                bucket.latencies.append(latency)
            else:  # reservoir sampling keeps the sample unbiased under heavy load
                j = random.randrange(bucket.requests)
                if j < SAMPLES_PER_BUCKET:
                    bucket.latencies[j] = latency
            self.total += 1
            self.total_errors += int(error)
            self.latency_sum += latency
            self.histogram[_bucket_index(latency)] += 1

    def periods(self, period: int, count: int, now: float | None = None) -> list[dict[str, Any]]:
        """The last ``count`` *complete* periods of ``period`` seconds, oldest first."""
        now_s = int(now if now is not None else time.time())
        current_start = now_s - now_s % period
        starts = [current_start - period * (count - i) for i in range(count)]
        out: list[dict[str, Any]] = [{"start": s, "requests": 0, "errors": 0, "latencies": []} for s in starts]
        with self._lock:
            for b in self._buckets.values():
                idx = (b.second - starts[0]) // period if starts else -1
                if 0 <= idx < count:
                    out[idx]["requests"] += b.requests
                    out[idx]["errors"] += b.errors
                    out[idx]["latencies"].extend(b.latencies)
        return out

    def snapshot(self) -> dict[str, Any]:
        """Totals since start (for the live view and the API)."""
        with self._lock:
            return {"requests": self.total, "errors": self.total_errors, "inflight": self.inflight,
                    "latency_avg": self.latency_sum / self.total if self.total else None}


def _bucket_index(latency: float) -> int:
    for i, edge in enumerate(LATENCY_BUCKETS):
        if latency <= edge:
            return i
    return len(LATENCY_BUCKETS)


def period_value(metric: str, period: dict[str, Any]) -> float | None:
    """The value of a neutral alarm metric for one period (None when there is no data).

    Example:
        >>> period_value("error_rate", {"requests": 4, "errors": 1, "latencies": [0.1] * 4})
        0.25
        >>> period_value("latency_p99", {"requests": 0, "errors": 0, "latencies": []}) is None
        True
    """
    requests = int(period["requests"])
    if metric == "invocations":
        return float(requests)
    if requests == 0:
        return None
    if metric == "error_rate":
        return float(period["errors"]) / requests
    q = {"latency_p50": 50, "latency_p90": 90, "latency_p99": 99}[metric]
    values: list[float] = sorted(period["latencies"])
    if not values:
        return None
    return float(values[max(1, math.ceil(q / 100 * len(values))) - 1])


def prometheus_text(metrics: dict[tuple[str, str], DeploymentMetrics]) -> str:
    """Prometheus exposition text for every (endpoint, deployment).

    Example:
        >>> m = DeploymentMetrics(); m.record(0.02, error=False)
        >>> "cloudml_requests_total" in prometheus_text({("ep", "blue"): m})
        True
    """
    lines = [
        "# HELP cloudml_requests_total Requests answered, by endpoint and deployment.",
        "# TYPE cloudml_requests_total counter",
    ]
    for (ep, dep), m in sorted(metrics.items()):
        lines.append(f'cloudml_requests_total{{endpoint="{ep}",deployment="{dep}"}} {m.total}')
    lines += ["# HELP cloudml_errors_total Requests that failed (5xx or model exception).",
              "# TYPE cloudml_errors_total counter"]
    for (ep, dep), m in sorted(metrics.items()):
        lines.append(f'cloudml_errors_total{{endpoint="{ep}",deployment="{dep}"}} {m.total_errors}')
    lines += ["# HELP cloudml_request_latency_seconds Request latency through the gateway.",
              "# TYPE cloudml_request_latency_seconds histogram"]
    for (ep, dep), m in sorted(metrics.items()):
        labels = f'endpoint="{ep}",deployment="{dep}"'
        cumulative = 0
        for edge, n in zip((*LATENCY_BUCKETS, math.inf), m.histogram, strict=True):
            cumulative += n
            le = "+Inf" if edge == math.inf else f"{edge}"
            lines.append(f'cloudml_request_latency_seconds_bucket{{{labels},le="{le}"}} {cumulative}')
        lines.append(f"cloudml_request_latency_seconds_sum{{{labels}}} {m.latency_sum}")
        lines.append(f"cloudml_request_latency_seconds_count{{{labels}}} {m.total}")
    return "\n".join(lines) + "\n"
