"""The multi-model-ensemble blueprint for real, on the local backend: three members trained in parallel
branches, combined by soft voting or stacking, evaluated against its members and the approved model,
gated, registered and served by a local endpoint; bad input; `cloudml init`; the clouds. Also
experiment tracking: two runs logged to MLflow (a SQLite store in the test's folder) and compared
with `cloudml runs compare RUN RUN --plot`.

Runs use in-process Python steps (threads of the runner: the same runtime call without a process
start) on the bundled breast-cancer data (569 rows), with smaller forests than the defaults; the
endpoint worker is a real process.
"""

from __future__ import annotations

import doctest
import importlib
import json
import pickle
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import cloudml
from cloudml.cli.main import app
from cloudml.spec.deployment import Deployment
from cloudml.testing import LocalHarness
from tests.conftest import REPO

BLUEPRINT = REPO / "blueprints" / "multi-model-ensemble"
PIPELINE = BLUEPRINT / "pipeline.yaml"
GROUP = "multi-model-ensemble"
MEMBERS = ("random_forest", "gradient_boosting", "logistic_regression")
FAST = {"rf_n_estimators": 30, "gb_n_estimators": 30, "plots": False}  # the same code path, less CPU


@pytest.fixture(autouse=True)
def _forget_blueprint_modules() -> Iterator[None]:
    """In-process steps import ens_* and tabular_* into this process: drop them (and their sys.path) afterwards."""
    path = list(sys.path)
    yield
    sys.path[:] = path
    for name in [n for n in sys.modules if n.startswith(("ens_", "tabular_"))]:
        del sys.modules[name]


def run(h: LocalHarness, params: dict[str, Any] | None = None, pipeline: Path = PIPELINE) -> Any:
    return h.run(pipeline, {**FAST, **(params or {})}, check=False, in_process=True)


def metrics_of(handle: Any) -> dict[str, Any]:
    return dict(json.loads(handle.output_path("evaluate", "metrics").read_text()))


def fast_deployment() -> Deployment:
    text = (BLUEPRINT / "deployment.yaml").read_text().replace("bake: 4s, final_bake: 2s", "bake: 1s, final_bake: 0s")
    spec = cloudml.loads(text)
    assert isinstance(spec, Deployment)
    return spec


def span(handle: Any, step: str) -> tuple[float, float]:
    row = handle.step(step)
    return float(row["started"]), float(row["finished"])


# -- end to end ------------------------------------------------------------------------------------
def test_members_in_parallel_voting_gated_registered_and_served(cloudml_local: LocalHarness) -> None:
    h = run(cloudml_local)
    assert h.status == "succeeded", h.error
    # the three branches overlap in time: nothing orders them but their shared inputs
    spans = [span(h, m) for m in MEMBERS]
    assert max(start for start, _ in spans) < min(end for _, end in spans), spans
    combined = h.output_path("combine", "model")
    info = json.loads((combined / "model.json").read_text())
    assert info["ensemble"] == "voting" and info["members"] == sorted(MEMBERS)
    assert info["member_models"]["random_forest"]["hyperparameters"]["n_estimators"] == 30
    with open(combined / "model.pkl", "rb") as fh:
        model = pickle.load(fh)
    assert type(model).__name__ == "VotingClassifier" and model.voting == "soft"
    blend = json.loads((combined / "blend.json").read_text())
    assert set(blend["members"]) == set(MEMBERS) and blend["rows_blend"] == 107
    m = metrics_of(h)
    assert m["score"] == m["roc_auc"] > 0.95 and set(MEMBERS) < set(m["members"])
    assert m["members"]["best"] == max(m["members"][n] for n in MEMBERS)
    assert m["score"] >= m["members"]["floor"] and m["baseline"]["status"] == "none"
    assert h.metrics["evaluate"]["members.logistic_regression"] == m["members"]["logistic_regression"]
    assert h.step("register")["result"] == f"{GROUP}:v1"
    comparison = json.loads((h.output_path("evaluate", "report") / "comparison.json").read_text())
    assert comparison["members"] == m["members"]
    # the registered ensemble is plain scikit-learn: the endpoint's built-in predictor serves raw rows
    cloudml_local.assert_rollout(cloudml_local.deploy(fast_deployment()), "succeeded")
    request = json.loads((BLUEPRINT / "request.json").read_text())["instances"]
    assert cloudml_local.invoke(GROUP, request) == {"predictions": [0, 1], "deployment": f"{GROUP}-v1"}


def test_stacking_fits_a_meta_model_on_the_blend_rows(cloudml_local: LocalHarness) -> None:
    h = run(cloudml_local, {"method": "stacking", "final_c": 0.5})
    assert h.status == "succeeded", h.error
    with open(h.output_path("combine", "model") / "model.pkl", "rb") as fh:
        model = pickle.load(fh)
    assert type(model).__name__ == "StackingClassifier" and model.final_estimator_.C == 0.5
    assert [type(e).__name__ for e in model.estimators_] == ["FrozenEstimator"] * 3  # members are not refitted
    assert metrics_of(h)["score"] > 0.95 and h.step("register")["result"] == f"{GROUP}:v1"


# -- the gate --------------------------------------------------------------------------------------
def test_the_gate_blocks_an_ensemble_worse_than_its_best_member(cloudml_local: LocalHarness) -> None:
    weak = {"rf_n_estimators": 1, "rf_max_depth": 1, "gb_n_estimators": 1, "gb_max_depth": 1, "metric": "accuracy"}
    h = run(cloudml_local, weak)
    assert h.status == "failed" and h.step("gate")["result"] == "false"
    m = metrics_of(h)
    assert m["score"] >= 0.9  # the threshold alone would let it through: its best member stops it
    assert m["score"] < m["members"]["floor"] and m["members"]["best"] == m["members"]["logistic_regression"]
    assert "[gate] the ensemble is below" in (h.error or "") and "its own best member" in (h.error or "")
    assert cloudml_local.adapter.list_models(GROUP) == []


# -- bad input -------------------------------------------------------------------------------------
def test_bad_input_names_the_stage_and_the_fix(cloudml_local: LocalHarness) -> None:
    h = run(cloudml_local, {"blend_size": 0.0})
    assert h.status == "failed" and h.step("holdout")["status"] == "failed"
    error = h.step("holdout")["error"]
    assert "[holdout] blend_size=0.0 of 426 rows leaves the blend split empty" in error, error
    assert "fix: change -p blend_size" in error, error
    h = run(cloudml_local, {"label": "churn"})
    assert h.status == "failed" and "[validate] label: label column 'churn' is not in the data" in h.step(
        "validate")["error"]
    with pytest.raises(cloudml.errors.CloudMLError, match="method"):
        run(cloudml_local, {"method": "bagging"})  # not an allowed value: refused before anything runs


# -- cloudml init ----------------------------------------------------------------------------------
def test_init_copies_it_and_the_copy_runs(cloudml_local: LocalHarness, tmp_path: Path) -> None:
    target = tmp_path / "my-ensemble"
    result = CliRunner().invoke(app, ["init", "--blueprint", GROUP, str(target)])
    assert result.exit_code == 0, result.output
    for f in ("pipeline.yaml", "deployment.yaml", "README.md", "request.json", "src/ens_steps.py"):
        assert (target / f).is_file(), f
    copied = run(cloudml_local, {"max_rows": 300}, pipeline=target / "pipeline.yaml")
    assert copied.status == "succeeded", copied.error  # the shared tabular code comes from the installed cloudml


# -- experiment tracking ---------------------------------------------------------------------------
def test_two_runs_are_logged_to_mlflow_and_compared(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    h = LocalHarness(tmp_path / "cloudml", tracking="mlflow", mlflow_tracking_uri=store)
    first = run(h, {"max_rows": 300})
    second = run(h, {"max_rows": 300, "method": "stacking"})
    assert (first.status, second.status) == ("succeeded", "succeeded"), (first.error, second.error)

    client = MlflowClient(store)
    experiment = client.get_experiment_by_name(GROUP)
    assert experiment is not None
    logged = {r.data.tags["cloudml.run_id"]: r for r in client.search_runs([experiment.experiment_id])}
    assert set(logged) == {first.id, second.id}
    for handle, method in ((first, "voting"), (second, "stacking")):
        data = logged[handle.id].data
        assert data.params["method"] == method and data.params["combine.method"] == method
        assert data.params["random_forest.n_estimators"] == "30"
        assert data.metrics["evaluate.roc_auc"] == handle.metrics["evaluate"]["roc_auc"] > 0.9
        assert {f"evaluate.members.{m}" for m in MEMBERS} <= set(data.metrics)
        assert logged[handle.id].info.status == "FINISHED"
        assert data.tags["cloudml.status"] == "succeeded"
    artifacts = {a.path for a in client.list_artifacts(logged[second.id].info.run_id, "combine/model")}
    assert "combine/model/model.pkl" in artifacts

    png = tmp_path / "compare.png"
    result = CliRunner().invoke(app, ["runs", "compare", first.id, second.id, "--plot", str(png),
                                      "--root", str(tmp_path / "cloudml")], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") >= 4}
    assert "voting" in rows["method"] and "stacking" in rows["method"]
    assert "evaluate.roc_auc" in rows and "evaluate.members.best" in rows
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


# -- the clouds ------------------------------------------------------------------------------------
def test_compiles_for_sagemaker_and_passes_its_validator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDML_SAGEMAKER_REGION", "eu-west-1")
    monkeypatch.setenv("CLOUDML_SAGEMAKER_ROLE_ARN", "arn:aws:iam::123456789012:role/ml")
    monkeypatch.setenv("CLOUDML_SAGEMAKER_BUCKET", "my-ml")
    assert getattr(cloudml.validate(PIPELINE, target="sagemaker"), "name", None) == GROUP  # compiles + botocore shape checks
    assert cloudml.validate(BLUEPRINT / "deployment.yaml", target="sagemaker").kind == "Deployment"
    steps = {s["Name"]: s for s in cloudml.compile(PIPELINE, "sagemaker").document["Steps"]}
    assert {steps[m]["Type"] for m in (*MEMBERS, "combine")} == {"Training"}
    channels = {c["ChannelName"] for c in steps["combine"]["Arguments"]["InputDataConfig"]}
    assert {"blend", *MEMBERS} <= channels
    register = {s["Name"]: s for s in steps["gate"]["Arguments"]["IfSteps"]}["register"]
    model_url = register["Arguments"]["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    assert model_url == {"Get": "Steps.combine.ModelArtifacts.S3ModelArtifacts"}
    assert len(steps["gate"]["Arguments"]["Conditions"]) == 3


def _golden_blueprints() -> list[tuple[str, str]]:
    from tests.golden.test_golden import BLUEPRINTS

    return [(file, target) for file, targets in BLUEPRINTS.values() for target in targets]


@pytest.mark.parametrize(("file", "target"), _golden_blueprints())
def test_every_blueprint_golden_case_passes_its_adapters_validator(file: str, target: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The golden files of the shipped blueprints (tests/golden/blueprint-*) hold output the cloud accepts."""
    from tests.conformance.conftest import CLOUD_SETTINGS

    for key, value in CLOUD_SETTINGS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("CLOUDML_AZUREML_ENABLE_PREVIEW_CONDITIONS", raising=False)  # as tests/golden compiles them
    assert cloudml.validate(REPO / "blueprints" / file, target=target).kind == "Pipeline"


def test_compiles_for_vertex_with_the_runtime_image_for_registration() -> None:
    assert getattr(cloudml.validate(PIPELINE, target="vertex"), "name", None) == GROUP  # + the IR's own checks
    document = cloudml.compile(PIPELINE, "vertex").document
    images = {name: e["container"]["image"] for name, e in document["deploymentSpec"]["executors"].items()}
    assert images["exec-combine"].endswith("/sklearn-cpu.1-6:latest")  # FrozenEstimator needs scikit-learn >= 1.6
    assert images["exec-register"] == "us-docker.pkg.dev/my-project/ml/cloudml-gcp:latest"  # backend_options.vertex
    assert {"random_forest", "gradient_boosting", "logistic_regression", "combine"} <= set(document["root"]["dag"]["tasks"])


def test_compiles_for_azureml_with_the_gate_as_runtime_guards(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without Azure ML's private-preview if_else nodes the gate is a guard on each node of its branches."""
    monkeypatch.delenv("CLOUDML_AZUREML_ENABLE_PREVIEW_CONDITIONS", raising=False)
    assert getattr(cloudml.validate(PIPELINE, target="azureml"), "name", None) == GROUP  # + azure-ai-ml's load_job
    jobs = cloudml.compile(PIPELINE, "azureml").document["jobs"]
    assert "gate" not in jobs  # no node of its own
    for name in ("register", "reject"):
        assert "--guard" in jobs[name]["component"]["command"], name
    assert "--guard" not in jobs["combine"]["component"]["command"]  # before the gate: unconditional


# -- the blueprint's own docs ------------------------------------------------------------------------
def test_the_step_module_examples_run() -> None:
    sys.path.insert(0, str(BLUEPRINT / "src"))
    mod = importlib.import_module("ens_steps")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted >= 10


def test_the_readme_shows_the_current_graph_and_how_to_run_it(tmp_path: Path) -> None:
    from cloudml.render import to_mermaid

    readme = (BLUEPRINT / "README.md").read_text()
    assert to_mermaid(cloudml.load(PIPELINE)) in readme  # type: ignore[arg-type]
    assert "cloudml run blueprints/multi-model-ensemble/pipeline.yaml" in readme
    assert "cloudml init --blueprint multi-model-ensemble" in readme
    shutil.copytree(BLUEPRINT, tmp_path / "copy", ignore=shutil.ignore_patterns("__pycache__"))
    assert getattr(cloudml.validate(tmp_path / "copy" / "pipeline.yaml"), "name", None) == GROUP
