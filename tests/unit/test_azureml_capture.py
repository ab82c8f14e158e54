"""deploy.capture on Azure ML: the data collector every rollout deployment carries (sent through the real
``MLClient`` to the fake on 127.0.0.1, tests/fakes/azureml_capture.py), and reading collected files for drift.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloudml.adapters.azureml.capture import (
    DEFAULT_ROOT,
    collector_spec,
    load_capture,
    records,
    sampling_rate,
)
from cloudml.drift import capture_format, drift_report
from cloudml.drift import load_capture as drift_load_capture
from cloudml.errors import DataError, UnsupportedFeatureError
from cloudml.spec.deployment import Deployment

SOURCE = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws/onlineEndpoints/{}/deployments/{}"
POLL = 0.02


# -- the deployment request -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fake() -> Iterator[Any]:
    pytest.importorskip("azure.ai.ml")
    from tests.fakes.azureml import azure_test_env
    from tests.fakes.azureml_capture import capture_fake

    with capture_fake() as server, azure_test_env(server):
        server.add_datastore("capture")
        yield server
        assert server.outbound == [], "a request tried to leave 127.0.0.1"


@pytest.fixture
def adapter(fake: Any, tmp_path: Path) -> Any:
    from cloudml.adapters.azureml import AzureMLAdapter
    from cloudml.config import AzureMLSettings
    from tests.fakes.azureml import RESOURCE_GROUP, SUBSCRIPTION, WORKSPACE, FakeCredential, cloud_kwargs

    a = AzureMLAdapter(AzureMLSettings(subscription_id=SUBSCRIPTION, resource_group=RESOURCE_GROUP,
                                       workspace=WORKSPACE, state_dir=str(tmp_path)))
    a.client(FakeCredential(), **cloud_kwargs(fake))
    return a


def _spec(endpoint: str, group: str, version: int, strategy: Any = "all_at_once", **extra: Any) -> Deployment:
    return Deployment.model_validate({"endpoint": endpoint, "model": {"group": group, "version": version},
                                      "strategy": strategy, **extra})


def _rollout(adapter: Any, tmp_path: Path, d: Deployment) -> Any:
    """The core controller over the Azure backend (what AzureMLRollouts.deploy drives)."""
    from cloudml.adapters.azureml.endpoints import AzureMLEndpoints, deployment_name
    from cloudml.rollout import FileStateStore, RolloutController

    info = {"group": d.model.group, "version": d.model.version, "type": "mlflow_model"}
    ctl = RolloutController(AzureMLEndpoints(adapter.client(), poll=POLL), FileStateStore(tmp_path / "state"),
                            poll=POLL)
    return ctl.deploy(d, model_name=deployment_name(d.model.group, int(d.model.version)), model=info)


def _register(adapter: Any, group: str, versions: int) -> None:
    for i in range(versions):
        adapter.register_model(group, f"azureml://datastores/workspaceblobstore/paths/models/{group}{i}/",
                               type="mlflow_model", approval="approved")


def test_every_deployment_of_a_rollout_carries_a_payload_collector(fake: Any, adapter: Any, tmp_path: Path) -> None:
    from cloudml.adapter import RolloutOutcome

    _register(adapter, "cap", 2)
    capture = {"percent": 25}
    assert _rollout(adapter, tmp_path, _spec("ep-cap", "cap", 1, capture=capture)).outcome is RolloutOutcome.SUCCEEDED
    result = _rollout(adapter, tmp_path, _spec("ep-cap", "cap", 2, {"blue_green": {"bake": "0s"}}, capture=capture))
    assert result.outcome is RolloutOutcome.SUCCEEDED, result.reason
    for name in ("cap-v1", "cap-v2"):
        sent = [b for b in fake.collector_puts if name in json.dumps(b)]
        assert sent, f"{name} was sent without a data collector"
        collections = sent[-1]["collections"]
        assert set(collections) == {"request", "response"}  # payload logging: Azure's reserved names
        for coll, c in collections.items():
            assert c["dataCollectionMode"].lower() == "enabled" and c["samplingRate"] == 0.25
            asset = c["dataId"].rsplit("/data/", 1)[1]
            assert asset == f"ep-cap-{name}-{coll}/versions/1"
            assert fake.data[(f"ep-cap-{name}-{coll}", "1")]["dataUri"] == f"{DEFAULT_ROOT}/ep-cap/{name}/{coll}"
    assert fake.online.traffic("ep-cap") == {"cap-v2": 100} and set(fake.online.deployments["ep-cap"]) == {"cap-v2"}
    got = adapter.client().call("get", lambda ml: ml.online_deployments.get("cap-v2", "ep-cap"))  # kept by the service
    assert got.data_collector.sampling_rate == 0.25 and set(got.data_collector.collections) == {"request", "response"}


def test_a_datastore_destination_gets_its_own_data_assets(fake: Any, adapter: Any, tmp_path: Path) -> None:
    _register(adapter, "dst", 1)
    d = _spec("ep-dst", "dst", 1, capture={"percent": 100, "destination": "azureml://datastores/capture/paths/ml/"})
    _rollout(adapter, tmp_path, d)
    body = fake.online.deployments["ep-dst"]["dst-v1"].body["properties"]["dataCollector"]
    for coll in ("request", "response"):
        name = body["collections"][coll]["dataId"].split("/data/")[1].split("/versions/")[0]
        assert name == collector_spec(d, "dst-v1")["collections"][coll]["data"]["name"]
        assert fake.data[(name, "1")]["dataUri"] == f"azureml://datastores/capture/paths/ml/ep-dst/dst-v1/{coll}"
        assert body["collections"][coll]["samplingRate"] == 1.0


def test_capture_off_sends_no_collector_and_bad_destinations_are_refused_before_any_request(
        fake: Any, adapter: Any, tmp_path: Path) -> None:
    _register(adapter, "off", 1)
    _rollout(adapter, tmp_path, _spec("ep-off", "off", 1, capture={"enabled": False}))
    assert "dataCollector" not in fake.online.deployments["ep-off"]["off-v1"].body["properties"]
    from cloudml.adapters.azureml.endpoints import AzureMLEndpoints

    mark = len(fake.requests)
    for bad in ("s3://bucket/capture", "https://acct.blob.core.windows.net/c/p", "azureml://datastores/x"):
        d = _spec("ep-off", "off", 1, capture={"destination": bad})
        with pytest.raises(UnsupportedFeatureError, match=r"deploy\.capture") as info:
            AzureMLEndpoints(adapter.client()).create_deployment("ep-off", "off-v1", d, {
                "group": "off", "version": 1, "type": "mlflow_model"})
        assert bad in str(info.value) and "azureml://datastores/" in (info.value.hint or "")
    assert fake.requests[mark:] == []


@pytest.mark.parametrize("rate, what", [(1.5, "at most 1"), (0.0, "greater than 0"), (-0.2, "greater than 0")])
def test_the_fake_refuses_a_sampling_rate_outside_zero_to_one(fake: Any, adapter: Any, rate: float,
                                                               what: str) -> None:
    from azure.ai.ml.entities import DataCollector, DeploymentCollection, ManagedOnlineDeployment

    from cloudml.adapters.azureml.endpoints import AzureMLEndpoints
    from cloudml.errors import BackendValidationError

    if "rate" not in fake.online.models:
        _register(adapter, "rate", 1)
    AzureMLEndpoints(adapter.client()).ensure_endpoint("ep-rate")
    collector = DataCollector(collections={c: DeploymentCollection(enabled="true") for c in ("request", "response")},
                              sampling_rate=rate)
    spec = ManagedOnlineDeployment(name="rate-v1", endpoint_name="ep-rate", model="azureml:rate:1",
                                   instance_type="Standard_DS3_v2", instance_count=1, data_collector=collector)
    with pytest.raises(BackendValidationError, match=what):
        adapter.client().call("put", lambda ml: ml.online_deployments.begin_create_or_update(spec).result())
    assert "rate-v1" not in fake.online.deployments["ep-rate"]


def test_sampling_rate_is_the_percent_as_a_share() -> None:
    assert [sampling_rate(p) for p in (100, 50, 0.5)] == [1.0, 0.5, 0.005]
    with pytest.raises(UnsupportedFeatureError):
        sampling_rate(0)
    assert collector_spec(_spec("ep", "g", 1), "g-v1") is None


# -- reading collected files ----------------------------------------------------------------------------
def _event(kind: str, data: Any, cid: str, endpoint: str = "churn", deployment: str = "churn-v2",
           **extra: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": f"{kind}-{cid}", "source": SOURCE.format(endpoint, deployment),
            "type": f"azureml.inference.{kind}", "datacontenttype": "application/json",
            "time": "2026-01-01T10:15:00Z", "data": data, "correlationid": cid, "xrequestid": cid, **extra}


def _write(root: Path, collection: str, events: list[dict[str, Any]], deployment: str = "churn-v2",
           hour: str = "10", name: str = "0f3a.jsonl", raw: list[str] | None = None) -> Path:
    folder = root / "churn" / deployment / collection / "2026" / "01" / "01" / hour
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / name
    file.write_text("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events)
                    + "".join(line + "\n" for line in raw or []))
    return file


def test_requests_and_responses_join_into_columns(tmp_path: Path) -> None:
    _write(tmp_path, "request", [
        _event("request", {"instances": [[41, 2.5], [33, 1.0]]}, "c1"),
        _event("request", {"instances": [{"age": 52, "tenure": 7.0}]}, "c2", deployment="churn-v3"),
        _event("request", json.dumps({"instances": [[29, 0.5]]}), "c3"),  # a JSON body logged as text
        _event("request", {"input_data": {"columns": ["age", "tenure"], "index": [0], "data": [[60, 9.0]]}}, "c4"),
        _event("request", [[18, 0.1]], "c5"),  # no response was collected for this one
    ])
    _write(tmp_path, "request", [_event("request", {"instances": [[70, 3.0]]}, "c6")], hour="11")
    _write(tmp_path, "response", [
        _event("response", {"predictions": [1, 0]}, "c1"),
        _event("response", [1], "c2", deployment="churn-v3"),
        _event("response", {"predictions": [[0]]}, "c3"),
        _event("response", [0], "c4"),
        _event("response", [1], "c6"),
        _event("response", [1], "orphan"),  # a response whose request is not here: ignored
    ])
    cols = load_capture(tmp_path, ["age", "tenure"])
    assert cols == {"age": [41, 33, 52, 29, 60, 18, 70], "tenure": [2.5, 1.0, 7.0, 0.5, 9.0, 0.1, 3.0],
                    "prediction": [1, 0, 1, 0, 0, None, 1]}
    assert capture_format(tmp_path) == "azureml" and drift_load_capture(tmp_path, ["age", "tenure"]) == cols
    first = next(records(tmp_path))
    assert (first["endpoint"], first["deployment"], first["at"]) == ("churn", "churn-v2", 1767262500.0)
    assert [r["deployment"] for r in records(tmp_path)].count("churn-v3") == 1


def test_drift_runs_on_collected_traffic(tmp_path: Path) -> None:
    ref = {"age": [20 + i % 40 for i in range(200)], "tenure": [float(i % 10) for i in range(200)]}
    events = [_event("request", {"instances": [[45 + i % 40, float(i % 10)] for i in range(i, i + 4)]}, f"c{i}")
              for i in range(0, 200, 4)]
    _write(tmp_path, "request", events)
    _write(tmp_path, "response", [_event("response", {"predictions": [0, 1, 0, 1]}, f"c{i}") for i in range(0, 200, 4)])
    report = drift_report(ref, drift_load_capture(tmp_path, ["age", "tenure"]), features=["age", "tenure"])
    assert report.current_rows == 200 and [f.name for f in report.features if f.drifted] == ["age"]


def test_a_broken_line_is_named_by_file_and_line(tmp_path: Path) -> None:
    file = _write(tmp_path, "request", [_event("request", {"instances": [[1, 2]]}, "c1")],
                  raw=['{"specversion":"1.0","type":"azureml.inference.request","data":{"inst'])
    for read in (load_capture, drift_load_capture):
        with pytest.raises(DataError, match=re.escape(f"{file}:2 is not a JSON line")) as info:
            read(tmp_path, ["a", "b"])
        assert info.value.hint
    other = _write(tmp_path, "request", [], name="other.jsonl", raw=['{"request": {"instances": [[1, 2]]}}'])
    file.unlink()
    with pytest.raises(DataError, match=re.escape(f"{other}:1 is not an Azure ML data collector record")):
        load_capture(tmp_path, ["a", "b"])


def test_what_cannot_be_read_says_why(tmp_path: Path) -> None:
    big = _write(tmp_path / "big", "request", [_event("request", "https://acct.blob.core.windows.net/x/y", "c1",
                                                      datainblob="true", datacontenttype="text/plain")])
    with pytest.raises(DataError, match=re.escape(f"{big}:1: the body is stored in a separate blob")):
        load_capture(tmp_path / "big", ["a"])
    _write(tmp_path / "lists", "request", [_event("request", {"instances": [[1, 2]]}, "c1")])
    with pytest.raises(DataError, match="feature names are needed"):
        load_capture(tmp_path / "lists")
    with pytest.raises(DataError, match="an instance has 2 values, not 3 features"):
        load_capture(tmp_path / "lists", ["a", "b", "c"])
    _write(tmp_path / "answers", "response", [_event("response", [1], "c1")])
    with pytest.raises(DataError, match="no collected requests") as info:
        load_capture(tmp_path / "answers", ["a"])
    assert "request" in (info.value.hint or "")
    with pytest.raises(DataError, match="no collected data"):
        load_capture(tmp_path / "nowhere", ["a"])


class _MemoryFS:
    """The two fsspec calls the reader makes (find, open), over a dict: how an azureml:// path is read."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files

    def find(self, path: str) -> list[str]:
        return [k for k in self.files if k.startswith(path)]

    def open(self, path: str, mode: str = "rb") -> Any:
        import io

        return io.BytesIO(self.files[path].encode())


def test_an_azureml_path_is_read_through_a_filesystem() -> None:
    root = "azureml://datastores/workspaceblobstore/paths/modelDataCollector/churn/"
    fs = _MemoryFS({
        root + "churn-v2/request/2026/01/01/10/a.jsonl": json.dumps(_event("request", {"instances": [[1, 2]]}, "c")),
        root + "churn-v2/response/2026/01/01/10/b.jsonl": json.dumps(_event("response", [1], "c")),
        root + "churn-v2/request/2026/01/01/10/readme.txt": "not collected data",
    })
    assert load_capture(root, ["a", "b"], fs=fs) == {"a": [1], "b": [2], "prediction": [1]}
    with pytest.raises(DataError, match="no collected data under"):
        load_capture(root + "nothing/", fs=fs)


@pytest.mark.parametrize(("body", "instances"), [
    ({"data": [[1, 2], [3, 4]]}, [[1, 2], [3, 4]]),  # the scoring-script convention
    ({"data": {"a": 1, "b": 2}}, [{"a": 1, "b": 2}]),
    ({"a": 1, "b": 2}, [{"a": 1, "b": 2}]),  # one object
    ({"input_data": [[1, 2]]}, [[1, 2]]),  # MLflow tensor input
    ("[[5, 6]]", [[5, 6]]),  # JSON logged as text
])
def test_request_body_shapes(tmp_path: Path, body: Any, instances: list[Any]) -> None:
    _write(tmp_path, "request", [_event("request", body, "c1")])
    assert next(records(tmp_path))["request"] == {"instances": instances}


def test_drift_load_capture_reads_every_endpoint_format(tmp_path: Path) -> None:
    local = tmp_path / "local"
    local.mkdir()
    (local / "20260101.jsonl").write_text(json.dumps({"request": {"instances": [[1, 2]]},
                                                      "response": {"predictions": [0]}}) + "\n")
    sm = tmp_path / "sm" / "churn" / "AllTraffic" / "2026" / "01" / "01" / "10"
    sm.mkdir(parents=True)
    (sm / "a.jsonl").write_text(json.dumps({"captureData": {
        "endpointInput": {"observedContentType": "application/json", "mode": "INPUT", "encoding": "JSON",
                          "data": json.dumps({"instances": [[1, 2]]})},
        "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT", "encoding": "JSON",
                           "data": json.dumps({"predictions": [0]})}}, "eventVersion": "0"}) + "\n")
    az = tmp_path / "az"
    _write(az, "request", [_event("request", {"instances": [[1, 2]]}, "c1")])
    _write(az, "response", [_event("response", {"predictions": [0]}, "c1")])
    for folder, fmt in ((local, "local"), (tmp_path / "sm", "sagemaker"), (az, "azureml")):
        assert capture_format(folder) == fmt
        assert drift_load_capture(folder, ["a", "b"]) == {"a": [1], "b": [2], "prediction": [0]}, fmt


# -- the adapter, now that deploy.capture is supported ---------------------------------------------------
def test_the_adapter_deploys_with_capture(fake: Any, adapter: Any) -> None:
    from cloudml.adapter import RolloutOutcome

    _register(adapter, "adp", 1)
    result = adapter.deploy(_spec("ep-adp", "adp", 1, capture={"percent": 10}), poll=POLL)
    assert result.outcome is RolloutOutcome.SUCCEEDED, result.reason
    sent = fake.online.deployments["ep-adp"]["adp-v1"].body["properties"]["dataCollector"]["collections"]
    assert {c: v["samplingRate"] for c, v in sent.items()} == {"request": 0.1, "response": 0.1}
    mark = len([r for r in fake.requests if "onlineEndpoints" in r[1]])
    with pytest.raises(UnsupportedFeatureError, match=r"deploy\.capture"):
        adapter.deploy(_spec("ep-adp", "adp", 1, capture={"destination": "s3://b/c"}), poll=POLL)
    assert len([r for r in fake.requests if "onlineEndpoints" in r[1]]) == mark  # refused before the endpoint


def test_the_continuous_training_deployment_compiles_for_azureml() -> None:
    import cloudml
    from cloudml.adapters.azureml import AzureMLAdapter

    assert "deploy.capture" not in AzureMLAdapter.capabilities.gaps
    blueprint = Path(__file__).resolve().parents[2] / "blueprints" / "continuous-training" / "deployment.yaml"
    assert "capture: {enabled: true, percent: 100}" in blueprint.read_text()
    compiled = cloudml.compile(str(blueprint), "azureml")
    assert compiled.target == "azureml" and compiled.document


def test_compile_refuses_a_capture_destination_azure_cannot_write_to() -> None:
    import cloudml
    from cloudml.errors import UnsupportedFeatureError
    from cloudml.spec.deployment import Deployment

    d = Deployment(endpoint="ep", model={"group": "g"}, capture={"percent": 10, "destination": "s3://b/cap"})
    with pytest.raises(UnsupportedFeatureError, match="datastore path") as info:
        cloudml.compile(d, "azureml")
    assert info.value.feature == "deploy.capture"
