"""The local runner for real: parameters, artifacts, conditions, retries, timeouts, failure
propagation, parallelism, caching, in-process mode, the model registry and resume.

Every pipeline here runs real processes (the small scripts in tests/fixtures/steps/) under a
temporary root; assertions read what the steps wrote and what the metadata store recorded, never
wall-clock durations.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import shutil
import signal
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cloudml
from cloudml.adapters.local.backend import LocalAdapter, LocalRun
from cloudml.adapters.local.runner import StepEvent
from cloudml.adapters.local.store import digest_path
from cloudml.errors import ArtifactError, CloudMLError, NotFoundError, RunError, SpecError
from cloudml.spec.pipeline import Pipeline

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "steps"


# -- helpers ------------------------------------------------------------------------------------
def pipeline(body: str) -> Pipeline:
    spec = cloudml.loads("apiVersion: cloudml/v1\nkind: Pipeline\n" + textwrap.dedent(body))
    assert isinstance(spec, Pipeline)
    return spec


@pytest.fixture
def spec_dir(tmp_path: Path) -> Path:
    """A project folder holding the fixture step scripts under steps/."""
    folder = tmp_path / "spec"
    shutil.copytree(FIXTURES, folder / "steps", ignore=shutil.ignore_patterns("__pycache__"))
    return folder


@pytest.fixture(autouse=True)
def _forget_step_modules(tmp_path: Path) -> Iterator[None]:
    """In-process steps import their modules into this process: drop them (and their sys.path) afterwards."""
    path = list(sys.path)
    yield
    sys.path[:] = path
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]


@pytest.fixture
def local(tmp_path: Path) -> LocalAdapter:
    adapter = cloudml.get_adapter("local", root=str(tmp_path / "state"))
    assert isinstance(adapter, LocalAdapter)
    return adapter


def run(local: LocalAdapter, spec_dir: Path, body: str, params: dict[str, Any] | None = None,
        **options: Any) -> LocalRun:
    handle = local.run(pipeline(body), params, spec_dir=str(spec_dir), **options)
    handle.wait(60)
    return handle


def states(handle: LocalRun) -> dict[str, str]:
    return {s["name"]: s["status"] for s in handle.steps}


def read(handle: LocalRun, step: str, output: str = "d") -> str:
    return (handle.output_path(step, output) / "data.txt").read_text()


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


def wait_for(path: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.stat().st_size > 0):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def kill_quietly(pidfile: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(pidfile.read_text()), signal.SIGKILL)


# -- parameters -------------------------------------------------------------------------------------
PARAMS = """
name: params
parameters:
  n: {type: int, default: 3, min: 1, max: 100}
  lr: {type: float, default: 0.1}
  flag: {type: bool, default: true}
  word: {type: string, default: hello}
steps:
  - name: show
    command: python steps/echo_args.py {{params.n}} {{params.lr}} {{params.flag}} {{params.word}}
    env: {GREETING: "hi {{params.word}}"}
"""


def test_parameters_reach_commands_with_overrides_and_coercion(local: LocalAdapter, spec_dir: Path) -> None:
    handle = run(local, spec_dir, PARAMS, {"n": "7", "flag": "false", "lr": "1e-2"})
    assert handle.status == "succeeded", handle.error
    assert local.meta.get_run(handle.id)["parameters"] == {"n": 7, "lr": 0.01, "flag": False, "word": "hello"}
    seen = json.loads(handle.logs("show"))
    assert seen["argv"] == ["7", "0.01", "false", "hello"]
    assert seen["env"]["GREETING"] == "hi hello"
    assert seen["env"]["CLOUDML_STEP"] == "show"
    assert seen["env"]["CLOUDML_RUN_ID"] == handle.id
    assert seen["env"]["CLOUDML_BACKEND"] == "local"


def test_parameter_defaults_apply_when_not_overridden(local: LocalAdapter, spec_dir: Path) -> None:
    handle = run(local, spec_dir, PARAMS)
    assert json.loads(handle.logs("show"))["argv"] == ["3", "0.1", "true", "hello"]


@pytest.mark.parametrize("bad", [{"n": "abc"}, {"n": "500"}, {"nope": "1"}, {"flag": "maybe"}])
def test_bad_parameters_are_refused_before_anything_runs(local: LocalAdapter, spec_dir: Path,
                                                         bad: dict[str, str]) -> None:
    with pytest.raises(SpecError) as info:
        local.run(pipeline(PARAMS), bad, spec_dir=str(spec_dir))
    assert next(iter(bad)) in str(info.value)
    assert local.list_runs() == []


TYPED = """
name: typed
parameters:
  n: {type: int, default: 3}
  lr: {type: float, default: 0.1}
steps:
  - name: make
    python: jobs:make
    code: steps
    params: {text: ab, times: 2}
    outputs: {out: dataset}
  - name: train
    python: jobs:train
    code: steps
    inputs: {data: make.outputs.out}
    params: {n: "{{params.n}}", lr: "{{params.lr}}", flag: false, name: run-1}
    outputs: {model: model}
  - name: evaluate
    python: jobs:evaluate
    code: steps
    inputs: {model: train.outputs.model}
    outputs: {metrics: metrics}
"""


def test_python_steps_get_typed_params_inputs_and_outputs(local: LocalAdapter, spec_dir: Path) -> None:
    handle = run(local, spec_dir, TYPED, {"n": "42", "lr": "0.25"})
    assert handle.status == "succeeded", handle.error
    model = json.loads((handle.output_path("train", "model") / "model.json").read_text())
    assert model["seen"] == {"n": 42, "lr": 0.25, "flag": False, "name": "run-1", "data": "abab"}
    assert model["types"] == {"n": "int", "lr": "float", "flag": "bool", "name": "str", "data": "str"}
    # the dict the function returned became the metrics output
    assert handle.metrics["evaluate"] == {"auc": 0.42, "lr": 0.25, "chars": 4.0}
    assert json.loads(handle.output_path("evaluate", "metrics").read_text())["auc"] == 0.42
    assert local.meta.params(handle.id)["train"]["n"] == "42"


# -- artifacts --------------------------------------------------------------------------------------
CHAIN = """
name: chain
parameters:
  word: {type: string, default: hello}
steps:
  - name: a
    command: python steps/write.py {{outputs.d}} {{params.word}}
    outputs: {d: dataset}
  - name: b
    command: python steps/upper.py {{inputs.x}} {{outputs.d}}
    inputs: {x: a.outputs.d}
    outputs: {d: dataset}
  - name: c
    command: python steps/upper.py {{inputs.x}} {{outputs.d}}
    inputs: {x: b.outputs.d}
    outputs: {d: dataset}
"""


def test_artifacts_pass_between_steps(local: LocalAdapter, spec_dir: Path) -> None:
    handle = run(local, spec_dir, CHAIN, {"word": "hello"})
    assert handle.status == "succeeded", handle.error
    assert states(handle) == {"a": "succeeded", "b": "succeeded", "c": "succeeded"}
    assert read(handle, "a") == "hello"
    assert read(handle, "b") == "HELLO"
    assert handle.logs("b").strip() == "read hello"
    assert handle.logs("c").strip() == "read HELLO"


def test_outputs_are_content_addressed_and_lineage_links_them(local: LocalAdapter, spec_dir: Path) -> None:
    handle = run(local, spec_dir, CHAIN + """
  - name: score
    command: python steps/metrics.py {{outputs.m}} auc=0.75
    outputs: {m: metrics}
""")
    assert handle.status == "succeeded", handle.error
    outs = {(r["step"], r["name"]): r for r in handle.artifacts}
    assert set(outs) == {("a", "d"), ("b", "d"), ("c", "d"), ("score", "m")}
    for (step, name), row in outs.items():
        path = handle.output_path(step, name)
        assert row["digest"] == digest_path(path)[0]
        assert local.store.verify(row["digest"])
    # a metrics file is stored as a file: its digest is the plain SHA-256 of its bytes
    metrics_file = handle.output_path("score", "m")
    assert outs[("score", "m")]["digest"] == hashlib.sha256(metrics_file.read_bytes()).hexdigest()
    # a folder's digest covers relative paths and file digests
    file_digest = hashlib.sha256(b"hello").hexdigest()
    expected = hashlib.sha256(b"cloudml-dir-v1\n" + f"data.txt\0{file_digest}\n".encode()).hexdigest()
    assert outs[("a", "d")]["digest"] == expected
    assert (local.store.path(expected) / "data.txt").read_text() == "hello"
    # lineage: b read exactly what a wrote, c exactly what b wrote
    b_in = local.meta.io(handle.id, "b", "in")
    assert [(r["name"], r["digest"], r["source"]) for r in b_in] == [("x", expected, "a.outputs.d")]
    c_in = local.meta.io(handle.id, "c", "in")
    assert c_in[0]["digest"] == outs[("b", "d")]["digest"]
    producers = local.meta.producers(expected)
    assert [(p["run_id"], p["step"], p["name"]) for p in producers] == [(handle.id, "a", "d")]


def test_external_inputs_are_staged_and_recorded(local: LocalAdapter, spec_dir: Path) -> None:
    (spec_dir / "data").mkdir()
    (spec_dir / "data" / "raw.txt").write_text("raw text")
    handle = run(local, spec_dir, """
name: ext
steps:
  - name: read
    command: python steps/upper.py {{inputs.raw}} {{outputs.d}}
    inputs: {raw: data/raw.txt}
    outputs: {d: dataset}
""")
    assert handle.status == "succeeded", handle.error
    assert read(handle, "read") == "RAW TEXT"
    (row,) = local.meta.io(handle.id, "read", "in")
    assert row["source"] == "data/raw.txt"
    assert row["digest"] == hashlib.sha256(b"raw text").hexdigest()
    assert local.store.path(row["digest"]).read_text() == "raw text"


# -- conditions and fail steps ----------------------------------------------------------------------
GATE = """
name: gate
parameters:
  auc: {type: float, default: 0.9}
  min_auc: {type: float, default: 0.8}
steps:
  - name: evaluate
    command: python steps/metrics.py {{outputs.m}} auc={{params.auc}}
    outputs: {m: metrics}
  - name: gate
    condition: evaluate.outputs.m["auc"] >= params.min_auc
    then: [ship]
    else: [hold]
  - name: ship
    command: python steps/write.py {{outputs.d}} shipped
    outputs: {d: dataset}
  - name: after-ship
    command: python steps/upper.py {{inputs.x}} {{outputs.d}}
    inputs: {x: ship.outputs.d}
    outputs: {d: dataset}
  - name: hold
    command: python steps/write.py {{outputs.d}} held
    outputs: {d: dataset}
"""


@pytest.mark.parametrize(("auc", "result", "ran", "skipped"), [
    (0.9, "true", {"ship", "after-ship"}, {"hold"}),
    (0.5, "false", {"hold"}, {"ship", "after-ship"}),
])
def test_condition_runs_one_branch_and_records_the_other_skipped(
        local: LocalAdapter, spec_dir: Path, auc: float, result: str, ran: set[str], skipped: set[str]) -> None:
    handle = run(local, spec_dir, GATE, {"auc": auc})
    assert handle.status == "succeeded", handle.error
    st = states(handle)
    assert st["gate"] == "succeeded"
    assert handle.step("gate")["result"] == result
    assert {n for n in ran if st[n] == "succeeded"} == ran
    assert {n for n, s in st.items() if s == "skipped"} == skipped
    for name in skipped:
        assert handle.step(name)["attempts"] == 0
        assert not handle.output_path(name, "d").exists()
    branch = "then" if result == "false" else "else"
    first_skipped = "ship" if result == "false" else "hold"
    assert f"branch '{branch}' of 'gate' not taken" in handle.step(first_skipped)["error"]
    if result == "false":
        assert "upstream step 'ship' was skipped" in handle.step("after-ship")["error"]
    else:
        assert read(handle, "after-ship") == "SHIPPED"


FAIL = """
name: failing
parameters:
  auc: {type: float, default: 0.9}
  min_auc: {type: float, default: 0.8}
steps:
  - name: evaluate
    command: python steps/metrics.py {{outputs.m}} auc={{params.auc}}
    outputs: {m: metrics}
  - name: gate
    condition: evaluate.outputs.m["auc"] >= params.min_auc
    then: [ship]
    else: [too-low]
  - name: ship
    command: python steps/write.py {{outputs.d}} shipped
    outputs: {d: dataset}
  - name: too-low
    fail: "AUC {{params.auc}} is below {{params.min_auc}}"
"""


def test_fail_step_ends_the_run_failed_with_its_message(local: LocalAdapter, spec_dir: Path) -> None:
    low = run(local, spec_dir, FAIL, {"auc": 0.5})
    assert low.status == "failed"
    assert low.error == "step 'too-low' failed: AUC 0.5 is below 0.8"
    assert states(low) == {"evaluate": "succeeded", "gate": "succeeded", "ship": "skipped", "too-low": "failed"}
    high = run(local, spec_dir, FAIL, {"auc": 0.95})
    assert high.status == "succeeded", high.error
    assert states(high) == {"evaluate": "succeeded", "gate": "succeeded", "ship": "succeeded", "too-low": "skipped"}


# -- retries ------------------------------------------------------------------------------------------
RETRY = """
name: retry
parameters:
  counter: {type: string}
  succeed_on: {type: int, default: 3}
steps:
  - name: flaky
    command: python steps/flaky.py {{params.counter}} {{params.succeed_on}} {{outputs.d}}
    retry: {attempts: 4, backoff: 50ms}
    outputs: {d: dataset}
"""


def test_retry_with_backoff_until_success(local: LocalAdapter, spec_dir: Path, tmp_path: Path) -> None:
    events: list[StepEvent] = []
    handle = run(local, spec_dir, RETRY, {"counter": str(tmp_path / "count")}, on_event=events.append)
    assert handle.status == "succeeded", handle.error
    row = handle.step("flaky")
    assert row["attempts"] == 3
    attempts = local.meta.attempts(handle.id, "flaky")
    assert [(a["attempt"], a["status"], a["exit_code"]) for a in attempts] == [
        (1, "failed", 1), (2, "failed", 1), (3, "succeeded", 0)]
    for n in (1, 2, 3):
        assert handle.logs("flaky", attempt=n) == f"attempt {n} out\n"
        assert handle.logs("flaky", attempt=n, stream="stderr") == f"attempt {n} err\n"
    assert handle.logs("flaky") == "attempt 3 out\n"
    assert read(handle, "flaky") == "done on attempt 3"
    retrying = [e for e in events if e.step == "flaky" and e.status == "retrying"]
    assert [e.attempt for e in retrying] == [1, 2]
    assert all("exit code 1" in e.message and "retry in" in e.message for e in retrying)


def test_retries_exhausted_fail_with_the_last_error(local: LocalAdapter, spec_dir: Path, tmp_path: Path) -> None:
    handle = run(local, spec_dir, RETRY.replace("attempts: 4", "attempts: 2"),
                 {"counter": str(tmp_path / "count"), "succeed_on": 9})
    assert handle.status == "failed"
    assert handle.step("flaky")["attempts"] == 2
    assert handle.step("flaky")["error"] == "exit code 1: attempt 2 err"
    assert handle.error == "step 'flaky' failed: exit code 1: attempt 2 err"
    assert (tmp_path / "count").read_text() == "2"


def test_retry_waits_are_capped_by_max_backoff(local: LocalAdapter, spec_dir: Path, tmp_path: Path) -> None:
    events: list[StepEvent] = []
    body = RETRY.replace("retry: {attempts: 4, backoff: 50ms}", "retry: {attempts: 2, backoff: 1s, max_backoff: 50ms}")
    handle = run(local, spec_dir, body, {"counter": str(tmp_path / "count"), "succeed_on": 9},
                 on_event=events.append)
    assert handle.status == "failed"
    (retrying,) = [e for e in events if e.status == "retrying"]
    delay = float(retrying.message.rsplit("retry in ", 1)[1].rstrip("s"))
    assert delay <= 0.1, retrying.message


# -- timeouts -----------------------------------------------------------------------------------------
def test_timeout_kills_the_whole_process_group(local: LocalAdapter, spec_dir: Path, tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    try:
        handle = run(local, spec_dir, f"""
name: hang
steps:
  - name: hang
    command: python steps/spawn_sleep.py {pidfile}
    timeout: 1s
""")
        assert handle.status == "failed"
        assert handle.step("hang")["error"] == "timed out after 1s (process group killed)"
        (attempt,) = local.meta.attempts(handle.id, "hang")
        assert attempt["status"] == "failed"
        child = int(pidfile.read_text())
        assert gone(child), "the step's child `sleep 30` outlived the timeout"
    finally:
        kill_quietly(pidfile)


def test_timeout_kills_children_that_ignore_sigterm(local: LocalAdapter, spec_dir: Path, tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    try:
        handle = run(local, spec_dir, f"""
name: hang
steps:
  - name: hang
    command: python steps/spawn_sleep.py {pidfile} --stubborn
    timeout: 1s
""")
        assert handle.status == "failed"
        assert "process group killed" in handle.step("hang")["error"]
        assert gone(int(pidfile.read_text()), within=1.0), "a child that ignores SIGTERM outlived the timeout"
    finally:
        kill_quietly(pidfile)


# -- failure propagation --------------------------------------------------------------------------------
PROPAGATE = """
name: propagate
parameters:
  flag: {type: string}
steps:
  - name: a
    command: python steps/write.py {{outputs.d}} a
    outputs: {d: dataset}
  - name: b
    command: python steps/fail_unless.py {{params.flag}} {{outputs.d}}
    inputs: {x: a.outputs.d}
    outputs: {d: dataset}
  - name: c
    command: python steps/upper.py {{inputs.x}} {{outputs.d}}
    inputs: {x: b.outputs.d}
    outputs: {d: dataset}
  - name: d
    command: python steps/upper.py {{inputs.x}} {{outputs.d}}
    inputs: {x: c.outputs.d}
    outputs: {d: dataset}
  - name: side
    command: python steps/write.py {{outputs.d}} side
    outputs: {d: dataset}
  - name: side-down
    command: python steps/upper.py {{inputs.x}} {{outputs.d}}
    inputs: {x: side.outputs.d}
    outputs: {d: dataset}
"""


def test_failure_stops_dependents_and_independent_branch_finishes(
        local: LocalAdapter, spec_dir: Path, tmp_path: Path) -> None:
    handle = run(local, spec_dir, PROPAGATE, {"flag": str(tmp_path / "flag")})
    assert handle.status == "failed"
    assert states(handle) == {"a": "succeeded", "b": "failed", "c": "upstream_failed", "d": "upstream_failed",
                              "side": "succeeded", "side-down": "succeeded"}
    assert handle.error == "step 'b' failed: exit code 4: flag flag is missing"
    assert handle.step("c")["error"] == "upstream step 'b' did not succeed"
    assert handle.step("d")["error"] == "upstream step 'c' did not succeed"
    assert handle.step("c")["attempts"] == 0
    assert read(handle, "side-down") == "SIDE"


FAIL_FAST = """
name: fast
parameters:
  pidfile: {type: string}
steps:
  - name: slow
    command: python steps/spawn_sleep.py {{params.pidfile}}
  - name: after-slow
    command: python steps/write.py {{outputs.d}} late
    depends_on: [slow]
    outputs: {d: dataset}
  - name: bad
    command: sh -c 'while [ ! -s {{params.pidfile}} ]; do sleep 0.01; done; echo broken >&2; exit 3'
"""


def test_fail_fast_stops_running_steps_and_starts_no_more(
        local: LocalAdapter, spec_dir: Path, tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    try:
        handle = run(local, spec_dir, FAIL_FAST, {"pidfile": str(pidfile)}, fail_fast=True, max_workers=4)
        assert handle.status == "failed"
        assert handle.error == "step 'bad' failed: exit code 3: broken"
        st = states(handle)
        assert st["bad"] == "failed"
        assert st["slow"] != "succeeded"
        assert handle.step("after-slow")["attempts"] == 0
        assert st["after-slow"] != "succeeded"
        assert gone(int(pidfile.read_text())), "fail-fast left the running step's process behind"
    finally:
        kill_quietly(pidfile)


def test_fail_fast_from_backend_options(local: LocalAdapter, spec_dir: Path, tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    try:
        body = FAIL_FAST.replace("name: fast\n", "name: fast\nbackend_options: {local: {fail_fast: true}}\n")
        handle = run(local, spec_dir, body, {"pidfile": str(pidfile)}, max_workers=4)
        assert handle.status == "failed"
        assert handle.step("after-slow")["attempts"] == 0
        assert gone(int(pidfile.read_text()))
    finally:
        kill_quietly(pidfile)


def test_fail_fast_leaves_no_step_pending(local: LocalAdapter, spec_dir: Path, tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    try:
        handle = run(local, spec_dir, FAIL_FAST, {"pidfile": str(pidfile)}, fail_fast=True, max_workers=4)
        assert handle.status == "failed"
        left = {n: s for n, s in states(handle).items() if s in ("pending", "running")}
        assert left == {}, f"a finished run still shows {left}"
    finally:
        kill_quietly(pidfile)


def _start_and_wait_for(local: LocalAdapter, spec_dir: Path, pidfile: Path) -> LocalRun:
    handle = local.run(pipeline(FAIL_FAST.replace("  - name: bad\n", "  - name: bad\n    depends_on: [after-slow]\n")),
                       {"pidfile": str(pidfile)}, spec_dir=str(spec_dir))
    wait_for(pidfile)
    (attempt,) = local.meta.attempts(handle.id, "slow")
    wait_for(Path(attempt["log_dir"]) / "pid")  # the runner has recorded the step's process
    return handle


def test_cancel_stops_the_run(local: LocalAdapter, spec_dir: Path, tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    try:
        handle = _start_and_wait_for(local, spec_dir, pidfile)
        handle.cancel()
        assert handle.wait(30) == "cancelled"
        st = states(handle)
        assert st["after-slow"] == "cancelled"
        assert st["bad"] == "cancelled"
        assert st["slow"] != "succeeded"
        assert gone(int(pidfile.read_text()))
        with pytest.raises(RunError):
            local.get_run(handle.id).cancel()  # a handle without the executor cannot cancel
    finally:
        kill_quietly(pidfile)


def test_cancel_records_the_killed_step_cancelled(local: LocalAdapter, spec_dir: Path, tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    try:
        handle = _start_and_wait_for(local, spec_dir, pidfile)
        handle.cancel()
        assert handle.wait(30) == "cancelled"
        assert states(handle)["slow"] == "cancelled"
    finally:
        kill_quietly(pidfile)


# -- parallelism -----------------------------------------------------------------------------------------
def test_independent_steps_run_at_the_same_time(local: LocalAdapter, spec_dir: Path, tmp_path: Path) -> None:
    meet = tmp_path / "meet"
    handle = run(local, spec_dir, f"""
name: par
steps:
  - name: left
    command: python steps/rendezvous.py {meet} left right {{{{outputs.d}}}}
    outputs: {{d: dataset}}
  - name: right
    command: python steps/rendezvous.py {meet} right left {{{{outputs.d}}}}
    outputs: {{d: dataset}}
""", max_workers=2)
    # each step waited until the other had started: both succeeding proves they overlapped
    assert handle.status == "succeeded", handle.error
    left, right = json.loads(read(handle, "left")), json.loads(read(handle, "right"))
    assert left["started"] <= right["other_seen"] and right["started"] <= left["other_seen"]


SERIAL = """
name: serial
steps:
  - name: one
    command: python steps/stamp.py {{outputs.d}}
    outputs: {d: dataset}
  - name: two
    command: python steps/stamp.py {{outputs.d}}
    outputs: {d: dataset}
  - name: three
    command: python steps/stamp.py {{outputs.d}}
    outputs: {d: dataset}
"""


@pytest.mark.parametrize("how", ["option", "backend_options"])
def test_max_workers_one_runs_steps_one_after_another(local: LocalAdapter, spec_dir: Path, how: str) -> None:
    if how == "option":
        handle = run(local, spec_dir, SERIAL, max_workers=1)
    else:
        handle = run(local, spec_dir, SERIAL.replace("name: serial\n",
                                                     "name: serial\nbackend_options: {local: {max_workers: 1}}\n"))
    assert handle.status == "succeeded", handle.error
    stamps = [json.loads(read(handle, n)) for n in ("one", "two", "three")]
    spans = sorted((s["start"], s["end"]) for s in stamps)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start, f"steps overlapped with max_workers=1: {spans}"


# -- caching ----------------------------------------------------------------------------------------------
CACHED = """
name: cached
parameters:
  word: {type: string, default: one}
steps:
  - name: a
    command: python steps/write.py {{outputs.d}} {{params.word}}
    outputs: {d: dataset}
  - name: b
    command: python steps/upper.py {{inputs.x}} {{outputs.d}}
    inputs: {x: a.outputs.d}
    outputs: {d: dataset}
  - name: fixed
    command: python steps/write.py {{outputs.d}} constant
    outputs: {d: dataset}
  - name: fixed-down
    command: python steps/upper.py {{inputs.x}} {{outputs.d}}
    inputs: {x: fixed.outputs.d}
    outputs: {d: dataset}
"""


def test_second_run_is_all_cached(local: LocalAdapter, spec_dir: Path) -> None:
    first = run(local, spec_dir, CACHED)
    assert set(states(first).values()) == {"succeeded"}
    second = run(local, spec_dir, CACHED)
    assert second.status == "succeeded"
    assert set(states(second).values()) == {"cached"}
    for row in second.steps:
        assert row["cache_hit"] == 1
        assert row["attempts"] == 0
        assert local.meta.attempts(second.id, row["name"]) == []
    # cached outputs are materialized in the new run and recorded with the same digests
    assert read(second, "b") == "ONE"
    digests = lambda h: {(r["step"], r["name"]): r["digest"] for r in h.artifacts}  # noqa: E731
    assert digests(second) == digests(first)


def test_changing_a_parameter_reruns_only_the_steps_it_reaches(local: LocalAdapter, spec_dir: Path) -> None:
    run(local, spec_dir, CACHED)
    second = run(local, spec_dir, CACHED, {"word": "two"})
    assert states(second) == {"a": "succeeded", "b": "succeeded", "fixed": "cached", "fixed-down": "cached"}
    assert read(second, "b") == "TWO"


def test_changing_a_command_reruns_that_step_and_only_what_its_output_changes(
        local: LocalAdapter, spec_dir: Path) -> None:
    run(local, spec_dir, CACHED)
    # an extra argument the script ignores: b must run again; its output is the same, so c stays cached
    body = CACHED + """
  - name: c
    command: python steps/upper.py {{inputs.x}} {{outputs.d}}
    inputs: {x: b.outputs.d}
    outputs: {d: dataset}
"""
    run(local, spec_dir, body)
    changed = body.replace("command: python steps/upper.py {{inputs.x}} {{outputs.d}}\n    inputs: {x: a.outputs.d}",
                           "command: python steps/upper.py {{inputs.x}} {{outputs.d}} v2\n    inputs: {x: a.outputs.d}")
    assert changed != body
    third = run(local, spec_dir, changed)
    assert states(third) == {"a": "cached", "b": "succeeded", "fixed": "cached", "fixed-down": "cached",
                             "c": "cached"}


def test_changing_a_code_file_reruns_only_the_steps_using_it(local: LocalAdapter, spec_dir: Path) -> None:
    for name, script in (("code_a", "write.py"), ("code_b", "upper.py")):
        (spec_dir / name).mkdir()
        shutil.copy(spec_dir / "steps" / script, spec_dir / name / script)
    body = """
name: code
steps:
  - name: a
    code: code_a
    command: python write.py {{outputs.d}} text
    outputs: {d: dataset}
  - name: b
    code: code_b
    command: python upper.py {{inputs.x}} {{outputs.d}}
    inputs: {x: a.outputs.d}
    outputs: {d: dataset}
  - name: c
    code: code_a
    command: python write.py {{outputs.d}} other
    inputs: {x: b.outputs.d}
    outputs: {d: dataset}
"""
    first = run(local, spec_dir, body)
    assert first.status == "succeeded", first.error
    with open(spec_dir / "code_b" / "upper.py", "a") as fh:
        fh.write("# a comment changes the code digest, not the output\n")
    second = run(local, spec_dir, body)
    assert states(second) == {"a": "cached", "b": "succeeded", "c": "cached"}
    assert read(second, "b") == "TEXT"
    (spec_dir / "code_a" / "schema.yaml").write_text("columns: [a]\n")  # data beside the code counts too
    third = run(local, spec_dir, body)
    assert states(third) == {"a": "succeeded", "b": "cached", "c": "succeeded"}
    (spec_dir / "code_a" / "__pycache__").mkdir(exist_ok=True)
    (spec_dir / "code_a" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (spec_dir / "code_a" / ".cache").mkdir()
    (spec_dir / "code_a" / ".cache" / "state").write_text("x")  # caches and dot folders do not
    assert set(states(run(local, spec_dir, body)).values()) == {"cached"}


def test_changing_an_input_file_reruns_the_step_reading_it(local: LocalAdapter, spec_dir: Path) -> None:
    (spec_dir / "raw.txt").write_text("old")
    body = """
name: inputs
steps:
  - name: reader
    command: python steps/upper.py {{inputs.raw}} {{outputs.d}}
    inputs: {raw: raw.txt}
    outputs: {d: dataset}
  - name: other
    command: python steps/write.py {{outputs.d}} other
    outputs: {d: dataset}
"""
    run(local, spec_dir, body)
    assert set(states(run(local, spec_dir, body)).values()) == {"cached"}
    (spec_dir / "raw.txt").write_text("new")
    third = run(local, spec_dir, body)
    assert states(third) == {"reader": "succeeded", "other": "cached"}
    assert read(third, "reader") == "NEW"


def test_use_cache_false_and_cache_false_steps_run_again(local: LocalAdapter, spec_dir: Path) -> None:
    body = CACHED + """
  - name: volatile
    command: python steps/write.py {{outputs.d}} volatile
    cache: false
    outputs: {d: dataset}
"""
    run(local, spec_dir, body)
    again = run(local, spec_dir, body)
    assert states(again) == {"a": "cached", "b": "cached", "fixed": "cached", "fixed-down": "cached",
                             "volatile": "succeeded"}
    forced = run(local, spec_dir, body, use_cache=False)
    assert set(states(forced).values()) == {"succeeded"}
    assert all(r["attempts"] == 1 for r in forced.steps)


def test_cache_expire_is_honoured(local: LocalAdapter, spec_dir: Path) -> None:
    body = """
name: expiry
steps:
  - name: short
    command: python steps/write.py {{outputs.d}} short
    cache: {expire: 200ms}
    outputs: {d: dataset}
  - name: long
    command: python steps/write.py {{outputs.d}} long
    cache: {expire: 1h}
    outputs: {d: dataset}
"""
    run(local, spec_dir, body)
    time.sleep(0.3)
    second = run(local, spec_dir, body)
    assert states(second) == {"short": "succeeded", "long": "cached"}


def test_cached_steps_keep_their_metrics(local: LocalAdapter, spec_dir: Path) -> None:
    first = run(local, spec_dir, GATE)
    second = run(local, spec_dir, GATE)
    assert states(second)["evaluate"] == "cached"
    assert second.metrics == first.metrics == {"evaluate": {"auc": 0.9}}
    assert second.step("gate")["result"] == "true"


def test_editing_a_python_step_module_without_code_dir_invalidates_the_cache(
        local: LocalAdapter, spec_dir: Path) -> None:
    module = f"nocode_{uuid.uuid4().hex[:8]}"
    (spec_dir / f"{module}.py").write_text("def f(m):\n    return {'v': 1}\n")
    body = f"""
name: nocode
steps:
  - name: job
    python: {module}:f
    outputs: {{m: metrics}}
"""
    assert run(local, spec_dir, body).metrics == {"job": {"v": 1.0}}
    (spec_dir / f"{module}.py").write_text("def f(m):\n    return {'v': 2}  # edited\n")
    second = run(local, spec_dir, body)
    assert states(second)["job"] == "succeeded"
    assert second.metrics == {"job": {"v": 2.0}}


# -- in-process mode ---------------------------------------------------------------------------------------
def test_in_process_gives_the_same_results_as_subprocesses(spec_dir: Path, tmp_path: Path) -> None:
    body = TYPED + """
  - name: who
    python: jobs:whoami
    code: steps
    outputs: {result: metrics}
"""
    results = {}
    for mode in (False, True):
        adapter = cloudml.get_adapter("local", root=str(tmp_path / f"state-{mode}"))
        handle = run(adapter, spec_dir, body, {"n": 30}, in_process=mode)
        assert handle.status == "succeeded", handle.error
        outs = {(r["step"], r["name"]): r["digest"] for r in handle.artifacts if r["step"] != "who"}
        metrics = {k: v for k, v in handle.metrics.items() if k != "who"}
        results[mode] = (outs, metrics, handle.metrics["who"]["pid"])
    (sub_outs, sub_metrics, sub_pid), (in_outs, in_metrics, in_pid) = results[False], results[True]
    assert in_outs == sub_outs
    assert in_metrics == sub_metrics == {"evaluate": {"auc": 0.3, "lr": 0.1, "chars": 4.0}}
    assert in_pid == os.getpid() != sub_pid  # the modes really differ


def test_in_process_step_errors_are_reported(local: LocalAdapter, spec_dir: Path) -> None:
    handle = run(local, spec_dir, """
name: broken
steps:
  - name: job
    python: jobs:make
    code: steps
    params: {text: x}
    outputs: {out: dataset}
""", in_process=True)
    assert handle.status == "failed"
    assert "function argument 'times' has no input, output or param of that name" in handle.step("job")["error"]


def test_in_process_steps_have_their_own_logs(local: LocalAdapter, spec_dir: Path) -> None:
    module = f"talk_{uuid.uuid4().hex[:8]}"
    (spec_dir / "talk").mkdir()
    (spec_dir / "talk" / f"{module}.py").write_text(
        "import sys, time\n"
        "def f(who: str):\n"
        "    for i in range(5):\n"
        "        print(f'{who} {i}')\n"
        "        time.sleep(0.01)\n"
        "    print(f'{who} warns', file=sys.stderr)\n")
    stdout_before = sys.stdout
    handle = run(local, spec_dir, f"""
name: talk
steps:
  - {{name: a, python: "{module}:f", code: talk, params: {{who: alpha}}}}
  - {{name: b, python: "{module}:f", code: talk, params: {{who: beta}}}}
""", in_process=True, max_workers=2)
    assert handle.status == "succeeded", handle.error
    assert handle.logs("a").splitlines() == [f"alpha {i}" for i in range(5)]  # never beta's lines
    assert handle.logs("b").splitlines() == [f"beta {i}" for i in range(5)]
    assert handle.logs("a", stream="stderr").strip() == "alpha warns"
    assert sys.stdout is stdout_before  # the router is gone once no in-process step runs


def test_in_process_picks_up_edited_code(local: LocalAdapter, spec_dir: Path) -> None:
    module = f"inproc_{uuid.uuid4().hex[:8]}"
    (spec_dir / "src").mkdir()
    (spec_dir / "src" / f"{module}.py").write_text("def f(m):\n    return {'v': 1}\n")
    body = f"""
name: inproc
steps:
  - name: job
    python: {module}:f
    code: src
    outputs: {{m: metrics}}
"""
    assert run(local, spec_dir, body, in_process=True).metrics == {"job": {"v": 1.0}}
    (spec_dir / "src" / f"{module}.py").write_text("def f(m):\n    return {'v': 2}  # edited\n")
    second = run(local, spec_dir, body, in_process=True)
    assert states(second)["job"] == "succeeded"  # the code digest changed, so the step ran again
    assert second.metrics == {"job": {"v": 2.0}}


def test_in_process_steps_from_two_folders_with_the_same_module_name(local: LocalAdapter, spec_dir: Path) -> None:
    module = f"steps_{uuid.uuid4().hex[:8]}"
    for folder, value in (("one", 1), ("two", 2)):
        (spec_dir / folder).mkdir()
        (spec_dir / folder / f"{module}.py").write_text(f"def f(m):\n    return {{'v': {value}}}\n")
    body = f"""
name: twofolders
steps:
  - name: a
    python: {module}:f
    code: one
    outputs: {{m: metrics}}
  - name: b
    python: {module}:f
    code: two
    outputs: {{m: metrics}}
    depends_on: [a]
  - name: c
    python: {module}:f
    code: one
    outputs: {{m: metrics}}
    depends_on: [b]
"""
    assert run(local, spec_dir, body, in_process=True).metrics == {"a": {"v": 1.0}, "b": {"v": 2.0}, "c": {"v": 1.0}}


@pytest.mark.parametrize("in_process", [True, False])
def test_steps_see_the_contract_variables_in_process_too(local: LocalAdapter, spec_dir: Path, in_process: bool) -> None:
    module = f"envstep_{uuid.uuid4().hex[:8]}"
    (spec_dir / "envsrc").mkdir()
    (spec_dir / "envsrc" / f"{module}.py").write_text(
        "import json\nfrom cloudml.runtime import step_env\n"
        "def f(out):\n"
        "    names = ['CLOUDML_RUN_ID', 'CLOUDML_STEP', 'CLOUDML_BACKEND', 'CLOUDML_ROOT', 'CLOUDML_RUN_DIR']\n"
        "    (out / 'env.json').write_text(json.dumps({n: step_env(n) for n in names}))\n")
    handle = run(local, spec_dir, f"""
name: envs
steps:
  - name: probe
    python: {module}:f
    code: envsrc
    outputs: {{out: dataset}}
""", in_process=in_process)
    assert handle.status == "succeeded", handle.error
    seen = json.loads((handle.output_path("probe", "out") / "env.json").read_text())
    assert seen["CLOUDML_RUN_ID"] == handle.id and seen["CLOUDML_STEP"] == "probe"
    assert seen["CLOUDML_BACKEND"] == "local" and Path(seen["CLOUDML_ROOT"]) == Path(local.root).resolve()
    assert Path(seen["CLOUDML_RUN_DIR"]).is_dir()


def test_in_process_from_backend_options(local: LocalAdapter, spec_dir: Path) -> None:
    handle = run(local, spec_dir, """
name: opts
backend_options: {local: {in_process: true}}
steps:
  - name: who
    python: jobs:whoami
    code: steps
    outputs: {result: metrics}
""")
    assert handle.status == "succeeded", handle.error
    assert handle.metrics["who"]["pid"] == os.getpid()


# -- model registry ---------------------------------------------------------------------------------------
REGISTER = """
name: reg
parameters:
  n: {type: int, default: 90}
steps:
  - name: data
    python: jobs:make
    code: steps
    params: {text: xy, times: 3}
    outputs: {out: dataset}
  - name: train
    python: jobs:train
    code: steps
    inputs: {data: data.outputs.out}
    params: {n: "{{params.n}}", lr: 0.5, flag: true, name: churn}
    outputs: {model: model}
  - name: evaluate
    python: jobs:evaluate
    code: steps
    inputs: {model: train.outputs.model}
    outputs: {metrics: metrics}
  - name: gate
    condition: evaluate.outputs.metrics["auc"] >= 0.5
    then: [register]
  - name: register
    register_model:
      model: train.outputs.model
      group: churn
      metrics: evaluate.outputs.metrics
      approval: approved
      tags: {team: growth}
"""


def test_register_step_creates_versions_with_metrics_and_approval(local: LocalAdapter, spec_dir: Path) -> None:
    first = run(local, spec_dir, REGISTER)
    assert first.status == "succeeded", first.error
    assert first.step("register")["result"] == "churn:v1"
    (v1,) = local.list_models("churn")
    assert (v1.group, v1.version, v1.approval, v1.run_id) == ("churn", 1, "approved", first.id)
    assert v1.metrics == {"auc": 0.9, "lr": 0.5, "chars": 6.0}
    assert v1.tags == {"team": "growth"}
    model_dir = first.output_path("train", "model")
    assert (Path(v1.uri) / "model.json").read_text() == (model_dir / "model.json").read_text()
    assert Path(v1.uri).name == digest_path(model_dir)[0]
    assert local.latest_approved("churn").version == 1

    # the same model again (even re-run from scratch) does not make a new version
    again = run(local, spec_dir, REGISTER, use_cache=False)
    assert again.step("register")["result"] == "churn:v1"
    assert [m.version for m in local.list_models("churn")] == [1]

    # a different model does
    other = run(local, spec_dir, REGISTER, {"n": 95})
    assert other.step("register")["result"] == "churn:v2"
    assert [m.version for m in local.list_models("churn")] == [2, 1]
    assert local.latest_approved("churn").version == 2

    rejected = local.set_approval("churn", 2, "rejected")
    assert rejected.approval == "rejected"
    assert local.latest_approved("churn").version == 1
    local.set_approval("churn", 1, "pending")
    with pytest.raises(NotFoundError, match="no approved version"):
        local.latest_approved("churn")
    with pytest.raises(CloudMLError, match="approval must be"):
        local.set_approval("churn", 1, "maybe")
    with pytest.raises(NotFoundError, match="churn v9"):
        local.set_approval("churn", 9, "approved")


def test_register_is_skipped_when_the_gate_fails(local: LocalAdapter, spec_dir: Path) -> None:
    handle = run(local, spec_dir, REGISTER, {"n": 10})
    assert handle.status == "succeeded", handle.error
    assert states(handle)["register"] == "skipped"
    assert local.list_models("churn") == []


def test_register_model_api_is_idempotent_per_artifact(local: LocalAdapter, tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"\x00\x01")
    v1 = local.register_model("fraud", str(model), metrics={"auc": 0.7}, approval="approved")
    assert (v1.version, v1.metrics, v1.approval) == (1, {"auc": 0.7}, "approved")
    assert local.register_model("fraud", str(model)).version == 1
    (model / "weights.bin").write_bytes(b"\x00\x02")
    assert local.register_model("fraud", str(model)).version == 2
    assert local.register_model("other", str(model)).version == 1
    assert {(m.group, m.version) for m in local.list_models()} == {("fraud", 1), ("fraud", 2), ("other", 1)}
    assert (Path(local.latest_approved("fraud").uri) / "weights.bin").read_bytes() == b"\x00\x01"
    with pytest.raises(ArtifactError, match="does not exist"):
        local.register_model("fraud", str(tmp_path / "missing"))


def test_register_model_api_refuses_an_unknown_approval(local: LocalAdapter, tmp_path: Path) -> None:
    (tmp_path / "m.bin").write_bytes(b"m")
    with pytest.raises(CloudMLError, match="approval"):
        local.register_model("fraud", str(tmp_path / "m.bin"), approval="yes")


# -- runs: handles, listing and resume ----------------------------------------------------------------------
def test_list_and_get_runs(local: LocalAdapter, spec_dir: Path) -> None:
    first = run(local, spec_dir, CHAIN)
    second = run(local, spec_dir, GATE)
    rows = local.list_runs()
    assert [r["id"] for r in rows] == [second.id, first.id]
    assert [r["id"] for r in local.list_runs("chain")] == [first.id]
    assert [r["id"] for r in local.list_runs(limit=1)] == [second.id]
    handle = local.get_run(first.id)
    assert handle.wait() == "succeeded"  # no thread: polls the metadata store
    assert handle.steps == first.steps
    assert handle.logs("b") == first.logs("b")
    with pytest.raises(NotFoundError):
        local.get_run("nope")


def test_resume_reruns_only_failed_and_unrun_steps(local: LocalAdapter, spec_dir: Path, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    handle = run(local, spec_dir, PROPAGATE, {"flag": str(flag)})
    assert handle.status == "failed"
    before = {r["name"]: r for r in handle.steps}
    kept = {n: local.meta.attempts(handle.id, n) for n in ("a", "side", "side-down")}
    flag.write_text("fixed")
    resumed = local.resume(handle.id)
    assert resumed.id == handle.id
    assert resumed.wait(60) == "succeeded", resumed.error
    assert set(states(resumed).values()) == {"succeeded"}
    assert resumed.error is None
    for name, attempts in kept.items():  # finished steps were not run again
        assert local.meta.attempts(handle.id, name) == attempts
        assert resumed.step(name)["finished"] == before[name]["finished"]
    assert read(resumed, "d") == "FLAG SEEN"
    assert local.meta.get_run(handle.id)["resumed"] == 1


def test_resume_keeps_the_failed_attempts_history(local: LocalAdapter, spec_dir: Path, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    handle = run(local, spec_dir, PROPAGATE, {"flag": str(flag)})
    assert handle.logs("b", attempt=1, stream="stderr") == "flag flag is missing\n"
    flag.write_text("fixed")
    assert local.resume(handle.id).wait(60) == "succeeded"
    attempts = local.meta.attempts(handle.id, "b")
    assert [(a["status"], a["exit_code"]) for a in attempts] == [("failed", 4), ("succeeded", 0)]
    assert handle.logs("b", attempt=1, stream="stderr") == "flag flag is missing\n"


def test_resume_reads_the_input_it_records(local: LocalAdapter, spec_dir: Path) -> None:
    (spec_dir / "data.txt").write_text("bad")
    body = """
name: stale
steps:
  - name: check
    command: grep -q good {{inputs.raw}}
    inputs: {raw: data.txt}
"""
    handle = run(local, spec_dir, body)
    assert handle.status == "failed"
    (spec_dir / "data.txt").write_text("good")  # fix the data, then resume
    local.resume(handle.id).wait(60)
    (row,) = local.meta.io(handle.id, "check", "in")
    staged = local.root / "runs" / handle.id / "inputs" / "check" / "raw"
    # whichever copy the step reads, the lineage must name that content
    assert row["digest"] == hashlib.sha256(staged.read_bytes()).hexdigest()


def test_resume_of_an_unknown_run_is_not_found(local: LocalAdapter) -> None:
    with pytest.raises(NotFoundError, match="no run 'missing'"):
        local.resume("missing")


def test_resume_of_a_live_run_is_refused_without_touching_it(
        local: LocalAdapter, spec_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "started"
    handle = local.run(pipeline(f"""
name: live
steps:
  - name: long
    command: sh -c 'echo go > {marker}; sleep 2'
"""), spec_dir=str(spec_dir))
    wait_for(marker)
    (attempt,) = local.meta.attempts(handle.id, "long")
    wait_for(Path(attempt["log_dir"]) / "pid")  # the runner has recorded the step's process
    with pytest.raises(RunError, match="being executed"):
        local.resume(handle.id)
    assert handle.wait(30) == "succeeded", handle.error
    assert handle.step("long")["attempts"] == 1
