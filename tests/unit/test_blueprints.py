"""The tabular-classification blueprint for real, on the local backend: every stage, the gate, the
registry baseline, bad input, a canary deployment, `cloudml init`, and compiling for the clouds.

Runs use in-process Python steps (the same runtime call, without a process start per step) on the
bundled breast-cancer data (569 rows); the endpoint workers are real processes.
"""

from __future__ import annotations

import doctest
import importlib
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import cloudml
from cloudml.adapter import FEATURES
from cloudml.cli.main import app
from cloudml.errors import UnsupportedFeatureError
from cloudml.spec.deployment import Deployment
from cloudml.testing import LocalHarness
from tests.conftest import REPO

BLUEPRINT = REPO / "blueprints" / "tabular-classification"
PIPELINE = BLUEPRINT / "pipeline.yaml"
GROUP = "tabular-classification"
FAST = {"n_estimators": 30}  # a smaller forest: the same code path, less CPU


@pytest.fixture(autouse=True)
def _forget_blueprint_modules() -> Iterator[None]:
    """In-process steps import tabular_* into this process: drop them (and their sys.path) afterwards."""
    path = list(sys.path)
    yield
    sys.path[:] = path
    for name in [n for n in sys.modules if n.startswith("tabular_")]:
        del sys.modules[name]


def run(h: LocalHarness, params: dict[str, Any] | None = None, pipeline: Path = PIPELINE, **kw: Any) -> Any:
    return h.run(pipeline, {**FAST, **(params or {})}, check=False, in_process=True, **kw)


def metrics_of(handle: Any) -> dict[str, Any]:
    return dict(json.loads(handle.output_path("evaluate", "metrics").read_text()))


def fast_deployment() -> Deployment:
    text = (BLUEPRINT / "deployment.yaml").read_text().replace("bake: 4s, final_bake: 2s", "bake: 1s, final_bake: 0s")
    spec = cloudml.loads(text)
    assert isinstance(spec, Deployment)
    return spec


# -- end to end ------------------------------------------------------------------------------------
def test_every_stage_runs_and_writes_its_artifacts(cloudml_local: LocalHarness) -> None:
    first = run(cloudml_local)
    assert first.status == "succeeded", first.error
    assert first.step("register")["result"] == f"{GROUP}:v1"
    source = json.loads((first.output_path("ingest", "data") / "source.json").read_text())
    assert source["uri"] == "sklearn://breast_cancer" and source["rows"] == 569
    report = first.output_path("validate", "report")
    assert json.loads((report / "report.json").read_text())["passed"] is True
    assert "data validation PASSED" in (report / "report.txt").read_text()
    assert (report / "inferred_schema.yaml").is_file()
    split = json.loads((first.output_path("split", "train") / "split.json").read_text())
    assert split["seed"] == 42 and split["method"] == "stratified" and split["rows_train"] + split["rows_test"] == 569
    features = json.loads((first.output_path("features", "transformer") / "features.json").read_text())
    assert "size_band" in features["categorical"] and "visit_date" not in features["numeric"] + features["categorical"]
    assert any(name.startswith("cat__size_band_") for name in features["output"])
    model = json.loads((first.output_path("train", "model") / "model.json").read_text())
    assert model["estimator"] == "random_forest" and model["hyperparameters"]["n_estimators"] == 30
    m = metrics_of(first)
    assert m["score"] == m["roc_auc"] > 0.9 and {"accuracy", "f1", "average_precision"} <= set(m)
    assert m["baseline"]["status"] == "none" and "first run" in m["baseline"]["message"]
    plots = first.output_path("evaluate", "report")
    for png in ("confusion_matrix.png", "roc_curve.png", "pr_curve.png"):
        assert (plots / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    assert first.metrics["evaluate"]["roc_auc"] == m["roc_auc"]  # recorded as run metrics too

    second = run(cloudml_local, {"seed": 7})
    assert second.status == "succeeded", second.error
    base = metrics_of(second)["baseline"]
    assert base["status"] == "ok" and base["version"] == 1
    assert base["floor"] == pytest.approx(base["score"] - 0.01)
    assert [v.version for v in cloudml_local.adapter.list_models(GROUP)] == [2, 1]


def test_canary_deploys_the_new_model_and_serves_raw_rows(cloudml_local: LocalHarness) -> None:
    assert run(cloudml_local).status == "succeeded"
    cloudml_local.assert_rollout(cloudml_local.deploy(fast_deployment()), "succeeded")
    assert run(cloudml_local, {"n_estimators": 40}).status == "succeeded"
    request = json.loads((BLUEPRINT / "request.json").read_text())["instances"]
    with cloudml_local.traffic(GROUP, request, concurrency=2) as report:
        result = cloudml_local.deploy(fast_deployment())
    cloudml_local.assert_rollout(result, "succeeded")
    assert report.ok > 0 and report.connection_errors == 0 and set(report.status) == {200}
    assert set(report.by_deployment) == {f"{GROUP}-v1", f"{GROUP}-v2"}  # the canary took a share
    answer = cloudml_local.invoke(GROUP, request)
    assert answer == {"predictions": [0, 1], "deployment": f"{GROUP}-v2"}


def test_csv_input_and_a_time_based_split(cloudml_local: LocalHarness, tmp_path: Path) -> None:
    sys.path.insert(0, str(BLUEPRINT / "src"))
    steps = importlib.import_module("tabular_steps")
    steps.load_default_dataset().to_csv(tmp_path / "cancer.csv", index=False)
    h = run(cloudml_local, {"input_uri": str(tmp_path / "cancer.csv"), "split": "time", "test_size": 0.2})
    assert h.status == "succeeded", h.error
    info = json.loads((h.output_path("split", "test") / "split.json").read_text())
    assert info["method"] == "time" and info["cutoff"] == "2024-03-31" and info["rows_test"] == 114
    train_dates = (h.output_path("split", "train") / "data.csv").read_text().splitlines()[1:]
    assert max(line.split(",")[-2] for line in train_dates) < info["cutoff"]  # the newest rows are held out
    assert len(json.loads((h.output_path("ingest", "data") / "source.json").read_text())["sha256"]) == 64


def test_other_data_without_a_schema_multiclass(cloudml_local: LocalHarness, tmp_path: Path) -> None:
    from sklearn.datasets import load_wine

    wine = load_wine(as_frame=True).frame
    wine["batch"] = [("a", "b", "c")[i % 3] for i in range(len(wine))]
    wine.to_csv(tmp_path / "wine.csv", index=False)
    h = run(cloudml_local, {"input_uri": str(tmp_path / "wine.csv"), "schema": "", "metric": "f1"})
    assert h.status == "succeeded", h.error
    roles = json.loads((h.output_path("validate", "valid") / "columns.json").read_text())
    assert roles["categorical"] == ["batch"] and len(roles["numeric"]) == 13
    m = metrics_of(h)
    assert m["metric"] == "f1" and m["score"] == m["f1"] > 0.8 and len(m["plots"]) == 3
    report = json.loads((h.output_path("validate", "report") / "report.json").read_text())
    assert report["schema"].startswith("none")


# -- the gate --------------------------------------------------------------------------------------
def test_the_gate_blocks_a_model_worse_than_the_approved_one(cloudml_local: LocalHarness) -> None:
    assert run(cloudml_local).status == "succeeded"
    worse = run(cloudml_local, {"n_estimators": 1, "max_depth": 1, "min_score": 0.5})
    assert worse.status == "failed"
    assert worse.step("gate")["result"] == "false" and worse.step("register")["status"] == "skipped"
    assert "[gate]" in (worse.error or "") and "max_regression" in (worse.error or "")
    m = metrics_of(worse)
    assert m["score"] >= 0.5  # the threshold alone would let it through: the baseline stops it
    assert m["baseline"]["status"] == "regressed" and "REGRESSION" in m["baseline"]["message"]
    assert [v.version for v in cloudml_local.adapter.list_models(GROUP)] == [1]


def test_the_gate_blocks_a_first_model_below_the_threshold(cloudml_local: LocalHarness) -> None:
    below = run(cloudml_local, {"min_score": 0.9999})
    assert below.status == "failed" and below.step("gate")["result"] == "false"
    assert cloudml_local.adapter.list_models(GROUP) == []


# -- bad input -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("params", "stage", "says"), [
    ({"label": "churn"}, "validate", ["label column 'churn' is not in the data", "fix: pass -p label=COLUMN"]),
    ({"input_uri": "WRONG"}, "validate", ["32 of 33 schema column(s) missing", "fix: describe your data in src/schema.yaml"]),
    ({"test_size": 0.0}, "split", ["leaves the test split empty", "fix: raise test_size"]),
    ({"input_uri": "no/such.csv"}, "ingest", ["does not exist", "fix: pass -p input_uri=PATH"]),
])
def test_bad_input_names_the_stage_and_the_fix(cloudml_local: LocalHarness, tmp_path: Path,
                                               params: dict[str, Any], stage: str, says: list[str]) -> None:
    if params.get("input_uri") == "WRONG":
        wrong = tmp_path / "wrong.csv"
        wrong.write_text("a,b,target\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(60)))
        params = {"input_uri": str(wrong)}
    h = run(cloudml_local, params)
    assert h.status == "failed"
    assert h.step(stage)["status"] == "failed"
    error = h.step(stage)["error"]
    assert f"[{stage}]" in error, error
    for text in says:
        assert text in error, error
    if stage == "validate":  # the readable report is left where the step wrote it
        report = h.output_path("validate", "report")
        assert json.loads((report / "report.json").read_text())["passed"] is False
        assert "data validation FAILED" in (report / "report.txt").read_text()


def test_a_step_process_shows_the_whole_message(cloudml_local: LocalHarness, tmp_path: Path) -> None:
    """As `cloudml run` runs it: a real process per step, whose last stderr line becomes the error."""
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("a,b,target\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(60)))
    h = cloudml_local.run(PIPELINE, {"input_uri": str(wrong)}, check=False)
    assert h.status == "failed"
    error = h.step("validate")["error"]
    assert "StageError: [validate] schema: 32 of 33 schema column(s) missing" in error, error
    assert error.endswith("or point input_uri at data with these columns"), error
    assert "data validation FAILED" in h.logs("validate")


# -- cloudml init ----------------------------------------------------------------------------------
def test_init_copies_a_blueprint_that_runs_and_refuses_to_overwrite(cloudml_local: LocalHarness,
                                                                    tmp_path: Path) -> None:
    target = tmp_path / "my-model"
    result = CliRunner().invoke(app, ["init", "--blueprint", "tabular-classification", str(target)])
    assert result.exit_code == 0, result.output
    for f in ("pipeline.yaml", "deployment.yaml", "README.md", "request.json", "src/schema.yaml",
              "src/tabular_steps.py"):
        assert (target / f).is_file(), f
    assert not list(target.rglob("__pycache__"))
    copied = run(cloudml_local, pipeline=target / "pipeline.yaml")
    assert copied.status == "succeeded", copied.error

    (target / "pipeline.yaml").write_text("edited\n")
    again = CliRunner().invoke(app, ["init", "--blueprint", "tabular-classification", str(target)])
    assert again.exit_code == 2 and "not empty" in again.output and "--force" in again.output
    assert (target / "pipeline.yaml").read_text() == "edited\n"
    forced = CliRunner().invoke(app, ["init", "--blueprint", "tabular-classification", str(target), "--force"])
    assert forced.exit_code == 0 and (target / "pipeline.yaml").read_text() == PIPELINE.read_text()


def test_init_lists_the_blueprints_when_the_name_is_unknown(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["init", "--blueprint", "tabular", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "no blueprint 'tabular'" in result.output
    assert "tabular-classification" in result.output and "quickstart" in result.output
    assert not (tmp_path / "x").exists()


def test_init_refuses_a_file_as_the_folder(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    result = CliRunner().invoke(app, ["init", "--blueprint", "quickstart", str(tmp_path / "f"), "--force"])
    assert result.exit_code == 2 and "is a file" in result.output


# -- the clouds ------------------------------------------------------------------------------------
def test_compiles_for_sagemaker_and_passes_its_validator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDML_SAGEMAKER_REGION", "eu-west-1")
    monkeypatch.setenv("CLOUDML_SAGEMAKER_ROLE_ARN", "arn:aws:iam::123456789012:role/ml")
    monkeypatch.setenv("CLOUDML_SAGEMAKER_BUCKET", "my-ml")
    assert cloudml.validate(PIPELINE, target="sagemaker").name == GROUP  # compiles + botocore shape checks
    assert cloudml.validate(BLUEPRINT / "deployment.yaml", target="sagemaker").kind == "Deployment"
    steps = {s["Name"]: s for s in cloudml.compile(PIPELINE, "sagemaker").document["Steps"]}
    conditions = steps["gate"]["Arguments"]["Conditions"]
    assert conditions[1]["RightValue"]["Std:JsonGet"]["Path"] == "baseline.floor"


@pytest.mark.parametrize("target", ["vertex", "azureml"])
def test_compiles_for_the_other_clouds_or_names_what_is_missing(target: str) -> None:
    """Python/code steps and registration are being built for these two: the compile either works or
    says which feature is missing. It never passes silently with something dropped."""
    try:
        compiled = cloudml.compile(PIPELINE, target)
    except UnsupportedFeatureError as e:
        assert e.adapter == target and e.feature in FEATURES, e
        assert e.feature in str(e) and e.step is not None
    else:
        assert compiled.target == target and compiled.document


# -- the blueprint's own examples ------------------------------------------------------------------
@pytest.mark.parametrize("module", ["tabular_checks", "tabular_eval", "tabular_steps"])
def test_the_step_modules_examples_run(module: str) -> None:
    sys.path.insert(0, str(BLUEPRINT / "src"))
    mod = importlib.import_module(module)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


def test_the_readme_shows_the_current_graph_and_the_copy_is_self_contained(tmp_path: Path) -> None:
    from cloudml.render import to_mermaid

    spec = cloudml.load(PIPELINE)
    assert to_mermaid(spec) in (BLUEPRINT / "README.md").read_text()  # type: ignore[arg-type]
    shutil.copytree(BLUEPRINT, tmp_path / "copy", ignore=shutil.ignore_patterns("__pycache__"))
    assert cloudml.validate(tmp_path / "copy" / "pipeline.yaml").name == GROUP


def _every_blueprint_spec() -> list[Path]:
    """Every pipeline and deployment file of every blueprint (not data files such as src/schema.yaml)."""
    return [f for f in sorted((REPO / "blueprints").glob("*/*.yaml")) if "\nkind: " in f.read_text()]


@pytest.mark.parametrize("target", ["sagemaker", "vertex", "azureml"])
@pytest.mark.parametrize("spec", _every_blueprint_spec(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_blueprint_file_compiles_for_every_cloud(spec: Path, target: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each blueprint's pipelines and deployments compile for all three clouds, each checked by the cloud's own
    validator (botocore shapes, the pipeline_spec protobuf, azure-ai-ml's load_job), with default settings."""
    from tests.conformance.conftest import CLOUD_SETTINGS

    for key, value in CLOUD_SETTINGS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("CLOUDML_AZUREML_ENABLE_PREVIEW_CONDITIONS", raising=False)
    assert cloudml.validate(spec, target=target).kind in ("Pipeline", "Deployment")
