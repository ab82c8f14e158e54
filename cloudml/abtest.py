"""A/B test analysis: which variant wins, by how much, and with what confidence.

Two kinds of per-variant metric are covered:

- **rates** (conversion, correct predictions, errors): successes out of trials per variant, compared
  with the two-proportion z-test (pooled variance) and a Wald interval for the difference;
- **means** of per-request values (latency, revenue, absolute error): compared with Welch's t-test,
  which does not assume equal variances, and a t interval for the difference.

A variant wins only when the test rejects "no difference" at ``alpha`` (two-sided); otherwise the
report says the result is inconclusive and estimates how many observations per variant would detect
the observed difference with 80% power. ``higher_is_better`` says which direction wins (set it to
False for error rates and latency). Pure Python (``statistics.NormalDist`` and an incomplete beta
function); the tests check it against scipy.

Example:
    >>> r = compare_rates("conversion", (120, 1000), (160, 1000))
    >>> r.winner, round(r.p_value, 4), round(r.relative_lift, 3)
    ('B', 0.0099, 0.333)
    >>> print(r.summary())
    B wins on conversion: B 0.16 vs A 0.12 (+33.3%), p = 0.00995, confidence 99.0%
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist, fmean, variance
from typing import Any

from cloudml.errors import DataError

__all__ = ["ABResult", "Variant", "compare_means", "compare_rates", "student_t_sf"]

_N = NormalDist()


@dataclass
class Variant:
    """What one variant measured: its name, sample size, mean (or rate) and standard deviation.

    Example:
        >>> Variant("A", 100, 0.25, 0.43).n
        100
    """

    name: str
    n: int
    mean: float
    sd: float


@dataclass
class ABResult:
    """The verdict of an A/B comparison.

    ``difference`` and the interval are B minus A; ``confidence`` is ``1 - p_value``;
    ``winner`` is ``"A"``, ``"B"`` or None (inconclusive). ``needed_per_variant`` estimates the sample
    size per variant that would detect the observed difference with 80% power at ``alpha``.

    Example:
        >>> r = compare_rates("ctr", (50, 1000), (52, 1000))
        >>> r.winner is None, r.significant
        (True, False)
    """

    metric: str
    test: str
    a: Variant
    b: Variant
    difference: float
    relative_lift: float | None
    ci_low: float
    ci_high: float
    statistic: float
    p_value: float
    alpha: float
    higher_is_better: bool
    needed_per_variant: int | None

    @property
    def significant(self) -> bool:
        """True when the difference is significant at ``alpha``."""
        return self.p_value < self.alpha

    @property
    def confidence(self) -> float:
        """``1 - p_value``: how sure the test is that the variants differ."""
        return 1.0 - self.p_value

    @property
    def winner(self) -> str | None:
        """The better variant's label (``"A"`` or ``"B"``) when significant, else None."""
        if not self.significant or self.difference == 0:
            return None
        b_better = (self.difference > 0) == self.higher_is_better
        return "B" if b_better else "A"

    def summary(self) -> str:
        """One line a person reads first.

        Example:
            >>> compare_rates("ctr", (50, 1000), (52, 1000)).summary().split(":")[0]
            'No significant difference on ctr'
        """
        lift = "" if self.relative_lift is None else f" ({self.relative_lift:+.1%})"
        values = f"B {self.b.mean:.4g} vs A {self.a.mean:.4g}{lift}"
        if self.winner is None:
            more = f"; about {self.needed_per_variant} per variant would settle it" if self.needed_per_variant else ""
            return f"No significant difference on {self.metric}: {values}, p = {self.p_value:.3g}{more}"
        return f"{self.winner} wins on {self.metric}: {values}, p = {self.p_value:.3g}, confidence {self.confidence:.1%}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data, verdict included.

        Example:
            >>> compare_rates("ctr", (50, 1000), (90, 1000)).to_dict()["winner"]
            'B'
        """
        data = asdict(self)
        data.update(significant=self.significant, confidence=self.confidence, winner=self.winner,
                    summary=self.summary())
        return data

    def to_markdown(self) -> str:
        """A short report: the verdict, then a table of both variants and the test.

        Example:
            >>> compare_rates("ctr", (50, 1000), (90, 1000)).to_markdown().splitlines()[0]
            '# A/B test on ctr: B wins'
        """
        verdict = f"{self.winner} wins" if self.winner else "inconclusive"
        level = 1 - self.alpha
        rows = [f"# A/B test on {self.metric}: {verdict}", "", self.summary(), "",
                "| variant | n | mean | sd |", "|---|---|---|---|",
                f"| A ({self.a.name}) | {self.a.n} | {self.a.mean:.6g} | {self.a.sd:.4g} |",
                f"| B ({self.b.name}) | {self.b.n} | {self.b.mean:.6g} | {self.b.sd:.4g} |", "",
                f"- test: {self.test}, statistic {self.statistic:.4g}, p-value {self.p_value:.4g} (alpha {self.alpha})",
                f"- difference B - A: {self.difference:+.6g}, {level:.0%} interval [{self.ci_low:+.6g}, {self.ci_high:+.6g}]",
                f"- better is {'higher' if self.higher_is_better else 'lower'}"]
        if self.needed_per_variant and not self.significant:
            rows.append(f"- about {self.needed_per_variant} observations per variant would detect this difference "
                        "with 80% power")
        return "\n".join(rows) + "\n"


def _needed(delta: float, var_sum: float, alpha: float, power: float = 0.8) -> int | None:
    if delta == 0 or var_sum <= 0:
        return None
    z = _N.inv_cdf(1 - alpha / 2) + _N.inv_cdf(power)
    return math.ceil(z * z * var_sum / (delta * delta))


def compare_rates(metric: str, a: tuple[int, int], b: tuple[int, int], *, alpha: float = 0.05,
                  higher_is_better: bool = True, names: tuple[str, str] = ("A", "B")) -> ABResult:
    """Two-proportion z-test of ``(successes, trials)`` for variants A and B.

    Example:
        >>> r = compare_rates("errors", (30, 1000), (12, 1000), higher_is_better=False)
        >>> r.winner, r.significant
        ('B', True)
    """
    if not 0 < alpha < 1:
        raise DataError("ab test", f"alpha {alpha} is not between 0 and 1", hint="use e.g. alpha=0.05")
    for label, (k, n) in zip(names, (a, b), strict=True):
        if n <= 0:
            raise DataError("ab test", f"variant {label} has no observations",
                            hint="send traffic to both variants before analysing the test")
        if not 0 <= k <= n:
            raise DataError("ab test", f"variant {label} has {k} successes out of {n} trials",
                            hint="successes must be between 0 and the number of trials")
    (ka, na), (kb, nb) = a, b
    pa, pb = ka / na, kb / nb
    pooled = (ka + kb) / (na + nb)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / na + 1 / nb))
    diff = pb - pa
    z = diff / se0 if se0 > 0 else 0.0
    p = 2 * (1 - _N.cdf(abs(z))) if se0 > 0 else 1.0
    se = math.sqrt(pa * (1 - pa) / na + pb * (1 - pb) / nb)
    half = _N.inv_cdf(1 - alpha / 2) * se
    va, vb = Variant(names[0], na, pa, math.sqrt(pa * (1 - pa))), Variant(names[1], nb, pb, math.sqrt(pb * (1 - pb)))
    return ABResult(metric, "two-proportion z-test", va, vb, diff, diff / pa if pa else None, diff - half, diff + half,
                    z, min(1.0, p), alpha, higher_is_better, _needed(diff, pa * (1 - pa) + pb * (1 - pb), alpha))


def _betacf(a: float, b: float, x: float) -> float:
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(c) > tiny else 1.0 + aa / tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(c) > tiny else 1.0 + aa / tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    ln = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(ln)
    if x < (a + 1) / (a + b + 2):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1 - x) / b


def student_t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with ``df`` degrees of freedom.

    Example:
        >>> round(student_t_sf(2.0, 10), 5)
        0.03669
    """
    if df <= 0:
        raise ValueError("degrees of freedom must be positive")
    tail = 0.5 * _betainc(df / 2, 0.5, df / (df + t * t))
    return tail if t >= 0 else 1.0 - tail


def _t_quantile(p: float, df: float) -> float:
    lo, hi = 0.0, 1e6
    for _ in range(200):
        mid = (lo + hi) / 2
        if student_t_sf(mid, df) > 1 - p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def compare_means(metric: str, a: Sequence[float], b: Sequence[float], *, alpha: float = 0.05,
                  higher_is_better: bool = True, names: tuple[str, str] = ("A", "B")) -> ABResult:
    """Welch's t-test of per-observation values (latency, revenue, error, ...) of variants A and B.

    Example:
        >>> a = [100 + (i % 7) for i in range(200)]
        >>> b = [96 + (i % 7) for i in range(200)]
        >>> r = compare_means("latency_ms", a, b, higher_is_better=False)
        >>> r.winner, round(r.difference, 2)
        ('B', -4.0)
    """
    if not 0 < alpha < 1:
        raise DataError("ab test", f"alpha {alpha} is not between 0 and 1", hint="use e.g. alpha=0.05")
    for label, values in zip(names, (a, b), strict=True):
        if len(values) < 2:
            raise DataError("ab test", f"variant {label} has {len(values)} observation(s); the t-test needs 2 or more",
                            hint="send more traffic to both variants before analysing the test")
    ma, mb = fmean(a), fmean(b)
    va, vb = variance(a), variance(b)
    na, nb = len(a), len(b)
    se2 = va / na + vb / nb
    diff = mb - ma
    if se2 == 0:
        t, p, df, half = 0.0, (1.0 if diff == 0 else 0.0), float(na + nb - 2), 0.0
    else:
        t = diff / math.sqrt(se2)
        df = se2 * se2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
        p = min(1.0, 2 * student_t_sf(abs(t), df))
        half = _t_quantile(1 - alpha / 2, df) * math.sqrt(se2)
    return ABResult(metric, "Welch's t-test", Variant(names[0], na, ma, math.sqrt(va)),
                    Variant(names[1], nb, mb, math.sqrt(vb)), diff, diff / ma if ma else None, diff - half,
                    diff + half, t, p, alpha, higher_is_better, _needed(diff, va + vb, alpha))
