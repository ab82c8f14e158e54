"""Compile time per target for chains of 100 and 500 steps, side by side with the vendors' own SDKs.

Run:  python benchmarks/bench_compile.py [--quick] [--full] [--repeats 15] [--json]

For every registered adapter whose compiler is built: the median time of ``cloudml.compile`` on a
chain of processing steps (each reading the previous step's output, with a parameter in its command),
and the median time of building that chain with ``PipelineBuilder`` plus compiling it.

In the same run, the same chain is built and compiled with what a user would use instead, whenever
that SDK is importable by this interpreter (each in its own subprocess, import time kept apart):

* ``vertex``: kfp's dsl (one ``container_component`` per step, each consuming the previous output)
  and ``kfp.compiler.Compiler().compile`` to a file in a temporary folder;
* ``azureml``: azure-ai-ml's ``command`` components in a ``@pipeline`` function, then ``_to_dict()``
  dumped to YAML (no ``MLClient``);
* ``sagemaker``: the SageMaker Python SDK 3.x, one ``Processor.run`` + ``ProcessingStep`` per step
  in a ``PipelineSession``, then ``Pipeline.definition()``. It takes tens of seconds, so it is built
  once, for 100 steps only (500 with ``--full``), under a timeout; ``--quick`` skips it.

The vendor figure is build + compile (what the user waits for between their code and a pipeline
file), a median of ``--vendor-repeats`` after one warm-up for kfp and azure-ai-ml, a single cold build
for SageMaker. An SDK that is not installed, fails or times out is replaced by the figure measured on
this machine when the targets were set, labelled ``recorded``.

Offline: every vendor child gets fake AWS credentials, ``SAGEMAKER_VALIDATE_ROLE=false``, no AWS
config files, and ``HTTP(S)_PROXY`` pointing at a listener on 127.0.0.1 that counts and drops
connections; the count is printed. ``--sagemaker-telemetry-optout`` also sets the SDK's telemetry
opt-out file (as tests/unit/test_sagemaker_sdk_equivalence.py does); the SDK then re-validates that
file on every config lookup, which makes it several times slower, so it is off by default.
Also checks that compiling for each cloud loads none of that cloud's SDK. The header gives the
interpreter, the git commit and how busy other processes kept the CPUs just before, during (the
machine's busy time minus this run's own CPU time) and just after the run. Always exits 0.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from importlib import metadata
from typing import Any

import cloudml
from cloudml.errors import UnsupportedFeatureError

RECORDED = {  # seconds for 100 / 500 steps with the vendor SDK, measured when the targets were set (the issues)
    "sagemaker": ("SageMaker Python SDK 3.x", 28.0, None),
    "vertex": ("kfp", 0.26, 1.96),
    "azureml": ("azure-ai-ml", 0.89, 4.4),
}
VENDOR_DIST = {"sagemaker": "sagemaker", "vertex": "kfp", "azureml": "azure-ai-ml"}
TARGET_100, TARGET_500 = 0.020, 0.100
SETTINGS = {"CLOUDML_SAGEMAKER_REGION": "us-east-1", "CLOUDML_SAGEMAKER_BUCKET": "bench",
            "CLOUDML_SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/bench"}
SDK_MODULES = {"sagemaker": ("boto3", "botocore", "sagemaker"), "vertex": ("kfp", "google"),
               "azureml": ("azure",)}

# Run as ``python -c VENDOR_CHILD <target> <steps> <repeats>``; prints one JSON line. No
# ``from __future__ import annotations`` here: kfp reads the component annotations as objects.
VENDOR_CHILD = r'''
import json, os, sys, tempfile, time
from importlib import metadata

target, n, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
IMAGE = "python:3.11-slim"


def kfp_setup():
    from kfp import compiler, dsl

    @dsl.container_component
    def first(lr: float, o: dsl.Output[dsl.Dataset]) -> dsl.ContainerSpec:
        return dsl.ContainerSpec(image=IMAGE, command=["python", "step.py"], args=["--lr", lr, "--out", o.path])

    @dsl.container_component
    def nxt(i: dsl.Input[dsl.Dataset], o: dsl.Output[dsl.Dataset]) -> dsl.ContainerSpec:
        return dsl.ContainerSpec(image=IMAGE, command=["python", "step.py"], args=["--in", i.path, "--out", o.path])

    folder = tempfile.mkdtemp()

    def build():
        def chain(lr: float = 0.1):
            prev = first(lr=lr).set_display_name("s0")
            for k in range(1, n):
                prev = nxt(i=prev.outputs["o"]).set_display_name(f"s{k}")
        return dsl.pipeline(name=f"chain{n}")(chain)

    def emit(pipeline):
        path = os.path.join(folder, "pipeline.yaml")
        compiler.Compiler().compile(pipeline, path)
        return os.path.getsize(path)

    return build, emit


def azure_setup():
    import yaml
    from azure.ai.ml import Input, Output, command
    from azure.ai.ml.dsl import pipeline
    from azure.ai.ml.entities import Environment

    def build():
        env = Environment(image=IMAGE)
        first = command(name="first", command="python step.py --lr ${{inputs.lr}} --out ${{outputs.o}}",
                        environment=env, inputs={"lr": Input(type="number")}, outputs={"o": Output(type="uri_folder")})
        nxt = command(name="next", command="python step.py --in ${{inputs.i}} --out ${{outputs.o}}",
                      environment=env, inputs={"i": Input(type="uri_folder")}, outputs={"o": Output(type="uri_folder")})

        def chain(lr=0.1):
            prev = first(lr=lr)
            prev.name = "s0"
            for k in range(1, n):
                prev = nxt(i=prev.outputs.o)
                prev.name = f"s{k}"

        chain.__name__ = f"chain{n}"
        return pipeline(name=f"chain{n}", compute="cpu-cluster")(chain)()

    def emit(job):
        return len(yaml.safe_dump(job._to_dict(), sort_keys=False))

    return build, emit


def sagemaker_setup():
    import boto3
    from sagemaker.core.processing import Processor
    from sagemaker.core.shapes import ProcessingInput, ProcessingOutput, ProcessingS3Input, ProcessingS3Output
    from sagemaker.core.workflow.parameters import ParameterFloat
    from sagemaker.core.workflow.pipeline_context import PipelineSession
    from sagemaker.mlops.workflow.pipeline import Pipeline
    from sagemaker.mlops.workflow.steps import ProcessingStep

    region, bucket, role, proc = "us-east-1", "bench", "arn:aws:iam::123456789012:role/bench", "/opt/ml/processing"
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/step:latest"

    def build():
        session = PipelineSession(boto_session=boto3.Session(region_name=region), default_bucket=bucket)
        lr = ParameterFloat("lr", default_value=0.1)
        steps = []
        for k in range(n):
            inputs, args = [], ["--lr", lr.to_string()]
            if steps:
                uri = steps[-1].properties.ProcessingOutputConfig.Outputs["o"].S3Output.S3Uri
                inputs = [ProcessingInput(input_name="i", s3_input=ProcessingS3Input(
                    s3_uri=uri, local_path=f"{proc}/input/i", s3_data_type="S3Prefix", s3_input_mode="File"))]
                args = ["--in", f"{proc}/input/i"]
            job = Processor(role=role, image_uri=image, instance_count=1, instance_type="ml.m5.large",
                            entrypoint=["python", "step.py", *args, "--out", f"{proc}/output/o"],
                            sagemaker_session=session)
            out = ProcessingOutput(output_name="o", s3_output=ProcessingS3Output(
                s3_uri=f"s3://{bucket}/chain/s{k}/o", local_path=f"{proc}/output/o", s3_upload_mode="EndOfJob"))
            steps.append(ProcessingStep(name=f"s{k}", step_args=job.run(inputs=inputs, outputs=[out])))
        return Pipeline(name=f"chain{n}", parameters=[lr], steps=steps, sagemaker_session=session)

    def emit(p):
        return len(p.definition())

    return build, emit


t = time.perf_counter()
build, emit = {"vertex": kfp_setup, "azureml": azure_setup, "sagemaker": sagemaker_setup}[target]()
import_s = time.perf_counter() - t
runs = []
for _ in range(repeats):
    t0 = time.perf_counter()
    p = build()
    t1 = time.perf_counter()
    size = emit(p)
    runs.append({"build": t1 - t0, "compile": time.perf_counter() - t1, "chars": size})
dist = {"vertex": "kfp", "azureml": "azure-ai-ml", "sagemaker": "sagemaker"}[target]
print(json.dumps({"import_s": import_s, "version": metadata.version(dist), "runs": runs}))
'''


def chain(n: int) -> Any:
    """n processing steps in a chain, with an image and a parameter."""
    b = cloudml.PipelineBuilder(f"chain{n}", defaults={"image": "python:3.11-slim"})
    b.param("lr", float, 0.1)
    prev = b.add_step("s0", command="python step.py --lr {{params.lr}} --out {{outputs.o}}", outputs={"o": "dataset"})
    for i in range(1, n):
        prev = b.add_step(f"s{i}", command="python step.py --in {{inputs.i}} --out {{outputs.o}}",
                          inputs={"i": prev.outputs["o"]}, outputs={"o": "dataset"})
    return b.build()


def median_s(fn: Any, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def time_compile(pipeline: Any, target: str, repeats: int) -> float | None:
    """Median seconds of one compile, or None when the target's compiler is not built."""
    try:
        cloudml.compile(pipeline, target)
    except UnsupportedFeatureError:
        return None
    return median_s(lambda: cloudml.compile(pipeline, target), repeats)


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


# ----------------------------------------------------------------------------- vendor SDKs, offline


class Sink:
    """A TCP listener on 127.0.0.1 that counts and drops every connection: the vendor children's only way out."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


def offline_env(tmp: str, proxy_port: int, telemetry_optout: bool) -> dict[str, str]:
    """The environment of a vendor child: fake credentials, no AWS config, every proxy on 127.0.0.1."""
    drop = ("AWS_", "SAGEMAKER_", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "CLOUDML_")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(drop)}
    proxy = f"http://127.0.0.1:{proxy_port}"
    env.update({
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing", "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.path.join(tmp, "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": os.path.join(tmp, "no-aws-credentials"),
        "SAGEMAKER_VALIDATE_ROLE": "false",
        "HTTP_PROXY": proxy, "HTTPS_PROXY": proxy, "http_proxy": proxy, "https_proxy": proxy,
        "NO_PROXY": "", "no_proxy": "",
    })
    if telemetry_optout:
        config = os.path.join(tmp, "sagemaker-config.yaml")
        with open(config, "w", encoding="utf-8") as f:
            f.write("SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n")
        env["SAGEMAKER_USER_CONFIG_OVERRIDE"] = env["SAGEMAKER_ADMIN_CONFIG_OVERRIDE"] = config
    return env


def sdk_version(target: str) -> str | None:
    """The installed version of the vendor SDK (3.x for SageMaker), or None."""
    try:
        version = metadata.version(VENDOR_DIST[target])
    except metadata.PackageNotFoundError:
        return None
    if target == "sagemaker" and int(version.split(".")[0]) < 3:
        return None
    return version


def run_vendor(target: str, n: int, repeats: int, env: dict[str, str], cwd: str, timeout: float) -> dict[str, Any]:
    """Build + compile the n-step chain with the vendor SDK in a subprocess: median seconds, or why not."""
    try:
        proc = subprocess.run([sys.executable, "-c", VENDOR_CHILD, target, str(n), str(repeats)],
                              capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"failed: {last[:160]}"}
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    runs = out["runs"][1:] or out["runs"]  # the first is a warm-up when there are several
    out["build_s"] = statistics.median(r["build"] for r in runs)
    out["compile_s"] = statistics.median(r["compile"] for r in runs)
    out["total_s"] = statistics.median(r["build"] + r["compile"] for r in runs)
    out["cold_total_s"] = out["runs"][0]["build"] + out["runs"][0]["compile"]
    return out


def measure_vendors(args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    """Live figures (or the reason there are none) per target and step count, and the sink's count."""
    sink = Sink()
    results: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-compile-") as tmp:
            env = offline_env(tmp, sink.port, args.sagemaker_telemetry_optout)
            for target in RECORDED:
                results[target] = {"version": sdk_version(target)}
                for n in (100, 500):
                    if results[target]["version"] is None:
                        results[target][str(n)] = {"error": "not installed"}
                    elif target == "sagemaker" and args.quick:
                        results[target][str(n)] = {"error": "skipped with --quick"}
                    elif target == "sagemaker" and n == 500 and not args.full:
                        results[target][str(n)] = {"error": "run with --full"}
                    elif target == "sagemaker":
                        results[target][str(n)] = run_vendor(target, n, 1, env, tmp, args.sagemaker_timeout * n / 100)
                    else:
                        reps = args.vendor_repeats if n == 100 else max(1, args.vendor_repeats // 2)
                        results[target][str(n)] = run_vendor(target, n, reps + 1, env, tmp, 600)
    finally:
        sink.close()
    return results, sink.connections


# ----------------------------------------------------------------------------- report


def git_revision() -> str | None:
    """Short commit of the checkout cloudml runs from; ``+dirty`` when tracked files have local edits."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(cloudml.__file__ or ".")))
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True)
    except OSError:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if head.returncode == 0 else None


def _counters() -> tuple[int, int]:
    with open("/proc/stat", encoding="ascii") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    return values[3] + values[4], sum(values)  # idle + iowait, total (clock ticks, all CPUs)


def cpu_busy(window_s: float = 1.0) -> float | None:
    """Share of all CPUs busy with other work over ``window_s`` while this script sleeps (Linux only)."""
    try:
        idle0, total0 = _counters()
        time.sleep(window_s)
        idle1, total1 = _counters()
    except (OSError, ValueError, IndexError):
        return None
    return round(1 - (idle1 - idle0) / max(total1 - total0, 1), 2)


class OtherLoad:
    """Share of all CPUs that other processes kept busy while the run went on: the machine's busy time
    (/proc/stat) minus this process's and its waited-for children's CPU time (Linux only)."""

    def __init__(self) -> None:
        try:
            self.start: tuple[tuple[int, int], os.times_result] | None = (_counters(), os.times())
        except (OSError, ValueError, IndexError):
            self.start = None

    def share(self) -> float | None:
        if self.start is None:
            return None
        (idle0, total0), t0 = self.start
        idle1, total1 = _counters()
        t1 = os.times()
        tick = os.sysconf("SC_CLK_TCK")
        busy_s = ((total1 - total0) - (idle1 - idle0)) / tick
        ours_s = sum(getattr(t1, a) - getattr(t0, a) for a in ("user", "system", "children_user", "children_system"))
        return round(max(busy_s - ours_s, 0.0) / max((total1 - total0) / tick, 1e-9), 2)


def vendor_cell(target: str, n: int, live: dict[str, Any]) -> tuple[float | None, str]:
    """The vendor figure for n steps and its label: live, or recorded with the reason."""
    r = live.get(target, {}).get(str(n), {"error": "not measured"})
    if "total_s" in r:
        return r["total_s"], f"{r['total_s']:.2f} s live"
    recorded = RECORDED[target][1 if n == 100 else 2]
    return recorded, "-" if recorded is None else f"{recorded} s recorded"


def report(rows: dict[str, Any], live: dict[str, Any], connections: int, header: str, busy: str,
           sdk: dict[str, bool]) -> None:
    """One table: cloudml per target, the vendor figure (live or recorded) and the ratios."""
    from rich.console import Console
    from rich.table import Table

    print(header)
    print(busy)
    t = Table(title="compile time (median); vendor = the same chain built and compiled with the vendor's SDK",
              header_style="bold")
    for col in ("target", "cloudml compile 100 / 500", "500/100 per step", "targets",
                "cloudml build+compile 100 / 500", "vendor SDK", "vendor 100 steps", "vendor 500 steps",
                "vendor ÷ cloudml build+compile 100 / 500"):
        t.add_column(col)
    for target, r in rows.items():
        if r["100"] is None:
            t.add_row(target, "compiler not built yet", *[""] * 7)
            continue
        growth = (r["500"] / 500) / (r["100"] / 100)
        verdict = "PASS" if r["100"] <= TARGET_100 and r["500"] <= TARGET_500 else "MISS"
        cells = [target, f"{r['100'] * 1000:.1f} / {r['500'] * 1000:.1f} ms", f"{growth:.2f}x",
                 f"<= 20 / 100 ms: {verdict}", f"{r['build+100'] * 1000:.0f} / {r['build+500'] * 1000:.0f} ms"]
        if target in RECORDED:
            (v100, c100), (v500, c500) = vendor_cell(target, 100, live), vendor_cell(target, 500, live)
            version = live.get(target, {}).get("version")
            ratios = [f"{v / r[f'build+{n}']:.0f}x" if v else "-" for n, v in ((100, v100), (500, v500))]
            cells += [RECORDED[target][0] + (f" {version}" if version else ""), c100, c500, " / ".join(ratios)]
        else:
            cells += ["", "", "", ""]
        t.add_row(*cells)
    Console(width=200).print(t)
    for target, by_n in live.items():
        for n in ("100", "500"):
            if "error" in by_n.get(n, {}):
                had = RECORDED[target][1 if n == "100" else 2]
                print(f"{target} {n} steps, vendor SDK not run live ({by_n[n]['error']}): "
                      + (f"recorded figure {had} s, measured on this machine when the targets were set"
                         if had is not None else "no recorded figure"))
    for target, by_n in live.items():
        for n in ("100", "500"):
            r = by_n.get(n, {})
            if "total_s" in r:
                print(f"{target} {n} steps, vendor SDK: build {r['build_s']:.3f} s + compile {r['compile_s']:.3f} s "
                      f"(median of {max(1, len(r['runs']) - 1)}; first/cold run {r['cold_total_s']:.3f} s; "
                      f"import {r['import_s']:.2f} s, not counted; {r['runs'][0]['chars']} chars)")
    print(f"connections the vendor SDKs attempted (all dropped at 127.0.0.1): {connections}")
    for target, loaded in sdk.items():
        print(f"compiling for {target} loads {'/'.join(SDK_MODULES[target])}: {loaded}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="cloudml compiles per 100-step figure")
    parser.add_argument("--vendor-repeats", type=int, default=5, help="kfp / azure-ai-ml builds per 100-step figure")
    parser.add_argument("--quick", action="store_true", help="5 repeats, 2 vendor repeats, no SageMaker SDK run")
    parser.add_argument("--full", action="store_true", help="also build 500 steps with the SageMaker SDK")
    parser.add_argument("--sagemaker-timeout", type=float, default=600.0, help="seconds per 100 SageMaker steps")
    parser.add_argument("--sagemaker-telemetry-optout", action="store_true",
                        help="give the SageMaker SDK its telemetry opt-out file (several times slower)")
    parser.add_argument("--no-vendors", action="store_true", help="recorded vendor figures only")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.vendor_repeats = min(args.repeats, 5), min(args.vendor_repeats, 2)
    return args


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    args = parse_args(argv)
    os.environ.update(SETTINGS)
    busy_before = cpu_busy()
    during = OtherLoad()
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    p100, p500 = chain(100), chain(500)
    rows: dict[str, Any] = {}
    for target in cloudml.registry.adapter_names():
        rows[target] = {"100": time_compile(p100, target, args.repeats),
                        "500": time_compile(p500, target, max(3, args.repeats // 3))}
        if rows[target]["100"] is not None:
            for n, reps in ((100, args.repeats), (500, max(3, args.repeats // 3))):
                rows[target][f"build+{n}"] = median_s(lambda n=n, t=target: cloudml.compile(chain(n), t), reps)
    sdk = {t: compiler_imports_sdk(t) for t in SDK_MODULES if rows.get(t, {}).get("100") is not None}
    if args.no_vendors:
        live, connections = {t: {"100": {"error": "--no-vendors"}, "500": {"error": "--no-vendors"}} for t in RECORDED}, 0
    else:
        live, connections = measure_vendors(args)
    busy_during = during.share()
    busy_after = cpu_busy()
    if args.json:
        print(json.dumps({"started": started, "python": sys.executable, "compile": rows, "vendors": live,
                          "vendor_connections": connections, "compiler_imports_sdk": sdk,
                          "cpu_busy_other": {"before": busy_before, "during": busy_during, "after": busy_after}},
                         indent=2))
        return
    header = (f"cloudml {metadata.version('cloudml')} (git {git_revision()}) | Python {sys.version.split()[0]} {sys.executable} | "
              f"{os.cpu_count()} CPUs | {started}")
    pct = [f"{b:.0%}" if b is not None else "?" for b in (busy_before, busy_during, busy_after)]
    busy = f"CPUs busy with other work: {pct[0]} before, {pct[1]} during the run, {pct[2]} after"
    if max(b or 0 for b in (busy_before, busy_during, busy_after)) > 0.10:
        busy += " -- above 10%: figures are inflated, re-run when the machine is idle"
    report(rows, live, connections, header, busy, sdk)


if __name__ == "__main__":
    try:
        main()
    except Exception:  # informational script: report, never fail the caller
        traceback.print_exc()
    sys.exit(0)
