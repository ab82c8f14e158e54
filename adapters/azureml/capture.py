"""Data collection on Azure ML online deployments: the collector cloudml asks for, and reading its files for drift.

A deployment's ``capture: {percent, destination}`` becomes the ``data_collector`` of every
``ManagedOnlineDeployment`` the rollout creates (endpoints.py): Azure ML's *payload logging*, the
reserved collections ``request`` and ``response`` (no change to the scoring code; ``model_inputs`` /
``model_outputs`` are the custom-logging collections a scoring script fills itself), enabled, with
``sampling_rate`` = ``percent / 100`` (Azure takes a share in (0, 1]).

Where the data goes: without ``capture.destination``, Azure's default,
``azureml://datastores/workspaceblobstore/paths/modelDataCollector/<endpoint>/<deployment>/<collection>``.
With a destination (an ``azureml://`` datastore path), ``<destination>/<endpoint>/<deployment>/<collection>``,
registered as data assets named ``<endpoint>-<deployment>-<collection>-<digest of the destination>``
(azure-ai-ml registers one data asset per collection, version "1" as a string, before the deployment PUT, and keeps an existing
version as it is, so a new destination gets new names). Other destinations are refused by name.

Azure ML writes ``<collection>/YYYY/MM/DD/HH/<instance>.jsonl`` under that path, one CloudEvents-style
object per line; request and response are separate records joined by ``correlationid``::

    {"specversion": "1.0", "id": "...", "type": "azureml.inference.request",
     "source": "/subscriptions/.../onlineEndpoints/churn/deployments/churn-v2",
     "datacontenttype": "application/json", "time": "2026-01-01T10:00:00Z",
     "data": {"instances": [[40, 2.5]]}, "path": "/score", "method": "POST", "correlationid": "c1"}
    {"specversion": "1.0", "type": "azureml.inference.response", "data": {"predictions": [1]},
     "correlationid": "c1", ...}

:func:`load_capture` turns such files (a local folder, e.g. downloaded with ``az storage blob
download-batch`` or ``azureml-fsspec``; or an ``azureml://`` path read through a filesystem) into the
columns :func:`cloudml.drift.load_capture` gives for a local endpoint, and ``cloudml.drift.load_capture``
hands Azure files to it by itself.

Example:
    >>> from cloudml.spec.deployment import Deployment
    >>> d = Deployment(endpoint="churn", model={"group": "churn"}, capture={"percent": 20})
    >>> collector_spec(d, "churn-v2")
    {'collections': {'request': {'enabled': 'true'}, 'response': {'enabled': 'true'}}, 'sampling_rate': 0.2}
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
from calendar import timegm
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from cloudml.errors import DataError, UnsupportedFeatureError

__all__ = ["DEFAULT_ROOT", "PAYLOAD_COLLECTIONS", "collection_path", "collector_spec", "data_collector",
           "is_azure_record", "load_capture", "records", "sampling_rate"]

PAYLOAD_COLLECTIONS = ("request", "response")  # Azure's reserved names for payload logging
DEFAULT_ROOT = "azureml://datastores/workspaceblobstore/paths/modelDataCollector"  # azure-ai-ml's DEFAULT_MDC_PATH
_DATASTORE_PATH = re.compile(r"^azureml://(subscriptions/[^/]+/resourcegroups/[^/]+/workspaces/[^/]+/)?"
                             r"datastores/[^/]+/paths/\S*[^/\s]", re.IGNORECASE)
_INPUTS = ("azureml.inference.request", "azureml.inference.model_inputs", "azureml.inference.inputs")
_OUTPUTS = ("azureml.inference.response", "azureml.inference.model_outputs", "azureml.inference.outputs")
_SOURCE = re.compile(r"/onlineEndpoints/([^/]+)/deployments/([^/]+)", re.IGNORECASE)


def sampling_rate(percent: float) -> float:
    """Azure's ``sampling_rate`` for ``capture.percent``: the share in (0, 1].

    Example:
        >>> sampling_rate(100), sampling_rate(12.5)
        (1.0, 0.125)
    """
    rate = round(float(percent) / 100.0, 6)
    if not 0 < rate <= 1:
        raise UnsupportedFeatureError("azureml", None, "deploy.capture", f"capture.percent is {percent:g}; Azure ML "
                                      "samples a share greater than 0 and at most 100%",
                                      hint="set capture.percent between 0 (excluded) and 100")
    return rate


def _destination(destination: str | None) -> str | None:
    if destination is None:
        return None
    if not _DATASTORE_PATH.match(destination.strip()):
        raise UnsupportedFeatureError(
            "azureml", None, "deploy.capture", f"capture.destination is {destination}; Azure ML collects data to a "
            "datastore path", hint="use azureml://datastores/<datastore>/paths/<folder> (register a blob container "
            "as a datastore first), or leave destination out for the workspace blob store")
    return destination.strip().rstrip("/")


def collection_path(endpoint: str, deployment: str, collection: str, destination: str | None = None) -> str:
    """Where Azure ML writes one collection of a deployment (the ``YYYY/MM/DD/HH`` folders go below).

    Example:
        >>> collection_path("churn", "churn-v2", "request")
        'azureml://datastores/workspaceblobstore/paths/modelDataCollector/churn/churn-v2/request'
        >>> collection_path("churn", "churn-v2", "response", "azureml://datastores/capture/paths/ml/")
        'azureml://datastores/capture/paths/ml/churn/churn-v2/response'
    """
    root = _destination(destination) or DEFAULT_ROOT
    return f"{root}/{endpoint}/{deployment}/{collection}"


def collector_spec(d: Any, deployment: str) -> dict[str, Any] | None:
    """The ``data_collector`` of one deployment as YAML-shaped data (None without capture or when disabled).

    Pure: checks the destination, needs no SDK. With a destination, each collection names its data asset.

    Example:
        >>> from cloudml.spec.deployment import Deployment
        >>> d = Deployment(endpoint="ep", model={"group": "g"},
        ...                capture={"percent": 50, "destination": "azureml://datastores/cap/paths/x"})
        >>> collector_spec(d, "g-v1")["collections"]["request"]["data"]
        {'name': 'ep-g-v1-request-e2c2f3f9', 'path': 'azureml://datastores/cap/paths/x/ep/g-v1/request', 'version': '1'}
        >>> collector_spec(Deployment(endpoint="ep", model={"group": "g"}, capture={"percent": 50,
        ...                "destination": "s3://bucket/cap"}), "g-v1")
        Traceback (most recent call last):
        cloudml.errors.UnsupportedFeatureError: azureml cannot express 'deploy.capture': capture.destination is s3://bucket/cap; Azure ML collects data to a datastore path
    """
    capture = getattr(d, "capture", None)
    if capture is None or not capture.enabled:
        return None
    destination = _destination(capture.destination)
    collections: dict[str, Any] = {}
    for name in PAYLOAD_COLLECTIONS:
        entry: dict[str, Any] = {"enabled": "true"}
        if destination is not None:
            digest = hashlib.sha256(destination.encode()).hexdigest()[:8]
            entry["data"] = {"name": f"{d.endpoint}-{deployment}-{name}-{digest}",
                             "path": collection_path(d.endpoint, deployment, name, destination), "version": "1"}
        collections[name] = entry
    return {"collections": collections, "sampling_rate": sampling_rate(capture.percent)}


def data_collector(d: Any, deployment: str) -> Any:
    """The azure-ai-ml ``DataCollector`` for :func:`collector_spec` (None without capture).

    A new entity every call: azure-ai-ml changes it while sending (it moves ``sampling_rate`` into the
    collections and replaces ``data`` with the registered asset's id), so one entity serves one request.

    Example:
        >>> data_collector(deployment, "churn-v2").sampling_rate  # doctest: +SKIP
        0.2
    """
    spec = collector_spec(d, deployment)
    if spec is None:
        return None
    import warnings

    with warnings.catch_warnings():  # the collector classes are marked experimental; say it once, in the docs
        warnings.simplefilter("ignore")
        # DataAsset (the documented `data:` of a collection) is not exported from azure.ai.ml.entities
        from azure.ai.ml.entities import DataCollector, DeploymentCollection
        from azure.ai.ml.entities._deployment.data_asset import DataAsset

        collections = {name: DeploymentCollection(enabled=c["enabled"],
                                                  data=DataAsset(**c["data"]) if "data" in c else None)
                       for name, c in spec["collections"].items()}
        return DataCollector(collections=collections, sampling_rate=spec["sampling_rate"])


# -- reading collected data back -------------------------------------------------------------------------
def is_azure_record(record: Any) -> bool:
    """True for one line of Azure ML's data collector (payload or custom logging).

    Example:
        >>> is_azure_record({"specversion": "1.0", "type": "azureml.inference.request", "data": {}})
        True
        >>> is_azure_record({"request": {"instances": []}})
        False
    """
    return isinstance(record, Mapping) and "specversion" in record and \
        str(record.get("type", "")).startswith("azureml.inference.")


def _body(record: Mapping[str, Any], where: str) -> Any:
    """The ``data`` of a record: JSON as objects (a JSON body logged as text is parsed)."""
    if str(record.get("datainblob", "")).lower() == "true":
        raise DataError("drift", f"{where}: the body is stored in a separate blob ({record.get('data')})",
                        hint="Azure ML keeps payloads over 4 MB and binary bodies apart; send smaller JSON "
                        "requests, or download that blob and read it yourself")
    if "data" not in record:
        raise DataError("drift", f"{where}: an Azure ML {record.get('type')} record without data",
                        hint="point at the request and response collections of payload logging")
    data = record["data"]
    if isinstance(data, str) and "json" in str(record.get("datacontenttype", "application/json")).lower():
        try:
            return json.loads(data)
        except ValueError:
            raise DataError("drift", f"{where}: the body is not JSON", hint="invoke with application/json") from None
    return data


def _instances(body: Any, where: str) -> list[Any]:
    """Instances of a request body: ``{"instances"}`` (cloudml), ``{"input_data"}`` (MLflow), ``{"data"}``, a list or one object."""
    if isinstance(body, Mapping):
        if "instances" in body:
            body = body["instances"]
        elif "input_data" in body:  # MLflow on Azure: split orientation {columns, index, data}, or a list
            inner = body["input_data"]
            if isinstance(inner, Mapping) and "columns" in inner and "data" in inner:
                return [dict(zip(inner["columns"], row, strict=False)) for row in inner["data"]]
            body = inner
        elif "data" in body and len(body) == 1:  # the scoring-script convention {"data": [...]}
            body = body["data"]
    if isinstance(body, Mapping):
        return [dict(body)]
    if isinstance(body, list):
        return list(body)
    raise DataError("drift", f"{where}: cannot read instances from a {type(body).__name__} request body",
                    hint="send {\"instances\": [...]} (what cloudml invoke sends), a list, or an object")


def _predictions(body: Any) -> Any:
    preds = body.get("predictions", body.get("outputs")) if isinstance(body, Mapping) else body
    if isinstance(preds, list) and preds and all(isinstance(p, list) and len(p) == 1 for p in preds):
        preds = [p[0] for p in preds]
    return preds


def _epoch(text: Any) -> float | None:
    m = re.match(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})", str(text or ""))
    return float(timegm(tuple(int(g) for g in m.groups()))) if m else None  # Azure writes UTC ("...Z")


def _file_lines(path: str | Path, fs: Any) -> Iterator[tuple[str, str]]:
    if fs is not None or str(path).startswith("azureml://"):
        yield from _fs_lines(str(path), fs)
        return
    path = Path(path)
    files = sorted(p for p in path.rglob("*.jsonl") if p.is_file()) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise DataError("drift", f"no collected data at {path}",
                        hint="enable capture on the deployment (capture: {percent: 20}), send traffic, and download "
                        "modelDataCollector/<endpoint>/ from the workspace blob store")
    for file in files:
        for lineno, line in enumerate(file.read_text().splitlines(), 1):
            yield f"{file}:{lineno}", line


def _fs_lines(uri: str, fs: Any) -> Iterator[tuple[str, str]]:
    if fs is None:
        try:
            fsspec_module = importlib.import_module("azureml.fsspec")
        except ImportError:
            raise DataError("drift", f"reading {uri} needs azureml-fsspec", hint="pip install azureml-fsspec, or "
                            "download the folder first (az storage blob download-batch) and pass the local "
                            "folder") from None
        fs = fsspec_module.AzureMachineLearningFileSystem(uri)
    files = sorted(str(f) for f in fs.find(uri) if str(f).endswith(".jsonl"))
    if not files:
        raise DataError("drift", f"no collected data under {uri}",
                        hint="Azure ML writes collected data a few minutes after the requests; check the path")
    for name in files:
        with fs.open(name, "rb") as fh:
            text = fh.read().decode("utf-8")
        for lineno, line in enumerate(text.splitlines(), 1):
            yield f"{name}:{lineno}", line


def records(path: str | Path, *, fs: Any = None) -> Iterator[dict[str, Any]]:
    """Collected requests joined with their responses, as a local endpoint's capture records.

    Each is ``{"at", "endpoint", "deployment", "request": {"instances"}, "response": {"predictions"}}``
    (``response`` None when its record is missing). ``path`` is a ``.jsonl`` file or a folder searched
    recursively (both collections may sit below it), or an ``azureml://`` path read through ``fs``
    (any object with fsspec's ``find`` and ``open``; default ``azureml-fsspec``).

    Example:
        >>> import tempfile, pathlib, json
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "0.jsonl"
        >>> ev = {"specversion": "1.0", "time": "2026-01-01T10:00:00Z", "correlationid": "c1",
        ...       "source": "/subscriptions/s/onlineEndpoints/churn/deployments/churn-v2"}
        >>> lines = [{**ev, "type": "azureml.inference.request", "data": {"instances": [[1, 2]]}},
        ...          {**ev, "type": "azureml.inference.response", "data": {"predictions": [0]}}]
        >>> _ = f.write_text("\\n".join(json.dumps(x) for x in lines))
        >>> next(records(f))
        {'at': 1767261600.0, 'endpoint': 'churn', 'deployment': 'churn-v2', 'request': {'instances': [[1, 2]]}, 'response': {'predictions': [0]}}
    """
    requests: list[tuple[str, Mapping[str, Any]]] = []
    responses: dict[str, Any] = {}
    for where, line in _file_lines(path, fs):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise DataError("drift", f"{where} is not a JSON line",
                            hint="point at the files Azure ML's data collector wrote (*.jsonl)") from None
        if not is_azure_record(record):
            raise DataError("drift", f"{where} is not an Azure ML data collector record",
                            hint="each line holds {\"specversion\", \"type\": \"azureml.inference...\", \"data\"}")
        kind = str(record["type"])
        key = str(record.get("correlationid") or record.get("xrequestid") or "")
        if kind in _INPUTS:
            requests.append((where, record))
        elif kind in _OUTPUTS and key:
            responses[key] = (where, record)
    if not requests:
        raise DataError("drift", f"no collected requests at {path}",
                        hint="read the request collection too (payload logging writes request/ and response/)")
    for where, record in requests:
        key = str(record.get("correlationid") or record.get("xrequestid") or "")
        source = _SOURCE.search(str(record.get("source", "")))
        answer = responses.get(key) if key else None
        yield {"at": _epoch(record.get("time")), "endpoint": source.group(1) if source else None,
               "deployment": source.group(2) if source else None,
               "request": {"instances": _instances(_body(record, where), where)},
               "response": {"predictions": _predictions(_body(answer[1], answer[0]))} if answer else None}


def load_capture(path: str | Path, feature_names: Sequence[str] | None = None, prediction: str = "prediction",
                 *, fs: Any = None) -> dict[str, list[Any]]:
    """Columns from Azure ML collected data, the same as :func:`cloudml.drift.load_capture` gives locally.

    ``path``: a collected ``.jsonl`` file, a folder holding the ``request`` and ``response`` collections
    (searched recursively: ``<endpoint>/<deployment>/<collection>/YYYY/MM/DD/HH/``), or an ``azureml://``
    path (see :func:`records`). Instances given as lists need ``feature_names``; objects keep their keys;
    predictions go to the ``prediction`` column (None where the response is missing).

    Example:
        >>> import tempfile, pathlib, json
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> for coll, data in (("request", {"instances": [{"age": 40, "plan": "pro"}]}), ("response", [1])):
        ...     d = root / "churn" / "churn-v2" / coll / "2026" / "01" / "01" / "10"
        ...     d.mkdir(parents=True)
        ...     rec = {"specversion": "1.0", "type": f"azureml.inference.{coll}", "data": data, "correlationid": "c1"}
        ...     _ = (d / "inst0.jsonl").write_text(json.dumps(rec) + "\\n")
        >>> load_capture(root)
        {'age': [40], 'plan': ['pro'], 'prediction': [1]}
    """
    from cloudml.drift import capture_columns

    return capture_columns(((str(path), r) for r in records(path, fs=fs)), feature_names, prediction, path)
