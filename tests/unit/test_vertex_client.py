"""The Vertex AI client and adapter (runs) against the Vertex fake.

The real google-cloud-aiplatform SDK talks REST over HTTP to tests/fakes/vertex.py on 127.0.0.1
(CONVENTIONS rule 7); Cloud Storage calls the SDK makes go there too (STORAGE_EMULATOR_HOST), and the
metadata server is pointed at a dead loopback port. Nothing reaches Google.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import cloudml
from cloudml.adapters.vertex import VertexAdapter
from cloudml.adapters.vertex.client import VertexClient, VertexRun, translate, translate_code
from cloudml.config import VertexSettings
from cloudml.errors import (
    BackendValidationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    SpecError,
    ThrottlingError,
)
from tests.conformance.cases import gcs_reference_pipeline
from tests.fakes.vertex import VertexFake

PROJECT, LOCATION = "test-proj", "us-central1"
ROOT = "gs://cloudml-test/root"
POLL = 0.01


@pytest.fixture(scope="module")
def fake() -> Iterator[VertexFake]:
    with VertexFake(PROJECT, LOCATION) as server:
        yield server


@pytest.fixture(autouse=True)
def _offline_env(fake: VertexFake, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake.url)
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    fake.faults.clear()
    fake.paused, fake.advance_per_get = False, 1
    yield
    fake.faults.clear()
    fake.paused, fake.advance_per_get = False, 1


def settings(fake: VertexFake) -> VertexSettings:
    return VertexSettings(project=PROJECT, location=LOCATION, pipeline_root=ROOT,
                          service_account="runner@test-proj.iam.gserviceaccount.com", api_endpoint=fake.url)


def make_client(fake: VertexFake) -> VertexClient:
    from google.auth.credentials import AnonymousCredentials

    return VertexClient(settings(fake), credentials=AnonymousCredentials(), retry_delay=0.01)


def adapter(fake: VertexFake) -> VertexAdapter:
    from google.auth.credentials import AnonymousCredentials

    a = VertexAdapter(settings(fake))
    a._client = VertexClient(a.settings, credentials=AnonymousCredentials(), retry_delay=0.01)
    return a


def reference_ir() -> dict[str, Any]:
    return dict(cloudml.compile(gcs_reference_pipeline(), "vertex").document)


def job_id(run: VertexRun) -> str:
    return run.id.rsplit("/", 1)[-1]


def test_submit_runs_to_success_and_parameters_reach_the_job(fake: VertexFake) -> None:
    run = make_client(fake).submit(reference_ir(), {"n_estimators": 50, "min_auc": 0.75}, labels={"team": "ml"})
    assert run.id.startswith(f"projects/{PROJECT}/locations/{LOCATION}/pipelineJobs/gcs-reference-")
    assert run.wait(timeout=30, poll=POLL) == "succeeded"
    stored = fake.job(job_id(run))
    assert stored.parameter_values == {"n_estimators": 50.0, "min_auc": 0.75}  # integers travel as doubles
    assert isinstance(stored.parameter_values["n_estimators"], float)
    assert stored.body["runtimeConfig"]["gcsOutputDirectory"] == ROOT
    assert stored.body["serviceAccount"] == "runner@test-proj.iam.gserviceaccount.com"
    assert stored.body["labels"]["team"] == "ml"
    steps = {s["name"]: s["status"] for s in run.steps}
    assert {"prep", "train", "evaluate", "publish"} <= set(steps) and set(steps.values()) == {"succeeded"}
    assert run.error is None


def test_a_failed_job_names_the_failed_task(fake: VertexFake) -> None:
    fake.fail_next("train", "The replica workerpool0-0 exited with a non-zero status of 2.")
    run = make_client(fake).submit(reference_ir())
    assert run.wait(timeout=30, poll=POLL) == "failed"
    assert run.error is not None and "step 'train' failed" in run.error and "status of 2" in run.error
    states = {s["name"]: s["status"] for s in run.steps}
    assert states["prep"] == "succeeded" and states["train"] == "failed" and states["evaluate"] == "skipped"


def test_cancel_a_running_job_then_cancel_again_is_refused(fake: VertexFake) -> None:
    client = make_client(fake)
    run = client.submit(reference_ir())
    fake.paused = True
    run.cancel()
    assert fake.job(job_id(run)).state == "PIPELINE_STATE_CANCELLING"
    fake.paused = False
    assert run.wait(timeout=30, poll=POLL) == "cancelled"
    assert {s["status"] for s in run.steps} <= {"succeeded", "cancelled"}
    with pytest.raises(ConflictError) as info:
        run.cancel()
    assert info.value.vendor_code == "FAILED_PRECONDITION"


def test_an_unknown_run_is_not_found_with_a_hint(fake: VertexFake) -> None:
    with pytest.raises(NotFoundError) as info:
        make_client(fake).get_run("no-such-job")
    assert "no-such-job" in str(info.value) and info.value.backend == "vertex"
    assert info.value.hint and "vertex.project" in info.value.hint


def test_throttling_is_retried_until_the_submit_lands(fake: VertexFake) -> None:
    fake.inject(429, times=2)
    run = make_client(fake).submit(reference_ir())
    assert not fake.faults  # both 429s were answered and retried past
    assert run.wait(timeout=30, poll=POLL) == "succeeded"


def test_throttling_that_does_not_end_surfaces_as_throttling(fake: VertexFake) -> None:
    from google.auth.credentials import AnonymousCredentials

    fake.inject(429, times=3)
    client = VertexClient(settings(fake), credentials=AnonymousCredentials(), max_attempts=2, retry_delay=0.01)
    with pytest.raises(ThrottlingError) as info:
        client.submit(reference_ir())
    assert info.value.retryable and "quota" in (info.value.hint or "").lower()


def test_permission_denied_is_clear(fake: VertexFake) -> None:
    fake.inject(403)
    with pytest.raises(PermissionDeniedError) as info:
        make_client(fake).submit(reference_ir())
    assert "aiplatform.pipelineJobs.create" in str(info.value)
    assert info.value.hint and "roles/aiplatform.user" in info.value.hint


def test_invalid_parameters_are_refused_before_any_request(fake: VertexFake) -> None:
    a = adapter(fake)

    def writes() -> list[tuple[str, str, int]]:  # an earlier test's job poller may still GET in the background
        return [r for r in fake.requests if r[0] != "GET"]

    before = len(writes())
    with pytest.raises(SpecError, match="unknown parameter 'n_trees'"):
        a.run(gcs_reference_pipeline(), {"n_trees": 5})
    with pytest.raises(SpecError):
        a.run(gcs_reference_pipeline(), {"n_estimators": "many"})
    with pytest.raises(BackendValidationError, match="n_trees"):  # the SDK's own check, also before a request
        make_client(fake).submit(reference_ir(), {"n_trees": 5})
    assert len(writes()) == before


def test_the_fake_rejects_an_invalid_spec_with_a_google_error(fake: VertexFake) -> None:
    ir = reference_ir()
    ir["root"]["dag"]["tasks"]["train"]["componentRef"]["name"] = "comp-missing"
    with pytest.raises(BackendValidationError) as info:
        make_client(fake).submit(ir)
    assert info.value.vendor_code == "INVALID_ARGUMENT" and "comp-missing" in str(info.value)


def test_adapter_run_end_to_end(fake: VertexFake) -> None:
    a = adapter(fake)
    run = a.run(gcs_reference_pipeline(), {"n_estimators": "300"}, wait=True, poll=POLL, timeout=30)
    assert run.status == "succeeded"
    assert fake.job(job_id(run)).parameter_values == {"n_estimators": 300.0, "min_auc": 0.8}
    again = a.get_run(job_id(run))
    assert again.id == run.id and again.status == "succeeded"
    assert again.step("publish")["status"] == "succeeded"


def test_error_translation_table() -> None:
    from google.api_core import exceptions as gexc

    assert translate_code("UNAUTHENTICATED") is PermissionDeniedError
    assert translate_code("ALREADY_EXISTS") is ConflictError
    assert translate_code("502").__name__ == "ServiceUnavailableError"
    cases = {gexc.NotFound: NotFoundError, gexc.PermissionDenied: PermissionDeniedError,
             gexc.ResourceExhausted: ThrottlingError, gexc.TooManyRequests: ThrottlingError,
             gexc.InvalidArgument: BackendValidationError, gexc.Unauthenticated: PermissionDeniedError,
             gexc.FailedPrecondition: ConflictError}
    for vendor, ours in cases.items():
        err = translate(vendor("x"), "op")
        assert type(err) is ours and err.backend == "vertex" and err.hint, vendor


# Vendor errors that stay the generic BackendError on purpose: no code (bases, resumable-upload
# errors of google-resumable-media), redirects the SDK follows itself, and CANCELLED/UNKNOWN/DATA_LOSS,
# which say nothing a person can act on beyond the message.
GENERIC = {"GoogleAPICallError", "ClientError", "Redirection", "MovedPermanently", "NotModified",
           "TemporaryRedirect", "ResumeIncomplete", "Cancelled", "Unknown", "DataLoss",
           "MissingStatusHeaderError", "ResumableTransferError", "TransferStalledError", "UnseekableStreamError",
           "UploadCancelledError"}


def test_every_api_core_error_is_mapped() -> None:
    import inspect

    from google.api_core import exceptions as gexc
    from google.auth.exceptions import DefaultCredentialsError

    from cloudml.errors import BackendError

    vendor = {n: c for n, c in vars(gexc).items()
              if inspect.isclass(c) and issubclass(c, gexc.GoogleAPICallError) and n not in GENERIC}
    assert [n for n, c in vendor.items() if type(translate(c("x"), "op")) is BackendError] == []
    assert not translate(gexc.MethodNotImplemented("x"), "op").retryable
    assert translate(gexc.ServerError("x"), "op").retryable
    err = translate(DefaultCredentialsError("none"), "submit")
    assert isinstance(err, PermissionDeniedError) and "application-default login" in (err.hint or "")


def test_missing_settings_are_refused_before_any_request(fake: VertexFake) -> None:
    from cloudml.errors import ConfigError

    before = len(fake.requests)
    with pytest.raises(ConfigError, match="pipeline root"):
        VertexAdapter(VertexSettings(project=PROJECT, api_endpoint=fake.url)).run(gcs_reference_pipeline())
    with pytest.raises(ConfigError, match="needs a project"):
        VertexAdapter(VertexSettings(pipeline_root=ROOT, api_endpoint=fake.url)).get_run("x")
    assert len(fake.requests) == before


def test_use_cache_false_and_fail_fast_reach_the_job(fake: VertexFake) -> None:
    run = adapter(fake).run(gcs_reference_pipeline(), use_cache=False, fail_fast=True)
    body = fake.job(job_id(run)).body
    tasks = body["pipelineSpec"]["root"]["dag"]["tasks"]
    assert all(not t.get("cachingOptions", {}).get("enableCache", False) for t in tasks.values())
    assert body["runtimeConfig"]["failurePolicy"] in ("PIPELINE_FAILURE_POLICY_FAIL_FAST", 2)
    default = fake.job(job_id(adapter(fake).run(gcs_reference_pipeline()))).body
    assert default["pipelineSpec"]["root"]["dag"]["tasks"]["prep"]["cachingOptions"] == \
        reference_ir()["root"]["dag"]["tasks"]["prep"]["cachingOptions"]  # the spec's own setting is kept
    assert "failurePolicy" not in default["runtimeConfig"]


def test_cli_run_against_the_fake(fake: VertexFake, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from cloudml.cli.main import app

    for key, value in {"PROJECT": PROJECT, "LOCATION": LOCATION, "PIPELINE_ROOT": ROOT, "API_ENDPOINT": fake.url,
                       "SERVICE_ACCOUNT": "runner@test-proj.iam.gserviceaccount.com"}.items():
        monkeypatch.setenv(f"CLOUDML_VERTEX_{key}", value)
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "p.yaml"
    spec.write_text("kind: Pipeline\nname: cli-demo\nparameters: {n: {type: int, default: 1}}\n"
                    "steps: [{name: a, command: 'echo {{params.n}}', image: alpine}]\n")
    fake.advance_per_get = 2  # the CLI polls every 10 s; the job reads finished on its first GET
    result = CliRunner().invoke(app, ["run", str(spec), "--backend", "vertex", "-p", "n=3"])
    assert result.exit_code == 0, result.output
    assert "succeeded" in result.output
    name = next(n for n in fake.jobs if "/cli-demo-" in n)
    assert fake.job(name).parameter_values == {"n": 3.0}


def test_cli_runs_show_and_logs_against_the_fake(fake: VertexFake, monkeypatch: pytest.MonkeyPatch) -> None:
    """`cloudml runs show|logs --backend vertex`: the same verbs as on the local backend, no local-only calls."""
    from typer.testing import CliRunner

    from cloudml.cli.main import app

    for key, value in {"PROJECT": PROJECT, "LOCATION": LOCATION, "PIPELINE_ROOT": ROOT, "API_ENDPOINT": fake.url}.items():
        monkeypatch.setenv(f"CLOUDML_VERTEX_{key}", value)
    run = adapter(fake).run(gcs_reference_pipeline(), {"n_estimators": "300"}, wait=True, poll=POLL, timeout=30)
    result = CliRunner().invoke(app, ["runs", "show", job_id(run), "--backend", "vertex"])
    assert result.exit_code == 0, result.output
    assert "succeeded" in result.output and "publish" in result.output
    result = CliRunner().invoke(app, ["runs", "logs", job_id(run), "publish", "--backend", "vertex"])
    assert result.exit_code == 0, result.output
    assert "logging" in result.output.lower()
    result = CliRunner().invoke(app, ["runs", "logs", job_id(run), "nope", "--backend", "vertex"])
    assert result.exit_code == 2 and "has no step 'nope'" in result.output and "publish" in result.output


# -- code bundles ---------------------------------------------------------------------------------------

def python_pipeline(base: Any) -> Any:
    (base / "src").mkdir(parents=True, exist_ok=True)
    (base / "src" / "job.py").write_text("def run(n: int, out):\n    (out / 'n.txt').write_text(str(n))\n")
    (base / "pipeline.yaml").write_text(
        "kind: Pipeline\nname: py-demo\nparameters: {n: {type: int, default: 2}}\n"
        "defaults: {framework: sklearn==1.6}\n"
        "steps:\n"
        "  - {name: fit, python: 'job:run', code: src, params: {n: '{{params.n}}'}, outputs: {out: dataset}}\n"
        "  - {name: tool, python: 'tools.x:y'}\n")
    return cloudml.load(base / "pipeline.yaml")


def test_run_uploads_each_code_bundle_once_and_the_job_names_it(fake: VertexFake, tmp_path: Any) -> None:
    from cloudml.adapters.vertex.bundles import NO_CODE, build_bundle, bundle_uri, code_digest, members

    p = python_pipeline(tmp_path / "spec")
    a = adapter(fake)
    run = a.run(p, spec_dir=str(tmp_path / "spec"), wait=True, poll=POLL, timeout=30)
    assert run.status == "succeeded"
    fit = bundle_uri(ROOT, code_digest(tmp_path / "spec" / "src"))
    tool = bundle_uri(ROOT, code_digest(NO_CODE))
    assert fake.objects[fit] == build_bundle(tmp_path / "spec" / "src")
    assert set(members(fake.objects[fit])) == {"job.py", "cloudml_runtime.py"}
    assert set(members(fake.objects[tool])) == {"cloudml_runtime.py"}
    executors = fake.job(job_id(run)).body["pipelineSpec"]["deploymentSpec"]["executors"]
    assert fit in executors["exec-fit"]["container"]["args"] and tool in executors["exec-tool"]["container"]["args"]
    uploads = [r for r in fake.requests if r[0] == "POST" and r[1].startswith("/upload/storage/")]
    assert len(uploads) == 2
    a.run(p, spec_dir=str(tmp_path / "spec"))  # unchanged code: nothing is uploaded again
    assert len([r for r in fake.requests if r[0] == "POST" and r[1].startswith("/upload/storage/")]) == 2


def test_upload_code_is_idempotent_and_a_changed_folder_is_a_new_bundle(fake: VertexFake, tmp_path: Any) -> None:
    from cloudml.adapters.vertex.compiler import compile_ir

    p = python_pipeline(tmp_path)
    client = make_client(fake)
    ir = compile_ir(p, client.settings, tmp_path)
    first = client.upload_code(ir, p, tmp_path)
    assert client.upload_code(ir, p, tmp_path) == []
    (tmp_path / "src" / "job.py").write_text("def run(n: int, out):\n    pass\n")
    ir2 = compile_ir(p, client.settings, tmp_path)
    second = client.upload_code(ir2, p, tmp_path)
    assert len(second) == 1 and second[0] not in first


def test_a_pipeline_without_code_sends_no_storage_request(fake: VertexFake) -> None:
    before = len([r for r in fake.requests if "/o" in r[1] and "storage" in r[1]])
    adapter(fake).run(gcs_reference_pipeline())
    assert len([r for r in fake.requests if "/o" in r[1] and "storage" in r[1]]) == before


def test_uploading_code_without_a_pipeline_root_is_refused_before_any_request(fake: VertexFake, tmp_path: Any) -> None:
    from cloudml.errors import ConfigError

    before = len(fake.requests)
    a = VertexAdapter(VertexSettings(project=PROJECT, api_endpoint=fake.url))
    with pytest.raises(ConfigError, match="pipeline root"):
        a.run(python_pipeline(tmp_path), spec_dir=str(tmp_path))
    assert len(fake.requests) == before


# -- parameter inputs and logs ----------------------------------------------------------------------------

def param_input_pipeline() -> Any:
    b = cloudml.PipelineBuilder("param-input")
    b.param("uri", str, "gs://cloudml-test/data/in.csv")
    b.add_step("read", command="wc -l {{inputs.raw}}", image="alpine", inputs={"raw": "{{params.uri}}"})
    return b.build()


def test_a_parameter_input_value_reaches_the_job_and_a_non_gs_value_is_refused_first(fake: VertexFake) -> None:
    run = adapter(fake).run(param_input_pipeline(), {"uri": "gs://cloudml-test/data/2026-11-27.csv"})
    job = fake.job(job_id(run))
    assert job.parameter_values == {"uri": "gs://cloudml-test/data/2026-11-27.csv"}
    before = len(fake.requests)
    with pytest.raises(SpecError, match="parameter 'uri' \\(input 'raw' of step 'read'\\) holds 's3://b/x'"):
        adapter(fake).run(param_input_pipeline(), {"uri": "s3://b/x"})
    assert len(fake.requests) == before


def test_logs_point_at_the_task_custom_job_in_cloud_logging(fake: VertexFake) -> None:
    run = adapter(fake).run(gcs_reference_pipeline())
    fake.paused = True
    try:
        assert run.steps == []  # pending: no task has run yet
        with pytest.raises(KeyError):
            run.logs("prep")
        fake.paused = False
        run.wait(timeout=5, poll=POLL)
    finally:
        fake.paused = False
    prep = run.step("prep")
    assert prep["job"] and "/customJobs/" in prep["job"]
    text = run.logs("prep")
    number = prep["job"].rsplit("/", 1)[-1]
    assert f'resource.type="ml_job" resource.labels.job_id="{number}"' in text
    assert "https://console.cloud.google.com/logs/query;query=" in text and f"project={PROJECT}" in text
    assert run.logs("prep", 1, "stderr") == text  # the CLI passes attempt and stream; Vertex keeps both together


def test_cli_runs_logs_prints_the_pointer(fake: VertexFake, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from cloudml.cli.main import app

    for key, value in {"PROJECT": PROJECT, "LOCATION": LOCATION, "PIPELINE_ROOT": ROOT,
                       "API_ENDPOINT": fake.url}.items():
        monkeypatch.setenv(f"CLOUDML_VERTEX_{key}", value)
    run = adapter(fake).run(gcs_reference_pipeline(), wait=True, timeout=5, poll=POLL)
    result = CliRunner().invoke(app, ["runs", "logs", job_id(run), "prep", "--backend", "vertex"])
    assert result.exit_code == 0, result.output
    assert 'resource.type="ml_job"' in result.output
