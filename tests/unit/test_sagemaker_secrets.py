"""``step.secrets`` on SageMaker: references in ``CLOUDML_SECRETS``, resolved in the job by cloudml's runtime.

The compiler side is checked against botocore's shapes; the runtime side runs for real, as the job
would (``python3 cloudml_runtime.py ...`` by path, in a subprocess), with boto3 talking to a moto
server on 127.0.0.1 holding Secrets Manager secrets and SSM parameters. No value may appear in the
definition, in the runtime's output, or in an error.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

import cloudml
import cloudml.runtime
from cloudml.adapters.sagemaker import SageMakerAdapter
from cloudml.adapters.sagemaker.compiler import RUNTIME_FILE, SECRETS_VAR, compile_definition
from cloudml.adapters.sagemaker.validate import validate_definition
from cloudml.config import SageMakerSettings
from cloudml.errors import CompileError, UnsupportedFeatureError
from cloudml.runtime import SecretError, load_secrets, resolve_secrets
from cloudml.spec.pipeline import Pipeline
from cloudml.spec.validate import validate_data
from tests.fakes._aws_wire import REGION, TEST_ENV, MotoServer, aws_test_env

ROLE = "arn:aws:iam::123456789012:role/cloudml-test"
SETTINGS = SageMakerSettings(region=REGION, bucket="cloudml-test", role_arn=ROLE)
DB_PASSWORD = "s3cr3t-DB-pa55word-7f2c"  # test values, searched for in every output
API_KEY = "api-KEY-0a9b8c7d6e5f"
TOKEN = "ssm-T0KEN-b1c2d3e4"
JSON_PASSWORD = "json-PASS-4d5e6f"
SECRET_VALUES = (DB_PASSWORD, API_KEY, TOKEN, JSON_PASSWORD)


def build(steps: list[dict[str, Any]]) -> Pipeline:
    doc = {"apiVersion": "cloudml/v1", "kind": "Pipeline", "name": "t", "defaults": {"image": "python:3.11-slim"},
           "steps": steps}
    p = validate_data(doc)
    assert isinstance(p, Pipeline)
    return p


SECRETS = {"DB_PASSWORD": "aws-secretsmanager://prod/db-password", "TOKEN": "aws-ssm:///prod/token",
           "API_KEY": "aws-secretsmanager://arn:aws:secretsmanager:us-east-1:123456789012:secret:api-AbCdEf#key"}


# -- compiler ------------------------------------------------------------------------------------------

def _step(d: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in d["Steps"] if s["Name"] == name)


def test_command_step_gets_references_only_and_runs_through_the_runtime(tmp_path: Path) -> None:
    p = build([{"name": "a", "command": "python3 load.py --db $DB_PASSWORD", "secrets": SECRETS,
                "env": {"MODE": "prod"}}])
    d = compile_definition(p, SETTINGS, tmp_path)
    args = _step(d, "a")["Arguments"]
    env = args["Environment"]
    assert env[SECRETS_VAR] == json.dumps(SECRETS, sort_keys=True)
    assert list(json.loads(env[SECRETS_VAR])) == sorted(SECRETS)  # sorted: byte-stable definitions
    assert env["MODE"] == "prod" and "DB_PASSWORD" not in env  # the variable itself exists only in the job
    code = "/opt/ml/processing/input/cloudml_code"
    assert args["AppSpecification"]["ContainerEntrypoint"] == [
        "python3", f"{code}/{RUNTIME_FILE}", "--retry", "1", "--backoff", "0", "--",
        "python3", "load.py", "--db", "$DB_PASSWORD"]
    assert [i["InputName"] for i in args["ProcessingInputs"]] == ["cloudml_code"]  # the runtime is shipped
    assert validate_definition(d) == []  # botocore: CreatePipeline and CreateProcessingJob shapes


def test_retry_and_secrets_share_one_wrapper(tmp_path: Path) -> None:
    p = build([{"name": "a", "command": "x", "secrets": {"T": "aws-ssm://t"}, "retry": {"attempts": 3, "backoff": 2}}])
    argv = _step(compile_definition(p, SETTINGS, tmp_path), "a")["Arguments"]["AppSpecification"]["ContainerEntrypoint"]
    assert argv[2:7] == ["--retry", "3", "--backoff", "2", "--"] and argv[7:] == ["x"]


def test_python_and_training_steps_resolve_in_the_runtime_itself(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "job.py").write_text("def fit(model):\n    pass\n")
    p = build([{"name": "train", "kind": "training", "python": "job:fit", "code": "src", "secrets": SECRETS,
                "outputs": {"model": "model"}},
               {"name": "cmd", "kind": "training", "command": "train.sh", "secrets": {"T": "aws-ssm://t"},
                "outputs": {"model": "model"}}])
    d = compile_definition(p, SETTINGS, tmp_path)
    train = _step(d, "train")["Arguments"]
    assert train["AlgorithmSpecification"]["ContainerEntrypoint"][2] == "--function"  # main() resolves first
    assert train["Environment"][SECRETS_VAR] == json.dumps(SECRETS, sort_keys=True)
    cmd = _step(d, "cmd")["Arguments"]
    assert cmd["AlgorithmSpecification"]["ContainerEntrypoint"][1:3] == [
        f"/opt/ml/input/data/cloudml_code/{RUNTIME_FILE}", "--retry"]
    assert "cloudml_code" in [c["ChannelName"] for c in cmd["InputDataConfig"]]
    assert validate_definition(d) == []


def test_a_tuning_step_carries_the_references_to_its_trials(tmp_path: Path) -> None:
    p = build([{"name": "tune", "kind": "training", "command": "train --lr {{tuning.lr}}", "secrets": SECRETS,
                "outputs": {"model": "model", "metrics": "metrics"},
                "tuning": {"objective": {"metric": "metrics.auc", "goal": "maximize"}, "max_trials": 2,
                           "search_space": {"lr": {"type": "float", "min": 0.01, "max": 0.1}}}}])
    d = compile_definition(p, SETTINGS, tmp_path)
    env = _step(d, "tune")["Arguments"]["TrainingJobDefinition"]["Environment"]
    assert env[SECRETS_VAR] == json.dumps(SECRETS, sort_keys=True) and env["CLOUDML_TUNING_TRIAL"] == "1"


@pytest.mark.parametrize("ref", ["gcp-secretmanager://projects/p/secrets/s", "azure-keyvault://vault/name",
                                 "env://DB_PASSWORD"])
def test_non_aws_schemes_are_refused_by_name(ref: str, tmp_path: Path) -> None:
    p = build([{"name": "a", "command": "x", "secrets": {"DB": ref}}])
    for compile_it in (lambda: compile_definition(p, SETTINGS, tmp_path), lambda: cloudml.compile(p, "sagemaker"),
                       lambda: SageMakerAdapter(SETTINGS).compile(p)):
        with pytest.raises(UnsupportedFeatureError) as info:
            compile_it()
        assert (info.value.adapter, info.value.step, info.value.feature) == ("sagemaker", "a", "step.secrets")
        assert ref.split("://")[0] in str(info.value) and "aws-secretsmanager" in str(info.value)


def test_secrets_are_supported_through_cloudml_compile() -> None:
    assert SageMakerAdapter.capabilities.supports("step.secrets")
    compiled = cloudml.compile(build([{"name": "a", "command": "x", "secrets": SECRETS}]), "sagemaker")
    assert SECRETS_VAR in json.dumps(compiled.document)


# -- runtime, against moto ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with aws_test_env(), MotoServer() as server:
        session = boto3.Session(region_name=REGION)
        sm = session.client("secretsmanager", endpoint_url=server.url)
        sm.create_secret(Name="prod/db-password", SecretString=DB_PASSWORD)
        arn = sm.create_secret(Name="api", SecretString=json.dumps({"key": API_KEY, "port": 5432}))["ARN"]
        sm.create_secret(Name="creds", SecretString=json.dumps({"password": JSON_PASSWORD}))
        sm.create_secret(Name="plain", SecretString="not json " + DB_PASSWORD)
        ssm = session.client("ssm", endpoint_url=server.url)
        ssm.put_parameter(Name="/prod/token", Value=TOKEN, Type="SecureString")
        ssm.put_parameter(Name="flat", Value="flat-value", Type="String")
        server.api_arn = arn  # type: ignore[attr-defined]
        yield server


def _clients(moto: MotoServer) -> dict[str, Any]:
    session = boto3.Session(region_name=REGION, **{k.lower(): v for k, v in TEST_ENV.items() if k.startswith("AWS_")
                                                   and k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                                             "AWS_SESSION_TOKEN")})
    return {s: session.client(s, endpoint_url=moto.url) for s in ("secretsmanager", "ssm")}


def test_resolve_secrets_reads_secrets_manager_and_ssm(moto: MotoServer) -> None:
    refs = {"DB_PASSWORD": "aws-secretsmanager://prod/db-password", "TOKEN": "aws-ssm://prod/token",
            "TOKEN2": "aws-ssm:///prod/token", "FLAT": "aws-ssm://flat",
            "API_KEY": f"aws-secretsmanager://{moto.api_arn}#key",  # type: ignore[attr-defined]
            "PORT": "aws-secretsmanager://api#port", "PW": "aws-secretsmanager://creds#password"}
    clients = _clients(moto)
    assert resolve_secrets(refs, clients) == {
        "DB_PASSWORD": DB_PASSWORD, "TOKEN": TOKEN, "TOKEN2": TOKEN, "FLAT": "flat-value", "API_KEY": API_KEY,
        "PORT": "5432", "PW": JSON_PASSWORD}
    env = {SECRETS_VAR: json.dumps({"PW": "aws-secretsmanager://creds#password"}), "KEEP": "1"}
    assert load_secrets(env, clients) == ["PW"]
    assert env == {"KEEP": "1", "PW": JSON_PASSWORD}  # the references are gone once resolved


@pytest.mark.parametrize(("ref", "expected"), [
    ("aws-secretsmanager://missing", "does not exist"),
    ("aws-ssm:///missing/param", "does not exist"),
    ("aws-secretsmanager://creds#nokey", "has no key 'nokey'"),
    ("aws-secretsmanager://plain#password", "is not a JSON object"),
])
def test_resolution_errors_name_the_secret_never_the_value(moto: MotoServer, ref: str, expected: str) -> None:
    with pytest.raises(SecretError) as info:
        resolve_secrets({"DB_PASSWORD": ref}, _clients(moto))
    message = str(info.value)
    assert message.startswith(f"secret DB_PASSWORD ({ref}): ") and expected in message, message
    assert not any(v in message for v in SECRET_VALUES)
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no chained text that could quote it


@pytest.mark.parametrize(("code", "scheme", "permission"), [
    ("AccessDeniedException", "aws-secretsmanager", "secretsmanager:GetSecretValue"),
    ("AccessDeniedException", "aws-ssm", "ssm:GetParameter"),
    ("DecryptionFailure", "aws-secretsmanager", "kms:Decrypt"),
])
def test_denied_access_names_the_iam_permission(code: str, scheme: str, permission: str) -> None:
    """moto does not enforce IAM, so the denial is a real botocore ClientError handed to a stand-in client."""

    class Denied:
        def _deny(self, **_: Any) -> Any:
            raise ClientError({"Error": {"Code": code, "Message": "User: arn:aws:sts::1:assumed-role/r is not "
                                         "authorized"}, "ResponseMetadata": {"HTTPStatusCode": 400}}, "Get")

        get_secret_value = get_parameter = _deny

    with pytest.raises(SecretError) as info:
        resolve_secrets({"DB": f"{scheme}://prod/db"}, {"secretsmanager": Denied(), "ssm": Denied()})
    assert permission in str(info.value) and "execution role" in str(info.value)


def _runtime_env(moto: MotoServer, secrets: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CLOUDML_"))}
    env.update(TEST_ENV)
    env.update({"AWS_ENDPOINT_URL": moto.url, SECRETS_VAR: json.dumps(secrets, sort_keys=True)})
    return env


@pytest.fixture
def shipped_runtime(tmp_path: Path) -> Path:
    """cloudml's runtime as the client uploads it next to the code: a single file run by path."""
    code = tmp_path / "code"
    code.mkdir()
    shutil.copy(cloudml.runtime.__file__, code / RUNTIME_FILE)
    (code / "job.py").write_text(
        "import json, os\n"
        "def fit(out: str) -> None:\n"
        "    seen = {k: os.environ.get(k) for k in ('DB_PASSWORD', 'PW', 'TOKEN', 'CLOUDML_SECRETS')}\n"
        "    open(out, 'w').write(json.dumps(seen))\n")
    return code


CHILD = ("import json, os, sys; json.dump({k: os.environ.get(k) for k in ('DB_PASSWORD', 'PW', 'TOKEN', "
         "'CLOUDML_SECRETS')}, open(sys.argv[1], 'w'))")


def test_the_shipped_runtime_resolves_before_a_wrapped_command(moto: MotoServer, shipped_runtime: Path,
                                                                tmp_path: Path) -> None:
    secrets = {"DB_PASSWORD": "aws-secretsmanager://prod/db-password", "PW": "aws-secretsmanager://creds#password",
               "TOKEN": "aws-ssm://prod/token"}
    out = tmp_path / "seen.json"
    proc = subprocess.run([sys.executable, str(shipped_runtime / RUNTIME_FILE), "--retry", "1", "--backoff", "0",
                           "--", sys.executable, "-c", CHILD, str(out)], env=_runtime_env(moto, secrets),
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text()) == {"DB_PASSWORD": DB_PASSWORD, "PW": JSON_PASSWORD, "TOKEN": TOKEN,
                                           "CLOUDML_SECRETS": None}
    assert "resolved secrets DB_PASSWORD, PW, TOKEN" in proc.stderr
    assert not any(v in proc.stdout + proc.stderr for v in SECRET_VALUES)


def test_the_shipped_runtime_resolves_for_a_python_step(moto: MotoServer, shipped_runtime: Path,
                                                        tmp_path: Path) -> None:
    out = tmp_path / "seen.json"
    proc = subprocess.run([sys.executable, str(shipped_runtime / RUNTIME_FILE), "--function", "job:fit", "--code",
                           str(shipped_runtime), "--output", f"out={out}", "--output-type", "out=metrics"],
                          env=_runtime_env(moto, {"TOKEN": "aws-ssm:///prod/token"}), capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text()) == {"DB_PASSWORD": None, "PW": None, "TOKEN": TOKEN, "CLOUDML_SECRETS": None}
    assert TOKEN not in proc.stdout + proc.stderr


def test_the_shipped_runtime_stops_before_the_step_on_a_bad_reference(moto: MotoServer, shipped_runtime: Path,
                                                                      tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    proc = subprocess.run([sys.executable, str(shipped_runtime / RUNTIME_FILE), "--retry", "3", "--backoff", "0",
                           "--", sys.executable, "-c", f"open({str(marker)!r}, 'w')"],
                          env=_runtime_env(moto, {"DB_PASSWORD": "aws-secretsmanager://prod/db-password",
                                                  "GONE": "aws-secretsmanager://gone"}),
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and not marker.exists()
    assert "cloudml.runtime: secret GONE (aws-secretsmanager://gone): does not exist" in proc.stderr
    assert not any(v in proc.stdout + proc.stderr for v in SECRET_VALUES)


def test_long_references_continue_in_numbered_variables(moto: MotoServer, tmp_path: Path) -> None:
    """A processing job's Environment values hold at most 256 characters: references are split, never cut."""
    arn = moto.api_arn  # type: ignore[attr-defined]
    refs = {f"API_KEY_{i}": f"aws-secretsmanager://{arn}#key" for i in range(4)} | {"TOKEN": "aws-ssm:///prod/token"}
    p = build([{"name": "a", "command": "x", "secrets": refs}])
    d = compile_definition(p, SETTINGS, tmp_path)
    env = _step(d, "a")["Arguments"]["Environment"]
    chunks = {k: v for k, v in env.items() if k.startswith(SECRETS_VAR)}
    assert len(chunks) > 1 and all(len(v) <= 256 for v in chunks.values())
    assert set(chunks) == {SECRETS_VAR, *(f"{SECRETS_VAR}_{i}" for i in range(1, len(chunks)))}
    merged: dict[str, str] = {}
    for v in chunks.values():
        merged |= json.loads(v)
    assert merged == refs
    assert validate_definition(d) == []
    environ = dict(chunks)
    assert load_secrets(environ, _clients(moto)) == sorted(refs)
    assert environ == {**{f"API_KEY_{i}": API_KEY for i in range(4)}, "TOKEN": TOKEN}  # every chunk removed


def test_a_reference_longer_than_one_value_is_refused(tmp_path: Path) -> None:
    p = build([{"name": "a", "command": "x", "secrets": {"DB": "aws-secretsmanager://" + "n" * 250}}])
    with pytest.raises(CompileError, match="too long"):
        compile_definition(p, SETTINGS, tmp_path)
