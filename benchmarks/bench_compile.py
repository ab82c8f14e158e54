"""Compile time per target for chains of 100 and 500 steps, side by side with the vendors' own SDKs.

Run:  python benchmarks/bench_compile.py [--repeats 15] [--json]

For every registered adapter whose compiler is built, the median time of ``cloudml.compile`` on a
chain of processing steps (each reading the previous step's output, with a parameter in its
command). The vendor SDK figures (SageMaker Python SDK 3.x, kfp, azure-ai-ml) were measured on this
machine when the targets were set; those SDKs are not installed here, so they are printed as such.
Also checks that compiling for each cloud loads none of that cloud's SDK.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Any

import cloudml
from cloudml.errors import UnsupportedFeatureError

EARLIER = {  # seconds for 100 / 500 steps with the vendor SDK, from the issues
    "sagemaker": ("SageMaker Python SDK 3.x", 28.0, None),
    "vertex": ("kfp compiler", 0.26, 1.96),
    "azureml": ("azure-ai-ml", 0.89, 4.4),
}
TARGET_100, TARGET_500 = 0.020, 0.100
SETTINGS = {"CLOUDML_SAGEMAKER_REGION": "us-east-1", "CLOUDML_SAGEMAKER_BUCKET": "bench",
            "CLOUDML_SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/bench"}


def chain(n: int) -> Any:
    """n processing steps in a chain, with an image and a parameter."""
    b = cloudml.PipelineBuilder(f"chain{n}", defaults={"image": "python:3.11-slim"})
    b.param("lr", float, 0.1)
    prev = b.add_step("s0", command="python step.py --lr {{params.lr}} --out {{outputs.o}}", outputs={"o": "dataset"})
    for i in range(1, n):
        prev = b.add_step(f"s{i}", command="python step.py --in {{inputs.i}} --out {{outputs.o}}",
                          inputs={"i": prev.outputs["o"]}, outputs={"o": "dataset"})
    return b.build()


def time_compile(pipeline: Any, target: str, repeats: int) -> float | None:
    """Median seconds of one compile, or None when the target's compiler is not built."""
    try:
        cloudml.compile(pipeline, target)
    except UnsupportedFeatureError:
        return None
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        cloudml.compile(pipeline, target)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


SDK_MODULES = {"sagemaker": ("boto3", "botocore", "sagemaker"), "vertex": ("kfp", "google"),
               "azureml": ("azure",)}


def compiler_imports_sdk(target: str) -> bool:
    """Whether compiling for ``target`` in a fresh process imports that cloud's SDK."""
    # modules present at startup (namespace-package .pth stubs such as google, google.cloud) do not count
    code = ("import sys\nbefore = set(sys.modules)\nimport os, cloudml\n"
            + "".join(f"os.environ[{k!r}] = {v!r}\n" for k, v in SETTINGS.items())
            + "b = cloudml.PipelineBuilder('p', defaults={'image': 'x'}); b.add_step('a', command='echo')\n"
            f"cloudml.compile(b.build(), {target!r})\n"
            f"print(any(m.split('.')[0] in {SDK_MODULES[target]!r} for m in set(sys.modules) - before))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip() == "True"


def main() -> None:
    """Entry point."""
    import os

    os.environ.update(SETTINGS)
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    p100, p500 = chain(100), chain(500)
    rows: dict[str, Any] = {}
    for target in cloudml.registry.adapter_names():
        rows[target] = {"100": time_compile(p100, target, args.repeats),
                        "500": time_compile(p500, target, max(3, args.repeats // 3))}
    sdk = {t: compiler_imports_sdk(t) for t in SDK_MODULES if rows.get(t, {}).get("100") is not None}
    if args.json:
        print(json.dumps({"compile": rows, "compiler_imports_sdk": sdk}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title="compile time (median seconds)", header_style="bold")
    for col in ("target", "100 steps", "500 steps", "500/100 per step", "targets", "vendor SDK (earlier)", "ratio"):
        t.add_column(col)
    for target, r in rows.items():
        if r["100"] is None:
            t.add_row(target, "compiler not built yet", "", "", "", "", "")
            continue
        growth = (r["500"] / 500) / (r["100"] / 100)
        verdict = "PASS" if r["100"] <= TARGET_100 and r["500"] <= TARGET_500 else "MISS"
        peer = EARLIER.get(target)
        ratio = f"{peer[1] / r['100']:.0f}x faster (100 steps)" if peer else ""
        t.add_row(target, f"{r['100'] * 1000:.1f} ms", f"{r['500'] * 1000:.1f} ms", f"{growth:.2f}x",
                  f"<= 20 ms / 100 ms: {verdict}", f"{peer[0]}: {peer[1]} s" if peer else "", ratio)
    Console(width=150).print(t)
    for target, loaded in sdk.items():
        print(f"compiling for {target} loads {'/'.join(SDK_MODULES[target])}: {loaded}")


if __name__ == "__main__":
    main()
