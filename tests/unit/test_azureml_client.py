"""The Azure ML client and adapter runs, with the real ``MLClient`` against the Azure ML fake.

azure-ai-ml talks HTTP to tests/fakes/azureml.py on 127.0.0.1 (CONVENTIONS rule 7); a proxy tripwire
makes any outbound attempt land in ``fake.outbound``. One fake serves the module; every test
submits its own job, so no test depends on another.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

pytest.importorskip("azure.ai.ml")

import cloudml
from cloudml.adapters.azureml import AzureMLAdapter
from cloudml.adapters.azureml.client import AzureMLClient, AzureMLRun, job_name
from cloudml.config import AzureMLSettings
from cloudml.errors import (
    AdapterNotInstalledError,
    BackendValidationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    SpecError,
)
from cloudml.spec.pipeline import Pipeline
from tests.conformance.cases import azure_reference_pipeline
from tests.conftest import REPO
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

POLL = 0.01


@pytest.fixture(scope="module")
def fake() -> Iterator[AzureMLFake]:
    with azureml_fake() as server, azure_test_env(server):
        server.add_compute("cpu-cluster")
        yield server
        assert server.outbound == [], "a request tried to leave 127.0.0.1"


def _settings() -> AzureMLSettings:
    return AzureMLSettings(subscription_id=SUBSCRIPTION, resource_group=RESOURCE_GROUP, workspace=WORKSPACE)


@pytest.fixture(scope="module")
def client(fake: AzureMLFake) -> AzureMLClient:
    return AzureMLClient(_settings(), FakeCredential(), **cloud_kwargs(fake))


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return dict(AzureMLAdapter(_settings()).compile(azure_reference_pipeline()).document)


def test_submit_runs_to_completion_with_the_parameters_as_job_inputs(fake: AzureMLFake, client: AzureMLClient,
                                                                    document: dict[str, Any]) -> None:
    run = client.submit(document, {"n_estimators": 300})
    assert isinstance(run, AzureMLRun) and run.id.startswith("azure_reference_")
    assert run.wait(timeout=60, poll=POLL) == "succeeded"
    assert run.status == "succeeded" and run.error is None

    stored = fake.job(run.id).body["properties"]
    assert stored["jobType"] == "Pipeline" and stored["experimentName"] == "azure-reference"
    assert stored["inputs"]["n_estimators"] == {"jobInputType": "literal", "value": "300"}
    assert stored["inputs"]["label"] == {"jobInputType": "literal", "value": "churned"}
    assert set(stored["jobs"]) == {"prep", "train", "evaluate"}
    # every node references an anonymous component the SDK created first (the fake refuses otherwise)
    assert all("/components/azureml_anonymous/versions/" in n["componentId"] for n in stored["jobs"].values())
    assert {s["name"]: s["status"] for s in run.steps} == {"prep": "succeeded", "train": "succeeded",
                                                          "evaluate": "succeeded"}
    assert "az ml job download" in run.logs("train") and run.logs("nope") == ""


def test_a_failed_job_names_the_failed_step(fake: AzureMLFake, client: AzureMLClient,
                                            document: dict[str, Any]) -> None:
    fake.fail_next("train", "exit code 2: ValueError: n_estimators must be positive")
    run = client.submit(document, {"n_estimators": 1})
    assert run.wait(timeout=60, poll=POLL) == "failed"
    assert run.error == "step 'train' failed: exit code 2: ValueError: n_estimators must be positive"
    assert {s["name"]: s["status"] for s in run.steps} == {"prep": "succeeded", "train": "failed",
                                                          "evaluate": "cancelled"}


def test_cancel_then_cancelling_a_finished_job_is_a_conflict(fake: AzureMLFake, client: AzureMLClient,
                                                             document: dict[str, Any]) -> None:
    run = client.submit(document)
    run.cancel()
    assert run.wait(timeout=60, poll=POLL) == "cancelled"
    assert fake.job(run.id).status == "Canceled"
    with pytest.raises(ConflictError, match="cannot be canceled"):
        run.cancel()


def test_an_unknown_run_is_not_found_with_a_next_step(client: AzureMLClient) -> None:
    with pytest.raises(NotFoundError) as info:
        client.get_run("no_such_job")
    assert info.value.backend == "azureml" and "no_such_job" in str(info.value)
    assert info.value.hint and "az ml job list" in info.value.hint
    with pytest.raises(NotFoundError):
        _ = AzureMLRun(client, "no_such_job").status


def test_throttling_is_retried_until_it_succeeds(fake: AzureMLFake, client: AzureMLClient,
                                                 document: dict[str, Any]) -> None:
    fake.throttle(2)
    run = client.submit(document)
    assert run.id in fake.jobs
    assert [r for r in fake.requests if r[2] == 429][-2:], "the fake never throttled"
    assert run.wait(timeout=60, poll=POLL) == "succeeded"


def test_forbidden_is_a_permission_error_naming_the_role(fake: AzureMLFake, client: AzureMLClient,
                                                         document: dict[str, Any]) -> None:
    fake.forbid(1)
    with pytest.raises(PermissionDeniedError) as info:
        client.submit(document)
    assert info.value.vendor_code == "AuthorizationFailed"
    assert info.value.hint and "AzureML Data Scientist" in info.value.hint and WORKSPACE in info.value.hint


def test_a_compute_the_workspace_lacks_is_refused_before_the_job_put(fake: AzureMLFake, client: AzureMLClient,
                                                                     document: dict[str, Any]) -> None:
    doc = copy.deepcopy(document)
    doc["jobs"]["prep"]["compute"] = "azureml:gpu-cluster"
    before = set(fake.jobs)
    with pytest.raises(BackendValidationError, match=r"jobs\.prep\.compute: .*gpu-cluster was not found") as info:
        client.submit(doc)
    assert info.value.hint and "az ml compute list" in info.value.hint
    assert set(fake.jobs) == before


def test_unknown_parameters_are_refused_before_any_request(fake: AzureMLFake, client: AzureMLClient,
                                                           document: dict[str, Any]) -> None:
    mark = len(fake.requests)
    with pytest.raises(BackendValidationError, match="unknown parameter"):
        client.submit(document, {"n_estimator": 3})
    adapter = AzureMLAdapter(_settings())
    adapter._client = client
    with pytest.raises(SpecError, match="unknown parameter 'n_estimator'"):
        adapter.run(azure_reference_pipeline(), {"n_estimator": 3})
    assert fake.requests[mark:] == []


def test_adapter_run_end_to_end(fake: AzureMLFake) -> None:
    adapter = cloudml.get_adapter("azureml", subscription_id=SUBSCRIPTION, resource_group=RESOURCE_GROUP,
                                  workspace=WORKSPACE)
    assert isinstance(adapter, AzureMLAdapter)
    adapter.client(FakeCredential(), **cloud_kwargs(fake))
    run = adapter.run(azure_reference_pipeline(), {"label": "left"}, wait=True, poll=POLL, timeout=60,
                      experiment_name="cloudml-tests")
    assert run.status == "succeeded"
    stored = fake.job(run.id).body["properties"]
    assert stored["inputs"]["label"]["value"] == "left" and stored["experimentName"] == "cloudml-tests"
    again = adapter.get_run(run.id)
    assert again.id == run.id and again.status == "succeeded"


def test_a_required_parameter_takes_the_run_value(fake: AzureMLFake) -> None:
    adapter = cloudml.get_adapter("azureml", subscription_id=SUBSCRIPTION, resource_group=RESOURCE_GROUP,
                                  workspace=WORKSPACE)
    assert isinstance(adapter, AzureMLAdapter)
    adapter.client(FakeCredential(), **cloud_kwargs(fake))
    data = azure_reference_pipeline().model_dump(mode="json", by_alias=True, exclude_none=True)
    data["parameters"]["label"].pop("default")
    required = cloudml.loads(yaml.safe_dump(data))
    assert isinstance(required, Pipeline) and required.parameters["label"].default is None
    with pytest.raises(cloudml.SpecError, match="label"):
        adapter.run(required)  # no value: refused before any request
    run = adapter.run(required, {"label": "right"}, wait=True, poll=POLL, timeout=60)
    assert run.status == "succeeded"
    assert fake.job(run.id).body["properties"]["inputs"]["label"]["value"] == "right"


def test_missing_settings_and_missing_sdk_say_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(cloudml.errors.ConfigError) as info:
        AzureMLClient(AzureMLSettings(workspace="ws"), FakeCredential())
    assert info.value.hint and "CLOUDML_AZUREML_SUBSCRIPTION_ID" in info.value.hint
    monkeypatch.setitem(sys.modules, "azure.ai.ml", None)
    with pytest.raises(AdapterNotInstalledError) as missing:
        AzureMLClient(_settings(), FakeCredential())
    assert missing.value.pip_command == "pip install 'cloudml[azure]'"


def test_job_names_are_fresh_identifiers() -> None:
    a, b = job_name("azure-reference"), job_name("azure-reference")
    assert a != b and a.replace("_", "").isalnum()


# -- code folders, python steps and emulated retries ----------------------------------------------------

def code_pipeline(base: Any) -> Pipeline:
    (base / "src").mkdir(parents=True, exist_ok=True)
    (base / "src" / "job.py").write_text("def run(n: int, out):\n    (out / 'n.txt').write_text(str(n))\n")
    (base / "src" / "prep.py").write_text("print('prep')\n")
    (base / "pipeline.yaml").write_text(
        "kind: Pipeline\nname: py-demo\nparameters: {n: {type: int, default: 2}}\n"
        "backend_options: {azureml: {compute: cpu-cluster}}\n"
        "steps:\n"
        "  - {name: prep, command: 'python prep.py --out {{outputs.d}}', code: src, outputs: {d: dataset},\n"
        "     retry: {attempts: 3, backoff: 1s}, image: 'python:3.11-slim'}\n"
        "  - {name: fit, python: 'job:run', code: src, framework: sklearn==1.5,\n"
        "     inputs: {d: prep.outputs.d}, params: {n: '{{params.n}}'}, outputs: {out: dataset}}\n"
        "  - {name: tool, python: 'tools.x:y', image: 'python:3.11-slim'}\n")
    p = cloudml.load(base / "pipeline.yaml")
    assert isinstance(p, Pipeline)
    return p


def test_code_folders_and_the_runtime_are_uploaded_through_the_real_sdk(fake: AzureMLFake, tmp_path: Any) -> None:
    adapter = cloudml.get_adapter("azureml", subscription_id=SUBSCRIPTION, resource_group=RESOURCE_GROUP,
                                  workspace=WORKSPACE)
    assert isinstance(adapter, AzureMLAdapter)
    adapter.client(FakeCredential(), **cloud_kwargs(fake))
    before = set(fake.code.files())
    run = adapter.run(code_pipeline(tmp_path), spec_dir=str(tmp_path), wait=True, poll=POLL, timeout=60)
    assert run.status == "succeeded"
    # blob "<container>/<staged folder>/<file>": prep and fit share src + the runtime (azure-ai-ml uploads the
    # folder once per component), tool (python, no code) gets the runtime alone
    uploaded = sorted(k.split("/", 1)[1] for k in set(fake.code.files()) - before)
    assert uploaded == ["code_0/cloudml_runtime.py"] * 2 + ["code_0/job.py"] * 2 + ["code_0/prep.py"] * 2 + [
        "code_1/cloudml_runtime.py"]
    runtime = (REPO / "cloudml" / "runtime.py").read_bytes()
    assert [v for k, v in fake.code.files().items() if k.endswith("/code_1/cloudml_runtime.py")] == [runtime]
    nodes = fake.job(run.id).body["properties"]["jobs"]
    assert set(nodes) == {"prep", "fit", "tool"}
    specs = [c["properties"]["componentSpec"] for c in fake.components.values()]
    fit = next(c for c in specs if "--function job:run" in c["command"])
    assert fit["command"].startswith("python cloudml_runtime.py --function job:run --code . --input=d=${{inputs.d}}")
    assert "/codes/" in fit["code"]
    assert fit["environment"].startswith("azureml://registries/azureml/environments/sklearn-1.5")
    prep = next(c for c in specs if "--retry 3" in c["command"])
    assert prep["command"] == ("python cloudml_runtime.py --retry 3 --backoff 1 -- sh -c "
                               "'python prep.py --out ${{outputs.d}}'")


def test_a_missing_code_folder_is_refused_before_the_job_is_sent(fake: AzureMLFake, client: AzureMLClient,
                                                                  tmp_path: Any) -> None:
    p = code_pipeline(tmp_path)
    document = AzureMLAdapter(_settings()).compile(p).document
    mark = len(fake.requests)
    with pytest.raises(BackendValidationError, match=r"code folder .* does not exist"):
        client.submit(document, base_dir=tmp_path / "elsewhere")
    assert [r for r in fake.requests[mark:] if "/jobs/" in r[1]] == []


def test_python_framework_and_retried_nodes_pass_validate_job_and_load_job(tmp_path: Any) -> None:
    from cloudml.adapters.azureml.validate import validate_job

    document = AzureMLAdapter(_settings()).compile(code_pipeline(tmp_path)).document
    assert validate_job(document) == []  # our reference checks, then azure.ai.ml.load_job
    assert document["jobs"]["fit"]["component"]["environment"] == \
        "azureml://registries/azureml/environments/sklearn-1.5/labels/latest"


def test_preview_conditions_need_the_sdk_switch_before_it_was_imported(fake: AzureMLFake,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conformance.cases import FEATURE_CASES

    monkeypatch.delenv("AZURE_ML_CLI_PRIVATE_FEATURES_ENABLED", raising=False)
    settings = AzureMLSettings(subscription_id=SUBSCRIPTION, resource_group=RESOURCE_GROUP, workspace=WORKSPACE,
                               enable_preview_conditions=True)
    document = AzureMLAdapter(settings).compile(FEATURE_CASES["condition"]()).document  # type: ignore[arg-type]
    assert any(job["type"] == "if_else" for job in document["jobs"].values())
    assert "azure.ai.ml" in sys.modules  # imported long ago in this process, without the switch
    client = AzureMLClient(settings, FakeCredential(), **cloud_kwargs(fake))
    with pytest.raises(cloudml.errors.ConfigError, match="preview condition nodes") as e:
        client.submit(document)
    assert e.value.hint and "AZURE_ML_CLI_PRIVATE_FEATURES_ENABLED=true" in e.value.hint
