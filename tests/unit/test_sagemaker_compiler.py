"""The SageMaker compiler, mapping by mapping: what each neutral construct becomes, and what is refused.

Also the two pieces of cloudml.runtime the compiled definitions rely on inside SageMaker containers:
the ``--retry N --backoff S -- CMD`` wrapper and unpacking of ``model.tar.gz`` inputs.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from cloudml.adapters.sagemaker import SageMakerAdapter
from cloudml.adapters.sagemaker.compiler import (
    MAX_BRANCH_STEPS,
    NO_CODE,
    ROLE_PARAMETER,
    ROOT_PARAMETER,
    RUNTIME_FILE,
    code_digest,
    compile_definition,
)
from cloudml.adapters.sagemaker.resources import FRAMEWORK_VERSIONS, framework_image, instance_type
from cloudml.adapters.sagemaker.validate import validate_definition
from cloudml.config import SageMakerSettings
from cloudml.errors import CompileError, UnsupportedFeatureError
from cloudml.runtime import unpack_model_archives
from cloudml.spec.pipeline import Pipeline
from cloudml.spec.steps import Resources
from cloudml.spec.validate import validate_data
from tests.conformance.cases import reference_pipeline

ROLE = "arn:aws:iam::123456789012:role/cloudml-test"
SETTINGS = SageMakerSettings(region="us-east-1", bucket="cloudml-test", role_arn=ROLE)
ROOT = "s3://cloudml-test/cloudml/t"
RUN = {"Get": "Execution.PipelineExecutionId"}
PROC = "/opt/ml/processing"


def build(steps: list[dict[str, Any]], **top: Any) -> Pipeline:
    doc = {"apiVersion": "cloudml/v1", "kind": "Pipeline", "name": "t", "defaults": {"image": "python:3.11-slim"},
           "steps": steps, **top}
    p = validate_data(doc)
    assert isinstance(p, Pipeline)
    return p


def compile_(p: Pipeline, base: Path | str = ".", settings: SageMakerSettings = SETTINGS) -> dict[str, Any]:
    return compile_definition(p, settings, base)


def steps_of(d: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}

    def walk(steps: list[dict[str, Any]]) -> None:
        for s in steps:
            out[s["Name"]] = s
            if s["Type"] == "Condition":
                walk(s["Arguments"]["IfSteps"])
                walk(s["Arguments"]["ElseSteps"])

    walk(d["Steps"])
    return out


def one(step: dict[str, Any], settings: SageMakerSettings = SETTINGS, base: Path | str = ".",
        **top: Any) -> dict[str, Any]:
    """Compile a one-step pipeline and return that step."""
    return compile_(build([step], **top), base, settings)["Steps"][0]


def join(*values: Any) -> dict[str, Any]:
    return {"Std:Join": {"On": "", "Values": list(values)}}


# -- parameters ---------------------------------------------------------------------------------------

def test_parameters_keep_their_types_and_defaults() -> None:
    p = build([{"name": "a", "command": "echo {{params.s}} {{params.i}} {{params.f}} {{params.b}} {{params.r}}"}],
              parameters={"s": {"type": "string", "default": "x", "description": "a string"},
                          "i": {"type": "int", "default": 200, "min": 10}, "f": {"type": "float", "default": 1},
                          "b": {"type": "bool", "default": False}, "r": {"type": "string"}})
    params = compile_(p)["Parameters"]
    assert params == [
        {"Name": "s", "Type": "String", "DefaultValue": "x"},
        {"Name": "i", "Type": "Integer", "DefaultValue": 200},
        {"Name": "f", "Type": "Float", "DefaultValue": 1.0},
        {"Name": "b", "Type": "Boolean", "DefaultValue": False},
        {"Name": "r", "Type": "String"},  # no default: required when the pipeline starts
    ]
    assert isinstance(params[2]["DefaultValue"], float)


def test_role_and_bucket_unset_become_pipeline_parameters() -> None:
    d = compile_(build([{"name": "a", "command": "x {{outputs.o}}", "outputs": {"o": "dataset"}}]),
                 settings=SageMakerSettings(region="us-east-1"))
    assert d["Parameters"] == [{"Name": ROLE_PARAMETER, "Type": "String"}, {"Name": ROOT_PARAMETER, "Type": "String"}]
    args = d["Steps"][0]["Arguments"]
    assert args["RoleArn"] == {"Get": "Parameters.CloudmlRoleArn"}
    assert args["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"] == join(
        {"Get": "Parameters.CloudmlArtifactRoot"}, "/", RUN, "/a/o")


def test_role_and_bucket_set_add_no_parameters() -> None:
    d = compile_(build([{"name": "a", "command": "x"}]))
    assert d["Parameters"] == [] and d["Steps"][0]["Arguments"]["RoleArn"] == ROLE
    only_role = compile_(build([{"name": "a", "command": "x"}]), settings=SageMakerSettings(role_arn=ROLE))
    assert [p["Name"] for p in only_role["Parameters"]] == [ROOT_PARAMETER]


@pytest.mark.parametrize(("prefix", "root"), [
    ("cloudml", "s3://cloudml-test/cloudml/t/"), ("", "s3://cloudml-test/t/"), ("/team/ml/", "s3://cloudml-test/team/ml/t/"),
])
def test_outputs_live_under_bucket_prefix_pipeline_and_execution_id(prefix: str, root: str) -> None:
    s = one({"name": "a", "command": "x {{outputs.o}}", "outputs": {"o": "dataset"}},
            SageMakerSettings(bucket="cloudml-test", role_arn=ROLE, prefix=prefix))
    out = s["Arguments"]["ProcessingOutputConfig"]["Outputs"][0]
    assert out == {"OutputName": "o", "S3Output": {"S3Uri": join(root, RUN, "/a/o"),
                                                   "LocalPath": f"{PROC}/output/o", "S3UploadMode": "EndOfJob"}}


# -- placeholders -----------------------------------------------------------------------------------

def test_placeholders_become_container_paths_gets_and_joins() -> None:
    p = build([
        {"name": "prep", "command": "python p.py {{outputs.data}} {{outputs.m}}",
         "outputs": {"data": "dataset", "m": "metrics"}},
        {"name": "use", "command": ["python", "u.py", "--in={{inputs.data}}", "--n", "{{params.n}}",
                                    "--tag=v{{params.n}}-{{params.tag}}"], "args": ["--out", "{{outputs.o}}"],
         "inputs": {"data": "prep.outputs.data"}, "outputs": {"o": "generic"},
         "env": {"DATA": "{{inputs.data}}", "N": "{{params.n}}", "PLAIN": "x"}},
    ], parameters={"n": {"type": "int", "default": 3}, "tag": {"type": "string", "default": "a"}})
    d = compile_(p)
    prep, use = steps_of(d)["prep"]["Arguments"], steps_of(d)["use"]["Arguments"]
    assert prep["AppSpecification"]["ContainerEntrypoint"] == [
        "python", "p.py", f"{PROC}/output/data", f"{PROC}/output/m/metrics.json"]
    assert use["AppSpecification"]["ContainerEntrypoint"] == [
        "python", "u.py", f"--in={PROC}/input/data", "--n", {"Get": "Parameters.n"},
        join("--tag=v", {"Get": "Parameters.n"}, "-", {"Get": "Parameters.tag"}), "--out", f"{PROC}/output/o"]
    own = {k: v for k, v in use["Environment"].items() if not k.startswith("CLOUDML_")}
    assert own == {"DATA": f"{PROC}/input/data", "N": {"Get": "Parameters.n"}, "PLAIN": "x"}


def test_a_command_string_is_split_like_a_shell() -> None:
    s = one({"name": "a", "command": "python -c 'print(1, 2)' --x \"a b\""})
    assert s["Arguments"]["AppSpecification"]["ContainerEntrypoint"] == ["python", "-c", "print(1, 2)", "--x", "a b"]


def test_processing_inputs_from_steps_parameters_and_s3() -> None:
    p = build([
        {"name": "prep", "command": "x {{outputs.d}}", "outputs": {"d": "dataset"}},
        {"name": "train", "kind": "training", "command": "t {{outputs.model}}", "outputs": {"model": "model"}},
        {"name": "use", "command": "u", "inputs": {"d": "prep.outputs.d", "model": "train.outputs.model",
                                                   "p": "{{params.uri}}", "raw": "s3://data/raw/"}},
    ], parameters={"uri": {"type": "string", "default": "s3://b/k"}})
    inputs = steps_of(compile_(p))["use"]["Arguments"]["ProcessingInputs"]
    assert [i["InputName"] for i in inputs] == ["d", "model", "p", "raw"]
    assert [i["S3Input"]["S3Uri"] for i in inputs] == [
        {"Get": "Steps.prep.ProcessingOutputConfig.Outputs['d'].S3Output.S3Uri"},
        {"Get": "Steps.train.ModelArtifacts.S3ModelArtifacts"}, {"Get": "Parameters.uri"}, "s3://data/raw/"]
    for i in inputs:
        assert i["S3Input"]["LocalPath"] == f"{PROC}/input/{i['InputName']}"
        assert (i["S3Input"]["S3DataType"], i["S3Input"]["S3InputMode"]) == ("S3Prefix", "File")


def test_a_step_without_inputs_outputs_or_timeout_omits_those_members() -> None:
    args = one({"name": "a", "command": "x"})["Arguments"]
    assert set(args) == {"ProcessingResources", "AppSpecification", "RoleArn", "Environment"}
    assert args["Environment"] == {"CLOUDML_STEP": "a", "CLOUDML_BACKEND": "sagemaker"}
    assert args["ProcessingResources"] == {"ClusterConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                                                             "VolumeSizeInGB": 30}}


def test_a_metrics_input_is_the_json_file_path() -> None:
    p = build([{"name": "ev", "command": "e {{outputs.m}}", "outputs": {"m": "metrics"}},
               {"name": "use", "command": "u {{inputs.m}}", "inputs": {"m": "ev.outputs.m"}}])
    argv = steps_of(compile_(p))["use"]["Arguments"]["AppSpecification"]["ContainerEntrypoint"]
    assert argv == ["u", f"{PROC}/input/m/metrics.json"]


def test_an_input_named_code_does_not_collide_with_the_code_folder(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    p = build([{"name": "a", "command": "x {{outputs.o}}", "outputs": {"o": "dataset"}},
               {"name": "b", "python": "m:f", "code": "src", "inputs": {"code": "a.outputs.o"}}])
    inputs = steps_of(compile_(p, tmp_path))["b"]["Arguments"]["ProcessingInputs"]
    names = [i["InputName"] for i in inputs]
    paths = [i["S3Input"]["LocalPath"] for i in inputs]
    assert len(set(names)) == len(names) and len(set(paths)) == len(paths)


def test_the_runtime_contract_environment_is_set() -> None:
    p = build([{"name": "a", "command": "x", "outputs": {"data": "dataset"}},
               {"name": "b", "command": "y", "inputs": {"in": "a.outputs.data"}}])
    env_a = steps_of(compile_(p))["a"]["Arguments"].get("Environment", {})
    env_b = steps_of(compile_(p))["b"]["Arguments"].get("Environment", {})
    assert env_a.get("CLOUDML_OUTPUT_DATA") == f"{PROC}/output/data"
    assert env_b.get("CLOUDML_INPUT_IN") == f"{PROC}/input/in"
    assert env_a.get("CLOUDML_STEP") == "a" and env_a.get("CLOUDML_BACKEND") == "sagemaker"


# -- training ---------------------------------------------------------------------------------------

def test_training_channels_model_dir_hyperparameters_and_stopping_condition(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    p = build([
        {"name": "prep", "command": "x {{outputs.train}}", "outputs": {"train": "dataset"}},
        {"name": "fit", "kind": "training", "python": "train:fit", "code": "src",
         "inputs": {"train": "prep.outputs.train"}, "outputs": {"model": "model"},
         "params": {"lr": "{{params.lr}}", "depth": 5, "ratio": 0.5, "early": True, "name": "xgb-{{params.lr}}"},
         "env": {"DATA": "{{inputs.train}}"}},
        {"name": "cmd", "kind": "training", "command": "python t.py {{inputs.d}} {{outputs.model}}", "timeout": "90m",
         "inputs": {"d": "prep.outputs.train"}, "outputs": {"model": "model"}},
    ], parameters={"lr": {"type": "float", "default": 0.1}})
    d = compile_(p, tmp_path)
    fit, cmd = steps_of(d)["fit"], steps_of(d)["cmd"]
    assert fit["Type"] == "Training"
    args = fit["Arguments"]
    assert [c["ChannelName"] for c in args["InputDataConfig"]] == ["train", "cloudml_code"]
    assert args["InputDataConfig"][0]["DataSource"]["S3DataSource"] == {
        "S3DataType": "S3Prefix", "S3DataDistributionType": "FullyReplicated",
        "S3Uri": {"Get": "Steps.prep.ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri"}}
    assert args["HyperParameters"] == {"lr": {"Get": "Parameters.lr"}, "depth": "5", "ratio": "0.5",
                                       "early": "true", "name": join("xgb-", {"Get": "Parameters.lr"})}
    assert all(isinstance(v, (str, dict)) for v in args["HyperParameters"].values())
    assert args["OutputDataConfig"] == {"S3OutputPath": join(f"{ROOT}/", RUN, "/fit")}
    assert args["StoppingCondition"] == {"MaxRuntimeInSeconds": 86400}  # SageMaker's default of one day
    assert {k: v for k, v in args["Environment"].items() if not k.startswith("CLOUDML_")} == {
        "DATA": "/opt/ml/input/data/train"}
    argv = args["AlgorithmSpecification"]["ContainerEntrypoint"]
    assert argv[:6] == ["python3", f"/opt/ml/input/data/cloudml_code/{RUNTIME_FILE}", "--function", "train:fit", "--code",
                        "/opt/ml/input/data/cloudml_code"]
    assert "--input=train=/opt/ml/input/data/train" in argv and "--output=model=/opt/ml/model" in argv
    assert args["AlgorithmSpecification"]["TrainingInputMode"] == "File"
    cmd_args = cmd["Arguments"]
    assert cmd_args["AlgorithmSpecification"]["ContainerEntrypoint"] == [
        "python", "t.py", "/opt/ml/input/data/d", "/opt/ml/model"]
    assert cmd_args["StoppingCondition"] == {"MaxRuntimeInSeconds": 5400}
    assert "HyperParameters" not in cmd_args and [c["ChannelName"] for c in cmd_args["InputDataConfig"]] == ["d"]


def test_processing_timeout_is_a_stopping_condition_rounded_up() -> None:
    assert one({"name": "a", "command": "x", "timeout": "90.5s"})["Arguments"]["StoppingCondition"] == {
        "MaxRuntimeInSeconds": 91}


# -- resources ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("resources", "expected"), [
    (None, "ml.m5.large"),
    ({"instance_count": 3}, "ml.m5.large"),
    ({"cpu": 0.5}, "ml.m5.large"),
    ({"cpu": 2, "memory": "8Gi"}, "ml.m5.large"),
    ({"cpu": 3}, "ml.m5.xlarge"),
    ({"cpu": 2, "memory": "12Gi"}, "ml.r5.large"),
    ({"memory": "20Gi"}, "ml.r5.xlarge"),
    ({"cpu": 16, "memory": "64Gi"}, "ml.m5.4xlarge"),
    ({"cpu": 48, "memory": "300Gi"}, "ml.r5.12xlarge"),
    ({"gpu": 1}, "ml.g4dn.xlarge"),
    ({"gpu": 1, "gpu_type": "nvidia-a10g"}, "ml.g5.xlarge"),
    ({"gpu": 1, "cpu": 8}, "ml.p3.2xlarge"),
    ({"gpu": 4, "gpu_type": "nvidia-v100"}, "ml.p3.8xlarge"),
    ({"gpu": 2, "gpu_type": "nvidia-a100"}, "ml.p4d.24xlarge"),
])
def test_instance_type_is_the_smallest_that_fits(resources: dict[str, Any] | None, expected: str) -> None:
    res = Resources(**resources) if resources is not None else None
    assert instance_type(res, None) == expected
    step: dict[str, Any] = {"name": "a", "command": "x"}
    if resources is not None:
        step["resources"] = resources
    cluster = one(step)["Arguments"]["ProcessingResources"]["ClusterConfig"]
    assert cluster["InstanceType"] == expected
    assert cluster["InstanceCount"] == (resources or {}).get("instance_count", 1)


@pytest.mark.parametrize("resources", [{"cpu": 200}, {"memory": "2Ti"}, {"gpu": 16}, {"gpu": 1, "gpu_type": "tpu-v4"}])
def test_no_fitting_instance_type_is_a_compile_error(resources: dict[str, Any]) -> None:
    with pytest.raises(CompileError, match="no SageMaker instance type") as info:
        one({"name": "a", "command": "x", "resources": resources})
    assert "resources.instance_type.sagemaker" in (info.value.hint or "")


def test_instance_type_overrides_and_defaults() -> None:
    # resources.instance_type.sagemaker wins over everything
    s = one({"name": "a", "command": "x", "resources": {"cpu": 64, "instance_type": {"sagemaker": "ml.c5.9xlarge"}},
             "backend_options": {"sagemaker": {"instance_type": "ml.c5.large"}}})
    assert s["Arguments"]["ProcessingResources"]["ClusterConfig"]["InstanceType"] == "ml.c5.9xlarge"
    # backend_options.sagemaker.instance_type is the default when no resources are given: step, then pipeline
    p = build([{"name": "a", "command": "x", "backend_options": {"sagemaker": {"instance_type": "ml.c5.xlarge"}}},
               {"name": "b", "command": "x"},
               {"name": "c", "kind": "training", "command": "x {{outputs.model}}", "outputs": {"model": "model"}},
               {"name": "d", "command": "x", "resources": {"cpu": 4}}],
              backend_options={"sagemaker": {"instance_type": "ml.c5.2xlarge", "volume_size_gb": 50}})
    d = steps_of(compile_(p))
    assert d["a"]["Arguments"]["ProcessingResources"]["ClusterConfig"]["InstanceType"] == "ml.c5.xlarge"
    assert d["b"]["Arguments"]["ProcessingResources"]["ClusterConfig"]["InstanceType"] == "ml.c5.2xlarge"
    assert d["c"]["Arguments"]["ResourceConfig"]["InstanceType"] == "ml.c5.2xlarge"
    assert d["d"]["Arguments"]["ProcessingResources"]["ClusterConfig"]["InstanceType"] == "ml.m5.xlarge"
    assert d["b"]["Arguments"]["ProcessingResources"]["ClusterConfig"]["VolumeSizeInGB"] == 50


def test_disk_becomes_the_volume_size_in_gib_rounded_up() -> None:
    s = one({"name": "a", "command": "x", "resources": {"disk": "100Gi"}})
    assert s["Arguments"]["ProcessingResources"]["ClusterConfig"]["VolumeSizeInGB"] == 100
    s = one({"name": "a", "command": "x", "resources": {"disk": "10G"}})
    assert s["Arguments"]["ProcessingResources"]["ClusterConfig"]["VolumeSizeInGB"] == 10  # 9.31 GiB -> 10


def test_defaults_apply_to_steps() -> None:
    p = build([{"name": "a", "command": "x"}, {"name": "b", "command": "x", "timeout": "5m", "image": "mine:1"}],
              defaults={"image": "base:1", "timeout": "1h", "resources": {"cpu": 4}})
    d = steps_of(compile_(p))
    assert d["a"]["Arguments"]["AppSpecification"]["ImageUri"] == "base:1"
    assert d["a"]["Arguments"]["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}
    assert d["b"]["Arguments"]["StoppingCondition"] == {"MaxRuntimeInSeconds": 300}
    assert d["b"]["Arguments"]["AppSpecification"]["ImageUri"] == "mine:1"
    assert d["a"]["Arguments"]["ProcessingResources"]["ClusterConfig"]["InstanceType"] == "ml.m5.xlarge"


# -- framework images -----------------------------------------------------------------------------

@pytest.mark.parametrize(("framework", "region", "expected"), [
    ("sklearn==1.2", "us-east-1", "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"),
    ("sklearn==1.2.2", "eu-west-1", "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"),
    ("sklearn==0.23", "us-west-2", "246618743249.dkr.ecr.us-west-2.amazonaws.com/sagemaker-scikit-learn:0.23-1-cpu-py3"),
    ("sklearn", "us-east-1", "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"),
    ("xgboost==1.7", "us-east-1", "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"),
    ("xgboost==1.5", "ap-southeast-2", "783357654285.dkr.ecr.ap-southeast-2.amazonaws.com/sagemaker-xgboost:1.5-1"),
    ("xgboost", "eu-central-1", "492215442770.dkr.ecr.eu-central-1.amazonaws.com/sagemaker-xgboost:1.7-1"),
])
def test_framework_images(framework: str, region: str, expected: str) -> None:
    assert framework_image(framework, region, "training") == expected
    s = one({"name": "a", "command": "x", "image": None, "framework": framework},
            SageMakerSettings(region=region, bucket="cloudml-test", role_arn=ROLE), defaults={})
    assert s["Arguments"]["AppSpecification"]["ImageUri"] == expected


def test_an_explicit_image_wins_over_the_framework() -> None:
    s = one({"name": "a", "command": "x", "image": "mine:2", "framework": "sklearn==9.9"})
    assert s["Arguments"]["AppSpecification"]["ImageUri"] == "mine:2"


def test_an_unknown_framework_version_lists_the_available_versions() -> None:
    with pytest.raises(CompileError) as info:
        one({"name": "a", "command": "x", "framework": "sklearn==1.5"}, defaults={})
    msg = str(info.value)
    assert "sklearn 1.5" in msg and "available: " + ", ".join(FRAMEWORK_VERSIONS["sklearn"]) in msg
    with pytest.raises(CompileError, match=re.escape("available: 1.5, 1.7")):
        framework_image("xgboost==2.0", "us-east-1", "training")


def test_a_framework_image_needs_a_known_region() -> None:
    with pytest.raises(CompileError, match="needs the AWS region") as info:
        one({"name": "a", "command": "x", "framework": "sklearn==1.2"},
            SageMakerSettings(bucket="cloudml-test", role_arn=ROLE), defaults={})
    assert "CLOUDML_SAGEMAKER_REGION" in (info.value.hint or "")
    with pytest.raises(CompileError, match="no sklearn image registry known for region mars-north-1"):
        framework_image("sklearn==1.2", "mars-north-1", "training")


def test_a_framework_without_a_table_entry_asks_for_an_image() -> None:
    with pytest.raises(CompileError, match="no prebuilt pytorch image") as info:
        one({"name": "a", "command": "x", "framework": "pytorch==2.1"}, defaults={})
    assert "image" in (info.value.hint or "")


def test_a_step_without_image_or_framework_is_a_compile_error() -> None:
    with pytest.raises(CompileError, match="step 'a' has no image or framework"):
        one({"name": "a", "command": "x"}, defaults={})


# -- conditions -------------------------------------------------------------------------------------

_EVAL = {"name": "ev", "command": "e {{outputs.m}}", "outputs": {"m": "metrics"}}


def conditions(text: str) -> list[dict[str, Any]]:
    p = build([_EVAL, {"name": "gate", "condition": text, "then": ["ok"]}, {"name": "ok", "command": "x"}],
              parameters={"min_auc": {"type": "float", "default": 0.8}, "name": {"type": "string", "default": "x"}})
    result: list[dict[str, Any]] = steps_of(compile_(p))["gate"]["Arguments"]["Conditions"]
    return result


def metric(path: str) -> dict[str, Any]:
    return {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.ev.PropertyFiles.m"}, "Path": path}}


@pytest.mark.parametrize(("op", "kind"), [(">=", "GreaterThanOrEqualTo"), (">", "GreaterThan"),
                                          ("<=", "LessThanOrEqualTo"), ("<", "LessThan"), ("==", "Equals")])
def test_binary_comparisons(op: str, kind: str) -> None:
    assert conditions(f'ev.outputs.m["auc"] {op} params.min_auc') == [
        {"Type": kind, "LeftValue": metric("auc"), "RightValue": {"Get": "Parameters.min_auc"}}]


@pytest.mark.parametrize("key", ["a.b", "a[0]"])
def test_a_metric_key_the_dotted_json_path_cannot_address_is_refused(key: str) -> None:
    with pytest.raises(CompileError, match="dotted JsonGet path") as info:
        conditions(f'ev.outputs.m["{key}"] > 0.5')
    assert "rename the key" in str(info.value.hint)


def test_not_equals_is_not_of_equals() -> None:
    assert conditions('ev.outputs.m["label"] != "bad"') == [
        {"Type": "Not", "Condition": {"Type": "Equals", "LeftValue": metric("label"), "RightValue": "bad"}}]


def test_and_is_the_list_of_conditions_with_nested_json_paths() -> None:
    assert conditions('ev.outputs.m["auc"] >= 0.8 and ev.outputs.m["per_class"][0]["f1"] > 0.5') == [
        {"Type": "GreaterThanOrEqualTo", "LeftValue": metric("auc"), "RightValue": 0.8},
        {"Type": "GreaterThan", "LeftValue": metric("per_class.0.f1"), "RightValue": 0.5}]


def test_or_and_not_shapes() -> None:
    a = {"Type": "GreaterThan", "LeftValue": metric("a"), "RightValue": 1}
    b = {"Type": "LessThan", "LeftValue": metric("b"), "RightValue": 2}
    assert conditions('ev.outputs.m["a"] > 1 or ev.outputs.m["b"] < 2') == [{"Type": "Or", "Conditions": [a, b]}]
    assert conditions('not ev.outputs.m["a"] > 1') == [{"Type": "Not", "Condition": a}]
    assert conditions('not (ev.outputs.m["a"] > 1 or ev.outputs.m["b"] < 2)') == [
        {"Type": "Not", "Condition": {"Type": "Or", "Conditions": [a, b]}}]


def test_and_inside_or_is_de_morgan() -> None:
    a = {"Type": "GreaterThan", "LeftValue": metric("a"), "RightValue": 1}
    b = {"Type": "LessThan", "LeftValue": metric("b"), "RightValue": 2}
    c = {"Type": "Equals", "LeftValue": {"Get": "Parameters.name"}, "RightValue": "y"}
    got = conditions('(ev.outputs.m["a"] > 1 and ev.outputs.m["b"] < 2) or params.name == "y"')
    and_ab = {"Type": "Not", "Condition": {"Type": "Or", "Conditions": [{"Type": "Not", "Condition": a},
                                                                        {"Type": "Not", "Condition": b}]}}
    assert got == [{"Type": "Or", "Conditions": [and_ab, c]}]
    # not (a and b) -> not(not(or(not a, not b)))
    assert conditions('not (ev.outputs.m["a"] > 1 and ev.outputs.m["b"] < 2)') == [
        {"Type": "Not", "Condition": and_ab}]


def test_a_gate_declares_the_property_file_it_reads_and_only_that() -> None:
    p = build([{"name": "ev", "command": "e {{outputs.m}} {{outputs.other}}", "outputs": {"m": "metrics",
                                                                                         "other": "metrics"}},
               {"name": "gate", "condition": 'ev.outputs.m["auc"] > 0.5', "then": ["ok"]}, {"name": "ok", "command": "x"}])
    ev = steps_of(compile_(p))["ev"]
    assert ev["PropertyFiles"] == [{"PropertyFileName": "m", "OutputName": "m", "FilePath": "metrics.json"}]
    plain = one({"name": "ev", "command": "e {{outputs.m}}", "outputs": {"m": "metrics"}})
    assert "PropertyFiles" not in plain


def test_guarded_steps_and_their_dependents_are_nested_in_the_branch() -> None:
    p = build([
        _EVAL,
        {"name": "gate", "condition": 'ev.outputs.m["auc"] >= 0.5', "then": ["a"], "else": ["stop"]},
        {"name": "a", "command": "a {{outputs.o}}", "outputs": {"o": "dataset"}},
        {"name": "b", "command": "b {{inputs.i}}", "inputs": {"i": "a.outputs.o"}},
        {"name": "c", "command": "c", "depends_on": ["b"]},
        {"name": "stop", "fail": "low"},
        {"name": "free", "command": "f", "depends_on": ["ev"]},
    ])
    d = compile_(p)
    assert [s["Name"] for s in d["Steps"]] == ["ev", "gate", "free"]
    gate = steps_of(d)["gate"]["Arguments"]
    assert [s["Name"] for s in gate["IfSteps"]] == ["a", "b", "c"]
    assert [s["Name"] for s in gate["ElseSteps"]] == ["stop"]
    assert steps_of(d)["c"]["DependsOn"] == ["b"] and steps_of(d)["free"]["DependsOn"] == ["ev"]


def test_fail_messages_and_depends_on() -> None:
    p = build([{"name": "a", "command": "x"}, {"name": "stop", "fail": "auc below {{params.min}}", "depends_on": ["a"]},
               {"name": "plain", "fail": "no"}], parameters={"min": {"type": "float", "default": 0.5}})
    d = steps_of(compile_(p))
    assert d["stop"] == {"Name": "stop", "Type": "Fail", "DependsOn": ["a"],
                         "Arguments": {"ErrorMessage": join("auc below ", {"Get": "Parameters.min"})}}
    assert d["plain"]["Arguments"] == {"ErrorMessage": "no"}


# -- register ---------------------------------------------------------------------------------------

def test_register_model_arguments() -> None:
    p = build([
        {"name": "train", "kind": "training", "command": "t {{outputs.model}}", "outputs": {"model": "model"}},
        {"name": "ev", "command": "e {{outputs.m}}", "outputs": {"m": "metrics"}, "inputs": {"x": "train.outputs.model"}},
        {"name": "reg", "register_model": {"model": "train.outputs.model", "group": "churn", "metrics": "ev.outputs.m",
                                           "framework": "sklearn==1.2", "approval": "approved",
                                           "description": "nightly", "tags": {"team": "ml"}}, "depends_on": ["ev"]},
        {"name": "plain", "register_model": {"model": "train.outputs.model", "group": "g", "image": "serve:1"}},
    ])
    d = steps_of(compile_(p))
    assert d["reg"] == {"Name": "reg", "Type": "RegisterModel", "DependsOn": ["ev"], "Arguments": {
        "ModelPackageGroupName": "churn", "ModelApprovalStatus": "Approved",
        "InferenceSpecification": {
            "Containers": [{"Image": framework_image("sklearn==1.2", "us-east-1", "inference"),
                            "ModelDataUrl": {"Get": "Steps.train.ModelArtifacts.S3ModelArtifacts"}}],
            "SupportedContentTypes": ["application/json"], "SupportedResponseMIMETypes": ["application/json"]},
        "ModelMetrics": {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": join(
            {"Get": "Steps.ev.ProcessingOutputConfig.Outputs['m'].S3Output.S3Uri"}, "/metrics.json")}}},
        "ModelPackageDescription": "nightly", "CustomerMetadataProperties": {"team": "ml"}}}
    assert d["plain"]["Arguments"]["ModelApprovalStatus"] == "PendingManualApproval"
    assert d["plain"]["Arguments"]["InferenceSpecification"]["Containers"][0]["Image"] == "serve:1"
    assert "ModelMetrics" not in d["plain"]["Arguments"]


def test_register_needs_a_serving_image() -> None:
    p = build([{"name": "train", "kind": "training", "command": "t {{outputs.model}}", "outputs": {"model": "model"}},
               {"name": "reg", "register_model": {"model": "train.outputs.model", "group": "g"}}])
    with pytest.raises(CompileError, match="serving image"):
        compile_(p)


# -- retries and caching ----------------------------------------------------------------------------

def test_retry_is_a_retry_policy_for_service_faults_plus_the_in_container_wrapper() -> None:
    s = one({"name": "a", "command": "python a.py --x 1", "retry": {"attempts": 4, "backoff": "2.5s"}})
    assert s["RetryPolicies"] == [{"ExceptionType": ["Step.SERVICE_FAULT", "Step.THROTTLING",
                                                     "SageMaker.JOB_INTERNAL_ERROR", "SageMaker.CAPACITY_ERROR",
                                                     "SageMaker.RESOURCE_LIMIT"],
                                   "IntervalSeconds": 3, "BackoffRate": 2.0, "MaxAttempts": 4}]
    args = s["Arguments"]
    code = f"{PROC}/input/cloudml_code"
    assert args["AppSpecification"]["ContainerEntrypoint"] == [
        "python3", f"{code}/{RUNTIME_FILE}", "--retry", "4", "--backoff", "2.5", "--", "python", "a.py", "--x", "1"]
    # the wrapper needs the runtime file: it ships as the code input even without a code folder
    code_input = [i for i in args["ProcessingInputs"] if i["InputName"] == "cloudml_code"]
    assert code_input[0]["S3Input"]["LocalPath"] == code
    assert code_input[0]["S3Input"]["S3Uri"] == f"{ROOT}/code/{code_digest(NO_CODE)}/"


def test_retry_wraps_python_steps_and_training_too() -> None:
    s = one({"name": "t", "kind": "training", "python": "m:f", "outputs": {"model": "model"},
             "retry": {"attempts": 2, "backoff": 0}})
    argv = s["Arguments"]["AlgorithmSpecification"]["ContainerEntrypoint"]
    runtime = f"/opt/ml/input/data/cloudml_code/{RUNTIME_FILE}"
    assert argv[:8] == ["python3", runtime, "--retry", "2", "--backoff", "0", "--", "python3"]
    assert argv[8] == runtime and argv[9:11] == ["--function", "m:f"]
    assert s["RetryPolicies"][0]["IntervalSeconds"] == 1 and s["RetryPolicies"][0]["MaxAttempts"] == 2


def test_a_single_attempt_adds_no_retry() -> None:
    s = one({"name": "a", "command": "x", "retry": {"attempts": 1}})
    assert "RetryPolicies" not in s and s["Arguments"]["AppSpecification"]["ContainerEntrypoint"] == ["x"]
    assert "ProcessingInputs" not in s["Arguments"]


@pytest.mark.parametrize(("expire", "iso"), [
    ("7d", "P7D"), ("36h", "P1DT12H"), ("90m", "PT1H30M"), ("45s", "PT45S"), ("1d1s", "P1DT1S"),
    ("2w", "P14D"), ("1h0m5s", "PT1H5S"), ("PT30M", "PT30M"),
])
def test_cache_expiry_is_an_iso_8601_duration(expire: str, iso: str) -> None:
    s = one({"name": "a", "command": "x", "cache": {"expire": expire}})
    assert s["CacheConfig"] == {"Enabled": True, "ExpireAfter": iso}


def test_cache_is_on_by_default_and_can_be_turned_off() -> None:
    assert one({"name": "a", "command": "x"})["CacheConfig"] == {"Enabled": True}
    assert one({"name": "a", "command": "x", "cache": False})["CacheConfig"] == {"Enabled": False}
    assert one({"name": "a", "command": "x", "cache": {"enabled": False, "expire": "1d"}})["CacheConfig"] == {
        "Enabled": False}


def test_descriptions_and_depends_on_are_kept() -> None:
    p = build([{"name": "a", "command": "x", "description": "first"}, {"name": "b", "command": "y", "depends_on": ["a"]}])
    d = steps_of(compile_(p))
    assert d["a"]["Description"] == "first" and d["b"]["DependsOn"] == ["a"]


# -- code folders and byte stability ----------------------------------------------------------------

def test_code_folder_digest_changes_with_content_and_is_stable_otherwise(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "job.py").write_text("def run():\n    return 1\n")
    (src / "pkg").mkdir()
    (src / "pkg" / "util.py").write_text("X = 1\n")
    p = build([{"name": "a", "python": "job:run", "code": "src"}])

    def text() -> str:
        return json.dumps(compile_(p, tmp_path), sort_keys=False)

    first = text()
    digest = code_digest(src)
    assert f"/code/{digest}/" in first and first == text()
    (src / "__pycache__").mkdir()
    (src / "__pycache__" / "job.cpython-311.pyc").write_bytes(b"\0junk")
    assert text() == first, "__pycache__ does not change the digest"
    (src / "pkg" / "util.py").write_text("X = 2\n")
    changed = text()
    assert changed != first and code_digest(src) != digest
    (src / "pkg" / "util.py").write_text("X = 1\n")
    assert text() == first, "same content, same digest"
    (src / "pkg" / "util.py").rename(src / "pkg" / "other.py")
    assert text() != first, "a renamed file changes the digest"


def test_python_step_entrypoint_and_code_input(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "job.py").write_text("def run(): ...\n")
    s = one({"name": "a", "python": "job:run", "code": "src", "inputs": {"raw": "s3://d/raw/"},
             "outputs": {"data": "dataset", "m": "metrics"}, "params": {"n": 3, "ok": True, "f": 0.5}}, base=tmp_path)
    code = f"{PROC}/input/cloudml_code"
    assert s["Arguments"]["AppSpecification"]["ContainerEntrypoint"] == [
        "python3", f"{code}/{RUNTIME_FILE}", "--function", "job:run", "--code", code,
        f"--input=raw={PROC}/input/raw", f"--output=data={PROC}/output/data",
        f"--output=m={PROC}/output/m/metrics.json", "--output-type=data=dataset", "--output-type=m=metrics",
        "--param=n=3", "--param=ok=true", "--param=f=0.5"]
    assert s["Arguments"]["ProcessingInputs"][-1] == {"InputName": "cloudml_code", "S3Input": {
        "S3Uri": f"{ROOT}/code/{code_digest(tmp_path / 'src')}/", "LocalPath": code,
        "S3DataType": "S3Prefix", "S3InputMode": "File"}}


def test_a_missing_code_folder_is_a_compile_error(tmp_path: Path) -> None:
    with pytest.raises(CompileError, match=r"code folder .* does not exist"):
        one({"name": "a", "python": "job:run", "code": "nope"}, base=tmp_path)


def test_compiled_output_is_byte_stable_across_compiles_and_processes(tmp_path: Path) -> None:
    first = json.dumps(compile_(reference_pipeline()))
    assert first == json.dumps(compile_(reference_pipeline()))
    script = ("import json,sys; sys.path.insert(0, sys.argv[1]); from tests.conformance.cases import reference_pipeline;"
              "from cloudml.config import SageMakerSettings as S;"
              "from cloudml.adapters.sagemaker.compiler import compile_definition as c;"
              f"print(json.dumps(c(reference_pipeline(), S(region='us-east-1', bucket='cloudml-test', role_arn='{ROLE}'),"
              " '.')))")
    repo = str(Path(__file__).resolve().parents[2])
    out = subprocess.run([sys.executable, "-c", script, repo], capture_output=True, text=True, cwd=tmp_path,
                         timeout=120, check=True)
    assert out.stdout.strip() == first


def test_the_adapter_compiles_to_a_json_document() -> None:
    compiled = SageMakerAdapter(SETTINGS).compile(reference_pipeline())
    assert (compiled.target, compiled.name, compiled.format) == ("sagemaker", "reference", "json")
    assert json.loads(compiled.dumps()) == compile_(reference_pipeline())


# -- refusals ---------------------------------------------------------------------------------------

# secrets: tests/unit/test_sagemaker_secrets.py


@pytest.mark.parametrize("uri", ["gs://bucket/raw.csv", "https://example.com/x.csv", "file:///data/x.csv",
                                 "s3://bucket/{{params.day}}/x.csv"])
def test_non_s3_or_templated_external_inputs_are_refused(uri: str) -> None:
    with pytest.raises(UnsupportedFeatureError) as info:
        one({"name": "a", "command": "x {{inputs.raw}}", "inputs": {"raw": uri}},
            parameters={"day": {"type": "string", "default": "d1"}})
    assert (info.value.step, info.value.feature) == ("a", "input.external")
    assert "s3://" in info.value.reason


def test_a_training_step_with_a_non_model_output_is_refused() -> None:
    with pytest.raises(UnsupportedFeatureError) as info:
        one({"name": "t", "kind": "training", "command": "x", "outputs": {"model": "model", "report": "metrics"}})
    assert (info.value.step, info.value.feature) == ("t", "step.training")
    assert "report" in info.value.reason and "/opt/ml/model" in info.value.reason
    with pytest.raises(UnsupportedFeatureError, match="m2"):
        one({"name": "t", "kind": "training", "command": "x", "outputs": {"m1": "model", "m2": "model"}})


def test_a_condition_reading_a_training_steps_metrics_is_refused() -> None:
    p = build([{"name": "t", "kind": "training", "command": "x {{outputs.m}}", "outputs": {"m": "metrics"}},
               {"name": "gate", "condition": 't.outputs.m["auc"] > 0.5', "then": ["ok"]}, {"name": "ok", "command": "x"}])
    with pytest.raises(UnsupportedFeatureError) as info:
        compile_(p)
    assert info.value.feature == "condition" and "processing step" in info.value.reason


def test_the_training_metrics_refusal_names_the_condition_step() -> None:
    p = build([{"name": "t", "kind": "training", "command": "x {{outputs.m}}", "outputs": {"m": "metrics"}},
               {"name": "gate", "condition": 't.outputs.m["auc"] > 0.5', "then": ["ok"]}, {"name": "ok", "command": "x"}])
    with pytest.raises(UnsupportedFeatureError) as info:
        compile_(p)
    assert info.value.step == "gate"


def test_registering_a_processing_steps_model_is_refused() -> None:
    p = build([{"name": "p", "command": "x {{outputs.model}}", "outputs": {"model": "model"}},
               {"name": "reg", "register_model": {"model": "p.outputs.model", "group": "g", "image": "serve:1"}}])
    with pytest.raises(UnsupportedFeatureError) as info:
        compile_(p)
    assert (info.value.step, info.value.feature) == ("reg", "register_model")
    assert "kind: training" in info.value.reason


def test_a_step_depending_on_two_different_branches_is_refused() -> None:
    p = build([
        _EVAL,
        {"name": "g1", "condition": 'ev.outputs.m["a"] >= 0.5', "then": ["x"]},
        {"name": "g2", "condition": 'ev.outputs.m["b"] >= 0.5', "then": ["y"]},
        {"name": "x", "command": "x {{outputs.o}}", "outputs": {"o": "dataset"}},
        {"name": "y", "command": "y {{outputs.o}}", "outputs": {"o": "dataset"}},
        {"name": "z", "command": "z {{inputs.a}} {{inputs.b}}", "inputs": {"a": "x.outputs.o", "b": "y.outputs.o"}},
    ])
    with pytest.raises(UnsupportedFeatureError) as info:
        compile_(p)
    assert (info.value.step, info.value.feature) == ("z", "condition")
    same_gate = build([_EVAL, {"name": "g", "condition": 'ev.outputs.m["a"] >= 0.5', "then": ["x"], "else": ["y"]},
                       {"name": "x", "command": "x {{outputs.o}}", "outputs": {"o": "dataset"}},
                       {"name": "y", "command": "y {{outputs.o}}", "outputs": {"o": "dataset"}},
                       {"name": "z", "command": "z", "depends_on": ["x", "y"]}])
    with pytest.raises(UnsupportedFeatureError, match="different condition branches"):
        compile_(same_gate)


def test_a_branch_step_depending_on_the_other_branch_is_refused() -> None:
    p = build([_EVAL, {"name": "gate", "condition": 'ev.outputs.m["auc"] >= 0.5', "then": ["a"], "else": ["b"]},
               {"name": "a", "command": "a", "depends_on": ["b"]}, {"name": "b", "command": "b"}])
    try:
        d = compile_(p)
    except UnsupportedFeatureError:
        return
    assert validate_definition(d) != [], "neither the compiler nor the validator notices"


def test_a_step_depending_on_an_outer_and_an_inner_nested_branch_compiles() -> None:
    p = build([
        {"name": "eval1", "command": "e {{outputs.m}}", "outputs": {"m": "metrics"}},
        {"name": "gate1", "condition": 'eval1.outputs.m["auc"] >= 0.5', "then": ["eval2"]},
        {"name": "eval2", "command": "e {{outputs.m}}", "outputs": {"m": "metrics"}},
        {"name": "gate2", "condition": 'eval2.outputs.m["f1"] > 0.5', "then": ["publish"]},
        {"name": "publish", "command": "p {{outputs.o}}", "outputs": {"o": "dataset"}},
        {"name": "after", "command": "a {{inputs.x}} {{inputs.y}}", "inputs": {"x": "eval2.outputs.m",
                                                                              "y": "publish.outputs.o"}},
    ])
    d = compile_(p)
    inner = steps_of(d)["gate2"]["Arguments"]["IfSteps"]
    assert [s["Name"] for s in inner] == ["publish", "after"]


def test_more_than_twenty_steps_in_a_branch_is_a_compile_error() -> None:
    guarded = [{"name": f"s{i}", "command": "x"} for i in range(MAX_BRANCH_STEPS + 1)]
    p = build([_EVAL, {"name": "gate", "condition": 'ev.outputs.m["a"] > 0', "then": [s["name"] for s in guarded[:1]],
                       "else": ["stop"]}, {"name": "stop", "fail": "no"},
               guarded[0], *({**s, "depends_on": ["s0"]} for s in guarded[1:])])
    with pytest.raises(CompileError, match="guards 21 steps in its then branch; SageMaker allows 20"):
        compile_(p)
    ok = build([_EVAL, {"name": "gate", "condition": 'ev.outputs.m["a"] > 0', "then": ["s0"]}, guarded[0],
                *({**s, "depends_on": ["s0"]} for s in guarded[1:MAX_BRANCH_STEPS])])
    assert len(steps_of(compile_(ok))["gate"]["Arguments"]["IfSteps"]) == 20


# -- cloudml.runtime inside the container -----------------------------------------------------------

FLAKY = """
import sys
from pathlib import Path
counter = Path(sys.argv[1])
n = int(counter.read_text()) if counter.exists() else 0
counter.write_text(str(n + 1))
sys.exit(0 if n + 1 >= int(sys.argv[2]) else 7)
"""


def retry(tmp_path: Path, succeed_on: int) -> tuple[subprocess.CompletedProcess[str], int]:
    script = tmp_path / "flaky.py"
    script.write_text(FLAKY)
    counter = tmp_path / "count"
    done = subprocess.run([sys.executable, "-m", "cloudml.runtime", "--retry", "3", "--backoff", "0", "--",
                           sys.executable, str(script), str(counter), str(succeed_on)],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    return done, int(counter.read_text())


def test_runtime_retry_succeeds_on_the_third_attempt(tmp_path: Path) -> None:
    done, attempts = retry(tmp_path, succeed_on=3)
    assert done.returncode == 0 and attempts == 3
    assert "attempt 1 of 3 exited 7" in done.stderr and "attempt 2 of 3 exited 7" in done.stderr


def test_runtime_retry_gives_up_with_the_commands_exit_code(tmp_path: Path) -> None:
    done, attempts = retry(tmp_path, succeed_on=99)
    assert done.returncode == 7 and attempts == 3
    assert "attempt 3" not in done.stderr  # no retry message after the last attempt


def test_runtime_retry_usage_error_is_exit_code_2(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "cloudml.runtime", "--retry", "3", "true"], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2 and "usage" in done.stderr


def test_unpack_model_archives_extracts_a_folder_holding_only_model_tar_gz(tmp_path: Path) -> None:
    model_src = tmp_path / "built"
    model_src.mkdir()
    (model_src / "model.pkl").write_bytes(b"weights")
    (model_src / "conf").mkdir()
    (model_src / "conf" / "meta.json").write_text('{"v": 1}')
    only = tmp_path / "input" / "model"
    only.mkdir(parents=True)
    with tarfile.open(only / "model.tar.gz", "w:gz") as tar:
        tar.add(model_src / "model.pkl", arcname="model.pkl")
        tar.add(model_src / "conf", arcname="conf")
    mixed = tmp_path / "input" / "mixed"
    mixed.mkdir()
    (mixed / "model.tar.gz").write_bytes((only / "model.tar.gz").read_bytes())
    (mixed / "notes.txt").write_text("keep")
    unpack_model_archives({"model": str(only), "mixed": str(mixed), "missing": str(tmp_path / "nope")})
    assert (only / "model.pkl").read_bytes() == b"weights"
    assert json.loads((only / "conf" / "meta.json").read_text()) == {"v": 1}
    assert sorted(p.name for p in mixed.iterdir()) == ["model.tar.gz", "notes.txt"], "a mixed folder is left alone"


def test_steps_in_one_branch_may_depend_on_each_other() -> None:
    p = build([_EVAL, {"name": "gate", "condition": 'ev.outputs.m["auc"] >= 0.5', "then": ["a", "b"], "else": ["c"]},
               {"name": "a", "command": "a {{outputs.o}}", "outputs": {"o": "dataset"}},
               {"name": "b", "command": "b {{inputs.i}}", "inputs": {"i": "a.outputs.o"}},
               {"name": "c", "command": "c"}])
    gate = steps_of(compile_(p))["gate"]["Arguments"]
    assert [s["Name"] for s in gate["IfSteps"]] == ["a", "b"]
    assert [s["Name"] for s in gate["ElseSteps"]] == ["c"]


def test_code_paths_ride_in_the_bundle_and_reach_the_runtime(tmp_path: Path) -> None:
    from cloudml.codebundle import CodeBundle

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "job.py").write_text("import helpers\ndef run(): ...\n")
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "helpers.py").write_text("X = 1\n")
    s = one({"name": "a", "python": "job:run", "code": "src", "code_paths": ["shared"]}, base=tmp_path)
    code = f"{PROC}/input/cloudml_code"
    argv = s["Arguments"]["AppSpecification"]["ContainerEntrypoint"]
    assert argv[:8] == ["python3", f"{code}/{RUNTIME_FILE}", "--function", "job:run", "--code", code,
                        "--code-path", f"{code}/_cloudml_paths/0-shared"]
    bundle = CodeBundle(tmp_path / "src", ((tmp_path / "shared").resolve(),))
    assert s["Arguments"]["ProcessingInputs"][-1]["S3Input"]["S3Uri"] == f"{ROOT}/code/{code_digest(bundle)}/"
    # the shared folder is part of the content address: editing it is a new bundle (and a cache miss)
    before = code_digest(bundle)
    (tmp_path / "shared" / "helpers.py").write_text("X = 2\n")
    assert code_digest(bundle) != before


def test_a_missing_code_paths_folder_is_a_compile_error_naming_step_and_folder(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    with pytest.raises(CompileError, match=r"step 'a': code_paths folder .*nope does not exist") as info:
        one({"name": "a", "python": "job:run", "code": "src", "code_paths": ["nope"]}, base=tmp_path)
    assert "relative to the pipeline file" in (info.value.hint or "")
