"""``deploy.capture`` on SageMaker: DataCaptureConfig on both rollout engines, and reading captures back for drift.

The requests are checked against botocore's CreateEndpointConfig shape (maximums and enums included);
both engines run with boto3 against the SageMaker fake in front of moto_server. The capture files are
built from the envelope AWS documents (Model Monitor, "View captured data": ``captureData.endpointInput``
/ ``endpointOutput`` with ``observedContentType``, ``mode``, ``data``, ``encoding``; ``eventMetadata``;
``eventVersion``; files under ``<destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/``), with JSON, CSV
and base64 bodies.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest

import cloudml
from cloudml.adapter import RolloutOutcome
from cloudml.adapters.sagemaker import SageMakerAdapter
from cloudml.adapters.sagemaker.capture import complete_capture, data_capture_config, load_capture, to_neutral
from cloudml.adapters.sagemaker.client import SageMakerClient
from cloudml.config import SageMakerSettings
from cloudml.drift import drift_report
from cloudml.drift import load_capture as load_local_capture
from cloudml.errors import BackendValidationError, DataError, UnsupportedFeatureError
from cloudml.spec.deployment import Deployment
from cloudml.spec.validate import validate_data
from tests.fakes.sagemaker import SageMakerFake, sagemaker_fake
from tests.unit.test_sagemaker_deploy import request_problems

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/x"
BUCKET = "cloudml-capture"
CONTROLLER = {"sagemaker": {"native_guardrails": False}}
CREATE_ENDPOINT_CONFIG = botocore.session.get_session().get_service_model("sagemaker").operation_model(
    "CreateEndpointConfig").input_shape


def deployment(endpoint: str = "churn", **fields: Any) -> Deployment:
    doc = {"apiVersion": "cloudml/v1", "kind": "Deployment", "endpoint": endpoint,
           "model": {"group": "churn", "version": 1}, **fields}
    d = validate_data(doc)
    assert isinstance(d, Deployment)
    return d


def _config_request(capture: dict[str, Any]) -> dict[str, Any]:
    return {"EndpointConfigName": "churn-1", "DataCaptureConfig": capture, "ProductionVariants": [
        {"VariantName": "AllTraffic", "ModelName": "m", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}]}


# -- the request -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("strategy", ["blue_green", {"canary": {"percent": 10}}])
@pytest.mark.parametrize("options", [{}, CONTROLLER])
def test_both_engines_plan_the_same_capture_config(strategy: Any, options: dict[str, Any]) -> None:
    d = deployment(capture={"percent": 20}, strategy=strategy, backend_options=options)
    plan = SageMakerAdapter(SageMakerSettings(bucket="ml-bucket", prefix="team")).compile_deployment(d).document
    assert plan["DataCaptureConfig"] == {
        "EnableCapture": True, "InitialSamplingPercentage": 20, "DestinationS3Uri": "s3://ml-bucket/team/capture/churn",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]}}
    assert request_problems(_config_request(plan["DataCaptureConfig"]), CREATE_ENDPOINT_CONFIG) == []


@pytest.mark.parametrize(("capture", "percent", "destination"), [
    ({"percent": 0.1}, 1, "s3://b/cloudml/capture/churn"),  # whole percents, never 0 (that captures nothing)
    ({"percent": 99.5}, 100, "s3://b/cloudml/capture/churn"),
    ({}, 100, "s3://b/cloudml/capture/churn"),
    ({"percent": 5, "destination": "s3://audit/capture/"}, 5, "s3://audit/capture"),
])
def test_percent_and_destination(capture: dict[str, Any], percent: int, destination: str) -> None:
    cfg = data_capture_config(deployment(capture=capture), "s3://b/cloudml")
    assert cfg is not None and (cfg["InitialSamplingPercentage"], cfg["DestinationS3Uri"]) == (percent, destination)
    assert request_problems(_config_request(cfg), CREATE_ENDPOINT_CONFIG) == []


def test_no_capture_and_disabled_capture_send_nothing() -> None:
    assert data_capture_config(deployment(), "s3://b") is None
    assert data_capture_config(deployment(capture={"enabled": False}), "s3://b") is None
    assert "DataCaptureConfig" not in SageMakerAdapter().compile_deployment(deployment()).document


def test_a_destination_outside_s3_is_refused() -> None:
    with pytest.raises(UnsupportedFeatureError) as info:
        SageMakerAdapter().compile_deployment(deployment(capture={"destination": "gs://bucket/capture"}))
    assert (info.value.adapter, info.value.feature) == ("sagemaker", "deploy.capture")


def test_without_a_bucket_the_destination_is_resolved_at_deploy_time() -> None:
    compiled = cloudml.compile(deployment(capture={"percent": 50}), "sagemaker")  # no settings: still compiles
    cfg = compiled.document["DataCaptureConfig"]
    assert "DestinationS3Uri" not in cfg
    assert complete_capture(cfg, "churn", SageMakerSettings(bucket="later"))["DestinationS3Uri"] == (  # type: ignore[index]
        "s3://later/cloudml/capture/churn")
    with pytest.raises(BackendValidationError, match="nowhere to write") as info:
        complete_capture(cfg, "churn", SageMakerSettings())
    assert "capture.destination" in (info.value.hint or "")


# -- both engines, against the fake -------------------------------------------------------------------

@pytest.fixture(scope="module")
def fake() -> Iterator[SageMakerFake]:
    with sagemaker_fake(activation_seconds=0.05, rollback_seconds=0.1, weights_seconds=0.05,
                        poll_interval=0.02) as server:
        server.client("s3").create_bucket(Bucket=BUCKET)
        yield server


_ADAPTERS: dict[str, SageMakerAdapter] = {}


def _adapter(fake: SageMakerFake) -> tuple[SageMakerAdapter, str]:
    """The module's adapter on the fake (boto3 clients are built once) and a fresh model group."""
    if fake.url not in _ADAPTERS:
        adapter = cloudml.get_adapter("sagemaker", region=REGION, endpoint_url=fake.url, bucket=BUCKET, role_arn=ROLE)
        assert isinstance(adapter, SageMakerAdapter)
        _ADAPTERS[fake.url] = adapter
    a = _ADAPTERS[fake.url]
    group = f"grp-{uuid.uuid4().hex[:8]}"
    for i in (1, 2):
        a.register_model(group, f"s3://{BUCKET}/m{i}.tar.gz", image="img:1")
    return a, group


def _capture_of(fake: SageMakerFake, endpoint: str) -> dict[str, Any] | None:
    sm = fake.client("sagemaker")
    config = sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
    return sm.describe_endpoint_config(EndpointConfigName=config).get("DataCaptureConfig") or None


def test_native_guardrails_create_and_update_with_capture(fake: SageMakerFake) -> None:
    a, group = _adapter(fake)
    endpoint = f"ep-{uuid.uuid4().hex[:8]}"
    first = deployment(endpoint, model={"group": group, "version": 1}, strategy="all_at_once",
                       capture={"percent": 30})
    assert a.deploy(first, poll=0.02).outcome is RolloutOutcome.SUCCEEDED
    capture = _capture_of(fake, endpoint)
    assert capture is not None and capture["InitialSamplingPercentage"] == 30
    assert capture["DestinationS3Uri"] == f"s3://{BUCKET}/cloudml/capture/{endpoint}"
    second = deployment(endpoint, model={"group": group, "version": 2}, strategy={"blue_green": {"bake": "0.1s"}},
                        capture={"percent": 10, "destination": f"s3://{BUCKET}/audit"})
    result = a.deploy(second, poll=0.02)
    assert result.outcome is RolloutOutcome.SUCCEEDED, result
    capture = _capture_of(fake, endpoint)
    assert capture is not None and (capture["InitialSamplingPercentage"], capture["DestinationS3Uri"]) == (
        10, f"s3://{BUCKET}/audit")


def test_the_controller_puts_capture_on_every_config_it_creates(fake: SageMakerFake, tmp_path: Path) -> None:
    a, group = _adapter(fake)
    endpoint = f"ep-{uuid.uuid4().hex[:8]}"
    options = {"poll": 0.02, "state_dir": str(tmp_path)}
    first = deployment(endpoint, model={"group": group, "version": 1}, strategy="all_at_once",
                       backend_options=CONTROLLER, capture={"percent": 40})
    assert a.deploy(first, **options).outcome is RolloutOutcome.SUCCEEDED
    assert (_capture_of(fake, endpoint) or {}).get("InitialSamplingPercentage") == 40
    mark = len(fake.requests)
    canary = deployment(endpoint, model={"group": group, "version": 2}, backend_options=CONTROLLER,
                        strategy={"canary": {"percent": 20, "bake": "0.05s"}}, capture={"percent": 40})
    assert a.deploy(canary, **options).outcome is RolloutOutcome.SUCCEEDED
    configs = [r for r in fake.requests[mark:] if r.operation == "CreateEndpointConfig"]
    assert len(configs) == 2  # add v2, then retire v1: the second carries the capture config over
    assert (_capture_of(fake, endpoint) or {}).get("DestinationS3Uri") == f"s3://{BUCKET}/cloudml/capture/{endpoint}"


# -- reading captures back ---------------------------------------------------------------------------

def _part(mode: str, content_type: str, body: str, encoding: str) -> dict[str, Any]:
    data = base64.b64encode(body.encode()).decode() if encoding == "BASE64" else body
    return {"observedContentType": content_type, "mode": mode, "data": data, "encoding": encoding}


def _record(request: tuple[str, str, str], response: tuple[str, str, str], n: int) -> dict[str, Any]:
    return {"captureData": {"endpointInput": _part("INPUT", *request), "endpointOutput": _part("OUTPUT", *response)},
            "eventMetadata": {"eventId": f"aaaaaaaa-bbbb-cccc-dddd-{n:012d}",
                              "inferenceTime": f"2026-01-01T10:{n:02d}:00Z"},
            "eventVersion": "0"}


JSON = "application/json"
RECORDS = [
    # JSON bodies, captured as JSON text (cloudml's CaptureContentTypeHeader)
    _record((JSON, json.dumps({"instances": [{"age": 41, "plan": "pro"}, {"age": 23, "plan": "free"}]}), "JSON"),
            (JSON, json.dumps({"predictions": [1, 0]}), "JSON"), 1),
    # a content type not in the header: SageMaker base64-encodes the body
    _record(("application/json; charset=utf-8", json.dumps({"instances": [{"age": 35, "plan": "pro"}]}), "BASE64"),
            ("application/json; charset=utf-8", json.dumps({"predictions": [1]}), "BASE64"), 2),
]
CSV_RECORD = _record(("text/csv", "41,1.5\n23,0.5\n", "CSV"), ("text/csv; charset=utf-8", "0.91\n0.12", "CSV"), 3)


def _write(root: Path, endpoint: str, records: list[dict[str, Any]], hour: str = "10") -> Path:
    folder = root / endpoint / "AllTraffic" / "2026" / "01" / "01" / hour
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hour}-00-00-000-{uuid.uuid4()}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_reader_gives_the_columns_the_local_reader_gives(tmp_path: Path) -> None:
    _write(tmp_path / "sm", "churn", RECORDS[:1])
    _write(tmp_path / "sm", "churn", RECORDS[1:], hour="11")
    columns = load_capture(tmp_path / "sm")
    assert columns == {"age": [41, 23, 35], "plan": ["pro", "free", "pro"], "prediction": [1, 0, 1]}
    neutral = tmp_path / "local"
    neutral.mkdir()
    (neutral / "c.jsonl").write_text("".join(json.dumps(to_neutral(r)) + "\n" for r in RECORDS))
    assert load_local_capture(neutral) == columns  # one drift code path for local and SageMaker endpoints
    report = drift_report({"age": [40, 25, 33, 41], "plan": ["pro", "free", "pro", "free"]}, columns,
                          features=["age", "plan"])
    assert {f.name for f in report.features} == {"age", "plan"}


def test_csv_bodies_need_feature_names(tmp_path: Path) -> None:
    path = _write(tmp_path, "churn", [CSV_RECORD])
    assert load_capture(path, ["age", "ratio"]) == {"age": [41, 23], "ratio": [1.5, 0.5], "prediction": [0.91, 0.12]}
    with pytest.raises(DataError, match="feature names"):
        load_capture(path)
    with pytest.raises(DataError, match="3 features"):
        load_capture(path, ["a", "b", "c"])


def test_reader_errors_name_the_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no captured requests"):
        load_capture(tmp_path)
    path = _write(tmp_path, "churn", RECORDS[:1])
    with path.open("a") as fh:
        fh.write(json.dumps({"request": {"instances": [1]}}) + "\n")  # a local capture line, not SageMaker's
    with pytest.raises(DataError, match=rf"{path.name}:2 is not a SageMaker capture record"):
        load_capture(path)
    bad = _record(("application/x-npy", "AAAA", "BASE64"), (JSON, "{}", "JSON"), 4)
    with pytest.raises(DataError, match="content type application/x-npy"):
        load_capture(_write(tmp_path / "other", "churn", [bad]))


def test_reader_lists_and_reads_an_s3_prefix(fake: SageMakerFake, tmp_path: Path) -> None:
    s3 = fake.client("s3")
    endpoint = f"ep-{uuid.uuid4().hex[:8]}"
    for hour, records in (("10", RECORDS[:1]), ("11", RECORDS[1:])):
        path = _write(tmp_path, endpoint, records, hour)
        s3.upload_file(str(path), BUCKET, f"cloudml/capture/{endpoint}/{path.relative_to(tmp_path).as_posix()}")
    s3.put_object(Bucket=BUCKET, Key=f"cloudml/capture/{endpoint}/README.txt", Body=b"not a capture file")
    client = SageMakerClient(SageMakerSettings(region=REGION, endpoint_url=fake.url))
    columns = load_capture(f"s3://{BUCKET}/cloudml/capture/{endpoint}", client=client)
    assert columns == {"age": [41, 23, 35], "plan": ["pro", "free", "pro"], "prediction": [1, 0, 1]}
    with pytest.raises(DataError, match="no captured requests under"):
        load_capture(f"s3://{BUCKET}/cloudml/capture/nothing-here", client=client)
