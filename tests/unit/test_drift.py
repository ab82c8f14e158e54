"""Drift: PSI and KS against scipy, reports, captured data, and the errors a person can act on."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudml.drift import drift_report, ks_2samp, load_capture, psi, psi_categorical
from cloudml.errors import DataError

scipy_stats = pytest.importorskip("scipy.stats")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=80), st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=80))
def test_ks_statistic_matches_scipy(a: list[float], b: list[float]) -> None:
    d, p = ks_2samp(a, b)
    ref = scipy_stats.ks_2samp(a, b, method="asymp")
    assert d == pytest.approx(ref.statistic, abs=1e-12)
    assert 0.0 <= p <= 1.0


@pytest.mark.parametrize("shift", [0.0, 0.1, 0.3, 1.0])
def test_ks_pvalue_is_close_to_scipy_asymptotic(shift: float) -> None:
    rng = random.Random(7)
    a = [rng.gauss(0, 1) for _ in range(400)]
    b = [rng.gauss(shift, 1) for _ in range(300)]
    d, p = ks_2samp(a, b)
    ref = scipy_stats.ks_2samp(a, b, method="asymp")
    assert d == pytest.approx(ref.statistic)
    # Stephens' correction differs slightly from scipy's asymptotic series; both agree on the decision
    assert p == pytest.approx(ref.pvalue, rel=0.05, abs=1e-6)
    assert (p < 0.01) == (ref.pvalue < 0.01)


def test_psi_known_values() -> None:
    assert psi(range(1000), range(1000)) == pytest.approx(0.0)
    # hand computed: two bins at the median, shares 50/50 -> 90/10
    expected = [0.0] * 50 + [1.0] * 50
    actual = [0.0] * 90 + [1.0] * 10
    manual = (0.9 - 0.5) * math.log(0.9 / 0.5) + (0.1 - 0.5) * math.log(0.1 / 0.5)
    assert psi(expected, actual, bins=2) == pytest.approx(manual)
    assert psi_categorical("ab" * 50, "a" * 90 + "b" * 10) == pytest.approx(manual)


def test_psi_ignores_missing_values_and_floors_empty_bins() -> None:
    value = psi([1.0, 2.0, 3.0, None, float("nan")] * 20, [10.0] * 50)
    assert math.isfinite(value) and value > 1


def test_report_flags_shifted_numeric_and_categorical_features_and_prediction() -> None:
    rng = random.Random(1)
    ref = {"age": [rng.gauss(40, 10) for _ in range(2000)], "plan": [rng.choice("abc") for _ in range(2000)],
           "stable": [rng.random() for _ in range(2000)], "pred": [rng.random() < 0.2 for _ in range(2000)]}
    cur = {"age": [rng.gauss(55, 10) for _ in range(800)],
           "plan": [rng.choice("aaaaabcd") for _ in range(800)],
           "stable": [rng.random() for _ in range(800)], "pred": [rng.random() < 0.6 for _ in range(800)]}
    report = drift_report(ref, cur, prediction="pred")
    flagged = {f.name: f for f in report.features}
    assert flagged["age"].drifted and flagged["age"].kind == "numeric" and flagged["age"].psi > 0.25
    assert flagged["plan"].drifted and flagged["plan"].kind == "categorical"
    assert flagged["plan"].unseen_categories == ["d"]
    assert not flagged["stable"].drifted
    assert report.prediction is not None and report.prediction.drifted
    m = report.metrics()
    assert m["drifted"] == 1.0 and m["drifted_features"] == 2.0 and m["drift_share"] == pytest.approx(2 / 3)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["rows"] == {"reference": 2000, "current": 800}
    text = report.to_markdown()
    assert "# Drift report: drift detected" in text and "| age | numeric |" in text and "pred (prediction)" in text


def test_large_samples_with_a_tiny_shift_are_not_flagged() -> None:
    rng = random.Random(3)
    ref = {"x": [rng.gauss(0, 1) for _ in range(20000)]}
    cur = {"x": [rng.gauss(0.05, 1) for _ in range(20000)]}
    f = drift_report(ref, cur).features[0]
    assert f.ks_pvalue is not None and f.ks_pvalue < 0.01  # significant ...
    assert not f.drifted  # ... but too small to matter (D < 0.1, PSI < 0.2)


def test_dataframes_are_accepted() -> None:
    pd = pytest.importorskip("pandas")
    ref = pd.DataFrame({"x": range(100), "c": ["a", "b"] * 50})
    report = drift_report(ref, ref.copy())
    assert not report.drifted and [f.name for f in report.features] == ["x", "c"]
    nullable = pd.DataFrame({"x": pd.array([1, None] * 50, dtype="Int64"), "c": pd.array(["a", None] * 50)})
    f = {r.name: r for r in drift_report(nullable, nullable.copy()).features}
    assert f["x"].missing_reference == 0.5 and f["c"].missing_current == 0.5  # pandas.NA counts as missing


def test_missing_training_features_name_them_and_the_fix() -> None:
    with pytest.raises(DataError) as e:
        drift_report({"age": [1], "plan": ["a"]}, {"age": [2]})
    assert e.value.stage == "drift"
    assert "lacks the training feature(s) plan" in str(e.value) and "it has: age" in str(e.value)
    assert e.value.hint and "same features" in e.value.hint
    with pytest.raises(DataError, match="no rows"):
        drift_report({"x": [1.0]}, {"x": []})
    with pytest.raises(DataError, match="no prediction column 'p'"):
        drift_report({"x": [1.0]}, {"x": [1.0]}, prediction="p")
    with pytest.raises(DataError, match="not a table"):
        drift_report([1, 2], {"x": [1]})
    with pytest.raises(DataError, match="no values in the current data"):
        drift_report({"x": [1.0]}, {"x": [None]})


def test_load_capture_from_lists_objects_and_bad_lines(tmp_path: Path) -> None:
    folder = tmp_path / "capture"
    folder.mkdir()
    lines = [{"request": {"instances": [[1, "a"], [2, "b"]]}, "response": {"predictions": [0, 1]}},
             {"request": {"instances": [{"x": 3, "c": "a", "extra": 1}]}, "response": {"predictions": [1]}}]
    (folder / "20260101.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    cols = load_capture(folder, ["x", "c"])
    assert cols["x"] == [1, 2, 3] and cols["c"] == ["a", "b", "a"] and cols["prediction"] == [0, 1, 1]
    assert cols["extra"] == [None, None, 1]
    with pytest.raises(DataError, match="feature names are needed"):
        load_capture(folder)
    with pytest.raises(DataError, match="has 2 values, not 3 features"):
        load_capture(folder, ["x", "c", "z"])
    (folder / "20260102.jsonl").write_text("not json\n")
    with pytest.raises(DataError, match=r"20260102\.jsonl:1 is not a captured request"):
        load_capture(folder, ["x", "c"])
    with pytest.raises(DataError, match="no captured requests"):
        load_capture(tmp_path / "nowhere")


def test_the_numpy_path_gives_the_same_report_as_pure_python(monkeypatch: pytest.MonkeyPatch) -> None:
    import cloudml.drift as drift

    rng = random.Random(11)
    ref = {"x": [rng.gauss(0, 1) for _ in range(3000)] + [None], "k": [rng.randint(0, 5) for _ in range(3001)]}
    cur = {"x": [rng.gauss(0.3, 1.2) for _ in range(2000)] + [float("nan")], "k": [rng.randint(1, 6) for _ in range(2001)]}
    fast = drift.drift_report(ref, cur).to_dict()
    monkeypatch.setattr(drift, "USE_NUMPY", False)
    slow = drift.drift_report(ref, cur).to_dict()
    for f, g in zip(fast["features"], slow["features"], strict=True):
        assert f["psi"] == pytest.approx(g["psi"], abs=1e-9) and f["ks_statistic"] == pytest.approx(g["ks_statistic"])
        assert f["ks_pvalue"] == pytest.approx(g["ks_pvalue"]) and f["reference_mean"] == pytest.approx(g["reference_mean"])
        assert f["drifted"] == g["drifted"]
