"""The Vertex AI compiler (spec -> KFP v2 PipelineSpec IR), mapping by mapping.

Every IR built here must pass ``validate_ir`` and, independently of it, two strict
``json_format.ParseDict`` calls (``PipelineSpec`` and ``PipelineDeploymentConfig``). The metric and
timeout wrapper (``compiler.WRAPPER``) is run for real in a subprocess, alone and as compiled.
Known bugs are strict expected failures whose reason starts with ``BUG:``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

import cloudml
from cloudml.adapter import pipeline_features
from cloudml.adapters.vertex import VertexAdapter
from cloudml.adapters.vertex.compiler import (
    FAIL_IMAGE,
    GCS_MAPPER,
    LAUNCHER,
    SCHEMA_VERSION,
    WRAPPER,
    compile_ir,
    input_token,
    metric_key,
)
from cloudml.adapters.vertex.validate import validate_ir
from cloudml.config import VertexSettings
from cloudml.errors import CompileError, UnsupportedFeatureError
from cloudml.spec.pipeline import Pipeline
from cloudml.spec.validate import validate_data
from tests.conformance.cases import FEATURE_CASES, external_case, gcs_reference_pipeline
from tests.conftest import REPO

SETTINGS = VertexSettings(project="my-project-42", location="europe-west4", pipeline_root="gs://cloudml-test/root",
                          service_account="runner@my-project-42.iam.gserviceaccount.com")
EV = {"name": "ev", "command": "python ev.py --out {{outputs.m}}", "outputs": {"m": "metrics"}}
PARAMS: dict[str, Any] = {
    "s": {"type": "string", "default": "dev"},
    "n": {"type": "int", "default": 3},
    "f": {"type": "float", "default": 0.5},
    "b": {"type": "bool", "default": True},
    "req": {"type": "string"},
}


def build(steps: list[dict[str, Any]], **top: Any) -> Pipeline:
    doc = {"apiVersion": "cloudml/v1", "kind": "Pipeline", "name": "t", "defaults": {"image": "python:3.11-slim"},
           "steps": steps, **top}
    p = validate_data(doc)
    assert isinstance(p, Pipeline)
    return p


def compile_(p: Pipeline, settings: Any = None) -> dict[str, Any]:
    return compile_ir(p, settings)


def strict_parse(ir: dict[str, Any]) -> None:
    """The two strict parses, done here directly rather than through validate_ir."""
    json_format.ParseDict(ir, pipeline_spec_pb2.PipelineSpec())
    json_format.ParseDict(ir["deploymentSpec"], pipeline_spec_pb2.PipelineDeploymentConfig())


def assert_valid(ir: dict[str, Any]) -> None:
    assert validate_ir(ir) == []
    strict_parse(ir)


def tasks(ir: dict[str, Any], component: str | None = None) -> dict[str, Any]:
    comp = ir["root"] if component is None else ir["components"][component]
    out: dict[str, Any] = comp["dag"]["tasks"]
    return out


def container(ir: dict[str, Any], step: str) -> dict[str, Any]:
    out: dict[str, Any] = ir["deploymentSpec"]["executors"][f"exec-{step}"]["container"]
    return out


def argv(ir: dict[str, Any], step: str) -> list[str]:
    c = container(ir, step)
    return [*c["command"], *c.get("args", [])]


def user_argv(ir: dict[str, Any], step: str) -> list[str]:
    """The step's own command: what follows ``--`` when the wrapper is there."""
    a = argv(ir, step)
    return a[a.index("--") + 1:] if a[:2] == ["python3", "-c"] else a


def wrapped(ir: dict[str, Any], step: str) -> bool:
    a = argv(ir, step)
    return a[:3] == ["python3", "-c", WRAPPER]


# -- 1. every IR the compiler produces is valid ---------------------------------------------------

SCENARIOS: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]] = {
    "condition-inside-then-branch": ([
        EV,
        {"name": "g1", "condition": 'ev.outputs.m["auc"] > 0.5', "then": ["prep2", "g2"]},
        {"name": "prep2", "command": "p {{outputs.d}}", "outputs": {"d": "dataset"}},
        {"name": "g2", "condition": 'ev.outputs.m["f1"] >= params.f', "then": ["use"], "else": ["stop"]},
        {"name": "use", "command": "u {{inputs.d}} {{params.n}}", "inputs": {"d": "prep2.outputs.d"}},
        {"name": "stop", "fail": "f1 below {{params.f}}"},
    ], {"parameters": PARAMS}),
    "condition-inside-else-branch": ([
        EV,
        {"name": "g1", "condition": 'ev.outputs.m["auc"] > 0.5', "then": ["ok"], "else": ["g2"]},
        {"name": "ok", "command": "echo ok"},
        {"name": "g2", "condition": "params.b == true", "then": ["retrain"], "else": ["give-up"]},
        {"name": "retrain", "command": "python r.py {{params.s}}"},
        {"name": "give-up", "fail": "auc too low and retraining is off ({{params.s}})"},
    ], {"parameters": PARAMS}),
    "guarded-step-dependency-is-nested": ([
        EV,
        {"name": "g", "condition": 'ev.outputs.m["auc"] > 0.5', "then": ["a"]},
        {"name": "a", "command": "a {{outputs.o}}", "outputs": {"o": "model"}},
        {"name": "b", "command": "b {{inputs.i}} {{outputs.o}}", "inputs": {"i": "a.outputs.o"},
         "outputs": {"o": "generic"}},
        {"name": "c", "command": "c", "depends_on": ["b"]},
    ], {}),
    "both-branches-several-steps": ([
        {"name": "prep", "command": "prep {{outputs.train}}", "outputs": {"train": "dataset"}},
        EV,
        {"name": "g", "condition": 'ev.outputs.m["auc"] >= 0.9', "then": ["t1", "t2", "t3"], "else": ["e1", "e2"]},
        {"name": "t1", "command": "t1 {{inputs.d}} {{outputs.o}}", "inputs": {"d": "prep.outputs.train"},
         "outputs": {"o": "dataset"}},
        {"name": "t2", "command": "t2 {{inputs.d}}", "inputs": {"d": "t1.outputs.o"}},
        {"name": "t3", "command": "t3", "depends_on": ["t1", "t2"]},
        {"name": "e1", "command": "e1 {{inputs.m}}", "inputs": {"m": "ev.outputs.m"}},
        {"name": "e2", "fail": "not good enough", "depends_on": ["e1"]},
    ], {}),
    "or-not-and": ([
        EV,
        {"name": "g", "condition": '(ev.outputs.m["auc"] > 0.5 and ev.outputs.m["loss"] <= 0.3) or '
                                   'not ev.outputs.m["f1"] != 1', "then": ["w"], "else": ["x"]},
        {"name": "w", "command": "w"},
        {"name": "x", "command": "x"},
    ], {}),
    "params-only-condition": ([
        {"name": "g", "condition": "params.n >= 3 and params.f < 1 or params.req == 'go'", "then": ["w"],
         "else": ["x"]},
        {"name": "w", "command": "w {{params.n}}"},
        {"name": "x", "fail": "n is {{params.n}}"},
    ], {"parameters": PARAMS}),
    "bool-and-string-conditions": ([
        {"name": "g", "condition": 'params.b != false and params.s == "prod"', "then": ["w"]},
        {"name": "w", "command": "w"},
    ], {"parameters": PARAMS}),
    "else-only": ([
        EV,
        {"name": "g", "condition": 'ev.outputs.m["auc"] > 0.5', "else": ["stop"]},
        {"name": "stop", "fail": "auc {{params.f}}"},
    ], {"parameters": PARAMS}),
    "artifact-from-two-levels-up": ([
        {"name": "prep", "command": "prep {{outputs.d}}", "outputs": {"d": "dataset"}},
        EV,
        {"name": "g1", "condition": 'ev.outputs.m["auc"] > 0.5', "then": ["g2"]},
        {"name": "g2", "condition": 'ev.outputs.m["per_class"][1]["f1"] > 0.4', "then": ["use"]},
        {"name": "use", "command": "use {{inputs.d}} {{inputs.m}}", "inputs": {"d": "prep.outputs.d",
                                                                            "m": "ev.outputs.m"}},
    ], {}),
    "depends-on-a-condition": ([
        EV,
        {"name": "g", "condition": 'ev.outputs.m["auc"] > 0.5', "then": ["w"], "else": ["x"]},
        {"name": "w", "command": "w"},
        {"name": "x", "command": "x"},
        {"name": "after", "command": "after", "depends_on": ["g"]},
    ], {}),
    "parameters-of-every-type-in-commands": ([
        {"name": "w", "command": "python w.py --s {{params.s}} --n={{params.n}} -f {{params.f}}",
         "args": ["--b", "{{params.b}}", "{{params.req}}"]},
        {"name": "l", "command": ["python", "l.py", "{{params.n}}/{{params.f}}"]},
    ], {"parameters": PARAMS}),
    "fail-steps-with-params": ([
        {"name": "stop", "fail": "stopped: s={{params.s}} n={{params.n}} b={{params.b}}"},
    ], {"parameters": PARAMS}),
    "resources-with-gpus": ([
        {"name": "w", "command": "w", "resources": {"cpu": 8, "memory": "32Gi", "gpu": 2, "gpu_type": "nvidia-a100"}},
        {"name": "v", "command": "v", "resources": {"gpu": 1, "gpu_type": "nvidia-l4"}},
        {"name": "c", "command": "c", "resources": {"cpu": 0.5}},
    ], {}),
    "retries-with-max-backoff": ([
        {"name": "w", "command": "w", "retry": {"attempts": 5, "backoff": "2.5s", "max_backoff": "10m"}},
        {"name": "x", "command": "x", "retry": {"attempts": 1}},
    ], {}),
    "cache-off": ([{"name": "w", "command": "w", "cache": False}], {"defaults": {"image": "python:3.11-slim",
                                                                             "cache": True}}),
    "timeouts": ([
        {**EV, "timeout": "90s"},
        {"name": "g", "condition": 'ev.outputs.m["auc"] > 0.5', "then": ["w"]},
        {"name": "w", "command": "w", "timeout": "1.5s"},
    ], {}),
    "gcs-inputs-env-description": ([
        {"name": "w", "command": "w {{inputs.raw}} {{inputs.dir}}", "inputs": {"raw": "gs://b/data/x.csv",
                                                                            "dir": "gs://b/data/"},
         "env": {"MODE": "fast", "EMPTY": ""}, "description": "reads Cloud Storage"},
    ], {"description": "a described pipeline", "defaults": {"image": "python:3.11-slim", "env": {"LOG": "1"}}}),
}


def supported_feature_cases() -> list[str]:
    caps = VertexAdapter.capabilities
    out = []
    for feature, make in sorted(FEATURE_CASES.items()):
        spec = make()
        if isinstance(spec, Pipeline) and all(caps.supports(u.feature) for u in pipeline_features(spec)):
            out.append(feature)
    return out


def test_the_supported_feature_cases_are_the_expected_ones() -> None:
    assert set(supported_feature_cases()) == {
        "condition", "condition.or", "fail", "register_model", "step.cache", "step.code", "step.code_paths",
        "step.command",
        "step.depends_on",
        "step.env", "step.framework", "step.gpu", "step.image", "step.python", "step.resources", "step.retry",
        "step.timeout", "step.training", "step.tuning", "schedule", "input.parameter",
        "input.external",  # its case reads s3://, which the compiler refuses by name (tested below)
    }


@pytest.mark.parametrize("feature", [f for f in supported_feature_cases() if f != "input.external"])
def test_every_supported_feature_case_compiles_to_a_valid_ir(feature: str, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()  # the code folder the step.code case names (the working dir is tmp_path)
    (tmp_path / "lib").mkdir()  # the folder the step.code_paths case names
    spec = FEATURE_CASES[feature]()
    assert isinstance(spec, Pipeline)
    assert_valid(VertexAdapter(SETTINGS).compile(spec).document)


def test_a_gs_external_input_compiles_to_a_valid_ir() -> None:
    ir = VertexAdapter(SETTINGS).compile(external_case("gs")).document
    assert_valid(ir)
    assert "/gcs/bucket/raw.csv" in argv(ir, "work")


def test_the_gcs_reference_pipeline_compiles_to_a_valid_ir() -> None:
    compiled = cloudml.compile(gcs_reference_pipeline(), "vertex")
    assert_valid(compiled.document)
    assert VertexAdapter().validate_compiled(compiled) == []


def test_the_gcs_reference_ir_is_the_golden_file() -> None:
    golden = json.loads((REPO / "tests" / "golden" / "gcs-reference" / "vertex.json").read_text())
    assert compile_(gcs_reference_pipeline()) == golden
    assert_valid(golden)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_compiles_to_a_valid_ir(name: str) -> None:
    steps, top = SCENARIOS[name]
    assert_valid(compile_(build(steps, **top)))
    assert_valid(compile_(build(steps, **top), SETTINGS))


# -- 3. mapping -----------------------------------------------------------------------------------

def test_top_level_shape_and_settings() -> None:
    p = build([{"name": "w", "command": "w"}], description="about t")
    ir = compile_(p, SETTINGS)
    assert ir["pipelineInfo"] == {"name": "t", "description": "about t"}
    assert ir["schemaVersion"] == SCHEMA_VERSION == "2.1.0"
    assert ir["sdkVersion"].startswith("cloudml-")
    assert ir["defaultPipelineRoot"] == "gs://cloudml-test/root"
    text = json.dumps(ir)
    for absent in ("my-project-42", "europe-west4", "runner@"):  # project, location, account: submit time
        assert absent not in text
    assert "defaultPipelineRoot" not in compile_(p)
    assert "inputDefinitions" not in ir["root"]


def test_root_input_definitions_types_defaults_and_optional() -> None:
    ir = compile_(build([{"name": "w", "command": "w"}], parameters=PARAMS))
    params = ir["root"]["inputDefinitions"]["parameters"]
    assert params == {
        "s": {"parameterType": "STRING", "defaultValue": "dev", "isOptional": True},
        "n": {"parameterType": "NUMBER_INTEGER", "defaultValue": 3.0, "isOptional": True},
        "f": {"parameterType": "NUMBER_DOUBLE", "defaultValue": 0.5, "isOptional": True},
        "b": {"parameterType": "BOOLEAN", "defaultValue": True, "isOptional": True},
        "req": {"parameterType": "STRING"},
    }
    assert type(params["n"]["defaultValue"]) is float  # integers travel as doubles
    assert type(params["b"]["defaultValue"]) is bool
    zero = compile_(build([{"name": "w", "command": "w"}], parameters={"z": {"type": "int", "default": 0},
                                                                      "no": {"type": "bool", "default": False}}))
    assert zero["root"]["inputDefinitions"]["parameters"] == {
        "z": {"parameterType": "NUMBER_INTEGER", "defaultValue": 0.0, "isOptional": True},
        "no": {"parameterType": "BOOLEAN", "defaultValue": False, "isOptional": True},
    }


def test_one_component_and_executor_per_step_with_image_command_and_args() -> None:
    p = build([{"name": "a", "command": "python -m pkg.train --epochs 3", "image": "gcr.io/p/train:1"},
               {"name": "b", "command": ["bash", "-c", "echo 'a b' && true"], "args": ["x y"]},
               {"name": "c", "command": "true"}])
    ir = compile_(p)
    assert set(ir["components"]) == {"comp-a", "comp-b", "comp-c"}
    assert set(ir["deploymentSpec"]["executors"]) == {"exec-a", "exec-b", "exec-c"}
    for s in "abc":
        assert ir["components"][f"comp-{s}"]["executorLabel"] == f"exec-{s}"
        assert tasks(ir)[s]["componentRef"] == {"name": f"comp-{s}"}
        assert tasks(ir)[s]["taskInfo"] == {"name": s}
    def contract(step: str) -> list[dict[str, str]]:
        return [{"name": "CLOUDML_STEP", "value": step}, {"name": "CLOUDML_BACKEND", "value": "vertex"}]

    assert container(ir, "a") == {"image": "gcr.io/p/train:1", "command": ["python"],
                                  "args": ["-m", "pkg.train", "--epochs", "3"], "env": contract("a")}
    assert container(ir, "b") == {"image": "python:3.11-slim", "command": ["bash"],
                                  "args": ["-c", "echo 'a b' && true", "x y"], "env": contract("b")}
    assert container(ir, "c") == {"image": "python:3.11-slim", "command": ["true"], "env": contract("c")}


def test_placeholders_for_inputs_outputs_and_params() -> None:
    p = build([
        {"name": "prep", "command": "prep --out {{outputs.train}} --m {{outputs.model}} --x {{outputs.ev}} "
                                    "--g {{outputs.other}}",
         "outputs": {"train": "dataset", "model": "model", "ev": "metrics", "other": "generic"}},
        {"name": "use", "command": "use --in={{inputs.train}} --n {{params.n}} --lr {{params.f}}",
         "args": ["{{inputs.model}}", "{{params.s}}-{{params.n}}"],
         "inputs": {"train": "prep.outputs.train", "model": "prep.outputs.model", "ev": "prep.outputs.ev",
                    "other": "prep.outputs.other"}},
    ], parameters=PARAMS)
    ir = compile_(p)
    assert argv(ir, "prep") == ["prep", "--out", "{{$.outputs.artifacts['train'].path}}",
                                "--m", "{{$.outputs.artifacts['model'].path}}",
                                "--x", "{{$.outputs.artifacts['ev'].path}}",
                                "--g", "{{$.outputs.artifacts['other'].path}}"]
    assert argv(ir, "use") == ["use", "--in={{$.inputs.artifacts['train'].path}}",
                               "--n", "{{$.inputs.parameters['n']}}", "--lr", "{{$.inputs.parameters['f']}}",
                               "{{$.inputs.artifacts['model'].path}}",
                               "{{$.inputs.parameters['s']}}-{{$.inputs.parameters['n']}}"]

    def art(title: str) -> dict[str, Any]:
        return {"artifactType": {"schemaTitle": title, "schemaVersion": "0.0.1"}}

    titles = {"train": art("system.Dataset"), "model": art("system.Model"), "ev": art("system.Metrics"),
              "other": art("system.Artifact")}
    assert ir["components"]["comp-prep"]["outputDefinitions"] == {"artifacts": titles}
    assert "inputDefinitions" not in ir["components"]["comp-prep"]
    use = ir["components"]["comp-use"]
    assert use["inputDefinitions"]["artifacts"] == titles
    assert use["inputDefinitions"]["parameters"] == {"n": {"parameterType": "NUMBER_INTEGER"},
                                                     "f": {"parameterType": "NUMBER_DOUBLE"},
                                                     "s": {"parameterType": "STRING"}}
    assert "outputDefinitions" not in use
    t = tasks(ir)["use"]
    assert t["inputs"]["artifacts"]["train"] == {"taskOutputArtifact": {"producerTask": "prep",
                                                                        "outputArtifactKey": "train"}}
    assert t["inputs"]["parameters"] == {k: {"componentInputParameter": k} for k in ("n", "f", "s")}
    assert t["dependentTasks"] == ["prep"]


def test_a_bool_parameter_is_declared_boolean_where_it_is_used() -> None:
    ir = compile_(build([{"name": "w", "command": "w {{params.b}}"}], parameters=PARAMS))
    assert ir["components"]["comp-w"]["inputDefinitions"] == {"parameters": {"b": {"parameterType": "BOOLEAN"}}}


def test_gs_inputs_become_cloud_storage_fuse_paths() -> None:
    p = build([{"name": "w", "command": "w --data {{inputs.raw}}", "args": ["--dir={{inputs.d}}"],
                "inputs": {"raw": "gs://bkt/a/b.csv", "d": "gs://bkt/folder/"}}])
    ir = compile_(p)
    assert argv(ir, "w") == ["w", "--data", "/gcs/bkt/a/b.csv", "--dir=/gcs/bkt/folder/"]
    assert "inputDefinitions" not in ir["components"]["comp-w"]  # nothing to plumb: the path is fixed
    assert "inputs" not in tasks(ir)["w"]


@pytest.mark.parametrize(("uri", "scheme"), [("s3://bucket/raw.csv", "s3"), ("file:///data/raw.csv", "file"),
                                             ("data/raw.csv", "data/raw.csv"),
                                             ("https://example.com/raw.csv", "https"),
                                             ("azureml://datastores/x/paths/raw.csv", "azureml")])
def test_non_gs_inputs_are_refused_by_name(uri: str, scheme: str) -> None:
    p = build([{"name": "work", "command": "w {{inputs.raw}}", "inputs": {"raw": uri}}])
    with pytest.raises(UnsupportedFeatureError) as info:
        cloudml.compile(p, "vertex")
    err = info.value
    assert (err.adapter, err.step, err.feature) == ("vertex", "work", "input.external")
    assert "raw" in str(err) and scheme in str(err) and "gs://" in str(err)


def test_a_gs_input_with_a_placeholder_in_its_uri_is_refused() -> None:
    p = build([{"name": "work", "command": "w {{inputs.raw}}", "inputs": {"raw": "gs://b/{{params.s}}/x"}}],
              parameters=PARAMS)
    with pytest.raises(UnsupportedFeatureError) as info:
        compile_(p)
    assert (info.value.step, info.value.feature) == ("work", "input.external")


def test_caching_options() -> None:
    p = build([{"name": "on", "command": "x"}, {"name": "off", "command": "x", "cache": False},
               {"name": "explicit", "command": "x", "cache": {"enabled": True}},
               {"name": "stop", "fail": "no"}])
    t = tasks(compile_(p))
    assert t["on"]["cachingOptions"] == {"enableCache": True}
    assert t["explicit"]["cachingOptions"] == {"enableCache": True}
    assert t["off"]["cachingOptions"] == {}  # false is the proto default and is omitted
    assert "cachingOptions" not in t["stop"]  # a fail task is never served from the cache
    off_by_default = build([{"name": "w", "command": "x"}], defaults={"image": "i", "cache": False})
    assert tasks(compile_(off_by_default))["w"]["cachingOptions"] == {}


def test_cache_expiry_is_refused() -> None:
    p = build([{"name": "w", "command": "x", "cache": {"enabled": True, "expire": "7d"}}])
    with pytest.raises(UnsupportedFeatureError) as info:
        compile_(p)
    assert (info.value.adapter, info.value.step, info.value.feature) == ("vertex", "w", "step.cache_expiry")
    with pytest.raises(UnsupportedFeatureError) as info:
        cloudml.compile(p, "vertex")
    assert info.value.feature == "step.cache_expiry"


def test_retry_policy_fields() -> None:
    steps, top = SCENARIOS["retries-with-max-backoff"]
    t = tasks(compile_(build(steps, **top)))
    assert t["w"]["retryPolicy"] == {"maxRetryCount": 4, "backoffDuration": "3s", "backoffFactor": 2.0,
                                     "backoffMaxDuration": "600s"}
    assert "retryPolicy" not in t["x"]  # one attempt: nothing to retry
    default_max = build([{"name": "w", "command": "w", "retry": {"attempts": 2, "backoff": "1m"}}])
    assert tasks(compile_(default_max))["w"]["retryPolicy"] == {
        "maxRetryCount": 1, "backoffDuration": "60s", "backoffFactor": 2.0, "backoffMaxDuration": "3600s"}
    from_defaults = build([{"name": "w", "command": "w"}], defaults={"image": "i", "retry": {"attempts": 3}})
    assert tasks(compile_(from_defaults))["w"]["retryPolicy"]["maxRetryCount"] == 2


def test_resources_cpu_memory_in_gb_and_accelerators() -> None:
    steps, top = SCENARIOS["resources-with-gpus"]
    ir = compile_(build(steps, **top))
    assert container(ir, "w")["resources"] == {"cpuLimit": 8.0, "memoryLimit": 34.36,
                                               "accelerator": {"type": "NVIDIA_TESLA_A100", "count": "2"}}
    assert container(ir, "v")["resources"] == {"accelerator": {"type": "NVIDIA_L4", "count": "1"}}
    assert container(ir, "c")["resources"] == {"cpuLimit": 0.5}
    gb = compile_(build([{"name": "w", "command": "w", "resources": {"memory": "8G"}}]))
    assert container(gb, "w")["resources"] == {"memoryLimit": 8.0}
    assert "resources" not in container(compile_(build([{"name": "w", "command": "w"}])), "w")


@pytest.mark.parametrize("gpu_type", [None, "nvidia-a10g", "tpu-v4"])
def test_a_gpu_without_a_known_type_is_a_compile_error(gpu_type: str | None) -> None:
    res: dict[str, Any] = {"gpu": 1, **({"gpu_type": gpu_type} if gpu_type else {})}
    with pytest.raises(CompileError) as info:
        compile_(build([{"name": "w", "command": "w", "resources": res}]))
    assert not isinstance(info.value, UnsupportedFeatureError)
    assert "'w'" in str(info.value) and "nvidia-t4" in str(info.value) and "nvidia-a100" in str(info.value)


def test_more_than_one_instance_is_refused() -> None:
    p = build([{"name": "w", "command": "w", "resources": {"instance_count": 2}}])
    with pytest.raises(UnsupportedFeatureError) as info:
        compile_(p)
    assert (info.value.adapter, info.value.step, info.value.feature) == ("vertex", "w", "step.instance_count")


def test_env_is_static_and_merged_with_defaults() -> None:
    steps, top = SCENARIOS["gcs-inputs-env-description"]
    ir = compile_(build(steps, **top))
    assert container(ir, "w")["env"][2:] == [{"name": "LOG", "value": "1"}, {"name": "MODE", "value": "fast"},
                                             {"name": "EMPTY", "value": ""}]
    assert container(compile_(build([{"name": "w", "command": "w"}])), "w")["env"] == [
        {"name": "CLOUDML_STEP", "value": "w"}, {"name": "CLOUDML_BACKEND", "value": "vertex"}]


@pytest.mark.parametrize("value", ["{{params.s}}", "x-{{inputs.d}}", "{{outputs.o}}"])
def test_placeholders_in_env_are_refused(value: str) -> None:
    p = build([{"name": "w", "command": "w {{outputs.o}} {{inputs.d}}", "env": {"V": value},
                "inputs": {"d": "gs://b/d"}, "outputs": {"o": "dataset"}}], parameters=PARAMS)
    with pytest.raises(UnsupportedFeatureError) as info:
        compile_(p)
    assert (info.value.adapter, info.value.step, info.value.feature) == ("vertex", "w", "step.env")
    assert "V" in str(info.value)


def test_dependent_tasks_from_data_and_depends_on() -> None:
    p = build([{"name": "a", "command": "a {{outputs.o}}", "outputs": {"o": "dataset"}},
               {"name": "b", "command": "b"},
               {"name": "c", "command": "c {{inputs.i}}", "inputs": {"i": "a.outputs.o"}, "depends_on": ["b"]},
               {"name": "d", "fail": "stop", "depends_on": ["c"]}])
    t = tasks(compile_(p))
    assert "dependentTasks" not in t["a"] and "dependentTasks" not in t["b"]
    assert t["c"]["dependentTasks"] == ["a", "b"]
    assert t["d"]["dependentTasks"] == ["c"]


def test_fail_task_prints_the_message_with_params_and_exits_1() -> None:
    steps, top = SCENARIOS["fail-steps-with-params"]
    ir = compile_(build(steps, **top))
    assert container(ir, "stop") == {
        "image": FAIL_IMAGE, "command": ["sh", "-c", 'echo "$0" >&2; exit 1'],
        "args": ["stopped: s={{$.inputs.parameters['s']}} n={{$.inputs.parameters['n']}} "
                 "b={{$.inputs.parameters['b']}}"]}
    assert ir["components"]["comp-stop"]["inputDefinitions"]["parameters"] == {
        "s": {"parameterType": "STRING"}, "n": {"parameterType": "NUMBER_INTEGER"}, "b": {"parameterType": "BOOLEAN"}}
    assert tasks(ir)["stop"]["inputs"]["parameters"]["n"] == {"componentInputParameter": "n"}
    proc = subprocess.run(["sh", "-c", 'echo "$0" >&2; exit 1', "it's $HOME `date` \"quoted\""],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    assert proc.stderr == "it's $HOME `date` \"quoted\"\n"  # the message is data, never shell text


# -- sub-DAG plumbing and CEL -----------------------------------------------------------------------

def test_condition_becomes_sub_dag_tasks_with_pipelinechannel_inputs() -> None:
    ir = compile_(gcs_reference_pipeline())
    root = tasks(ir)
    then, else_ = root["condition-gate-then"], root["condition-gate-else"]
    assert then["componentRef"] == {"name": "comp-condition-gate-then"}
    assert else_["componentRef"] == {"name": "comp-condition-gate-else"}
    cel = ("(inputs.parameter_values['pipelinechannel--evaluate-metrics__auc'] >= "
           "inputs.parameter_values['pipelinechannel--min_auc']) && "
           "(inputs.parameter_values['pipelinechannel--evaluate-metrics__loss'] < 0.5)")
    assert then["triggerPolicy"] == {"condition": cel}
    assert else_["triggerPolicy"] == {"condition": f"!({cel})"}
    # metrics come from the producing task, parameters from the root inputs, artifacts from their producer
    assert then["inputs"]["parameters"] == {
        "pipelinechannel--min_auc": {"componentInputParameter": "min_auc"},
        "pipelinechannel--n_estimators": {"componentInputParameter": "n_estimators"},
        "pipelinechannel--evaluate-metrics__auc": {"taskOutputParameter": {"producerTask": "evaluate",
                                                                           "outputParameterKey": "metrics__auc"}},
        "pipelinechannel--evaluate-metrics__loss": {"taskOutputParameter": {"producerTask": "evaluate",
                                                                            "outputParameterKey": "metrics__loss"}},
    }
    assert then["inputs"]["artifacts"] == {"pipelinechannel--train-model": {
        "taskOutputArtifact": {"producerTask": "train", "outputArtifactKey": "model"}}}
    assert then["dependentTasks"] == ["evaluate", "train"]
    assert else_["dependentTasks"] == ["evaluate"]
    assert "artifacts" not in else_["inputs"]
    # inside the branch, the same values are read from the sub-DAG's own inputs
    publish = tasks(ir, "comp-condition-gate-then")["publish"]
    assert publish["inputs"] == {"artifacts": {"model": {"componentInputArtifact": "pipelinechannel--train-model"}},
                                 "parameters": {"n_estimators": {"componentInputParameter":
                                                                 "pipelinechannel--n_estimators"}}}
    assert "dependentTasks" not in publish
    too_low = tasks(ir, "comp-condition-gate-else")["too-low"]
    assert too_low["inputs"] == {"parameters": {"min_auc": {"componentInputParameter": "pipelinechannel--min_auc"}}}
    sub = ir["components"]["comp-condition-gate-then"]["inputDefinitions"]
    assert sub["parameters"]["pipelinechannel--n_estimators"] == {"parameterType": "NUMBER_INTEGER"}
    assert sub["parameters"]["pipelinechannel--evaluate-metrics__auc"] == {"parameterType": "NUMBER_DOUBLE"}
    assert sub["artifacts"]["pipelinechannel--train-model"]["artifactType"]["schemaTitle"] == "system.Model"
    assert set(root) == {"prep", "train", "evaluate", "condition-gate-then", "condition-gate-else"}


def test_nested_condition_plumbing_and_scope() -> None:
    steps, top = SCENARIOS["condition-inside-then-branch"]
    ir = compile_(build(steps, **top))
    assert set(tasks(ir)) == {"ev", "condition-g1-then"}
    outer = tasks(ir, "comp-condition-g1-then")
    assert set(outer) == {"prep2", "condition-g2-then", "condition-g2-else"}
    inner_then = outer["condition-g2-then"]
    # a producer inside the same sub-DAG is a task output; an outer value is a sub-DAG input
    assert inner_then["inputs"]["artifacts"] == {"pipelinechannel--prep2-d": {
        "taskOutputArtifact": {"producerTask": "prep2", "outputArtifactKey": "d"}}}
    assert inner_then["inputs"]["parameters"]["pipelinechannel--ev-m__f1"] == {
        "componentInputParameter": "pipelinechannel--ev-m__f1"}
    assert inner_then["inputs"]["parameters"]["pipelinechannel--f"] == {"componentInputParameter": "pipelinechannel--f"}
    assert inner_then["dependentTasks"] == ["prep2"]
    assert "artifacts" not in outer["condition-g2-else"]["inputs"]
    assert tasks(ir, "comp-condition-g2-then")["use"]["inputs"] == {
        "artifacts": {"d": {"componentInputArtifact": "pipelinechannel--prep2-d"}},
        "parameters": {"n": {"componentInputParameter": "pipelinechannel--n"}}}
    # the outer sub-DAG declares what its nested sub-DAGs need from outside it
    declared = ir["components"]["comp-condition-g1-then"]["inputDefinitions"]
    assert set(declared["parameters"]) == {"pipelinechannel--f", "pipelinechannel--n",
                                           "pipelinechannel--ev-m__auc", "pipelinechannel--ev-m__f1"}
    assert "artifacts" not in declared  # prep2 lives inside it
    assert tasks(ir)["condition-g1-then"]["inputs"]["parameters"]["pipelinechannel--ev-m__f1"] == {
        "taskOutputParameter": {"producerTask": "ev", "outputParameterKey": "m__f1"}}


def test_an_artifact_two_levels_up_is_relayed_through_each_sub_dag() -> None:
    steps, top = SCENARIOS["artifact-from-two-levels-up"]
    ir = compile_(build(steps, **top))
    assert tasks(ir)["condition-g1-then"]["inputs"]["artifacts"]["pipelinechannel--prep-d"] == {
        "taskOutputArtifact": {"producerTask": "prep", "outputArtifactKey": "d"}}
    assert tasks(ir, "comp-condition-g1-then")["condition-g2-then"]["inputs"]["artifacts"] == {
        "pipelinechannel--ev-m": {"componentInputArtifact": "pipelinechannel--ev-m"},
        "pipelinechannel--prep-d": {"componentInputArtifact": "pipelinechannel--prep-d"}}
    assert tasks(ir, "comp-condition-g2-then")["use"]["inputs"]["artifacts"] == {
        "d": {"componentInputArtifact": "pipelinechannel--prep-d"},
        "m": {"componentInputArtifact": "pipelinechannel--ev-m"}}
    assert tasks(ir)["condition-g1-then"]["dependentTasks"] == ["ev", "prep"]
    # a list index inside the metric path
    assert metric_key("m", ("per_class", 1, "f1")).startswith("m__per_class_1_f1_")
    assert f"pipelinechannel--ev-{metric_key('m', ('per_class', 1, 'f1'))}" in tasks(ir, "comp-condition-g1-then")["condition-g2-then"][
        "triggerPolicy"]["condition"]


def test_a_guarded_step_s_dependants_are_nested_in_its_branch() -> None:
    steps, top = SCENARIOS["guarded-step-dependency-is-nested"]
    ir = compile_(build(steps, **top))
    assert set(tasks(ir)) == {"ev", "condition-g-then"}
    inner = tasks(ir, "comp-condition-g-then")
    assert set(inner) == {"a", "b", "c"}
    assert inner["b"]["inputs"]["artifacts"]["i"] == {"taskOutputArtifact": {"producerTask": "a",
                                                                             "outputArtifactKey": "o"}}
    assert inner["b"]["dependentTasks"] == ["a"] and inner["c"]["dependentTasks"] == ["b"]


def test_both_branches_with_several_steps() -> None:
    steps, top = SCENARIOS["both-branches-several-steps"]
    ir = compile_(build(steps, **top))
    assert set(tasks(ir, "comp-condition-g-then")) == {"t1", "t2", "t3"}
    assert set(tasks(ir, "comp-condition-g-else")) == {"e1", "e2"}
    assert tasks(ir, "comp-condition-g-then")["t3"]["dependentTasks"] == ["t1", "t2"]
    assert tasks(ir, "comp-condition-g-else")["e2"]["dependentTasks"] == ["e1"]
    assert tasks(ir)["condition-g-then"]["dependentTasks"] == ["ev", "prep"]
    assert tasks(ir)["condition-g-else"]["inputs"]["artifacts"] == {"pipelinechannel--ev-m": {
        "taskOutputArtifact": {"producerTask": "ev", "outputArtifactKey": "m"}}}
    assert tasks(ir, "comp-condition-g-else")["e1"]["inputs"]["artifacts"]["m"] == {
        "componentInputArtifact": "pipelinechannel--ev-m"}


def test_a_step_depending_on_a_condition_waits_for_both_branch_tasks() -> None:
    steps, top = SCENARIOS["depends-on-a-condition"]
    t = tasks(compile_(build(steps, **top)))
    assert t["after"]["dependentTasks"] == ["condition-g-else", "condition-g-then"]
    only_then = build([EV, {"name": "g", "condition": 'ev.outputs.m["auc"] > 0.5', "then": ["w"]},
                       {"name": "w", "command": "w"}, {"name": "after", "command": "a", "depends_on": ["g"]}])
    assert tasks(compile_(only_then))["after"]["dependentTasks"] == ["condition-g-then"]


def cel_of(condition: str, params: dict[str, Any] | None = None) -> str:
    p = build([EV, {"name": "g", "condition": condition, "then": ["w"]}, {"name": "w", "command": "w"}],
              parameters=params if params is not None else PARAMS)
    ir = compile_(p)
    assert_valid(ir)
    out: str = tasks(ir)["condition-g-then"]["triggerPolicy"]["condition"]
    return out


AUC = "inputs.parameter_values['pipelinechannel--ev-m__auc']"
LOSS = "inputs.parameter_values['pipelinechannel--ev-m__loss']"


@pytest.mark.parametrize(("condition", "cel"), [
    ('ev.outputs.m["auc"] >= 0.8', f"{AUC} >= 0.8"),
    ('ev.outputs.m["auc"] != 1', f"{AUC} != 1.0"),
    ('ev.outputs.m["auc"] > -2', f"{AUC} > -2.0"),
    ("ev.outputs.m.auc < 1e-7", f"{AUC} < 1e-07"),
    ('ev.outputs.m["auc"] <= 100000000000000000000', f"{AUC} <= 1e+20"),
    ('ev.outputs.m["auc"] == params.n', f"{AUC} == inputs.parameter_values['pipelinechannel--n']"),
    ('ev.outputs.m["auc"] > 0.5 and ev.outputs.m["loss"] < 0.3', f"({AUC} > 0.5) && ({LOSS} < 0.3)"),
    ('ev.outputs.m["auc"] > 0.5 or ev.outputs.m["loss"] < 0.3', f"({AUC} > 0.5) || ({LOSS} < 0.3)"),
    ('not ev.outputs.m["auc"] > 0.5', f"!({AUC} > 0.5)"),
    ('not (ev.outputs.m["auc"] > 0.5 or ev.outputs.m["loss"] < 0.3) and params.b == true',
     f"(!(({AUC} > 0.5) || ({LOSS} < 0.3))) && (inputs.parameter_values['pipelinechannel--b'] == true)"),
    ("params.s == 'it\"s'", "inputs.parameter_values['pipelinechannel--s'] == \"it\\\"s\""),
    ('params.s != "prod"', "inputs.parameter_values['pipelinechannel--s'] != \"prod\""),
    ("params.b == false", "inputs.parameter_values['pipelinechannel--b'] == false"),
    ("params.n >= 3", "inputs.parameter_values['pipelinechannel--n'] >= 3.0"),
])
def test_cel_text(condition: str, cel: str) -> None:
    assert cel_of(condition) == cel


def test_the_else_branch_negates_the_whole_condition() -> None:
    steps, top = SCENARIOS["or-not-and"]
    t = tasks(compile_(build(steps, **top)))
    then = t["condition-g-then"]["triggerPolicy"]["condition"]
    assert then == (f"(({AUC} > 0.5) && ({LOSS} <= 0.3)) || "
                    "(!(inputs.parameter_values['pipelinechannel--ev-m__f1'] != 1.0))")
    assert t["condition-g-else"]["triggerPolicy"]["condition"] == f"!({then})"


def test_a_params_only_condition_has_no_metric_plumbing() -> None:
    steps, top = SCENARIOS["params-only-condition"]
    ir = compile_(build(steps, **top))
    then = tasks(ir)["condition-g-then"]
    assert "dependentTasks" not in then
    assert then["inputs"] == {"parameters": {f"pipelinechannel--{p}": {"componentInputParameter": p}
                                             for p in ("f", "n", "req")}}
    assert ir["components"]["comp-condition-g-then"]["inputDefinitions"]["parameters"] == {
        "pipelinechannel--f": {"parameterType": "NUMBER_DOUBLE"},
        "pipelinechannel--n": {"parameterType": "NUMBER_INTEGER"},
        "pipelinechannel--req": {"parameterType": "STRING"}}
    assert not wrapped(ir, "w")
    assert "outputDefinitions" not in ir["components"]["comp-w"]


def test_bool_and_string_parameters_keep_their_types_in_the_sub_dag() -> None:
    steps, top = SCENARIOS["bool-and-string-conditions"]
    ir = compile_(build(steps, **top))
    assert ir["components"]["comp-condition-g-then"]["inputDefinitions"]["parameters"] == {
        "pipelinechannel--b": {"parameterType": "BOOLEAN"}, "pipelinechannel--s": {"parameterType": "STRING"}}
    assert tasks(ir)["condition-g-then"]["triggerPolicy"]["condition"] == (
        "(inputs.parameter_values['pipelinechannel--b'] != false) && "
        "(inputs.parameter_values['pipelinechannel--s'] == \"prod\")")


def test_a_step_in_two_branches_at_once_is_refused_as_a_condition_gap() -> None:
    p = build([EV, {"name": "g", "condition": 'ev.outputs.m["auc"] > 0.5', "then": ["a"], "else": ["b"]},
               {"name": "a", "command": "a {{outputs.o}}", "outputs": {"o": "dataset"}},
               {"name": "b", "command": "b {{outputs.o}}", "outputs": {"o": "dataset"}},
               {"name": "both", "command": "x {{inputs.x}} {{inputs.y}}",
                "inputs": {"x": "a.outputs.o", "y": "b.outputs.o"}}])
    with pytest.raises(UnsupportedFeatureError) as info:
        cloudml.compile(p, "vertex")
    assert (info.value.adapter, info.value.step, info.value.feature) == ("vertex", "both", "condition")


# -- the wrapper: present only where needed ------------------------------------------------------

PC0 = metric_key("m", ("per_class", 0, "f1"))


def test_metric_extraction_wrapper_only_on_steps_whose_metrics_are_read() -> None:
    p = build([EV, {"name": "other", "command": "o {{outputs.m}}", "outputs": {"m": "metrics"}},
               {"name": "g", "condition": 'ev.outputs.m["auc"] > 0.5 and ev.outputs.m["per_class"][0]["f1"] > 0.1',
                "then": ["w"]},
               {"name": "w", "command": "w"}])
    ir = compile_(p)
    assert wrapped(ir, "ev")
    assert not wrapped(ir, "other") and not wrapped(ir, "w")
    assert argv(ir, "ev") == ["python3", "-c", WRAPPER, "0",
                              "{{$.outputs.artifacts['m'].path}}", "auc",
                              "{{$.outputs.parameters['m__auc'].output_file}}",
                              "{{$.outputs.artifacts['m'].path}}", "per_class.0.f1",
                              f"{{{{$.outputs.parameters['{PC0}'].output_file}}}}",
                              "--", "python", "ev.py", "--out", "{{$.outputs.artifacts['m'].path}}"]
    assert ir["components"]["comp-ev"]["outputDefinitions"]["parameters"] == {
        "m__auc": {"parameterType": "NUMBER_DOUBLE"}, PC0: {"parameterType": "NUMBER_DOUBLE"}}
    assert "parameters" not in ir["components"]["comp-other"]["outputDefinitions"]


def test_timeout_wrapper_only_where_a_timeout_is_set() -> None:
    steps, top = SCENARIOS["timeouts"]
    ir = compile_(build(steps, **top))
    assert argv(ir, "w") == ["python3", "-c", WRAPPER, "2", "--", "w"]  # 1.5 s rounds up
    assert argv(ir, "ev")[3:5] == ["90", "{{$.outputs.artifacts['m'].path}}"]
    assert user_argv(ir, "ev") == ["python", "ev.py", "--out", "{{$.outputs.artifacts['m'].path}}"]
    hours = compile_(build([{"name": "w", "command": "w", "timeout": "2h"}, {"name": "x", "command": "x"}]))
    assert argv(hours, "w")[3:] == ["7200", "--", "w"]
    assert not wrapped(hours, "x")
    assert "timeout" not in json.dumps(tasks(hours)["w"])  # the IR has no per-task timeout field


# -- capability gaps ----------------------------------------------------------------------------------

GAPS = {"step.secrets": "work"}  # step.tuning compiles since tuning.py (tests/unit/test_vertex_tuning.py)


@pytest.mark.parametrize("feature", sorted(GAPS))
def test_capability_gaps_are_refused_by_name(feature: str, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "job.py").write_text("def run():\n    return {}\n")
    assert not VertexAdapter.capabilities.supports(feature)
    spec = FEATURE_CASES[feature]()
    assert isinstance(spec, Pipeline)
    with pytest.raises(UnsupportedFeatureError) as info:
        cloudml.compile(spec, "vertex")
    err = info.value
    assert (err.adapter, err.step, err.feature) == ("vertex", GAPS[feature], feature)
    assert "vertex" in str(err) and feature in str(err)
    if GAPS[feature]:
        assert f"'{GAPS[feature]}'" in str(err)


@pytest.mark.parametrize(("feature", "step"), [("step.secrets", "work")])
def test_the_compiler_itself_refuses_gaps_when_called_directly(feature: str, step: str) -> None:
    spec = FEATURE_CASES[feature]()
    assert isinstance(spec, Pipeline)
    with pytest.raises(UnsupportedFeatureError) as info:
        compile_ir(spec, None)
    assert (info.value.adapter, info.value.step, info.value.feature) == ("vertex", step, feature)


def test_a_step_without_an_image_is_a_compile_error() -> None:
    p = validate_data({"apiVersion": "cloudml/v1", "kind": "Pipeline", "name": "t",
                       "steps": [{"name": "w", "command": "w"}]})
    assert isinstance(p, Pipeline)
    with pytest.raises(CompileError, match="'w' has no image"):
        compile_(p)


def test_deployments_compile_to_the_neutral_plan_and_shadow_is_refused() -> None:
    plan = cloudml.compile(FEATURE_CASES["deploy.canary"](), "vertex")
    assert plan.target == "vertex" and "phases" in plan.document
    assert VertexAdapter().validate_compiled(plan) == []
    with pytest.raises(UnsupportedFeatureError) as info:
        cloudml.compile(FEATURE_CASES["deploy.shadow"](), "vertex")
    assert (info.value.adapter, info.value.feature) == ("vertex", "deploy.shadow")
    assert VertexAdapter.capabilities.level("deploy.shadow") == "notyet"


# -- stability and purity ------------------------------------------------------------------------------

def test_compile_output_is_byte_stable() -> None:
    for steps, top in SCENARIOS.values():
        p = build(steps, **top)
        assert json.dumps(compile_(p, SETTINGS)) == json.dumps(compile_(p, SETTINGS))
    ref = cloudml.compile(gcs_reference_pipeline(), "vertex")
    assert ref.dumps() == cloudml.compile(gcs_reference_pipeline(), "vertex").dumps()


_COMPILE_IN_CHILD = """
import json, sys
before = set(sys.modules)  # namespace-package .pth stubs (google, google.cloud) load at startup
sys.path.insert(0, {repo!r})
from cloudml.spec.validate import validate_data
from cloudml.adapters.vertex.compiler import compile_ir
out = {{}}
for name, (steps, top) in sorted(json.load(sys.stdin).items()):
    doc = {{"apiVersion": "cloudml/v1", "kind": "Pipeline", "name": "t",
            "defaults": {{"image": "python:3.11-slim"}}, "steps": steps, **top}}
    out[name] = compile_ir(validate_data(doc), None)
print(json.dumps(out))
print(sorted(m for m in set(sys.modules) - before if m.startswith(("google", "kfp", "aiplatform"))))
"""


def test_output_does_not_depend_on_hash_seed_and_compiling_imports_no_sdk() -> None:
    outputs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        proc = subprocess.run([sys.executable, "-c", _COMPILE_IN_CHILD.format(repo=str(REPO))], env=env,
                              input=json.dumps(SCENARIOS), capture_output=True, text=True, check=True, timeout=60)
        document, modules = proc.stdout.splitlines()
        assert modules == "[]", f"compiling imported {modules}"
        outputs.append(document)
    assert outputs[0] == outputs[1]
    steps, top = SCENARIOS["timeouts"]
    assert json.loads(outputs[0])["timeouts"] == compile_(build(steps, **top))


# -- 4. the wrapper, run for real -------------------------------------------------------------------

def run_wrapper(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", WRAPPER, *args], capture_output=True, text=True, check=False,
                          timeout=timeout)


def py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_wrapper_extracts_nested_paths_into_new_folders(tmp_path: Path) -> None:
    metrics = tmp_path / "m.json"
    metrics.write_text(json.dumps({"auc": 0.91, "per_class": [{"f1": 0.7}, {"f1": 0.8}],
                                   "deep": {"a": {"b": [1, 2, {"c": -3}]}}, "n": 4, "0": 1.5}))
    outs = [tmp_path / "o" / "auc", tmp_path / "x" / "y" / "z" / "f1", tmp_path / "deep", tmp_path / "n",
            tmp_path / "key0"]
    proc = run_wrapper("0", str(metrics), "auc", str(outs[0]), str(metrics), "per_class.1.f1", str(outs[1]),
                       str(metrics), "deep.a.b.2.c", str(outs[2]), str(metrics), "n", str(outs[3]),
                       str(metrics), "0", str(outs[4]), "--", *py("print('ran')"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "ran\n"
    assert [json.loads(o.read_text()) for o in outs] == [0.91, 0.8, -3, 4, 1.5]


def test_wrapper_runs_the_command_after_the_separator_with_its_argv_intact(tmp_path: Path) -> None:
    proc = run_wrapper("0", "--", *py("import sys; print(sys.argv[1:])"), "a b", "$HOME", "--", "'q'")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "['a b', '$HOME', '--', \"'q'\"]\n"


def test_wrapper_extracts_after_the_command_wrote_the_file(tmp_path: Path) -> None:
    metrics, out = tmp_path / "m.json", tmp_path / "out" / "auc"
    write = "import json,sys; json.dump({'auc': 0.5}, open(sys.argv[1], 'w'))"
    proc = run_wrapper("5", str(metrics), "auc", str(out), "--", *py(write), str(metrics))
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == "0.5"


@pytest.mark.parametrize("code", [3, 1, 42])
def test_wrapper_propagates_the_exit_code_and_skips_extraction(tmp_path: Path, code: int) -> None:
    metrics, out = tmp_path / "m.json", tmp_path / "auc"
    metrics.write_text('{"auc": 1}')
    proc = run_wrapper("0", str(metrics), "auc", str(out), "--", *py(f"import sys; sys.exit({code})"))
    assert proc.returncode == code
    assert not out.exists()


def test_wrapper_fails_when_the_metric_path_is_missing(tmp_path: Path) -> None:
    metrics = tmp_path / "m.json"
    metrics.write_text('{"auc": 1}')
    proc = run_wrapper("0", str(metrics), "f1", str(tmp_path / "f1"), "--", *py("pass"))
    assert proc.returncode != 0
    assert "KeyError" in proc.stderr and "f1" in proc.stderr


def test_wrapper_times_out_with_124_and_a_message(tmp_path: Path) -> None:
    out = tmp_path / "auc"
    started = time.monotonic()
    proc = run_wrapper("1", str(tmp_path / "m.json"), "auc", str(out), "--", *py("import time; time.sleep(30)"))
    elapsed = time.monotonic() - started
    assert proc.returncode == 124
    assert "cloudml: step timed out after 1s" in proc.stderr
    assert elapsed < 10
    assert not out.exists()


def test_wrapper_without_timeout_waits_for_the_command() -> None:
    proc = run_wrapper("0", "--", *py("import time; time.sleep(1.2); print('done')"))
    assert (proc.returncode, proc.stdout) == (0, "done\n")


_KFP = re.compile(r"\{\{\$\.(inputs|outputs)\.(parameters|artifacts)\['([^']+)'\](?:\.(path|output_file))?\}\}")


def run_compiled(ir: dict[str, Any], step: str, root: Path, params: dict[str, str] | None = None,
                 ) -> subprocess.CompletedProcess[str]:
    """Run a compiled executor the way a KFP launcher would: placeholders resolved to local files."""

    def resolve(text: str) -> str:
        def one(m: re.Match[str]) -> str:
            io, kind, name, _ = m.groups()
            if (io, kind) == ("inputs", "parameters"):
                return (params or {})[name]
            path = root / io / kind / name
            path.parent.mkdir(parents=True, exist_ok=True)
            return str(path)

        return _KFP.sub(one, text)

    args = [resolve(a) for a in argv(ir, step)]
    args = [sys.executable if a in ("python3", "python") else a for a in args]
    return subprocess.run(args, capture_output=True, text=True, check=False, timeout=60)


def metrics_step(metrics: dict[str, Any], condition: str, timeout: str | None = None) -> dict[str, Any]:
    write = f"import json,sys; json.dump({metrics!r}, open(sys.argv[1], 'w'))"
    p = build([{"name": "ev", "command": ["python3", "-c", write, "{{outputs.m}}"], "outputs": {"m": "metrics"},
                **({"timeout": timeout} if timeout else {})},
               {"name": "g", "condition": condition, "then": ["w"]}, {"name": "w", "command": "w"}])
    return compile_(p)


def test_the_compiled_evaluation_step_writes_its_metric_output_parameters(tmp_path: Path) -> None:
    ir = metrics_step({"auc": 0.93, "per_class": [{"f1": 0.5}, {"f1": 0.75}]},
                      'ev.outputs.m["auc"] > 0.5 and ev.outputs.m["per_class"][1]["f1"] > 0.5', timeout="30s")
    proc = run_compiled(ir, "ev", tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "outputs" / "parameters"
    assert json.loads((out / "m__auc").read_text()) == 0.93
    assert json.loads((out / metric_key("m", ("per_class", 1, "f1"))).read_text()) == 0.75
    assert set(ir["components"]["comp-ev"]["outputDefinitions"]["parameters"]) == {
        p.name for p in out.iterdir()}


def test_the_compiled_timeout_kills_the_step_with_124(tmp_path: Path) -> None:
    p = build([{"name": "w", "command": ["python3", "-c", "import time; time.sleep(30)"], "timeout": "1s"}])
    proc = run_compiled(compile_(p), "w", tmp_path)
    assert proc.returncode == 124
    assert "timed out after 1s" in proc.stderr


def test_the_compiled_fail_step_fails_with_its_message(tmp_path: Path) -> None:
    ir = compile_(build([{"name": "stop", "fail": "n was {{params.n}}"}], parameters=PARAMS))
    proc = run_compiled(ir, "stop", tmp_path, params={"n": "3"})
    assert (proc.returncode, proc.stderr) == (1, "n was 3\n")


# -- python and code steps, framework images ---------------------------------------------------------

def code_folder(base: Path, source: str = "def run(n: int, out, m):\n"
                "    (out / 'n.txt').write_text(str(n))\n    return {'n2': n * 2}\n") -> Path:
    (base / "src").mkdir(parents=True, exist_ok=True)
    (base / "src" / "job.py").write_text(source)
    return base


PY_STEP = {"name": "py", "python": "job:run", "code": "src", "params": {"n": "{{params.n}}"},
           "outputs": {"out": "dataset", "m": "metrics"}}


def test_a_python_step_runs_cloudml_runtime_from_its_content_addressed_bundle(tmp_path: Path) -> None:
    from cloudml.adapters.vertex.bundles import code_digest

    base = code_folder(tmp_path)
    ir = compile_ir(build([PY_STEP], parameters=PARAMS), SETTINGS, base)
    assert_valid(ir)
    a = argv(ir, "py")
    assert a[:3] == ["python3", "-c", LAUNCHER]
    assert a[3] == f"gs://cloudml-test/root/cloudml/code/{code_digest(base / 'src')}.tar.gz"
    assert a[4:] == ["--", "python3", "cloudml_runtime.py", "--function", "job:run", "--code", ".",
                     "--output=out={{$.outputs.artifacts['out'].path}}", "--output=m={{$.outputs.artifacts['m'].path}}",
                     "--output-type=out=dataset", "--output-type=m=metrics", "--param=n={{$.inputs.parameters['n']}}"]
    assert ir["components"]["comp-py"]["inputDefinitions"]["parameters"] == {"n": {"parameterType": "NUMBER_INTEGER"}}


def test_the_bundle_uri_changes_with_the_code_and_only_with_it(tmp_path: Path) -> None:
    base = code_folder(tmp_path)
    p = build([PY_STEP], parameters=PARAMS)
    first = argv(compile_ir(p, SETTINGS, base), "py")[3]
    assert argv(compile_ir(p, SETTINGS, base), "py")[3] == first
    (base / "src" / "helper.py").write_text("X = 1\n")
    assert argv(compile_ir(p, SETTINGS, base), "py")[3] != first


def test_without_a_pipeline_root_the_bundle_sits_under_kfp_s_pipeline_root_placeholder(tmp_path: Path) -> None:
    ir = compile_ir(build([PY_STEP], parameters=PARAMS), None, code_folder(tmp_path))
    assert argv(ir, "py")[3].startswith("{{$.pipeline_root}}/cloudml/code/")
    assert_valid(ir)


def test_a_command_step_with_code_runs_in_its_unpacked_folder(tmp_path: Path) -> None:
    base = code_folder(tmp_path)
    ir = compile_ir(build([{"name": "c", "command": "python job.py --out {{outputs.o}}", "code": "src",
                            "outputs": {"o": "dataset"}}]), SETTINGS, base)
    a = argv(ir, "c")
    assert a[:3] == ["python3", "-c", LAUNCHER] and a[4:] == ["--", "python", "job.py", "--out",
                                                              "{{$.outputs.artifacts['o'].path}}"]
    assert_valid(ir)


def test_a_python_step_without_code_ships_the_runtime_alone() -> None:
    from cloudml.adapters.vertex.bundles import NO_CODE, code_digest

    ir = compile_(build([{"name": "py", "python": "pkg.mod:fn"}]), SETTINGS)
    assert argv(ir, "py")[3].endswith(f"/{code_digest(NO_CODE)}.tar.gz")


def test_a_missing_code_folder_is_a_compile_error(tmp_path: Path) -> None:
    with pytest.raises(CompileError, match=r"code folder .*nope does not exist"):
        compile_ir(build([{"name": "c", "command": "run", "code": "nope"}]), SETTINGS, tmp_path)


def test_the_compiled_python_step_runs_for_real_from_its_bundle(tmp_path: Path) -> None:
    """Bundle built by the client's code, stored where the launcher looks, executor run with a local root."""
    from cloudml.adapters.vertex.bundles import build_bundle

    base = code_folder(tmp_path / "spec")
    ir = compile_ir(build([PY_STEP], parameters=PARAMS), None, base)
    root = tmp_path / "root"
    uri = argv(ir, "py")[3].replace("{{$.pipeline_root}}", str(root))
    Path(uri).parent.mkdir(parents=True)
    Path(uri).write_bytes(build_bundle(base / "src"))
    for c in ir["deploymentSpec"]["executors"].values():
        c["container"]["args"] = [x.replace("{{$.pipeline_root}}", str(root)) for x in c["container"]["args"]]
    proc = run_compiled(ir, "py", tmp_path / "kfp", params={"n": "21.0"})  # Vertex sends integers as doubles
    assert proc.returncode == 0, proc.stderr
    arts = tmp_path / "kfp" / "outputs" / "artifacts"
    assert (arts / "out" / "n.txt").read_text() == "21"
    assert json.loads((arts / "m").read_text()) == {"n2": 42}


@pytest.mark.parametrize(("framework", "gpu", "image"), [
    ("sklearn==1.6", False, "us-docker.pkg.dev/vertex-ai/training/sklearn-cpu.1-6:latest"),
    ("sklearn==1.0.2", False, "us-docker.pkg.dev/vertex-ai/training/sklearn-cpu.1-0:latest"),
    ("xgboost", False, "us-docker.pkg.dev/vertex-ai/training/xgboost-cpu.2-1:latest"),
    ("tensorflow==2.15", True, "us-docker.pkg.dev/vertex-ai/training/tf-gpu.2-15.py310:latest"),
    ("pytorch==2.4", False, "us-docker.pkg.dev/vertex-ai/training/pytorch-xla.2-4.py310:latest"),
    ("pytorch==2.4", True, "us-docker.pkg.dev/vertex-ai/training/pytorch-gpu.2-4.py310:latest"),
])
def test_framework_shortcuts_become_prebuilt_training_images(framework: str, gpu: bool, image: str) -> None:
    step: dict[str, Any] = {"name": "t", "command": "python t.py", "framework": framework}
    if gpu:
        step["resources"] = {"gpu": 1, "gpu_type": "nvidia-t4"}
    p = validate_data({"apiVersion": "cloudml/v1", "kind": "Pipeline", "name": "t", "steps": [step]})
    assert isinstance(p, Pipeline)
    ir = compile_(p, SETTINGS)
    assert container(ir, "t")["image"] == image
    assert_valid(ir)


@pytest.mark.parametrize(("framework", "message"), [
    ("sklearn==1.2", "no prebuilt sklearn 1.2 training image; available: 1.6, 1.0, 0.23"),
    ("lightgbm", "no prebuilt lightgbm training image"),
    ("huggingface==4.0", "no prebuilt huggingface training image"),
])
def test_an_unknown_framework_or_version_is_a_clear_compile_error(framework: str, message: str) -> None:
    p = validate_data({"apiVersion": "cloudml/v1", "kind": "Pipeline", "name": "t",
                       "steps": [{"name": "t", "command": "x", "framework": framework}]})
    assert isinstance(p, Pipeline)
    with pytest.raises(CompileError, match=re.escape(message)) as info:
        compile_(p)
    assert "step 't'" in str(info.value) and info.value.hint


def test_an_explicit_image_wins_over_the_framework() -> None:
    ir = compile_(build([{"name": "t", "command": "x", "framework": "lightgbm"}]))
    assert container(ir, "t")["image"] == "python:3.11-slim"


def test_the_launcher_unpacks_into_a_fresh_folder_and_keeps_the_argv(tmp_path: Path) -> None:
    from cloudml.adapters.vertex.bundles import build_bundle

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "hello.txt").write_text("hi")
    bundle = tmp_path / "b.tar.gz"
    bundle.write_bytes(build_bundle(tmp_path / "src"))
    show = "import os,sys; print(open('hello.txt').read(), os.path.exists('cloudml_runtime.py'), sys.argv[1:])"
    proc = subprocess.run([sys.executable, "-c", LAUNCHER, str(bundle), "--", sys.executable, "-c", show, "a b", "--x"],
                          capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "hi True ['a b', '--x']\n"


# -- known bugs (strict expected failures) -------------------------------------------------------------

def test_fixed_nested_condition_on_a_metric_produced_inside_the_outer_branch() -> None:
    p = build([EV,
               {"name": "g1", "condition": 'ev.outputs.m["auc"] > 0.5', "then": ["ev2"]},
               {"name": "ev2", "command": "e2 {{outputs.m}}", "outputs": {"m": "metrics"}},
               {"name": "g2", "condition": 'ev2.outputs.m["f1"] > 0.5', "then": ["w"]},
               {"name": "w", "command": "w"}])
    ir = compile_(p)
    assert "pipelinechannel--ev2-m__f1" not in tasks(ir)["condition-g1-then"]["inputs"]["parameters"]
    assert_valid(ir)


def test_fixed_depends_on_from_inside_a_branch_to_an_outer_step_is_dropped() -> None:
    p = build([{"name": "a", "command": "a"}, EV,
               {"name": "g", "condition": 'ev.outputs.m["auc"] > 0.5', "then": ["b"]},
               {"name": "b", "command": "b", "depends_on": ["a"]}])
    ir = compile_(p)
    assert_valid(ir)  # valid, yet the ordering is lost
    assert "a" in tasks(ir)["condition-g-then"].get("dependentTasks", [])


def test_fixed_metric_keys_collide() -> None:
    ir = compile_(build([EV, {"name": "g", "condition": 'ev.outputs.m["a-b"] > 0.5 and ev.outputs.m["a_b"] < 2',
                              "then": ["w"]}, {"name": "w", "command": "w"}]))
    assert len(ir["components"]["comp-ev"]["outputDefinitions"]["parameters"]) == 2


def test_fixed_a_metric_key_with_a_dot_is_misread(tmp_path: Path) -> None:
    ir = metrics_step({"a.b": 0.9}, 'ev.outputs.m["a.b"] > 0.5')
    proc = run_compiled(ir, "ev", tmp_path)
    assert proc.returncode == 0, proc.stderr
    key = metric_key("m", ("a.b",))
    assert ir["components"]["comp-ev"]["outputDefinitions"]["parameters"] == {key: {"parameterType": "NUMBER_DOUBLE"}}
    assert json.loads((tmp_path / "outputs" / "parameters" / key).read_text()) == 0.9


def test_fixed_a_string_metric_is_declared_a_double() -> None:
    ir = compile_(build([EV, {"name": "g", "condition": 'ev.outputs.m["status"] == "ok"', "then": ["w"]},
                         {"name": "w", "command": "w"}]))
    assert ir["components"]["comp-ev"]["outputDefinitions"]["parameters"]["m__status"] == {
        "parameterType": "STRING"}


def test_fixed_a_placeholder_with_inner_spaces_is_split_apart() -> None:
    ir = compile_(build([{"name": "w", "command": "python t.py --lr {{ params.f }}"}], parameters=PARAMS))
    assert argv(ir, "w") == ["python", "t.py", "--lr", "{{$.inputs.parameters['f']}}"]


@pytest.mark.parametrize("resources", [{"disk": "100Gi"}, {"instance_type": {"vertex": "n1-highmem-8"}}])
def test_fixed_unmapped_resources_are_dropped_silently(resources: dict[str, Any]) -> None:
    with pytest.raises(CompileError):
        compile_(build([{"name": "w", "command": "w", "resources": resources}]))


def test_a_step_named_like_a_condition_task_is_refused_not_overwritten() -> None:
    with pytest.raises(CompileError, match="condition-gate-then") as info:
        compile_(build([EV, {"name": "gate", "condition": 'ev.outputs.m["auc"] > 0.5', "then": ["w"]},
                        {"name": "w", "command": "w"}, {"name": "condition-gate-then", "command": "x"}]))
    assert "rename" in str(info.value.hint)


def test_fixed_runtime_contract_environment_is_missing() -> None:
    env = container(compile_(build([{"name": "w", "command": "w"}])), "w").get("env", [])
    assert {"name": "CLOUDML_BACKEND", "value": "vertex"} in env
    assert {"name": "CLOUDML_STEP", "value": "w"} in env


def test_the_docs_page_lists_every_declared_gap() -> None:
    page = (REPO / "docs" / "adapters" / "vertex.md").read_text()
    for feature, (level, reason) in VertexAdapter.capabilities.gaps.items():
        assert f"| `{feature}` | {level} | {reason} |" in page, feature
    table = page.split("## Known gaps", 1)[1].split("\n\n")[2]  # intro line, blank, then the table
    listed = re.findall(r"^\| `([^`]+)` \|", table, flags=re.M)
    assert sorted(listed) == sorted(VertexAdapter.capabilities.gaps), "the Known gaps table lists exactly the gaps"
    for word in ("project", "location", "pipeline_root", "service_account", "WRAPPER", "shadow",
                 "Kubeflow Pipelines", "--update-golden", "PipelineDeploymentConfig"):
        assert word in page, word


# -- register_model steps: a task running VertexRegistry.register through cloudml.runtime ----------------

SERVING = "us-docker.pkg.dev/vertex-ai/prediction/sklearn-cpu.1-3:latest"
REG_TRAIN = {"name": "train", "command": "python t.py {{outputs.model}}", "outputs": {"model": "model"}}
REG_EVAL = {"name": "evaluate", "command": "python e.py {{inputs.model}} {{outputs.metrics}}",
            "inputs": {"model": "train.outputs.model"}, "outputs": {"metrics": "metrics"}}


def reg(**fields: Any) -> dict[str, Any]:
    return {"name": "register", "register_model": {"model": "train.outputs.model", "group": "churn", "image": SERVING,
                                                   **fields}}


def gated_reference() -> Pipeline:
    """The reference pipeline's shape (processing, training, evaluation, gate, register, else fail) with
    Cloud Storage data and images (the conformance reference reads s3:// through a parameter)."""
    return build([
        {"name": "prep", "command": "python prep.py {{inputs.raw}} {{outputs.train}} {{outputs.test}}",
         "inputs": {"raw": "gs://bucket/data/churn.csv"}, "outputs": {"train": "dataset", "test": "dataset"}},
        {"name": "train", "kind": "training", "command": "python train.py {{inputs.train}} {{outputs.model}}",
         "inputs": {"train": "prep.outputs.train"}, "outputs": {"model": "model"}},
        {"name": "evaluate", "command": "python ev.py {{inputs.model}} {{inputs.test}} {{outputs.metrics}}",
         "inputs": {"model": "train.outputs.model", "test": "prep.outputs.test"}, "outputs": {"metrics": "metrics"}},
        {"name": "gate", "condition": 'evaluate.outputs.metrics["auc"] >= params.min_auc', "then": ["register"],
         "else": ["too-low"]},
        {"name": "register", "register_model": {"model": "train.outputs.model", "group": "churn", "image": SERVING,
                                                "metrics": "evaluate.outputs.metrics", "approval": "approved",
                                                "tags": {"team": "risk"}}},
        {"name": "too-low", "fail": "AUC below {{params.min_auc}}"},
    ], parameters={"min_auc": {"type": "float", "default": 0.8}})


def test_a_register_step_is_a_runtime_task_reading_the_model_artifact() -> None:
    ir = VertexAdapter(SETTINGS).compile(build([REG_TRAIN, REG_EVAL, reg(metrics="evaluate.outputs.metrics")])).document
    assert_valid(ir)
    task = tasks(ir)["register"]
    assert task["inputs"]["artifacts"] == {
        "model": {"taskOutputArtifact": {"producerTask": "train", "outputArtifactKey": "model"}},
        "metrics": {"taskOutputArtifact": {"producerTask": "evaluate", "outputArtifactKey": "metrics"}}}
    assert task["dependentTasks"] == ["evaluate", "train"] and task["cachingOptions"] == {}
    assert ir["components"]["comp-register"]["inputDefinitions"]["artifacts"] == {
        "model": {"artifactType": {"schemaTitle": "system.Model", "schemaVersion": "0.0.1"}},
        "metrics": {"artifactType": {"schemaTitle": "system.Metrics", "schemaVersion": "0.0.1"}}}
    c = container(ir, "register")
    assert c["image"] == "python:3.11-slim"  # defaults.image: it must have cloudml[gcp]
    assert argv(ir, "register") == [
        "python3", "-m", "cloudml.runtime", "--register-model", "vertex", "--group", "churn",
        "--model-uri", "{{$.inputs.artifacts['model'].uri}}", "--image", SERVING, "--approval", "pending",
        "--metrics", "{{$.inputs.artifacts['metrics'].path}}",
        "--project", "{{$.pipeline_google_cloud_project_id}}", "--location", "{{$.pipeline_google_cloud_location}}",
        "--run", "{{$.pipeline_job_resource_name}}"]
    assert "/cloudml/code/" not in json.dumps(ir)  # no code bundle: the image has cloudml


def test_a_register_step_inside_a_branch_reads_relayed_artifacts() -> None:
    ir = VertexAdapter(SETTINGS).compile(gated_reference()).document
    assert_valid(ir)
    branch = tasks(ir, "comp-condition-gate-then")["register"]
    assert branch["inputs"]["artifacts"] == {"model": {"componentInputArtifact": "pipelinechannel--train-model"},
                                             "metrics": {"componentInputArtifact": "pipelinechannel--evaluate-metrics"}}
    gate = tasks(ir)["condition-gate-then"]
    assert gate["dependentTasks"] == ["evaluate", "train"]
    assert set(gate["inputs"]["artifacts"]) == {"pipelinechannel--train-model", "pipelinechannel--evaluate-metrics"}
    args = argv(ir, "register")
    assert args[args.index("--approval") + 1] == "approved"
    assert args[args.index("--tags") + 1] == '{"team": "risk"}'


@pytest.mark.parametrize(("change", "error", "match"), [
    ({"description": "v2"}, UnsupportedFeatureError, "description"),
    ({"image": None}, CompileError, "serving image"),
])
def test_what_a_register_task_cannot_do_is_refused(change: dict[str, Any], error: type[Exception], match: str) -> None:
    step = reg(**change)
    step["register_model"] = {k: v for k, v in step["register_model"].items() if v is not None}
    with pytest.raises(error, match=match):
        compile_(build([REG_TRAIN, step]))


def test_a_register_framework_picks_the_prebuilt_serving_image() -> None:
    step = reg(image=None, framework="sklearn==1.5")
    step["register_model"] = {k: v for k, v in step["register_model"].items() if v is not None}
    ir = compile_(build([REG_TRAIN, step]))
    args = argv(ir, "register")
    assert args[args.index("--image") + 1] == "us-docker.pkg.dev/vertex-ai/prediction/sklearn-cpu.1-5:latest"
    step["register_model"]["framework"] = "sklearn==1.1"
    with pytest.raises(CompileError, match=r"no prebuilt sklearn 1\.1 prediction image; available: 1\.6"):
        compile_(build([REG_TRAIN, step]))


def test_the_prediction_image_table_matches_the_sdk() -> None:
    """Every entry is what aiplatform's own helper names for that framework and version."""
    helpers = pytest.importorskip("google.cloud.aiplatform.helpers")
    from cloudml.adapters.vertex.images import PREDICTION_IMAGES, prediction_image

    sdk_name = {"sklearn": "sklearn", "xgboost": "xgboost", "tensorflow": "tensorflow", "pytorch": "pytorch"}
    for framework, (_, versions) in PREDICTION_IMAGES.items():
        for version in versions:
            ours = prediction_image(f"{framework}=={version}", "s")
            assert ours == helpers.get_prebuilt_prediction_container_uri(sdk_name[framework], version, "us-central1")


def test_a_register_task_needs_an_image_with_cloudml_for_the_runtime() -> None:
    p = build([{**REG_TRAIN, "image": "python:3.11-slim"}, reg()], defaults={})
    with pytest.raises(CompileError, match=r"no image with cloudml\[gcp\]") as e:
        compile_(p)
    assert e.value.hint and "backend_options.vertex.runtime_image" in e.value.hint
    p = build([{**REG_TRAIN, "image": "python:3.11-slim"}, reg()], defaults={},
              backend_options={"vertex": {"runtime_image": "europe-docker.pkg.dev/p/ml/cloudml-gcp:1"}})
    assert container(compile_(p), "register")["image"] == "europe-docker.pkg.dev/p/ml/cloudml-gcp:1"


def test_the_validator_refuses_unknown_run_time_placeholders() -> None:
    ir = compile_(build([REG_TRAIN, reg()]))
    container(ir, "register")["args"].append("{{$.pipeline_google_cloud_projectid}}")
    assert validate_ir(ir) == ["comp-register: unknown run-time placeholder {{$.pipeline_google_cloud_projectid}}"]


def test_the_compiled_register_task_registers_through_the_real_sdk(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The executor's argv, placeholders resolved as Vertex would, run through cloudml.runtime in this process
    against the Vertex fake (real google-cloud-aiplatform, REST on 127.0.0.1); then read back as a registry."""
    from google.auth.credentials import AnonymousCredentials

    import cloudml.runtime
    from cloudml.adapters.vertex.client import VertexClient
    from cloudml.adapters.vertex.registry import VertexRegistry
    from tests.fakes.vertex import VertexFake

    ir = VertexAdapter(SETTINGS).compile(gated_reference()).document
    (tmp_path / "metrics.json").write_text(json.dumps({"auc": 0.91, "loss": 0.2}))
    run = "projects/test-proj/locations/us-central1/pipelineJobs/reference-1"
    values = {"{{$.inputs.artifacts['model'].uri}}": "gs://b/root/train/model",
              "{{$.inputs.artifacts['metrics'].path}}": str(tmp_path / "metrics.json"),
              "{{$.pipeline_google_cloud_project_id}}": "test-proj",
              "{{$.pipeline_google_cloud_location}}": "us-central1", "{{$.pipeline_job_resource_name}}": run}
    args = [values.get(a, a) for a in argv(ir, "register")]
    assert args[:3] == ["python3", "-m", "cloudml.runtime"]
    for key, value in {"GCE_METADATA_HOST": "127.0.0.1:9", "GCE_METADATA_IP": "127.0.0.1:9"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    with VertexFake("test-proj", "us-central1") as fake:
        monkeypatch.setenv("CLOUDML_VERTEX_API_ENDPOINT", fake.url)
        assert cloudml.runtime.main(args[3:]) == 0
        assert cloudml.runtime.main(args[3:]) == 0  # a second run is the next version
        registry = VertexRegistry(VertexClient(VertexSettings(project="test-proj", location="us-central1",
                                                              api_endpoint=fake.url),
                                               credentials=AnonymousCredentials()))
        versions = registry.versions("churn")
    assert [v.version for v in versions] == [2, 1]
    v2 = versions[0]
    assert (v2.uri, v2.approval, v2.metrics, v2.run_id) == ("gs://b/root/train/model", "approved",
                                                            {"auc": 0.91, "loss": 0.2}, run)
    assert v2.tags["team"] == "risk"


# -- parameter inputs (input.parameter): a gs:// URI in a run's parameter, mapped to /gcs/ at run time ---

PARAM_INPUT = [{"name": "w", "command": "echo --data={{inputs.raw}} n={{params.n}}", "inputs": {"raw": "{{params.uri}}"}}]
PARAM_TOP: dict[str, Any] = {"parameters": {"uri": {"type": "string", "default": "gs://b/data/x.csv"},
                                            "n": {"type": "int", "default": 2}}}


def _materialise(a: list[str], values: dict[str, str]) -> list[str]:
    """What the KFP launcher does before starting the container: resolve input-parameter placeholders."""
    out = []
    for x in a:
        for k, v in values.items():
            x = x.replace(f"{{{{$.inputs.parameters['{k}']}}}}", v)
        out.append(x)
    return [sys.executable if x == "python3" else x for x in out]


def test_a_parameter_input_compiles_to_a_valid_ir_that_maps_the_uri_in_the_container() -> None:
    ir = compile_(build(PARAM_INPUT, **PARAM_TOP), SETTINGS)
    assert_valid(ir)
    assert validate_ir(ir) == []
    assert ir["components"]["comp-w"]["inputDefinitions"]["parameters"]["uri"] == {"parameterType": "STRING"}
    assert tasks(ir)["w"]["inputs"]["parameters"]["uri"] == {"componentInputParameter": "uri"}
    assert ir["root"]["inputDefinitions"]["parameters"]["uri"]["defaultValue"] == "gs://b/data/x.csv"
    a = argv(ir, "w")
    assert a[:3] == ["python3", "-c", GCS_MAPPER]
    assert a[3:7] == ["1", "uri", input_token("raw"), "{{$.inputs.parameters['uri']}}"]
    assert a[7:] == ["echo", f"--data={input_token('raw')}", "n={{$.inputs.parameters['n']}}"]


def test_the_mapper_really_runs_a_gs_value_as_its_fuse_path_under_the_timeout_wrapper() -> None:
    steps = [{**PARAM_INPUT[0], "timeout": "30s"}]
    ir = compile_(build(steps, **PARAM_TOP), SETTINGS)
    assert wrapped(ir, "w")  # WRAPPER (timeout) runs GCS_MAPPER, which runs the command
    cmd = _materialise(argv(ir, "w"), {"uri": "gs://my-bucket/runs/7/data.csv", "n": "3"})
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "--data=/gcs/my-bucket/runs/7/data.csv n=3"
    bad = subprocess.run(_materialise(argv(ir, "w"), {"uri": "s3://b/x", "n": "3"}), capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 2
    assert "parameter uri must hold a gs:// URI" in bad.stderr and "'s3://b/x'" in bad.stderr
    assert bad.stdout == ""  # the step's command never ran


def test_a_parameter_input_inside_a_condition_branch_is_plumbed_into_the_sub_dag() -> None:
    steps = [{**EV}, {"name": "g", "condition": 'ev.outputs.m["auc"] > 0.5', "then": ["w"]}, PARAM_INPUT[0]]
    ir = compile_(build(steps, **PARAM_TOP), SETTINGS)
    assert_valid(ir)
    branch = ir["components"]["comp-condition-g-then"]
    assert "pipelinechannel--uri" in branch["inputDefinitions"]["parameters"]
    assert branch["dag"]["tasks"]["w"]["inputs"]["parameters"]["uri"] == {"componentInputParameter": "pipelinechannel--uri"}


def test_a_parameter_input_without_a_default_compiles_and_a_non_gs_default_is_refused_naming_it() -> None:
    top = {"parameters": {"uri": {"type": "string"}, "n": {"type": "int", "default": 2}}}
    assert_valid(compile_(build(PARAM_INPUT, **top), SETTINGS))
    for default in ("s3://b/x", "/data/x", "gs://"):
        top = {"parameters": {"uri": {"type": "string", "default": default}, "n": {"type": "int", "default": 2}}}
        with pytest.raises(UnsupportedFeatureError) as info:
            VertexAdapter(SETTINGS).compile(build(PARAM_INPUT, **top))
        assert (info.value.adapter, info.value.step, info.value.feature) == ("vertex", "w", "input.parameter")
        assert "parameter 'uri'" in str(info.value) and repr(default) in str(info.value)


def test_run_values_of_parameter_inputs_must_be_gs_uris() -> None:
    from cloudml.adapters.vertex.inputs import check_input_uris
    from cloudml.errors import SpecError

    p = build(PARAM_INPUT, **PARAM_TOP)
    check_input_uris(p, {"uri": "gs://b/other/", "n": 1})
    with pytest.raises(SpecError) as info:
        check_input_uris(p, {"uri": "https://example.com/x", "n": 1})
    assert "parameter 'uri' (input 'raw' of step 'w')" in str(info.value)


def test_the_conformance_parameter_input_case_compiles_for_gs() -> None:
    from tests.conformance.cases import parameter_input_case

    assert_valid(VertexAdapter(SETTINGS).compile(parameter_input_case("gs")).document)


# -- schedules: what a Vertex cron can say is compiled; the rest is refused by name -------------------

@pytest.mark.parametrize(("cron", "zone", "expected"), [
    ("0 3 * * *", "UTC", "TZ=UTC 0 3 * * *"),
    ("30 2 * * MON-FRI", "Europe/Berlin", "TZ=Europe/Berlin 30 2 * * 1,2,3,4,5"),
    ("*/15 8-10 * * *", "America/Chicago", "TZ=America/Chicago 0,15,30,45 8,9,10 * * *"),
    ("0 0 1,15 JAN,JUL *", "Asia/Tokyo", "TZ=Asia/Tokyo 0 0 1,15 1,7 *"),
    ("0 0 * * 0,7", "UTC", "TZ=UTC 0 0 * * 0"),
    ("0 0 * * 0-6", "UTC", "TZ=UTC 0 0 * * *"),
    ("0 3 1-31 * MON", "UTC", "TZ=UTC 0 3 * * *"),  # cron's either-rule with every day of the month: every day
])
def test_vertex_cron(cron: str, zone: str, expected: str) -> None:
    from cloudml.adapters.vertex.schedule import vertex_cron

    assert vertex_cron(cron, zone) == expected


@pytest.mark.parametrize("cron", ["0 3 1 * MON", "0 3 */2 * MON-FRI", "0 3 13 * FRI"])
def test_a_day_of_month_and_a_day_of_week_together_are_refused_at_compile_time(cron: str) -> None:
    p = build([{"name": "w", "command": "w"}], schedule={"cron": cron})
    with pytest.raises(UnsupportedFeatureError) as info:
        VertexAdapter(SETTINGS).compile(p)
    assert (info.value.adapter, info.value.step, info.value.feature) == ("vertex", None, "schedule")
    assert cron in str(info.value) and "day of the week" in str(info.value)


def test_vertex_cron_fires_when_the_spec_cron_does() -> None:
    """The translation keeps the meaning: the same fire times under cloudml's own cron semantics."""
    from datetime import datetime, timezone

    from cloudml.adapters.vertex.schedule import vertex_cron
    from cloudml.cron import next_fire_times

    start = datetime(2026, 11, 27, 12, tzinfo=timezone.utc)
    for cron in ["5 4 * * SUN", "*/20 */6 * * *", "0 0 29 2 *", "0 12 1-7 * *", "15 10 * JUN-AUG 1-5",
                 "0 3 1-31 * MON", "0 9 * * 0-7"]:
        text = vertex_cron(cron, "Europe/Berlin").split(" ", 1)[1]
        assert next_fire_times(text, start, 12, "Europe/Berlin") == next_fire_times(cron, start, 12, "Europe/Berlin"), cron


def test_a_parameter_input_of_a_code_folder_step_really_runs_through_launcher_and_mapper(tmp_path: Path) -> None:
    """LAUNCHER (unpacks the bundle, here a local file standing in for /gcs/...) -> GCS_MAPPER -> the command."""
    from cloudml.adapters.vertex.bundles import build_bundle

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "show.py").write_text("import sys\nprint(' '.join(sys.argv[1:]))\n")
    steps = [{"name": "w", "command": "python3 show.py {{inputs.raw}}", "code": "src", "inputs": {"raw": "{{params.uri}}"}}]
    p = build(steps, parameters={"uri": {"type": "string", "default": "gs://b/d/"}})
    ir = compile_ir(p, SETTINGS, tmp_path)
    assert_valid(ir)
    a = argv(ir, "w")
    assert a[:3] == ["python3", "-c", LAUNCHER] and a[5:8] == ["python3", "-c", GCS_MAPPER]
    bundle = tmp_path / "bundle.tar.gz"
    bundle.write_bytes(build_bundle(tmp_path / "src"))
    cmd = [str(bundle) if x.startswith("gs://") and x.endswith(".tar.gz") else x
           for x in _materialise(a, {"uri": "gs://b/runs/2026-11-27/"})]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "/gcs/b/runs/2026-11-27/"
