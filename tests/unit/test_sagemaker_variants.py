"""SageMaker rollouts driven by cloudml's core controller over production and shadow variants.

boto3 against the SageMaker fake (tests/fakes/sagemaker.py) in front of moto_server, on 127.0.0.1 only:
shadow variants, controller-driven canaries (``native_guardrails: false``), rollback from CloudWatch
datapoints put with ``put_metric_data``, a controller killed mid-rollout and resumed, throttling retried.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

import cloudml
from cloudml.adapter import RolloutOutcome
from cloudml.adapters.sagemaker import SageMakerAdapter
from cloudml.adapters.sagemaker.variants import VariantTraffic, metric_queries, period_values
from cloudml.errors import DeploymentError, NotFoundError
from cloudml.rollout import FileStateStore
from cloudml.spec.deployment import Alarm, Deployment
from cloudml.spec.validate import validate_data
from tests.fakes.sagemaker import SageMakerFake, sagemaker_fake

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/x"
BUCKET = "cloudml-variants"
ERRORS = {"name": "errors", "metric": "error_rate", "threshold": 0.1, "period": "10s"}
CONTROLLER = {"sagemaker": {"native_guardrails": False}}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fake() -> Iterator[SageMakerFake]:
    with sagemaker_fake(activation_seconds=0.05, rollback_seconds=0.1, weights_seconds=0.05,
                        poll_interval=0.02) as server:
        yield server


def _state(options: dict[str, Any]) -> Path:
    """Where the adapter keeps controller state for the fake's region."""
    return Path(options["state_dir"]) / "sagemaker" / REGION


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


_ADAPTERS: dict[str, SageMakerAdapter] = {}


def _adapter(fake: SageMakerFake, *, fresh: bool = False) -> SageMakerAdapter:
    """An adapter on the fake; shared unless ``fresh`` (building boto3 clients takes about half a second)."""
    if fresh or fake.url not in _ADAPTERS:
        a = cloudml.get_adapter("sagemaker", region=REGION, endpoint_url=fake.url, bucket=BUCKET, role_arn=ROLE)
        assert isinstance(a, SageMakerAdapter)
        if fresh:
            return a
        _ADAPTERS[fake.url] = a
    return _ADAPTERS[fake.url]


def _deployment(endpoint: str, group: str, version: int, **fields: Any) -> Deployment:
    doc = {"apiVersion": "cloudml/v1", "kind": "Deployment", "endpoint": endpoint,
           "model": {"group": group, "version": version}, **fields}
    d = validate_data(doc)
    assert isinstance(d, Deployment)
    return d


_GROUPS: dict[str, str] = {}


def _setup(fake: SageMakerFake, tmp_path: Path) -> tuple[SageMakerAdapter, str, str, dict[str, Any]]:
    """An adapter, a fresh endpoint name, a model group with versions 1 and 2 (shared), and the deploy options."""
    a = _adapter(fake)
    if fake.url not in _GROUPS:
        group = _GROUPS[fake.url] = _name("grp")
        for i in (1, 2):
            a.register_model(group, f"s3://{BUCKET}/m{i}.tar.gz", image="img:1")
    return a, _name("ep"), _GROUPS[fake.url], {"poll": 0.02, "state_dir": str(tmp_path / "state")}


def _variants(fake: SageMakerFake, endpoint: str) -> tuple[dict[str, float], dict[str, float]]:
    desc = fake.client("sagemaker").describe_endpoint(EndpointName=endpoint)
    return ({v["VariantName"]: v["CurrentWeight"] for v in desc["ProductionVariants"]},
            {v["VariantName"]: v["CurrentWeight"] for v in desc.get("ShadowProductionVariants", [])})


def _events(result: Any) -> list[dict[str, Any]]:
    """The history of this rollout only (the state keeps earlier rollouts' events too)."""
    starts = [i for i, e in enumerate(result.history) if e["event"] == "rollout started"]
    return list(result.history[starts[-1]:] if starts else result.history)


def _traffic(result: Any) -> list[dict[str, int]]:
    return [e["weights"] for e in _events(result) if e["event"] == "traffic"]


def _first(a: SageMakerAdapter, endpoint: str, group: str, options: dict[str, Any]) -> None:
    result = a.deploy(_deployment(endpoint, group, 1, strategy="all_at_once", backend_options=CONTROLLER), **options)
    assert result.outcome is RolloutOutcome.SUCCEEDED, result


# -- compile ---------------------------------------------------------------------------------------------

def test_shadow_and_controller_mode_compile_to_the_controller_plan() -> None:
    shadow = _deployment("churn", "churn", 2, strategy={"shadow": {"percent": 20, "promote": True}})
    doc = cloudml.compile(shadow, "sagemaker").document
    assert (doc["Mode"], doc["Variant"]["Kind"], doc["Traffic"]["ShadowWeight"]) == \
        ("controller", "ShadowProductionVariants", 20.0)
    assert [p["phase"] for p in doc["Rollout"]["phases"]] == \
        ["create", "wait_ready", "mirror", "bake", "promote", "shift", "retire"]
    canary = _deployment("churn", "churn", 2, strategy={"canary": {"percent": 60}}, backend_options=CONTROLLER)
    assert cloudml.compile(canary, "sagemaker").document["Mode"] == "controller"  # 60% is fine off guardrails
    native = _deployment("churn", "churn", 2, strategy={"canary": {"percent": 10}})
    assert "DeploymentConfig" in cloudml.compile(native, "sagemaker").document
    assert SageMakerAdapter.capabilities.supports("deploy.shadow")


def test_controller_mode_reads_existing_alarms_by_name() -> None:
    d = _deployment("churn", "churn", 2, strategy="blue_green", backend_options=CONTROLLER,
                    alarms=[{"name": "ext", "existing": {"sagemaker": "my-alarm"}}, ERRORS])
    doc = cloudml.compile(d, "sagemaker").document
    assert doc["ExistingAlarms"] == ["my-alarm"] and [a["name"] for a in doc["Alarms"]] == ["errors"]


def test_metric_queries_and_period_values() -> None:
    slow = Alarm(name="slow", metric="latency_p90", threshold="200ms", period="30s", evaluation_periods=3)
    (query,) = metric_queries("churn", "churn-v2", slow)
    assert query["MetricStat"]["Metric"]["MetricName"] == "ModelLatency" and query["MetricStat"]["Period"] == 30
    res = [{"Id": "latency", "Timestamps": [datetime.fromtimestamp(60, timezone.utc)], "Values": [250_000.0]}]
    assert period_values(slow, res, 0.0, 30, 3) == [None, None, 0.25]  # microseconds -> seconds, oldest first
    calls = Alarm(name="calls", metric="invocations", threshold=1000)
    assert period_values(calls, [{"Id": "invocations", "Timestamps": [0.0], "Values": [5.0]}], 0.0, 60, 2) == [5.0, None]


def _watch(fake: SageMakerFake, endpoint: str) -> tuple[list[tuple[dict[str, float], dict[str, float]]],
                                                        threading.Event, threading.Thread]:
    """Record (production, shadow) weights every few ms until the event is set."""
    seen: list[tuple[dict[str, float], dict[str, float]]] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.append(_variants(fake, endpoint))
            time.sleep(0.03)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return seen, done, thread


def test_ab_test_holds_a_fixed_split_then_keeps_a(fake: SageMakerFake, tmp_path: Path) -> None:
    """ab_test: both versions serve at a fixed split for the duration (alarms armed), then A keeps all."""
    a, endpoint, group, options = _setup(fake, tmp_path)
    _first(a, endpoint, group, options)
    seen, done, watcher = _watch(fake, endpoint)
    try:
        result = a.deploy(_deployment(endpoint, group, 2, alarms=[ERRORS],
                                      strategy={"ab_test": {"percent": 30, "duration": "0.4s"}}), **options)
    finally:
        done.set()
        watcher.join(5)
    v1, v2 = f"{group}-v1", f"{group}-v2"
    assert result.outcome is RolloutOutcome.SUCCEEDED and "without a promotion" in result.reason, result
    assert ({v1: 70.0, v2: 30.0}, {}) in seen  # the split SageMaker served, on two production variants
    assert _variants(fake, endpoint) == ({v1: 100.0}, {})
    traffic = VariantTraffic(a.client(), ROLE, poll=0.02)
    with pytest.raises(DeploymentError, match="has no variants"):
        traffic.set_traffic(endpoint, {"ghost": 100}, {})


@pytest.mark.parametrize("controller", [False, True])
def test_serving_image_and_env_reach_create_model(fake: SageMakerFake, tmp_path: Path, controller: bool) -> None:
    """serving.image and serving.env become the model's container on both paths (they were dropped before)."""
    a, endpoint, group, options = _setup(fake, tmp_path)
    serving = {"image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/serve:1", "env": {"SAGEMAKER_PROGRAM": "inf.py"}}
    extra = {"backend_options": CONTROLLER} if controller else {}
    result = a.deploy(_deployment(endpoint, group, 1, strategy="all_at_once", serving=serving, **extra), **options)
    assert result.outcome is RolloutOutcome.SUCCEEDED, result
    sm = fake.client("sagemaker")
    names = [m["ModelName"] for m in sm.list_models(NameContains=endpoint)["Models"]]
    assert names, "no model was created for the endpoint"
    container = sm.describe_model(ModelName=names[-1])["PrimaryContainer"]
    assert container["Image"] == serving["image"] and container["Environment"] == serving["env"]
    assert container["ModelDataUrl"] == f"s3://{BUCKET}/m1.tar.gz"


def test_existing_alarm_state_is_read_from_cloudwatch(fake: SageMakerFake) -> None:
    cw, name = fake.client("cloudwatch"), _name("team-5xx")
    cw.put_metric_alarm(AlarmName=name, Namespace="AWS/SageMaker", MetricName="Invocation5XXErrors", Statistic="Sum",
                        Period=60, EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold")
    traffic = VariantTraffic(_adapter(fake).client(), ROLE)
    alarm = Alarm(name="ext", existing={"sagemaker": name})
    assert traffic.existing_alarm_state("churn", "churn-v2", alarm).state == "OK"  # moto's first state
    cw.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="5xx burst")
    status = traffic.existing_alarm_state("churn", "churn-v2", alarm)
    assert (status.name, status.state, status.reason) == ("ext", "ALARM", f"CloudWatch alarm {name}: 5xx burst")
    missing = Alarm(name="gone", existing={"sagemaker": _name("nope")})
    assert traffic.existing_alarm_state("churn", "churn-v2", missing).state == "INSUFFICIENT_DATA"


# -- rollouts --------------------------------------------------------------------------------------------

def test_shadow_mirrors_then_promotes(fake: SageMakerFake, tmp_path: Path) -> None:
    a, endpoint, group, options = _setup(fake, tmp_path)
    _first(a, endpoint, group, options)
    seen, done, watcher = _watch(fake, endpoint)
    shadow = _deployment(endpoint, group, 2, alarms=[ERRORS],
                         strategy={"shadow": {"percent": 25, "duration": "0.4s", "promote": True}})
    try:
        result = a.deploy(shadow, **options)
    finally:
        done.set()
        watcher.join(5)
    assert result.outcome is RolloutOutcome.SUCCEEDED, result
    v1, v2 = f"{group}-v1", f"{group}-v2"
    assert ({v1: 100.0}, {v2: 25.0}) in seen  # v2 was a shadow variant mirroring 25% while v1 answered
    assert _variants(fake, endpoint) == ({v2: 100.0}, {})
    events = [e["event"] for e in _events(result)]
    assert events.index("mirroring") < events.index("baking") < events.index("promoting") < events.index("retired")
    state = FileStateStore(_state(options)).load(endpoint)
    assert state is not None and (state["status"], state["live"]) == ("succeeded", v2)
    assert a.endpoint_status(endpoint, **options)["rollout"]["live"] == v2


def test_shadow_discarded_leaves_blue_alone(fake: SageMakerFake, tmp_path: Path) -> None:
    a, endpoint, group, options = _setup(fake, tmp_path)
    _first(a, endpoint, group, options)
    result = a.deploy(_deployment(endpoint, group, 2, strategy={"shadow": {"percent": 10, "duration": "0.2s"}}),
                      **options)
    assert result.outcome is RolloutOutcome.SUCCEEDED and "discarded" in result.reason
    assert _variants(fake, endpoint) == ({f"{group}-v1": 100.0}, {})


def test_controller_canary_without_guardrails(fake: SageMakerFake, tmp_path: Path) -> None:
    a, endpoint, group, options = _setup(fake, tmp_path)
    _first(a, endpoint, group, options)
    team = _name("team-alarm")  # an existing CloudWatch alarm, OK throughout: read, never firing
    fake.client("cloudwatch").put_metric_alarm(
        AlarmName=team, Namespace="AWS/SageMaker", MetricName="Invocation5XXErrors", Statistic="Sum", Period=60,
        EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold")
    mark = len(fake.requests)
    canary = _deployment(endpoint, group, 2, alarms=[ERRORS, {"name": "team", "existing": {"sagemaker": team}}],
                         backend_options=CONTROLLER, strategy={"canary": {"percent": 20, "bake": "0.1s"}})
    result = a.deploy(canary, **options)
    assert result.outcome is RolloutOutcome.SUCCEEDED, result
    assert any(r.operation == "DescribeAlarms" for r in fake.requests[mark:])
    v1, v2 = f"{group}-v1", f"{group}-v2"
    assert _traffic(result) == [{v1: 80, v2: 20}, {v1: 0, v2: 100}]
    assert _variants(fake, endpoint) == ({v2: 100.0}, {})
    ops = [r.operation for r in fake.requests[mark:]]
    assert ops.count("UpdateEndpointWeightsAndCapacities") == 2 and ops.count("PutMetricAlarm") == 0
    assert ops.count("UpdateEndpoint") == 2  # add v2, retire v1; no DeploymentConfig anywhere
    dep = fake.deployment(endpoint)
    assert dep is not None and dep.deployment_config is None


def _put_errors(fake: SageMakerFake, endpoint: str, variant: str, errors: float, calls: float) -> None:
    """Errors and invocations in each of the last six 10-second periods (what SageMaker would publish)."""
    now = time.time()
    dims = [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant}]
    data = []
    for k in range(6):
        stamp = datetime.fromtimestamp(now - 10 * k - 1, timezone.utc)
        data += [{"MetricName": "Invocation5XXErrors", "Dimensions": dims, "Timestamp": stamp, "Value": errors},
                 {"MetricName": "Invocations", "Dimensions": dims, "Timestamp": stamp, "Value": calls}]
    fake.client("cloudwatch").put_metric_data(Namespace="AWS/SageMaker", MetricData=data)


def test_rollback_driven_by_cloudwatch_datapoints(fake: SageMakerFake, tmp_path: Path) -> None:
    a, endpoint, group, options = _setup(fake, tmp_path)
    _first(a, endpoint, group, options)
    v1, v2 = f"{group}-v1", f"{group}-v2"
    _put_errors(fake, endpoint, v1, errors=0, calls=100)   # blue is healthy...
    _put_errors(fake, endpoint, v2, errors=40, calls=100)  # ...green fails 40% of its requests
    canary = _deployment(endpoint, group, 2, alarms=[ERRORS], backend_options=CONTROLLER,
                         strategy={"canary": {"percent": 10, "bake": "5s"}})
    fake.inject("GetMetricData", "ThrottlingException")  # CloudWatch's CBOR protocol, retried like the rest
    mark = len(fake.requests)
    started = time.monotonic()
    result = a.deploy(canary, **options)
    assert result.outcome is RolloutOutcome.ROLLED_BACK, result
    assert [r.status for r in fake.requests[mark:] if r.operation == "GetMetricData"][:2] == [400, 200]
    assert (result.alarm, result.metric_value) == ("errors", pytest.approx(0.4))
    assert time.monotonic() - started < 4  # the first datapoint check fired; no full bake
    assert _traffic(result) == [{v1: 90, v2: 10}]
    assert _variants(fake, endpoint) == ({v1: 100.0}, {})  # green removed, blue takes everything


def test_throttling_is_retried(fake: SageMakerFake, tmp_path: Path) -> None:
    a, endpoint, group, options = _setup(fake, tmp_path)
    _first(a, endpoint, group, options)
    fake.inject("UpdateEndpointWeightsAndCapacities", "ThrottlingException")
    fake.inject("CreateEndpointConfig", 503)
    mark = len(fake.requests)
    result = a.deploy(_deployment(endpoint, group, 2, strategy={"linear": {"step_percent": 50, "interval": "0.1s"}},
                                  backend_options=CONTROLLER), **options)
    assert result.outcome is RolloutOutcome.SUCCEEDED, result
    statuses = [r.status for r in fake.requests[mark:] if r.operation == "UpdateEndpointWeightsAndCapacities"]
    assert statuses[:2] == [400, 200] and statuses.count(200) == 2
    assert [r.status for r in fake.requests[mark:] if r.operation == "CreateEndpointConfig"][:2] == [503, 200]


def test_adopts_an_endpoint_made_by_native_guardrails(fake: SageMakerFake, tmp_path: Path) -> None:
    a, endpoint, group, options = _setup(fake, tmp_path)
    native = a.deploy(_deployment(endpoint, group, 1, strategy="all_at_once"), **options)
    assert native.outcome is RolloutOutcome.SUCCEEDED
    result = a.deploy(_deployment(endpoint, group, 2, strategy={"blue_green": {"bake": "0.1s"}},
                                  backend_options=CONTROLLER), **options)
    assert result.outcome is RolloutOutcome.SUCCEEDED, result
    assert _traffic(result) == [{"AllTraffic": 0, f"{group}-v2": 100}]
    assert _variants(fake, endpoint) == ({f"{group}-v2": 100.0}, {})
    with pytest.raises(NotFoundError, match="no rollout driven by cloudml's controller"):
        a.rollback(endpoint, state_dir=str(tmp_path / "elsewhere"))
    # and back to native guardrails: the variant keeps its name, as guardrails require
    again = a.deploy(_deployment(endpoint, group, 1, strategy="all_at_once"), **options)
    assert again.outcome is RolloutOutcome.SUCCEEDED, again
    assert set(_variants(fake, endpoint)[0]) == {f"{group}-v2"}


def _baking(store: FileStateStore, endpoint: str, green: str) -> bool:
    """True once the rollout of ``green`` is in its first bake."""
    state = store.load(endpoint) or {}
    if state.get("status") != "in_progress" or state.get("green") != green:
        return False
    starts = [i for i, e in enumerate(state["history"]) if e["event"] == "rollout started"]
    return any(e["event"] == "baking" for e in state["history"][starts[-1]:])


_CHILD = textwrap.dedent("""
    import json, sys
    import cloudml
    from cloudml.spec.validate import validate_data
    args = json.loads(sys.argv[1])
    adapter = cloudml.get_adapter("sagemaker", region="us-east-1", endpoint_url=args["url"], bucket=args["bucket"],
                                  role_arn=args["role"])
    adapter.deploy(validate_data(args["deployment"]), poll=0.02, state_dir=args["state_dir"])
""")


def test_controller_killed_mid_rollout_then_resumed(fake: SageMakerFake, tmp_path: Path) -> None:
    a, endpoint, group, options = _setup(fake, tmp_path)
    _first(a, endpoint, group, options)
    canary = _deployment(endpoint, group, 2, alarms=[ERRORS], backend_options=CONTROLLER,
                         strategy={"canary": {"percent": 30, "bake": "1s"}})
    args = {"url": fake.url, "bucket": BUCKET, "role": ROLE, "state_dir": options["state_dir"],
            "deployment": canary.model_dump(mode="json", by_alias=True)}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, json.dumps(args)], cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    store = FileStateStore(_state(options))
    try:
        deadline = time.monotonic() + 30
        while True:  # kill it in the middle of the canary bake, with 30% on green
            if _baking(store, endpoint, f"{group}-v2"):
                break
            assert child.poll() is None and time.monotonic() < deadline, "the child never reached the canary bake"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(10)
    v1, v2 = f"{group}-v1", f"{group}-v2"
    assert store.load(endpoint)["status"] == "in_progress"
    assert _variants(fake, endpoint) == ({v1: 70.0, v2: 30.0}, {})
    with pytest.raises(DeploymentError, match="in progress"):  # native guardrails must not cut across it
        a.deploy(_deployment(endpoint, group, 1, strategy="all_at_once"), **options)
    result = a.resume_rollout(endpoint, **options)
    assert result.outcome is RolloutOutcome.SUCCEEDED, result
    assert _variants(fake, endpoint) == ({v2: 100.0}, {})
    assert "resumed" in [e["event"] for e in _events(result)]


def test_manual_rollback_during_a_rollout_in_another_thread(fake: SageMakerFake, tmp_path: Path) -> None:
    a, endpoint, group, options = _setup(fake, tmp_path)
    _first(a, endpoint, group, options)
    results: list[Any] = []
    canary = _deployment(endpoint, group, 2, backend_options=CONTROLLER, strategy={"canary": {"percent": 50,
                                                                                              "bake": "20s"}})
    runner = threading.Thread(target=lambda: results.append(a.deploy(canary, **options)), daemon=True)
    runner.start()
    store = FileStateStore(_state(options))
    deadline = time.monotonic() + 15
    while not _baking(store, endpoint, f"{group}-v2"):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    manual = _adapter(fake, fresh=True).rollback(endpoint, **options)  # another controller holds the lock: it is asked
    runner.join(15)
    assert manual.outcome is RolloutOutcome.ROLLED_BACK and results[0].outcome is RolloutOutcome.ROLLED_BACK
    assert _variants(fake, endpoint) == ({f"{group}-v1": 100.0}, {})


def test_shadow_rolls_back_on_the_shadow_variants_datapoints(fake: SageMakerFake, tmp_path: Path) -> None:
    a, endpoint, group, options = _setup(fake, tmp_path)
    _first(a, endpoint, group, options)
    _put_errors(fake, endpoint, f"{group}-v2", errors=30, calls=100)
    shadow = _deployment(endpoint, group, 2, alarms=[ERRORS],
                         strategy={"shadow": {"percent": 50, "duration": "5s", "promote": True}})
    result = a.deploy(shadow, **options)
    assert result.outcome is RolloutOutcome.ROLLED_BACK and result.alarm == "errors", result
    assert _variants(fake, endpoint) == ({f"{group}-v1": 100.0}, {})  # the shadow variant is gone, v1 untouched
    assert [e["event"] for e in _events(result)][-2:] == ["rolled back", "removed"]


def test_a_variant_sagemaker_cannot_provision_fails_the_rollout_with_its_reason(fake: SageMakerFake,
                                                                                 tmp_path: Path) -> None:
    a, endpoint, group, options = _setup(fake, tmp_path)
    _first(a, endpoint, group, options)
    fake.fail_next_update(endpoint, "Unable to provision requested ML compute capacity.")
    canary = _deployment(endpoint, group, 2, backend_options=CONTROLLER, strategy={"canary": {"percent": 10}})
    result = a.deploy(canary, **options)
    assert result.outcome is RolloutOutcome.FAILED and "Unable to provision" in result.reason, result
    assert _variants(fake, endpoint) == ({f"{group}-v1": 100.0}, {})  # the variant never arrived; v1 keeps all


def test_a_first_deployment_that_fails_leaves_no_endpoint(fake: SageMakerFake, tmp_path: Path) -> None:
    a, endpoint, group, options = _setup(fake, tmp_path)
    fake.fail_next_create(endpoint, "The primary container failed the ping health check.")
    first = _deployment(endpoint, group, 1, strategy="all_at_once", backend_options=CONTROLLER)
    result = a.deploy(first, **options)
    assert result.outcome is RolloutOutcome.FAILED and "ping health check" in result.reason, result
    with pytest.raises(ClientError, match="Could not find endpoint"):
        fake.client("sagemaker").describe_endpoint(EndpointName=endpoint)
    again = a.deploy(first, **options)  # nothing was live: the next attempt is a first deployment again
    assert again.outcome is RolloutOutcome.SUCCEEDED, again
    assert _variants(fake, endpoint) == ({f"{group}-v1": 100.0}, {})
