"""Neutral alarms from Azure Monitor metrics of a managed online endpoint, per deployment.

Managed online endpoints publish, with a ``deployment`` dimension (resource type
``Microsoft.MachineLearningServices/workspaces/onlineEndpoints``):

* ``RequestLatency_P50`` / ``_P90`` / ``_P99`` in milliseconds: ``latency_p50/p90/p99`` (seconds here);
* ``RequestsPerMinute`` with ``statusCodeClass``: ``invocations`` (Total per period) and ``error_rate``
  (the 5xx Total over the Total of every class, per period; no requests gives no datapoint).

There is no error-rate metric, so it is derived. They are read with
``azure.mgmt.monitor.MonitorManagementClient.metrics.list`` (ARM REST, api-version 2024-02-01). Azure
Monitor's finest grain is one minute: an alarm period is read as whole minutes, rounded up
(:func:`monitor_period`; 1s is one minute, 90s two), as CloudWatch rounds periods up for SageMaker. Periods that
are a native grain (1, 5, 15, 30 minutes, 1, 6, 12 hours, 1 day) are queried as they are; others are
read per minute and combined (counts summed, latency the worst minute, which can only alarm earlier).
Only complete periods count: the query ends at the last period boundary.

Example:
    >>> grain_for(300), grain_for(120)
    ('PT5M', 'PT1M')
    >>> metric_for("latency_p99")
    'RequestLatency_P99'
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

__all__ = ["GRAINS", "AzureMonitorMetrics", "grain_for", "metric_for", "monitor_period"]

GRAINS = {60: "PT1M", 300: "PT5M", 900: "PT15M", 1800: "PT30M", 3600: "PT1H", 21600: "PT6H", 43200: "PT12H",
          86400: "P1D"}
_LATENCY = {"latency_p50": "RequestLatency_P50", "latency_p90": "RequestLatency_P90",
            "latency_p99": "RequestLatency_P99"}


def metric_for(alarm_metric: str) -> str:
    """The Azure Monitor metric behind a neutral alarm metric.

    Example:
        >>> metric_for("error_rate"), metric_for("invocations")
        ('RequestsPerMinute', 'RequestsPerMinute')
    """
    return _LATENCY.get(alarm_metric, "RequestsPerMinute")


def monitor_period(period: float) -> int:
    """The period Azure Monitor evaluates for an alarm's ``period``: whole minutes, rounded up (at least one).

    Azure Monitor's finest grain is one minute, so a shorter or fractional period is read as the next
    whole minute, the way CloudWatch rounds periods up for SageMaker: the alarm gets coarser, never finer.

    Example:
        >>> monitor_period(1), monitor_period(60), monitor_period(90), monitor_period(300)
        (60, 60, 120, 300)
    """
    return max(60, math.ceil(period / 60) * 60)


def grain_for(period: float) -> str:
    """The time grain to query for an alarm period (the period itself when Azure Monitor has it).

    Example:
        >>> grain_for(3600)
        'PT1H'
    """
    return GRAINS.get(int(period), "PT1M")


class AzureMonitorMetrics:
    """Per-deployment datapoints for neutral alarms, read through a ``MonitorManagementClient``.

    ``call(action, fn)`` runs ``fn(monitor_client)`` and translates Azure errors (the Azure ML client's
    :meth:`call` shape); ``clock`` gives the time (tests move it).

    Example:
        >>> metrics = AzureMonitorMetrics(monitor_call, "/subscriptions/.../workspaces/ws")  # doctest: +SKIP
        >>> metrics.datapoints("churn", "churn-v2", alarm)  # doctest: +SKIP
        [0.0, 0.002, None]
    """

    def __init__(self, call: Callable[[str, Callable[[Any], Any]], Any], workspace_id: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.call = call
        self.workspace_id = workspace_id.rstrip("/")
        self.clock = clock

    def resource_uri(self, endpoint: str) -> str:
        """The ARM id of the endpoint, which carries the metrics.

        Example:
            >>> ws = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws"
            >>> AzureMonitorMetrics(print, ws).resource_uri("churn").endswith("/workspaces/ws/onlineEndpoints/churn")
            True
        """
        return f"{self.workspace_id}/onlineEndpoints/{endpoint}"

    def datapoints(self, endpoint: str, deployment: str, alarm: Any) -> list[float | None]:
        """The alarm metric of ``deployment``, one value per complete period, oldest first (None = no data).

        Example:
            >>> metrics.datapoints("churn", "churn-v2", Alarm(name="err", metric="error_rate", threshold=0.01))  # doctest: +SKIP
            [0.0]
        """
        period = monitor_period(alarm.period)
        grain = grain_for(period)
        end = int(self.clock()) // period * period
        start = end - alarm.evaluation_periods * period
        timespan = f"{_iso(start)}/{_iso(end)}"
        name = metric_for(alarm.metric)
        latency = alarm.metric in _LATENCY
        filter_ = f"deployment eq '{deployment}'" + ("" if latency or alarm.metric == "invocations"
                                                       else " and statusCodeClass eq '*'")
        response = self.call("metrics.list", lambda mon: mon.metrics.list(
            self.resource_uri(endpoint), timespan=timespan, interval=grain, metricnames=name,
            aggregation="Average" if latency else "Total", filter=filter_,
            metricnamespace="Microsoft.MachineLearningServices/workspaces/onlineEndpoints"))
        values, errors = _series(response, latency)
        out: list[float | None] = []
        for at in range(start, end, period):
            inside = [t for t in values if at <= t < at + period]
            if not inside:
                out.append(None)
            elif latency:
                out.append(max(values[t] for t in inside) / 1000.0)
            elif alarm.metric == "invocations":
                out.append(sum(values[t] for t in inside))
            else:
                total = sum(values[t] for t in inside)
                out.append(sum(errors.get(t, 0.0) for t in inside) / total if total else None)
        return out

    def alert_state(self, resource_group: str, rule: str, deployment: str) -> Any:
        """The state of an Azure Monitor metric alert rule for one deployment, as an :class:`AlarmStatus`.

        Read with ``metric_alerts_status.list``. An entry counts when its dimensions name no deployment
        or name this one; it is in ALARM when its status is not ``Healthy`` (the service's status words
        are unverified: ``Healthy`` is the one documented). No entry at all is INSUFFICIENT_DATA.

        Example:
            >>> metrics.alert_state("rg", "churn-5xx", "churn-v2").state  # doctest: +SKIP
            'OK'
        """
        from cloudml.alarms import AlarmStatus

        found = self.call("metric_alerts_status.list",
                          lambda mon: mon.metric_alerts_status.list(resource_group, rule))
        entries = [e.properties for e in found.value or [] if e.properties is not None]
        mine = [e for e in entries if (e.dimensions or {}).get("deployment", deployment) == deployment]
        if not mine:
            return AlarmStatus(rule, "INSUFFICIENT_DATA", (), 0, None, f"metric alert {rule} reports no status")
        bad = [e for e in mine if str(e.status or "").lower() != "healthy"]
        if bad:
            return AlarmStatus(rule, "ALARM", (), len(bad), None,
                               f"metric alert {rule} is {bad[0].status} for deployment {deployment}")
        return AlarmStatus(rule, "OK", (), 0, None, f"metric alert {rule} is Healthy")

    def periods(self, endpoint: str, deployment: str, period: int, count: int) -> list[dict[str, Any]]:
        """Requests, 5xx errors and error rate of a deployment per period, oldest first (the CLI's timeline).

        Periods shorter than a minute are read per minute (Azure Monitor's grain); ``count`` shrinks to match.

        Example:
            >>> metrics.periods("churn", "churn-v2", 60, 3)  # doctest: +SKIP
            [{'start': 1798000000, 'requests': 120.0, 'errors': 0.0, 'error_rate': 0.0}, ...]
        """
        step = max(60, int(period) // 60 * 60)
        slots = max(1, -(-int(period) * int(count) // step))
        end = int(self.clock()) // step * step
        start = end - slots * step
        grain = GRAINS.get(step, "PT1M")
        response = self.call("metrics.list", lambda mon: mon.metrics.list(
            self.resource_uri(endpoint), timespan=f"{_iso(start)}/{_iso(end)}", interval=grain,
            metricnames="RequestsPerMinute", aggregation="Total",
            filter=f"deployment eq '{deployment}' and statusCodeClass eq '*'",
            metricnamespace="Microsoft.MachineLearningServices/workspaces/onlineEndpoints"))
        totals, errors = _series(response)
        out: list[dict[str, Any]] = []
        for at in range(start, end, step):
            total = sum(v for t, v in totals.items() if at <= t < at + step)
            bad = sum(v for t, v in errors.items() if at <= t < at + step)
            out.append({"start": at, "requests": total, "errors": bad, "error_rate": bad / total if total else None})
        return out


def _series(response: Any, latency: bool = False) -> tuple[dict[int, float], dict[int, float]]:
    """Values per timestamp (epoch seconds) of a metrics response, and the 5xx part of them.

    Series split by ``statusCodeClass`` are summed (latency: the worst value is kept).
    """
    values: dict[int, float] = {}
    errors: dict[int, float] = {}
    for metric in response.value or []:
        for series in metric.timeseries or []:
            cls = next((m.value for m in series.metadatavalues or []
                        if (m.name.value or "").lower() == "statuscodeclass"), None)
            for point in series.data or []:
                value = point.average if latency else point.total
                if value is None:
                    continue
                at = int(point.time_stamp.timestamp())
                values[at] = max(values.get(at, value), value) if latency else values.get(at, 0.0) + value
                if cls == "5xx":
                    errors[at] = errors.get(at, 0.0) + value
    return values, errors


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
