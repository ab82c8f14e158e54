"""The hyperparameter-tuning blueprint for real, on the local backend: parallel trials, the best one
kept, evaluated, gated and registered; the other strategies; bad input; `cloudml init`; the clouds
(a SageMaker Tuning step, a Vertex AI HyperparameterTuningJob and an Azure ML sweep, each accepted by the
cloud's own validator).

Runs use in-process Python steps and trials (threads of the runner: the same runtime call without a
process start) on the bundled breast-cancer data (569 rows), with a smaller search space than the
blueprint's (same dimensions, fewer trees) to keep the file fast.
"""

from __future__ import annotations

import doctest
import importlib
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import cloudml
from cloudml.adapters.local.store import digest_path
from cloudml.cli.main import app
from cloudml.spec.pipeline import Pipeline
from cloudml.testing import LocalHarness
from tests.conftest import REPO

BLUEPRINT = REPO / "blueprints" / "hyperparameter-tuning"
PIPELINE = BLUEPRINT / "pipeline.yaml"
GROUP = "hyperparameter-tuning"
SMALLER = [("n_estimators:  {type: int, min: 10, max: 200, scale: log}",  # fewer trees, the same code path
            "n_estimators:  {type: int, min: 5, max: 30, scale: log}"),
           ("max_trials: 16", "max_trials: 8"),
           ("max_depth:     {type: int, min: 2, max: 12}", "max_depth:     {type: int, min: 2, max: 5}")]
FAST = {"plots": False}


@pytest.fixture(autouse=True)
def _forget_blueprint_modules() -> Iterator[None]:
    """In-process steps import hpo_* and tabular_* into this process: drop them (and their sys.path) afterwards."""
    path = list(sys.path)
    yield
    sys.path[:] = path
    for name in [n for n in sys.modules if n.startswith(("hpo_", "tabular_"))]:
        del sys.modules[name]


def spec(*edits: tuple[str, str], source: Path = PIPELINE) -> Pipeline:
    """The blueprint's pipeline with the test's smaller search space and any further text edits."""
    text = source.read_text()
    for old, new in [*SMALLER, *edits]:
        assert old in text, old
        text = text.replace(old, new)
    model = cloudml.loads(text)
    assert isinstance(model, Pipeline)
    return model


def run(h: LocalHarness, model: Pipeline | None = None, params: dict[str, Any] | None = None,
        spec_dir: Path = BLUEPRINT) -> Any:
    return h.run(model or spec(), {**FAST, **(params or {})}, check=False, in_process=True, spec_dir=str(spec_dir))


def trials(handle: Any) -> dict[str, Any]:
    return dict(json.loads(handle.step("tune")["result"]))


def span(trials_folder: Path, trial: int) -> tuple[float, float]:
    record = json.loads((trials_folder / f"{trial:03d}" / "outputs" / "model" / "trial.json").read_text())
    return float(record["started"]), float(record["finished"])


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    return peak


# -- end to end ------------------------------------------------------------------------------------
def test_parallel_trials_the_best_is_evaluated_gated_and_registered(cloudml_local: LocalHarness) -> None:
    h = run(cloudml_local)
    assert h.status == "succeeded", h.error
    record = trials(h)
    assert record["strategy"] == "bayesian" and record["seed"] == 7 and record["metric"] == "metrics.score"
    assert len(record["trials"]) == 8 and all(t["status"] == "succeeded" for t in record["trials"])
    estimators = {t["params"]["estimator"] for t in record["trials"]}
    assert estimators <= {"random_forest", "gradient_boosting", "logistic_regression"} and len(estimators) >= 2
    best = record["trials"][record["best"]]
    assert best["objective"] == max(t["objective"] for t in record["trials"])
    # the best trial's model *is* the step's model, and what evaluate scored and register registered
    assert digest_path(h.output_path("tune", "model"))[0] == best["outputs"]["model"]
    assert h.step("register")["result"] == f"{GROUP}:v1"
    version = cloudml_local.adapter.list_models(GROUP)[0]
    assert digest_path(Path(version.uri))[0] == best["outputs"]["model"]
    # trials ran side by side, never more than parallel_trials (4) at once
    folder = h.output_path("tune", "model").parents[1] / "trials"
    spans = [span(folder, t["trial"]) for t in record["trials"]]
    assert 2 <= most_at_once(spans) <= 4, spans
    # the step's metrics are the best trial's validation scores plus the tuning summary
    assert h.metrics["tune"]["tuning.trials"] == 8 and h.metrics["tune"]["tuning.failed_trials"] == 0
    assert h.metrics["tune"]["score"] == best["objective"]
    test_scores = json.loads(h.output_path("evaluate", "metrics").read_text())
    assert test_scores["rows_test"] == 143 and test_scores["score"] > 0.9
    assert test_scores["baseline"]["status"] == "none"
    assert "trial   0 succeeded objective=" in h.logs("tune")


def test_as_cloudml_run_runs_it_trials_are_parallel_processes(cloudml_local: LocalHarness) -> None:
    """A real process per step and per trial, as `cloudml run` does (the shared tabular code imported in each)."""
    small = spec(("max_trials: 8", "max_trials: 4"), ("parallel_trials: 4", "parallel_trials: 2"))
    h = cloudml_local.run(small, {**FAST, "max_rows": 200}, check=False, spec_dir=str(BLUEPRINT))
    assert h.status == "succeeded", h.error
    record = trials(h)
    folder = h.output_path("tune", "model").parents[1] / "trials"
    pids = {json.loads((folder / f"{t['trial']:03d}" / "outputs" / "model" / "trial.json").read_text())["pid"]
            for t in record["trials"]}
    assert len(pids) == 4 and os.getpid() not in pids  # every trial its own process
    assert most_at_once([span(folder, t["trial"]) for t in record["trials"]]) <= 2  # parallel_trials bounds them
    assert h.step("register")["result"] == f"{GROUP}:v1"


@pytest.mark.parametrize(("edits", "count"), [
    ([("strategy: bayesian", "strategy: random")], 8),
    ([("strategy: bayesian", "strategy: grid"),
      ("values: [random_forest, gradient_boosting, logistic_regression]", "values: [random_forest, logistic_regression]"),
      ("n_estimators:  {type: int, min: 5, max: 30, scale: log}", "n_estimators:  {type: categorical, values: [5, 20]}"),
      ("max_depth:     {type: int, min: 2, max: 5}", "max_depth:     {type: int, min: 2, max: 4, grid_step: 2}"),
      ("learning_rate: {type: float, min: 0.01, max: 0.5, scale: log}", "learning_rate: {type: categorical, values: [0.1]}"),
      ("reg_c:         {type: float, min: 0.01, max: 100, scale: log}", "reg_c:         {type: categorical, values: [1.0]}")],
     8),
])
def test_the_other_strategies(cloudml_local: LocalHarness, edits: list[tuple[str, str]], count: int) -> None:
    """`strategy:` is a line of the tune step: random draws points, grid enumerates every one (2 x 2 x 2 here)."""
    h = run(cloudml_local, spec(*edits), {"max_rows": 300})
    assert h.status == "succeeded", h.error
    record = trials(h)
    assert record["strategy"] == edits[0][1].split(": ")[1] and len(record["trials"]) == count
    if record["strategy"] == "grid":
        points = {(t["params"]["estimator"], t["params"]["n_estimators"], t["params"]["max_depth"])
                  for t in record["trials"]}
        assert points == {(e, n, d) for e in ("random_forest", "logistic_regression") for n in (5, 20) for d in (2, 4)}


# -- bad input -------------------------------------------------------------------------------------
def test_a_search_space_with_no_valid_point_is_refused_before_anything_runs(tmp_path: Path) -> None:
    broken = tmp_path / "pipeline.yaml"
    broken.write_text(PIPELINE.read_text().replace("{type: int, min: 2, max: 12}", "{type: int, min: 12, max: 2}"))
    result = CliRunner().invoke(app, ["validate", str(broken)])
    assert result.exit_code != 0
    text = " ".join(result.output.split())
    line = next(i for i, row in enumerate(broken.read_text().splitlines(), 1) if "min: 12, max: 2" in row)
    assert f"{broken}:{line}:" in text, text
    assert "step 'tune'" in text and "tuning.search_space.max_depth" in text, text
    assert "no valid point: min 12 >= max 2" in text and "set min below max" in text, text


def test_a_holdout_without_valid_rows_names_the_stage_and_the_fix(cloudml_local: LocalHarness) -> None:
    h = run(cloudml_local, params={"valid_size": 0.0})
    assert h.status == "failed" and h.step("holdout")["status"] == "failed"
    error = h.step("holdout")["error"]
    assert "[holdout] valid_size=0.0 of 426 rows leaves the valid split empty" in error, error
    assert "fix: change -p valid_size" in error, error
    assert h.step("tune")["status"] == "upstream_failed"


# -- cloudml init ----------------------------------------------------------------------------------
def test_init_copies_it_and_the_copy_runs(cloudml_local: LocalHarness, tmp_path: Path) -> None:
    target = tmp_path / "my-search"
    result = CliRunner().invoke(app, ["init", "--blueprint", GROUP, str(target)])
    assert result.exit_code == 0, result.output
    assert {"pipeline.yaml", "README.md", "src/hpo_steps.py"} <= {
        p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()}
    copied = run(cloudml_local, spec(source=target / "pipeline.yaml"), {"max_rows": 300}, spec_dir=target)
    assert copied.status == "succeeded", copied.error  # the shared tabular code comes from the installed cloudml


# -- the clouds ------------------------------------------------------------------------------------
def test_compiles_to_a_sagemaker_tuning_step_its_validator_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDML_SAGEMAKER_REGION", "eu-west-1")
    monkeypatch.setenv("CLOUDML_SAGEMAKER_ROLE_ARN", "arn:aws:iam::123456789012:role/ml")
    monkeypatch.setenv("CLOUDML_SAGEMAKER_BUCKET", "my-ml")
    assert getattr(cloudml.validate(PIPELINE, target="sagemaker"), "name", None) == GROUP  # compiles + botocore shape checks
    steps = {s["Name"]: s for s in cloudml.compile(PIPELINE, "sagemaker").document["Steps"]}
    tune = steps["tune"]
    assert tune["Type"] == "Tuning"
    config = tune["Arguments"]["HyperParameterTuningJobConfig"]
    assert config["Strategy"] == "Bayesian" and config["RandomSeed"] == 7
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 16, "MaxParallelTrainingJobs": 4}
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Maximize", "MetricName": "metrics.score"}
    ranges = config["ParameterRanges"]
    assert [r["Name"] for r in ranges["CategoricalParameterRanges"]] == ["estimator"]
    assert {r["Name"]: r["ScalingType"] for r in ranges["IntegerParameterRanges"]} == {
        "n_estimators": "Logarithmic", "max_depth": "Linear"}
    # evaluate and register read the best training job's model
    best = {"Get": "Steps.tune.TrainingJobSummaries[0].TrainingJobName"}
    assert best in steps["evaluate"]["Arguments"]["ProcessingInputs"][0]["S3Input"]["S3Uri"]["Std:Join"]["Values"]
    register = {s["Name"]: s for s in steps["gate"]["Arguments"]["IfSteps"]}["register"]
    assert register["Type"] == "RegisterModel"
    assert best in register["Arguments"]["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]["Std:Join"]["Values"]


def test_compiles_to_a_vertex_tuning_job_its_validator_accepts() -> None:
    assert getattr(cloudml.validate(PIPELINE, target="vertex"), "name", None) == GROUP  # + the IR's own checks
    document = cloudml.compile(PIPELINE, "vertex").document
    tasks = document["root"]["dag"]["tasks"]
    assert {"tune-hpt-job", "tune"} <= set(tasks)  # the tuning job, then the task that keeps the best trial
    assert tasks["evaluate"]["inputs"]["artifacts"]["model"]["taskOutputArtifact"]["producerTask"] == "tune"
    launcher = next(e["container"] for n, e in document["deploymentSpec"]["executors"].items() if "hpt-job" in n)
    assert "hyperparameter_tuning_job.launcher" in " ".join(launcher["command"])


def test_compiles_to_an_azureml_sweep_searching_log_ranges_by_their_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLOUDML_AZUREML_ENABLE_PREVIEW_CONDITIONS", raising=False)
    assert getattr(cloudml.validate(PIPELINE, target="azureml"), "name", None) == GROUP  # + azure-ai-ml's load_job
    tune = cloudml.compile(PIPELINE, "azureml").document["jobs"]["tune"]
    assert tune["type"] == "sweep" and tune["sampling_algorithm"] == "bayesian"
    space = tune["search_space"]
    assert space["n_estimators"]["type"] == space["learning_rate"]["type"] == "uniform"  # the natural log, sampled
    assert "--from-log" in tune["trial"]["command"]  # the runtime turns each sample back before the step sees it


# -- the blueprint's own docs ------------------------------------------------------------------------
def test_the_step_module_examples_run() -> None:
    sys.path.insert(0, str(BLUEPRINT / "src"))
    mod = importlib.import_module("hpo_steps")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted >= 8


def test_the_readme_shows_the_current_graph_and_how_to_run_it(tmp_path: Path) -> None:
    from cloudml.render import to_mermaid

    readme = (BLUEPRINT / "README.md").read_text()
    assert to_mermaid(cloudml.load(PIPELINE)) in readme  # type: ignore[arg-type]
    assert "cloudml run blueprints/hyperparameter-tuning/pipeline.yaml" in readme
    assert "cloudml init --blueprint hyperparameter-tuning" in readme
    shutil.copytree(BLUEPRINT, tmp_path / "copy", ignore=shutil.ignore_patterns("__pycache__"))
    assert getattr(cloudml.validate(tmp_path / "copy" / "pipeline.yaml"), "name", None) == GROUP
