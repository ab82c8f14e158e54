"""Benchmark cloudml.drift against what a user would write instead (scipy's ks_2samp + a numpy PSI).

Prints, in one run and side by side, the wall time of a drift check over 10 numeric features for
10k and 100k rows per sample:

- ``cloudml.drift.drift_report`` (PSI, KS, means, verdicts; numpy used when installed);
- the same with the pure-Python path forced (``USE_NUMPY = False``: what runs without numpy);
- the hand-written baseline: ``scipy.stats.ks_2samp(method="asymp")`` plus a numpy decile PSI.

Usage::

    python benchmarks/bench_drift.py            # median of 5 runs per case
    python benchmarks/bench_drift.py --quick    # 3 runs, 10k rows only
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import cloudml.drift as drift


def _data(rows: int, features: int = 10) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    rng = random.Random(rows)
    ref = {f"f{i}": [rng.gauss(0, 1) for _ in range(rows)] for i in range(features)}
    cur = {f"f{i}": [rng.gauss(0.1 * (i % 3), 1) for _ in range(rows)] for i in range(features)}
    return ref, cur


def _baseline(ref: dict[str, Any], cur: dict[str, Any]) -> None:
    import numpy as np
    from scipy import stats

    for name in ref:
        a, b = np.asarray(ref[name]), np.asarray(cur[name])
        stats.ks_2samp(a, b, method="asymp")
        edges = np.quantile(a, np.linspace(0, 1, 11)[1:-1])
        e = np.maximum(np.bincount(np.searchsorted(edges, a), minlength=10) / len(a), 1e-4)
        c = np.maximum(np.bincount(np.searchsorted(edges, b), minlength=10) / len(b), 1e-4)
        float(((c - e) * np.log(c / e)).sum())


def _time(fn: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    """Print the figures (always exits 0: targets are informational).

    Example:
        >>> import sys; sys.argv = ["bench_drift.py", "--quick"]  # doctest: +SKIP
        >>> main()  # doctest: +SKIP
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    runs = 3 if args.quick else 5
    sizes = [10_000] if args.quick else [10_000, 100_000]
    print(f"{'rows/sample':>12} {'cloudml':>10} {'pure py':>10} {'scipy+numpy':>12} {'cloudml/scipy':>14} {'pure/scipy':>11}")
    for rows in sizes:
        ref, cur = _data(rows)
        fast = _time(lambda r=ref, c=cur: drift.drift_report(r, c), runs)
        drift.USE_NUMPY = False
        try:
            pure = _time(lambda r=ref, c=cur: drift.drift_report(r, c), runs)
        finally:
            drift.USE_NUMPY = True
        base = _time(lambda r=ref, c=cur: _baseline(r, c), runs)
        print(f"{rows:>12,} {fast:>9.3f}s {pure:>9.3f}s {base:>11.3f}s {fast / base:>13.2f}x {pure / base:>10.2f}x")


if __name__ == "__main__":
    main()
