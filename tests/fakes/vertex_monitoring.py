"""A gRPC fake of Cloud Monitoring's MetricService.ListTimeSeries serving Vertex AI prediction metrics.

Cloud Monitoring has no REST transport in google-cloud-monitoring, so the fake is a real
``grpc.server`` on 127.0.0.1 and the real ``MetricServiceClient`` reaches it through an explicit
insecure channel (a ``client_options`` endpoint would build a TLS channel; see notes/vertex.md).

The test controls the data: ``record(endpoint_id, deployed_model_id, requests=, errors=, latency_ms=,
at=)`` stores raw prediction events, or ``attach(vertex_fake)`` records every ``:predict`` the Vertex fake
serves. A query is answered the way Cloud Monitoring answers it: the filter picks the metric type and
labels, and ``ALIGN_DELTA`` over ``alignment_period`` turns the events inside the interval into one point
per period that has data (newest first), for these metrics of ``aiplatform.googleapis.com/Endpoint``:

- ``prediction/online/response_count``: INT64, one series per ``response_code`` ("200" or "500");
- ``prediction/online/prediction_latencies``: DISTRIBUTION in ms (explicit buckets), one series per
  ``latency_type`` (``total``; ``model`` is 80% of it, so a filter that forgets the type sees both).

Example:
    >>> with MonitoringFake() as mon:
    ...     mon.record("1", "2", requests=4, errors=1, at=100.5)
    ...     series = list(mon.client().list_time_series(request=mon.request(RESPONSE_COUNT, "1", "2", 99, 101, 1)))
    >>> sorted((s.metric.labels["response_code"], s.points[0].value.int64_value) for s in series)
    [('200', 3), ('500', 1)]
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

__all__ = ["BOUNDS_MS", "LATENCIES", "RESPONSE_COUNT", "MonitoringFake", "monitoring_fake"]

RESPONSE_COUNT = "aiplatform.googleapis.com/prediction/online/response_count"
LATENCIES = "aiplatform.googleapis.com/prediction/online/prediction_latencies"
BOUNDS_MS = [0.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0]
_TERM = re.compile(r'^\s*([\w.]+)\s*=\s*"([^"]*)"\s*$')
_KNOWN = {"metric.type", "resource.type", "resource.labels.endpoint_id", "metric.labels.deployed_model_id",
          "metric.labels.latency_type", "metric.labels.response_code"}


@dataclass(frozen=True)
class Event:
    """Requests served by one deployed model at one moment: how many, how many failed, how slow."""

    at: float
    endpoint_id: str
    deployed_model_id: str
    requests: int
    errors: int
    latency_ms: float


class MonitoringFake:
    """The gRPC server; ``events``, ``requests`` (the ListTimeSeriesRequests seen) and ``inject`` for faults."""

    def __init__(self, project: str = "test-proj", location: str = "us-central1") -> None:
        self.project, self.location = project, location
        self.events: list[Event] = []
        self.requests: list[Any] = []
        self.faults: list[tuple[Any, str]] = []
        self._lock = threading.Lock()
        self._server: Any = None
        self.port = 0

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> MonitoringFake:
        """Serve on a free port of 127.0.0.1 (insecure)."""
        import grpc
        from google.cloud.monitoring_v3.types import ListTimeSeriesRequest, ListTimeSeriesResponse

        self._server = grpc.server(ThreadPoolExecutor(max_workers=4))
        handler = grpc.method_handlers_generic_handler("google.monitoring.v3.MetricService", {
            "ListTimeSeries": grpc.unary_unary_rpc_method_handler(
                self._list, request_deserializer=ListTimeSeriesRequest.deserialize,
                response_serializer=ListTimeSeriesResponse.serialize)})
        self._server.add_generic_rpc_handlers((handler,))
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        return self

    def close(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.stop(grace=None)
            self._server = None

    def __enter__(self) -> MonitoringFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def client(self) -> Any:
        """A real ``MetricServiceClient`` on an insecure channel to this fake."""
        import grpc
        from google.cloud.monitoring_v3 import MetricServiceClient
        from google.cloud.monitoring_v3.services.metric_service.transports import MetricServiceGrpcTransport

        channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        return MetricServiceClient(transport=MetricServiceGrpcTransport(channel=channel))

    # -- knobs ------------------------------------------------------------------------------------------
    def record(self, endpoint_id: str, deployed_model_id: str, *, requests: int = 1, errors: int = 0,
               latency_ms: float = 20.0, at: float | None = None) -> None:
        """Store ``requests`` predictions (``errors`` of them failed) served by a deployed model."""
        with self._lock:
            self.events.append(Event(time.time() if at is None else at, endpoint_id, deployed_model_id,
                                     requests, errors, latency_ms))

    def attach(self, vertex_fake: Any) -> None:
        """Record every ``:predict`` the Vertex REST fake serves (its ``on_predict`` hook)."""
        def hook(endpoint: str, deployed_id: str, ok: bool, latency_ms: float) -> None:
            self.record(endpoint.rsplit("/", 1)[-1], deployed_id, errors=0 if ok else 1, latency_ms=latency_ms)

        vertex_fake.on_predict = hook

    def inject(self, code: Any = None, times: int = 1, message: str = "injected") -> None:
        """Fail the next ``times`` calls with a gRPC status (UNAVAILABLE by default)."""
        import grpc

        with self._lock:
            self.faults += [(code or grpc.StatusCode.UNAVAILABLE, message)] * times

    def request(self, metric: str, endpoint_id: str, deployed_id: str, start: float, end: float, period: int) -> Any:
        """A ListTimeSeriesRequest like the adapter's (for examples and direct checks)."""
        from google.cloud import monitoring_v3

        flt = (f'metric.type = "{metric}" AND resource.labels.endpoint_id = "{endpoint_id}" '
               f'AND metric.labels.deployed_model_id = "{deployed_id}"')
        return monitoring_v3.ListTimeSeriesRequest(
            name=f"projects/{self.project}", filter=flt,
            interval=monitoring_v3.TimeInterval(start_time={"seconds": int(start)}, end_time={"seconds": int(end)}),
            aggregation=monitoring_v3.Aggregation(alignment_period={"seconds": period},
                                                  per_series_aligner=monitoring_v3.Aggregation.Aligner.ALIGN_DELTA))

    # -- the RPC ----------------------------------------------------------------------------------------
    def _list(self, request: Any, context: Any) -> Any:
        import grpc
        from google.cloud.monitoring_v3.types import ListTimeSeriesResponse

        with self._lock:
            self.requests.append(request)
            fault = self.faults.pop(0) if self.faults else None
            events = list(self.events)
        if fault is not None:
            context.abort(fault[0], fault[1])
        if request.name != f"projects/{self.project}":
            context.abort(grpc.StatusCode.NOT_FOUND, f"Project {request.name} does not exist or is not monitored.")
        terms: dict[str, str] = {}
        for term in [t for t in re.split(r"\s+AND\s+", request.filter) if t.strip()]:
            m = _TERM.match(term)
            if not m or m[1] not in _KNOWN:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"the fake cannot evaluate filter term {term!r}")
            terms[m[1]] = m[2]
        metric = terms.get("metric.type")
        if metric not in (RESPONSE_COUNT, LATENCIES):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"filter must name a known metric.type, got {metric!r}")
        if terms.get("resource.type", "aiplatform.googleapis.com/Endpoint") != "aiplatform.googleapis.com/Endpoint":
            return ListTimeSeriesResponse()
        agg = request.aggregation
        period = int(agg.alignment_period.total_seconds()) if agg.alignment_period else 0
        if agg.per_series_aligner.name != "ALIGN_DELTA" or period < 1:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the fake serves only ALIGN_DELTA with an alignment_period")
        start, end = request.interval.start_time.timestamp(), request.interval.end_time.timestamp()
        if end <= start:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "interval.end_time must be after start_time")
        chosen = [e for e in events if start < e.at <= end
                  and terms.get("resource.labels.endpoint_id", e.endpoint_id) == e.endpoint_id
                  and terms.get("metric.labels.deployed_model_id", e.deployed_model_id) == e.deployed_model_id]
        if metric == RESPONSE_COUNT:
            series = self._counts(chosen, end, period, terms)
        else:
            series = self._latencies(chosen, end, period, terms)
        return ListTimeSeriesResponse(time_series=series)

    def _slots(self, events: list[Event], end: float, period: int) -> dict[int, list[Event]]:
        slots: dict[int, list[Event]] = {}
        for e in events:
            k = max(0, math.ceil((end - e.at) / period) - 1)  # 0 = the period ending at `end`
            slots.setdefault(k, []).append(e)
        return slots

    def _series(self, deployed_id: str, endpoint_id: str, labels: dict[str, str], kind: str, points: list[Any]) -> Any:
        from google.cloud.monitoring_v3.types import TimeSeries

        return TimeSeries(
            metric={"type": RESPONSE_COUNT if kind == "INT64" else LATENCIES,
                    "labels": {"deployed_model_id": deployed_id, **labels}},
            resource={"type": "aiplatform.googleapis.com/Endpoint",
                      "labels": {"endpoint_id": endpoint_id, "location": self.location,
                                 "resource_container": f"projects/{self.project}"}},
            metric_kind="DELTA", value_type=kind, points=points)

    @staticmethod
    def _point(end: float, period: int, k: int, value: dict[str, Any]) -> dict[str, Any]:
        stop = int(end - k * period)
        return {"interval": {"start_time": {"seconds": stop - period}, "end_time": {"seconds": stop}}, "value": value}

    def _groups(self, events: list[Event]) -> dict[tuple[str, str], list[Event]]:
        groups: dict[tuple[str, str], list[Event]] = {}
        for e in events:
            groups.setdefault((e.endpoint_id, e.deployed_model_id), []).append(e)
        return groups

    def _counts(self, events: list[Event], end: float, period: int, terms: dict[str, str]) -> list[Any]:
        out = []
        for (endpoint_id, deployed_id), group in self._groups(events).items():
            slots = self._slots(group, end, period)
            for code, pick in (("200", lambda e: e.requests - e.errors), ("500", lambda e: e.errors)):
                if terms.get("metric.labels.response_code", code) != code:
                    continue
                points = [self._point(end, period, k, {"int64_value": sum(pick(e) for e in slot)})
                          for k, slot in sorted(slots.items()) if sum(pick(e) for e in slot)]
                if points:
                    out.append(self._series(deployed_id, endpoint_id, {"response_code": code}, "INT64", points))
        return out

    def _latencies(self, events: list[Event], end: float, period: int, terms: dict[str, str]) -> list[Any]:
        out = []
        for (endpoint_id, deployed_id), group in self._groups(events).items():
            slots = self._slots(group, end, period)
            for kind, scale in (("total", 1.0), ("model", 0.8)):
                if terms.get("metric.labels.latency_type", kind) != kind:
                    continue
                points = [self._point(end, period, k, {"distribution_value": _distribution(slot, scale)})
                          for k, slot in sorted(slots.items())]
                out.append(self._series(deployed_id, endpoint_id, {"latency_type": kind}, "DISTRIBUTION", points))
        return out


def _distribution(events: list[Event], scale: float) -> dict[str, Any]:
    counts = [0] * (len(BOUNDS_MS) + 1)
    total = 0
    weighted = 0.0
    for e in events:
        value = e.latency_ms * scale
        index = sum(1 for b in BOUNDS_MS if value >= b)  # 0: underflow; len(BOUNDS_MS): overflow
        counts[index] += e.requests
        total += e.requests
        weighted += value * e.requests
    return {"count": total, "mean": weighted / total if total else 0.0,
            "bucket_options": {"explicit_buckets": {"bounds": BOUNDS_MS}}, "bucket_counts": counts}


@contextmanager
def monitoring_fake(**options: Any) -> Iterator[MonitoringFake]:
    """Start a :class:`MonitoringFake`, yield it, and stop it.

    Example:
        >>> with monitoring_fake() as mon:
        ...     mon.port > 0
        True
    """
    fake = MonitoringFake(**options).start()
    try:
        yield fake
    finally:
        fake.close()
