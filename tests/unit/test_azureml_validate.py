"""Compiled Azure ML jobs against two oracles: cloudml's ``validate_job`` and azure-ai-ml's ``load_job``.

Positive: every job the compiler produces (feature cases, the reference pipeline, parameters,
commands, fail steps, cache, env, resources, compute) passes ``validate_job`` with no problems, and
``azure.ai.ml.load_job`` reads the YAML text of ``Compiled.dumps()``; where a compute is set, the
SDK's own local checks (``PipelineJob._validate()``) pass too.

Negative: ``validate_job`` reports what ``load_job`` misses (../shared/notes/azureml.md §4): each
such case also shows that ``load_job`` alone accepts the job. What ``load_job`` does catch surfaces
as a ``load_job:`` problem. Known bugs are strict expected failures marked ``BUG:``.
"""

from __future__ import annotations

import copy
import json
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cloudml.adapter import FEATURES, Compiled
from cloudml.adapters.azureml import AzureMLAdapter
from cloudml.adapters.azureml.compiler import compile_job
from cloudml.adapters.azureml.sweep import SWEEP_KEYS
from cloudml.adapters.azureml.validate import COMPONENT_KEYS, NODE_KEYS, validate_job
from cloudml.config import AzureMLSettings
from cloudml.errors import CompileError
from cloudml.spec.pipeline import Pipeline
from cloudml.spec.validate import validate_data
from tests.conformance.cases import FEATURE_CASES, azure_reference_pipeline, external_case
from tests.conftest import REPO

with warnings.catch_warnings():  # azure-ai-ml's schemas use marshmallow 3 APIs deprecated for 4, at import
    warnings.simplefilter("ignore", DeprecationWarning)
    from azure.ai.ml import load_job
    from azure.ai.ml.entities import PipelineJob

# azure-ai-ml 1.35 pins marshmallow<4 and uses APIs marshmallow 3.26 warns about, thousands of times a run
pytestmark = pytest.mark.filterwarnings("ignore::marshmallow.warnings.Marshmallow4Warning")

IMAGE = "python:3.11-slim"


def build(steps: list[dict[str, Any]], **top: Any) -> Pipeline:
    doc = {"apiVersion": "cloudml/v1", "kind": "Pipeline", "name": "t", "defaults": {"image": IMAGE},
           "steps": steps, **top}
    p = validate_data(doc)
    assert isinstance(p, Pipeline)
    return p


def _uri_parameter() -> Pipeline:
    """input.parameter with a default Azure ML reads (the shared feature case uses gs://)."""
    return build([{"name": "work", "command": "python work.py {{inputs.raw}}", "inputs": {"raw": "{{params.uri}}"}}],
                 parameters={"uri": {"type": "string", "default": "azureml://datastores/ws/paths/raw/"}})


def sdk_load(text: str, folder: Path, codes: list[str] | None = None) -> PipelineJob:
    """azure.ai.ml.load_job on the YAML text, from a file in ``folder`` next to the code folders it names.

    The folder must outlive the job: ``PipelineJob._validate()`` looks for the code folders again.
    """
    path = folder / "job.yaml"
    path.write_text(text)
    for code in codes or []:
        (folder / code).mkdir(parents=True, exist_ok=True)
    job = load_job(source=str(path))
    assert isinstance(job, PipelineJob)
    return job


def sdk_error(document: dict[str, Any]) -> str | None:
    """What load_job alone says about a document (None: it accepts it)."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            sdk_load(Compiled("azureml", "t", document, "yaml").dumps(), Path(tmp))
        except Exception as e:  # the SDK raises several exception types
            return str(e)
    return None


# -- every compiled job passes both oracles ---------------------------------------------------------

CLUSTER = AzureMLSettings(compute="cpu-cluster")
Case = tuple[Callable[[], Any], AzureMLSettings]


def _feature_cases() -> dict[str, Case]:
    caps = AzureMLAdapter.capabilities
    out: dict[str, Case] = {}
    for feature in FEATURES:
        if feature.startswith("deploy.") or not caps.supports(feature):
            continue
        factory = (lambda: external_case("azureml")) if feature == "input.external" else FEATURE_CASES[feature]
        if feature == "input.parameter":  # the shared case's default is gs://, which Azure ML cannot read
            factory = _uri_parameter
        out[f"feature:{feature}"] = (factory, CLUSTER)
        out[f"feature:{feature}:no-compute"] = (factory, AzureMLSettings())
    return out


PARAMS = {"s": {"type": "string", "default": "a b"}, "i": {"type": "int", "default": 200},
          "f": {"type": "float", "default": 0.8}, "b": {"type": "bool", "default": False},
          "y": {"type": "string", "default": "yes"}}
TWO_STEPS = [{"name": "make-data", "command": "python m.py {{outputs.d}} {{outputs.m}}",
              "outputs": {"d": "dataset", "m": "model"}}]


def _res(resources: dict[str, Any], **top: Any) -> Callable[[], Pipeline]:
    return lambda: build([{"name": "a", "command": "python a.py", "resources": resources}], **top)


CASES: dict[str, Case] = {
    **_feature_cases(),
    "azure-reference": (azure_reference_pipeline, AzureMLSettings()),
    "azure-reference:settings": (azure_reference_pipeline, AzureMLSettings(compute="serverless")),
    "every-parameter-type": (lambda: build(
        [{"name": "use-all", "command": "python a.py --s {{params.s}} --i {{params.i}} --f {{params.f}}",
          "args": ["--b", "{{params.b}}", "--y={{params.y}}"]}], parameters=PARAMS), CLUSTER),
    "list-command-with-args": (lambda: build(
        [*TWO_STEPS, {"name": "train", "command": ["python", "-c", "import sys; print(sys.argv)", "{{inputs.d}}"],
                      "args": ["--model", "{{inputs.m}}", "--title", "two words", "--lr={{params.f}}"],
                      "inputs": {"d": "make-data.outputs.d", "m": "make-data.outputs.m"}}],
        parameters=PARAMS), CLUSTER),
    "fail-with-params": (lambda: build(
        [{"name": "too-low", "fail": "AUC below {{params.f}} for {{params.s}} ({{params.i}}, {{params.b}})"}],
        parameters=PARAMS), CLUSTER),
    "cache-off": (lambda: build([{"name": "a", "command": "echo", "cache": False},
                                 {"name": "b", "command": "echo", "cache": {"enabled": False}}],
                                defaults={"image": IMAGE, "cache": False}), CLUSTER),
    "env": (lambda: build([{"name": "a", "command": "echo $MODE", "env": {"MODE": "fast", "EMPTY": ""}}],
                          defaults={"image": IMAGE, "env": {"A": "1"}}), CLUSTER),
    "metrics-chain": (lambda: build(
        [*TWO_STEPS, {"name": "ev", "command": "python ev.py {{inputs.m}} {{outputs.metrics}}",
                      "inputs": {"m": "make-data.outputs.m"}, "outputs": {"metrics": "metrics"}},
         {"name": "report", "command": "cat {{inputs.metrics}}", "inputs": {"metrics": "ev.outputs.metrics"}}]),
                      CLUSTER),
    "datastore-file-and-folder": (lambda: build([{"name": "a", "command": "cat {{inputs.f}} {{inputs.d}}",
                                                  "inputs": {"f": "azureml://datastores/ws/paths/x.csv",
                                                             "d": "azureml://datastores/ws/paths/raw/"}}]), CLUSTER),
    "parameter-uris": (lambda: build([{"name": "a", "command": "cat {{inputs.f}} {{inputs.d}} {{params.n}}",
                                       "inputs": {"f": "{{params.file}}", "d": "{{params.folder}}"}},
                                      {"name": "b", "command": "ls {{inputs.d}}", "inputs": {"d": "{{params.folder}}"}}],
                                     parameters={"file": {"type": "string", "default": "azureml://datastores/ws/paths/x.csv"},
                                                 "folder": {"type": "string",
                                                            "default": "azureml://datastores/ws/paths/raw/"},
                                                 "n": {"type": "int", "default": 3}}), CLUSTER),
    "timeouts": (lambda: build([{"name": "a", "command": "echo", "timeout": "1.5s"},
                                {"name": "b", "command": "echo", "timeout": "2h"}]), CLUSTER),
    "descriptions-and-code": (lambda: build([{"name": "a", "command": "python a.py", "code": "./src",
                                              "description": "step a"}], description="pipe"), CLUSTER),
    **{f"resources:{k}": (_res(r), CLUSTER) for k, r in {
        "cpu": {"cpu": 2}, "memory": {"memory": "100Gi"}, "cpu+memory": {"cpu": 4, "memory": "16Gi"},
        "gpu-t4": {"gpu": 1, "gpu_type": "nvidia-t4"}, "gpu-v100": {"gpu": 1, "gpu_type": "nvidia-v100"},
        "gpu-a100": {"gpu": 1, "gpu_type": "nvidia-a100", "cpu": 8},
        "override": {"cpu": 64, "instance_type": {"azureml": "Standard_ND96asr_v4"}},
        "count": {"instance_count": 3}, "count+cpu": {"instance_count": 2, "cpu": 4}}.items()},
    "compute:options-cluster": (_res({"cpu": 2}, backend_options={"azureml": {"compute": "gpu-cluster"}}),
                                AzureMLSettings()),
    "compute:options-serverless": (_res({"cpu": 2}, backend_options={"azureml": {"compute": "serverless"}}),
                                   AzureMLSettings()),
    "compute:options-instance-type": (_res({}, backend_options={"azureml": {"compute": "serverless",
                                                                          "instance_type": "Standard_F4s_v2"}}),
                                      AzureMLSettings()),
    "compute:step-options": (lambda: build([{"name": "a", "command": "echo", "backend_options": {
        "azureml": {"compute": "azureml:gpu", "instance_type": "Standard_NC6s_v3"}}}]), CLUSTER),
    "compute:settings-cluster": (_res({"cpu": 2}), AzureMLSettings(compute="azureml:cpu-cluster")),
    "compute:settings-serverless": (_res({"cpu": 2}), AzureMLSettings(compute="serverless")),
}


def _comp(node: dict[str, Any]) -> dict[str, Any]:
    """A node's component (a sweep node's is its ``trial``)."""
    return dict(node["trial"] if node.get("type") == "sweep" else node["component"])


@pytest.fixture
def code_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Work in tmp_path, with the code folder (src) and code_paths folder (lib) the feature cases name."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "src").mkdir(exist_ok=True)
    (tmp_path / "lib").mkdir(exist_ok=True)
    (tmp_path / "lib" / "helpers.py").write_text("VALUE = 1\n")
    return tmp_path


@pytest.mark.usefixtures("code_folders")
@pytest.mark.parametrize("case", sorted(CASES))
def test_compiled_jobs_pass_both_oracles(case: str, tmp_path: Path) -> None:
    factory, settings = CASES[case]
    adapter = AzureMLAdapter(settings)
    compiled = adapter.compile(factory())
    doc = compiled.document
    assert validate_job(doc) == []
    assert adapter.validate_compiled(compiled) == []
    codes = [_comp(n)["code"] for n in doc["jobs"].values() if "code" in _comp(n)]
    job = sdk_load(compiled.dumps(), tmp_path, codes)
    assert set(job.jobs) == set(doc["jobs"])
    for name, node in job.jobs.items():
        loaded = node.trial if doc["jobs"][name]["type"] == "sweep" else node.component  # Sweep.component is not it
        assert loaded.command == _comp(doc["jobs"][name])["command"]
    compute = doc["settings"].get("default_compute")
    if compute:
        assert job.settings.default_compute == compute.removeprefix("azureml:")
        result = job._validate()
        assert result.passed, result.error_messages


def test_what_load_job_reads_back(tmp_path: Path) -> None:
    compiled = AzureMLAdapter(AzureMLSettings()).compile(azure_reference_pipeline())
    job = sdk_load(compiled.dumps(), tmp_path)
    assert job.experiment_name == job.display_name == "azure-reference"
    assert {k: v._data for k, v in job.inputs.items()} == {"n_estimators": 200, "label": "churned"}
    prep, train, ev = job.jobs["prep"], job.jobs["train"], job.jobs["evaluate"]
    assert prep.compute == "cpu-cluster" and prep.limits.timeout == 3600
    assert prep.inputs["raw"]._data.type == "uri_file"
    assert prep.inputs["label"]._data == "${{parent.inputs.label}}"
    assert train.inputs["train"]._data == "${{parent.jobs.prep.outputs.train}}"
    assert {k: v.type for k, v in train.component.inputs.items()} == {"train": "uri_folder", "n_estimators": "integer"}
    assert train.component.outputs["model"].type == "custom_model"
    assert train.resources.instance_type == "Standard_E4s_v3"
    assert ev.component.is_deterministic is False and train.component.is_deterministic is True
    assert ev.component.command.endswith("${{outputs.metrics}}/metrics.json")


def test_the_golden_file_passes_both_oracles() -> None:
    golden = json.loads((REPO / "tests" / "golden" / "azure-reference" / "azureml.json").read_text())
    assert validate_job(golden) == []
    assert sdk_error(golden) is None


def test_validate_compiled_ignores_deployment_plans() -> None:
    compiled = AzureMLAdapter(AzureMLSettings()).compile_deployment(FEATURE_CASES["deploy.blue_green"]())  # type: ignore[arg-type]
    assert AzureMLAdapter(AzureMLSettings()).validate_compiled(compiled) == []


# -- what validate_job catches that load_job misses -------------------------------------------------

BASE = compile_job(build(
    [{"name": "a", "command": "echo {{outputs.o}}", "outputs": {"o": "dataset"}, "timeout": "1h"},
     {"name": "b", "command": "cat {{inputs.x}} {{params.p}}", "inputs": {"x": "a.outputs.o"}}],
    parameters={"p": {"type": "int", "default": 1}}), AzureMLSettings(compute="cpu-cluster"))


def mutated(change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    change(doc)
    return doc


def _cycle(d: dict[str, Any]) -> None:
    a = d["jobs"]["a"]
    a["inputs"] = {"back": "${{parent.jobs.b.outputs.o2}}"}
    a["component"]["inputs"] = {"back": {"type": "uri_folder"}}
    d["jobs"]["b"]["outputs"] = {"o2": {"type": "uri_folder"}}
    d["jobs"]["b"]["component"]["outputs"] = {"o2": {"type": "uri_folder"}}


MISSED_BY_LOAD_JOB: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "unknown node key": (lambda d: d["jobs"]["b"].update(retry_settings={"max_retries": 3}),
                         "b: unknown node key retry_settings"),
    "unknown component key": (lambda d: d["jobs"]["a"]["component"].update(retries=3),
                              "a: unknown component key retries"),
    "binding to a missing node": (lambda d: d["jobs"]["b"]["inputs"].update(x="${{parent.jobs.nope.outputs.o}}"),
                                  "b: input x binds to unknown node nope"),
    "binding to a missing output": (lambda d: d["jobs"]["b"]["inputs"].update(x="${{parent.jobs.a.outputs.zzz}}"),
                                    "b: input x binds to a.outputs.zzz, which does not exist"),
    "undeclared pipeline input": (lambda d: d["jobs"]["b"]["inputs"].update(p="${{parent.inputs.q}}"),
                                  "b: input p binds to unknown pipeline input q"),
    "node input the component lacks": (lambda d: d["jobs"]["b"]["inputs"].update(extra="${{parent.inputs.p}}"),
                                       "b: input extra is not declared by its component"),
    "node output the component lacks": (lambda d: d["jobs"]["a"]["outputs"].update(extra={"type": "uri_folder"}),
                                        "a: output extra is not declared by its component"),
    "unknown input in a command": (lambda d: d["jobs"]["b"]["component"].update(command="cat ${{inputs.zzz}}"),
                                   "b: command uses ${{inputs.zzz}}, which the component does not declare"),
    "unknown output in a command": (lambda d: d["jobs"]["a"]["component"].update(command="echo ${{outputs.zzz}}"),
                                    "a: command uses ${{outputs.zzz}}, which the component does not declare"),
    "a cycle of bindings": (_cycle, "cycle: a -> b -> a"),
}


@pytest.mark.parametrize("case", sorted(MISSED_BY_LOAD_JOB))
def test_validate_job_catches_what_load_job_misses(case: str) -> None:
    change, message = MISSED_BY_LOAD_JOB[case]
    doc = mutated(change)
    assert sdk_error(doc) is None, "load_job started catching this: the note in azureml.md §4 is out of date"
    problems = validate_job(doc)
    assert message in problems
    assert not [p for p in problems if p.startswith("load_job:")]


def test_the_base_job_is_clean() -> None:
    assert validate_job(BASE) == []


@pytest.mark.usefixtures("code_folders")
def test_every_key_the_compiler_emits_is_in_the_closed_sets() -> None:
    for factory, settings in CASES.values():
        for n in compile_job(factory(), settings)["jobs"].values():
            assert set(n) <= (SWEEP_KEYS if n["type"] == "sweep" else NODE_KEYS) and set(_comp(n)) <= COMPONENT_KEYS


@pytest.mark.parametrize("name", ["Bad_Name", "bad-name", "1st", "b c"])
def test_invalid_node_names(name: str) -> None:
    doc = mutated(lambda d: d["jobs"].update({name: d["jobs"].pop("b")}))
    problems = validate_job(doc)
    assert f"{name}: node names are lower-case identifiers" in problems
    assert any(p.startswith("load_job:") and "valid python identifier" in p for p in problems)


LOAD_JOB_FINDINGS: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "timeout": (lambda d: d["jobs"]["a"]["limits"].update(timeout="soon"), "jobs.a.limits.timeout"),
    "continue_on_step_failure": (lambda d: d["settings"].update(continue_on_step_failure="sometimes"),
                                 "Not a valid boolean"),
    "unknown top-level key": (lambda d: d.update(setings={}), "setings"),
    "bad output type": (lambda d: d["jobs"]["a"]["component"]["outputs"]["o"].update(type="uri_fodler"),
                        "uri_fodler"),
    "no environment": (lambda d: d["jobs"]["a"]["component"].pop("environment"), "jobs.a.component.environment"),
}


@pytest.mark.parametrize("case", sorted(LOAD_JOB_FINDINGS))
def test_load_job_findings_surface(case: str) -> None:
    change, fragment = LOAD_JOB_FINDINGS[case]
    problems = validate_job(mutated(change))
    assert len(problems) == 1, problems
    assert problems[0].startswith("load_job: ") and fragment in problems[0]


def test_wrong_job_type_is_reported_twice() -> None:
    problems = validate_job(mutated(lambda d: d.update(type="pipline")))
    assert problems[0] == "type must be 'pipeline'"
    assert problems[1] == "load_job: ValidationException: Unsupported job type: pipline."


def test_a_component_without_command() -> None:
    problems = validate_job(mutated(lambda d: d["jobs"]["a"]["component"].pop("command")))
    assert problems[0] == "a: the component has no command"
    assert "jobs.a.component.command" in problems[1]


def test_several_problems_are_all_reported() -> None:
    def change(d: dict[str, Any]) -> None:
        d["jobs"]["b"]["inputs"]["x"] = "${{parent.jobs.nope.outputs.o}}"
        d["jobs"]["b"]["component"]["command"] = "cat ${{inputs.zzz}}"
        d["jobs"]["a"]["bogus"] = 1

    problems = validate_job(mutated(change))
    assert problems == ["a: unknown node key bogus", "b: input x binds to unknown node nope",
                        "b: command uses ${{inputs.zzz}}, which the component does not declare"]


# -- known bugs -----------------------------------------------------------------------------------


def test_a_parameter_without_default_is_refused_at_compile_time() -> None:
    p = build([{"name": "a", "command": "echo {{params.n}}"}], parameters={"n": {"type": "int"}})
    with pytest.raises(CompileError, match=r"parameter\(s\) n have no default") as info:
        compile_job(p, AzureMLSettings(compute="c"))
    assert "default" in str(info.value.hint)


def test_input_names_equal_ignoring_case(tmp_path: Path) -> None:
    p = build([{"name": "a", "command": "echo {{params.LR}} {{params.lr}}"}],
              parameters={"LR": {"type": "float", "default": 0.1}, "lr": {"type": "float", "default": 0.2}})
    try:
        compiled = AzureMLAdapter(AzureMLSettings(compute="c")).compile(p)
    except Exception as e:  # refusing by name is a fix too
        assert "lr" in str(e).lower()
        return
    job = sdk_load(compiled.dumps(), tmp_path)
    result = job.jobs["a"].component._validate()
    assert result.passed, result.error_messages


def test_dict_form_bindings_are_checked() -> None:
    doc = mutated(lambda d: d["jobs"]["b"]["inputs"].update(x={"path": "${{parent.jobs.nope.outputs.o}}"}))
    assert sdk_error(doc) is None
    assert "b: input x binds to unknown node nope" in validate_job(doc)


def test_bindings_to_component_outputs_without_node_outputs() -> None:
    doc = mutated(lambda d: d["jobs"]["a"].pop("outputs"))
    assert sdk_error(doc) is None
    assert validate_job(doc) == []


def test_validation_writes_nothing_outside_its_temp_folder(tmp_path: Path) -> None:
    outside = tmp_path / "outside" / "src"
    validate_job(mutated(lambda d: d["jobs"]["a"]["component"].update(code=str(outside))))
    assert not outside.exists()


# -- registered outputs and preview if_else nodes -----------------------------------------------------


def gated_job(**register: Any) -> dict[str, Any]:
    from tests.unit.test_azureml_compiler import PREVIEW, azure_gated_reference

    return compile_job(azure_gated_reference(**register), PREVIEW)


def test_the_gated_reference_passes_both_oracles_with_the_preview_flag() -> None:
    """validate_job's own checks, then load_job in a child interpreter with the private-preview flag."""
    assert validate_job(gated_job()) == []


def test_a_registered_output_passes_both_oracles_and_reaches_rest_as_an_asset_name(tmp_path: Path) -> None:
    compiled = AzureMLAdapter(AzureMLSettings(compute="c")).compile(FEATURE_CASES["register_model"]())  # type: ignore[arg-type]
    assert AzureMLAdapter().validate_compiled(compiled) == []
    job = sdk_load(compiled.dumps(), tmp_path)
    assert job._to_rest_object().as_dict()["properties"]["outputs"]["reg"] == {
        "assetName": "g", "mode": "Upload", "jobOutputType": "custom_model"}


def test_load_job_alone_refuses_if_else_without_the_preview_flag(tmp_path: Path) -> None:
    """Why validate_job loads control flow in a child process: in this process the flag is unset."""
    import os

    import yaml

    assert os.environ.get("AZURE_ML_CLI_PRIVATE_FEATURES_ENABLED") is None
    (tmp_path / "j.yaml").write_text(yaml.safe_dump(gated_job(), sort_keys=False))
    with pytest.raises(Exception, match="if_else"):
        load_job(source=str(tmp_path / "j.yaml"))


def _if_else(d: dict[str, Any]) -> dict[str, Any]:
    return dict(d["jobs"]["gate"])


@pytest.mark.parametrize(("change", "problem"), [
    (lambda d: d["jobs"]["gate"].update(condition="${{parent.jobs.evaluate.outputs.metrics}}"),
     "gate: condition binds to evaluate.outputs.metrics, which is not a boolean output"),
    (lambda d: d["jobs"]["gate"].update(condition="${{parent.jobs.nope.outputs.result}}"),
     "gate: condition binds to unknown node nope"),
    (lambda d: d["jobs"]["gate"].update(condition="true-ish"),
     "gate: condition must bind to a node output"),
    (lambda d: d["jobs"]["gate"].update(true_block="${{parent.jobs.nope}}"),
     "gate: true_block entry '${{parent.jobs.nope}}' is not a binding to another node of this pipeline"),
    (lambda d: d["jobs"]["gate"].update(false_block="${{parent.jobs.register}}"),
     "gate: node register is already in a block of gate"),
    (lambda d: (d["jobs"]["gate"].pop("true_block"), d["jobs"]["gate"].pop("false_block")),
     "gate: an if_else needs a true_block or a false_block"),
    (lambda d: d["jobs"]["gate"].update(component={}), "gate: unknown if_else key component"),
    (lambda d: d["jobs"]["register"].update(outputs={"model": "${{parent.outputs.nope}}"}),
     "register: output model binds to unknown pipeline output nope"),
    (lambda d: d["outputs"]["register"].update(type="uri_folder"),
     "register: output model is custom_model but pipeline output register is uri_folder"),
    (lambda d: d["outputs"]["register"].update(tags={"cloudml.approval": "approved"}),
     "pipeline output register: unknown key tags"),
    (lambda d: d["outputs"]["register"].update(mode="rw_mount"),
     "pipeline output register: a registered model output is uploaded (mode: upload)"),
])
def test_validate_job_checks_if_else_nodes_and_registered_outputs(change: Callable[[dict[str, Any]], Any],
                                                                   problem: str) -> None:
    document = gated_job(metrics=None)  # a pending registration without metrics: a named pipeline output
    change(document)
    assert any(problem in p for p in validate_job(document)), problem


def test_the_gated_reference_with_a_registering_runtime_node_passes_both_oracles() -> None:
    document = gated_job(approval="approved", tags={"team": "risk"})
    assert "outputs" not in document and "--register-model" in document["jobs"]["register"]["component"]["command"]
    assert validate_job(document) == []


# -- a parameter holding an input URI (input.parameter) ----------------------------------------------------


def test_a_parameter_held_uri_reaches_rest_as_an_asset_input_with_its_default(tmp_path: Path) -> None:
    compiled = AzureMLAdapter(CLUSTER).compile(_uri_parameter())
    job = sdk_load(compiled.dumps(), tmp_path)
    assert job.inputs["uri"]._data.type == "uri_folder"
    assert job.inputs["uri"]._data.path == "azureml://datastores/ws/paths/raw/"
    assert job.jobs["work"].inputs["raw"]._data == "${{parent.inputs.uri}}"
    assert job.jobs["work"].component.inputs["raw"].type == "uri_folder"
    rest = job._to_rest_object().properties.inputs["uri"]
    assert (rest.job_input_type, rest.uri) == ("uri_folder", "azureml://datastores/ws/paths/raw/")
