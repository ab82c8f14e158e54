"""Local backend run overhead, printed side by side with the floor and with other orchestrators.

Run:  python benchmarks/bench_local.py [--quick] [--json]

Measured here in one run:
  * a chain of N no-op Python steps, one process per step (subprocess mode), versus the floor:
    N bare ``python -c pass`` processes started one after another;
  * the same chain in ``in_process`` mode;
  * a fully cached re-run of the chain;
  * 8 independent steps that each sleep 0.5 s with max_workers=8 (ideal: 0.5 s);
  * per-step overhead for chains of 10, 100 and 500 steps (it should stay flat).
Figures for kfp.local, Metaflow, ZenML and Prefect are the ones measured on this machine when the
targets were set (the issue); those tools are not installed here, so they are printed as such.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cloudml

EARLIER = {  # seconds, measured on this machine when the targets were set (issue 3)
    "chain100": {"kfp.local": 72.0, "Metaflow": 44.5, "ZenML": 10.3},
    "parallel8": {"ZenML": 5.7, "Metaflow": 3.7, "Prefect": 1.1},
}
TARGETS = {"chain100": 2.5, "chain100_in_process": 0.1, "chain100_cached": 0.3, "parallel8": 0.7}

STEP_CODE = '''
import time
def first(out):
    (out / "x").write_text("1")
def next_(inp, out):
    (out / "x").write_text((inp / "x").read_text())
def nap(out, seconds: float):
    time.sleep(seconds)
    (out / "x").write_text("1")
'''


def chain(n: int) -> Any:
    """A chain of n Python steps, each reading the previous step's output."""
    b = cloudml.PipelineBuilder(f"chain{n}")
    prev = b.add_step("s0", python="benchsteps:first", outputs={"out": "generic"})
    for i in range(1, n):
        prev = b.add_step(f"s{i}", python="benchsteps:next_", inputs={"inp": prev.outputs["out"]},
                          outputs={"out": "generic"})
    return b.build()


def fan(n: int, seconds: float) -> Any:
    """n independent steps that each sleep."""
    b = cloudml.PipelineBuilder(f"fan{n}")
    for i in range(n):
        b.add_step(f"nap{i}", python="benchsteps:nap", params={"seconds": seconds}, outputs={"out": "generic"})
    return b.build()


def timed_run(pipeline: Any, code: Path, **options: Any) -> tuple[float, str]:
    """Wall time of one run on a backend root whose database already exists (``adapter`` or a new one).

    Creating the SQLite schema is a one-time cost per root, so it is done before the clock starts.
    """
    adapter = options.pop("adapter", None) or cloudml.get_adapter("local", root=tempfile.mkdtemp())
    _ = adapter.meta, adapter.store
    start = time.perf_counter()
    status = adapter.run(pipeline, spec_dir=str(code), **options).wait()
    return time.perf_counter() - start, status


def bare_processes(n: int) -> float:
    """n ``python -c pass`` started one after another: the floor for one process per step."""
    start = time.perf_counter()
    for _ in range(n):
        subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - start


def measure(quick: bool) -> dict[str, Any]:
    """Every figure, as a dict."""
    code = Path(tempfile.mkdtemp())
    (code / "benchsteps.py").write_text(STEP_CODE)
    repeats = 1 if quick else 3
    res: dict[str, Any] = {}
    p100 = chain(100)
    timed_run(chain(3), code, in_process=True)  # import the step module once in this process
    runs = [timed_run(p100, code, use_cache=False) for _ in range(repeats)]
    res["chain100"] = statistics.median(t for t, _ in runs)
    res["bare100"] = statistics.median(bare_processes(100) for _ in range(repeats))
    res["chain100_in_process"] = statistics.median(
        timed_run(p100, code, use_cache=False, in_process=True)[0] for _ in range(repeats))
    adapter = cloudml.get_adapter("local", root=tempfile.mkdtemp())
    timed_run(p100, code, adapter=adapter)
    res["chain100_cached"] = statistics.median(timed_run(p100, code, adapter=adapter)[0] for _ in range(repeats))
    res["parallel8"] = statistics.median(
        timed_run(fan(8, 0.5), code, use_cache=False, max_workers=8)[0] for _ in range(repeats))
    sizes = [10, 100] if quick else [10, 100, 500]
    res["per_step_ms"] = {n: 1000 * timed_run(chain(n), code, use_cache=False)[0] / n for n in sizes}
    res["per_step_in_process_ms"] = {
        n: 1000 * timed_run(chain(n), code, use_cache=False, in_process=True)[0] / n for n in sizes}
    res["statuses_ok"] = all(s == "succeeded" for _, s in runs)
    return res


def report(res: dict[str, Any]) -> None:
    """Print the figures as tables with ratios and targets."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=140)
    t = Table(title="local backend: run overhead (seconds, median)", header_style="bold")
    for col in ("case", "cloudml", "target", "", "compared with", "ratio"):
        t.add_column(col)

    def row(case: str, key: str, peers: list[tuple[str, float]]) -> None:
        ours = res[key]
        target = TARGETS.get(key)
        verdict = "" if target is None else ("PASS" if ours <= target else "MISS")
        first = True
        for name, value in peers or [("", 0.0)]:
            ratio = f"{value / ours:.1f}x slower" if value and value > ours else (
                f"{ours / value:.2f}x of it" if value else "")
            t.add_row(case if first else "", f"{ours:.3f}" if first else "", f"<= {target}" if first and target else "",
                      verdict if first else "", f"{name} {value:.2f}" if name else "", ratio)
            first = False

    row("100-step chain, 1 process/step", "chain100",
        [("bare python -c x100 (measured now)", res["bare100"])]
        + [(f"{k} (earlier, from the issue)", v) for k, v in EARLIER["chain100"].items()])
    row("100-step chain, in_process", "chain100_in_process", [])
    row("100-step chain, fully cached", "chain100_cached", [])
    row("8 x sleep 0.5s, max_workers=8", "parallel8",
        [("ideal", 0.5)] + [(f"{k} (earlier, from the issue)", v) for k, v in EARLIER["parallel8"].items()])
    console.print(t)
    g = Table(title="per-step overhead as the chain grows (ms per step)", header_style="bold")
    g.add_column("steps")
    g.add_column("subprocess")
    g.add_column("in_process")
    for n, ms in res["per_step_ms"].items():
        g.add_row(str(n), f"{ms:.1f}", f"{res['per_step_in_process_ms'][n]:.2f}")
    console.print(g)


def main() -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repeat, no 500-step chain")
    parser.add_argument("--json", action="store_true", help="print machine-readable results")
    args = parser.parse_args()
    res = measure(args.quick)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        report(res)


if __name__ == "__main__":
    main()
