"""Conditions on Azure ML without the if_else preview: runtime guards on every node of a branch (guards.py).

Compiled jobs go through both oracles (cloudml's ``validate_job``, which ends in azure-ai-ml's
``load_job``); the guarded commands are run for real in a subprocess, on folders that stand in for the
node's bindings, with the code folder the client stages (``cloudml_runtime.py`` and
``cloudml_conditions.py``) and, once, with ``python -S`` so that no installed cloudml is importable.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import cloudml
from cloudml.adapters.azureml import AzureMLAdapter
from cloudml.adapters.azureml.client import stage_code
from cloudml.adapters.azureml.compiler import compile_job
from cloudml.adapters.azureml.validate import validate_job
from cloudml.config import AzureMLSettings
from cloudml.errors import CompileError, UnsupportedFeatureError
from cloudml.runtime import SKIPPED_MARKER
from cloudml.spec.pipeline import Pipeline
from cloudml.spec.validate import validate_data
from tests.conftest import REPO

pytestmark = pytest.mark.filterwarnings("ignore::marshmallow.warnings.Marshmallow4Warning")

PREVIEW = AzureMLSettings(enable_preview_conditions=True, compute="cpu-cluster")
CLUSTER = AzureMLSettings(compute="cpu-cluster")
GATED_BLUEPRINTS = ["tabular-classification", "multi-model-ensemble", "ab-test", "continuous-training"]


def build(steps: list[dict[str, Any]], **top: Any) -> Pipeline:
    doc = {"apiVersion": "cloudml/v1", "kind": "Pipeline", "name": "t", "defaults": {"image": "python:3.11-slim"},
           "steps": steps, **top}
    p = validate_data(doc)
    assert isinstance(p, Pipeline)
    return p


def nested() -> Pipeline:
    """ev -> outer(then: inner_ev -> inner(then: good, else: bad)); inner reads a metric made in outer's branch."""
    return build([
        {"name": "ev", "command": "python ev.py {{outputs.m}}", "outputs": {"m": "metrics"}},
        {"name": "outer", "condition": 'ev.outputs.m["auc"] > 0.5', "then": ["inner-ev"]},
        {"name": "inner-ev", "command": "python iev.py {{outputs.m2}}", "outputs": {"m2": "metrics"}},
        {"name": "inner", "condition": 'inner-ev.outputs.m2["score"] >= params.min_score', "then": ["good"],
         "else": ["bad"]},
        {"name": "good", "command": "echo good > {{outputs.o}}/good.txt", "outputs": {"o": "dataset"}},
        {"name": "bad", "fail": "score below {{params.min_score}}"},
    ], parameters={"min_score": {"type": "float", "default": 0.9}})


def guard_of(command: str) -> list[dict[str, Any]]:
    words = shlex.split(command)
    return list(json.loads(words[words.index("--guard") + 1]))


# -- the blueprints compile for Azure ML, preview off (and continuous-training with it on) -------------


@pytest.mark.parametrize("blueprint", GATED_BLUEPRINTS)
def test_gated_blueprints_compile_without_the_preview_and_pass_load_job(blueprint: str) -> None:
    compiled = cloudml.compile(REPO / "blueprints" / blueprint / "pipeline.yaml", "azureml")
    jobs = compiled.document["jobs"]
    assert not [n for n, j in jobs.items() if j["type"] == "if_else"]
    assert any("--guard" in j["component"]["command"] for j in jobs.values() if "component" in j)
    assert validate_job(compiled.document) == []  # cloudml's reference checks, then load_job


def test_continuous_training_with_the_preview_nests_guards_in_the_if_else_block() -> None:
    folder = REPO / "blueprints" / "continuous-training"
    job = compile_job(cloudml.load(folder / "pipeline.yaml"), PREVIEW, folder)
    jobs = job["jobs"]
    assert jobs["retrain"]["type"] == "if_else" and "retrain_eval" in jobs
    assert "gate" not in jobs and "gate_eval" not in jobs  # the nested condition is a guard, not a node
    block = jobs["retrain"]["true_block"]
    assert "${{parent.jobs.register}}" in block and "${{parent.jobs.reject}}" in block
    assert "--guard" not in jobs["ingest"]["component"]["command"]  # the if_else alone gates it
    assert [g["name"] for g in guard_of(jobs["register"]["component"]["command"])] == ["gate"]
    assert guard_of(jobs["reject"]["component"]["command"])[0]["expect"] is False
    assert validate_job(job) == []  # load_job in a child interpreter with the preview switch


# -- the guard wiring ----------------------------------------------------------------------------------


def test_nested_guards_list_every_enclosing_condition_outermost_first() -> None:
    jobs = compile_job(nested(), CLUSTER)["jobs"]
    assert list(jobs) == ["ev", "inner_ev", "good", "bad"]  # conditions make no node
    assert "--guard" not in jobs["ev"]["component"]["command"]
    assert guard_of(jobs["inner_ev"]["component"]["command"]) == [
        {"name": "outer", "condition": 'ev.outputs.m["auc"] > 0.5', "expect": True}]
    bad = jobs["bad"]
    assert guard_of(bad["component"]["command"]) == [
        {"name": "outer", "condition": 'ev.outputs.m["auc"] > 0.5', "expect": True},
        {"name": "inner", "condition": 'inner-ev.outputs.m2["score"] >= params.min_score', "expect": False}]
    assert bad["inputs"] == {"min_score": "${{parent.inputs.min_score}}",
                             "guard_ev__m": "${{parent.jobs.ev.outputs.m}}",
                             "guard_inner_ev__m2": "${{parent.jobs.inner_ev.outputs.m2}}"}
    assert bad["component"]["inputs"]["guard_ev__m"] == {"type": "uri_folder"}
    words = shlex.split(bad["component"]["command"])
    assert words[:2] == ["python", "cloudml_runtime.py"]
    assert "--metrics=inner-ev.m2=${{inputs.guard_inner_ev__m2}}" in words
    assert words.count("--param=min_score=${{inputs.min_score}}") == 1 and "--param-type=min_score=float" in words
    assert words[words.index("--") + 1:words.index("--") + 3] == ["sh", "-c"]
    assert "--outputs" in shlex.split(jobs["good"]["component"]["command"])
    assert validate_job(compile_job(nested(), CLUSTER)) == []


def test_a_register_step_under_a_guard_takes_the_runtime_route() -> None:
    p = build([{"name": "train", "command": "t {{outputs.model}} {{outputs.m}}",
                "outputs": {"model": "model", "m": "metrics"}},
               {"name": "gate", "condition": 'train.outputs.m["auc"] > 0.5', "then": ["register"]},
               {"name": "register", "register_model": {"model": "train.outputs.model", "group": "churn"}}])
    job = compile_job(p, CLUSTER)
    assert "outputs" not in job  # no named pipeline output: it would register an empty folder on a skip
    words = shlex.split(job["jobs"]["register"]["component"]["command"])
    assert words[:4] == ["python", "-m", "cloudml.runtime", "--guard"]
    assert words[words.index("--") + 1:][:2] == ["sh", "-c"] and "--register-model azureml" in words[-1]
    assert validate_job(job) == []
    assert compile_job(p, PREVIEW)["outputs"]["register"]["name"] == "churn"  # the if_else route is unchanged


def test_a_tuning_step_under_a_guard_is_refused_by_name() -> None:
    p = build([{"name": "ev", "command": "e {{outputs.m}}", "outputs": {"m": "metrics"}},
               {"name": "gate", "condition": 'ev.outputs.m["auc"] > 0.5', "then": ["tune"]},
               {"name": "tune", "command": "t --lr {{tuning.lr}} {{outputs.m}}", "outputs": {"m": "metrics"},
                "tuning": {"search_space": {"lr": {"type": "float", "min": 0.1, "max": 1}},
                           "objective": {"metric": "m.auc"}, "max_trials": 2}}])
    with pytest.raises(UnsupportedFeatureError) as info:
        compile_job(p, CLUSTER)
    assert (info.value.step, info.value.feature) == ("tune", "step.tuning")
    assert "no best trial" in info.value.reason and "enable_preview_conditions" in (info.value.hint or "")
    assert compile_job(p, PREVIEW)["jobs"]["tune"]["type"] == "sweep"  # a top-level if_else block holds it


def test_a_guard_input_that_clashes_with_a_step_input_is_a_compile_error() -> None:
    p = build([{"name": "ev", "command": "e {{outputs.m}}", "outputs": {"m": "metrics"}},
               {"name": "gate", "condition": 'ev.outputs.m["auc"] > 0.5', "then": ["w"]},
               {"name": "w", "command": "w {{inputs.GUARD_EV__M}}", "inputs": {"GUARD_EV__M": "ev.outputs.m"}}])
    with pytest.raises(CompileError, match=r"step 'w'.*GUARD_EV__M"):
        compile_job(p, CLUSTER)


def test_a_condition_on_parameters_alone_is_a_guard_too(tmp_path: Path) -> None:
    """No metric to read: the preview's eval node has no environment to run in, a guard needs none."""
    p = build([{"name": "gate", "condition": "params.deploy == true", "then": ["ship"]},
               {"name": "ship", "command": "echo shipping"}], parameters={"deploy": {"type": "bool", "default": False}})
    node = compile_job(p, CLUSTER)["jobs"]["ship"]
    assert node["inputs"] == {"deploy": "${{parent.inputs.deploy}}"}
    proc = _run(node, {"inputs.deploy": "False"}, tmp_path)  # how Azure ML renders a boolean input: unverified
    assert proc.returncode == 0 and proc.stdout.startswith("skipped: condition 'gate' is false")
    proc = _run(node, {"inputs.deploy": "true"}, tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == "shipping"
    with pytest.raises(UnsupportedFeatureError, match="without a metric"):
        compile_job(p, PREVIEW)


def test_conditions_are_supported_capabilities() -> None:
    caps = AzureMLAdapter.capabilities
    assert caps.supports("condition") and caps.supports("condition.or")


# -- the guard, run for real --------------------------------------------------------------------------


def _run(node: dict[str, Any], bindings: dict[str, Path | str], tmp: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """Stage the node's code as the client does, substitute the bindings, run the command in that folder."""
    doc = {"jobs": {"n": json.loads(json.dumps(node))}}
    import tempfile

    stage_code(doc, tmp, Path(tempfile.mkdtemp(dir=tmp)))
    comp = doc["jobs"]["n"]["component"]
    command = comp["command"]
    for binding, value in bindings.items():
        command = command.replace(f"${{{{{binding}}}}}", str(value))
    assert "${{" not in command, command
    words = shlex.split(command)
    assert words[0] == "python"
    return subprocess.run([sys.executable, *flags, *words[1:]], capture_output=True, text=True, cwd=comp["code"],
                          timeout=60)


def _metrics(folder: Path, **values: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(values))
    return folder


def test_outer_false_skips_without_reading_the_inner_metrics(tmp_path: Path) -> None:
    jobs = compile_job(nested(), CLUSTER)["jobs"]
    absent = tmp_path / "inner-metrics-never-written"
    proc = _run(jobs["bad"], {"inputs.guard_ev__m": _metrics(tmp_path / "ev", auc=0.3),
                              "inputs.guard_inner_ev__m2": absent, "inputs.min_score": "0.9"}, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "skipped: condition 'outer' is false: ev.outputs.m[\"auc\"] > 0.5"
    assert not absent.exists() and "score below" not in proc.stderr


def test_outer_true_inner_false_fails_the_else_branch_fail_step(tmp_path: Path) -> None:
    jobs = compile_job(nested(), CLUSTER)["jobs"]
    proc = _run(jobs["bad"], {"inputs.guard_ev__m": _metrics(tmp_path / "ev", auc=0.8),
                              "inputs.guard_inner_ev__m2": _metrics(tmp_path / "iev", score=0.1),
                              "inputs.min_score": "0.9"}, tmp_path, "-S")  # -S: no installed cloudml
    assert proc.returncode == 1
    assert "score below 0.9" in proc.stderr and "skipped" not in proc.stdout


def test_outer_true_inner_true_skips_the_else_branch_and_runs_the_then_branch(tmp_path: Path) -> None:
    jobs = compile_job(nested(), CLUSTER)["jobs"]
    metrics = {"inputs.guard_ev__m": _metrics(tmp_path / "ev", auc=0.8),
               "inputs.guard_inner_ev__m2": _metrics(tmp_path / "iev", score=0.95), "inputs.min_score": "0.9"}
    proc = _run(jobs["bad"], metrics, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "skipped: condition 'inner' is true (this step is on its else branch)" in proc.stdout
    out = tmp_path / "good-out"
    out.mkdir()  # Azure ML makes each output folder before the command starts
    proc = _run(jobs["good"], {**metrics, "outputs.o": out}, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (out / "good.txt").read_text().strip() == "good" and not (out / SKIPPED_MARKER).exists()


def test_a_skipped_node_writes_a_marker_into_each_output_folder(tmp_path: Path) -> None:
    jobs = compile_job(nested(), CLUSTER)["jobs"]
    out = tmp_path / "good-out"
    proc = _run(jobs["good"], {"inputs.guard_ev__m": _metrics(tmp_path / "ev", auc=0.8),
                               "inputs.guard_inner_ev__m2": _metrics(tmp_path / "iev", score=0.2),
                               "inputs.min_score": "0.9", "outputs.o": out}, tmp_path, "-S")
    assert proc.returncode == 0, proc.stderr
    marker = json.loads((out / SKIPPED_MARKER).read_text())
    assert marker["skipped"] is True and "condition 'inner' is false" in marker["reason"]
    assert not (out / "good.txt").exists()


def test_a_missing_outer_metric_fails_the_node_loudly(tmp_path: Path) -> None:
    jobs = compile_job(nested(), CLUSTER)["jobs"]
    proc = _run(jobs["inner_ev"], {"inputs.guard_ev__m": _metrics(tmp_path / "ev", f1=0.3),
                                   "outputs.m2": tmp_path / "m2"}, tmp_path)
    assert proc.returncode == 1 and "condition 'outer'" in proc.stderr and "cannot be evaluated" in proc.stderr


def test_the_guard_entry_refuses_a_wrong_call(capsys: pytest.CaptureFixture[str]) -> None:
    import cloudml.runtime

    assert cloudml.runtime.main(["--guard", "[]"]) == 2  # no -- COMMAND
    assert cloudml.runtime.main(["--guard", "{}", "--", "true"]) == 2
    assert cloudml.runtime.main(["--guard", "[]", "--bogus", "1", "--", "true"]) == 2
    assert "usage: --guard JSON" in capsys.readouterr().err
