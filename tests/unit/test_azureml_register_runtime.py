"""Azure ML register steps that carry approval, tags, metrics or a description: a node running cloudml's
runtime, run here through the runtime against the fake with the real ``MLClient`` and the real
``ManagedIdentityCredential`` (the fake serves the compute's managed-identity endpoint)."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloudml.adapters.azureml.compiler import compile_job
from cloudml.adapters.azureml.validate import validate_job
from cloudml.errors import CompileError
from tests.fakes.azureml import RESOURCE_GROUP, SUBSCRIPTION, WORKSPACE  # constants only: no SDK import
from tests.unit.test_azureml_compiler import REG_EVAL, REG_TRAIN, build, reg

# what ${{inputs.model}} holds with mode: direct, the long datastore URI form (its exact text is unverified)
MODEL_URI = (f"azureml://subscriptions/{SUBSCRIPTION}/resourcegroups/{RESOURCE_GROUP}/workspaces/{WORKSPACE}"
             "/datastores/workspaceblobstore/paths/azureml/train_1/model/")


def register_node(**fields: Any) -> dict[str, Any]:
    return compile_job(build([REG_TRAIN, REG_EVAL, reg(**fields)]), None)["jobs"]["register"]


def test_approval_tags_metrics_compile_to_a_runtime_node_with_the_model_passed_by_uri() -> None:
    job = compile_job(build([REG_TRAIN, REG_EVAL, reg(metrics="evaluate.outputs.metrics", approval="approved",
                                                      tags={"team": "risk"}, description="second try")]), None)
    assert "outputs" not in job, "no named pipeline output: the runtime registers"
    node = job["jobs"]["register"]
    assert node["inputs"] == {"model": {"path": "${{parent.jobs.train.outputs.model}}", "mode": "direct"},
                              "metrics": "${{parent.jobs.evaluate.outputs.metrics}}"}
    comp = node["component"]
    assert comp["inputs"] == {"model": {"type": "custom_model"}, "metrics": {"type": "uri_folder"}}
    assert comp["is_deterministic"] is False and "outputs" not in comp
    assert shlex.split(comp["command"]) == [
        "python", "-m", "cloudml.runtime", "--register-model", "azureml", "--group", "churn",
        "--model-uri", "${{inputs.model}}", "--model-type", "custom_model", "--approval", "approved",
        "--metrics", "${{inputs.metrics}}", "--tags", '{"team": "risk"}', "--description", "second try"]
    assert node["environment_variables"] == {"CLOUDML_STEP": "register", "CLOUDML_BACKEND": "azureml"}
    assert validate_job(job) == []  # reference checks, then load_job when azure-ai-ml is installed


@pytest.mark.parametrize("fields", [{"approval": "approved"}, {"approval": "rejected"}, {"tags": {"a": "b"}},
                                    {"metrics": "evaluate.outputs.metrics"}, {"description": "d"}])
def test_each_field_the_named_output_cannot_carry_selects_the_runtime_node(fields: dict[str, Any]) -> None:
    assert "cloudml.runtime" in register_node(**fields)["component"]["command"]


def test_a_plain_pending_registration_stays_a_named_pipeline_output() -> None:
    job = compile_job(build([REG_TRAIN, reg()]), None)
    assert job["outputs"] == {"register": {"type": "custom_model", "name": "churn", "mode": "upload"}}
    assert job["jobs"]["register"]["component"]["command"].startswith("mkdir -p")


def test_the_runtime_image_comes_from_backend_options_then_defaults_and_is_required() -> None:
    steps = [{**REG_TRAIN, "image": "python:3.11-slim"}, reg(approval="approved")]
    with pytest.raises(CompileError, match=r"no image with cloudml\[azure\]") as info:
        compile_job(build(steps, defaults={}), None)
    assert info.value.hint and "backend_options.azureml.runtime_image" in info.value.hint
    job = compile_job(build(steps, defaults={}, backend_options={"azureml": {"runtime_image": "acr.io/cloudml:1"}}), None)
    assert job["jobs"]["register"]["component"]["environment"] == {"image": "acr.io/cloudml:1"}
    step_level = {**reg(approval="approved"), "backend_options": {"azureml": {"runtime_image": "acr.io/own:2",
                                                                              "compute": "small"}}}
    node = compile_job(build([REG_TRAIN, step_level]), None)["jobs"]["register"]
    assert node["component"]["environment"] == {"image": "acr.io/own:2"} and node["compute"] == "azureml:small"


def test_the_runtime_node_reaches_rest_with_a_direct_model_input(tmp_path: Path) -> None:
    pytest.importorskip("azure.ai.ml")
    import yaml
    from azure.ai.ml import load_job

    job = compile_job(build([REG_TRAIN, REG_EVAL, reg(metrics="evaluate.outputs.metrics", approval="approved")],
                            backend_options={"azureml": {"compute": "cpu"}}), None)
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job, sort_keys=False))
    rest = load_job(source=str(path))._to_rest_object().as_dict()
    model = rest["properties"]["jobs"]["register"]["inputs"]["model"]
    assert model["mode"] == "Direct" and model["value"] == "${{parent.jobs.train.outputs.model}}"


# -- the compiled node's argv through the runtime, against the fake ---------------------------------

@pytest.fixture(scope="module")
def fake() -> Iterator[Any]:
    pytest.importorskip("azure.ai.ml")
    from tests.fakes.azureml import azure_test_env, azureml_fake

    with azureml_fake() as server, azure_test_env(server):
        yield server
        assert server.outbound == [], "a request tried to leave 127.0.0.1"


def job_env(fake: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """What Azure ML sets in a job on compute with a user-assigned managed identity."""
    from tests.fakes.azureml import MSI_PATH

    for key, value in {"AZUREML_ARM_SUBSCRIPTION": SUBSCRIPTION, "AZUREML_ARM_RESOURCEGROUP": RESOURCE_GROUP,
                       "AZUREML_ARM_WORKSPACE_NAME": WORKSPACE, "AZUREML_RUN_ID": "reference_1_register",
                       "MSI_ENDPOINT": fake.url + MSI_PATH, "MSI_SECRET": fake.msi_secret,
                       "DEFAULT_IDENTITY_CLIENT_ID": "11111111-2222-3333-4444-555555555555"}.items():
        monkeypatch.setenv(key, value)
    for key in ("OBO_ENDPOINT", "IDENTITY_ENDPOINT", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID"):
        monkeypatch.delenv(key, raising=False)


def runtime_argv(command: str, metrics_dir: Path) -> list[str]:
    """The command as Azure ML runs it: bindings substituted (the model by URI: mode direct), then the shell."""
    command = command.replace("${{inputs.model}}", MODEL_URI).replace("${{inputs.metrics}}", str(metrics_dir))
    argv = shlex.split(command)
    assert argv[:3] == ["python", "-m", "cloudml.runtime"]
    return argv[3:]


def test_the_compiled_register_node_registers_through_the_real_sdk(fake: Any, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import cloudml.runtime
    from cloudml.adapters.azureml.client import AzureMLClient
    from cloudml.adapters.azureml.registry import list_models
    from cloudml.config import AzureMLSettings
    from tests.fakes.azureml import FakeCredential, cloud_kwargs

    node = register_node(metrics="evaluate.outputs.metrics", approval="approved", tags={"team": "risk"},
                         description="gated")
    (tmp_path / "metrics.json").write_text(json.dumps({"auc": 0.91, "loss": 0.2, "note": "not a number"}))
    argv = runtime_argv(node["component"]["command"], tmp_path)
    job_env(fake, monkeypatch)
    assert cloudml.runtime.register_entry(argv, client_kwargs=cloud_kwargs(fake)) == 0
    assert cloudml.runtime.register_entry(argv, client_kwargs=cloud_kwargs(fake)) == 0  # the next version
    assert fake.msi_requests and fake.msi_requests[0]["clientid"] == "11111111-2222-3333-4444-555555555555"
    client = AzureMLClient(AzureMLSettings(subscription_id=SUBSCRIPTION, resource_group=RESOURCE_GROUP,
                                           workspace=WORKSPACE), FakeCredential(), **cloud_kwargs(fake))
    versions = list_models(client, "churn")
    assert [v.version for v in versions] == [2, 1]
    v2 = versions[0]
    assert (v2.uri, v2.approval, v2.metrics, v2.run_id) == (MODEL_URI, "approved", {"auc": 0.91, "loss": 0.2},
                                                            "reference_1_register")
    assert v2.tags == {"team": "risk"}
    stored = fake.online.models["churn"]["2"]["properties"]
    assert stored["description"] == "gated" and stored["modelType"] == "custom_model"


def test_the_runtime_says_what_is_missing_in_the_job(fake: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import cloudml.runtime

    argv = runtime_argv(register_node(approval="approved")["component"]["command"], tmp_path)
    job_env(fake, monkeypatch)
    monkeypatch.delenv("AZUREML_ARM_WORKSPACE_NAME")
    monkeypatch.delenv("CLOUDML_AZUREML_WORKSPACE", raising=False)
    assert cloudml.runtime.register_entry(argv) == 2
    assert "AZUREML_ARM_WORKSPACE_NAME not set" in capsys.readouterr().err
    job_env(fake, monkeypatch)
    from tests.fakes.azureml import cloud_kwargs

    fake.online.fault(400, 5, method="PUT", path_contains="/models/churn/versions/")  # refused (azure-ai-ml tries twice)
    assert cloudml.runtime.register_entry(argv, client_kwargs=cloud_kwargs(fake)) == 1
    err = capsys.readouterr().err
    assert "registering churn failed" in err and "injected 400" in err


def test_job_credential_picks_the_jobs_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("azure.identity")
    from cloudml.adapters.azureml.in_job import job_credential

    for key in ("OBO_ENDPOINT", "MSI_ENDPOINT", "IDENTITY_ENDPOINT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MSI_ENDPOINT", "http://127.0.0.1:9/msi/token")
    monkeypatch.setenv("MSI_SECRET", "s")
    assert type(job_credential({"MSI_ENDPOINT": "http://127.0.0.1:9/msi/token"})).__name__ == "ManagedIdentityCredential"
    assert type(job_credential({"OBO_ENDPOINT": "http://127.0.0.1:9/obo"})).__name__ == "AzureMLOnBehalfOfCredential"
    assert type(job_credential({})).__name__ == "DefaultAzureCredential"
