"""The ab-test blueprint for real, on the local backend: two variants trained by its pipeline, A
deployed all_at_once, B beside it with the ab_test strategy (a fixed 50/50 split, captured), labelled
traffic through the gateway, the analysis pipeline (cloudml.abtest) naming the known-better variant
and promoting it or rolling back, an inconclusive test left alone, bad input, `cloudml init`, and
compiling for the clouds.

The variants are constructed to differ: A is a logistic regression regularised so hard that it
predicts the majority class (right for about three rows in four of the traffic, while its ROC AUC
still passes the offline gate), B a random forest (about 0.95). Requests go to A or B at random, so
the exact counts vary from run to run; the verdict does not. Runs use in-process Python steps; the endpoint
workers are real processes.
"""

from __future__ import annotations

import contextlib
import doctest
import importlib
import io
import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import cloudml
from cloudml.cli.main import app
from cloudml.errors import UnsupportedFeatureError
from cloudml.spec.deployment import Deployment
from cloudml.testing import LocalHarness
from tests.conftest import REPO

BLUEPRINT = REPO / "blueprints" / "ab-test"
TRAIN = BLUEPRINT / "pipeline.yaml"
ANALYSIS = BLUEPRINT / "analysis.yaml"
ENDPOINT = GROUP = "ab-test"
WEAK = {"estimator": "logistic_regression", "reg_c": 0.000001, "max_regression": 0.05}
STRONG = {"n_estimators": 30, "max_regression": 0.05}


@pytest.fixture(autouse=True)
def _forget_blueprint_modules() -> Iterator[None]:
    """In-process steps import ab_* and tabular_* into this process: drop them (and their sys.path) afterwards."""
    path = list(sys.path)
    yield
    sys.path[:] = path
    for name in [n for n in sys.modules if n.startswith(("ab_", "tabular_"))]:
        del sys.modules[name]


def module(name: str) -> Any:
    sys.path.insert(0, str(BLUEPRINT / "src"))
    return importlib.import_module(name)


def run(h: LocalHarness, pipeline: Path, params: dict[str, Any] | None = None) -> Any:
    return h.run(pipeline, params or {}, check=False, in_process=True, spec_dir=str(BLUEPRINT))


def deployment(file: str, **replace: str) -> Deployment:
    text = (BLUEPRINT / file).read_text()
    for old, new in replace.items():
        text = text.replace(old, new)
    spec = cloudml.loads(text)
    assert isinstance(spec, Deployment)
    return spec


def serve_a_then_register_b(h: LocalHarness, a: dict[str, Any], b: dict[str, Any]) -> None:
    first = run(h, TRAIN, a)
    assert first.status == "succeeded", first.error
    h.assert_rollout(h.deploy(deployment("deployment.yaml", **{"bake: 2s": "bake: 0s"})), "succeeded")
    second = run(h, TRAIN, b)
    assert second.status == "succeeded", second.error
    assert second.step("register")["result"] == f"{GROUP}:v2"


@contextlib.contextmanager
def ab_test_live(h: LocalHarness) -> Iterator[dict[str, Any]]:
    """Deploy challenger.yaml in the background (as `cloudml deploy` in another shell); yield once the split is live."""
    box: dict[str, Any] = {}
    spec = deployment("challenger.yaml", **{"duration: 1h": "duration: 60s"})
    thread = threading.Thread(target=lambda: box.setdefault("result", h.deploy(spec)), daemon=True)
    thread.start()
    deadline = time.time() + 30
    while time.time() < deadline:
        state = h.adapter.controller().store.load(ENDPOINT) or {}
        if state.get("status") == "in_progress" and state.get("weights", {}).get(f"{GROUP}-v2"):
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the A/B split did not go live: {state}")
    try:
        yield box
    finally:
        thread.join(60)
        assert not thread.is_alive(), "the A/B rollout did not end"


def send(h: LocalHarness, labels: Path) -> None:
    """What a user runs while the test is live: python src/ab_traffic.py (the unseen rows, 269 of them)."""
    traffic = module("ab_traffic")
    assert traffic.main(["--root", str(h.root), "--labels", str(labels), "--batch", "3"]) == 0


# -- end to end ------------------------------------------------------------------------------------
def test_the_better_challenger_wins_and_is_promoted(cloudml_local: LocalHarness, tmp_path: Path) -> None:
    serve_a_then_register_b(cloudml_local, WEAK, STRONG)
    with ab_test_live(cloudml_local) as rollout:
        send(cloudml_local, tmp_path / "labels.csv")
        analysis = run(cloudml_local, ANALYSIS, {"labels_uri": str(tmp_path / "labels.csv")})
    assert analysis.status == "succeeded", analysis.error
    m = json.loads(analysis.output_path("analyze", "metrics").read_text())
    assert m["winner"] == "B" and m["b_wins"] == 1 and m["confidence"] > 0.999
    assert m["accuracy_b"] > 0.9 and m["accuracy_b"] - m["accuracy_a"] > 0.1 and m["n_a"] + m["n_b"] == 269
    assert min(m["n_a"], m["n_b"]) > 80  # the fixed split, not everything to one side
    assert analysis.step("b_wins")["result"] == "true" and analysis.step("promote")["status"] == "succeeded"
    assert analysis.step("rollback")["status"] == "skipped"
    report = analysis.output_path("analyze", "report")
    md = (report / "ab_test.md").read_text()
    assert md.startswith("# A/B test on ab-test: B wins") and "promote B: cloudml rollout promote ab-test" in md
    assert "B wins on accuracy" in md and "confidence" in md
    doc = json.loads((report / "ab_test.json").read_text())
    assert doc["variant_a"] == f"{GROUP}-v1" and doc["variant_b"] == f"{GROUP}-v2" and doc["winner"] == "B"
    assert doc["window"]["start"] is not None and doc["test"] == "two-proportion z-test"
    cloudml_local.assert_rollout(rollout["result"], "succeeded")  # the A/B rollout ended by the promotion
    assert cloudml_local.invoke(ENDPOINT, _rows(1))["deployment"] == f"{GROUP}-v2"


def _rows(n: int) -> list[dict[str, Any]]:
    frame = module("ab_traffic").load_rows("sklearn://breast_cancer", skip=300, rows=n)
    return list(frame.drop(columns=["target"]).to_dict("records"))


def test_a_worse_challenger_loses_and_is_rolled_back(cloudml_local: LocalHarness, tmp_path: Path) -> None:
    serve_a_then_register_b(cloudml_local, STRONG, WEAK)
    with ab_test_live(cloudml_local) as rollout:
        send(cloudml_local, tmp_path / "labels.csv")
        analysis = run(cloudml_local, ANALYSIS, {"labels_uri": str(tmp_path / "labels.csv")})
    assert analysis.status == "succeeded", analysis.error
    m = json.loads(analysis.output_path("analyze", "metrics").read_text())
    assert m["winner"] == "A" and m["a_wins"] == 1 and m["accuracy_a"] > m["accuracy_b"]
    assert analysis.step("rollback")["status"] == "succeeded" and analysis.step("promote")["status"] == "skipped"
    assert "keep A: cloudml rollback ab-test" in (analysis.output_path("analyze", "report") / "ab_test.md").read_text()
    cloudml_local.assert_rollout(rollout["result"], "rolled_back")
    assert cloudml_local.invoke(ENDPOINT, _rows(1))["deployment"] == f"{GROUP}-v1"


# -- constructed captures: the verdict, and acting only on a winner --------------------------------
def capture(folder: Path, variants: dict[str, tuple[int, int]], *, key: str = "request_id") -> Path:
    """A capture file as the gateway writes it: per variant, ``(correct, total)`` answers; labels.csv beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    lines, labels = [], ["request_id,target"]
    for dep, (correct, total) in variants.items():
        for i in range(total):
            rid = f"{dep}-{i}"
            lines.append(json.dumps({"at": time.time(), "deployment": dep,
                                     "request": {"instances": [{key: rid, "x": 1.0}]},
                                     "response": {"predictions": [1 if i < correct else 0]}}))
            labels.append(f"{rid},1")
    (folder / "20261127.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "labels.csv").write_text("\n".join(labels) + "\n")
    return folder


@pytest.mark.parametrize(("variants", "winner"), [
    ({"m-v1": (80, 100), "m-v2": (95, 100)}, "B"),
    ({"m-v1": (95, 100), "m-v2": (80, 100)}, "A"),
    ({"m-v1": (90, 100), "m-v2": (91, 100)}, "none"),
])
def test_the_report_names_the_known_better_variant_or_none(cloudml_local: LocalHarness, tmp_path: Path,
                                                           variants: dict[str, tuple[int, int]], winner: str) -> None:
    c = capture(tmp_path / "c", variants)
    h = run(cloudml_local, ANALYSIS, {"capture_uri": str(c), "labels_uri": str(c / "labels.csv"), "act": False})
    assert h.status == "succeeded", h.error
    m = json.loads(h.output_path("analyze", "metrics").read_text())
    assert m["winner"] == winner
    assert h.step("promote")["status"] == h.step("rollback")["status"] == "skipped"  # act=false: report only
    md = (h.output_path("analyze", "report") / "ab_test.md").read_text()
    if winner == "none":
        assert md.startswith("# A/B test on ab-test: inconclusive") and "per variant would" in md
        assert "the test keeps running until its duration ends" in md
    else:
        assert md.startswith(f"# A/B test on ab-test: {winner} wins") and m["p_value"] < 0.05


# -- bad input -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("case", "says"), [
    ("no labels file", ["labels_uri", "does not exist", "fix: pass -p labels_uri=PATH"]),
    ("labels without the key", ["labels.csv has no column 'request_id'", "fix: pass -p key=COLUMN"]),
    ("requests without the key", ["none of the captured rows carries the key 'request_id'", "fix: send instances"]),
    ("one variant only", ["expected two variants in the capture, found 1: m-v1", "strategy ab_test"]),
    ("too few answers", ["too few labelled answers per variant: m-v1 (5), m-v2 (5), need 30", "send more traffic"]),
])
def test_bad_input_names_the_stage_and_the_fix(cloudml_local: LocalHarness, tmp_path: Path, case: str,
                                               says: list[str]) -> None:
    variants = {"m-v1": (5, 5), "m-v2": (5, 5)} if case == "too few answers" else {"m-v1": (40, 50), "m-v2": (45, 50)}
    if case == "one variant only":
        variants = {"m-v1": (40, 50)}
    c = capture(tmp_path / "c", variants, key="id" if case == "requests without the key" else "request_id")
    labels = c / "labels.csv"
    if case == "no labels file":
        labels = c / "nope.csv"
    if case == "labels without the key":
        labels.write_text(labels.read_text().replace("request_id,", "rid,", 1))
    h = run(cloudml_local, ANALYSIS, {"capture_uri": str(c), "labels_uri": str(labels)})
    assert h.status == "failed" and h.step("analyze")["status"] == "failed"
    error = h.step("analyze")["error"]
    assert "[analyze]" in error, error
    for text in says:
        assert text in error, error


def test_an_endpoint_without_capture_says_how_to_get_one(cloudml_local: LocalHarness, tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text("request_id,target\n")
    h = run(cloudml_local, ANALYSIS, {"labels_uri": str(tmp_path / "labels.csv")})
    error = h.step("analyze")["error"]
    assert "[analyze] no captured requests at" in error and "capture: {enabled: true}" in error, error


def test_an_ab_test_without_a_live_model_is_refused(cloudml_local: LocalHarness) -> None:
    assert run(cloudml_local, TRAIN, STRONG).status == "succeeded"
    with pytest.raises(cloudml.CloudMLError, match="no live model to test"):
        cloudml_local.deploy(deployment("challenger.yaml"))


# -- cloudml init ----------------------------------------------------------------------------------
def test_init_copies_a_blueprint_whose_pipelines_validate(tmp_path: Path) -> None:
    target = tmp_path / "my-ab"
    result = CliRunner().invoke(app, ["init", "--blueprint", "ab-test", str(target)])
    assert result.exit_code == 0, result.output
    for f in ("pipeline.yaml", "analysis.yaml", "deployment.yaml", "challenger.yaml", "README.md",
              "src/ab_steps.py", "src/ab_analysis.py", "src/ab_traffic.py"):
        assert (target / f).is_file(), f
    assert cloudml.validate(target / "pipeline.yaml").name == "ab-test"
    assert cloudml.validate(target / "analysis.yaml").name == "ab-test-analysis"


# -- the clouds ------------------------------------------------------------------------------------
def test_compiles_for_sagemaker_and_passes_its_validator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDML_SAGEMAKER_REGION", "eu-west-1")
    monkeypatch.setenv("CLOUDML_SAGEMAKER_ROLE_ARN", "arn:aws:iam::123456789012:role/ml")
    monkeypatch.setenv("CLOUDML_SAGEMAKER_BUCKET", "my-ml")
    assert cloudml.validate(TRAIN, target="sagemaker").name == "ab-test"
    assert cloudml.validate(ANALYSIS, target="sagemaker").name == "ab-test-analysis"
    steps = {s["Name"]: s for s in cloudml.compile(ANALYSIS, "sagemaker").document["Steps"]}
    assert steps["b_wins"]["Type"] == steps["a_wins"]["Type"] == "Condition"
    for file in ("deployment.yaml", "challenger.yaml"):
        try:  # data capture is a declared SageMaker gap today (DataCaptureConfig): it compiles once built
            assert cloudml.validate(BLUEPRINT / file, target="sagemaker").kind == "Deployment"
        except UnsupportedFeatureError as e:
            assert e.adapter == "sagemaker" and e.feature == "deploy.capture", e
    without_capture = deployment("challenger.yaml", **{"capture: {enabled: true, percent: 100}": ""})
    compiled = cloudml.compile(without_capture, "sagemaker")  # the ab_test strategy itself compiles
    assert compiled.target == "sagemaker" and compiled.document


@pytest.mark.parametrize("target", ["vertex", "azureml"])
@pytest.mark.parametrize("file", ["pipeline.yaml", "analysis.yaml", "deployment.yaml", "challenger.yaml"])
def test_compiles_for_the_other_clouds(target: str, file: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both pipelines, the deployment and the challenger (with capture) compile for Vertex AI and Azure ML."""
    monkeypatch.delenv("CLOUDML_AZUREML_ENABLE_PREVIEW_CONDITIONS", raising=False)
    compiled = cloudml.compile(BLUEPRINT / file, target)
    assert compiled.target == target and compiled.document


# -- the blueprint's own examples and README -------------------------------------------------------
@pytest.mark.parametrize("name", ["ab_steps", "ab_analysis", "ab_traffic"])
def test_the_step_modules_examples_run(name: str) -> None:
    result = doctest.testmod(module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


def test_the_readme_shows_both_current_graphs() -> None:
    from cloudml.render import to_mermaid

    readme = (BLUEPRINT / "README.md").read_text()
    for pipeline in (TRAIN, ANALYSIS):
        assert to_mermaid(cloudml.load(pipeline)) in readme, pipeline.name  # type: ignore[arg-type]
    assert readme.index(to_mermaid(cloudml.load(TRAIN))) < readme.index(  # type: ignore[arg-type]
        to_mermaid(cloudml.load(ANALYSIS)))  # type: ignore[arg-type]  # the docs test reads the first block


# -- the analysis on the clouds' own capture files ------------------------------------------------------
def _answers(n: int = 80) -> list[tuple[str, str, int]]:
    """(variant, request id, prediction): the challenger is right on every request, the live model on 2 in 3."""
    return [(v, f"{v}-{i}", 1 if v == "green" or i % 3 else 0) for v in ("blue", "green") for i in range(n)]


def _sagemaker_capture(root: Path) -> Path:
    for variant, rid, pred in _answers():
        folder = root / "ab" / variant / "2026" / "11" / "27" / "10"
        folder.mkdir(parents=True, exist_ok=True)
        rec = {"captureData": {
            "endpointInput": {"observedContentType": "application/json", "mode": "INPUT", "encoding": "JSON",
                              "data": json.dumps({"instances": [{"request_id": rid, "x": 1.0}]})},
            "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT", "encoding": "JSON",
                               "data": json.dumps({"predictions": [pred]})}},
            "eventMetadata": {"eventId": rid, "inferenceTime": "2026-11-27T10:00:00Z"}, "eventVersion": "0"}
        with open(folder / "10-00-00-000-x.jsonl", "a") as fh:
            fh.write(json.dumps(rec) + "\n")
    return root


def _azureml_capture(root: Path) -> Path:
    for variant, rid, pred in _answers():
        for coll, data in (("request", {"instances": [{"request_id": rid, "x": 1.0}]}), ("response", [pred])):
            folder = root / "ab" / variant / coll / "2026" / "11" / "27" / "10"
            folder.mkdir(parents=True, exist_ok=True)
            rec = {"specversion": "1.0", "id": f"{rid}-{coll}", "type": f"azureml.inference.{coll}",
                   "source": f"/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/"
                             f"workspaces/w/onlineEndpoints/ab/deployments/{variant}",
                   "time": "2026-11-27T10:00:00Z", "data": data, "correlationid": rid}
            with open(folder / "0.jsonl", "a") as fh:
                fh.write(json.dumps(rec) + "\n")
    return root


@pytest.mark.parametrize("writer", [_sagemaker_capture, _azureml_capture], ids=["sagemaker", "azureml"])
def test_the_analysis_reads_a_clouds_capture_files(writer: Any, tmp_path: Path) -> None:
    """Each answer's variant comes from where the cloud put it; labels join on the request key as locally."""
    capture = writer(tmp_path / "capture")
    labels = tmp_path / "labels.csv"
    labels.write_text("request_id,target\n" + "".join(f"{rid},1\n" for _, rid, _ in _answers()))
    (tmp_path / "report").mkdir()
    with contextlib.redirect_stdout(io.StringIO()):
        m = module("ab_analysis").analyze(tmp_path / "m.json", tmp_path / "report", "ab", str(labels),
                                          capture_uri=str(capture))
    assert (m["winner"], m["n_a"], m["n_b"], m["accuracy_b"]) == ("B", 80.0, 80.0, 1.0)
    assert round(m["accuracy_a"], 3) == 0.662
    assert "blue" in (tmp_path / "report" / "ab_test.md").read_text()
