"""Managed online endpoints and controller-driven rollouts, through the real ``MLClient`` and
``MonitorManagementClient`` against the Azure ML fake on 127.0.0.1 (tests/fakes/_azureml_online.py).

Every test uses its own endpoint; the fake serves the module. Alarm metrics come from the fake
(``fake.online.set_requests`` / ``set_latency``), so rollbacks are driven end to end by Azure Monitor
data read through azure-mgmt-monitor.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("azure.ai.ml")
pytest.importorskip("azure.mgmt.monitor")

from cloudml.adapter import RolloutOutcome
from cloudml.adapters.azureml import AzureMLAdapter
from cloudml.adapters.azureml.endpoints import AzureMLEndpoints, check_traffic, deployment_name
from cloudml.config import AzureMLSettings
from cloudml.errors import (
    BackendValidationError,
    DeploymentError,
    NotFoundError,
    UnsupportedFeatureError,
)
from cloudml.spec.deployment import Deployment
from tests.fakes.azureml import (
    RESOURCE_GROUP,
    SUBSCRIPTION,
    WORKSPACE,
    AzureMLFake,
    FakeCredential,
    azure_test_env,
    azureml_fake,
    cloud_kwargs,
)

POLL = 0.02
URI = "azureml://datastores/workspaceblobstore/paths/models/{}/"
ERRORS = {"name": "errors", "metric": "error_rate", "threshold": "5%"}
SLOW = {"name": "slow", "metric": "latency_p99", "threshold": "300ms"}


@pytest.fixture(scope="module")
def fake() -> Iterator[AzureMLFake]:
    with azureml_fake() as server, azure_test_env(server):
        yield server
        assert server.outbound == [], "a request tried to leave 127.0.0.1"


def _adapter(fake: AzureMLFake, state: Path) -> AzureMLAdapter:
    a = AzureMLAdapter(AzureMLSettings(subscription_id=SUBSCRIPTION, resource_group=RESOURCE_GROUP,
                                       workspace=WORKSPACE, state_dir=str(state)))
    a.client(FakeCredential(), **cloud_kwargs(fake))
    return a


@pytest.fixture
def adapter(fake: AzureMLFake, tmp_path: Path) -> AzureMLAdapter:
    return _adapter(fake, tmp_path)


def _model(adapter: AzureMLAdapter, group: str, versions: int = 2) -> None:
    for i in range(versions):
        adapter.register_model(group, URI.format(f"{group}{i}"), type="mlflow_model", approval="approved")


def _spec(endpoint: str, group: str, version: int, strategy: Any, alarms: list[dict[str, Any]] | None = None,
          **extra: Any) -> Deployment:
    return Deployment.model_validate({"endpoint": endpoint, "model": {"group": group, "version": version},
                                      "strategy": strategy, "alarms": alarms or [], **extra})


def _healthy(fake: AzureMLFake, endpoint: str, group: str, version: int) -> None:
    name = deployment_name(group, version)
    fake.online.set_requests(endpoint, name, {"2xx": [100.0, 100.0], "5xx": [0.0, 0.0]})
    fake.online.set_latency(endpoint, name, [40.0, 45.0])


def _first(fake: AzureMLFake, adapter: AzureMLAdapter, endpoint: str, group: str) -> None:
    _model(adapter, group)
    result = adapter.deploy(_spec(endpoint, group, 1, "all_at_once"), poll=POLL)
    assert result.outcome is RolloutOutcome.SUCCEEDED, result.reason
    assert fake.online.traffic(endpoint) == {f"{group}-v1": 100}


def test_first_deploy_creates_the_endpoint_and_sends_all_traffic_after_the_deployment_succeeded(
        fake: AzureMLFake, adapter: AzureMLAdapter) -> None:
    fake.online.provision_polls = 2  # the deployment reports InProgress twice before it succeeds
    try:
        _first(fake, adapter, "ep-first", "first")
    finally:
        fake.online.provision_polls = 1
    paths = [(m, p.split("?")[0].rsplit("/", 1)[-1]) for m, p, s in fake.requests if "ep-first" in p and m == "PUT"]
    assert paths == [("PUT", "ep-first"), ("PUT", "first-v1"), ("PUT", "ep-first")]  # endpoint, deployment, traffic
    body = fake.online.endpoint_puts[-1]["properties"]
    assert body["traffic"] == {"first-v1": 100} and body["mirrorTraffic"] == {}
    deployed = fake.online.deployments["ep-first"]["first-v1"].body
    assert deployed["properties"]["model"].endswith("/models/first/versions/1")
    assert deployed["properties"]["instanceType"] == "Standard_DS3_v2" and deployed["sku"]["capacity"] == 1
    status = adapter.endpoint_status("ep-first")
    assert status["traffic"] == {"weights": {"first-v1": 100}, "mirror": {}}
    assert status["deployments"]["first-v1"]["ready"] is True and "ep-first" in adapter.endpoints.list()
    assert status["rollout"]["status"] == "succeeded" and status["url"].endswith("/online-score/ep-first")


def test_blue_green_with_alarms_succeeds_and_retires_blue(fake: AzureMLFake, adapter: AzureMLAdapter) -> None:
    _first(fake, adapter, "ep-bg", "bg")
    _healthy(fake, "ep-bg", "bg", 2)
    result = adapter.deploy(_spec("ep-bg", "bg", 2, {"blue_green": {"bake": "300ms"}}, [ERRORS, SLOW]), poll=POLL)
    assert result.outcome is RolloutOutcome.SUCCEEDED, result.reason
    assert fake.online.traffic("ep-bg") == {"bg-v2": 100} and fake.online.mirror("ep-bg") == {}
    assert set(fake.online.deployments["ep-bg"]) == {"bg-v2"}  # blue retired
    events = [h["event"] for h in result.history]
    events = events[len(events) - events[::-1].index("rollout started") - 1:]  # this rollout's events only
    assert events.count("baking") == 1 and "retired" in events
    metric_calls = [p for _, p, _ in fake.requests if "ep-bg/providers/Microsoft.Insights/metrics" in p]
    assert metric_calls and all("deployment+eq+%27bg-v2%27" in p or "deployment%20eq%20%27bg-v2%27" in p
                                for p in metric_calls)


@pytest.mark.parametrize("strategy, splits", [
    ({"canary": {"percent": 10, "bake": "100ms"}}, [{"cn-v1": 90, "cn-v2": 10}, {"cn-v2": 100}]),
    ({"linear": {"step_percent": 50, "interval": "100ms"}}, [{"cn-v1": 50, "cn-v2": 50}, {"cn-v2": 100}]),
    ({"all_at_once": {"bake": "100ms"}}, [{"cn-v2": 100}]),
])
def test_each_strategy_moves_traffic_in_its_steps(fake: AzureMLFake, tmp_path: Path, strategy: dict[str, Any],
                                                  splits: list[dict[str, int]]) -> None:
    adapter = _adapter(fake, tmp_path)
    endpoint = f"ep-{next(iter(strategy)).replace('_', '')}"
    _first(fake, adapter, endpoint, "cn") if endpoint == "ep-canary" else None
    if endpoint != "ep-canary":
        fake.online.models.setdefault("cn", {})
        if not fake.online.models["cn"]:
            _model(adapter, "cn")
        assert adapter.deploy(_spec(endpoint, "cn", 1, "all_at_once"), poll=POLL).outcome is RolloutOutcome.SUCCEEDED
    _healthy(fake, endpoint, "cn", 2)
    mark = len(fake.online.endpoint_puts)
    result = adapter.deploy(_spec(endpoint, "cn", 2, strategy, [ERRORS]), poll=POLL)
    assert result.outcome is RolloutOutcome.SUCCEEDED, result.reason
    sent = [{k: v for k, v in b["properties"]["traffic"].items()} for b in fake.online.endpoint_puts[mark:]]
    assert sent == splits  # zero entries never reach the service
    assert fake.online.traffic(endpoint) == {"cn-v2": 100}


def test_canary_rolls_back_when_azure_monitor_shows_errors(fake: AzureMLFake, adapter: AzureMLAdapter) -> None:
    _first(fake, adapter, "ep-rb", "rb")
    fake.online.set_requests("ep-rb", "rb-v2", {"2xx": [80.0, 70.0], "5xx": [20.0, 30.0]})
    alarm = {**ERRORS, "evaluation_periods": 2}
    result = adapter.deploy(_spec("ep-rb", "rb", 2, {"canary": {"percent": 20, "bake": "5s"}}, [alarm]), poll=POLL)
    assert result.outcome is RolloutOutcome.ROLLED_BACK
    assert result.alarm == "errors" and result.metric_value == pytest.approx(0.3)
    assert "errors" in result.reason
    assert fake.online.traffic("ep-rb") == {"rb-v1": 100} and fake.online.mirror("ep-rb") == {}
    assert set(fake.online.deployments["ep-rb"]) == {"rb-v1"}  # green removed after the rollback
    assert adapter.endpoint_status("ep-rb")["rollout"]["status"] == "rolled_back"


def test_latency_alarm_reads_milliseconds_as_seconds(fake: AzureMLFake, adapter: AzureMLAdapter) -> None:
    _first(fake, adapter, "ep-lat", "lat")
    fake.online.set_latency("ep-lat", "lat-v2", [120.0, 950.0])
    result = adapter.deploy(_spec("ep-lat", "lat", 2, {"blue_green": {"bake": "5s"}}, [SLOW]), poll=POLL)
    assert result.outcome is RolloutOutcome.ROLLED_BACK and result.alarm == "slow"
    assert result.metric_value == pytest.approx(0.95)


def test_shadow_mirrors_a_share_then_discards_green(fake: AzureMLFake, adapter: AzureMLAdapter) -> None:
    _first(fake, adapter, "ep-sh", "sh")
    _healthy(fake, "ep-sh", "sh", 2)
    seen: list[tuple[dict[str, int], dict[str, int]]] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            ep = fake.online.endpoints.get("ep-sh")
            if ep is not None and ep.mirror:
                seen.append((dict(ep.traffic), dict(ep.mirror)))
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = adapter.deploy(_spec("ep-sh", "sh", 2, {"shadow": {"percent": 20, "duration": "300ms"}}, [ERRORS]),
                                poll=POLL)
    finally:
        stop.set()
        watcher.join()
    assert result.outcome is RolloutOutcome.SUCCEEDED, result.reason
    assert seen and seen[0] == ({"sh-v1": 100}, {"sh-v2": 20})  # live and mirrored on different deployments
    assert fake.online.traffic("ep-sh") == {"sh-v1": 100} and fake.online.mirror("ep-sh") == {}
    assert set(fake.online.deployments["ep-sh"]) == {"sh-v1"}  # shadow discarded


def test_shadow_with_promote_goes_live(fake: AzureMLFake, adapter: AzureMLAdapter) -> None:
    _first(fake, adapter, "ep-shp", "shp")
    _healthy(fake, "ep-shp", "shp", 2)
    spec = _spec("ep-shp", "shp", 2, {"shadow": {"percent": 50, "duration": "100ms", "promote": True}}, [ERRORS])
    assert adapter.deploy(spec, poll=POLL).outcome is RolloutOutcome.SUCCEEDED
    assert fake.online.traffic("ep-shp") == {"shp-v2": 100} and fake.online.mirror("ep-shp") == {}


def test_azure_traffic_rules_are_enforced_before_any_request(fake: AzureMLFake, adapter: AzureMLAdapter) -> None:
    mark = len(fake.requests)
    with pytest.raises(UnsupportedFeatureError) as shadow:
        adapter.deploy(_spec("ep-rules", "nomodel", 1, {"shadow": {"percent": 80}}))
    assert "at most 50%" in str(shadow.value) and shadow.value.hint and "50 or less" in shadow.value.hint
    backend = AzureMLEndpoints(adapter.client())
    for weights, mirror, message in [
        ({"a": 70}, {}, "sum to 100"),
        ({"a": 100}, {"b": 60}, "at most 50%"),
        ({"a": 100}, {"b": 10, "c": 10}, "one deployment only"),
        ({"a": 90, "b": 10}, {"b": 10}, "live and mirrored"),
        ({"a": 100.5}, {}, "whole percentages"),
    ]:
        with pytest.raises(DeploymentError, match=message) as info:
            backend.set_traffic("ep-rules", weights, mirror)  # type: ignore[arg-type]
        assert info.value.hint
    assert fake.requests[mark:] == []
    check_traffic({"a": 100, "b": 0}, {"b": 50})  # zeros are allowed: they mean "no traffic"


def test_the_fake_service_refuses_what_the_sdk_sends_unchecked(fake: AzureMLFake, adapter: AzureMLAdapter) -> None:
    _first(fake, adapter, "ep-svc", "svc")
    ml = adapter.client()
    ep = ml.call("get", lambda m: m.online_endpoints.get("ep-svc"))
    ep.traffic, ep.mirror_traffic = {"svc-v1": 100}, {"svc-v1": 80}
    with pytest.raises(BackendValidationError, match="live and mirror"):
        ml.call("put", lambda m: m.online_endpoints.begin_create_or_update(ep).result())
    assert fake.online.traffic("ep-svc") == {"svc-v1": 100}


def test_a_deployment_that_fails_to_provision_ends_failed_and_blue_keeps_traffic(
        fake: AzureMLFake, adapter: AzureMLAdapter) -> None:
    _first(fake, adapter, "ep-fail", "fl")
    fake.online.fail_deployment("fl-v2", "container crashed: ModuleNotFoundError: sklearn")
    result = adapter.deploy(_spec("ep-fail", "fl", 2, "blue_green"), poll=POLL)
    assert result.outcome is RolloutOutcome.FAILED
    assert "fl-v2" in result.reason and "sklearn" in result.reason
    assert fake.online.traffic("ep-fail") == {"fl-v1": 100}
    assert set(fake.online.deployments["ep-fail"]) == {"fl-v1"}


def test_a_custom_model_without_serving_code_is_refused_before_any_request(
        fake: AzureMLFake, adapter: AzureMLAdapter) -> None:
    adapter.register_model("cst", URI.format("cst"), approval="approved")  # custom_model
    mark = len([r for r in fake.requests if "onlineEndpoints" in r[1]])
    with pytest.raises(BackendValidationError) as info:
        adapter.deploy(_spec("ep-cst", "cst", 1, "all_at_once"))
    assert info.value.hint and "scoring_script" in info.value.hint
    no_code = {"azureml": {"environment": "azureml:env:1", "scoring_script": "score.py"}}  # never the cwd by default
    with pytest.raises(BackendValidationError, match="scoring script"):
        adapter.deploy(_spec("ep-cst", "cst", 1, "all_at_once", backend_options=no_code))
    assert len([r for r in fake.requests if "onlineEndpoints" in r[1]]) == mark


def test_a_custom_model_deploys_with_a_registered_environment_and_code(
        fake: AzureMLFake, adapter: AzureMLAdapter) -> None:
    adapter.register_model("cst2", URI.format("cst2"), approval="approved")
    spec = _spec("ep-cst2", "cst2", 1, "all_at_once", serving={"env": {"MODE": "fast"}},
                 instances={"type": "cpu-medium", "count": 2},
                 backend_options={"azureml": {"environment": "azureml:sklearn-env:3", "scoring_script": "score.py",
                                              "code": f"{fake.ws}/codes/score/versions/1"}})
    assert adapter.deploy(spec, poll=POLL).outcome is RolloutOutcome.SUCCEEDED
    body = fake.online.deployments["ep-cst2"]["cst2-v1"].body
    props = body["properties"]
    assert props["environmentId"].endswith("sklearn-env/versions/3") or "sklearn-env" in props["environmentId"]
    assert props["codeConfiguration"]["scoringScript"] == "score.py"
    assert props["environmentVariables"] == {"MODE": "fast"}
    assert props["instanceType"] == "Standard_DS4_v2" and body["sku"]["capacity"] == 2


def test_killed_mid_rollout_then_resumed_rolls_back_on_new_alarm_data(fake: AzureMLFake, tmp_path: Path) -> None:
    adapter = _adapter(fake, tmp_path)
    _first(fake, adapter, "ep-kill", "kl")
    _healthy(fake, "ep-kill", "kl", 2)
    stop = threading.Event()

    def kill_when_canary_is_live() -> None:
        while not stop.is_set():
            ep = fake.online.endpoints.get("ep-kill")
            if ep is not None and ep.traffic.get("kl-v2"):
                stop.set()
            time.sleep(0.005)

    killer = threading.Thread(target=kill_when_canary_is_live)
    killer.start()
    spec = _spec("ep-kill", "kl", 2, {"canary": {"percent": 25, "bake": "10s"}}, [ERRORS])
    paused = adapter.deploy(spec, poll=POLL, stop=stop)
    killer.join()
    assert paused.outcome is RolloutOutcome.FAILED and "stopped while in_progress" in paused.reason
    assert fake.online.traffic("ep-kill") == {"kl-v1": 75, "kl-v2": 25}

    fake.online.set_requests("ep-kill", "kl-v2", {"2xx": [50.0], "5xx": [50.0]})
    again = _adapter(fake, tmp_path)  # a new process: only the state files carry over
    result = again.resume_rollout("ep-kill", poll=POLL)
    assert result.outcome is RolloutOutcome.ROLLED_BACK and result.alarm == "errors"
    assert fake.online.traffic("ep-kill") == {"kl-v1": 100}
    assert "resumed" in [h["event"] for h in result.history]


def test_promote_and_rollback_reach_the_controller_of_another_process(fake: AzureMLFake, tmp_path: Path) -> None:
    driver, other = _adapter(fake, tmp_path), _adapter(fake, tmp_path)
    _first(fake, driver, "ep-man", "mn")
    for version in (2, 3):
        driver.register_model("mn", URI.format(f"mn{version}"), type="mlflow_model", approval="approved")
    results: list[Any] = []
    spec = _spec("ep-man", "mn", 3, {"canary": {"percent": 10, "bake": "20s"}})
    thread = threading.Thread(target=lambda: results.append(driver.deploy(spec, poll=POLL)))
    thread.start()
    deadline = time.monotonic() + 20
    while not fake.online.endpoints["ep-man"].traffic.get("mn-v3") and time.monotonic() < deadline:
        time.sleep(0.01)
    promoted = other.promote("ep-man")
    thread.join(20)
    assert promoted.outcome is RolloutOutcome.SUCCEEDED and results[0].outcome is RolloutOutcome.SUCCEEDED
    assert fake.online.traffic("ep-man") == {"mn-v3": 100}

    with pytest.raises(DeploymentError, match=r"already retired|nothing to roll back"):
        other.rollback("ep-man")


def test_throttling_and_server_errors_are_retried_through_a_rollout(fake: AzureMLFake, adapter: AzureMLAdapter) -> None:
    _first(fake, adapter, "ep-thr", "thr")
    _healthy(fake, "ep-thr", "thr", 2)
    fake.online.fault(429, 2, method="PUT", path_contains="/onlineEndpoints/ep-thr/deployments/")
    fake.online.fault(503, 1, method="PUT", path_contains="/onlineEndpoints/ep-thr")
    fake.online.fault(503, 2, path_contains="/onlineEndpoints/ep-thr/providers/Microsoft.Insights/metrics")
    fake.online.fault(429, 1, path_contains="/online-operations/")
    result = adapter.deploy(_spec("ep-thr", "thr", 2, {"blue_green": {"bake": "200ms"}}, [ERRORS]), poll=POLL)
    assert result.outcome is RolloutOutcome.SUCCEEDED, result.reason
    statuses = [s for _, p, s in fake.requests if "ep-thr" in p or "online-operations" in p]
    assert statuses.count(429) >= 2 and statuses.count(503) >= 3


def test_traffic_is_re_read_until_the_service_shows_it(fake: AzureMLFake, adapter: AzureMLAdapter) -> None:
    _first(fake, adapter, "ep-lag", "lag")
    backend = AzureMLEndpoints(adapter.client(), poll=0.01, traffic_timeout=0.3)
    fake.online.traffic_lag = 3
    try:
        backend.set_traffic("ep-lag", {"lag-v1": 100}, {})  # no change: nothing stale to wait for
        adapter.register_model("lag", URI.format("lag2"), type="mlflow_model")
        backend.create_deployment("ep-lag", "lag-v3", _spec("ep-lag", "lag", 3, "blue_green"),
                                  {"group": "lag", "version": 3, "type": "mlflow_model"})
        gets = len(fake.requests)
        backend.set_traffic("ep-lag", {"lag-v1": 60, "lag-v3": 40}, {})
        reads = [p for m, p, _ in fake.requests[gets:] if m == "GET" and p.split("?")[0].endswith("/ep-lag")]
        assert len(reads) >= 4  # the stale answers were read through
        fake.online.traffic_lag = 10_000
        with pytest.raises(DeploymentError, match="still shows traffic") as info:
            backend.set_traffic("ep-lag", {"lag-v1": 100, "lag-v3": 0}, {})
        assert info.value.hint and "cloudml rollout resume ep-lag" in info.value.hint
    finally:
        fake.online.traffic_lag = 0
        fake.online.endpoints["ep-lag"].stale.clear()


def test_invoke_follows_traffic_or_pins_a_deployment(fake: AzureMLFake, adapter: AzureMLAdapter) -> None:
    _first(fake, adapter, "ep-inv", "inv")
    answer = adapter.invoke("ep-inv", [[1.0, 2.0], [3.0, 4.0]])
    assert answer == {"predictions": [0, 0], "deployment": "inv-v1"}
    with pytest.raises(NotFoundError):
        adapter.invoke("ep-inv", [[1.0]], deployment="nope")
    assert adapter.invoke("ep-inv", [[1.0]], deployment="inv-v1")["deployment"] == "inv-v1"
    assert adapter.invoke("ep-inv", [[1.0]])["deployment"] == "inv-v1"  # the pin did not stick
    with pytest.raises(NotFoundError):
        adapter.endpoint_status("ep-never")


def test_deployment_names_fit_azure_rules() -> None:
    assert deployment_name("Churn_Model", 12) == "churn-model-v12"
    assert deployment_name("9lives", 1) == "m-9lives-v1"
    long = deployment_name("x" * 60, 123)
    assert len(long) == 32 and long.endswith("-v123") and long[0].isalpha()
    assert long != deployment_name("x" * 59 + "y", 123)


def test_a_first_deployment_that_fails_leaves_nothing_live_and_can_be_retried(
        fake: AzureMLFake, adapter: AzureMLAdapter) -> None:
    _model(adapter, "ff", 1)
    fake.online.fail_deployment("ff-v1", "image pull failed")
    result = adapter.deploy(_spec("ep-ff", "ff", 1, "blue_green"), poll=POLL)
    assert result.outcome is RolloutOutcome.FAILED and "image pull failed" in result.reason
    assert fake.online.deployments["ep-ff"] == {} and fake.online.traffic("ep-ff") == {}
    again = adapter.deploy(_spec("ep-ff", "ff", 1, {"blue_green": {"bake": 0}}), poll=POLL)
    assert again.outcome is RolloutOutcome.SUCCEEDED, again.reason
    assert fake.online.traffic("ep-ff") == {"ff-v1": 100}
    assert adapter.controller().store.load("ep-ff")["live"] == "ff-v1"


def test_timeline_periods_and_delete(fake: AzureMLFake, adapter: AzureMLAdapter) -> None:
    _first(fake, adapter, "ep-del", "del")
    fake.online.set_requests("ep-del", "del-v1", {"2xx": [90.0, 100.0], "5xx": [10.0, 0.0]})
    periods = adapter.endpoints.periods("ep-del", "del-v1", 1, 120)  # the CLI asks for 1 s periods
    assert [(p["requests"], p["error_rate"]) for p in periods] == [(100.0, 0.1), (100.0, 0.0)]
    assert periods[1]["start"] - periods[0]["start"] == 60
    adapter.endpoints.delete("ep-del")
    assert "ep-del" not in fake.online.endpoints and adapter.controller().store.load("ep-del") is None
    with pytest.raises(NotFoundError):
        adapter.endpoint_status("ep-del")


def test_metric_alert_status_is_read_for_existing_alarms(fake: AzureMLFake, adapter: AzureMLAdapter) -> None:
    from cloudml.spec.deployment import Alarm

    backend = adapter.endpoints
    alarm = Alarm(name="ops-5xx", existing={"azureml": "churn-5xx"})
    fake.online.set_alert("churn-5xx", [({"deployment": "x-v1"}, "Unhealthy"), ({"deployment": "x-v2"}, "Healthy")])
    assert backend.existing_alarm_state("x", "x-v2", alarm).state == "OK"
    fired = backend.existing_alarm_state("x", "x-v1", alarm)
    assert fired.state == "ALARM" and "Unhealthy" in fired.reason
    fake.online.set_alert("churn-5xx", [({}, "Healthy")])  # no deployment dimension: the rule covers all
    assert backend.existing_alarm_state("x", "x-v9", alarm).state == "OK"
    with pytest.raises(NotFoundError):
        backend.existing_alarm_state("x", "x-v1", Alarm(name="gone", existing={"azureml": "other-rg/nope"}))
    with pytest.raises(DeploymentError, match=r"existing\.azureml"):
        backend.existing_alarm_state("x", "x-v1", Alarm(name="aws", existing={"sagemaker": "a"}))


def test_an_existing_metric_alert_rolls_a_canary_back(fake: AzureMLFake, adapter: AzureMLAdapter) -> None:
    _first(fake, adapter, "ep-ext", "ext")
    fake.online.set_alert("ext-5xx", [({"deployment": "ext-v2"}, "Unhealthy"), ({"deployment": "ext-v1"}, "Healthy")])
    alarms = [{"name": "ops-5xx", "existing": {"azureml": "ext-5xx"}}]
    result = adapter.deploy(_spec("ep-ext", "ext", 2, {"canary": {"percent": 20, "bake": "5s"}}, alarms), poll=POLL)
    assert result.outcome is RolloutOutcome.ROLLED_BACK and result.alarm == "ops-5xx"
    assert fake.online.traffic("ep-ext") == {"ext-v1": 100}
    fake.online.set_alert("ext-5xx", [({"deployment": "ext-v2"}, "Healthy")])
    result = adapter.deploy(_spec("ep-ext", "ext", 2, {"canary": {"percent": 20, "bake": "1s"}}, alarms), poll=POLL)
    assert result.outcome is RolloutOutcome.SUCCEEDED, result.reason


def test_periods_that_are_not_an_azure_grain_combine_minutes(fake: AzureMLFake, adapter: AzureMLAdapter) -> None:
    from cloudml.spec.deployment import Alarm

    _first(fake, adapter, "ep-grain", "gr")
    fake.online.set_requests("ep-grain", "gr-v1", {"2xx": [50.0, 40.0, 100.0, 90.0], "5xx": [0.0, 10.0, 0.0, 10.0]})
    fake.online.set_latency("ep-grain", "gr-v1", [100.0, 700.0, 200.0, 150.0])
    metrics = adapter.metrics()
    two_min = {"period": "2m", "evaluation_periods": 2}
    errors = Alarm(name="e", metric="error_rate", threshold=0.5, **two_min)
    calls = Alarm(name="n", metric="invocations", threshold=1000, **two_min)
    slow = Alarm(name="s", metric="latency_p99", threshold="1s", **two_min)
    assert metrics.datapoints("ep-grain", "gr-v1", errors) == [pytest.approx(0.1), pytest.approx(0.05)]
    assert metrics.datapoints("ep-grain", "gr-v1", calls) == [100.0, 200.0]
    assert metrics.datapoints("ep-grain", "gr-v1", slow) == [pytest.approx(0.7), pytest.approx(0.2)]  # worst minute
    five = Alarm(name="f", metric="invocations", threshold=1, period="5m")  # a native grain: one PT5M point
    assert metrics.datapoints("ep-grain", "gr-v1", five) == [90.0 + 10.0]
    assert any("interval=PT5M" in p for _, p, _ in fake.requests)
    # under a minute (a local demo's 1s) is read as whole minutes, rounded up, as CloudWatch does for SageMaker
    mark = len(fake.requests)
    short = Alarm(name="q", metric="invocations", threshold=1000, period="1s", evaluation_periods=2)
    assert metrics.datapoints("ep-grain", "gr-v1", short) == metrics.datapoints(
        "ep-grain", "gr-v1", Alarm(name="q", metric="invocations", threshold=1000, period="1m", evaluation_periods=2))
    assert all("interval=PT1M" in p for _, p, _ in fake.requests[mark:] if "metrics" in p)


@pytest.mark.parametrize("conclude, live", [("rollback", "ab-v1"), ("promote", "ab-v2")])
def test_ab_test_holds_a_split_then_concludes(fake: AzureMLFake, tmp_path: Path, conclude: str, live: str) -> None:
    adapter = _adapter(fake, tmp_path)
    endpoint = f"ep-ab-{conclude}"
    if "ab" not in fake.online.models:
        _model(adapter, "ab")
    assert adapter.deploy(_spec(endpoint, "ab", 1, "all_at_once"), poll=POLL).outcome is RolloutOutcome.SUCCEEDED
    _healthy(fake, endpoint, "ab", 2)
    mark = len(fake.online.endpoint_puts)
    spec = _spec(endpoint, "ab", 2, {"ab_test": {"percent": 30, "duration": "200ms", "conclude": conclude}}, [ERRORS])
    result = adapter.deploy(spec, poll=POLL)
    assert result.outcome is RolloutOutcome.SUCCEEDED, result.reason
    sent = [b["properties"]["traffic"] for b in fake.online.endpoint_puts[mark:]]
    assert sent[0] == {"ab-v1": 70, "ab-v2": 30} and fake.online.traffic(endpoint) == {live: 100}
    assert set(fake.online.deployments[endpoint]) == {live}
