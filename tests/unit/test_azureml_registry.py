"""The Azure ML model registry through the real ``MLClient`` against the fake on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("azure.ai.ml")

from cloudml.adapter import ModelVersion
from cloudml.adapters.azureml import AzureMLAdapter
from cloudml.config import AzureMLSettings
from cloudml.errors import BackendValidationError, ConflictError, NotFoundError
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

URI = "azureml://datastores/workspaceblobstore/paths/models/{}/"


@pytest.fixture(scope="module")
def fake() -> Iterator[AzureMLFake]:
    with azureml_fake() as server, azure_test_env(server):
        yield server
        assert server.outbound == [], "a request tried to leave 127.0.0.1"


@pytest.fixture
def adapter(fake: AzureMLFake, tmp_path: Path) -> AzureMLAdapter:
    a = AzureMLAdapter(AzureMLSettings(subscription_id=SUBSCRIPTION, resource_group=RESOURCE_GROUP,
                                       workspace=WORKSPACE, state_dir=str(tmp_path)))
    a.client(FakeCredential(), **cloud_kwargs(fake))
    return a


def test_register_list_approve_latest_round_trip(fake: AzureMLFake, adapter: AzureMLAdapter) -> None:
    first = adapter.register_model("fraud", URI.format("f1"), metrics={"auc": 0.91}, tags={"team": "risk"},
                                   run_id="train_20260101_abc", type="mlflow_model", description="first")
    assert isinstance(first, ModelVersion)
    assert (first.group, first.version, first.approval) == ("fraud", 1, "pending")
    assert first.metrics == {"auc": 0.91} and first.tags == {"team": "risk"} and first.run_id == "train_20260101_abc"
    assert first.uri.endswith("/paths/models/f1/") and first.created_at is not None
    stored = fake.online.models["fraud"]["1"]["properties"]
    assert stored["tags"] == {"team": "risk", "cloudml.approval": "pending"} and stored["modelType"] == "mlflow_model"

    for i in range(2, 6):  # five versions: the listing spans two pages of the fake (page size 3)
        adapter.register_model("fraud", URI.format(f"f{i}"), approval="rejected" if i == 5 else "pending")
    assert [m.version for m in adapter.list_models("fraud")] == [5, 4, 3, 2, 1]
    with pytest.raises(NotFoundError) as none:
        adapter.latest_approved("fraud")
    assert none.value.hint and "cloudml models approve fraud" in none.value.hint

    approved = adapter.set_approval("fraud", 2, "approved")
    assert approved.approval == "approved" and approved.tags == {}
    adapter.set_approval("fraud", 3, "approved")
    assert adapter.latest_approved("fraud").version == 3
    adapter.set_approval("fraud", 3, "rejected")
    latest = adapter.latest_approved("fraud")
    assert latest.version == 2 and latest.uri.endswith("/f2/")
    assert fake.online.models["fraud"]["1"]["properties"]["properties"]["cloudml.metric.auc"] == "0.91"


def test_every_group_is_listed_and_unknown_versions_name_the_next_step(adapter: AzureMLAdapter) -> None:
    adapter.register_model("alpha", URI.format("a1"))
    adapter.register_model("beta", URI.format("b1"))
    groups = {m.group for m in adapter.list_models()}
    assert {"alpha", "beta"} <= groups
    assert adapter.list_models("never-registered") == []
    with pytest.raises(NotFoundError) as info:
        adapter.set_approval("alpha", 9, "approved")
    assert "alpha v9" in str(info.value) and info.value.hint and "cloudml models list alpha" in info.value.hint


def test_bad_approval_and_type_are_refused_before_any_request(fake: AzureMLFake, adapter: AzureMLAdapter) -> None:
    mark = len(fake.requests)
    with pytest.raises(BackendValidationError, match="approval must be"):
        adapter.register_model("gamma", URI.format("g1"), approval="yes")
    with pytest.raises(BackendValidationError, match="model type"):
        adapter.register_model("gamma", URI.format("g1"), type="onnx")
    with pytest.raises(BackendValidationError, match="metrics are numbers"):
        adapter.register_model("gamma", URI.format("g1"), metrics={"auc": 0.9, "note": "good"})
    assert fake.requests[mark:] == []


def test_versions_are_immutable_in_the_service(fake: AzureMLFake, adapter: AzureMLAdapter) -> None:
    adapter.register_model("delta", URI.format("d1"))
    from azure.ai.ml.entities import Model

    client = adapter.client()
    with pytest.raises(ConflictError, match="immutable"):
        client.call("models.create_or_update", lambda ml: ml.models.create_or_update(
            Model(name="delta", version="1", path=URI.format("other"))))


def test_throttled_registry_calls_are_retried(fake: AzureMLFake, adapter: AzureMLAdapter) -> None:
    fake.online.fault(429, 2, path_contains="/models/epsilon")
    fake.online.fault(503, 1, method="PUT", path_contains="/models/epsilon")
    assert adapter.register_model("epsilon", URI.format("e1")).version == 1
    statuses = [s for _, path, s in fake.requests if "/models/epsilon" in path]
    assert statuses.count(429) == 2 and statuses.count(503) == 1 and statuses[-1] in (200, 201)
