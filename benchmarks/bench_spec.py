"""Benchmark cloudml's import cost and the cost of loading + validating pipeline specs.

Prints, in one run and side by side:

1. whole-process ``python -c "..."`` wall time (median of N fresh subprocesses of ``sys.executable``)
   for ``import cloudml``, its first real use, the interpreter baseline, its own dependencies and the
   peer SDKs a user would otherwise import (measured when installed, else the earlier figures from
   the issue);
2. ``cloudml.loads(text)`` for generated 10/100/500-step pipelines, next to the parse-only floor a
   user pays anyway (``yaml.safe_load``, ``yaml.load(..., CSafeLoader)``, ``json.loads``).

Targets are informational: the script always exits 0.

Usage::

    python benchmarks/bench_spec.py            # full run (15 subprocesses per import case)
    python benchmarks/bench_spec.py --quick    # fewer repeats
    python benchmarks/bench_spec.py --json     # machine-readable results on stdout
    python benchmarks/bench_spec.py --runs 31 --repeats 25 --no-bytecode-cache
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import yaml

IMPORT_TARGET_S = 0.15
LOAD_TARGET_S = 0.25
LOAD_TARGET_STEPS = 500
LINEAR_TOLERANCE = 1.5  # per-step cost at the largest size may be at most this many times the mid size
STEP_SIZES = (10, 100, 500)
BUSY_WARNING = 0.1  # share of all CPUs used by other processes above which the figures are flagged

TINY = (
    "apiVersion: cloudml/v1\\nkind: Pipeline\\nname: tiny\\n"
    "steps:\\n  - name: say\\n    command: echo hello\\n"
)


@dataclass(frozen=True)
class ImportCase:
    """One ``python -c CODE`` measurement; ``reference_s`` is the earlier figure from the issue."""

    label: str
    code: str
    kind: str  # baseline | dependency | cloudml | peer
    target_s: float | None = None
    reference_s: float | None = None
    env: dict[str, str] = field(default_factory=dict)


IMPORT_CASES: tuple[ImportCase, ...] = (
    ImportCase("python -c pass (interpreter baseline)", "pass", "baseline"),
    ImportCase("import yaml", "import yaml", "dependency"),
    ImportCase("import pydantic", "import pydantic", "dependency"),
    ImportCase("from pydantic import BaseModel", "from pydantic import BaseModel", "dependency"),
    ImportCase("import cloudml", "import cloudml", "cloudml", target_s=IMPORT_TARGET_S),
    ImportCase(
        "import cloudml; cloudml.Pipeline (first use)",
        "import cloudml; cloudml.Pipeline",
        "cloudml",
        target_s=IMPORT_TARGET_S,
    ),
    ImportCase(
        "import cloudml; cloudml.loads(<tiny pipeline>)",
        f'import cloudml; cloudml.loads("{TINY}")',
        "cloudml",
        target_s=IMPORT_TARGET_S,
    ),
    ImportCase("import kfp", "import kfp", "peer", reference_s=0.61),
    ImportCase("import azure.ai.ml", "import azure.ai.ml", "peer", reference_s=1.9),
    ImportCase(
        "from sagemaker.mlops.workflow.pipeline import Pipeline",
        "from sagemaker.mlops.workflow.pipeline import Pipeline",
        "peer",
        reference_s=3.7,
        env={"AWS_DEFAULT_REGION": "us-east-1"},
    ),
    ImportCase("import zenml", "import zenml", "peer", reference_s=2.2),
)


@dataclass
class ImportResult:
    """Timings of one import case; ``error`` is set when the code could not run."""

    label: str
    code: str
    kind: str
    target_s: float | None
    reference_s: float | None
    times_s: list[float] = field(default_factory=list)
    error: str | None = None

    @property
    def median_s(self) -> float | None:
        return statistics.median(self.times_s) if self.times_s else None

    @property
    def min_s(self) -> float | None:
        return min(self.times_s) if self.times_s else None


@dataclass
class LoadResult:
    """Median in-process timings (seconds) for one generated pipeline size."""

    steps: int
    yaml_bytes: int
    json_bytes: int
    cloudml_loads: float
    cloudml_loads_gc_off: float
    parse_with_positions: float
    validate: float
    yaml_safe_load: float
    yaml_csafe_load: float
    json_loads: float


# ---------------------------------------------------------------------------------------------------------
# whole-process import timings


def _run_once(code: str, env: dict[str, str], cwd: str) -> tuple[float, str | None]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        return elapsed, _describe_failure(proc.stderr)
    return elapsed, None


def _describe_failure(stderr: str) -> str:
    last = stderr.strip().splitlines()[-1] if stderr.strip() else "failed"
    if last.startswith("ModuleNotFoundError"):
        return "not installed"
    return f"failed: {last[:80]}"


def child_env(extra: dict[str, str], pycache: str | None) -> dict[str, str]:
    """The environment of a child; with ``pycache``, bytecode is cached there whatever the environment says.

    ``PYTHONDONTWRITEBYTECODE`` (set in some sandboxes and CI images) would make every child compile
    cloudml's sources again, which no installed user pays; the cache prefix also keeps ``__pycache__``
    out of the source tree.
    """
    env = {**os.environ, **extra}
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = pycache
    return env


def measure_imports(
    runs: int, cases: tuple[ImportCase, ...] = IMPORT_CASES, bytecode_cache: bool = True
) -> list[ImportResult]:
    """Round-robin over the cases so drift in machine load hits every case alike.

    Children run in an empty temporary directory, as a user's script would: run from the repository
    root, ``import cloudml`` would pick up the source tree from the current directory instead.
    """
    results = [ImportResult(c.label, c.code, c.kind, c.target_s, c.reference_s) for c in cases]
    with tempfile.TemporaryDirectory() as cwd:
        pycache = os.path.join(cwd, "pycache") if bytecode_cache else None
        envs = [child_env(c.env, pycache) for c in cases]
        for case, env, res in zip(cases, envs, results, strict=True):  # warm-up (writes .pyc) and probe
            _, res.error = _run_once(case.code, env, cwd)
        for _ in range(runs):
            for case, env, res in zip(cases, envs, results, strict=True):
                if res.error is None:
                    elapsed, res.error = _run_once(case.code, env, cwd)
                    res.times_s.append(elapsed)
    for res in results:
        if res.error is not None:
            res.times_s.clear()
    return results


# ---------------------------------------------------------------------------------------------------------
# generated pipelines


def _parameters() -> dict[str, Any]:
    return {
        "input_uri": {"type": "string", "default": "s3://bucket/churn/raw.csv"},
        "lr": {"type": "float", "default": 0.1, "min": 0.0001, "max": 1},
        "epochs": {"type": "int", "default": 20, "min": 1, "max": 500},
        "min_auc": {"type": "float", "default": 0.85, "min": 0, "max": 1},
        "mode": {"type": "string", "default": "full", "allowed": ["full", "sample"]},
    }


def _middle_step(i: int) -> dict[str, Any]:
    """Step ``s{i}``: a chain on the previous step plus a fan-out edge from step ``i // 2``."""
    prev = "ingest" if i == 1 else f"s{i - 1}"
    inputs = {"data": f"{prev}.outputs.out"}
    if i > 2:
        inputs["side"] = f"s{i // 2}.outputs.out"
    step: dict[str, Any] = {
        "name": f"s{i}",
        "image": "python:3.11-slim",
        "command": "python features.py --in {{inputs.data}} --lr {{params.lr}} --mode {{params.mode}}"
        + (" --side {{inputs.side}}" if "side" in inputs else "")
        + " --out {{outputs.out}}",
        "inputs": inputs,
        "outputs": {"out": "dataset"},
        "env": {"STAGE": f"s{i}", "EPOCHS": "{{params.epochs}}"},
    }
    if i % 5 == 0:
        step.update(
            resources={"cpu": 2, "memory": "4Gi"}, retry={"attempts": 3, "backoff": "30s"}, timeout="1h"
        )
    return step


def _tail_steps(last: str) -> list[dict[str, Any]]:
    return [
        {
            "name": "train",
            "kind": "training",
            "python": "src.train:fit",
            "inputs": {"train": f"{last}.outputs.out"},
            "outputs": {"model": "model"},
            "params": {"lr": "{{params.lr}}", "epochs": "{{params.epochs}}"},
            "resources": {
                "cpu": 8,
                "memory": "32Gi",
                "gpu": 1,
                "instance_type": {"sagemaker": "ml.g5.2xlarge"},
            },
            "backend_options": {"sagemaker": {"volume_size_gb": 100}},
        },
        {
            "name": "evaluate",
            "command": [
                "python",
                "eval.py",
                "--model",
                "{{inputs.model}}",
                "--data",
                "{{inputs.data}}",
                "--out",
                "{{outputs.metrics}}",
            ],
            "inputs": {"model": "train.outputs.model", "data": f"{last}.outputs.out"},
            "outputs": {"metrics": "metrics"},
        },
        {
            "name": "gate",
            "condition": 'evaluate.outputs.metrics["auc"] >= params.min_auc',
            "then": ["register"],
            "else": ["reject"],
        },
        {
            "name": "register",
            "register_model": {
                "model": "train.outputs.model",
                "metrics": "evaluate.outputs.metrics",
                "group": "churn",
                "framework": "sklearn==1.5",
            },
        },
        {"name": "reject", "fail": "AUC below {{params.min_auc}}"},
    ]


def make_pipeline(steps: int) -> dict[str, Any]:
    """A pipeline with exactly ``steps`` steps (minimum 7): ingest, a chain/fan-out, train, evaluate,
    a condition gate, a register step and a fail step."""
    if steps < 7:
        raise ValueError("need at least 7 steps")
    middle = steps - 6
    ingest = {
        "name": "ingest",
        "command": "python ingest.py --src {{inputs.raw}} --out {{outputs.out}}",
        "inputs": {"raw": "{{params.input_uri}}"},
        "outputs": {"out": "dataset"},
    }
    body = [_middle_step(i) for i in range(1, middle + 1)]
    return {
        "apiVersion": "cloudml/v1",
        "kind": "Pipeline",
        "name": f"bench-{steps}",
        "description": f"generated {steps}-step benchmark pipeline",
        "parameters": _parameters(),
        "defaults": {"image": "python:3.11-slim", "retry": {"attempts": 2}, "timeout": "2h", "cache": True},
        "steps": [ingest, *body, *_tail_steps(f"s{middle}")],
    }


# ---------------------------------------------------------------------------------------------------------
# in-process load timings


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 2, gc_off: bool = False) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup`` calls.

    The cyclic GC stays on (users pay for it) unless ``gc_off``, which shows the cost of the code alone.
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        gc.collect()
        if gc_off:
            gc.disable()
        try:
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        finally:
            gc.enable()
    return statistics.median(times)


def measure_load(steps: int, repeats: int) -> LoadResult:
    import cloudml
    from cloudml.loader import parse_yaml
    from cloudml.spec.validate import validate_document

    data = make_pipeline(steps)
    text = yaml.safe_dump(data, sort_keys=False)
    as_json = json.dumps(data, indent=2)
    loaded = cloudml.loads(text)
    if not isinstance(loaded, cloudml.Pipeline) or len(loaded.steps) != steps:
        raise RuntimeError(f"generated pipeline of {steps} steps did not load as expected")
    doc = parse_yaml(text)
    return LoadResult(
        steps=steps,
        yaml_bytes=len(text.encode()),
        json_bytes=len(as_json.encode()),
        cloudml_loads=median_time(lambda: cloudml.loads(text), repeats),
        cloudml_loads_gc_off=median_time(lambda: cloudml.loads(text), repeats, gc_off=True),
        parse_with_positions=median_time(lambda: parse_yaml(text), repeats),
        validate=median_time(lambda: validate_document(doc), repeats),
        yaml_safe_load=median_time(lambda: yaml.load(text, Loader=yaml.SafeLoader), repeats),
        yaml_csafe_load=median_time(lambda: yaml.load(text, Loader=yaml.CSafeLoader), repeats),
        json_loads=median_time(lambda: json.loads(as_json), repeats),
    )


# ---------------------------------------------------------------------------------------------------------
# formatting


def load_target(steps: int) -> float:
    """The issue's target is for 500 steps; smaller sizes get the pro-rata share (informational)."""
    return LOAD_TARGET_S * steps / LOAD_TARGET_STEPS


def _status(value: float | None, target: float | None) -> str:
    if value is None or target is None:
        return "-"
    return "PASS" if value <= target else "MISS"


def _ratio(a: float | None, b: float | None, approx: bool = False) -> str:
    if a is None or not b:
        return "-"
    return f"{'≈' if approx else ''}{a / b:.1f}x"


def _s(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _ms(x: float) -> str:
    return f"{x * 1e3:.2f}" if x < 0.1 else f"{x * 1e3:.1f}"


def import_rows(results: list[ImportResult]) -> tuple[list[str], list[list[str]]]:
    base = next(r.median_s for r in results if r.kind == "baseline")
    ours = next(r.median_s for r in results if r.label == "import cloudml")
    header = [
        "case",
        "median s",
        "min s",
        "net of `pass` s",
        "x import cloudml",
        "(earlier measurement, from the issue) s",
        "target s",
        "status",
    ]
    rows = []
    for r in results:
        med = r.median_s
        shown_ref = r.reference_s if med is None else None
        rows.append(
            [
                r.label,
                r.error or _s(med),
                _s(r.min_s),
                _s(med - base) if med is not None and base is not None else "-",
                _ratio(med, ours) if med is not None else _ratio(shown_ref, ours, approx=True),
                _s(shown_ref) if shown_ref is not None else "-",
                _s(r.target_s) if r.target_s else "-",
                _status(med, r.target_s),
            ]
        )
    return header, rows


def load_rows(results: list[LoadResult]) -> tuple[list[str], list[list[str]]]:
    header = [
        "steps",
        "YAML KiB",
        "cloudml.loads ms",
        "ms/step",
        "ms/step GC off",
        "parse ms",
        "validate ms",
        "yaml.safe_load ms",
        "CSafeLoader ms",
        "json.loads ms",
        "÷safe_load",
        "÷CSafeLoader",
        "÷json",
        "target s",
        "status",
    ]
    rows = []
    for r in results:
        target = load_target(r.steps)
        rows.append(
            [
                str(r.steps),
                f"{r.yaml_bytes / 1024:.0f}",
                _ms(r.cloudml_loads),
                f"{r.cloudml_loads / r.steps * 1e3:.3f}",
                f"{r.cloudml_loads_gc_off / r.steps * 1e3:.3f}",
                _ms(r.parse_with_positions),
                _ms(r.validate),
                _ms(r.yaml_safe_load),
                _ms(r.yaml_csafe_load),
                _ms(r.json_loads),
                _ratio(r.cloudml_loads, r.yaml_safe_load),
                _ratio(r.cloudml_loads, r.yaml_csafe_load),
                _ratio(r.cloudml_loads, r.json_loads),
                _s(target),
                _status(r.cloudml_loads, target),
            ]
        )
    return header, rows


def _growth(mid: LoadResult, big: LoadResult, attr: str) -> float:
    return float((getattr(big, attr) / big.steps) / (getattr(mid, attr) / mid.steps))


def linearity(results: list[LoadResult]) -> dict[str, Any]:
    """Per-step cost at the largest size divided by the per-step cost at the second largest size.

    ``status`` judges the figure users see (GC on); the GC-off and CSafeLoader growths tell whether any
    excess comes from cloudml's own code or from the interpreter's cyclic GC on a larger heap.
    """
    mid, big = results[-2], results[-1]
    growth = _growth(mid, big, "cloudml_loads")
    return {
        "mid_steps": mid.steps,
        "big_steps": big.steps,
        "per_step_growth": growth,
        "per_step_growth_gc_off": _growth(mid, big, "cloudml_loads_gc_off"),
        "csafe_loader_growth": _growth(mid, big, "yaml_csafe_load"),
        "tolerance": LINEAR_TOLERANCE,
        "status": "PASS" if growth <= LINEAR_TOLERANCE else "MISS",
    }


def environment(runs: int, repeats: int, bytecode_cache: bool) -> dict[str, Any]:
    import pydantic

    import cloudml

    return {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join(["python", *sys.argv]),
        "python": platform.python_version(),
        "executable": sys.executable,
        "executable_resolved": os.path.realpath(sys.executable),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "cloudml": cloudml.__version__,
        "git": git_revision(),
        "pydantic": pydantic.VERSION,
        "pyyaml": yaml.__version__,
        "libyaml": bool(getattr(yaml, "__with_libyaml__", False)),
        "import_runs": runs,
        "load_repeats": repeats,
        "bytecode_cache": "warm (private PYTHONPYCACHEPREFIX)"
        if bytecode_cache
        else "as the environment says",
        "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE"),
        "cpu_busy_before": cpu_busy(),
    }


def git_revision() -> str | None:
    """Short commit of the checkout cloudml runs from; ``+dirty`` when tracked files have local edits."""
    import cloudml

    root = os.path.dirname(os.path.dirname(os.path.abspath(cloudml.__file__ or ".")))
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True
        )
    except OSError:
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _cpu_counters() -> tuple[int, int]:
    with open("/proc/stat", encoding="ascii") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    return values[3] + values[4], sum(values)  # idle + iowait, total


def cpu_busy(window_s: float = 1.0) -> float | None:
    """Share of all CPUs busy with other work over ``window_s`` while this script sleeps (Linux only)."""
    try:
        idle0, total0 = _cpu_counters()
        time.sleep(window_s)
        idle1, total1 = _cpu_counters()
    except (OSError, ValueError, IndexError):
        return None
    return round(1 - (idle1 - idle0) / max(total1 - total0, 1), 2)


def _print_table(title: str, header: list[str], rows: list[list[str]], note: str) -> None:
    """Title and notes go through plain print (no padding); the table through rich when it is installed."""
    print(f"\n{title}")
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        _print_plain(header, rows)
    else:
        table = Table()
        for i, name in enumerate(header):
            table.add_column(name, justify="left" if i == 0 else "right", no_wrap=True)
        for row in rows:
            table.add_row(*row)
        Console(width=None if sys.stdout.isatty() else 250).print(table)
    print(note)


def _print_plain(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    for row in (header, *rows):
        cells = zip(row, widths, strict=True)
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(cells)))


def _pct(x: float | None) -> str:
    return "?" if x is None else f"{x:.0%}"


def report(env: dict[str, Any], imports: list[ImportResult], loads: list[LoadResult]) -> None:
    print(
        f"cloudml {env['cloudml']} (git {env['git']}) | Python {env['python']} {env['executable']} -> "
        f"{env['executable_resolved']} | {env['cpus']} CPUs | pydantic {env['pydantic']} | "
        f"PyYAML {env['pyyaml']} (libyaml={env['libyaml']}) | {env['date']}\n"
        f"bytecode cache for the children: {env['bytecode_cache']} | CPUs busy with other work: "
        f"{_pct(env['cpu_busy_before'])} before, {_pct(env['cpu_busy_after'])} after"
    )
    busy = max(env["cpu_busy_before"] or 0, env["cpu_busy_after"] or 0)
    if busy > BUSY_WARNING:
        print(
            f"WARNING: other processes kept {busy:.0%} of the CPUs busy; the figures are inflated. "
            "Re-run when the machine is idle."
        )
    header, rows = import_rows(imports)
    _print_table(
        f"Whole-process `python -c CODE` wall time: median of {env['import_runs']} fresh subprocesses",
        header,
        rows,
        IMPORT_NOTE,
    )
    header, rows = load_rows(loads)
    _print_table(
        f"Load + validate in-process: median of {env['load_repeats']} calls after warm-up",
        header,
        rows,
        LOAD_NOTE.format(**linearity(loads)),
    )


IMPORT_NOTE = (
    "Target from the issue: import cloudml <= 0.15 s; the two first-use rows are held to the same bar\n"
    "(informational). ≈ ratio: the peer is not installed in this interpreter, so the earlier measurement\n"
    "from the issue is used instead of a measured one."
)
LOAD_NOTE = (
    "÷ = cloudml.loads time divided by the parse-only floor on the same document.\n"
    "parse (YAML with positions) and validate are the two halves of cloudml.loads.\n"
    "Target from the issue: 500 steps <= 0.25 s; 10 and 100 steps get the pro-rata share (informational).\n"
    "Linearity: per-step cost at {big_steps} steps is {per_step_growth:.2f}x the cost at {mid_steps} steps "
    "(linear if <= {tolerance}x): {status}.\n"
    "Same ratio with the cyclic GC off: {per_step_growth_gc_off:.2f}x; "
    "for the CSafeLoader floor (GC on): {csafe_loader_growth:.2f}x."
)


def as_json(env: dict[str, Any], imports: list[ImportResult], loads: list[LoadResult]) -> dict[str, Any]:
    return {
        "environment": env,
        "imports": [
            {**asdict(r), "median_s": r.median_s, "min_s": r.min_s, "status": _status(r.median_s, r.target_s)}
            for r in imports
        ],
        "loads": [
            {
                **asdict(r),
                "per_step_s": r.cloudml_loads / r.steps,
                "target_s": load_target(r.steps),
                "status": _status(r.cloudml_loads, load_target(r.steps)),
            }
            for r in loads
        ],
        "linearity": linearity(loads),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer repeats (5 subprocesses, 5 load calls)")
    parser.add_argument(
        "--json", action="store_true", help="print machine-readable results instead of tables"
    )
    parser.add_argument("--runs", type=int, help="fresh subprocesses per import case (default 15, quick 5)")
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="children inherit the environment as is (PYTHONDONTWRITEBYTECODE=1: compile on every run)",
    )
    parser.add_argument("--repeats", type=int, help="timed calls per load measurement (default 15, quick 5)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runs = args.runs or (5 if args.quick else 15)
    repeats = args.repeats or (5 if args.quick else 15)
    env = environment(runs, repeats, not args.no_bytecode_cache)
    imports = measure_imports(runs, bytecode_cache=not args.no_bytecode_cache)
    loads = [measure_load(n, repeats) for n in STEP_SIZES]
    env["cpu_busy_after"] = cpu_busy()
    if args.json:
        print(json.dumps(as_json(env, imports, loads), indent=2))
    else:
        report(env, imports, loads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
