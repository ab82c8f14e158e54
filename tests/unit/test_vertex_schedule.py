"""Vertex AI pipeline schedules: ``VertexAdapter.apply_schedule`` and ``cloudml schedule apply --backend vertex``.

The real google-cloud-aiplatform SDK (``PipelineJobSchedule`` and its GAPIC ScheduleService client, REST
transport) talks to the fake in tests/fakes/vertex.py (schedule routes: tests/fakes/_vertex_schedules.py)
on 127.0.0.1; nothing reaches Google. Compile-time refusals are in test_vertex_compiler.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cloudml
from cloudml.adapters.vertex import VertexAdapter
from cloudml.adapters.vertex.client import VertexClient
from cloudml.adapters.vertex.schedule import UPDATE_MASK, schedule_display_name
from cloudml.adapters.vertex.validate import validate_ir
from cloudml.config import VertexSettings
from cloudml.errors import (
    BackendValidationError,
    ConfigError,
    ConflictError,
    NotFoundError,
    SpecError,
    UnsupportedFeatureError,
)
from tests.fakes.vertex import VertexFake

PROJECT, LOCATION = "test-proj", "us-central1"
ROOT = "gs://cloudml-test/root"
SA = "runner@test-proj.iam.gserviceaccount.com"
PARENT = f"projects/{PROJECT}/locations/{LOCATION}"


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
    fake.schedules.schedules.clear()
    fake.schedules.writes.clear()
    yield
    fake.faults.clear()


def adapter(fake: VertexFake, base: Path | None = None) -> VertexAdapter:
    from google.auth.credentials import AnonymousCredentials

    a = VertexAdapter(VertexSettings(project=PROJECT, location=LOCATION, pipeline_root=ROOT, service_account=SA,
                                     api_endpoint=fake.url))
    a._client = VertexClient(a.settings, credentials=AnonymousCredentials(), retry_delay=0.01)
    if base is not None:
        a.base_dir = base
    return a


def pipeline(name: str = "nightly", **schedule: Any) -> Any:
    sched = {"cron": "30 2 * * MON-FRI", "timezone": "Europe/Berlin", "parameters": {"n": 5}, **schedule}
    b = cloudml.PipelineBuilder(name, schedule=sched)
    b.param("n", int, 1)
    b.param("uri", str, "gs://cloudml-test/data/in.csv")
    b.add_step("train", command="python train.py --data {{inputs.raw}} --n {{params.n}}", image="python:3.11-slim",
               inputs={"raw": "{{params.uri}}"})
    return b.build()


def only(fake: VertexFake) -> dict[str, Any]:
    assert len(fake.schedules.schedules) == 1, fake.schedules.schedules
    return next(iter(fake.schedules.schedules.values()))


# -- create ---------------------------------------------------------------------------------------------

def test_apply_creates_a_schedule_that_runs_the_compiled_ir(fake: VertexFake) -> None:
    name = adapter(fake).apply_schedule(pipeline())
    s = only(fake)
    assert name == s["name"] and name.startswith(f"{PARENT}/schedules/")
    assert s["displayName"] == schedule_display_name("nightly") == "cloudml-nightly"
    assert s["cron"] == "TZ=Europe/Berlin 30 2 * * 1,2,3,4,5"
    assert s["state"] == "ACTIVE"
    # one run at a time, as cloudml's local scheduler: neither started nor active runs overlap, no queue
    assert (s["maxConcurrentRunCount"], s["maxConcurrentActiveRunCount"]) == ("1", "1")
    assert not s.get("allowQueueing")
    request = s["createPipelineJobRequest"]
    assert request["parent"] == PARENT
    job = request["pipelineJob"]
    assert validate_ir(job["pipelineSpec"]) == []
    assert job["pipelineSpec"]["pipelineInfo"]["name"] == "nightly"
    assert job["runtimeConfig"] == {"gcsOutputDirectory": ROOT, "parameterValues": {"n": 5.0, "uri": "gs://cloudml-test/data/in.csv"}}
    assert job["serviceAccount"] == SA
    methods = [m for m, _, _ in fake.schedules.writes]
    assert methods == ["POST"]


def test_a_fired_schedule_starts_one_run_at_a_time_with_its_parameter_values(fake: VertexFake) -> None:
    name = adapter(fake).apply_schedule(pipeline(parameters={"n": 7, "uri": "gs://cloudml-test/data/today/"}))
    fake.paused = True  # the first run stays unfinished
    try:
        first = fake.fire_schedule(name)
        assert first is not None
        assert first.parameter_values == {"n": 7.0, "uri": "gs://cloudml-test/data/today/"}
        assert fake.fire_schedule(name) is None  # still running: this fire time is skipped
        first.state = "PIPELINE_STATE_SUCCEEDED"
        assert fake.fire_schedule(name) is not None
    finally:
        fake.paused = False
    assert only(fake)["startedRunCount"] == "2"


def test_code_bundles_are_uploaded_before_the_schedule_is_created(fake: VertexFake, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "job.py").write_text("def run(n: int):\n    print(n)\n")
    b = cloudml.PipelineBuilder("bundled", schedule={"cron": "0 4 * * *"})
    b.param("n", int, 2)
    b.add_step("fit", python="job:run", code="src", image="python:3.11-slim", params={"n": "{{params.n}}"})
    adapter(fake, tmp_path).apply_schedule(b.build())
    spec = only(fake)["createPipelineJobRequest"]["pipelineJob"]["pipelineSpec"]
    bundles = [u for u in fake.objects if "/cloudml/code/" in u]
    assert bundles and all(u.split("/")[-1] in str(spec["deploymentSpec"]) for u in bundles)


# -- update in place ---------------------------------------------------------------------------------------

def test_applying_again_updates_the_same_schedule_in_place(fake: VertexFake) -> None:
    first = adapter(fake).apply_schedule(pipeline())
    again = adapter(fake).apply_schedule(pipeline())  # unchanged: still one schedule
    changed = adapter(fake).apply_schedule(pipeline(cron="0 6 * * *", timezone="UTC", parameters={"n": 9}))
    assert first == again == changed
    s = only(fake)
    assert s["cron"] == "TZ=UTC 0 6 * * *"
    assert s["createPipelineJobRequest"]["pipelineJob"]["runtimeConfig"]["parameterValues"]["n"] == 9.0
    patch = [w for w in fake.schedules.writes if w[0] == "PATCH"]
    assert len(patch) == 2
    assert sorted(patch[-1][2]["updateMask"]) == sorted(_camel(p) for p in UPDATE_MASK)
    assert [m for m, _, _ in fake.schedules.writes].count("POST") == 1


def _camel(path: str) -> str:
    head, *rest = path.split("_")
    return head + "".join(w.title() for w in rest)


def test_enabled_false_pauses_and_enabled_again_resumes(fake: VertexFake) -> None:
    name = adapter(fake).apply_schedule(pipeline(enabled=False))
    assert only(fake)["state"] == "PAUSED"
    assert adapter(fake).apply_schedule(pipeline(enabled=False)) == name  # already paused: no second pause
    assert only(fake)["state"] == "PAUSED"
    assert fake.fire_schedule(name) is None  # a paused schedule starts nothing
    adapter(fake).apply_schedule(pipeline())
    assert only(fake)["state"] == "ACTIVE"
    verbs = [n.rsplit(":", 1)[-1] for m, n, _ in fake.schedules.writes if ":" in n]
    assert verbs == ["pause", "resume"]


def test_a_second_schedule_with_the_same_display_name_is_a_conflict(fake: VertexFake) -> None:
    adapter(fake).apply_schedule(pipeline())
    dup = dict(only(fake))
    fake.schedules.schedules[f"{PARENT}/schedules/99"] = {**dup, "name": f"{PARENT}/schedules/99"}
    with pytest.raises(ConflictError, match="2 Vertex AI schedules are named cloudml-nightly"):
        adapter(fake).apply_schedule(pipeline())


def test_a_completed_schedule_cannot_be_updated(fake: VertexFake) -> None:
    adapter(fake).apply_schedule(pipeline())
    only(fake)["state"] = "COMPLETED"
    with pytest.raises(ConflictError, match="completed"):
        adapter(fake).apply_schedule(pipeline())


# -- refusals before any request, and the fake's rules through the real SDK -------------------------------

def test_what_vertex_cannot_run_is_refused_before_any_request(fake: VertexFake) -> None:
    before = len(fake.requests)
    with pytest.raises(UnsupportedFeatureError, match="day of the week"):
        adapter(fake).apply_schedule(pipeline(cron="0 3 1 * MON"))
    with pytest.raises(SpecError, match="parameter 'uri'"):
        adapter(fake).apply_schedule(pipeline(parameters={"uri": "s3://b/x"}))
    with pytest.raises(SpecError, match="unknown parameter 'nope'"):
        adapter(fake).apply_schedule(pipeline(parameters={"nope": 1}))
    b = cloudml.PipelineBuilder("plain")
    b.add_step("a", command="echo hi", image="alpine")
    with pytest.raises(ConfigError, match="has no schedule"):
        adapter(fake).apply_schedule(b.build())
    assert len(fake.requests) == before


def _gapic(fake: VertexFake) -> Any:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform_v1

    return aiplatform_v1.ScheduleServiceClient(transport="rest", credentials=AnonymousCredentials(),
                                               client_options={"api_endpoint": fake.url})


def _schedule(ir: dict[str, Any], cron: str, **extra: Any) -> Any:
    from google.cloud import aiplatform_v1
    from google.protobuf import json_format, struct_pb2

    spec = json_format.ParseDict(ir, struct_pb2.Struct())
    job = aiplatform_v1.PipelineJob(pipeline_spec=spec, runtime_config={"gcs_output_directory": ROOT})
    fields = {"display_name": "raw", "cron": cron, "max_concurrent_run_count": 1, **extra}
    return aiplatform_v1.Schedule(create_pipeline_job_request={"parent": PARENT, "pipeline_job": job}, **fields)


@pytest.mark.parametrize(("cron", "message"), [
    ("TZ=W. Europe Standard Time 0 3 * * *", "not an IANA time zone"),
    ("TZ=Europe/Berlin 0 25 * * *", "invalid cron"),
    ("0 3 * *", "invalid cron"),
])
def test_the_fake_refuses_bad_crons_as_vertex_documents_them(fake: VertexFake, cron: str, message: str) -> None:
    from google.api_core import exceptions as gexc

    ir = cloudml.compile(pipeline(), "vertex").document
    with pytest.raises(gexc.BadRequest, match=message):
        _gapic(fake).create_schedule(parent=PARENT, schedule=_schedule(ir, cron))
    created = _gapic(fake).create_schedule(parent=PARENT, schedule=_schedule(ir, "TZ=Europe/Berlin 0 3 * * *"))
    assert created.state.name == "ACTIVE"


def test_the_fake_refuses_a_template_vertex_would_refuse(fake: VertexFake) -> None:
    from google.api_core import exceptions as gexc

    ir = dict(cloudml.compile(pipeline(), "vertex").document)
    broken = {**ir, "root": {**ir["root"], "dag": {"tasks": {"x": {"taskInfo": {"name": "x"},
                                                                  "componentRef": {"name": "comp-missing"}}}}}}
    with pytest.raises(gexc.BadRequest, match="Invalid pipeline spec"):
        _gapic(fake).create_schedule(parent=PARENT, schedule=_schedule(broken, "0 3 * * *"))
    with pytest.raises(gexc.BadRequest, match="max_concurrent_run_count"):
        _gapic(fake).create_schedule(parent=PARENT, schedule=_schedule(ir, "0 3 * * *", max_concurrent_run_count=0))


def test_not_found_and_wrong_state_through_the_client(fake: VertexFake) -> None:
    from google.api_core import exceptions as gexc

    client = adapter(fake).client()
    gapic = _gapic(fake)
    with pytest.raises(NotFoundError):
        client.call("get schedule", lambda: gapic.get_schedule(name=f"{PARENT}/schedules/12345"))
    name = adapter(fake).apply_schedule(pipeline())
    with pytest.raises(ConflictError):  # FAILED_PRECONDITION: it is not paused
        client.call("resume schedule", lambda: gapic.resume_schedule(name=name))
    with pytest.raises(gexc.BadRequest, match="update_mask"):
        gapic.update_schedule(schedule={"name": name, "cron": "0 1 * * *"}, update_mask={"paths": []})


def test_a_bad_request_from_the_service_is_a_backend_validation_error(fake: VertexFake) -> None:
    fake.inject(400, times=1, message="schedule.cron is invalid")
    with pytest.raises(BackendValidationError, match=r"schedule\.cron is invalid"):
        adapter(fake).apply_schedule(pipeline())


def test_throttling_is_retried(fake: VertexFake) -> None:
    fake.inject(429, times=2)
    assert adapter(fake).apply_schedule(pipeline()).startswith(f"{PARENT}/schedules/")
    assert not fake.faults


# -- the CLI verb -------------------------------------------------------------------------------------------

def test_cli_schedule_apply_with_backend_vertex(fake: VertexFake, monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cloudml.cli.main import app

    for key, value in {"PROJECT": PROJECT, "LOCATION": LOCATION, "PIPELINE_ROOT": ROOT, "API_ENDPOINT": fake.url,
                       "SERVICE_ACCOUNT": SA}.items():
        monkeypatch.setenv(f"CLOUDML_VERTEX_{key}", value)
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "p.yaml"
    spec.write_text("kind: Pipeline\nname: cli-nightly\nparameters: {n: {type: int, default: 1}}\n"
                    "schedule: {cron: '0 3 * * *', timezone: Asia/Tokyo, parameters: {n: 4}}\n"
                    "steps: [{name: a, command: 'echo {{params.n}}', image: alpine}]\n")
    result = CliRunner().invoke(app, ["schedule", "apply", str(spec), "--backend", "vertex"])
    assert result.exit_code == 0, result.output
    s = only(fake)
    assert f"schedule applied {s['name']}" in " ".join(result.output.split())
    assert (s["displayName"], s["cron"]) == ("cloudml-cli-nightly", "TZ=Asia/Tokyo 0 3 * * *")
    again = CliRunner().invoke(app, ["schedule", "apply", str(spec), "--backend", "vertex"])
    assert again.exit_code == 0, again.output
    assert len(fake.schedules.schedules) == 1
    spec.write_text(spec.read_text().replace("0 3 * * *", "0 3 1 * MON"))
    refused = CliRunner().invoke(app, ["schedule", "apply", str(spec), "--backend", "vertex"])
    assert refused.exit_code != 0
    assert "day of the week" in " ".join(refused.output.split())
