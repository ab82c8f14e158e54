"""Run-time conformance: every adapter runs the same pipelines with the same semantics.

Only the run handle API is used (``run``, ``wait``, ``status``, ``error``, ``steps``, ``step``,
``logs``, ``metrics``, ``resume``), so a cloud adapter passes once its runs land. Until then each
declares the gap and the strict expected failure checks that ``run`` refuses by name.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest

import cloudml
from cloudml.errors import CloudMLError
from cloudml.spec.pipeline import Pipeline

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "steps"

pytestmark = [
    pytest.mark.gap("sagemaker", "never", CloudMLError, "offline, SageMaker executions never run steps (moto and "
                    "tests/fakes only record API calls); the client is tested against the fake instead"),
    pytest.mark.gap("vertex", "never", CloudMLError, "offline, Vertex pipeline jobs never run steps "
                    "(tests/fakes/vertex.py only records API calls); the client is tested against the fake instead"),
    pytest.mark.gap("azureml", "never", CloudMLError, "offline, Azure ML pipeline jobs never run steps "
                    "(tests/fakes/azureml.py only records API calls); the client is tested against the fake instead"),
]


def pipeline(body: str) -> Pipeline:
    spec = cloudml.loads("apiVersion: cloudml/v1\nkind: Pipeline\n" + textwrap.dedent(body))
    assert isinstance(spec, Pipeline)
    return spec


@pytest.fixture
def backend(adapter_name: str, tmp_path: Path) -> Any:
    if adapter_name == "local":
        return cloudml.get_adapter("local", root=str(tmp_path / "state"))
    return cloudml.get_adapter(adapter_name)


@pytest.fixture
def spec_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "spec"
    shutil.copytree(FIXTURES, folder / "steps", ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def execute(backend: Any, spec_dir: Path, body: str, params: dict[str, Any] | None = None, **options: Any) -> Any:
    handle = backend.run(pipeline(body), params, spec_dir=str(spec_dir), **options)
    handle.wait(120)
    return handle


def states(handle: Any) -> dict[str, str]:
    return {s["name"]: s["status"] for s in handle.steps}


CHAIN = """
name: chain
parameters:
  word: {type: string, default: hello}
  times: {type: int, default: 1}
steps:
  - name: make
    command: python steps/echo_args.py {{params.word}} {{params.times}}
  - name: a
    command: python steps/write.py {{outputs.d}} {{params.word}}
    outputs: {d: dataset}
  - name: b
    command: python steps/upper.py {{inputs.x}} {{outputs.d}}
    inputs: {x: a.outputs.d}
    outputs: {d: dataset}
  - name: other
    command: python steps/write.py {{outputs.d}} constant
    outputs: {d: dataset}
"""


def test_parameters_reach_steps(backend: Any, spec_dir: Path) -> None:
    handle = execute(backend, spec_dir, CHAIN, {"word": "bonjour", "times": "3"})
    assert handle.status == "succeeded", handle.error
    assert json.loads(handle.logs("make"))["argv"] == ["bonjour", "3"]


def test_artifacts_pass_between_steps(backend: Any, spec_dir: Path) -> None:
    handle = execute(backend, spec_dir, CHAIN)
    assert handle.status == "succeeded", handle.error
    assert handle.logs("b").strip() == "read hello"  # b read exactly what a wrote


@pytest.mark.parametrize(("auc", "taken", "not_taken"), [(0.9, "ship", "hold"), (0.5, "hold", "ship")])
def test_condition_runs_one_branch(backend: Any, spec_dir: Path, auc: float, taken: str, not_taken: str) -> None:
    handle = execute(backend, spec_dir, """
name: gate
parameters:
  auc: {type: float, default: 0.9}
steps:
  - name: evaluate
    command: python steps/metrics.py {{outputs.m}} auc={{params.auc}}
    outputs: {m: metrics}
  - name: gate
    condition: evaluate.outputs.m["auc"] >= 0.8
    then: [ship]
    else: [hold]
  - name: ship
    command: python steps/echo_args.py ship
  - name: hold
    command: python steps/echo_args.py hold
""", {"auc": auc})
    assert handle.status == "succeeded", handle.error
    assert states(handle)[taken] == "succeeded"
    assert states(handle)[not_taken] == "skipped"
    assert handle.metrics["evaluate"] == {"auc": auc}


def test_retries(backend: Any, spec_dir: Path, tmp_path: Path) -> None:
    handle = execute(backend, spec_dir, f"""
name: retry
steps:
  - name: flaky
    command: python steps/flaky.py {tmp_path / 'count'} 3
    retry: {{attempts: 3, backoff: 50ms}}
""")
    assert handle.status == "succeeded", handle.error
    assert handle.step("flaky")["attempts"] == 3
    assert handle.logs("flaky", attempt=1) == "attempt 1 out\n"
    assert handle.logs("flaky") == "attempt 3 out\n"


def test_timeouts(backend: Any, spec_dir: Path) -> None:
    handle = execute(backend, spec_dir, """
name: timeout
steps:
  - name: stuck
    command: sleep 30
    timeout: 1s
""")
    assert handle.status == "failed"
    assert "timed out" in handle.step("stuck")["error"]
    assert "stuck" in (handle.error or "")


def test_caching(backend: Any, spec_dir: Path) -> None:
    first = execute(backend, spec_dir, CHAIN)
    assert set(states(first).values()) == {"succeeded"}
    assert set(states(execute(backend, spec_dir, CHAIN)).values()) == {"cached"}
    changed = execute(backend, spec_dir, CHAIN, {"word": "changed"})
    assert states(changed) == {"make": "succeeded", "a": "succeeded", "b": "succeeded", "other": "cached"}
    forced = execute(backend, spec_dir, CHAIN, use_cache=False)
    assert set(states(forced).values()) == {"succeeded"}


PROPAGATE = """
name: propagate
parameters:
  flag: {type: string}
steps:
  - name: a
    command: python steps/write.py {{outputs.d}} a
    outputs: {d: dataset}
  - name: gatekeeper
    command: python steps/fail_unless.py {{params.flag}} {{outputs.d}}
    inputs: {x: a.outputs.d}
    outputs: {d: dataset}
  - name: after
    command: python steps/upper.py {{inputs.x}} {{outputs.d}}
    inputs: {x: gatekeeper.outputs.d}
    outputs: {d: dataset}
  - name: side
    command: python steps/write.py {{outputs.d}} side
    outputs: {d: dataset}
"""


def test_failure_propagation(backend: Any, spec_dir: Path, tmp_path: Path) -> None:
    handle = execute(backend, spec_dir, PROPAGATE, {"flag": str(tmp_path / "flag")})
    assert handle.status == "failed"
    assert states(handle) == {"a": "succeeded", "gatekeeper": "failed", "after": "upstream_failed",
                              "side": "succeeded"}
    assert "gatekeeper" in (handle.error or "")


def test_resume(backend: Any, spec_dir: Path, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    handle = execute(backend, spec_dir, PROPAGATE, {"flag": str(flag)})
    assert handle.status == "failed"
    done = {n: handle.step(n)["finished"] for n in ("a", "side")}
    flag.write_text("fixed")
    resumed = backend.resume(handle.id)
    assert resumed.wait(120) == "succeeded", resumed.error
    assert set(states(resumed).values()) == {"succeeded"}
    assert resumed.logs("after").strip() == "read flag seen"
    assert {n: resumed.step(n)["finished"] for n in done} == done  # finished steps were kept
