"""Our SageMaker definition against the SageMaker Python SDK 3.x's, and our image table against image_uris.

Issue 5, item 1(d): the reference pipeline (``tests/conformance/cases.py``: processing -> training ->
evaluation -> condition -> register, otherwise fail) is built with the SDK in
tests/fixtures/sagemaker_sdk_reference.py and must equal what the adapter compiles (``cloudml.compile(..., "sagemaker")``) after
``normalise``. The same run asks the SDK's ``image_uris.retrieve`` for every version and every region of
``resources.FRAMEWORK_VERSIONS`` / the regional registry table, which ``framework_image`` must reproduce.
Our own checks (``validate_definition``, the patched public schema) must accept the SDK's output too.

**Offline.** The SDK runs in a subprocess (its import sets up logging, boto3 clients and telemetry threads;
none of that reaches this process) with fake credentials, ``SAGEMAKER_VALIDATE_ROLE=false`` (no IAM
calls), telemetry opted out through an SDK config file named by ``SAGEMAKER_USER_CONFIG_OVERRIDE`` /
``SAGEMAKER_ADMIN_CONFIG_OVERRIDE`` (that file makes the SDK several seconds slower: it re-validates it on
every lookup), no shared AWS config files, and ``HTTP(S)_PROXY`` pointing at a listener on 127.0.0.1 that
counts and drops connections: anything the SDK tried to send would land there, and a test asserts nothing
did. S3 URIs are literal, so nothing is uploaded.

What ``normalise`` does (one helper, applied to both documents):

* **Names.** Step names are the spec's on both sides; SDK 3.27's ``ModelStep`` keeps ``register`` (older
  SDKs appended ``-RegisterModel``/``-CreateModel``: stripped, with every reference to them). Steps,
  branch steps and parameters are sorted by name (the service orders steps by their references).
* **SDK-only top level.** ``PipelineExperimentConfig`` at its SDK default and ``MlflowConfig: null``
  (the public schema rejects both; cloudml emits them only when asked).
* **API defaults written out by the SDK.** ``S3Input.S3CompressionType: "None"``,
  ``S3Input.S3DataDistributionType: "FullyReplicated"``, training channel ``InputMode: "File"`` (the
  algorithm's ``TrainingInputMode``), ``OutputDataConfig.CompressionType: "GZIP"``,
  ``SkipModelValidation: "None"``, and empty maps (``HyperParameters``, container ``Environment``,
  ``ModelMetrics.Bias``/``Explainability``): absent means the same to the service.
* **What the SDK cannot say.** ``AlgorithmSpecification.ContainerEntrypoint``: ``ModelTrainer`` sets it only
  with ``source_code``, and then to its own ``sm_train.sh`` driver uploaded to S3; ours runs the step's
  command in the image, which CreateTrainingJob allows. Dropped on both sides, checked in
  ``KNOWN_DIFFERENCES``.

Skipped, with the reason, when the SDK 3.x is not importable (it is in the ``test`` extra).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from cloudml.adapters.sagemaker import SageMakerAdapter
from cloudml.adapters.sagemaker.resources import _FIRST_PARTY, FRAMEWORK_VERSIONS, framework_image
from cloudml.adapters.sagemaker.validate import validate_definition
from cloudml.config import SageMakerSettings
from tests.conformance.cases import reference_pipeline
from tests.conftest import REPO
from tests.sagemaker_schema import SCHEMA_PATH, definition_errors


def _sdk_version() -> str | None:
    try:
        version = metadata.version("sagemaker")
    except metadata.PackageNotFoundError:
        return None
    if int(version.split(".")[0]) < 3 or importlib.util.find_spec("sagemaker.mlops") is None:
        return None
    return version


if _sdk_version() is None:
    pytest.skip("the SageMaker Python SDK 3.x is not installed (pip install 'sagemaker>=3', or "
                "pip install -e '.[test]'); the equivalence checks need it", allow_module_level=True)

REGION, BUCKET = "us-east-1", "cloudml-test"
ROLE = "arn:aws:iam::123456789012:role/cloudml-test"
SETTINGS = SageMakerSettings(region=REGION, bucket=BUCKET, role_arn=ROLE)
SCRIPT = REPO / "tests" / "fixtures" / "sagemaker_sdk_reference.py"
TAG = {"sklearn": "-cpu-py3", "xgboost": ""}

SDK_TOP_DEFAULTS: dict[str, Any] = {
    "PipelineExperimentConfig": {"ExperimentName": {"Get": "Execution.PipelineName"},
                                 "TrialName": {"Get": "Execution.PipelineExecutionId"}},
    "MlflowConfig": None,
}
API_DEFAULTS: dict[tuple[str, str], Any] = {  # (parent key, key) -> the value the service assumes if absent
    ("S3Input", "S3CompressionType"): "None",
    ("S3Input", "S3DataDistributionType"): "FullyReplicated",
    ("InputDataConfig", "InputMode"): "File",  # the algorithm's TrainingInputMode, File on both sides
    ("OutputDataConfig", "CompressionType"): "GZIP",
    ("Arguments", "SkipModelValidation"): "None",
}
INEXPRESSIBLE = {("AlgorithmSpecification", "ContainerEntrypoint")}
SDK_NAME_SUFFIXES = ("-RegisterModel", "-CreateModel")

KNOWN_DIFFERENCES = {
    "sdk top level": "the SDK adds PipelineExperimentConfig and MlflowConfig: null",
    "sdk defaults": "the SDK writes API defaults (S3CompressionType, S3DataDistributionType, InputMode, "
                    "CompressionType, SkipModelValidation) and empty maps",
    "training entrypoint": "ours sets AlgorithmSpecification.ContainerEntrypoint; ModelTrainer cannot",
}


# ----------------------------------------------------------------------------- normalisation


def normalise(definition: dict[str, Any]) -> dict[str, Any]:
    """One comparable form of a pipeline definition (see the module docstring for what and why)."""
    d = copy.deepcopy(definition)
    for key, default in SDK_TOP_DEFAULTS.items():
        if key in d and d[key] == default:
            del d[key]
    renames = {s["Name"]: _strip_suffix(s["Name"]) for s in _all_steps(d["Steps"])}
    d = _walk(_rename(d, renames), parent="")
    d["Parameters"] = sorted(d.get("Parameters", []), key=lambda p: p["Name"])
    d["Steps"] = _sorted_steps(d["Steps"])
    return d


def _strip_suffix(name: str) -> str:
    for suffix in SDK_NAME_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _all_steps(steps: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for s in steps:
        yield s
        if s["Type"] == "Condition":
            yield from _all_steps(s["Arguments"].get("IfSteps", []) + s["Arguments"].get("ElseSteps", []))


def _rename(node: Any, renames: dict[str, str]) -> Any:
    text = json.dumps(node)
    for old, new in renames.items():
        if old != new:
            text = text.replace(f'"Name": "{old}"', f'"Name": "{new}"').replace(f"Steps.{old}.", f"Steps.{new}.")
            text = text.replace(f'"{old}"', f'"{new}"')  # DependsOn entries
    return json.loads(text)


def _walk(node: Any, parent: str) -> Any:
    if isinstance(node, list):
        return [_walk(x, parent) for x in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if (parent, key) in INEXPRESSIBLE or value == {}:
            continue
        if (parent, key) in API_DEFAULTS and value == API_DEFAULTS[(parent, key)]:
            continue
        out[key] = _walk(value, key)
    return out


def _sorted_steps(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for s in steps:
        if s["Type"] == "Condition":
            for branch in ("IfSteps", "ElseSteps"):
                if branch in s["Arguments"]:
                    s["Arguments"][branch] = _sorted_steps(s["Arguments"][branch])
    return sorted(steps, key=lambda s: str(s["Name"]))


# ----------------------------------------------------------------------------- the SDK run


class _Sink:
    """A TCP listener on 127.0.0.1 that counts and drops every connection: the SDK's only way out."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


def offline_env(tmp: Path, proxy_port: int) -> dict[str, str]:
    config = tmp / "sagemaker-config.yaml"
    config.write_text("SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n")
    drop = ("AWS_", "SAGEMAKER_", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(drop)}
    proxy = f"http://127.0.0.1:{proxy_port}"
    env.update({
        "AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing", "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp / "no-aws-config"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "no-aws-credentials"),
        "SAGEMAKER_VALIDATE_ROLE": "false",
        "SAGEMAKER_USER_CONFIG_OVERRIDE": str(config), "SAGEMAKER_ADMIN_CONFIG_OVERRIDE": str(config),
        "HTTP_PROXY": proxy, "HTTPS_PROXY": proxy, "http_proxy": proxy, "https_proxy": proxy,
        "NO_PROXY": "", "no_proxy": "",
    })
    return env


def image_requests() -> list[list[str]]:
    """Every version (both scopes) in one region, and every region (both frameworks) for the newest version."""
    asks = [[fw, tag, REGION, scope] for fw, versions in FRAMEWORK_VERSIONS.items() for tag in versions.values()
            for scope in ("training", "inference")]
    for fw, versions in FRAMEWORK_VERSIONS.items():
        newest = versions[max(versions, key=lambda v: tuple(int(x) for x in v.split(".")))]
        asks += [[fw, newest, region, "training"] for region in _FIRST_PARTY if region != REGION]
    return asks


@pytest.fixture(scope="module")
def sdk(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("sagemaker-sdk")
    sink = _Sink()
    request = {"region": REGION, "bucket": BUCKET, "role": ROLE, "root": f"s3://{BUCKET}/cloudml/reference",
               "images": image_requests()}
    try:
        proc = subprocess.run([sys.executable, str(SCRIPT)], input=json.dumps(request), capture_output=True,
                              text=True, env=offline_env(tmp, sink.port), cwd=tmp, timeout=180)
    finally:
        sink.close()
    assert proc.returncode == 0, proc.stderr[-4000:]
    answer: dict[str, Any] = json.loads(proc.stdout)
    answer["connections"] = sink.connections
    return answer


@pytest.fixture(scope="module")
def ours() -> dict[str, Any]:
    """What ``cloudml.compile(..., "sagemaker")`` returns, with explicit settings instead of cloudml.yaml."""
    document: dict[str, Any] = SageMakerAdapter(SETTINGS).compile(reference_pipeline()).document
    return document


# ----------------------------------------------------------------------------- tests


def test_sdk_ran_offline(sdk: dict[str, Any]) -> None:
    assert sdk["connections"] == 0, "the SDK tried to reach the network (through the proxy sink)"


def test_reference_pipeline_equivalent_to_sdk(ours: dict[str, Any], sdk: dict[str, Any]) -> None:
    a, b = normalise(ours), normalise(sdk["definition"])
    assert [s["Name"] for s in a["Steps"]] == [s["Name"] for s in b["Steps"]] == ["evaluate", "gate", "prep", "train"]
    for mine, theirs in zip(a["Steps"], b["Steps"], strict=True):  # one step at a time: a smaller diff when one differs
        assert mine == theirs, mine["Name"]
    assert a == b


def test_our_checks_accept_what_the_sdk_emits(sdk: dict[str, Any]) -> None:
    """No false positive on real SDK output: botocore-based validate_definition, and the patched schema
    once the two SDK-only top-level keys (which the schema rejects and cloudml never emits) are removed."""
    theirs = sdk["definition"]
    assert validate_definition(theirs) == []
    if not SCHEMA_PATH.is_file():  # visible in the -ra summary, as in test_sagemaker_schema.py
        pytest.skip(f"SageMaker schema fixture not found at {SCHEMA_PATH}")
    top = {k: v for k, v in theirs.items() if k not in SDK_TOP_DEFAULTS}
    assert definition_errors(top) == []
    assert any("PipelineExperimentConfig" in e for e in definition_errors(theirs))


def test_framework_table_matches_sdk_image_uris(sdk: dict[str, Any]) -> None:
    keys = {fw: {tag: key for key, tag in versions.items()} for fw, versions in FRAMEWORK_VERSIONS.items()}
    checked = set()
    for fw, tag, region, scope, uri in sdk["images"]:
        assert framework_image(f"{fw}=={keys[fw][tag]}", region, scope) == uri, (fw, tag, region, scope)
        checked.add((fw, tag, region))
    assert {(fw, region) for fw, _, region in checked} == {(fw, r) for fw in FRAMEWORK_VERSIONS for r in _FIRST_PARTY}
    assert {(fw, tag) for fw, tag, _ in checked} == {(fw, t) for fw, v in FRAMEWORK_VERSIONS.items() for t in v.values()}


@pytest.mark.parametrize("mutate", [
    pytest.param(lambda d: d["Steps"][0]["Arguments"]["AppSpecification"]["ContainerEntrypoint"].append("-v"),
                 id="processing-entrypoint"),
    pytest.param(lambda d: d["Steps"][1]["Arguments"]["ResourceConfig"].update(InstanceType="ml.m5.xlarge"),
                 id="instance-type"),
    pytest.param(lambda d: d["Steps"][3]["Arguments"]["Conditions"][0].update(Type="GreaterThan"), id="condition"),
    pytest.param(lambda d: d["Steps"][3]["Arguments"]["IfSteps"][0]["Arguments"].update(
        ModelApprovalStatus="Approved"), id="approval"),
    pytest.param(lambda d: d["Steps"][2]["Arguments"]["ProcessingInputs"][0]["S3Input"].update(
        S3DataDistributionType="ShardedByS3Key"), id="non-default-distribution"),
    pytest.param(lambda d: d["Steps"][2]["Arguments"]["ProcessingInputs"][0]["S3Input"].update(
        S3Uri={"Get": "Steps.prep.ProcessingOutputConfig.Outputs['test'].S3Output.S3Uri"}), id="data-reference"),
])
def test_normalise_still_sees_real_differences(ours: dict[str, Any], sdk: dict[str, Any], mutate: Any) -> None:
    changed = copy.deepcopy(ours)
    mutate(changed)
    assert normalise(changed) != normalise(sdk["definition"])


def test_known_differences_are_still_there(ours: dict[str, Any], sdk: dict[str, Any]) -> None:
    """Strict, like the gap markers: a difference that disappears must leave KNOWN_DIFFERENCES."""
    theirs = sdk["definition"]
    mine_train, sdk_train = (next(s for s in d["Steps"] if s["Name"] == "train") for d in (ours, theirs))
    sdk_prep = next(s for s in theirs["Steps"] if s["Name"] == "prep")
    still = {
        "sdk top level": all(k in theirs and k not in ours for k in SDK_TOP_DEFAULTS),
        "sdk defaults": "S3CompressionType" in sdk_prep["Arguments"]["ProcessingInputs"][0]["S3Input"]
                        and "CompressionType" in sdk_train["Arguments"]["OutputDataConfig"]
                        and "CompressionType" not in mine_train["Arguments"]["OutputDataConfig"],
        "training entrypoint": "ContainerEntrypoint" in mine_train["Arguments"]["AlgorithmSpecification"]
                               and "ContainerEntrypoint" not in sdk_train["Arguments"]["AlgorithmSpecification"],
    }
    gone = [name for name, present in still.items() if not present]
    assert not gone, f"no longer different from the SDK, remove from KNOWN_DIFFERENCES and the docstring: {gone}"
    assert set(still) == set(KNOWN_DIFFERENCES)


def test_image_suffixes_follow_the_sdk(sdk: dict[str, Any]) -> None:
    for fw, tag, _, _, uri in sdk["images"]:
        assert uri.endswith(f":{tag}{TAG[fw]}"), uri
