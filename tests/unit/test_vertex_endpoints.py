"""Vertex AI registry, endpoints and controller-driven rollouts, through the real SDKs against fakes.

google-cloud-aiplatform (REST, anonymous credentials) talks to tests/fakes/vertex.py and
google-cloud-monitoring (gRPC, explicit insecure channel) to tests/fakes/vertex_monitoring.py, both on
127.0.0.1 (CONVENTIONS rule 7). Bakes and alarm periods are short so the file stays fast.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloudml.adapter import RolloutOutcome
from cloudml.adapters.vertex import VertexAdapter
from cloudml.adapters.vertex.client import VertexClient
from cloudml.adapters.vertex.monitoring import VertexMetrics
from cloudml.config import VertexSettings
from cloudml.errors import (
    BackendValidationError,
    CloudMLError,
    ConflictError,
    DeploymentError,
    NotFoundError,
    RollbackError,
    UnsupportedFeatureError,
)
from cloudml.spec.deployment import Deployment
from tests.fakes.vertex import VertexFake
from tests.fakes.vertex_monitoring import MonitoringFake

PROJECT, LOCATION = "test-proj", "us-central1"
IMAGE = "us-docker.pkg.dev/vertex-ai/prediction/sklearn-cpu.1-3:latest"
POLL = 0.05


@pytest.fixture
def fake() -> Iterator[VertexFake]:
    with VertexFake(PROJECT, LOCATION) as server:
        yield server


@pytest.fixture
def mon(fake: VertexFake) -> Iterator[MonitoringFake]:
    with MonitoringFake(PROJECT, LOCATION) as server:
        server.attach(fake)
        yield server


@pytest.fixture(autouse=True)
def _offline_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)


def make_adapter(fake: VertexFake, mon: MonitoringFake, state: Path) -> VertexAdapter:
    from google.auth.credentials import AnonymousCredentials

    a = VertexAdapter(VertexSettings(project=PROJECT, location=LOCATION, api_endpoint=fake.url, state_dir=str(state),
                                     monitoring_endpoint=f"127.0.0.1:{mon.port}"))  # the settings' own path
    a._client = VertexClient(a.settings, credentials=AnonymousCredentials(), retry_delay=0.01)
    return a


@pytest.fixture
def adapter(fake: VertexFake, mon: MonitoringFake, tmp_path: Path) -> VertexAdapter:
    a = make_adapter(fake, mon, tmp_path)
    a.register_model("churn", "gs://models/churn/1", image=IMAGE, approval="approved", metrics={"auc": 0.81})
    a.register_model("churn", "gs://models/churn/2", image=IMAGE, metrics={"auc": 0.86})
    return a


def deployment(version: int, strategy: Any, **fields: Any) -> Deployment:
    return Deployment.model_validate({"endpoint": "churn", "model": {"group": "churn", "version": version},
                                      "strategy": strategy, **fields})


def live_split(fake: VertexFake) -> dict[str, int]:
    """The endpoint's split by deployed model display name, read from the fake's state."""
    (ep,) = fake.endpoints.values()
    names = {d["id"]: d["displayName"] for d in ep.resource["deployedModels"]}
    return {names[k]: v for k, v in ep.traffic.items() if v}


def traffic_events(result: Any) -> list[dict[str, int]]:
    return [h["weights"] for h in result.history if h["event"] == "traffic"]


# -- registry --------------------------------------------------------------------------------------------
def test_registry_round_trip(adapter: VertexAdapter, fake: VertexFake) -> None:
    versions = adapter.list_models("churn")
    assert [(m.version, m.approval, m.uri) for m in versions] == [
        (2, "pending", "gs://models/churn/2"), (1, "approved", "gs://models/churn/1")]
    assert versions[0].metrics == {"auc": 0.86}
    assert versions[0].tags["vertex_model"].endswith("@2") and versions[0].created_at is not None
    assert adapter.latest_approved("churn").version == 1
    assert adapter.set_approval("churn", 2, "approved").approval == "approved"
    assert adapter.latest_approved("churn").version == 2
    (model,) = fake.models.values()
    aliases = {v: d["versionAliases"] for v, d in model.versions.items()}
    assert aliases == {"1": [], "2": ["default", "approved"]}  # the alias follows the newest approved
    assert adapter.set_approval("churn", 2, "rejected").approval == "rejected"
    assert adapter.latest_approved("churn").version == 1
    assert model.versions["1"]["versionAliases"] == ["approved"] and model.versions["2"]["labels"][
        "cloudml_approval"] == "rejected"
    assert [m.group for m in adapter.list_models()] == ["churn", "churn"]
    assert adapter.resolve_model("churn", "latest").version == 2


def test_registry_errors_say_what_to_do(adapter: VertexAdapter) -> None:
    with pytest.raises(NotFoundError) as info:
        adapter.resolve_model("churn", 9)
    assert info.value.hint and "cloudml models list" in info.value.hint
    with pytest.raises(NotFoundError) as info:
        adapter.latest_approved("nobody")
    assert "cloudml models" in (info.value.hint or "")
    with pytest.raises(BackendValidationError) as bad:
        adapter.register_model("churn", "gs://models/churn/3")
    assert "image" in str(bad.value) and "us-docker.pkg.dev" in (bad.value.hint or "")
    with pytest.raises(CloudMLError):
        adapter.set_approval("churn", 1, "maybe")


# -- strategies ------------------------------------------------------------------------------------------
def test_first_deployment_goes_live_and_serves(adapter: VertexAdapter, fake: VertexFake) -> None:
    result = adapter.deploy(deployment(1, {"all_at_once": {"bake": 0.1}}), poll=POLL)
    assert result.outcome is RolloutOutcome.SUCCEEDED, result.reason
    assert live_split(fake) == {"churn-v1": 100}
    status = adapter.endpoint_status("churn")
    assert status["traffic"]["weights"] == {"churn-v1": 100} and status["rollout"]["live"] == "churn-v1"
    assert status["deployments"]["churn-v1"]["machine_type"] == "n1-standard-2"
    answer = adapter.invoke("churn", [[1.0, 2.0]])
    assert answer["deployment"] == "churn-v1" and answer["predictions"][0]["instance"] == [1.0, 2.0]
    with pytest.raises(UnsupportedFeatureError):
        adapter.invoke("churn", [[1.0]], deployment="churn-v1")
    saved = json.loads((adapter.state_root() / "endpoints" / "churn" / "vertex.json").read_text())
    assert list(saved["deployed"]) == ["churn-v1"] and saved["deployed"]["churn-v1"]["model"].endswith("@1")
    assert adapter.endpoints.list() == ["churn"]
    adapter.endpoints.delete("churn")
    assert not fake.endpoints and not (adapter.state_root() / "endpoints" / "churn").exists()
    with pytest.raises(NotFoundError) as info:
        adapter.endpoint_status("churn")
    assert "cloudml deploy" in (info.value.hint or "")


@pytest.mark.parametrize(("strategy", "steps"), [
    ({"all_at_once": {"bake": 0.1}}, [{"churn-v1": 0, "churn-v2": 100}]),
    ({"blue_green": {"bake": 0.1}}, [{"churn-v1": 0, "churn-v2": 100}]),
    ({"canary": {"percent": 20, "bake": 0.1}}, [{"churn-v1": 80, "churn-v2": 20}, {"churn-v1": 0, "churn-v2": 100}]),
    ({"linear": {"step_percent": 40, "interval": 0.1}},
     [{"churn-v1": 60, "churn-v2": 40}, {"churn-v1": 20, "churn-v2": 80}, {"churn-v1": 0, "churn-v2": 100}]),
])
def test_each_strategy_rolls_out_to_success(adapter: VertexAdapter, fake: VertexFake, strategy: dict[str, Any],
                                            steps: list[dict[str, int]]) -> None:
    assert adapter.deploy(deployment(1, "all_at_once"), poll=POLL).outcome is RolloutOutcome.SUCCEEDED
    result = adapter.deploy(deployment(2, strategy, instances={"type": "gpu-small"}), poll=POLL)
    assert result.outcome is RolloutOutcome.SUCCEEDED, result.reason
    assert traffic_events(result)[-len(steps):] == steps
    assert live_split(fake) == {"churn-v2": 100}
    (ep,) = fake.endpoints.values()
    (only,) = ep.resource["deployedModels"]  # blue was undeployed once it took no traffic
    assert only["displayName"] == "churn-v2" and only["dedicatedResources"]["machineSpec"]["acceleratorType"] in (
        "NVIDIA_TESLA_T4", 5)


def test_capture_is_the_endpoints_request_response_logging(adapter: VertexAdapter, fake: VertexFake) -> None:
    result = adapter.deploy(deployment(1, "all_at_once", capture={"percent": 25}), poll=POLL)
    assert result.outcome is RolloutOutcome.SUCCEEDED, result.reason
    (ep,) = fake.endpoints.values()
    assert ep.resource["predictRequestResponseLoggingConfig"] == {
        "enabled": True, "samplingRate": 0.25, "bigqueryDestination": {"outputUri": f"bq://{PROJECT}"}}
    with pytest.raises(DeploymentError) as info:  # refused before any request
        adapter.deploy(deployment(2, "all_at_once", capture={"destination": "gs://bucket/capture"}))
    assert "bq://" in str(info.value) and info.value.hint


def test_shadow_is_a_declared_gap(adapter: VertexAdapter) -> None:
    with pytest.raises(UnsupportedFeatureError) as info:
        adapter.deploy(deployment(2, {"shadow": {"percent": 10}}))
    assert info.value.feature == "deploy.shadow" and "mirrored" in str(info.value)


# -- alarms and rollback ------------------------------------------------------------------------------------
def _traffic(fake: VertexFake, stop: threading.Event) -> None:
    """Clients calling :predict on the endpoint (through HTTP, as users would) until ``stop``."""
    while not stop.wait(0.02):
        for ep in list(fake.endpoints):
            req = urllib.request.Request(f"{fake.url}/v1/{ep}:predict", data=b'{"instances": [[1]]}', method="POST",
                                         headers={"content-type": "application/json"})
            with contextlib.suppress(OSError):  # 500s from the failing model are the point
                urllib.request.urlopen(req, timeout=2).read()


def test_an_alarm_on_fake_metrics_rolls_the_canary_back(adapter: VertexAdapter, fake: VertexFake,
                                                         mon: MonitoringFake) -> None:
    adapter.deploy(deployment(1, "all_at_once"), poll=POLL)
    fake.predict_error_rate["churn-v2"] = 1.0
    stop = threading.Event()
    clients = threading.Thread(target=_traffic, args=(fake, stop), daemon=True)
    clients.start()
    try:
        d = deployment(2, {"canary": {"percent": 50, "bake": 15}},  # ends at the alarm
                       alarms=[{"name": "errors", "metric": "error_rate", "threshold": 0.2, "period": 1}])
        result = adapter.deploy(d, poll=POLL)
    finally:
        stop.set()
        clients.join()
    assert result.outcome is RolloutOutcome.ROLLED_BACK, result.reason
    assert result.alarm == "errors" and result.metric_value == 1.0
    assert live_split(fake) == {"churn-v1": 100}
    (ep,) = fake.endpoints.values()
    assert [d["displayName"] for d in ep.resource["deployedModels"]] == ["churn-v1"]
    assert any(r.filter.count("deployed_model_id") == 1 for r in mon.requests)


def test_latency_datapoints_come_from_the_histogram(adapter: VertexAdapter, mon: MonitoringFake) -> None:
    from cloudml.spec.deployment import Alarm

    now = time.time()
    metrics = VertexMetrics(PROJECT, client=mon.client(), clock=lambda: now)
    alarm = Alarm(name="slow", metric="latency_p99", threshold="300ms", period=10, evaluation_periods=3)
    _, end = metrics.window(alarm)
    mon.record("7", "8", requests=10, latency_ms=400.0, at=end - 5)  # newest period: 250-500 ms bucket
    mon.record("7", "8", requests=10, latency_ms=20.0, at=end - 25)  # oldest period
    points = metrics.datapoints("7", "8", alarm)
    assert points[1] is None and points[0] is not None and points[0] < 0.03
    assert points[2] is not None and 0.25 < points[2] <= 0.5
    rate = Alarm(name="e", metric="error_rate", threshold=0.1, period=10, evaluation_periods=3)
    mon.record("7", "8", requests=4, errors=1, at=end - 15)
    assert metrics.datapoints("7", "8", rate) == [0.0, 0.25, 0.0]
    assert metrics.datapoints("7", "9", rate) == [None, None, None]  # another deployed model: no data
    mon.inject(times=1)  # UNAVAILABLE: the client's retry rides it out
    retried = VertexMetrics(PROJECT, client=mon.client(), clock=lambda: now, call=adapter.client().call)
    assert retried.datapoints("7", "8", rate) == [0.0, 0.25, 0.0]
    import grpc

    from cloudml.errors import PermissionDeniedError

    mon.inject(grpc.StatusCode.PERMISSION_DENIED, message="Permission monitoring.timeSeries.list denied")
    with pytest.raises(PermissionDeniedError) as denied:
        retried.datapoints("7", "8", rate)
    assert "roles/monitoring.viewer" in (denied.value.hint or "")


# -- resume, throttling, API rules ---------------------------------------------------------------------------
def test_a_killed_controller_is_resumed_by_another(adapter: VertexAdapter, fake: VertexFake, mon: MonitoringFake,
                                                    tmp_path: Path) -> None:
    adapter.deploy(deployment(1, "all_at_once"), poll=POLL)
    stop = threading.Event()

    def kill_after_first_shift() -> None:
        deadline = time.time() + 20
        while time.time() < deadline and "churn-v2" not in live_split(fake):
            time.sleep(0.01)
        stop.set()

    killer = threading.Thread(target=kill_after_first_shift, daemon=True)
    killer.start()
    d = deployment(2, {"linear": {"step_percent": 50, "interval": 30}})
    paused = adapter.deploy(d, poll=POLL, stop=stop)
    killer.join()
    assert paused.outcome is RolloutOutcome.FAILED and "stopped while in_progress" in paused.reason
    assert live_split(fake) == {"churn-v1": 50, "churn-v2": 50}
    # the mapping file is lost too: the new controller finds the deployed models by display name
    (adapter.state_root() / "endpoints" / "churn" / "vertex.json").unlink()
    other = make_adapter(fake, mon, tmp_path)  # a new process: nothing shared but the state folder
    state = json.loads((other.state_root() / "endpoints" / "churn" / "rollout.json").read_text())
    state["phases"] = [p if p.get("phase") != "bake" else {**p, "seconds": 0.1} for p in state["phases"]]
    state["phase_started"] = None
    (other.state_root() / "endpoints" / "churn" / "rollout.json").write_text(json.dumps(state))
    result = other.resume_rollout("churn", poll=POLL)
    assert result.outcome is RolloutOutcome.SUCCEEDED, result.reason
    assert live_split(fake) == {"churn-v2": 100}
    assert any(h["event"] == "resumed" for h in result.history)


def test_a_controller_killed_while_the_model_deploys_is_resumed(adapter: VertexAdapter, fake: VertexFake,
                                                                 mon: MonitoringFake, tmp_path: Path) -> None:
    adapter.deploy(deployment(1, "all_at_once"), poll=POLL)
    fake.deploy_delay_gets = 40  # the deployModel operation runs for a while
    stop = _stop_when(lambda: bool(fake._pending))
    d = deployment(2, {"canary": {"percent": 10, "bake": 0.1}})
    paused = adapter.deploy(d, poll=POLL, stop=stop)
    assert paused.outcome is RolloutOutcome.FAILED and "stopped while in_progress" in paused.reason
    saved = json.loads((adapter.state_root() / "endpoints" / "churn" / "vertex.json").read_text())
    assert saved["deployed"]["churn-v2"]["id"] is None and "/operations/" in saved["deployed"]["churn-v2"]["operation"]
    status = adapter.endpoint_status("churn")
    assert status["deployments"]["churn-v2"]["ready"] is False and status["traffic"]["weights"] == {"churn-v1": 100}
    result = make_adapter(fake, mon, tmp_path).resume_rollout("churn", poll=POLL)
    assert result.outcome is RolloutOutcome.SUCCEEDED, result.reason
    assert live_split(fake) == {"churn-v2": 100}
    (ep,) = fake.endpoints.values()
    assert [d["displayName"] for d in ep.resource["deployedModels"]] == ["churn-v2"]  # deployed once


def test_a_deploy_that_fails_is_rolled_back_as_failed(adapter: VertexAdapter, fake: VertexFake) -> None:
    adapter.deploy(deployment(1, "all_at_once"), poll=POLL)
    fake.fail_next_deploy = "Model server never became ready. Please check the container logs."
    fake.deploy_delay_gets = 2
    started = time.monotonic()
    result = adapter.deploy(deployment(2, "blue_green"), poll=POLL, ready_timeout=600.0)
    assert result.outcome is RolloutOutcome.FAILED  # at once, with Vertex's reason, not after the ready timeout
    assert "could not deploy churn-v2: Model server never became ready" in result.reason
    assert time.monotonic() - started < 60
    assert live_split(fake) == {"churn-v1": 100}
    saved = json.loads((adapter.state_root() / "endpoints" / "churn" / "vertex.json").read_text())
    assert "never became ready" in saved["deployed"]["churn-v2"]["error"]  # kept for `endpoints show`


def test_a_rollback_never_leaves_a_deploy_in_flight_behind(adapter: VertexAdapter, fake: VertexFake) -> None:
    adapter.deploy(deployment(1, "all_at_once"), poll=POLL)
    fake.deploy_delay_gets = 10_000  # far longer than the ready timeout
    with pytest.raises(DeploymentError) as info:
        adapter.deploy(deployment(2, "blue_green"), poll=POLL, ready_timeout=0.3)
    assert "still being deployed" in str(info.value) and "cloudml rollout resume churn" in (info.value.hint or "")
    assert live_split(fake) == {"churn-v1": 100}
    for pending in fake._pending.values():  # the deploy ends (it cannot be cancelled)
        pending["left"] = 1
    result = adapter.resume_rollout("churn", poll=POLL)
    assert result.outcome is RolloutOutcome.FAILED and "did not become ready" in result.reason
    (ep,) = fake.endpoints.values()
    assert [d["displayName"] for d in ep.resource["deployedModels"]] == ["churn-v1"]  # green was undeployed


def test_throttling_and_unavailability_are_retried(adapter: VertexAdapter, fake: VertexFake) -> None:
    fake.inject(429, times=2)
    fake.inject(503, times=1)
    result = adapter.deploy(deployment(1, "all_at_once"), poll=POLL)
    assert result.outcome is RolloutOutcome.SUCCEEDED
    assert not fake.faults and sum(1 for r in fake.requests if r[2] in (429, 503)) == 3
    fake.inject(429, times=2)
    assert adapter.invoke("churn", [[3]])["deployment"] == "churn-v1"
    (ep,) = fake.endpoints.values()
    assert len(ep.resource["deployedModels"]) == 1  # a retried deploy never deploys twice


def test_changes_whose_answer_was_lost_are_not_repeated(adapter: VertexAdapter, fake: VertexFake) -> None:
    for fragment in ("models:upload", "POST /v1/projects/test-proj/locations/us-central1/endpoints", ":deployModel",
                     ":undeployModel"):
        fake.lose_answer(fragment)
    adapter.register_model("churn", "gs://models/churn/3", image=IMAGE)
    (model,) = fake.models.values()
    assert sorted(model.versions) == ["1", "2", "3"]  # one version 3, not two
    adapter.deploy(deployment(1, "all_at_once"), poll=POLL)
    result = adapter.deploy(deployment(3, {"blue_green": {"bake": 0.1}}), poll=POLL)
    assert result.outcome is RolloutOutcome.SUCCEEDED, result.reason
    assert not fake._lost  # every lost answer was met
    (ep,) = fake.endpoints.values()  # one endpoint
    assert [d["displayName"] for d in ep.resource["deployedModels"]] == ["churn-v3"]


def test_api_rule_violations_are_cloudml_errors_with_next_steps(adapter: VertexAdapter, fake: VertexFake) -> None:
    adapter.deploy(deployment(1, "all_at_once"), poll=POLL)
    eps = adapter.endpoints
    aiplatform = adapter.client()._sdk()
    name = eps.mapping("churn")["endpoint"]
    v1 = eps.mapping("churn")["deployed"]["churn-v1"]["id"]
    with pytest.raises(BackendValidationError) as info:  # does not sum to 100
        eps._call("set traffic", lambda: aiplatform.Endpoint(name).update(traffic_split={v1: 90}), "churn")
    assert "sum to 100" in str(info.value) and "cloudml rollout history churn" in (info.value.hint or "")
    with pytest.raises(BackendValidationError) as info:  # "0" is only for deployModel
        eps._call("set traffic", lambda: aiplatform.Endpoint(name).update(traffic_split={"0": 100}))
    assert "only valid in DeployModel" in str(info.value)
    with pytest.raises(BackendValidationError) as info:  # an id that is not deployed
        eps._call("set traffic", lambda: aiplatform.Endpoint(name).update(traffic_split={"123": 100}))
    assert "not deployed" in str(info.value)
    adapter.deploy(deployment(2, {"canary": {"percent": 10, "bake": 30}}), poll=POLL, stop=_stop_when(
        lambda: "churn-v2" in live_split(fake)))
    ids = adapter.endpoints._ids("churn")

    def undeploy_with_traffic() -> None:
        ep = aiplatform.Endpoint(name)
        ep.api_client.undeploy_model(endpoint=name, deployed_model_id=ids["churn-v1"], traffic_split={}).result()

    with pytest.raises(ConflictError) as conflict:
        eps._call("undeploy", undeploy_with_traffic, "churn")
    assert "holds 90%" in str(conflict.value) and "cloudml rollback churn" in (conflict.value.hint or "")
    with pytest.raises(DeploymentError) as refused:  # the backend refuses before asking
        eps.delete_deployment("churn", "churn-v1")
    assert "shift its traffic away" in str(refused.value)
    assert adapter.rollback("churn").outcome is RolloutOutcome.ROLLED_BACK
    assert live_split(fake) == {"churn-v1": 100}
    with pytest.raises(RollbackError):  # nothing left to roll back to once v2 is gone and v1 finished
        adapter.deploy(deployment(2, "all_at_once"), poll=POLL)
        adapter.rollback("churn")


def _stop_when(condition: Any) -> threading.Event:
    stop = threading.Event()

    def watch() -> None:
        deadline = time.time() + 20
        while time.time() < deadline and not condition():
            time.sleep(0.01)
        stop.set()

    threading.Thread(target=watch, daemon=True).start()
    return stop


# -- the CLI on Vertex (settings from the environment, as a user would set them) ----------------------------
def test_the_cli_drives_vertex_models_and_endpoints(adapter: VertexAdapter, fake: VertexFake, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from cloudml.cli.main import app

    monkeypatch.setenv("CLOUDML_CONFIG", str(tmp_path / "none.yaml"))
    (tmp_path / "none.yaml").write_text("backend: vertex\n")
    for key, value in {"PROJECT": PROJECT, "LOCATION": LOCATION, "API_ENDPOINT": fake.url,
                       "STATE_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(f"CLOUDML_VERTEX_{key}", value)
    runner = CliRunner()
    listed = runner.invoke(app, ["models", "list", "churn", "--backend", "vertex"])
    assert listed.exit_code == 0, listed.output
    assert "approved" in listed.output and "auc=0.86" in listed.output
    assert runner.invoke(app, ["models", "approve", "churn", "2", "--backend", "vertex"]).exit_code == 0
    spec = tmp_path / "deploy.yaml"
    spec.write_text("apiVersion: cloudml/v1\nkind: Deployment\nendpoint: churn\n"
                    "model: {group: churn, version: latest-approved}\nstrategy: {all_at_once: {bake: 0}}\n")
    deployed = runner.invoke(app, ["deploy", str(spec), "--backend", "vertex"])
    assert deployed.exit_code == 0, deployed.output
    assert "succeeded" in deployed.output and live_split(fake) == {"churn-v2": 100}
    shown = runner.invoke(app, ["endpoints", "show", "churn", "--backend", "vertex"])
    assert shown.exit_code == 0 and "churn-v2" in shown.output and "100%" in shown.output, shown.output
    listed = runner.invoke(app, ["endpoints", "list", "--backend", "vertex"])
    assert listed.exit_code == 0 and "churn-v2" in listed.output, listed.output
    answer = runner.invoke(app, ["invoke", "churn", "--data", "[[1, 2]]", "--backend", "vertex"])
    assert answer.exit_code == 0 and "churn-v2" in answer.output, answer.output
    back = runner.invoke(app, ["rollback", "churn", "--backend", "vertex"])
    assert back.exit_code != 0 and "nothing to roll back" in back.output, back.output


@pytest.mark.parametrize(("action", "outcome", "live"), [("promote", RolloutOutcome.SUCCEEDED, "churn-v2"),
                                                          ("rollback", RolloutOutcome.ROLLED_BACK, "churn-v1")])
def test_promote_or_rollback_from_another_process_reaches_the_running_controller(
        adapter: VertexAdapter, fake: VertexFake, mon: MonitoringFake, tmp_path: Path, action: str,
        outcome: RolloutOutcome, live: str) -> None:
    adapter.deploy(deployment(1, "all_at_once"), poll=POLL)
    box: dict[str, Any] = {}
    driver = threading.Thread(target=lambda: box.update(result=adapter.deploy(
        deployment(2, {"canary": {"percent": 10, "bake": 60}}), poll=POLL)), daemon=True)
    driver.start()
    deadline = time.time() + 20
    while time.time() < deadline and "churn-v2" not in live_split(fake):
        time.sleep(0.01)
    other = make_adapter(fake, mon, tmp_path)  # the running controller holds the endpoint lock
    result = other.promote("churn") if action == "promote" else other.rollback("churn")
    driver.join(20)
    assert result.outcome is outcome and box["result"].outcome is outcome
    assert live_split(fake) == {live: 100}
    assert any(h["event"] in ("manual promotion", "rolled back") for h in result.history)
