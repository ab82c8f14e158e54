"""Tuning steps on Azure ML: a ``sweep`` node (search space, sampling, objective, limits) whose trial logs
the objective to MLflow, checked against azure-ai-ml's schemas and run through the runtime for real."""

from __future__ import annotations

import json
import math
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cloudml.adapters.azureml import AzureMLAdapter
from cloudml.adapters.azureml.compiler import compile_job
from cloudml.adapters.azureml.validate import validate_job
from cloudml.config import AzureMLSettings
from cloudml.errors import UnsupportedFeatureError
from tests.conformance.cases import FEATURE_CASES
from tests.unit.test_azureml_compiler import build

REPO = Path(__file__).resolve().parents[2]
SPACE = {"lr": {"type": "float", "min": 0.001, "max": 0.1, "scale": "log"},
         "depth": {"type": "int", "min": 2, "max": 5},
         "frac": {"type": "float", "min": 0.1, "max": 0.9},
         "kernel": {"type": "categorical", "values": ["rbf", "linear"]},
         "bags": {"type": "categorical", "values": [8, 16]},
         "flag": {"type": "categorical", "values": [True, False]}}


def tune_step(space: dict[str, Any] | None = None, **tuning: Any) -> dict[str, Any]:
    space = space or SPACE
    args = " ".join(f"--{n} {{{{tuning.{n}}}}}" for n in space)
    return {"name": "train", "kind": "training", "command": f"python t.py {args} --data {{{{inputs.data}}}} "
            "--model {{outputs.model}} --metrics {{outputs.metrics}}",
            "inputs": {"data": "azureml://datastores/ws/paths/train/"},
            "outputs": {"model": "model", "metrics": "metrics"}, "timeout": "20m",
            "tuning": {"search_space": space, "objective": {"metric": "metrics.auc", "goal": "maximize"},
                       "max_trials": 12, "parallel_trials": 3, **tuning}}


def sweep(space: dict[str, Any] | None = None, **tuning: Any) -> dict[str, Any]:
    node = compile_job(build([tune_step(space, **tuning)]), None)["jobs"]["train"]
    assert isinstance(node, dict)
    return node


def test_a_tuning_step_is_a_sweep_node_with_the_command_as_its_trial() -> None:
    node = sweep(seed=7)
    assert node["type"] == "sweep" and "component" not in node and "environment_variables" not in node
    assert node["inputs"] == {"data": {"type": "uri_folder", "path": "azureml://datastores/ws/paths/train/"}}
    assert node["outputs"] == {"model": {"type": "custom_model"}, "metrics": {"type": "uri_folder"}}
    trial = node["trial"]
    assert trial["type"] == "command" and trial["environment"] == {"image": "python:3.11-slim"}
    assert trial["inputs"] == {"data": {"type": "uri_folder"}, "lr": {"type": "number"}, "depth": {"type": "integer"},
                               "frac": {"type": "number"}, "kernel": {"type": "string"},
                               "bags": {"type": "integer"}, "flag": {"type": "string"}}
    assert node["search_space"] == {
        "lr": {"type": "loguniform", "min_value": math.log(0.001), "max_value": math.log(0.1)},
        "depth": {"type": "choice", "values": [2, 3, 4, 5]},
        "frac": {"type": "uniform", "min_value": 0.1, "max_value": 0.9},
        "kernel": {"type": "choice", "values": ["rbf", "linear"]},
        "bags": {"type": "choice", "values": [8, 16]},
        "flag": {"type": "choice", "values": ["true", "false"]}}
    assert node["sampling_algorithm"] == {"type": "random", "seed": 7}
    assert node["objective"] == {"goal": "maximize", "primary_metric": "metrics.auc"}
    assert node["limits"] == {"max_total_trials": 12, "max_concurrent_trials": 3, "trial_timeout": 1200}
    words = shlex.split(trial["command"])
    assert words[:4] == ["env", "CLOUDML_STEP=train", "CLOUDML_BACKEND=azureml", "sh"]
    assert "--lr ${{inputs.lr}} --depth ${{inputs.depth}}" in words[5]
    assert words[6:] == ["&&", "python", "cloudml_runtime.py", "--log-objective", "metrics.auc", "--metrics",
                         "${{outputs.metrics}}/metrics.json"]


@pytest.mark.parametrize(("strategy", "expected"), [("grid", "grid"), ("bayesian", "bayesian"), ("random", "random")])
def test_strategies_are_sampling_algorithms(strategy: str, expected: str) -> None:
    space = {"depth": {"type": "int", "min": 2, "max": 4, "grid_step": 2},
             "frac": {"type": "float", "min": 0.0, "max": 1.0, "grid_step": 0.5}}
    node = sweep(space, strategy=strategy, max_trials=6)
    assert node["sampling_algorithm"] == expected  # no seed given: a plain string
    if strategy == "grid":  # every dimension a choice of its grid points
        assert node["search_space"] == {"depth": {"type": "choice", "values": [2, 4]},
                                        "frac": {"type": "choice", "values": [0.0, 0.5, 1.0]}}
    else:
        assert node["search_space"]["frac"] == {"type": "uniform", "min_value": 0.0, "max_value": 1.0}


@pytest.mark.parametrize(("space", "strategy", "match"), [
    ({"n": {"type": "int", "min": 0, "max": 5000}}, "random", "at most 1000"),
])
def test_what_azure_sweeps_cannot_say_is_refused_by_name(space: dict[str, Any], strategy: str, match: str) -> None:
    with pytest.raises(UnsupportedFeatureError, match=match) as info:
        sweep(space, strategy=strategy)
    assert (info.value.adapter, info.value.step, info.value.feature) == ("azureml", "train", "step.tuning")
    assert info.value.hint


def test_a_python_tuning_step_passes_every_searched_value_as_a_param() -> None:
    step = {"name": "train", "python": "job:fit", "code": "src", "outputs": {"metrics": "metrics"},
            "retry": {"attempts": 2},
            "tuning": {"search_space": {"lr": {"type": "float", "min": 0.1, "max": 0.5}},
                       "objective": {"metric": "metrics.auc"}}}
    trial = compile_job(build([step]), None)["jobs"]["train"]["trial"]
    assert trial["code"] == "src"
    inner = shlex.split(trial["command"])[5]  # env A=.. B=.. sh -c '<retry wrapper>'
    assert inner.startswith("python cloudml_runtime.py --retry 2")
    assert "--param=lr=${{inputs.lr}}" in inner


def test_tuning_values_in_env_reach_the_trial_through_its_command() -> None:
    step = {**tune_step({"lr": {"type": "float", "min": 0.1, "max": 0.5}}), "env": {"LR": "{{tuning.lr}}", "A": "b c"}}
    words = shlex.split(compile_job(build([step]), None)["jobs"]["train"]["trial"]["command"])
    assert words[:5] == ["env", "CLOUDML_STEP=train", "CLOUDML_BACKEND=azureml", "LR=${{inputs.lr}}", "A=b c"]


def test_the_tuning_feature_case_compiles_and_passes_both_oracles(tmp_path: Path) -> None:
    compiled = AzureMLAdapter(AzureMLSettings(compute="cpu")).compile(FEATURE_CASES["step.tuning"]())  # type: ignore[arg-type]
    assert compiled.document["jobs"]["work"]["type"] == "sweep"
    assert validate_job(compiled.document) == []
    pytest.importorskip("azure.ai.ml")
    from azure.ai.ml import load_job

    (tmp_path / "job.yaml").write_text(compiled.dumps())
    job = load_job(source=str(tmp_path / "job.yaml"))
    job._validate(raise_error=True)  # the SDK's own checks (compute, required inputs)
    command = compiled.document["jobs"]["work"]["trial"]["command"]
    assert type(job.jobs["work"].trial).__name__ == "CommandComponent" and job.jobs["work"].trial.command == command
    rest = job._to_rest_object().as_dict()["properties"]["jobs"]["work"]
    assert rest["type"] == "sweep" and rest["objective"] == {"goal": "maximize", "primary_metric": "metrics.auc"}
    assert rest["trial"]["properties"]["componentSpec"]["command"] == command
    assert rest["limits"] == {"max_total_trials": 4, "max_concurrent_trials": 2}
    assert rest["search_space"]["lr"]["type"] == "loguniform"


@pytest.mark.parametrize(("change", "problem"), [
    (lambda n: n["trial"].update(type="parallel"), "the trial must be an inline command component"),
    (lambda n: n["search_space"].update(zz={"type": "choice", "values": [1]}), "search space zz is not an input"),
    (lambda n: n["inputs"].update(lr="${{parent.inputs.x}}"), "search space lr is also bound as a node input"),
    (lambda n: n.update(environment_variables={"A": "b"}), "unknown sweep node key environment_variables"),
    (lambda n: n["objective"].pop("primary_metric"), "a sweep needs objective.primary_metric"),
    (lambda n: n["trial"].update(command="run ${{inputs.nope}}"), "command uses ${{inputs.nope}}"),
])
def test_validate_job_checks_sweep_nodes(change: Any, problem: str) -> None:
    job = compile_job(build([tune_step()]), None)
    change(job["jobs"]["train"])
    assert any(problem in p for p in validate_job(job)), validate_job(job)


def test_a_downstream_step_reads_the_sweep_nodes_outputs() -> None:
    ev = {"name": "evaluate", "command": "python e.py {{inputs.model}}", "inputs": {"model": "train.outputs.model"}}
    job = compile_job(build([tune_step(), ev]), None)
    assert job["jobs"]["evaluate"]["inputs"]["model"] == "${{parent.jobs.train.outputs.model}}"
    assert validate_job(job) == []


# -- the trial's command for real: the objective logged with MLflow ---------------------------------

def test_the_trial_command_runs_and_logs_the_objective_to_mlflow(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # a local file store: no server, no database
    store = f"file://{tmp_path / 'mlruns'}"
    client = mlflow.tracking.MlflowClient(tracking_uri=store)
    run_id = client.create_run(client.create_experiment("sweep")).info.run_id
    (tmp_path / "code").mkdir()
    import cloudml.runtime

    (tmp_path / "code" / "cloudml_runtime.py").write_text(Path(cloudml.runtime.__file__).read_text())
    trainer = ("import json, sys, pathlib; p = pathlib.Path(sys.argv[2]); p.parent.mkdir(parents=True); "
               "p.write_text(json.dumps({'auc': float(sys.argv[1]) / 10}))")  # {{outputs.m}}: the file in the folder
    step = {"name": "train", "command": ["python", "-c", trainer, "{{tuning.x}}", "{{outputs.metrics}}"],
            "image": "i", "outputs": {"metrics": "metrics"},
            "tuning": {"search_space": {"x": {"type": "int", "min": 1, "max": 9}},
                       "objective": {"metric": "metrics.auc"}}}
    command = compile_job(build([step]), None)["jobs"]["train"]["trial"]["command"]
    out = tmp_path / "out"
    # what Azure ML does before the shell runs: the bindings, textually (the sweep's value for x is 7)
    command = command.replace("${{inputs.x}}", "7").replace("${{outputs.metrics}}", str(out))
    command = command.replace("python ", f"{sys.executable} ")
    env = {"PATH": "/usr/bin:/bin", "MLFLOW_TRACKING_URI": store, "MLFLOW_RUN_ID": run_id,
           "MLFLOW_ALLOW_FILE_STORE": "true"}
    proc = subprocess.run(["sh", "-c", command], capture_output=True, text=True, cwd=tmp_path / "code", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "cloudml-objective: metrics.auc=0.7" in proc.stdout
    assert json.loads((out / "metrics.json").read_text()) == {"auc": 0.7}
    assert client.get_run(run_id).data.metrics == {"metrics.auc": 0.7}


def test_log_objective_fails_loudly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cloudml.runtime import log_objective_entry

    (tmp_path / "metrics.json").write_text(json.dumps({"auc": "high", "f1": 0.5}))
    assert log_objective_entry(["--log-objective", "metrics.auc", "--metrics", str(tmp_path)], {}) == 1
    assert log_objective_entry(["--log-objective", "metrics.nope", "--metrics", str(tmp_path)], {}) == 1
    assert log_objective_entry(["--log-objective", "metrics.f1"], {}) == 2
    assert log_objective_entry(["--log-objective", "metrics.f1", "--metrics", str(tmp_path)], {}) == 0
    assert "not logged to MLflow" in capsys.readouterr().err
    proc = subprocess.run([sys.executable, "-m", "cloudml.runtime", "--log-objective", "metrics.f1", "--metrics",
                           str(tmp_path)], capture_output=True, text=True, cwd=REPO, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0 and "cloudml-objective: metrics.f1=0.5" in proc.stdout


def test_a_sweep_is_submitted_through_the_real_sdk_with_the_runtime_shipped(tmp_path: Path) -> None:
    pytest.importorskip("azure.ai.ml")
    from cloudml.adapters.azureml.client import AzureMLClient
    from tests.fakes.azureml import (
        RESOURCE_GROUP,
        SUBSCRIPTION,
        WORKSPACE,
        FakeCredential,
        azure_test_env,
        azureml_fake,
        cloud_kwargs,
    )

    settings = AzureMLSettings(subscription_id=SUBSCRIPTION, resource_group=RESOURCE_GROUP, workspace=WORKSPACE,
                               compute="cpu")
    document = AzureMLAdapter(settings).compile(FEATURE_CASES["step.tuning"]()).document  # type: ignore[arg-type]
    with azureml_fake() as fake, azure_test_env(fake):
        fake.add_compute("cpu")
        run = AzureMLClient(settings, FakeCredential(), **cloud_kwargs(fake)).submit(document, {})
        assert run.wait(timeout=60, poll=0.01) == "succeeded"
        node = fake.job(run.id).body["properties"]["jobs"]["work"]
        assert fake.outbound == []
    assert node["type"] == "sweep" and node["objective"] == {"goal": "maximize", "primary_metric": "metrics.auc"}
    assert "/components/azureml_anonymous/versions/" in str(node["trial"])
    uploaded = [path for path in fake.code.blobs if path.endswith("/cloudml_runtime.py")]
    assert uploaded, "the trial's code folder carries cloudml's runtime (for --log-objective)"


# -- log scale where Azure ML has no distribution for it: searched as the log, turned back by the runtime --

LOG_SPACE = {"n": {"type": "int", "min": 10, "max": 200, "scale": "log"},
             "lr": {"type": "float", "min": 0.01, "max": 0.5, "scale": "log"}}


@pytest.mark.parametrize("strategy", ["bayesian", "random"])
def test_log_dimensions_are_searched_as_their_natural_log(strategy: str) -> None:
    node = sweep(LOG_SPACE, strategy=strategy)
    space = node["search_space"]
    assert space["n"] == {"type": "uniform", "min_value": math.log(9.5), "max_value": math.log(200.5)}
    if strategy == "bayesian":  # Bayesian sampling takes choice, uniform and quniform only
        assert space["lr"] == {"type": "uniform", "min_value": math.log(0.01), "max_value": math.log(0.5)}
    else:  # random samples loguniform natively: the value itself reaches the trial
        assert space["lr"] == {"type": "loguniform", "min_value": math.log(0.01), "max_value": math.log(0.5)}
    trial = node["trial"]
    assert trial["inputs"]["n"] == {"type": "number"}
    words = shlex.split(trial["command"])
    converted = ["--from-log=n=int:10:200:${{inputs.n}}"] + (
        ["--from-log=lr=float:0.01:0.5:${{inputs.lr}}"] if strategy == "bayesian" else [])
    assert words[:2 + len(converted)] == ["python", "cloudml_runtime.py", *converted]
    inner = words[words.index("-c") + 1]
    assert "--n @CLOUDML_TUNING_n@" in inner and "${{inputs.n}}" not in inner
    assert ("--lr @CLOUDML_TUNING_lr@" in inner) == (strategy == "bayesian")
    assert node["objective"] == {"goal": "maximize", "primary_metric": "metrics.auc"}  # unchanged


def test_a_grid_over_a_log_int_stays_a_choice() -> None:
    node = sweep({"n": {"type": "int", "min": 1, "max": 4, "scale": "log"}}, strategy="grid", max_trials=4)
    assert node["search_space"]["n"]["type"] == "choice" and "--from-log" not in node["trial"]["command"]


def test_the_trial_command_turns_the_sampled_log_back_for_real(tmp_path: Path) -> None:
    """The compiled trial command, bindings substituted as Azure ML does, with an echo standing in for t.py."""
    trial = sweep(LOG_SPACE, strategy="bayesian")["trial"]
    out = tmp_path / "seen"
    command = trial["command"].split(" && python cloudml_runtime.py --log-objective")[0]
    command = command.replace("python t.py", f"echo > {out}").replace("${{inputs.n}}", repr(math.log(57.3)))
    command = command.replace("${{inputs.lr}}", repr(math.log(0.7)))  # above max: clamped
    for binding in ("inputs.data", "outputs.model", "outputs.metrics"):
        command = command.replace(f"${{{{{binding}}}}}", str(tmp_path / binding))
    words = shlex.split(command)
    assert words[:2] == ["python", "cloudml_runtime.py"]
    proc = subprocess.run([sys.executable, "-m", "cloudml.runtime", *words[2:]], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "n = 57 (sampled on a log scale" in proc.stdout and "lr = 0.5 (" in proc.stdout
    assert out.read_text().split()[:4] == ["--n", "57", "--lr", "0.5"]


def test_a_python_trial_gets_the_value_as_its_param_for_real(tmp_path: Path) -> None:
    (tmp_path / "job.py").write_text("import json\n\ndef fit(n: int, lr: float, out):\n"
                                     "    return {'n': n, 'lr': lr, 'type': type(n).__name__}\n")
    step = {"name": "train", "python": "job:fit", "outputs": {"out": "metrics"},
            "tuning": {"search_space": LOG_SPACE, "objective": {"metric": "out.n"}, "strategy": "bayesian"}}
    trial = compile_job(build([step]), None)["jobs"]["train"]["trial"]
    command = trial["command"].split(" && python cloudml_runtime.py --log-objective")[0]
    command = command.replace("${{inputs.n}}", repr(math.log(9.6))).replace("${{inputs.lr}}", repr(math.log(0.1)))
    command = command.replace("${{outputs.out}}", str(tmp_path / "out"))
    command = command.replace("python cloudml_runtime.py --function", f"{sys.executable} cloudml_runtime.py --function")
    (tmp_path / "out").mkdir()
    (tmp_path / "cloudml_runtime.py").write_bytes((REPO / "cloudml" / "runtime.py").read_bytes())  # as staged
    words = shlex.split(command)
    proc = subprocess.run([sys.executable, *words[1:]], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "out" / "metrics.json").read_text()) == {"n": 10, "lr": 0.1, "type": "int"}


def test_from_log_refuses_a_wrong_call() -> None:
    from cloudml.runtime import from_log_entry, from_log_value

    assert from_log_entry(["--from-log=n=int:1:5", "--", "true"]) == 2  # no sampled value
    assert from_log_entry(["--from-log=n=int:1:5:0.5"]) == 2  # no command
    assert from_log_entry(["--from-log=n=str:1:5:0.5", "--", "true"]) == 2
    assert from_log_value("int", 1, 5, math.log(0.5)) == 1 and from_log_value("float", 0.01, 0.5, math.log(0.005)) == 0.01


def test_the_hyperparameter_tuning_blueprint_compiles_for_azureml_and_passes_load_job() -> None:
    import cloudml

    compiled = cloudml.compile(REPO / "blueprints" / "hyperparameter-tuning" / "pipeline.yaml", "azureml")
    tune = compiled.document["jobs"]["tune"]
    assert tune["type"] == "sweep" and tune["sampling_algorithm"] in ("bayesian", {"type": "bayesian", "seed": 7})
    assert {n: d["type"] for n, d in tune["search_space"].items()} == {
        "estimator": "choice", "n_estimators": "uniform", "max_depth": "choice", "learning_rate": "uniform",
        "reg_c": "uniform"}
    assert "--from-log=n_estimators=int:10:200:${{inputs.n_estimators}}" in tune["trial"]["command"]
    assert validate_job(compiled.document) == []  # cloudml's reference checks, then azure-ai-ml's load_job
