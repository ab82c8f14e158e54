"""Tuning steps on Vertex AI: a HyperparameterTuningJob launched as GCPC's HyperparameterTuningJobRunOp does,
then the best trial's outputs copied into the step's outputs.

Checked here: the IR passes the strict validator (kfp-pipeline-spec protobuf + reference checks); the launcher
task has GCPC's image, command and arguments; its payload is a GAPIC ``HyperparameterTuningJob`` (parsed by
aiplatform's own types), with the study spec mapped per dimension and strategy; the payload goes through the
real ``JobServiceClient`` to the fake, which enforces the API's rules; a trial runs for real (TRIAL, the step's
bundle, cloudml's runtime, the hypertune report); and the best-trial task picks and copies the right trial's
outputs from the job the fake returns.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cloudml
from cloudml.adapters.vertex.bundles import build_bundle
from cloudml.adapters.vertex.compiler import compile_ir
from cloudml.adapters.vertex.in_job import best_trial, run_best_trial
from cloudml.adapters.vertex.tuning import GCPC_IMAGE, GCPC_LAUNCHER, TRIAL, study_spec
from cloudml.adapters.vertex.validate import validate_ir
from cloudml.config import VertexSettings
from cloudml.errors import CompileError
from cloudml.spec.pipeline import Pipeline
from cloudml.spec.tuning import Tuning
from tests.conftest import REPO
from tests.fakes.vertex import VertexFake

BLUEPRINT = REPO / "blueprints" / "hyperparameter-tuning" / "pipeline.yaml"
ROOT = "gs://cloudml-test/root"
SETTINGS = VertexSettings(project="my-project-42", location="europe-west4", pipeline_root=ROOT)
RUNTIME_IMAGE = "europe-docker.pkg.dev/my-project-42/ml/cloudml-gcp:1"
JOB_SOURCE = '''import json

def fit(train, lr: float, depth: int, kernel: str, model, metrics):
    (model / "model.txt").write_text(f"{lr} {depth} {kernel} " + (train / "rows.csv").read_text())
    return {"auc": round(lr * depth, 6), "per": {"f1": 0.5}}
'''


def pipeline(tmp_path: Path, strategy: str = "random", **tuning: Any) -> Pipeline:
    (tmp_path / "src").mkdir(parents=True, exist_ok=True)
    (tmp_path / "src" / "job.py").write_text(JOB_SOURCE)
    spec = {
        "apiVersion": "cloudml/v1", "kind": "Pipeline", "name": "tune-demo",
        "parameters": {"raw": {"type": "string", "default": "gs://data/raw.csv"}, "rows": {"type": "int", "default": 5}},
        "backend_options": {"vertex": {"runtime_image": RUNTIME_IMAGE}},
        "defaults": {"framework": "sklearn==1.6", "code": "src"},
        "steps": [
            {"name": "prep", "command": "python prep.py {{inputs.raw}} {{params.rows}} {{outputs.train}}",
             "inputs": {"raw": "{{params.raw}}"}, "outputs": {"train": "dataset"}},
            {"name": "tune", "kind": "training", "python": "job:fit", "inputs": {"train": "prep.outputs.train"},
             "outputs": {"model": "model", "metrics": "metrics"}, "timeout": "20m",
             "resources": {"cpu": 8, "memory": "16Gi"},
             "tuning": {"search_space": {
                 "lr": {"type": "float", "min": 0.001, "max": 0.1, "scale": "log"},
                 "depth": {"type": "int", "min": 2, "max": 8},
                 "kernel": {"type": "categorical", "values": ["rbf", "linear"]}},
                 "objective": {"metric": "metrics.auc", "goal": "maximize"}, "strategy": strategy,
                 "max_trials": 6, "parallel_trials": 2, "seed": 7, **tuning}},
            {"name": "evaluate", "command": "python ev.py {{inputs.model}} {{outputs.m}}",
             "inputs": {"model": "tune.outputs.model"}, "outputs": {"m": "metrics"}},
            {"name": "gate", "condition": 'tune.outputs.metrics["auc"] > 0.1', "then": ["publish"]},
            {"name": "publish", "command": "python pub.py {{inputs.model}}", "inputs": {"model": "tune.outputs.model"}},
        ]}
    model = cloudml.loads(json.dumps(spec))
    assert isinstance(model, Pipeline)
    return model


def executor(ir: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(ir["deploymentSpec"]["executors"][f"exec-{name}"]["container"])


def payload_of(ir: dict[str, Any], **values: str) -> dict[str, Any]:
    """The launcher's --payload with KFP's placeholders filled in as the backend would (``values`` by name)."""
    args = executor(ir, "tune-hpt-job")["args"]
    text = args[args.index("--payload") + 1]
    text = re.sub(r"\{\{\$\.inputs\.(?:parameters|artifacts)\['([^']+)'\](?:\.uri)?\}\}",
                  lambda m: values.get(m[1], f"gs://b/{m[1]}"), text)
    return dict(json.loads(text.replace("{{$.pipeline_job_uuid}}", "job-uuid-1")))


# -- the compiled IR ----------------------------------------------------------------------------------------
def test_a_tuning_step_compiles_to_the_tuning_job_then_the_best_trial(tmp_path: Path) -> None:
    ir = compile_ir(pipeline(tmp_path), SETTINGS, tmp_path)
    assert validate_ir(ir) == []
    tasks = ir["root"]["dag"]["tasks"]
    job, pick = tasks["tune-hpt-job"], tasks["tune"]
    assert job["dependentTasks"] == ["prep"]
    assert job["inputs"]["artifacts"] == {"train": {"taskOutputArtifact": {"producerTask": "prep",
                                                                           "outputArtifactKey": "train"}}}
    assert pick["dependentTasks"] == ["tune-hpt-job"]
    assert pick["inputs"]["parameters"]["gcp_resources"] == {
        "taskOutputParameter": {"producerTask": "tune-hpt-job", "outputParameterKey": "gcp_resources"}}
    # downstream steps read the step's outputs from the best-trial task, like from any step
    assert tasks["evaluate"]["inputs"]["artifacts"]["model"] == {
        "taskOutputArtifact": {"producerTask": "tune", "outputArtifactKey": "model"}}
    assert "tune" in tasks["condition-gate-then"]["dependentTasks"]
    comp = ir["components"]["comp-tune"]
    assert set(comp["outputDefinitions"]["artifacts"]) == {"model", "metrics"}
    assert comp["outputDefinitions"]["parameters"] == {"metrics__auc": {"parameterType": "NUMBER_DOUBLE"}}


def test_the_launcher_is_gcpc_s_hyperparameter_tuning_job_op(tmp_path: Path) -> None:
    """As GCPC 2.22.0's HyperparameterTuningJobRunOp compiles with kfp 2.17.3 (image, command, flag names)."""
    ir = compile_ir(pipeline(tmp_path), SETTINGS, tmp_path)
    c = executor(ir, "tune-hpt-job")
    assert c["image"] == GCPC_IMAGE == "gcr.io/ml-pipeline/google-cloud-pipeline-components:2.22.0"
    assert c["command"] == GCPC_LAUNCHER == [
        "python3", "-u", "-m", "google_cloud_pipeline_components.container.v1.hyperparameter_tuning_job.launcher"]
    args = c["args"]
    assert args[:3] == ["--type", "HyperparameterTuningJob", "--payload"]
    assert args[4:] == ["--project", "{{$.pipeline_google_cloud_project_id}}",
                        "--location", "{{$.pipeline_google_cloud_location}}",
                        "--gcp_resources", "{{$.outputs.parameters['gcp_resources'].output_file}}"]
    assert ir["components"]["comp-tune-hpt-job"]["outputDefinitions"] == {
        "parameters": {"gcp_resources": {"parameterType": "STRING"}}}


def test_the_payload_is_a_gapic_hyperparameter_tuning_job(tmp_path: Path) -> None:
    from google.cloud import aiplatform_v1

    ir = compile_ir(pipeline(tmp_path), SETTINGS, tmp_path)
    payload = payload_of(ir, train="gs://b/prep/train")
    job = aiplatform_v1.HyperparameterTuningJob(payload)  # what the launcher's create call builds from it
    assert job.max_trial_count == 6 and job.parallel_trial_count == 2 and job.display_name == "tune-demo-tune"
    assert job.study_spec.algorithm == aiplatform_v1.StudySpec.Algorithm.RANDOM_SEARCH
    spec = job.trial_job_spec
    assert spec.base_output_directory.output_uri_prefix == f"{ROOT}/cloudml/tuning/job-uuid-1/tune"
    assert spec.scheduling.timeout.total_seconds() == 1200
    pool = spec.worker_pool_specs[0]
    assert pool.machine_spec.machine_type == "n1-standard-8" and pool.replica_count == 1
    assert pool.container_spec.image_uri == "us-docker.pkg.dev/vertex-ai/training/sklearn-cpu.1-6:latest"
    command = list(pool.container_spec.command)
    assert command[:3] == ["python3", "-c", TRIAL] and command[3].startswith(f"{ROOT}/cloudml/code/")
    assert command[4:9] == ["code", "metrics.auc", "metrics", "lr,depth,kernel", "model,metrics"]
    assert "--param=lr=@@cloudml:tuning:lr@@" in command and "--input=train=@@cloudml:input:train@@" in command
    assert {e.name: e.value for e in pool.container_spec.env} == {"CLOUDML_STEP": "tune", "CLOUDML_BACKEND": "vertex"}
    assert "seed" not in json.dumps(payload)  # a Vertex study has no seed (docs/adapters/vertex.md)


@pytest.mark.parametrize(("dimension", "strategy", "expected"), [
    ({"type": "float", "min": 0.001, "max": 0.1, "scale": "log"}, "random",
     {"double_value_spec": {"min_value": 0.001, "max_value": 0.1}, "scale_type": "UNIT_LOG_SCALE"}),
    ({"type": "float", "min": 0, "max": 1}, "bayesian",
     {"double_value_spec": {"min_value": 0.0, "max_value": 1.0}, "scale_type": "UNIT_LINEAR_SCALE"}),
    ({"type": "int", "min": 10, "max": 200, "scale": "log"}, "bayesian",
     {"integer_value_spec": {"min_value": 10, "max_value": 200}, "scale_type": "UNIT_LOG_SCALE"}),
    ({"type": "int", "min": 2, "max": 5}, "grid",
     {"integer_value_spec": {"min_value": 2, "max_value": 5}, "scale_type": "UNIT_LINEAR_SCALE"}),
    ({"type": "int", "min": 2, "max": 8, "grid_step": 3}, "grid",
     {"discrete_value_spec": {"values": [2.0, 5.0, 8.0]}, "scale_type": "UNIT_LINEAR_SCALE"}),
    ({"type": "float", "min": 0, "max": 1, "grid_step": 0.5}, "grid",
     {"discrete_value_spec": {"values": [0.0, 0.5, 1.0]}, "scale_type": "UNIT_LINEAR_SCALE"}),
    ({"type": "categorical", "values": ["rbf", 3, 0.5, False]}, "grid",
     {"categorical_value_spec": {"values": ["rbf", "3", "0.5", "false"]}}),
])
def test_the_study_spec_maps_each_dimension(dimension: dict[str, Any], strategy: str, expected: dict[str, Any]) -> None:
    from google.cloud import aiplatform_v1

    t = Tuning.model_validate({"search_space": {"x": dimension}, "objective": {"metric": "m.loss", "goal": "minimize"},
                               "strategy": strategy})
    spec = study_spec(t)
    assert spec["parameters"] == [{"parameter_id": "x", **expected}]
    assert spec["metrics"] == [{"metric_id": "m.loss", "goal": "MINIMIZE"}]
    assert spec["algorithm"] == {"random": "RANDOM_SEARCH", "grid": "GRID_SEARCH",
                                 "bayesian": "ALGORITHM_UNSPECIFIED"}[strategy]
    aiplatform_v1.StudySpec(spec)  # aiplatform's own type takes it as it is


def test_a_grid_counts_its_points_as_max_trial_count(tmp_path: Path) -> None:
    p = pipeline(tmp_path, "grid", max_trials=None, search_space={
        "lr": {"type": "float", "min": 0.1, "max": 0.3, "grid_step": 0.1},
        "depth": {"type": "int", "min": 2, "max": 3}, "kernel": {"type": "categorical", "values": ["rbf"]}})
    payload = payload_of(compile_ir(p, SETTINGS, tmp_path))
    assert payload["max_trial_count"] == 6 and payload["study_spec"]["algorithm"] == "GRID_SEARCH"


def test_without_a_runtime_image_the_step_is_refused_with_the_fix(tmp_path: Path) -> None:
    p = pipeline(tmp_path)
    p = p.model_copy(update={"backend_options": {}})
    with pytest.raises(CompileError) as info:
        compile_ir(p, SETTINGS, tmp_path)
    assert "step 'tune'" in str(info.value) and "runtime_image" in (info.value.hint or "")


def test_a_step_named_like_the_generated_job_task_is_refused(tmp_path: Path) -> None:
    p = pipeline(tmp_path)
    steps = [*p.steps, p.steps[0].model_copy(update={"name": "tune-hpt-job"})]
    with pytest.raises(CompileError, match="tuning job of step 'tune'") as info:
        compile_ir(p.model_copy(update={"steps": steps}), SETTINGS, tmp_path)
    assert info.value.hint == "rename step 'tune-hpt-job'"


def test_the_blueprint_compiles_and_validates_for_vertex(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDML_VERTEX_PIPELINE_ROOT", ROOT)
    compiled = cloudml.compile(BLUEPRINT, "vertex")
    assert validate_ir(compiled.document) == []
    assert cloudml.validate(BLUEPRINT, target="vertex").name == "hyperparameter-tuning"
    tasks = compiled.document["root"]["dag"]["tasks"]
    assert {"tune", "tune-hpt-job"} <= set(tasks)
    spec = payload_of(compiled.document)["study_spec"]
    assert spec["algorithm"] == "ALGORITHM_UNSPECIFIED" and spec["metrics"] == [
        {"metric_id": "metrics.score", "goal": "MAXIMIZE"}]
    assert {p["parameter_id"]: p.get("scale_type") for p in spec["parameters"]} == {
        "estimator": None, "n_estimators": "UNIT_LOG_SCALE", "max_depth": "UNIT_LINEAR_SCALE",
        "learning_rate": "UNIT_LOG_SCALE", "reg_c": "UNIT_LOG_SCALE"}


# -- a trial, run for real ------------------------------------------------------------------------------------
def test_a_trial_runs_the_step_with_the_searched_values_and_reports_the_objective(tmp_path: Path) -> None:
    """TRIAL as Vertex starts it: the bundle, an upstream artifact and the trial folder under a local 'gcs' mount."""
    from cloudml.codebundle import step_bundle

    p = pipeline(tmp_path / "spec")
    ir = compile_ir(p, SETTINGS, tmp_path / "spec")
    gcs = tmp_path / "gcs"
    command = payload_of(ir, train="gs://b/prep/train")["trial_job_spec"]["worker_pool_specs"][0]["container_spec"]["command"]
    bundle = gcs / command[3][len("gs://"):]
    bundle.parent.mkdir(parents=True)
    tune = p.effective(next(s for s in p.task_steps() if s.name == "tune"))
    bundle.write_bytes(build_bundle(step_bundle(tmp_path / "spec", tune)))
    (gcs / "b" / "prep" / "train").mkdir(parents=True)
    (gcs / "b" / "prep" / "train" / "rows.csv").write_text("a,b")
    argv = [sys.executable if a == "python3" else a for a in command]
    env = {"PATH": "/usr/bin:/bin", "CLOUDML_GCS_MOUNT": str(gcs), "AIP_MODEL_DIR": "gs://b/out/7/model/",
           "CLOUD_ML_HP_METRIC_FILE": str(tmp_path / "hp.metrics"), "CLOUD_ML_TRIAL_ID": "7"}
    proc = subprocess.run([*argv, "--lr=0.05", "--depth", "4", "--kernel=rbf"], env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    out = gcs / "b" / "out" / "7" / "cloudml" / "outputs"
    assert (out / "model" / "model.txt").read_text() == "0.05 4 rbf a,b"
    assert json.loads((out / "metrics").read_text())["auc"] == 0.2
    line = json.loads((tmp_path / "hp.metrics").read_text().splitlines()[-1])
    assert line["metrics.auc"] == "0.2" and line["trial"] == "7"  # cloudml-hypertune's format, the study's metric_id
    missing = subprocess.run([*argv, "--lr=0.05"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert missing.returncode != 0 and "no value for depth,kernel" in missing.stderr


# -- the job through the real client, the fake's rules, the best trial --------------------------------------------
@pytest.fixture(scope="module")
def fake() -> Iterator[VertexFake]:
    with VertexFake("my-project-42", "europe-west4") as f:
        yield f


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "my-project-42")


def job_client(fake: VertexFake) -> Any:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform_v1

    return aiplatform_v1.JobServiceClient(transport="rest", credentials=AnonymousCredentials(),
                                          client_options={"api_endpoint": fake.url})


def launch(fake: VertexFake, payload: dict[str, Any]) -> str:
    """What GCPC's launcher does: create the job from the payload, poll it to the end, write gcp_resources."""
    from google.cloud import aiplatform_v1

    client = job_client(fake)
    job = client.create_hyperparameter_tuning_job(parent="projects/my-project-42/locations/europe-west4",
                                                  hyperparameter_tuning_job=payload)
    for _ in range(5):
        got = client.get_hyperparameter_tuning_job(name=job.name)
        if got.state == aiplatform_v1.JobState.JOB_STATE_SUCCEEDED:
            break
    assert got.state == aiplatform_v1.JobState.JOB_STATE_SUCCEEDED
    uri = f"https://europe-west4-aiplatform.googleapis.com/v1/{job.name}"
    return json.dumps({"resources": [{"resourceType": "HyperparameterTuningJob", "resourceUri": uri}]})


def test_the_fake_takes_the_compiled_payload_and_refuses_what_vertex_refuses(fake: VertexFake, tmp_path: Path) -> None:
    from google.api_core import exceptions as gexc

    payload = payload_of(compile_ir(pipeline(tmp_path), SETTINGS, tmp_path))
    launch(fake, payload)
    created = list(fake.tuning.jobs.values())[-1]
    assert created["studySpec"]["metrics"][0]["metricId"] == "metrics.auc" and created["maxTrialCount"] == 6
    assert len(created["trials"]) == 6
    bad = json.loads(json.dumps(payload))
    bad["study_spec"]["algorithm"] = "GRID_SEARCH"  # a DOUBLE parameter in a grid
    with pytest.raises(gexc.BadRequest, match="GRID_SEARCH takes INTEGER, CATEGORICAL and DISCRETE"):
        job_client(fake).create_hyperparameter_tuning_job(
            parent="projects/my-project-42/locations/europe-west4", hyperparameter_tuning_job=bad)
    bad = json.loads(json.dumps(payload))
    bad["study_spec"]["parameters"][0]["double_value_spec"]["min_value"] = 0.0  # log scale from 0
    with pytest.raises(gexc.BadRequest, match="a log scale needs min_value above 0"):
        job_client(fake).create_hyperparameter_tuning_job(
            parent="projects/my-project-42/locations/europe-west4", hyperparameter_tuning_job=bad)
    with pytest.raises(gexc.NotFound):
        job_client(fake).get_hyperparameter_tuning_job(
            name="projects/my-project-42/locations/europe-west4/hyperparameterTuningJobs/1")


def test_the_best_trial_task_copies_the_best_succeeded_trial_s_outputs(fake: VertexFake, tmp_path: Path) -> None:
    ir = compile_ir(pipeline(tmp_path), SETTINGS, tmp_path)
    payload = payload_of(ir)
    fake.tuning.outcomes = [("SUCCEEDED", 0.71), ("INFEASIBLE", None), ("SUCCEEDED", 0.93), ("SUCCEEDED", 0.93),
                            ("SUCCEEDED", 0.52), ("SUCCEEDED", None)]
    try:
        resources = launch(fake, payload)
    finally:
        fake.tuning.outcomes = None
    gcs = tmp_path / "gcs"
    base = gcs / payload["trial_job_spec"]["base_output_directory"]["output_uri_prefix"][len("gs://"):]
    for trial in range(1, 7):
        out = base / str(trial) / "cloudml" / "outputs"
        (out / "model").mkdir(parents=True)
        (out / "model" / "model.txt").write_text(f"trial {trial}")
        (out / "metrics").write_text(json.dumps({"auc": trial / 10}))
    # the best-trial executor's own argv, placeholders filled as KFP would
    c = executor(ir, "tune")
    argv = [*c["command"], *c["args"]]
    assert argv[:3] == ["python3", "-c", argv[2]] and "cloudml.adapters.vertex.in_job" in argv
    call = argv[argv.index("-m") + 2:]
    call = [a.replace("{{$.inputs.parameters['gcp_resources']}}", resources)
            .replace("{{$.outputs.artifacts['model'].path}}", str(tmp_path / "kfp" / "model"))
            .replace("{{$.outputs.artifacts['metrics'].path}}", str(tmp_path / "kfp" / "metrics")) for a in call]
    assert run_best_trial([*call, "--api-endpoint", fake.url, "--gcs-mount", str(gcs)]) == 0
    assert (tmp_path / "kfp" / "model" / "model.txt").read_text() == "trial 3"  # 0.93; the earlier of a tie
    metrics = json.loads((tmp_path / "kfp" / "metrics").read_text())
    assert metrics["auc"] == 0.3
    assert metrics["tuning"]["best_trial"] == "3" and metrics["tuning"]["best_objective"] == 0.93
    assert metrics["tuning"]["trials"] == 6 and metrics["tuning"]["succeeded_trials"] == 4
    assert set(metrics["tuning"]["params"]) == {"lr", "depth", "kernel"}


def test_no_usable_trial_or_a_missing_output_fails_the_task_with_the_reason(capsys: pytest.CaptureFixture[str],
                                                                           tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDML_STEP", "tune")  # the compiled task sets it
    resources = json.dumps({"resources": [{"resourceType": "HyperparameterTuningJob", "resourceUri":
                                           "https://l-aiplatform.googleapis.com/v1/projects/p/locations/l/"
                                           "hyperparameterTuningJobs/9"}]})
    job = {"trial_job_spec": {"base_output_directory": {"output_uri_prefix": "gs://b/o"}},
           "trials": [{"id": "1", "state": "INFEASIBLE"}]}
    argv = ["--best-trial", resources, "--objective", "m.auc", "--goal", "maximize", f"--output=model={tmp_path}/m"]
    assert run_best_trial(argv, job=job) == 1
    assert "step 'tune': no trial of projects/p/locations/l/hyperparameterTuningJobs/9 succeeded" in \
        capsys.readouterr().err
    job["trials"] = [{"id": "1", "state": "SUCCEEDED", "final_measurement": {"metrics": [
        {"metric_id": "m.auc", "value": 0.5}]}}]
    assert run_best_trial([*argv, "--gcs-mount", str(tmp_path)], job=job) == 1
    assert "wrote no output 'model'" in capsys.readouterr().err
    assert run_best_trial(["--best-trial", "{}", "--objective", "m.auc", "--goal", "maximize"]) == 2


def test_the_picker_minimises_and_skips_non_finite_objectives() -> None:
    def trial(i: str, v: Any, state: str = "SUCCEEDED") -> dict[str, Any]:
        return {"id": i, "state": state, "final_measurement": {"metrics": [{"metric_id": "m.loss", "value": v}]}}

    job = {"trials": [trial("1", float("nan")), trial("2", 0.4), trial("3", 0.1, "INFEASIBLE"), trial("4", 0.2)]}
    best = best_trial(job, "m.loss", "minimize")
    assert best is not None and best["id"] == "4"
    assert best_trial({"trials": []}, "m.loss", "minimize") is None


def test_a_run_uploads_the_tuning_step_s_bundle_and_the_fake_takes_the_job(fake: VertexFake, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Through VertexAdapter.run: the IR passes the fake's checks, and the trial's bundle is where TRIAL reads it."""
    from google.auth.credentials import AnonymousCredentials

    from cloudml.adapters.vertex import VertexAdapter
    from cloudml.adapters.vertex.bundles import members
    from cloudml.adapters.vertex.client import VertexClient

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake.url)
    a = VertexAdapter(VertexSettings(project="my-project-42", location="europe-west4", pipeline_root=ROOT,
                                     service_account="runner@my-project-42.iam.gserviceaccount.com",
                                     api_endpoint=fake.url))
    a._client = VertexClient(a.settings, credentials=AnonymousCredentials(), retry_delay=0.01)
    run = a.run(pipeline(tmp_path), spec_dir=str(tmp_path))
    sent = fake.job(run.id).body["pipelineSpec"]
    spec = payload_of(sent)["trial_job_spec"]
    assert spec["service_account"] == "runner@my-project-42.iam.gserviceaccount.com"  # trials run as the runs do
    command = spec["worker_pool_specs"][0]["container_spec"]["command"]
    assert set(members(fake.objects[command[3]])) == {"job.py", "cloudml_runtime.py"}
    assert {"tune", "tune-hpt-job"} <= set(sent["root"]["dag"]["tasks"])


def test_a_command_trial_without_code_runs_in_the_image_s_working_directory(tmp_path: Path) -> None:
    """No code folder: the bundle holds only the runtime (it reports the objective); the command keeps its cwd."""
    from cloudml.codebundle import step_bundle

    write = "import json,os,sys; json.dump({'v': float(sys.argv[1]) * 2, 'cwd': os.getcwd()}, open(sys.argv[2], 'w'))"
    model = cloudml.loads(json.dumps({
        "apiVersion": "cloudml/v1", "kind": "Pipeline", "name": "cmd-tune",
        "backend_options": {"vertex": {"runtime_image": RUNTIME_IMAGE}},
        "steps": [{"name": "t", "image": "python:3.11-slim", "command": ["python3", "-c", write, "{{tuning.x}}",
                                                                         "{{outputs.m}}"], "outputs": {"m": "metrics"},
                   "tuning": {"search_space": {"x": {"type": "categorical", "values": [1, 2]}},
                              "objective": {"metric": "m.v", "goal": "minimize"}, "strategy": "grid"}}]}))
    assert isinstance(model, Pipeline)
    ir = compile_ir(model, SETTINGS, tmp_path)
    assert validate_ir(ir) == []
    args = executor(ir, "t-hpt-job")["args"]
    command = json.loads(args[args.index("--payload") + 1].replace("{{$.pipeline_job_uuid}}", "u"))[
        "trial_job_spec"]["worker_pool_specs"][0]["container_spec"]["command"]
    assert command[4] == "image"
    gcs = tmp_path / "gcs"
    bundle = gcs / command[3][len("gs://"):]
    bundle.parent.mkdir(parents=True)
    bundle.write_bytes(build_bundle(step_bundle(tmp_path, model.task_steps()[0])))
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    env = {"PATH": "/usr/bin:/bin", "CLOUDML_GCS_MOUNT": str(gcs), "AIP_MODEL_DIR": "gs://b/o/2/model",
           "CLOUD_ML_HP_METRIC_FILE": str(tmp_path / "hp.metrics")}
    argv = [sys.executable if a == "python3" else a for a in command]
    proc = subprocess.run([*argv, "--x=2"], env=env, cwd=workdir, capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    written = json.loads((gcs / "b" / "o" / "2" / "cloudml" / "outputs" / "m").read_text())
    assert written == {"v": 4.0, "cwd": str(workdir)}
    assert json.loads((tmp_path / "hp.metrics").read_text())["m.v"] == "4.0"


def test_failed_trials_are_tolerated_until_every_trial_failed(fake: VertexFake, tmp_path: Path) -> None:
    from google.cloud import aiplatform_v1

    payload = payload_of(compile_ir(pipeline(tmp_path), SETTINGS, tmp_path))
    assert payload["max_failed_trial_count"] == payload["max_trial_count"] == 6
    client = job_client(fake)
    fake.tuning.outcomes = [("INFEASIBLE", None)] * 6
    try:
        job = client.create_hyperparameter_tuning_job(parent="projects/my-project-42/locations/europe-west4",
                                                      hyperparameter_tuning_job=payload)
        for _ in range(3):
            got = client.get_hyperparameter_tuning_job(name=job.name)
    finally:
        fake.tuning.outcomes = None
    assert got.state == aiplatform_v1.JobState.JOB_STATE_FAILED and "6 trials failed" in got.error.message


def test_a_grid_dimension_beyond_a_discrete_parameter_s_limit_is_refused_by_name(tmp_path: Path) -> None:
    from cloudml.errors import UnsupportedFeatureError

    p = pipeline(tmp_path, "grid", max_trials=None, search_space={
        "lr": {"type": "float", "min": 0, "max": 1, "grid_step": 0.0005}})
    with pytest.raises(UnsupportedFeatureError) as info:
        compile_ir(p, SETTINGS, tmp_path)
    e = info.value
    assert (e.adapter, e.step, e.feature) == ("vertex", "tune", "step.tuning") and "2001 grid points" in str(e)
    assert "grid_step of 'lr'" in (e.hint or "")
