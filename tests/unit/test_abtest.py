"""A/B analysis: the z-test and Welch's t-test against scipy, verdicts, reports and bad input."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudml.abtest import compare_means, compare_rates, student_t_sf
from cloudml.errors import DataError

stats = pytest.importorskip("scipy.stats")


@settings(max_examples=80, deadline=None)
@given(st.floats(-30, 30), st.floats(0.5, 500))
def test_t_tail_matches_scipy(t: float, df: float) -> None:
    assert student_t_sf(t, df) == pytest.approx(stats.t.sf(t, df), rel=1e-7, abs=1e-12)


@pytest.mark.parametrize("seed, shift", [(1, 0.0), (2, 0.2), (3, 1.0), (4, -0.5)])
def test_welch_matches_scipy(seed: int, shift: float) -> None:
    rng = random.Random(seed)
    a = [rng.gauss(10, 2) for _ in range(150)]
    b = [rng.gauss(10 + shift, 3) for _ in range(90)]
    r = compare_means("m", a, b)
    ref = stats.ttest_ind(b, a, equal_var=False)
    assert r.statistic == pytest.approx(ref.statistic, rel=1e-9)
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-6, abs=1e-12)
    ci = ref.confidence_interval(0.95)
    assert (r.ci_low, r.ci_high) == (pytest.approx(ci.low, rel=1e-6), pytest.approx(ci.high, rel=1e-6))


@pytest.mark.parametrize("a, b", [((120, 1000), (160, 1000)), ((5, 40), (9, 45)), ((300, 5000), (310, 5000))])
def test_two_proportion_z_matches_scipy_chi2(a: tuple[int, int], b: tuple[int, int]) -> None:
    # the pooled two-proportion z-test is the 2x2 chi-square test without continuity correction (z^2 = chi2)
    table = [[a[0], a[1] - a[0]], [b[0], b[1] - b[0]]]
    chi2, p, _, _ = stats.chi2_contingency(table, correction=False)
    r = compare_rates("rate", a, b)
    assert r.statistic ** 2 == pytest.approx(chi2, rel=1e-9)
    assert r.p_value == pytest.approx(p, rel=1e-7)


def test_verdicts_follow_direction_and_significance() -> None:
    assert compare_rates("conversion", (120, 1000), (160, 1000)).winner == "B"
    assert compare_rates("conversion", (160, 1000), (120, 1000)).winner == "A"
    errors = compare_rates("error rate", (30, 1000), (12, 1000), higher_is_better=False)
    assert errors.winner == "B" and errors.significant and errors.confidence > 0.99
    flat = compare_rates("conversion", (100, 1000), (104, 1000))
    assert flat.winner is None and not flat.significant
    assert flat.needed_per_variant is not None and flat.needed_per_variant > 10000
    same = compare_means("latency", [1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    assert same.winner is None and same.p_value == 1.0


def test_reports_read_well_and_serialise() -> None:
    r = compare_rates("conversion", (120, 1000), (160, 1000), names=("churn-v1", "churn-v2"))
    assert r.summary() == "B wins on conversion: B 0.16 vs A 0.12 (+33.3%), p = 0.00995, confidence 99.0%"
    text = r.to_markdown()
    assert text.startswith("# A/B test on conversion: B wins")
    assert "| B (churn-v2) | 1000 | 0.16 |" in text and "95% interval" in text
    data = json.loads(json.dumps(r.to_dict()))
    assert data["winner"] == "B" and data["a"]["name"] == "churn-v1" and data["significant"] is True
    flat = compare_rates("conversion", (100, 1000), (104, 1000)).to_markdown()
    assert "inconclusive" in flat and "80% power" in flat


def test_bad_input_names_the_variant_and_the_fix() -> None:
    with pytest.raises(DataError, match="variant B has no observations") as e:
        compare_rates("c", (1, 10), (0, 0))
    assert e.value.stage == "ab test" and e.value.hint and "send traffic" in e.value.hint
    with pytest.raises(DataError, match="12 successes out of 10"):
        compare_rates("c", (12, 10), (1, 10))
    with pytest.raises(DataError, match="variant A has 1 observation"):
        compare_means("m", [1.0], [1.0, 2.0])
    with pytest.raises(DataError, match="alpha"):
        compare_rates("c", (1, 10), (1, 10), alpha=1.5)
