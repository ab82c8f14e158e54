"""Data capture on SageMaker endpoints: the ``DataCaptureConfig`` cloudml asks for, and reading captures back for drift.

A deployment's ``capture: {percent, destination}`` becomes the endpoint config's ``DataCaptureConfig``:
``EnableCapture``, ``InitialSamplingPercentage`` (the percent rounded up: SageMaker takes whole
percents), requests and responses (``CaptureOptions`` ``Input`` and ``Output``), JSON bodies captured
as JSON text (``CaptureContentTypeHeader.JsonContentTypes``), to ``capture.destination`` or else
``s3://<bucket>/<prefix>/capture/<endpoint>``. Both rollout engines send it (deploy.py / client.py
and variants.py).

SageMaker writes one JSON object per request to
``<destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl`` in its own envelope::

    {"captureData": {"endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
                                       "data": "{\\"instances\\": [[1, 2]]}", "encoding": "JSON"},
                     "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                                        "data": "{\\"predictions\\": [0]}", "encoding": "JSON"}},
     "eventMetadata": {"eventId": "...", "inferenceTime": "2026-01-01T10:00:00Z"}, "eventVersion": "0"}

``data`` is the body as text for ``JSON`` and ``CSV`` encodings, and base64 for any content type not
listed in the capture header. :func:`load_capture` turns such files (local, or under an ``s3://``
prefix) into the columns :func:`cloudml.drift.load_capture` gives for a local endpoint, so
:func:`cloudml.drift.drift_report` works the same on both.

Example:
    >>> from cloudml.spec.deployment import Deployment
    >>> d = Deployment(endpoint="churn", model={"group": "churn"}, capture={"percent": 20})
    >>> cfg = data_capture_config(d, "s3://ml-bucket/cloudml")
    >>> cfg["InitialSamplingPercentage"], cfg["DestinationS3Uri"]
    (20, 's3://ml-bucket/cloudml/capture/churn')
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from cloudml.errors import BackendValidationError, DataError, UnsupportedFeatureError
from cloudml.spec.deployment import Deployment

__all__ = ["CAPTURE_JSON_TYPES", "complete_capture", "data_capture_config", "load_capture", "records",
           "settings_root", "to_neutral"]

CAPTURE_JSON_TYPES = ["application/json"]  # what cloudml endpoints are invoked with (client.invoke)


def settings_root(settings: Any) -> str | None:
    """``s3://<bucket>/<prefix>`` from the adapter settings, or None without a bucket.

    Example:
        >>> from cloudml.config import SageMakerSettings
        >>> settings_root(SageMakerSettings(bucket="ml-bucket", prefix="/team/")), settings_root(SageMakerSettings())
        ('s3://ml-bucket/team', None)
    """
    bucket = getattr(settings, "bucket", None)
    if not bucket:
        return None
    prefix = str(getattr(settings, "prefix", "") or "").strip("/")
    return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"


def data_capture_config(d: Deployment, root: str | None) -> dict[str, Any] | None:
    """The ``DataCaptureConfig`` of a deployment (None without ``capture`` or with ``enabled: false``).

    ``DestinationS3Uri`` is ``capture.destination``, else ``<root>/capture/<endpoint>``; with neither it is
    left out and filled in at deploy time (:func:`complete_capture`). A destination that is not
    ``s3://`` is refused (``deploy.capture``).

    Example:
        >>> d = Deployment(endpoint="ep", model={"group": "g"}, capture={"percent": 12.5, "destination": "s3://b/cap"})
        >>> data_capture_config(d, None)
        {'EnableCapture': True, 'InitialSamplingPercentage': 13, 'CaptureOptions': [{'CaptureMode': 'Input'}, {'CaptureMode': 'Output'}], 'CaptureContentTypeHeader': {'JsonContentTypes': ['application/json']}, 'DestinationS3Uri': 's3://b/cap'}
    """
    capture = d.capture
    if capture is None or not capture.enabled:
        return None
    destination = capture.destination or (f"{root}/capture/{d.endpoint}" if root else None)
    if destination is not None and not destination.startswith("s3://"):
        raise UnsupportedFeatureError("sagemaker", None, "deploy.capture", f"capture.destination is {destination}; "
                                      "SageMaker writes captured data to an s3:// URI")
    config: dict[str, Any] = {
        "EnableCapture": True, "InitialSamplingPercentage": min(100, max(1, math.ceil(capture.percent))),
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"JsonContentTypes": list(CAPTURE_JSON_TYPES)}}
    if destination is not None:
        config["DestinationS3Uri"] = destination.rstrip("/")
    return config


def complete_capture(config: dict[str, Any] | None, endpoint: str, settings: Any) -> dict[str, Any] | None:
    """``config`` with its ``DestinationS3Uri`` (from the settings' bucket when the plan had none).

    Example:
        >>> from cloudml.config import SageMakerSettings
        >>> complete_capture({"EnableCapture": True}, "ep", SageMakerSettings(bucket="ml-bucket"))
        {'EnableCapture': True, 'DestinationS3Uri': 's3://ml-bucket/cloudml/capture/ep'}
    """
    if not config or "DestinationS3Uri" in config:
        return config
    root = settings_root(settings)
    if root is None:
        raise BackendValidationError(f"endpoint {endpoint} captures data but has nowhere to write it",
                                     backend="sagemaker", hint="set capture.destination: s3://... in the deployment, "
                                     "or sagemaker.bucket in cloudml.yaml")
    return {**config, "DestinationS3Uri": f"{root}/capture/{endpoint}"}


# -- reading captured data back -----------------------------------------------------------------------
def _body(part: Mapping[str, Any] | None, where: str) -> Any:
    """The decoded body of ``endpointInput`` / ``endpointOutput``: JSON as objects, CSV as rows of values."""
    if not part or part.get("data") is None:
        return None
    data, encoding = str(part["data"]), str(part.get("encoding", "")).upper()
    content_type = str(part.get("observedContentType", "")).lower()
    if encoding not in ("JSON", "CSV"):  # base64: SageMaker's default for content types not in the header
        try:
            data = base64.b64decode(data, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise DataError("drift", f"{where}: a {encoding or 'base64'} body that is not base64 UTF-8 text",
                            hint="capture JSON bodies as JSON (cloudml sets CaptureContentTypeHeader)") from None
        encoding = "JSON" if "json" in content_type else "CSV" if "csv" in content_type else ""
    if encoding == "JSON":
        try:
            return json.loads(data)
        except ValueError:
            raise DataError("drift", f"{where}: the body is not JSON", hint="invoke with application/json") from None
    if encoding == "CSV":
        return [[_scalar(v) for v in line.split(",")] for line in data.splitlines() if line.strip()]
    raise DataError("drift", f"{where}: cannot read a body of content type {content_type or 'unknown'}",
                    hint="cloudml reads JSON and CSV bodies")


def _scalar(text: str) -> Any:
    text = text.strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number


def to_neutral(record: Mapping[str, Any], where: str = "record") -> dict[str, Any]:
    """One SageMaker capture record as cloudml's ``{"request": {"instances"}, "response": {"predictions"}}``.

    JSON requests may be ``{"instances": [...]}``, a list of instances or one object; CSV requests are
    one instance per line. JSON responses may be ``{"predictions": [...]}`` or a list; CSV responses one
    value per line (or per comma).

    Example:
        >>> rec = {"captureData": {
        ...     "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "data": "1,2.5\\n3,4\\n", "encoding": "CSV"},
        ...     "endpointOutput": {"observedContentType": "text/csv", "mode": "OUTPUT", "data": "0\\n1", "encoding": "CSV"}}}
        >>> to_neutral(rec)
        {'request': {'instances': [[1, 2.5], [3, 4]]}, 'response': {'predictions': [0, 1]}}
    """
    try:
        capture = record["captureData"]
        request = _body(capture.get("endpointInput"), where)
        response = _body(capture.get("endpointOutput"), where)
    except (KeyError, TypeError, AttributeError):
        raise DataError("drift", f"{where} is not a SageMaker capture record",
                        hint="SageMaker capture files hold one {\"captureData\": ...} object per line") from None
    if isinstance(request, Mapping) and "instances" in request:
        instances = request["instances"]
    elif isinstance(request, list):
        instances = request
    elif request is None:
        raise DataError("drift", f"{where} has no captured request", hint="capture Input (cloudml captures both)")
    else:
        instances = [request]
    predictions: Any = response.get("predictions") if isinstance(response, Mapping) else response
    if isinstance(predictions, list) and predictions and all(isinstance(p, list) and len(p) == 1 for p in predictions):
        predictions = [p[0] for p in predictions]  # a CSV response: one value per line
    elif isinstance(predictions, list) and len(predictions) == 1 and isinstance(predictions[0], list) \
            and len(predictions[0]) == len(instances) > 1:
        predictions = predictions[0]  # a CSV response: values on one line
    return {"request": {"instances": list(instances)}, "response": {"predictions": predictions}}


def _local_files(path: Path) -> list[Path]:
    files = sorted(p for p in path.rglob("*.jsonl") if p.is_file()) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise DataError("drift", f"no captured requests at {path}",
                        hint="enable capture on the deployment (capture: {percent: 20}) and send traffic")
    return files


def _s3_lines(uri: str, client: Any) -> Iterator[tuple[str, str]]:
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    keys: list[str] = []
    token: str | None = None
    while True:
        resp = client.call("s3", "list_objects_v2", Bucket=bucket, Prefix=prefix,
                           **({"ContinuationToken": token} if token else {}))
        keys += [str(o["Key"]) for o in resp.get("Contents", []) if str(o["Key"]).endswith(".jsonl")]
        token = resp.get("NextContinuationToken")
        if not token:
            break
    if not keys:
        raise DataError("drift", f"no captured requests under {uri}",
                        hint="SageMaker writes capture files a few minutes after the requests; check the destination")
    for key in sorted(keys):
        body = client.call("s3", "get_object", Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
        for lineno, line in enumerate(body.splitlines(), 1):
            yield f"s3://{bucket}/{key}:{lineno}", line


def _lines(path: str | Path, client: Any) -> Iterable[tuple[str, str]]:
    if str(path).startswith("s3://"):
        if client is None:
            from cloudml.adapters.sagemaker.client import SageMakerClient
            from cloudml.config import SageMakerSettings

            client = SageMakerClient(SageMakerSettings())
        yield from _s3_lines(str(path), client)
        return
    for file in _local_files(Path(path)):
        for lineno, line in enumerate(file.read_text().splitlines(), 1):
            yield f"{file}:{lineno}", line


def _variant_and_time(where: str, record: Mapping[str, Any]) -> tuple[str | None, float | None]:
    """The variant (from ``<endpoint>/<variant>/yyyy/mm/dd/hh/<file>``) and the inference time of a record."""
    from datetime import datetime

    parts = where.rsplit(":", 1)[0].replace("\\", "/").split("/")
    variant = parts[-6] if len(parts) >= 6 and all(x.isdigit() for x in parts[-5:-1]) else None
    stamp = (record.get("eventMetadata") or {}).get("inferenceTime") if isinstance(record, Mapping) else None
    try:
        at = datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp() if stamp else None
    except ValueError:
        at = None
    return variant, at


def records(path: str | Path, client: Any = None) -> Iterator[dict[str, Any]]:
    """SageMaker capture records as a local endpoint's: ``{"at", "deployment", "request", "response"}``.

    ``deployment`` is the production variant, read from where SageMaker puts the file
    (``<endpoint>/<variant>/yyyy/mm/dd/hh/``); ``at`` is the record's ``eventMetadata.inferenceTime``
    (epoch seconds). ``path`` as for :func:`load_capture`.

    Example:
        >>> import tempfile, pathlib, json
        >>> d = pathlib.Path(tempfile.mkdtemp()) / "churn" / "green" / "2026" / "01" / "01" / "10"
        >>> d.mkdir(parents=True)
        >>> rec = {"captureData": {"endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
        ...     "data": json.dumps({"instances": [[1, 2]]}), "encoding": "JSON"}},
        ...     "eventMetadata": {"inferenceTime": "2026-01-01T10:00:00Z"}}
        >>> _ = (d / "f.jsonl").write_text(json.dumps(rec) + "\\n")
        >>> r = next(records(d.parents[5])); r["deployment"], r["at"], r["request"]
        ('green', 1767261600.0, {'instances': [[1, 2]]})
    """
    for _, record in _placed_records(path, client):
        yield record


def _placed_records(path: str | Path, client: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(file:line, neutral record with at and deployment)`` for every captured request under ``path``."""
    for where, line in _lines(path, client):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise DataError("drift", f"{where} is not a JSON line", hint="point at SageMaker capture files") from None
        variant, at = _variant_and_time(where, record)
        yield where, {"at": at, "deployment": variant, **to_neutral(record, where)}


def load_capture(path: str | Path, feature_names: Sequence[str] | None = None, prediction: str = "prediction",
                 *, client: Any = None) -> dict[str, list[Any]]:
    """Columns from SageMaker capture files, the same as :func:`cloudml.drift.load_capture` gives locally.

    ``path`` is a capture file, a folder (searched recursively: SageMaker nests ``<endpoint>/<variant>/
    yyyy/mm/dd/hh/``) or an ``s3://`` prefix, read with ``s3:ListBucket`` and ``s3:GetObject`` through
    ``client`` (a :class:`~cloudml.adapters.sagemaker.client.SageMakerClient`; default: one from the
    environment's settings). Instances given as lists need ``feature_names``; instances given as objects
    keep their keys; predictions go to the ``prediction`` column.

    Example:
        >>> import tempfile, pathlib, json
        >>> d = pathlib.Path(tempfile.mkdtemp()) / "churn" / "AllTraffic" / "2026" / "01" / "01" / "10"
        >>> d.mkdir(parents=True)
        >>> rec = {"captureData": {"endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
        ...     "data": json.dumps({"instances": [{"age": 40, "plan": "pro"}]}), "encoding": "JSON"},
        ...     "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
        ...     "data": json.dumps({"predictions": [1]}), "encoding": "JSON"}}, "eventVersion": "0"}
        >>> _ = (d / "10-00-00-000-abc.jsonl").write_text(json.dumps(rec) + "\\n")
        >>> load_capture(d.parents[5])
        {'age': [40], 'plan': ['pro'], 'prediction': [1]}
    """
    from cloudml.drift import capture_columns

    return capture_columns(_placed_records(path, client), feature_names, prediction, path)
