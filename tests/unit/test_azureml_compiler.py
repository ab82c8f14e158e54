"""The Azure ML compiler, mapping by mapping: what each neutral construct becomes, and what is refused.

Pure: nothing here imports azure-ai-ml (tests/unit/test_azureml_validate.py runs the compiled jobs
through ``validate_job`` and ``azure.ai.ml.load_job``). Known bugs are strict expected failures
marked ``BUG:``; each names the line of adapters/azureml/compiler.py that causes it.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

import pytest
import yaml

import cloudml
from cloudml.adapter import FEATURES
from cloudml.adapters.azureml import AzureMLAdapter
from cloudml.adapters.azureml.compiler import FAIL_IMAGE, SCHEMA, compile_job, node_name
from cloudml.config import AzureMLSettings
from cloudml.errors import CompileError, UnsupportedFeatureError
from cloudml.spec.pipeline import Pipeline
from cloudml.spec.validate import validate_data
from tests.conformance.cases import FEATURE_CASES, azure_reference_pipeline, external_case
from tests.conftest import REPO

IMAGE = "python:3.11-slim"
BINDING = re.compile(r"\$\{\{[a-z._A-Z0-9]+\}\}")


def build(steps: list[dict[str, Any]], **top: Any) -> Pipeline:
    doc = {"apiVersion": "cloudml/v1", "kind": "Pipeline", "name": "t", "defaults": {"image": IMAGE},
           "steps": steps, **top}
    p = validate_data(doc)
    assert isinstance(p, Pipeline)
    return p


def job_of(steps: list[dict[str, Any]], settings: AzureMLSettings | None = None, **top: Any) -> dict[str, Any]:
    return compile_job(build(steps, **top), settings)


def node(step: dict[str, Any], settings: AzureMLSettings | None = None, **top: Any) -> dict[str, Any]:
    """Compile a one-step pipeline and return its node."""
    jobs = job_of([step], settings, **top)["jobs"]
    assert list(jobs) == [node_name(step["name"])]
    return dict(jobs[node_name(step["name"])])


def argv(command: str) -> list[str]:
    """What the shell would pass, with every Azure ML binding replaced by a value without spaces."""
    return shlex.split(BINDING.sub("VALUE", command))


# -- top level ------------------------------------------------------------------------------------


def test_top_level_shape() -> None:
    job = job_of([{"name": "a", "command": "echo hi"}], description="demo pipeline")
    assert job["$schema"] == SCHEMA
    assert job["type"] == "pipeline"
    assert job["display_name"] == job["experiment_name"] == "t"
    assert job["description"] == "demo pipeline"
    assert job["settings"] == {"continue_on_step_failure": False}
    assert "inputs" not in job
    assert job["jobs"]["a"] == {"type": "command", "component": {
        "type": "command", "name": "a", "command": "echo hi", "environment": {"image": IMAGE}},
        "environment_variables": {"CLOUDML_STEP": "a", "CLOUDML_BACKEND": "azureml"}}


def test_nodes_follow_the_data_order() -> None:
    job = job_of([{"name": "c", "command": "cat {{inputs.x}}", "inputs": {"x": "b.outputs.o"}},
                  {"name": "b", "command": "echo {{outputs.o}}", "outputs": {"o": "dataset"}}])
    assert list(job["jobs"]) == ["b", "c"]


def test_step_description_and_code() -> None:
    n = node({"name": "a", "command": "python a.py", "description": "does a", "code": "./src"})
    assert n["description"] == "does a"
    assert n["component"]["code"] == "./src"


# -- node names -----------------------------------------------------------------------------------


def test_node_names_turn_dashes_into_underscores() -> None:
    assert node_name("validate-data") == "validate_data"
    assert node_name("plain_name") == "plain_name"
    job = job_of([{"name": "load-raw-data", "command": "echo {{outputs.o}}", "outputs": {"o": "dataset"}},
                  {"name": "use-it", "command": "cat {{inputs.x}}", "inputs": {"x": "load-raw-data.outputs.o"}}])
    assert list(job["jobs"]) == ["load_raw_data", "use_it"]
    assert job["jobs"]["use_it"]["component"]["name"] == "use_it"
    assert job["jobs"]["use_it"]["inputs"]["x"] == "${{parent.jobs.load_raw_data.outputs.o}}"


def test_colliding_node_names_are_refused() -> None:
    with pytest.raises(CompileError, match=r"a_b collide as Azure ML node names") as info:
        job_of([{"name": "a-b", "command": "echo"}, {"name": "a_b", "command": "echo"}])
    assert not isinstance(info.value, UnsupportedFeatureError)
    assert info.value.hint == "rename one of them"


# -- bindings and types ---------------------------------------------------------------------------


def test_step_output_binding_and_types() -> None:
    job = job_of([
        {"name": "prep", "command": "p {{outputs.d}} {{outputs.g}}", "outputs": {"d": "dataset", "g": "generic"}},
        {"name": "train", "command": "t {{inputs.d}} {{outputs.m}}", "inputs": {"d": "prep.outputs.d"},
         "outputs": {"m": "model"}},
        {"name": "ev", "command": "e {{inputs.m}} {{inputs.g}} {{outputs.metrics}}",
         "inputs": {"m": "train.outputs.m", "g": "prep.outputs.g"}, "outputs": {"metrics": "metrics"}},
    ])["jobs"]
    assert job["prep"]["component"]["outputs"] == {"d": {"type": "uri_folder"}, "g": {"type": "uri_folder"}}
    assert job["prep"]["outputs"] == job["prep"]["component"]["outputs"]
    assert job["train"]["component"]["outputs"] == job["train"]["outputs"] == {"m": {"type": "custom_model"}}
    assert job["train"]["inputs"] == {"d": "${{parent.jobs.prep.outputs.d}}"}
    assert job["train"]["component"]["inputs"] == {"d": {"type": "uri_folder"}}
    assert job["ev"]["inputs"] == {"m": "${{parent.jobs.train.outputs.m}}", "g": "${{parent.jobs.prep.outputs.g}}"}
    assert job["ev"]["component"]["inputs"] == {"m": {"type": "custom_model"}, "g": {"type": "uri_folder"}}
    assert job["ev"]["component"]["outputs"] == {"metrics": {"type": "uri_folder"}}
    assert job["ev"]["component"]["command"] == "e ${{inputs.m}} ${{inputs.g}} ${{outputs.metrics}}/metrics.json"


@pytest.mark.parametrize(("ptype", "default", "azure_type"), [
    ("string", "churned", "string"), ("int", 200, "integer"), ("float", 0.8, "number"), ("bool", True, "boolean"),
    ("bool", False, "boolean"), ("string", "", "string"), ("int", 0, "integer"),
])
def test_parameters_become_pipeline_inputs_bound_into_nodes(ptype: str, default: Any, azure_type: str) -> None:
    job = job_of([{"name": "a", "command": "python a.py --p {{params.p}}"}],
                 parameters={"p": {"type": ptype, "default": default}})
    assert job["inputs"] == {"p": default}
    a = job["jobs"]["a"]
    assert a["inputs"] == {"p": "${{parent.inputs.p}}"}
    assert a["component"]["inputs"] == {"p": {"type": azure_type}}
    assert a["component"]["command"] == "python a.py --p ${{inputs.p}}"


def test_parameters_in_args_and_list_commands_are_bound_once() -> None:
    n = node({"name": "a", "command": ["python", "a.py", "--lr", "{{params.lr}}"], "args": ["--again={{params.lr}}",
                                                                                               "--n", "{{params.n}}"]},
             parameters={"lr": {"type": "float", "default": 0.1}, "n": {"type": "int", "default": 3}})
    assert n["inputs"] == {"lr": "${{parent.inputs.lr}}", "n": "${{parent.inputs.n}}"}
    assert n["component"]["inputs"] == {"lr": {"type": "number"}, "n": {"type": "integer"}}
    assert n["component"]["command"] == "python a.py --lr ${{inputs.lr}} --again=${{inputs.lr}} --n ${{inputs.n}}"


def test_unused_parameters_stay_pipeline_inputs_only() -> None:
    job = job_of([{"name": "a", "command": "echo"}], parameters={"p": {"type": "int", "default": 1}})
    assert job["inputs"] == {"p": 1}
    assert "inputs" not in job["jobs"]["a"]


def test_a_parameter_and_an_input_with_one_name_are_refused() -> None:
    with pytest.raises(CompileError, match="parameter x and an input share the name x"):
        job_of([{"name": "p", "command": "echo {{outputs.o}}", "outputs": {"o": "dataset"}},
                {"name": "a", "command": "cat {{inputs.x}} {{params.x}}", "inputs": {"x": "p.outputs.o"}}],
               parameters={"x": {"type": "string", "default": "v"}})


@pytest.mark.parametrize(("uri", "kind"), [
    ("azureml://datastores/workspaceblobstore/paths/churn.csv", "uri_file"),
    ("azureml://datastores/workspaceblobstore/paths/raw/", "uri_folder"),
    ("https://acct.blob.core.windows.net/data/raw.csv", "uri_file"),
    ("wasbs://data@acct.blob.core.windows.net/raw/", "uri_folder"),
    ("abfss://fs@acct.dfs.core.windows.net/raw/x.parquet", "uri_file"),
])
def test_external_datastore_inputs(uri: str, kind: str) -> None:
    n = node({"name": "a", "command": "cat {{inputs.raw}}", "inputs": {"raw": uri}})
    assert n["inputs"] == {"raw": {"type": kind, "path": uri}}
    assert n["component"]["inputs"] == {"raw": {"type": kind}}
    assert n["component"]["command"] == "cat ${{inputs.raw}}"


@pytest.mark.parametrize("uri", ["s3://bucket/raw.csv", "gs://bucket/raw/", "file:///data/raw.csv", "./data.csv",
                                 "http://example.com/raw.csv",
                                 "azureml://datastores/ws/paths/{{params.day}}/raw.csv"])
def test_foreign_inputs_are_refused_by_name(uri: str) -> None:
    params = {"day": {"type": "string", "default": "d1"}}
    with pytest.raises(UnsupportedFeatureError) as info:
        job_of([{"name": "read-raw", "command": "cat {{inputs.raw}}", "inputs": {"raw": uri}}], parameters=params)
    e = info.value
    assert (e.adapter, e.step, e.feature) == ("azureml", "read-raw", "input.external")
    assert "input 'raw'" in str(e) and "azureml://" in str(e) and "azureml cannot express" in str(e)


DATASTORE = "azureml://datastores/workspaceblobstore/paths/raw/"


def uri_pipeline(default: str, command: str = "cat {{inputs.raw}}") -> Pipeline:
    return build([{"name": "read-raw", "command": command, "inputs": {"raw": "{{params.uri}}"}},
                  {"name": "also", "command": "ls {{inputs.d}}", "inputs": {"d": "{{params.uri}}"}}],
                 parameters={"uri": {"type": "string", "default": default}, "n": {"type": "int", "default": 2}})


@pytest.mark.parametrize(("default", "kind"), [(DATASTORE, "uri_folder"),
                                               ("azureml://datastores/ws/paths/x.csv", "uri_file"),
                                               ("https://acct.blob.core.windows.net/c/raw.csv", "uri_file"),
                                               ("abfss://fs@acct.dfs.core.windows.net/raw/", "uri_folder")])
def test_a_parameter_held_uri_is_an_asset_pipeline_input_bound_into_nodes(default: str, kind: str) -> None:
    job = compile_job(uri_pipeline(default), None)
    assert job["inputs"] == {"uri": {"type": kind, "path": default}, "n": 2}
    for name, inp in (("read_raw", "raw"), ("also", "d")):
        assert job["jobs"][name]["inputs"] == {inp: "${{parent.inputs.uri}}"}
        assert job["jobs"][name]["component"]["inputs"] == {inp: {"type": kind}}
    assert job["jobs"]["read_raw"]["component"]["command"] == "cat ${{inputs.raw}}"


@pytest.mark.parametrize(("default", "what"), [("s3://bucket/raw.csv", "s3://"), ("gs://bucket/raw/", "gs://"),
                                               ("./data.csv", "a local path"),
                                               ("file:///data/raw.csv", "a local path")])
def test_a_parameter_holding_a_uri_azure_cannot_read_is_refused_naming_it(default: str, what: str) -> None:
    with pytest.raises(UnsupportedFeatureError) as info:
        compile_job(uri_pipeline(default), None)
    e = info.value
    assert (e.adapter, e.step, e.feature) == ("azureml", "read-raw", "input.parameter")
    assert f"parameter uri holds '{default}'" in str(e) and f"not {what}" in str(e)
    assert "azureml://datastores/" in str(e.hint)


def test_a_uri_parameter_also_used_as_text_is_refused() -> None:
    with pytest.raises(UnsupportedFeatureError, match=r"parameter uri holds an input URI .* also used as text"):
        compile_job(uri_pipeline(DATASTORE, command="cat {{inputs.raw}} --from {{params.uri}}"), None)


def test_run_time_values_replace_the_path_and_are_checked() -> None:
    from cloudml.adapters.azureml.schedule import uri_input

    current = {"type": "uri_folder", "path": DATASTORE}
    assert uri_input("uri", current, "azureml://datastores/w/paths/new/") == {
        "type": "uri_folder", "path": "azureml://datastores/w/paths/new/"}
    with pytest.raises(UnsupportedFeatureError, match="parameter uri holds 'gs://b/new/'"):
        uri_input("uri", current, "gs://b/new/")
    with pytest.raises(CompileError, match="is a file but the pipeline reads a folder"):
        uri_input("uri", current, "azureml://datastores/w/paths/new.csv")


def test_metrics_outputs_name_the_json_file_in_commands_and_args() -> None:
    n = node({"name": "ev", "command": ["python", "ev.py", "--out", "{{outputs.m}}"], "args": ["--also={{outputs.m}}"],
              "outputs": {"m": "metrics"}})
    assert n["component"]["command"] == "python ev.py --out ${{outputs.m}}/metrics.json --also=${{outputs.m}}/metrics.json"
    assert n["outputs"] == {"m": {"type": "uri_folder"}}


def test_metrics_inputs_name_the_json_file() -> None:
    job = job_of([{"name": "ev", "command": "python ev.py {{outputs.m}}", "outputs": {"m": "metrics"}},
                  {"name": "report", "command": "cat {{inputs.m}}", "inputs": {"m": "ev.outputs.m"}}])
    assert job["jobs"]["report"]["component"]["command"] == "cat ${{inputs.m}}/metrics.json"


# -- shell quoting --------------------------------------------------------------------------------


def test_list_commands_are_shell_quoted() -> None:
    words = ["python", "-c", "print('hello world')", "--name", "a b", "--empty", "", "$HOME", "a;b"]
    n = node({"name": "a", "command": words, "args": ["--msg", "it's here", "plain"]})
    command = n["component"]["command"]
    assert argv(command) == [*words, "--msg", "it's here", "plain"]
    assert command.startswith("python -c 'print('\"'\"'hello world'\"'\"')' --name 'a b' --empty '' '$HOME' 'a;b'")


def test_string_commands_are_kept_and_args_quoted() -> None:
    n = node({"name": "a", "command": "python a.py --x 1 | tee log.txt", "args": ["--title", "two words"]})
    assert n["component"]["command"] == "python a.py --x 1 | tee log.txt --title 'two words'"


def test_list_commands_with_bindings() -> None:
    n = node({"name": "a", "command": ["python", "t.py", "--out", "{{outputs.model}}", "--lr={{params.lr}}"],
              "outputs": {"model": "model"}}, parameters={"lr": {"type": "float", "default": 0.1}})
    assert n["component"]["command"] == "python t.py --out ${{outputs.model}} --lr=${{inputs.lr}}"
    assert argv(n["component"]["command"]) == ["python", "t.py", "--out", "VALUE", "--lr=VALUE"]


def test_list_items_with_placeholders_stay_one_word() -> None:
    words = ["python", "-c", "print('{{params.msg}} x')", "--title=my {{params.msg}}"]
    n = node({"name": "a", "command": words}, parameters={"msg": {"type": "string", "default": "hi"}})
    assert argv(n["component"]["command"]) == ["python", "-c", "print('VALUE x')", "--title=my VALUE"]


def test_args_with_placeholders_stay_one_word() -> None:
    n = node({"name": "a", "command": "python a.py", "args": ["--title=my {{params.msg}}"]},
             parameters={"msg": {"type": "string", "default": "hi"}})
    assert argv(n["component"]["command"]) == ["python", "a.py", "--title=my VALUE"]


# -- fail steps -----------------------------------------------------------------------------------


def test_fail_steps_print_and_exit_1() -> None:
    n = node({"name": "stop-now", "fail": "it's over"})
    assert n == {"type": "command", "component": {"type": "command", "name": "stop_now",
                                                  "command": "echo 'it'\"'\"'s over' >&2; exit 1",
                                                  "environment": {"image": FAIL_IMAGE}}}


def test_fail_steps_bind_their_parameters() -> None:
    n = node({"name": "too-low", "fail": "AUC below {{params.min_auc}} for {{params.label}}"},
             parameters={"min_auc": {"type": "float", "default": 0.8}, "label": {"type": "string", "default": "x"}})
    assert n["component"]["command"] == "echo 'AUC below ${{inputs.min_auc}} for ${{inputs.label}}' >&2; exit 1"
    assert n["component"]["inputs"] == {"min_auc": {"type": "string"}, "label": {"type": "string"}}
    assert n["inputs"] == {"min_auc": "${{parent.inputs.min_auc}}", "label": "${{parent.inputs.label}}"}


# -- timeout, cache, env --------------------------------------------------------------------------


@pytest.mark.parametrize(("timeout", "seconds"), [("30m", 1800), ("1h", 3600), ("1.2s", 2), (0.2, 1), (90, 90)])
def test_timeouts_are_whole_seconds(timeout: Any, seconds: int) -> None:
    assert node({"name": "a", "command": "echo", "timeout": timeout})["limits"] == {"timeout": seconds}


def test_default_timeout_and_none() -> None:
    assert node({"name": "a", "command": "echo"}, defaults={"image": IMAGE, "timeout": "2h"})["limits"] == {
        "timeout": 7200}
    assert "limits" not in node({"name": "a", "command": "echo"})


@pytest.mark.parametrize(("cache", "deterministic"), [(False, False), ({"enabled": False}, False), (True, None),
                                                      (None, None)])
def test_cache_off_is_not_deterministic(cache: Any, deterministic: bool | None) -> None:
    step = {"name": "a", "command": "echo", **({"cache": cache} if cache is not None else {})}
    assert node(step)["component"].get("is_deterministic") == deterministic


def test_cache_off_from_defaults() -> None:
    n = node({"name": "a", "command": "echo"}, defaults={"image": IMAGE, "cache": False})
    assert n["component"]["is_deterministic"] is False


def test_env_becomes_environment_variables() -> None:
    n = node({"name": "a", "command": "echo", "env": {"MODE": "fast", "B": "x y"}},
             defaults={"image": IMAGE, "env": {"A": "1", "MODE": "slow"}})
    assert n["environment_variables"] == {"CLOUDML_STEP": "a", "CLOUDML_BACKEND": "azureml",
                                          "A": "1", "MODE": "fast", "B": "x y"}
    assert node({"name": "a", "command": "echo"})["environment_variables"] == {
        "CLOUDML_STEP": "a", "CLOUDML_BACKEND": "azureml"}


def test_env_with_placeholders_is_refused() -> None:
    with pytest.raises(UnsupportedFeatureError) as info:
        node({"name": "a", "command": "echo", "env": {"LR": "{{params.lr}}"}},
             parameters={"lr": {"type": "float", "default": 0.1}})
    assert (info.value.adapter, info.value.step, info.value.feature) == ("azureml", "a", "step.env")


def test_runtime_contract_variables_are_set() -> None:
    env = node({"name": "train-it", "command": "echo"}).get("environment_variables", {})
    assert env.get("CLOUDML_STEP") == "train-it"
    assert env.get("CLOUDML_BACKEND") == "azureml"


# -- resources and compute ------------------------------------------------------------------------


@pytest.mark.parametrize(("cpu", "memory", "vm"), [
    (1, None, "Standard_DS2_v2"), (0.5, "1Gi", "Standard_DS2_v2"), (2, "7Gi", "Standard_DS2_v2"),
    (2, "8Gi", "Standard_DS3_v2"), (4, "14Gi", "Standard_DS3_v2"), (4, "16Gi", "Standard_E4s_v3"),
    (8, "28Gi", "Standard_DS4_v2"), (8, "40Gi", "Standard_E8s_v3"), (16, "56Gi", "Standard_DS5_v2"),
    (None, "100Gi", "Standard_E16s_v3"), (None, "2Gi", "Standard_DS2_v2"),
])
def test_cpu_and_memory_pick_the_smallest_vm(cpu: float | None, memory: str | None, vm: str) -> None:
    resources = {k: v for k, v in {"cpu": cpu, "memory": memory}.items() if v is not None}
    n = node({"name": "a", "command": "echo", "resources": resources})
    assert n["resources"] == {"instance_type": vm, "instance_count": 1}


@pytest.mark.parametrize("resources", [{"cpu": 32}, {"memory": "200Gi"}, {"cpu": 16, "memory": "129Gi"}])
def test_no_vm_fits(resources: dict[str, Any]) -> None:
    with pytest.raises(CompileError, match="no Azure VM in cloudml's table") as info:
        node({"name": "big", "command": "echo", "resources": resources})
    assert "step 'big'" in str(info.value) and info.value.hint == "set resources.instance_type.azureml"


@pytest.mark.parametrize(("gpu_type", "vm"), [("nvidia-t4", "Standard_NC4as_T4_v3"),
                                              ("nvidia-v100", "Standard_NC6s_v3"),
                                              ("nvidia-a100", "Standard_NC24ads_A100_v4")])
def test_gpu_types(gpu_type: str, vm: str) -> None:
    n = node({"name": "a", "command": "echo", "resources": {"gpu": 1, "gpu_type": gpu_type}})
    assert n["resources"] == {"instance_type": vm, "instance_count": 1}


@pytest.mark.parametrize("resources", [{"gpu": 8, "gpu_type": "nvidia-t4"}, {"gpu": 1, "gpu_type": "nvidia-h100"},
                                       {"gpu": 1}])
def test_gpus_outside_the_table_are_refused(resources: dict[str, Any]) -> None:
    with pytest.raises(CompileError, match="no Azure VM in cloudml's table for") as info:
        node({"name": "g", "command": "echo", "resources": resources})
    assert info.value.hint == "set resources.instance_type.azureml"


def test_gpu_vm_honours_cpu_and_memory() -> None:
    step = {"name": "g", "command": "echo", "resources": {"cpu": 32, "memory": "200Gi", "gpu": 1,
                                                            "gpu_type": "nvidia-t4"}}
    try:
        n = node(step)
    except CompileError:
        return  # refusing is right too: the CPU table refuses what does not fit
    assert n["resources"]["instance_type"] != "Standard_NC4as_T4_v3"


def test_instance_type_override_wins() -> None:
    n = node({"name": "a", "command": "echo", "resources": {"cpu": 64, "gpu": 4, "gpu_type": "nvidia-a100",
                                                            "instance_type": {"azureml": "Standard_ND96asr_v4",
                                                                              "sagemaker": "ml.p4d.24xlarge"}}},
             backend_options={"azureml": {"instance_type": "Standard_F4s_v2"}})
    assert n["resources"] == {"instance_type": "Standard_ND96asr_v4", "instance_count": 1}


def test_default_instance_type_from_backend_options() -> None:
    job = job_of([{"name": "a", "command": "echo"},
                  {"name": "b", "command": "echo", "backend_options": {"azureml": {"instance_type": "Standard_F8s_v2"}}},
                  {"name": "c", "command": "echo", "resources": {"cpu": 2}}],
                 backend_options={"azureml": {"instance_type": "Standard_F4s_v2"}})["jobs"]
    assert job["a"]["resources"] == {"instance_type": "Standard_F4s_v2"}
    assert job["b"]["resources"] == {"instance_type": "Standard_F8s_v2"}
    assert job["c"]["resources"] == {"instance_type": "Standard_DS2_v2", "instance_count": 1}


def test_instance_count() -> None:
    assert node({"name": "a", "command": "echo", "resources": {"instance_count": 4}})["resources"] == {
        "instance_count": 4}
    n = node({"name": "a", "command": "echo", "resources": {"instance_count": 2, "cpu": 4}})
    assert n["resources"] == {"instance_type": "Standard_DS3_v2", "instance_count": 2}
    assert "resources" not in node({"name": "a", "command": "echo", "resources": {"instance_count": 1}})


@pytest.mark.parametrize(("compute", "azure"), [("cpu-cluster", "azureml:cpu-cluster"),
                                                ("azureml:cpu-cluster", "azureml:cpu-cluster"),
                                                ("serverless", "serverless")])
def test_compute_from_pipeline_backend_options(compute: str, azure: str) -> None:
    job = job_of([{"name": "a", "command": "echo"}, {"name": "b", "fail": "no"}],
                 settings=AzureMLSettings(compute="from-settings"), backend_options={"azureml": {"compute": compute}})
    assert job["settings"]["default_compute"] == azure
    assert job["jobs"]["a"]["compute"] == azure
    assert "compute" not in job["jobs"]["b"]  # fail nodes run on the default compute


def test_step_compute_overrides_the_pipeline() -> None:
    job = job_of([{"name": "a", "command": "echo"},
                  {"name": "b", "command": "echo", "backend_options": {"azureml": {"compute": "gpu-cluster"}}}],
                 backend_options={"azureml": {"compute": "cpu-cluster"}})
    assert job["jobs"]["a"]["compute"] == "azureml:cpu-cluster"
    assert job["jobs"]["b"]["compute"] == "azureml:gpu-cluster"
    assert job["settings"]["default_compute"] == "azureml:cpu-cluster"


@pytest.mark.parametrize(("compute", "azure"), [("cpu-cluster", "azureml:cpu-cluster"),
                                                ("azureml:cpu-cluster", "azureml:cpu-cluster"),
                                                ("serverless", "serverless")])
def test_compute_from_settings_is_the_default_compute(compute: str, azure: str) -> None:
    job = job_of([{"name": "a", "command": "echo"}], settings=AzureMLSettings(compute=compute))
    assert job["settings"] == {"continue_on_step_failure": False, "default_compute": azure}
    assert "compute" not in job["jobs"]["a"]


def test_no_compute_anywhere() -> None:
    job = job_of([{"name": "a", "command": "echo"}], settings=AzureMLSettings())
    assert "default_compute" not in job["settings"]
    assert "compute" not in job["jobs"]["a"]


def test_settings_reach_the_compiler_through_the_adapter() -> None:
    compiled = cloudml.get_adapter("azureml", compute="serverless").compile(build([{"name": "a", "command": "echo"}]))
    assert compiled.document["settings"]["default_compute"] == "serverless"


# -- capability gaps ------------------------------------------------------------------------------

GAPS = {  # feature -> the step the refusal names
    "step.secrets": "work", "step.cache_expiry": "work", "step.depends_on": "work",
}  # step.tuning compiles to a sweep node (tests/unit/test_azureml_sweep.py); conditions to runtime guards or,
# with the preview, if_else nodes (tests/unit/test_azureml_guards.py)
COMPILER_REFUSES = ("step.secrets", "step.cache_expiry", "step.depends_on")


def test_declared_pipeline_gaps() -> None:
    caps = AzureMLAdapter.capabilities
    pipeline_gaps = {f for f in caps.gaps if not f.startswith("deploy.")}
    assert pipeline_gaps == set(GAPS)
    for feature in GAPS:
        assert caps.reason(feature)
    assert caps.level("step.cache_expiry") == caps.level("step.depends_on") == "notyet"
    assert caps.supports("step.retry") and caps.supports("step.python") and caps.supports("step.framework")
    assert caps.supports("condition") and caps.supports("condition.or")
    assert caps.supports("register_model")


@pytest.mark.parametrize("feature", sorted(GAPS))
def test_gaps_are_refused_by_name(feature: str) -> None:
    with pytest.raises(UnsupportedFeatureError) as info:
        AzureMLAdapter(AzureMLSettings(compute="c")).compile(FEATURE_CASES[feature]())  # type: ignore[arg-type]
    e = info.value
    expected_feature = feature
    assert (e.adapter, e.step, e.feature) == ("azureml", GAPS[feature], expected_feature)
    assert str(e).startswith(f"azureml cannot express '{expected_feature}'")
    assert e.reason == AzureMLAdapter.capabilities.reason(expected_feature)


@pytest.mark.parametrize("feature", COMPILER_REFUSES)
def test_the_compiler_itself_refuses(feature: str) -> None:
    """compile_job refuses these even when called without the adapter's capability check."""
    spec = FEATURE_CASES[feature]()
    assert isinstance(spec, Pipeline)
    with pytest.raises(UnsupportedFeatureError) as info:
        compile_job(spec, None)
    assert (info.value.adapter, info.value.step, info.value.feature) == ("azureml", GAPS[feature], feature)


@pytest.mark.parametrize("reason_part", ["no expiry", "data bindings only"])
def test_refusal_reasons(reason_part: str) -> None:
    reasons = {f: r for f, (_, r) in AzureMLAdapter.capabilities.gaps.items()}
    assert any(reason_part in r for r in reasons.values())


def test_the_adapter_honours_the_preview_conditions_setting() -> None:
    adapter = AzureMLAdapter(AzureMLSettings(enable_preview_conditions=True))
    assert adapter.compile(FEATURE_CASES["condition"]()).document["jobs"]["gate"]["type"] == "if_else"  # type: ignore[arg-type]


def test_supported_feature_cases_compile(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the code_paths case ships ./src and ./lib (tests/unit/test_azureml_code_paths.py)
    (tmp_path / "src").mkdir()
    (tmp_path / "lib").mkdir()
    caps = AzureMLAdapter.capabilities
    compiled = []
    for feature in FEATURES:
        if feature.startswith("deploy.") or not caps.supports(feature):
            continue
        spec = external_case("azureml") if feature == "input.external" else FEATURE_CASES[feature]()
        if feature == "input.parameter":  # the shared case's default is gs://, which Azure ML cannot read
            spec = uri_pipeline(DATASTORE)
        assert isinstance(spec, Pipeline)
        compiled.append(AzureMLAdapter(AzureMLSettings()).compile(spec).document["type"])
    assert compiled == ["pipeline"] * 22


# -- python steps, framework environments, emulated retries -------------------------------------------

PY = {"name": "fit", "python": "job:run", "code": "./src", "inputs": {"d": "prep.outputs.d", "m": "ev.outputs.m"},
      "params": {"n": "{{params.n}}", "flag": True, "rate": 0.5}, "outputs": {"model": "model", "scores": "metrics"}}
PREP = {"name": "prep", "command": "python prep.py --out {{outputs.d}}", "outputs": {"d": "dataset"}}
EVAL = {"name": "ev", "command": "python ev.py --out {{outputs.m}}", "outputs": {"m": "metrics"}}


def test_a_python_step_runs_the_runtime_in_its_code_folder() -> None:
    job = job_of([PREP, EVAL, PY], parameters={"n": {"type": "int", "default": 3}})
    n = job["jobs"]["fit"]
    comp = n["component"]
    assert comp["code"] == "./src"
    assert argv(comp["command"]) == [
        "python", "cloudml_runtime.py", "--function", "job:run", "--code", ".", "--input=d=VALUE",
        "--input=m=VALUE/metrics.json", "--output=model=VALUE", "--output=scores=VALUE/metrics.json",
        "--output-type=model=model", "--output-type=scores=metrics", "--param=n=VALUE", "--param=flag=true",
        "--param=rate=0.5"]
    assert "--param=n=${{inputs.n}}" in comp["command"]
    assert n["inputs"]["n"] == "${{parent.inputs.n}}" and comp["inputs"]["n"] == {"type": "integer"}
    assert comp["outputs"] == {"model": {"type": "custom_model"}, "scores": {"type": "uri_folder"}}


def test_a_python_step_without_code_has_no_code_key() -> None:
    comp = node({"name": "t", "python": "pkg.mod:fn"})["component"]
    assert "code" not in comp and comp["command"].startswith("python cloudml_runtime.py --function pkg.mod:fn")


@pytest.mark.parametrize(("framework", "env"), [
    ("sklearn==1.5", "sklearn-1.5"), ("sklearn", "sklearn-1.5"), ("lightgbm==3.3.5", "lightgbm-3.3"),
    ("tensorflow==2.16", "tensorflow-2.16-cuda12"), ("pytorch==2.4", "acpt-pytorch-2.4-cuda12.4"),
    ("pytorch", "acpt-pytorch-2.8-cuda12.6"),
])
def test_framework_shortcuts_become_curated_registry_environments(framework: str, env: str) -> None:
    p = validate_data({"apiVersion": "cloudml/v1", "kind": "Pipeline", "name": "t",
                       "steps": [{"name": "t", "command": "python t.py", "framework": framework}]})
    assert isinstance(p, Pipeline)
    comp = compile_job(p, None)["jobs"]["t"]["component"]
    assert comp["environment"] == f"azureml://registries/azureml/environments/{env}/labels/latest"


@pytest.mark.parametrize(("framework", "message"), [
    ("sklearn==1.2", "no curated sklearn 1.2 environment; available: 1.5"),
    ("xgboost", "no curated xgboost environment"),
    ("huggingface==4.0", "no curated huggingface environment"),
])
def test_an_unknown_framework_or_version_is_a_clear_compile_error(framework: str, message: str) -> None:
    p = validate_data({"apiVersion": "cloudml/v1", "kind": "Pipeline", "name": "t",
                       "steps": [{"name": "t", "command": "x", "framework": framework}]})
    assert isinstance(p, Pipeline)
    with pytest.raises(CompileError, match=re.escape(message)) as info:
        compile_job(p, None)
    assert "step 't'" in str(info.value) and info.value.hint


def test_an_image_wins_over_the_framework() -> None:
    assert node({"name": "t", "command": "x", "framework": "xgboost"})["component"]["environment"] == {"image": IMAGE}


@pytest.mark.parametrize("step", [
    {"name": "r", "command": "python r.py --out {{outputs.o}} --n '{{params.n}}'", "outputs": {"o": "dataset"}},
    {"name": "r", "command": ["python", "r.py", "it's", "{{outputs.o}}"], "outputs": {"o": "dataset"}},
])
def test_retries_run_the_command_under_the_runtime_retry_wrapper(step: dict[str, Any]) -> None:
    plain = node(step, parameters={"n": {"type": "int", "default": 3}})["component"]["command"]
    wrapped = node({**step, "retry": {"attempts": 4, "backoff": "2.5s"}},
                   parameters={"n": {"type": "int", "default": 3}})["component"]["command"]
    words = shlex.split(wrapped)
    assert words[:8] == ["python", "cloudml_runtime.py", "--retry", "4", "--backoff", "2.5", "--", "sh"]
    assert words[8:] == ["-c", plain]  # the step's own command, intact, as one shell word


def test_a_retried_command_really_retries_through_the_runtime(tmp_path: Any) -> None:
    """The wrapped command as Azure ML runs it: bindings substituted, the shell, cloudml's runtime."""
    import subprocess
    import sys

    (tmp_path / "cloudml_runtime.py").write_bytes((REPO / "cloudml" / "runtime.py").read_bytes())
    flaky = "import pathlib,sys; p=pathlib.Path('n'); k=int(p.read_text()) if p.exists() else 0; " \
            "p.write_text(str(k+1)); sys.exit(0 if k >= 2 else 3)"
    cmd = node({"name": "r", "command": ["python", "-c", flaky], "retry": {"attempts": 3, "backoff": "0s"}})[
        "component"]["command"]
    shell = cmd.replace("python ", f"{sys.executable} ", 1).replace("'python -c", f"'{sys.executable} -c")
    proc = subprocess.run(["sh", "-c", shell], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "n").read_text() == "3" and proc.stderr.count("retrying") == 2


def test_the_compiler_refuses_secrets_itself_instead_of_dropping_them() -> None:
    with pytest.raises(UnsupportedFeatureError) as info:
        compile_job(FEATURE_CASES["step.secrets"](), None)  # type: ignore[arg-type]
    assert (info.value.adapter, info.value.step, info.value.feature) == ("azureml", "work", "step.secrets")


# -- output: stable, YAML, golden -----------------------------------------------------------------


def test_compile_is_stable() -> None:
    adapter = AzureMLAdapter(AzureMLSettings(compute="cpu-cluster"))
    first = adapter.compile(azure_reference_pipeline()).dumps()
    again = AzureMLAdapter(AzureMLSettings(compute="cpu-cluster")).compile(azure_reference_pipeline()).dumps()
    assert first == again == adapter.compile(azure_reference_pipeline()).dumps()


def test_dumps_is_yaml_that_loads_back_equal() -> None:
    p = build([{"name": "a-1", "command": ["python", "a.py", "--x", "{{params.s}}"], "env": {"E": "yes"},
                "outputs": {"m": "metrics"}, "timeout": "5m", "cache": False},
               {"name": "b", "fail": "bad: {{params.s}} 'quoted' #hash"}],
              parameters={"s": {"type": "string", "default": "null"}, "y": {"type": "string", "default": "yes"},
                          "f": {"type": "string", "default": "0.8"}, "n": {"type": "int", "default": 7}},
              description="a: pipeline # with YAML-looking text")
    compiled = AzureMLAdapter(AzureMLSettings()).compile(p)
    assert compiled.format == "yaml" and compiled.target == "azureml" and compiled.name == "t"
    text = compiled.dumps()
    assert not text.lstrip().startswith("{")  # block YAML, not JSON
    assert yaml.safe_load(text) == compiled.document
    assert yaml.safe_load(text)["inputs"] == {"s": "null", "y": "yes", "f": "0.8", "n": 7}


def test_reference_pipeline_matches_its_golden_file() -> None:
    golden = json.loads((REPO / "tests" / "golden" / "azure-reference" / "azureml.json").read_text())
    assert cloudml.compile(azure_reference_pipeline(), "azureml").document == golden
    assert golden["jobs"]["train"]["resources"]["instance_type"] == "Standard_E4s_v3"
    assert golden["jobs"]["evaluate"]["component"]["is_deterministic"] is False


# -- the docs page stays in step with the declared gaps ---------------------------------------------


def test_docs_page_lists_every_declared_gap() -> None:
    page = (REPO / "docs" / "adapters" / "azureml.md").read_text()
    for feature, (level, _reason) in AzureMLAdapter.capabilities.gaps.items():
        row = [ln for ln in page.splitlines() if ln.startswith(f"| `{feature}` |")]
        assert row, f"docs/adapters/azureml.md has no row for {feature}"
        assert f"| {level} |" in row[0], f"{feature} is {level} in the adapter"
    table = page.split("## Known gaps", 1)[1].split("\n\n")[2]  # intro line, blank, then the table
    listed = [ln.split("`")[1] for ln in table.splitlines() if ln.startswith("| `")]
    assert sorted(listed) == sorted(AzureMLAdapter.capabilities.gaps), "the Known gaps table lists exactly the gaps"


# -- register_model: a registered pipeline output ---------------------------------------------------

REG_TRAIN = {"name": "train", "command": "python t.py {{outputs.model}}", "outputs": {"model": "model"}}
REG_EVAL = {"name": "evaluate", "command": "python e.py {{inputs.model}} {{outputs.metrics}}",
        "inputs": {"model": "train.outputs.model"}, "outputs": {"metrics": "metrics"}}
PREVIEW = AzureMLSettings(enable_preview_conditions=True, compute="cpu-cluster")


def reg(**fields: Any) -> dict[str, Any]:
    return {"name": "register", "register_model": {"model": "train.outputs.model", "group": "churn", **fields}}


def azure_gated_reference(**register: Any) -> Pipeline:
    """The reference pipeline's shape (processing, training, evaluation, gate, register, else fail) on
    Azure ML data with an image (the conformance reference reads s3:// through a parameter)."""
    return build([
        {"name": "prep", "command": "python prep.py {{inputs.raw}} {{outputs.train}} {{outputs.test}}",
         "inputs": {"raw": "azureml://datastores/workspaceblobstore/paths/churn.csv"},
         "outputs": {"train": "dataset", "test": "dataset"}},
        {"name": "train", "kind": "training", "command": "python train.py {{inputs.train}} {{outputs.model}} "
         "--n {{params.n_estimators}}", "inputs": {"train": "prep.outputs.train"}, "outputs": {"model": "model"}},
        {"name": "evaluate", "command": "python ev.py {{inputs.model}} {{inputs.test}} {{outputs.metrics}}",
         "inputs": {"model": "train.outputs.model", "test": "prep.outputs.test"}, "outputs": {"metrics": "metrics"}},
        {"name": "gate", "condition": 'evaluate.outputs.metrics["auc"] >= params.min_auc', "then": ["register"],
         "else": ["too-low"]},
        {"name": "register", "register_model": {"model": "train.outputs.model", "group": "churn",
                                                "metrics": "evaluate.outputs.metrics", "framework": "sklearn==1.2",
                                                **register}},
        {"name": "too-low", "fail": "AUC below {{params.min_auc}}"},
    ], parameters={"n_estimators": {"type": "int", "default": 200}, "min_auc": {"type": "float", "default": 0.8}})


def test_a_pending_register_step_is_a_copy_node_promoted_to_a_named_pipeline_output() -> None:
    job = job_of([REG_TRAIN, reg()])
    assert job["outputs"] == {"register": {"type": "custom_model", "name": "churn", "mode": "upload"}}
    node = job["jobs"]["register"]
    assert node["inputs"] == {"model": "${{parent.jobs.train.outputs.model}}"}
    assert node["outputs"] == {"model": "${{parent.outputs.register}}"}
    comp = node["component"]
    assert comp["inputs"] == {"model": {"type": "custom_model"}}
    assert comp["outputs"] == {"model": {"type": "custom_model"}}
    assert comp["environment"] == {"image": FAIL_IMAGE}
    assert "version" not in job["outputs"]["register"]  # Azure ML numbers the versions


def test_the_register_node_copies_the_model_for_real(tmp_path: Any) -> None:
    import subprocess

    model, out = tmp_path / "model", tmp_path / "out" / "model"
    (model / "sub").mkdir(parents=True)
    (model / "sub" / "w.bin").write_text("weights")
    command = job_of([REG_TRAIN, reg()])["jobs"]["register"]["component"]["command"]
    for binding, path in (("inputs.model", model), ("outputs.model", out)):
        command = command.replace(f"${{{{{binding}}}}}", str(path))
    subprocess.run(["sh", "-c", command], check=True)
    assert (out / "sub" / "w.bin").read_text() == "weights"


def test_register_node_compute_follows_backend_options() -> None:
    job = job_of([REG_TRAIN, {**reg(), "backend_options": {"azureml": {"compute": "small"}}}])
    assert job["jobs"]["register"]["compute"] == "azureml:small"
    assert "compute" not in job_of([REG_TRAIN, reg()])["jobs"]["register"]


# approval, tags, metrics and a description: the runtime node, tests/unit/test_azureml_register_runtime.py


def test_register_feature_case_compiles_through_the_adapter() -> None:
    compiled = AzureMLAdapter(AzureMLSettings(compute="c")).compile(FEATURE_CASES["register_model"]())  # type: ignore[arg-type]
    assert compiled.document["outputs"]["reg"] == {"type": "custom_model", "name": "g", "mode": "upload"}


# -- conditions behind enable_preview_conditions ----------------------------------------------------


def test_without_the_preview_opt_in_conditions_are_runtime_guards() -> None:
    jobs = compile_job(azure_gated_reference(), AzureMLSettings())["jobs"]
    assert list(jobs) == ["prep", "train", "evaluate", "register", "too_low"]  # no gate node at all
    assert "--guard" in jobs["register"]["component"]["command"]  # more: tests/unit/test_azureml_guards.py


def test_the_gated_reference_shape_compiles_to_an_eval_node_and_if_else() -> None:
    job = compile_job(azure_gated_reference(), PREVIEW)
    jobs = job["jobs"]
    assert list(jobs) == ["prep", "train", "evaluate", "gate_eval", "gate", "register", "too_low"]
    assert jobs["gate"] == {"type": "if_else", "condition": "${{parent.jobs.gate_eval.outputs.result}}",
                            "true_block": "${{parent.jobs.register}}", "false_block": "${{parent.jobs.too_low}}"}
    ev = jobs["gate_eval"]
    assert ev["inputs"] == {"evaluate__metrics": "${{parent.jobs.evaluate.outputs.metrics}}",
                            "min_auc": "${{parent.inputs.min_auc}}"}
    assert ev["component"]["outputs"] == {"result": {"type": "boolean"}}
    assert ev["component"]["inputs"] == {"evaluate__metrics": {"type": "uri_folder"}, "min_auc": {"type": "number"}}
    assert ev["component"]["environment"] == jobs["evaluate"]["component"]["environment"]
    assert "compute" not in ev  # the job's default_compute (settings.compute) applies
    assert argv(ev["component"]["command"]) == [
        "python", "-m", "cloudml.runtime", "--condition", 'evaluate.outputs.metrics["auc"] >= params.min_auc',
        "--metrics=evaluate.metrics=VALUE", "--param=min_auc=VALUE", "--param-type=min_auc=float",
        "--result", "VALUE"]
    assert "outputs" not in job  # the register step names metrics: the runtime registers, with them
    assert "--register-model azureml" in jobs["register"]["component"]["command"]


@pytest.mark.parametrize(("auc", "expected"), [(0.91, "true"), (0.5, "false")])
def test_the_eval_node_runs_the_neutral_evaluator_for_real(tmp_path: Any, auc: float, expected: str) -> None:
    import subprocess
    import sys

    metrics = tmp_path / "metrics"
    metrics.mkdir()
    (metrics / "metrics.json").write_text(json.dumps({"auc": auc}))
    command = compile_job(azure_gated_reference(), PREVIEW)["jobs"]["gate_eval"]["component"]["command"]
    for binding, value in (("inputs.evaluate__metrics", str(metrics)), ("inputs.min_auc", "0.8"),
                           ("outputs.result", str(tmp_path / "out" / "result"))):
        command = command.replace(f"${{{{{binding}}}}}", value)
    words = shlex.split(command)
    assert words[:3] == ["python", "-m", "cloudml.runtime"]
    proc = subprocess.run([sys.executable, *words[1:]], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "result").read_text() == expected


@pytest.mark.parametrize(("metrics", "code", "message"), [
    ({"f1": 0.9}, 1, "cannot be evaluated"),          # the metric the gate reads is absent: the node fails
    ({"auc": "high"}, 1, "cannot be evaluated"),      # a string against a float does not compare
])
def test_the_eval_node_fails_loudly_when_the_metrics_do_not_answer(tmp_path: Any, metrics: dict[str, Any],
                                                                   code: int, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    import cloudml.runtime

    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    args = ["--condition", 'evaluate.outputs.metrics["auc"] >= params.min_auc',
            f"--metrics=evaluate.metrics={tmp_path}", "--param=min_auc=0.8", "--param-type=min_auc=float",
            "--result", str(tmp_path / "result")]
    assert cloudml.runtime.main(args) == code
    assert not (tmp_path / "result").exists() and message in capsys.readouterr().err
    assert cloudml.runtime.main(["--condition", "x", "--bogus", "1"]) == 2


def test_an_or_condition_and_a_then_branch_of_several_steps() -> None:
    p = build([REG_EVAL | {"inputs": {}, "command": "python e.py {{outputs.metrics}}"},
               {"name": "gate", "condition": 'evaluate.outputs.metrics["auc"] > 0.5 or evaluate.outputs.metrics.f1 > 0.5',
                "then": ["a"]},
               {"name": "a", "command": "a {{outputs.o}}", "outputs": {"o": "dataset"}},
               {"name": "b", "command": "b {{inputs.i}}", "inputs": {"i": "a.outputs.o"}}])
    job = compile_job(p, PREVIEW)
    assert job["jobs"]["gate"]["true_block"] == ["${{parent.jobs.a}}", "${{parent.jobs.b}}"]
    assert "false_block" not in job["jobs"]["gate"]
    assert list(job["jobs"]["gate_eval"]["inputs"]) == ["evaluate__metrics"]  # one input per metrics file


def test_name_clashes_with_an_eval_node_are_refused() -> None:
    # nested conditions compile (guards inside the if_else block): tests/unit/test_azureml_guards.py
    clash = build([REG_EVAL | {"inputs": {}, "command": "python e.py {{outputs.metrics}}"},
                   {"name": "g", "condition": 'evaluate.outputs.metrics["auc"] > 0.5', "then": ["g_eval"]},
                   {"name": "g_eval", "command": "w"}])
    with pytest.raises(CompileError, match="g_eval"):
        compile_job(clash, PREVIEW)
