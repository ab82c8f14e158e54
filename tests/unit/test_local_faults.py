"""Faults on the local backend: each one ends in an error naming the step and the cause, and nothing
recorded before it is lost (the earlier step, its artifacts, and a readable metadata database)."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import cloudml
from cloudml.adapters.local.backend import LocalAdapter, LocalRun
from cloudml.adapters.local.metadata import MetadataStore
from cloudml.adapters.local.store import ArtifactStore
from cloudml.errors import SpecError
from cloudml.spec.pipeline import Pipeline

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "steps"
HEADER = "apiVersion: cloudml/v1\nkind: Pipeline\n"
GOOD = """
  - name: good
    command: python steps/write.py {{outputs.d}} kept
    outputs: {d: dataset}
"""


def pipeline(body: str) -> Pipeline:
    spec = cloudml.loads(HEADER + textwrap.dedent(body))
    assert isinstance(spec, Pipeline)
    return spec


@pytest.fixture
def spec_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "spec"
    shutil.copytree(FIXTURES, folder / "steps", ignore=shutil.ignore_patterns("__pycache__"))
    return folder


@pytest.fixture
def local(tmp_path: Path) -> LocalAdapter:
    adapter = cloudml.get_adapter("local", root=str(tmp_path / "state"))
    assert isinstance(adapter, LocalAdapter)
    return adapter


def run_steps(local: LocalAdapter, spec_dir: Path, steps: str, **options: Any) -> LocalRun:
    """Run the `good` step followed by ``steps`` (which may read good.outputs.d)."""
    handle = local.run(pipeline("name: faulty\nsteps:" + GOOD + steps), spec_dir=str(spec_dir), **options)
    handle.wait(60)
    return handle


def assert_nothing_lost(local: LocalAdapter, handle: LocalRun) -> None:
    """The earlier step, its stored output and the database all survived the fault."""
    fresh = MetadataStore(local.root / "meta.db")
    good = next(s for s in fresh.steps(handle.id) if s["name"] == "good")
    assert good["status"] == "succeeded"
    (out,) = fresh.io(handle.id, "good", "out")
    assert local.store.verify(out["digest"])
    assert (local.store.path(out["digest"]) / "data.txt").read_text() == "kept"
    assert fresh._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert list(local.store.tmp.iterdir()) == []
    fresh.close()


def alive(pid: int) -> bool:
    """True when the process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def gone(pid: int, within: float = 10.0) -> bool:
    """Wait for a killed process to die (a signal is delivered asynchronously)."""
    deadline = time.monotonic() + within
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    return not alive(pid)


# -- a step that fails ----------------------------------------------------------------------------------
def test_nonzero_exit_names_the_step_the_code_and_stderr(local: LocalAdapter, spec_dir: Path) -> None:
    handle = run_steps(local, spec_dir, """
  - name: broken
    command: [sh, -c, "echo progress; echo 'ValueError: bad row 7' >&2; exit 3"]
    inputs: {x: good.outputs.d}
""")
    assert handle.status == "failed"
    assert handle.error == "step 'broken' failed: exit code 3: ValueError: bad row 7"
    (attempt,) = local.meta.attempts(handle.id, "broken")
    assert (attempt["status"], attempt["exit_code"]) == ("failed", 3)
    assert handle.logs("broken") == "progress\n"
    assert handle.logs("broken", stream="stderr") == "ValueError: bad row 7\n"
    assert_nothing_lost(local, handle)


def test_a_command_that_cannot_start_is_reported(local: LocalAdapter, spec_dir: Path) -> None:
    handle = run_steps(local, spec_dir, """
  - name: ghost
    command: no-such-program-here --flag
""")
    assert handle.status == "failed"
    assert handle.error == "step 'ghost' failed: cannot start 'no-such-program-here': No such file or directory"
    assert_nothing_lost(local, handle)


def test_missing_declared_output(local: LocalAdapter, spec_dir: Path) -> None:
    handle = run_steps(local, spec_dir, """
  - name: lazy
    command: python steps/echo_args.py nothing written
    inputs: {x: good.outputs.d}
    outputs: {model: model}
    retry: {attempts: 2, backoff: 50ms}
""")
    assert handle.status == "failed"
    error = handle.step("lazy")["error"]
    assert error.startswith("declared output 'model' was not written (expected files in ")
    assert error.endswith("/steps/lazy/outputs/model)")
    assert handle.error == f"step 'lazy' failed: {error}"
    assert handle.step("lazy")["attempts"] == 2  # a missing output may be transient: it is retried
    assert not [r for r in handle.artifacts if r["step"] == "lazy"]
    assert_nothing_lost(local, handle)


def test_missing_metrics_output(local: LocalAdapter, spec_dir: Path) -> None:
    handle = run_steps(local, spec_dir, """
  - name: quiet
    command: python steps/echo_args.py
    outputs: {scores: metrics}
""")
    assert handle.status == "failed"
    assert handle.step("quiet")["error"].startswith("declared metrics output 'scores' was not written (expected ")
    assert_nothing_lost(local, handle)


def test_metrics_file_that_is_not_json(local: LocalAdapter, spec_dir: Path) -> None:
    handle = run_steps(local, spec_dir, """
  - name: evaluate
    command: [python, steps/metrics.py, "{{outputs.m}}", --raw, "auc: high"]
    inputs: {x: good.outputs.d}
    outputs: {m: metrics}
    retry: {attempts: 3, backoff: 50ms}
  - name: gate
    condition: evaluate.outputs.m["auc"] > 0.5
    then: [ship]
  - name: ship
    command: python steps/echo_args.py ship
""")
    assert handle.status == "failed"
    assert handle.step("evaluate")["error"].startswith("metrics output 'm' is not JSON: Expecting value")
    assert handle.error.startswith("step 'evaluate' failed: metrics output 'm' is not JSON")
    assert handle.step("evaluate")["attempts"] == 1  # a broken file will not fix itself: no retry
    assert handle.step("gate")["status"] == "upstream_failed"
    assert handle.step("ship")["status"] == "upstream_failed"
    assert handle.metrics == {}
    assert_nothing_lost(local, handle)


def test_condition_on_a_metric_the_file_lacks(local: LocalAdapter, spec_dir: Path) -> None:
    handle = run_steps(local, spec_dir, """
  - name: evaluate
    command: python steps/metrics.py {{outputs.m}} loss=0.3
    outputs: {m: metrics}
  - name: gate
    condition: evaluate.outputs.m["auc"] > 0.5
    then: [ship]
  - name: ship
    command: python steps/echo_args.py ship
""")
    assert handle.status == "failed"
    assert handle.error == "step 'gate' failed: metric 'auc' is missing from the metrics file"
    assert handle.step("ship")["status"] == "upstream_failed"
    assert handle.metrics == {"evaluate": {"loss": 0.3}}
    assert_nothing_lost(local, handle)


def test_step_hanging_past_its_timeout(local: LocalAdapter, spec_dir: Path) -> None:
    handle = run_steps(local, spec_dir, """
  - name: stuck
    command: sleep 30
    inputs: {x: good.outputs.d}
    timeout: 1s
""")
    assert handle.status == "failed"
    assert handle.error == "step 'stuck' failed: timed out after 1s (process group killed)"
    (attempt,) = local.meta.attempts(handle.id, "stuck")
    assert attempt["status"] == "failed" and attempt["exit_code"] == -9
    pid = int((Path(attempt["log_dir"]) / "pid").read_text())
    assert gone(pid)
    assert_nothing_lost(local, handle)


# -- inputs the local backend cannot read ------------------------------------------------------------------
def test_missing_external_input(local: LocalAdapter, spec_dir: Path) -> None:
    handle = run_steps(local, spec_dir, """
  - name: load
    command: python steps/upper.py {{inputs.raw}} {{outputs.d}}
    inputs: {raw: data/missing.csv}
    outputs: {d: dataset}
""")
    assert handle.status == "failed"
    missing = spec_dir / "data" / "missing.csv"
    assert handle.error == f"step 'load' failed: input 'raw': {missing} does not exist"
    assert handle.step("load")["attempts"] == 0  # never started
    assert_nothing_lost(local, handle)


@pytest.mark.parametrize(("inputs", "params", "scheme"), [
    ("{raw: s3://bucket/data/churn.csv}", "", "s3"),
    ('{raw: "{{params.uri}}"}', "parameters: {uri: {type: string, default: 'gs://bucket/x.csv'}}\n", "gs"),
])
def test_cloud_inputs_are_refused_on_the_local_backend(local: LocalAdapter, spec_dir: Path, inputs: str,
                                                       params: str, scheme: str) -> None:
    spec = pipeline(f"name: cloudy\n{params}steps:{GOOD}" + f"""
  - name: load
    command: python steps/upper.py {{{{inputs.raw}}}} {{{{outputs.d}}}}
    inputs: {inputs}
    outputs: {{d: dataset}}
""")
    handle = local.run(spec, spec_dir=str(spec_dir))
    assert handle.wait(60) == "failed"
    error = handle.step("load")["error"]
    assert error.startswith(f"input 'raw': the local backend reads local files, not {scheme}:// (")
    assert "download it first or pass a file path" in error
    assert handle.error == f"step 'load' failed: {error}"
    assert_nothing_lost(local, handle)


@pytest.mark.parametrize(("doc", "where"), [
    ("name: p\nsteps:\n  - name: a\n    command: echo\n    outputs: {'../escape': dataset}\n",
     "steps[0].outputs.../escape"),
    ("name: p\nsteps:\n  - name: a\n    command: echo {{outputs.d}}\n    outputs: {d: dataset}\n"
     "  - name: b\n    command: echo\n    inputs: {'../x': a.outputs.d}\n", "steps[1].inputs.../x"),
    ("name: p\nsteps:\n  - name: ../a\n    command: echo\n", "steps[0].name"),
    ("name: p\nsteps:\n  - name: a\n    command: echo {{outputs.m}}\n    outputs: {m: model}\n"
     "  - name: r\n    register_model: {model: a.outputs.m, group: ../g}\n", "steps[1].register_model.group"),
])
def test_names_with_dot_dot_are_refused_at_validation(doc: str, where: str) -> None:
    with pytest.raises(SpecError) as info:
        cloudml.loads(HEADER + doc)
    (issue,) = info.value.issues
    assert issue.path == where
    assert "should match pattern" in issue.message
    assert issue.line is not None  # points at the line in the file


def test_builder_refuses_dot_dot_output_names() -> None:
    builder = cloudml.PipelineBuilder("p")
    builder.add_step("a", command="echo {{outputs.d}}", outputs={"../../etc": "dataset"})
    with pytest.raises(SpecError, match=r"outputs\.\.\./\.\./etc"):
        builder.build()


# -- a full disk --------------------------------------------------------------------------------------------
def _fills_up_on(marker: bytes) -> Any:
    def copy(src: str, dst: str) -> object:
        if marker in Path(src).read_bytes():
            raise OSError(errno.ENOSPC, "No space left on device")
        return shutil.copyfile(src, dst)

    return copy


def test_full_disk_while_storing_an_output(local: LocalAdapter, spec_dir: Path) -> None:
    local._store = ArtifactStore(local.root / "store", copy=_fills_up_on(b"FULL"))
    handle = run_steps(local, spec_dir, """
  - name: big
    command: python steps/write.py {{outputs.d}} FULL
    inputs: {x: good.outputs.d}
    outputs: {d: dataset}
  - name: after
    command: python steps/upper.py {{inputs.x}} {{outputs.d}}
    inputs: {x: big.outputs.d}
    outputs: {d: dataset}
""")
    assert handle.status == "failed"
    assert handle.error is not None and handle.error.startswith("step 'big' failed: output 'd': could not store ")
    assert "No space left on device" in handle.error
    assert handle.step("big")["attempts"] == 1  # a full disk is not retried blindly
    assert handle.step("after")["status"] == "upstream_failed"
    assert not [r for r in handle.artifacts if r["step"] == "big"]
    assert_nothing_lost(local, handle)


def test_full_disk_while_staging_an_input(local: LocalAdapter, spec_dir: Path) -> None:
    (spec_dir / "huge.csv").write_bytes(b"FULL of rows\n")
    local._store = ArtifactStore(local.root / "store", copy=_fills_up_on(b"FULL"))
    handle = run_steps(local, spec_dir, """
  - name: load
    command: python steps/upper.py {{inputs.raw}} {{outputs.d}}
    inputs: {raw: huge.csv}
    outputs: {d: dataset}
""")
    assert handle.status == "failed"
    assert handle.error == f"step 'load' failed: could not store {spec_dir / 'huge.csv'}: No space left on device"
    assert_nothing_lost(local, handle)


# -- the runner itself is killed -------------------------------------------------------------------------------
KILLED = """
name: killed
parameters:
  starts: {type: string}
  pidfile: {type: string}
steps:
  - name: first
    command: python steps/write.py {{outputs.d}} first
    outputs: {d: dataset}
  - name: long
    command: python steps/slow_once.py {{params.starts}} {{params.pidfile}} {{outputs.d}}
    inputs: {x: first.outputs.d}
    outputs: {d: dataset}
  - name: last
    command: python steps/upper.py {{inputs.x}} {{outputs.d}}
    inputs: {x: long.outputs.d}
    outputs: {d: dataset}
"""


def test_runner_killed_mid_step_then_resumed(spec_dir: Path, tmp_path: Path) -> None:
    root, starts, pidfile = tmp_path / "state", tmp_path / "starts.txt", tmp_path / "long.pid"
    spec_file = spec_dir / "pipeline.yaml"
    spec_file.write_text(HEADER + KILLED)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDML_")}
    runner = subprocess.Popen(
        [sys.executable, "-m", "cloudml.cli.main", "run", str(spec_file), "--root", str(root),
         "-p", f"starts={starts}", "-p", f"pidfile={pidfile}"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    orphan = 0
    try:
        deadline = time.monotonic() + 30
        while not (pidfile.exists() and pidfile.read_text()):
            assert runner.poll() is None, "the runner ended before the long step started"
            assert time.monotonic() < deadline, "the long step never started"
            time.sleep(0.02)
        orphan = int(pidfile.read_text())
        while not list(root.glob("runs/*/steps/long/attempt-1/pid")):  # the runner recorded the process
            assert time.monotonic() < deadline, "the runner never recorded the long step's pid"
            time.sleep(0.02)
        os.kill(runner.pid, signal.SIGKILL)
        assert runner.wait(30) == -signal.SIGKILL
        assert alive(orphan)  # the step's process group outlives its runner

        local = cloudml.get_adapter("local", root=str(root))
        (row,) = local.list_runs()
        assert row["status"] == "running"
        before = {s["name"]: s for s in local.meta.steps(row["id"])}
        assert (before["first"]["status"], before["long"]["status"], before["last"]["status"]) == (
            "succeeded", "running", "pending")
        first_attempts = local.meta.attempts(row["id"], "first")

        handle = local.resume(row["id"])
        assert gone(orphan), "resume must kill the step the dead runner left running"
        assert handle.wait(60) == "succeeded", handle.error
        assert {s["name"]: s["status"] for s in handle.steps} == {
            "first": "succeeded", "long": "succeeded", "last": "succeeded"}
        assert len(starts.read_text().splitlines()) == 2  # the killed step ran again ...
        assert local.meta.attempts(row["id"], "first") == first_attempts  # ... the finished one did not
        assert handle.step("first")["finished"] == before["first"]["finished"]
        assert (handle.output_path("last", "d") / "data.txt").read_text() == "FINISHED"
        assert local.meta.get_run(row["id"])["resumed"] == 1
        assert list((root / "store" / "tmp").iterdir()) == []
        conn = sqlite3.connect(root / "meta.db")
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()
    finally:
        if runner.poll() is None:
            runner.kill()
        if orphan and alive(orphan):
            os.kill(orphan, signal.SIGKILL)
