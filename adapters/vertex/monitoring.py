"""Neutral alarm metrics of a Vertex AI deployed model, read from Cloud Monitoring (gRPC only).

Vertex AI writes online-prediction metrics per deployed model on the monitored resource
``aiplatform.googleapis.com/Endpoint`` (label ``endpoint_id``), with the metric label
``deployed_model_id``:

- ``prediction/online/response_count`` (DELTA INT64, label ``response_code``): requests and errors;
- ``prediction/online/prediction_latencies`` (DELTA DISTRIBUTION in milliseconds, label ``latency_type``;
  ``total`` is the one read here).

:class:`VertexMetrics` asks ``MetricServiceClient.list_time_series`` for the last
``evaluation_periods`` complete periods, aligned with ``ALIGN_DELTA`` over the alarm's period, and
turns them into one value per period (oldest first, ``None`` for a period without data) for
:func:`cloudml.alarms.evaluate_alarm`: ``error_rate`` (non-2xx / all responses), ``invocations``
(responses), ``latency_p50|p90|p99`` (from the merged latency histogram, in seconds).

Example:
    >>> from cloudml.spec.deployment import Alarm
    >>> q = series_filter(RESPONSE_COUNT, "123", "456")
    >>> 'metric.labels.deployed_model_id = "456"' in q, q.startswith('metric.type = "aiplatform')
    (True, True)
    >>> histogram_percentile([0.0, 10.0, 100.0], [0, 9, 1, 0], 50)
    5.555555555555555
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from cloudml.errors import BackendError, ConfigError

__all__ = ["LATENCIES", "RESPONSE_COUNT", "VertexMetrics", "bucket_bounds", "histogram_percentile",
           "series_filter"]

RESPONSE_COUNT = "aiplatform.googleapis.com/prediction/online/response_count"
LATENCIES = "aiplatform.googleapis.com/prediction/online/prediction_latencies"
RESOURCE = "aiplatform.googleapis.com/Endpoint"
_HINT = ("reading Cloud Monitoring failed: grant the caller roles/monitoring.viewer on the project; the rollout "
         "stays in progress, so `cloudml rollout resume ENDPOINT` continues it once Monitoring answers")


def series_filter(metric: str, endpoint_id: str, deployed_model_id: str) -> str:
    """The Cloud Monitoring filter for one metric of one deployed model.

    Example:
        >>> series_filter(LATENCIES, "1", "2").endswith('metric.labels.latency_type = "total"')
        True
    """
    parts = [f'metric.type = "{metric}"', f'resource.type = "{RESOURCE}"',
             f'resource.labels.endpoint_id = "{endpoint_id}"', f'metric.labels.deployed_model_id = "{deployed_model_id}"']
    if metric == LATENCIES:
        parts.append('metric.labels.latency_type = "total"')
    return " AND ".join(parts)


def bucket_bounds(options: Any, count: int) -> list[float]:
    """The finite bucket boundaries of a Distribution's ``bucket_options`` (explicit, linear or exponential).

    ``count`` is the number of buckets (underflow and overflow included).

    Example:
        >>> from types import SimpleNamespace as NS
        >>> opts = NS(explicit_buckets=NS(bounds=[]), linear_buckets=NS(num_finite_buckets=0),
        ...           exponential_buckets=NS(num_finite_buckets=3, growth_factor=2.0, scale=1.0))
        >>> bucket_bounds(opts, 5)
        [1.0, 2.0, 4.0, 8.0]
    """
    explicit = list(getattr(getattr(options, "explicit_buckets", None), "bounds", []) or [])
    if explicit:
        return [float(b) for b in explicit]
    linear: Any = getattr(options, "linear_buckets", None)
    if linear is not None and linear.num_finite_buckets:
        return [float(linear.offset + linear.width * i) for i in range(linear.num_finite_buckets + 1)]
    exp: Any = getattr(options, "exponential_buckets", None)
    if exp is not None and exp.num_finite_buckets:
        return [float(exp.scale * exp.growth_factor ** i) for i in range(exp.num_finite_buckets + 1)]
    return [0.0] * max(0, count - 1)


def histogram_percentile(bounds: Sequence[float], counts: Sequence[int], q: float) -> float | None:
    """The q-th percentile (0-100) of a histogram, interpolated inside the bucket that holds it.

    ``counts[0]`` is the underflow bucket (below ``bounds[0]``) and ``counts[-1]`` the overflow bucket
    (from ``bounds[-1]``); values there read as the nearest bound.

    Example:
        >>> histogram_percentile([0.0, 100.0, 200.0], [0, 0, 10, 0], 99)
        199.0
        >>> histogram_percentile([1.0], [0, 0], 50) is None
        True
    """
    total = sum(counts)
    if total <= 0:
        return None
    rank = q / 100 * total
    seen = 0.0
    for i, c in enumerate(counts):
        if c and seen + c >= rank:
            if i == 0:
                return float(bounds[0])
            if i >= len(bounds):
                return float(bounds[-1])
            low, high = bounds[i - 1], bounds[i]
            return float(low + (high - low) * (rank - seen) / c)
        seen += c
    return float(bounds[-1])


class VertexMetrics:
    """Reads per-deployed-model alarm datapoints from Cloud Monitoring.

    ``client`` is a ``monitoring_v3.MetricServiceClient`` (tests pass one whose transport is an
    insecure gRPC channel to a fake on 127.0.0.1); without one, the default client is built on first use
    with Application Default Credentials. ``call`` wraps each request (retries and error translation:
    the Vertex client's ``call``).

    Example:
        >>> from cloudml.spec.deployment import Alarm
        >>> m = VertexMetrics("my-project", client=None, clock=lambda: 1000.0)
        >>> m.window(Alarm(name="e", metric="error_rate", threshold=0.1, period=60, evaluation_periods=3))
        (780, 960)
    """

    def __init__(self, project: str | None, client: Any = None, *, call: Callable[[str, Callable[[], Any]], Any] | None = None,
                 clock: Callable[[], float] = time.time, credentials: Any = None, endpoint: str | None = None) -> None:
        self.project = project
        self._client = client
        self.credentials = credentials
        self.endpoint = endpoint
        self._call = call or (lambda action, fn: fn())
        self.clock = clock

    def client(self) -> Any:
        """The MetricServiceClient (built lazily with default credentials when none was given).

        Example:
            >>> VertexMetrics(None).client()
            Traceback (most recent call last):
            ...
            cloudml.errors.ConfigError: reading Cloud Monitoring needs a project
        """
        if not self.project:
            raise ConfigError("reading Cloud Monitoring needs a project", hint="set vertex.project in cloudml.yaml")
        if self._client is None:
            from google.cloud import monitoring_v3

            if self.endpoint and self.endpoint.split(":", 1)[0] in ("127.0.0.1", "localhost"):
                # a fake or a tunnel on this machine: plain gRPC (the default would expect TLS)
                import grpc  # type: ignore[import-untyped]
                from google.cloud.monitoring_v3.services.metric_service.transports import (
                    MetricServiceGrpcTransport,
                )

                transport = MetricServiceGrpcTransport(channel=grpc.insecure_channel(self.endpoint))
                self._client = monitoring_v3.MetricServiceClient(transport=transport)
            elif self.endpoint:
                self._client = monitoring_v3.MetricServiceClient(credentials=self.credentials,
                                                                 client_options={"api_endpoint": self.endpoint})
            else:
                self._client = monitoring_v3.MetricServiceClient(credentials=self.credentials)
        return self._client

    def window(self, alarm: Any) -> tuple[int, int]:
        """``(start, end)`` in epoch seconds: the last ``evaluation_periods`` complete periods.

        Example: see :class:`VertexMetrics`.
        """
        period = max(1, round(alarm.period))
        end = int(self.clock() // period * period)
        return end - period * alarm.evaluation_periods, end

    def _series(self, metric: str, endpoint_id: str, deployed_id: str, alarm: Any) -> tuple[list[Any], int, int, int]:
        from google.cloud import monitoring_v3

        client = self.client()
        start, end = self.window(alarm)
        period = max(1, round(alarm.period))
        request = monitoring_v3.ListTimeSeriesRequest(
            name=f"projects/{self.project}", filter=series_filter(metric, endpoint_id, deployed_id),
            interval=monitoring_v3.TimeInterval(start_time={"seconds": start}, end_time={"seconds": end}),
            aggregation=monitoring_v3.Aggregation(
                alignment_period={"seconds": period},
                per_series_aligner=monitoring_v3.Aggregation.Aligner.ALIGN_DELTA),
            view=monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.FULL)
        try:
            series = self._call(f"read {metric.rsplit('/', 1)[-1]} of deployed model {deployed_id}",
                                lambda: list(client.list_time_series(request=request)))
        except BackendError as e:  # the Vertex client's hints speak of pipeline runs: say what matters here
            e.hint = _HINT
            raise
        return list(series), start, end, period

    @staticmethod
    def _slot(point: Any, end: int, period: int, count: int) -> int | None:
        ts = point.interval.end_time
        seconds = ts.timestamp() if hasattr(ts, "timestamp") else float(ts.seconds)
        k = round((end - seconds) / period)  # 0 = the newest complete period
        index = count - 1 - k
        return index if 0 <= index < count else None

    def datapoints(self, endpoint_id: str, deployed_id: str, alarm: Any) -> list[float | None]:
        """One value per complete period of ``alarm.metric``, oldest first (None: no data).

        Example (a stand-in client answering nothing):
            >>> from types import SimpleNamespace as NS
            >>> from cloudml.spec.deployment import Alarm
            >>> m = VertexMetrics("p", client=NS(list_time_series=lambda request: []), clock=lambda: 600.0)
            >>> m.datapoints("1", "2", Alarm(name="e", metric="error_rate", threshold=0.1, evaluation_periods=2))
            [None, None]
        """
        n = alarm.evaluation_periods
        if alarm.metric in ("error_rate", "invocations"):
            series, _, end, period = self._series(RESPONSE_COUNT, endpoint_id, deployed_id, alarm)
            total = [0] * n
            errors = [0] * n
            seen = [False] * n
            for s in series:
                code = str(s.metric.labels.get("response_code", "200"))
                for p in s.points:
                    i = self._slot(p, end, period, n)
                    if i is None:
                        continue
                    value = int(p.value.int64_value)
                    seen[i] = True
                    total[i] += value
                    if not code.startswith("2"):
                        errors[i] += value
            if alarm.metric == "invocations":
                return [float(t) if seen[i] else None for i, t in enumerate(total)]
            return [errors[i] / total[i] if seen[i] and total[i] else None for i in range(n)]
        q = {"latency_p50": 50.0, "latency_p90": 90.0, "latency_p99": 99.0}[alarm.metric]
        series, _, end, period = self._series(LATENCIES, endpoint_id, deployed_id, alarm)
        merged: list[tuple[list[float], list[int]] | None] = [None] * n
        for s in series:
            for p in s.points:
                i = self._slot(p, end, period, n)
                if i is None:
                    continue
                d = p.value.distribution_value
                counts = [int(c) for c in d.bucket_counts]
                bounds = bucket_bounds(d.bucket_options, len(counts))
                if not counts and d.count:  # no histogram: the mean stands for every request
                    bounds, counts = [float(d.mean)], [0, int(d.count)]
                current = merged[i]
                if current is None:
                    merged[i] = (bounds, counts)
                elif current[0] == bounds:
                    merged[i] = (bounds, [a + b for a, b in zip(_pad(current[1], len(counts)),
                                                               _pad(counts, len(current[1])), strict=True)])
        out: list[float | None] = []
        for m in merged:
            found = histogram_percentile(m[0], m[1], q) if m else None
            out.append(None if found is None or math.isnan(found) else found / 1000.0)  # ms -> s
        return out


def _pad(values: list[int], size: int) -> list[int]:
    return values + [0] * (size - len(values))
