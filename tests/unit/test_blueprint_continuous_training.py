"""The continuous-training blueprint for real, on the local backend: traffic captured by an endpoint,
the drift check (cloudml.drift) deciding whether to retrain, the nightly schedule run by the local
scheduler loop on a fake clock, bad input, `cloudml init`, and compiling for the clouds.

Runs use in-process Python steps on the bundled breast-cancer data (569 rows); the endpoint workers
are real processes and the capture files are the ones the gateway writes.
"""

from __future__ import annotations

import doctest
import importlib
import json
import shutil
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator
from typer.testing import CliRunner

import cloudml
from cloudml.adapters.local.scheduler import ScheduleEvent, run_schedule
from cloudml.cli.main import app
from cloudml.errors import UnsupportedFeatureError
from cloudml.spec.deployment import Deployment
from cloudml.spec.pipeline import Pipeline
from cloudml.testing import LocalHarness
from tests.conftest import REPO

BLUEPRINT = REPO / "blueprints" / "continuous-training"
PIPELINE = BLUEPRINT / "pipeline.yaml"
GROUP = ENDPOINT = "continuous-training"
FAST = {"n_estimators": 30}


@pytest.fixture(autouse=True)
def _forget_blueprint_modules() -> Iterator[None]:
    """In-process steps import ct_* and tabular_* into this process: drop them (and their sys.path) afterwards."""
    path = list(sys.path)
    yield
    sys.path[:] = path
    for name in [n for n in sys.modules if n.startswith(("ct_", "tabular_"))]:
        del sys.modules[name]


def run(h: LocalHarness, params: dict[str, Any] | None = None, pipeline: Any = PIPELINE, **kw: Any) -> Any:
    return h.run(pipeline, {**FAST, **(params or {})}, check=False, in_process=True, spec_dir=str(BLUEPRINT), **kw)


def drift_of(handle: Any) -> dict[str, Any]:
    return dict(json.loads(handle.output_path("drift", "metrics").read_text()))


def dataset(scale: float = 1.0) -> Any:
    """The bundled data with its label; ``scale`` multiplies every numeric feature (a drifted world)."""
    sys.path.insert(0, str(REPO / "blueprints" / "tabular-classification" / "src"))
    frame = importlib.import_module("tabular_steps").load_default_dataset()
    numeric = [c for c in frame.columns if c not in ("size_band", "visit_date", "target")]
    frame[numeric] = frame[numeric] * scale
    return frame


def features_of(frame: Any) -> Any:
    return frame.drop(columns=["target", "visit_date"])


def send(h: LocalHarness, frame: Any, rows: int = 200, seed: int = 1) -> None:
    records = features_of(frame).sample(rows, random_state=seed).to_dict("records")
    for i in range(0, rows, 50):
        assert h.invoke(ENDPOINT, records[i:i + 50])["deployment"].startswith(GROUP)


def fast_deployment() -> Deployment:
    text = (BLUEPRINT / "deployment.yaml").read_text().replace("bake: 4s, final_bake: 2s", "bake: 1s, final_bake: 0s")
    spec = cloudml.loads(text)
    assert isinstance(spec, Deployment)
    return spec


# -- end to end: capture -> drift -> branch ---------------------------------------------------------
def test_captured_traffic_drives_the_branch(cloudml_local: LocalHarness, tmp_path: Path) -> None:
    first = run(cloudml_local)  # no approved model yet: the check says so and the first model is trained
    assert first.status == "succeeded", first.error
    assert drift_of(first)["has_model"] == 0 and drift_of(first)["verdict"] == "no_model"
    assert first.step("retrain")["result"] == "true" and first.step("register")["result"] == f"{GROUP}:v1"
    model = Path(cloudml_local.adapter.latest_approved(GROUP).uri)
    assert json.loads((model / "model.json").read_text())["reference"]["rows"] == 426  # the drift baseline

    cloudml_local.assert_rollout(cloudml_local.deploy(fast_deployment()), "succeeded")
    send(cloudml_local, dataset())  # today's traffic looks like the training data
    capture = cloudml_local.root / "endpoints" / ENDPOINT / "capture"
    assert len(list(capture.glob("*.jsonl"))) == 1
    calm = run(cloudml_local)
    assert calm.status == "succeeded", calm.error
    m = drift_of(calm)
    assert m["verdict"] == "no_drift" and m["rows_current"] == 200 and m["drift_share"] < 0.25
    assert calm.step("retrain")["result"] == "false"
    for skipped in ("ingest", "train", "evaluate", "register"):
        assert calm.step(skipped)["status"] == "skipped", skipped
    report = calm.output_path("drift", "report")
    assert (report / "drift.md").read_text().startswith("# Drift check: no retraining")
    doc = json.loads((report / "drift.json").read_text())
    assert doc["current"]["by_deployment"] == {f"{GROUP}-v1": 200} and doc["model_version"] == 1
    assert {f["name"] for f in doc["report"]["features"]} >= {"mean radius", "size_band"}
    assert doc["report"]["prediction"]["name"] == "prediction"  # prediction drift is checked too

    shutil.rmtree(capture)  # the next day: the world has changed
    drifted = dataset(scale=1.3)
    send(cloudml_local, drifted, seed=2)
    drifted.to_csv(tmp_path / "fresh.csv", index=False)  # fresh labelled data to retrain on
    again = run(cloudml_local, {"input_uri": str(tmp_path / "fresh.csv")})
    assert again.status == "succeeded", again.error
    m = drift_of(again)
    assert m["verdict"] == "drift" and m["drift_share"] >= 0.25 and m["max_psi"] > 0.2
    assert again.step("retrain")["result"] == "true" and again.step("register")["result"] == f"{GROUP}:v2"
    assert "# Drift check: retrain (drift_share" in (again.output_path("drift", "report") / "drift.md").read_text()
    assert again.metrics["drift"]["drift_share"] == m["drift_share"]  # recorded as run metrics too


def test_few_rows_give_no_verdict_and_old_captures_fall_out_of_the_window(cloudml_local: LocalHarness,
                                                                         tmp_path: Path) -> None:
    assert run(cloudml_local).status == "succeeded"
    frame = features_of(dataset(scale=1.5))
    old = {"at": time.time() - 3 * 86400, "deployment": f"{GROUP}-v1",
           "request": {"instances": frame.head(300).to_dict("records")}, "response": {"predictions": [1] * 300}}
    new = {"at": time.time(), "deployment": f"{GROUP}-v1",
           "request": {"instances": frame.tail(10).to_dict("records")}, "response": {"predictions": [1] * 10}}
    (tmp_path / "capture").mkdir()
    (tmp_path / "capture" / "20261124.jsonl").write_text(json.dumps(old) + "\n" + json.dumps(new) + "\n")
    h = run(cloudml_local, {"current_uri": str(tmp_path / "capture")})
    assert h.status == "succeeded", h.error
    assert drift_of(h)["verdict"] == "too_few_rows" and drift_of(h)["rows_current"] == 10  # 3 days old: out
    assert h.step("retrain")["result"] == "false"
    assert "fewer than min_rows=50" in (h.output_path("drift", "report") / "drift.md").read_text()
    everything = run(cloudml_local, {"current_uri": str(tmp_path / "capture"), "window_hours": 0})
    assert drift_of(everything)["verdict"] == "drift" and drift_of(everything)["rows_current"] == 310


# -- the schedule ------------------------------------------------------------------------------------
class FakeClock:
    """Time jumps ahead at every sleep; a night is long enough for the run in flight to finish."""

    def __init__(self, start: datetime, adapter: Any) -> None:
        self.now = start
        self.adapter = adapter

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        deadline = time.time() + 30
        while any(r["status"] in ("pending", "running") for r in self.adapter.list_runs()) and time.time() < deadline:
            time.sleep(0.05)


def test_the_scheduler_loop_runs_the_pipeline_each_night(cloudml_local: LocalHarness, tmp_path: Path) -> None:
    features_of(dataset(scale=1.3)).to_csv(tmp_path / "today.csv", index=False)
    spec = cloudml.load(PIPELINE)
    assert isinstance(spec, Pipeline) and spec.schedule is not None and spec.schedule.cron == "0 2 * * *"
    nightly = spec.model_copy(update={"schedule": spec.schedule.model_copy(
        update={"parameters": {**FAST, "current_uri": str(tmp_path / "today.csv")}})})
    clock = FakeClock(datetime(2026, 11, 27, 1, 59, tzinfo=timezone.utc), cloudml_local.adapter)
    events: list[ScheduleEvent] = []
    ids = run_schedule(cloudml_local.adapter, nightly, spec_dir=str(BLUEPRINT), max_runs=2, now=clock,
                       sleep=clock.sleep, on_event=events.append, in_process=True)
    assert len(ids) == 2
    started = [e.at for e in events if e.kind == "started"]
    assert started[0] == datetime(2026, 11, 27, 2, 0, tzinfo=timezone.utc)
    assert started[1] == datetime(2026, 11, 28, 2, 0, tzinfo=timezone.utc)  # the next night, nothing skipped
    assert not [e for e in events if e.kind == "skipped"]
    first, second = (cloudml_local.adapter.get_run(i) for i in ids)
    assert first.status == second.status == "succeeded"
    assert first.step("register")["result"] == f"{GROUP}:v1"  # night one: no model yet
    assert drift_of(second)["verdict"] == "drift" and second.step("retrain")["result"] == "true"  # night two


def test_schedule_next_shows_the_nightly_fire_times() -> None:
    result = CliRunner().invoke(app, ["schedule", "next", str(PIPELINE), "-n", "2"])
    assert result.exit_code == 0, result.output
    assert result.output.count("02:00") >= 2


# -- bad input ---------------------------------------------------------------------------------------
def test_data_without_the_training_features_names_the_stage_and_the_fix(cloudml_local: LocalHarness,
                                                                         tmp_path: Path) -> None:
    assert run(cloudml_local).status == "succeeded"
    (tmp_path / "other.csv").write_text("age,income\n" + "".join(f"{i},{i * 10}\n" for i in range(80)))
    h = run(cloudml_local, {"current_uri": str(tmp_path / "other.csv")})
    assert h.status == "failed" and h.step("drift")["status"] == "failed"
    error = h.step("drift")["error"]
    assert "[drift] the current data lacks 31 of the model's 31 training features (it has: age, income)" in error
    assert "— fix: capture requests with the features v1 was trained on (mean radius, " in error, error
    assert h.step("ingest")["status"] == "upstream_failed"  # nothing retrained on data nobody could judge

    nothing = run(cloudml_local)  # the endpoint never captured anything
    error = nothing.step("drift")["error"]
    assert "[drift] no captured requests at" in error and "capture: {enabled: true}" in error, error
    missing = run(cloudml_local, {"current_uri": "no/such.csv"})
    assert "[drift] current_uri 'no/such.csv' does not exist" in missing.step("drift")["error"]


def test_a_step_process_shows_the_whole_message(cloudml_local: LocalHarness, tmp_path: Path) -> None:
    """As `cloudml run` runs it: a real process per step, whose last stderr line becomes the error."""
    assert run(cloudml_local).status == "succeeded"
    (tmp_path / "other.csv").write_text("age,income\n" + "".join(f"{i},{i * 10}\n" for i in range(80)))
    h = cloudml_local.run(PIPELINE, {"current_uri": str(tmp_path / "other.csv")}, check=False)
    error = h.step("drift")["error"]
    assert "StageError: [drift] the current data lacks 31 of the model's 31 training features" in error, error
    assert error.endswith("(+28 more)), or point -p current_uri at such data"), error


# -- cloudml init ------------------------------------------------------------------------------------
def test_init_copies_a_blueprint_that_runs(cloudml_local: LocalHarness, tmp_path: Path) -> None:
    target = tmp_path / "mine"
    result = CliRunner().invoke(app, ["init", "--blueprint", "continuous-training", str(target)])
    assert result.exit_code == 0, result.output
    for f in ("pipeline.yaml", "deployment.yaml", "README.md", "request.json", "src/ct_steps.py", "src/ct_drift.py"):
        assert (target / f).is_file(), f
    copied = cloudml_local.run(target / "pipeline.yaml", FAST, check=False, in_process=True)
    assert copied.status == "succeeded", copied.error  # the flagship's stages come from the installed package
    assert copied.step("register")["result"] == f"{GROUP}:v1"


# -- the clouds --------------------------------------------------------------------------------------
def test_compiles_for_sagemaker_with_its_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDML_SAGEMAKER_REGION", "eu-west-1")
    monkeypatch.setenv("CLOUDML_SAGEMAKER_ROLE_ARN", "arn:aws:iam::123456789012:role/ml")
    monkeypatch.setenv("CLOUDML_SAGEMAKER_BUCKET", "my-ml")
    assert cloudml.validate(PIPELINE, target="sagemaker").name == GROUP  # compiles + botocore shape checks
    steps = {s["Name"]: s for s in cloudml.compile(PIPELINE, "sagemaker").document["Steps"]}
    assert steps["retrain"]["Type"] == "Condition"
    from cloudml.adapters.sagemaker.schedule import schedule_request

    spec = cloudml.load(PIPELINE)
    request = schedule_request(spec, "arn:aws:sagemaker:eu-west-1:123456789012:pipeline/continuous-training",
                               "arn:aws:iam::123456789012:role/ml")
    shape = botocore.session.get_session().get_service_model("scheduler").operation_model("CreateSchedule").input_shape
    report = ParamValidator().validate(request, shape)
    assert not report.has_errors(), report.generate_report()
    assert request["ScheduleExpression"] == "cron(0 2 * * ? *)" and request["ScheduleExpressionTimezone"] == "UTC"
    # The deployment's data capture is a declared SageMaker gap today (DataCaptureConfig): it compiles once built.
    try:
        assert cloudml.validate(BLUEPRINT / "deployment.yaml", target="sagemaker").kind == "Deployment"
    except UnsupportedFeatureError as e:
        assert e.adapter == "sagemaker" and e.feature == "deploy.capture", e
    without_capture = cloudml.loads((BLUEPRINT / "deployment.yaml").read_text().replace(
        "capture: {enabled: true, percent: 100}", ""))
    assert cloudml.compile(without_capture, "sagemaker").document  # the canary with alarms itself compiles


@pytest.mark.parametrize(("target", "file"), [("vertex", "pipeline.yaml"), ("azureml", "pipeline.yaml"),
                                              ("vertex", "deployment.yaml"), ("azureml", "deployment.yaml")])
def test_compiles_for_the_other_clouds(target: str, file: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Vertex AI and Azure ML compile the pipeline (Azure ML: the nested gates as runtime guards) and the
    deployment with its capture."""
    monkeypatch.delenv("CLOUDML_AZUREML_ENABLE_PREVIEW_CONDITIONS", raising=False)
    compiled = cloudml.compile(BLUEPRINT / file, target)
    assert compiled.target == target and compiled.document


def test_azureml_schedule_compiles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLOUDML_AZUREML_ENABLE_PREVIEW_CONDITIONS", raising=False)
    adapter = cloudml.get_adapter("azureml")
    adapter.base_dir = BLUEPRINT
    spec = cloudml.load(PIPELINE)
    schedule = adapter.compile_schedule(spec).document  # type: ignore[attr-defined, arg-type]
    assert "0 2 * * *" in json.dumps(schedule)


# -- the blueprint's own examples and README ---------------------------------------------------------
@pytest.mark.parametrize("module", ["ct_steps", "ct_drift"])
def test_the_step_modules_examples_run(module: str) -> None:
    sys.path.insert(0, str(BLUEPRINT / "src"))
    mod = importlib.import_module(module)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


def test_the_readme_shows_the_current_graph() -> None:
    from cloudml.render import to_mermaid

    spec = cloudml.load(PIPELINE)
    assert to_mermaid(spec) in (BLUEPRINT / "README.md").read_text()  # type: ignore[arg-type]


@pytest.mark.parametrize("cloud", ["sagemaker", "azureml"])
def test_the_drift_check_reads_a_clouds_downloaded_capture(cloud: str, tmp_path: Path) -> None:
    """-p current_uri=FOLDER with SageMaker's or Azure ML's own capture files gives the same columns and counts."""
    sys.path.insert(0, str(BLUEPRINT / "src"))
    drift = importlib.import_module("ct_drift")
    root = tmp_path / "capture"
    for i in range(5):
        inst, pred = {"a": float(i), "b": "x"}, i % 2
        if cloud == "sagemaker":
            folder = root / "ct" / "AllTraffic" / "2026" / "11" / "27" / "10"
            folder.mkdir(parents=True, exist_ok=True)
            rec = {"captureData": {
                "endpointInput": {"observedContentType": "application/json", "mode": "INPUT", "encoding": "JSON",
                                  "data": json.dumps({"instances": [inst]})},
                "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT", "encoding": "JSON",
                                   "data": json.dumps({"predictions": [pred]})}},
                "eventMetadata": {"inferenceTime": "2026-11-27T10:00:00Z"}}
            with open(folder / "f.jsonl", "a") as fh:
                fh.write(json.dumps(rec) + "\n")
        else:
            for coll, data in (("request", {"instances": [inst]}), ("response", {"predictions": [pred]})):
                folder = root / "ct" / "ct-v1" / coll / "2026" / "11" / "27" / "10"
                folder.mkdir(parents=True, exist_ok=True)
                rec = {"specversion": "1.0", "type": f"azureml.inference.{coll}", "time": "2026-11-27T10:00:00Z",
                       "source": "/subscriptions/s/onlineEndpoints/ct/deployments/ct-v1", "data": data,
                       "correlationid": f"c{i}"}
                with open(folder / "0.jsonl", "a") as fh:
                    fh.write(json.dumps(rec) + "\n")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    cols, source = drift.read_current(str(root), None, ["a", "b"], 0, scratch)
    assert list(cols["a"]) == [0.0, 1.0, 2.0, 3.0, 4.0] and list(cols["prediction"]) == [0, 1, 0, 1, 0]
    assert source["kind"] == "capture"
    assert source["by_deployment"] == {"AllTraffic" if cloud == "sagemaker" else "ct-v1": 5}
