"""Alarm evaluation with CloudWatch semantics (cloudml.alarms) and the neutral Alarm model."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from cloudml.alarms import breaches, evaluate_alarm, percentile
from cloudml.spec.deployment import Alarm


def alarm(**kw: object) -> Alarm:
    base: dict[str, object] = {"name": "err", "metric": "error_rate", "threshold": 0.1}
    return Alarm.model_validate({**base, **kw})


# -- comparisons ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "comparison", "expected"), [
    (0.2, "gt", True), (0.1, "gt", False), (0.05, "gt", False),
    (0.1, "gte", True), (0.09, "gte", False),
    (0.05, "lt", True), (0.1, "lt", False),
    (0.1, "lte", True), (0.11, "lte", False),
])
def test_breaches_each_comparison(value: float, comparison: str, expected: bool) -> None:
    assert breaches(value, comparison, 0.1) is expected


# -- N of N and M of N ------------------------------------------------------------------------------------
def test_single_period_breach_is_alarm_with_its_value() -> None:
    s = evaluate_alarm(alarm(), [0.5])
    assert (s.state, s.breaching, s.value) == ("ALARM", 1, 0.5)
    assert s.name == "err"
    assert "breached gt 0.1" in s.reason


def test_single_period_below_threshold_is_ok() -> None:
    s = evaluate_alarm(alarm(), [0.05])
    assert (s.state, s.breaching, s.value) == ("OK", 0, 0.05)


def test_value_equal_to_threshold_does_not_breach_gt() -> None:
    assert evaluate_alarm(alarm(), [0.1]).state == "OK"
    assert evaluate_alarm(alarm(comparison="gte"), [0.1]).state == "ALARM"


def test_datapoints_to_alarm_defaults_to_evaluation_periods() -> None:
    a = alarm(evaluation_periods=3)
    assert a.required_datapoints == 3
    assert evaluate_alarm(a, [0.5, 0.5, 0.0]).state == "OK"
    assert evaluate_alarm(a, [0.5, 0.5, 0.5]).state == "ALARM"


@pytest.mark.parametrize(("points", "state"), [
    ([0.0, 0.0, 0.0, 0.0, 0.0], "OK"),
    ([0.5, 0.0, 0.0, 0.0, 0.0], "OK"),
    ([0.5, 0.0, 0.5, 0.0, 0.0], "OK"),
    ([0.5, 0.0, 0.5, 0.0, 0.5], "ALARM"),
    ([0.0, 0.0, 0.5, 0.5, 0.5], "ALARM"),
])
def test_m_of_n(points: list[float], state: str) -> None:
    a = alarm(evaluation_periods=5, datapoints_to_alarm=3)
    s = evaluate_alarm(a, points)
    assert s.state == state
    assert s.breaching == sum(p > 0.1 for p in points)


def test_only_the_last_evaluation_periods_count() -> None:
    a = alarm(evaluation_periods=2, datapoints_to_alarm=2)
    # old breaches outside the window are forgotten
    assert evaluate_alarm(a, [0.9, 0.9, 0.9, 0.0, 0.0]).state == "OK"
    s = evaluate_alarm(a, [0.0, 0.0, 0.0, 0.7, 0.9])
    assert s.state == "ALARM"
    assert s.datapoints == (0.7, 0.9)


def test_fewer_datapoints_than_periods_are_padded_as_missing() -> None:
    s = evaluate_alarm(alarm(evaluation_periods=3, datapoints_to_alarm=1), [0.5])
    assert s.datapoints == (None, None, 0.5)
    assert s.state == "ALARM"


def test_alarm_value_is_the_worst_breaching_datapoint() -> None:
    a = alarm(evaluation_periods=3, datapoints_to_alarm=2)
    assert evaluate_alarm(a, [0.3, 0.9, 0.2]).value == 0.9
    low = Alarm(name="traffic", metric="invocations", threshold=10, comparison="lt",
                evaluation_periods=3, datapoints_to_alarm=2)
    s = evaluate_alarm(low, [4.0, 12.0, 1.0])
    assert (s.state, s.value) == ("ALARM", 1.0)


def test_ok_value_is_the_newest_datapoint() -> None:
    s = evaluate_alarm(alarm(evaluation_periods=3), [0.01, 0.02, None])
    assert (s.state, s.value) == ("OK", 0.02)


# -- treat_missing_data ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("treat", "state"), [
    ("missing", "INSUFFICIENT_DATA"),
    ("ignore", "INSUFFICIENT_DATA"),
    ("breaching", "ALARM"),
    ("not_breaching", "OK"),
])
def test_no_data_at_all(treat: str, state: str) -> None:
    s = evaluate_alarm(alarm(evaluation_periods=3, treat_missing_data=treat), [None, None, None])
    assert s.state == state
    if state != "ALARM":
        assert s.value is None


@pytest.mark.parametrize("previous", ["OK", "ALARM", "INSUFFICIENT_DATA"])
def test_ignore_keeps_the_previous_state_without_data(previous: str) -> None:
    a = alarm(evaluation_periods=2, treat_missing_data="ignore")
    assert evaluate_alarm(a, [None, None], previous=previous).state == previous  # type: ignore[arg-type]


def test_previous_state_matters_only_for_ignore() -> None:
    a = alarm(evaluation_periods=2, treat_missing_data="missing")
    assert evaluate_alarm(a, [None, None], previous="ALARM").state == "INSUFFICIENT_DATA"


def test_missing_periods_are_not_counted_either_way() -> None:
    a = alarm(evaluation_periods=3, datapoints_to_alarm=2)
    assert evaluate_alarm(a, [0.5, None, None]).state == "OK"
    assert evaluate_alarm(a, [0.5, None, 0.6]).state == "ALARM"


def test_breaching_missing_data_completes_m_of_n() -> None:
    a = alarm(evaluation_periods=3, datapoints_to_alarm=2, treat_missing_data="breaching")
    s = evaluate_alarm(a, [0.0, None, 0.5])
    assert (s.state, s.breaching) == ("ALARM", 2)
    assert evaluate_alarm(a, [0.0, None, 0.0]).state == "OK"


def test_not_breaching_missing_data_counts_as_good() -> None:
    a = alarm(evaluation_periods=3, datapoints_to_alarm=2, treat_missing_data="not_breaching")
    assert evaluate_alarm(a, [None, None, 0.5]).state == "OK"


def test_nan_is_missing_data() -> None:
    a = alarm(evaluation_periods=2, treat_missing_data="breaching")
    assert evaluate_alarm(a, [math.nan, 0.0]).breaching == 1
    assert evaluate_alarm(alarm(evaluation_periods=2), [math.nan, math.nan]).state == "INSUFFICIENT_DATA"


def test_nan_is_never_the_reported_value() -> None:
    s = evaluate_alarm(alarm(evaluation_periods=2), [0.02, math.nan])
    assert s.state == "OK"
    assert s.value == 0.02


# -- latency alarms and the model ------------------------------------------------------------------------
def test_latency_alarm_in_seconds() -> None:
    a = Alarm(name="slow", metric="latency_p99", threshold="250ms", period="1s")
    assert a.threshold == 0.25 and a.period == 1.0
    assert evaluate_alarm(a, [0.3]).state == "ALARM"
    assert evaluate_alarm(a, [0.2]).state == "OK"


def test_error_rate_threshold_as_percentage() -> None:
    assert Alarm(name="e", metric="error_rate", threshold="5%").threshold == pytest.approx(0.05)


@pytest.mark.parametrize("bad", [
    {"metric": "latency_p99", "threshold": 250},              # no unit
    {"metric": "error_rate", "threshold": 5},                 # not a fraction
    {"metric": "error_rate", "threshold": True},              # boolean
    {"metric": "invocations", "threshold": -1},               # negative
    {"metric": "error_rate", "threshold": 0.1, "evaluation_periods": 2, "datapoints_to_alarm": 3},
    {"metric": "error_rate"},                                 # no threshold
    {"metric": "error_rate", "threshold": 0.1, "existing": {"sagemaker": "x"}},
])
def test_invalid_alarms_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Alarm.model_validate({"name": "a", **bad})


def test_existing_alarm_needs_no_metric() -> None:
    a = Alarm(name="cw", existing={"sagemaker": "my-alarm"})
    assert a.metric is None and a.existing == {"sagemaker": "my-alarm"}


# -- percentile -----------------------------------------------------------------------------------------
def test_percentile_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([5.0], 99) == 5.0
    assert percentile([3, 1, 2], 0) == 1
    assert percentile([], 50) is None
