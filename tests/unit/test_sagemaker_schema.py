"""Compiled SageMaker definitions pass both offline validators; each validator catches what it should.

The two validators are independent:

* the public pipeline-definition JSON schema, patched in one place (tests/sagemaker_schema.py), and
* :func:`cloudml.adapters.sagemaker.validate.validate_definition`: botocore's own request shapes for
  CreatePipeline and each step's Arguments, plus reference, name and quota checks.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from cloudml.adapter import pipeline_features
from cloudml.adapters.sagemaker import SageMakerAdapter
from cloudml.adapters.sagemaker.compiler import compile_definition
from cloudml.adapters.sagemaker.validate import QUOTA_STEPS, validate_definition
from cloudml.config import SageMakerSettings
from cloudml.spec.pipeline import Pipeline
from cloudml.spec.validate import validate_data
from tests.conformance.cases import FEATURE_CASES, reference_pipeline
from tests.sagemaker_schema import SCHEMA_PATH, definition_errors, raw_schema, step_errors, walk_steps

if not SCHEMA_PATH.is_file():  # visible in the -ra summary, never silent
    pytest.skip(f"SageMaker schema fixture not found at {SCHEMA_PATH}", allow_module_level=True)

SETTINGS = SageMakerSettings(region="us-east-1", bucket="cloudml-test",
                             role_arn="arn:aws:iam::123456789012:role/cloudml-test")
PROVENANCE_SHA256 = "35633f4376dda695d1847bd16d72d3b3d9201f0106e75107eafbeef11ef5ce30"


def build(steps: list[dict[str, Any]], **top: Any) -> Pipeline:
    doc = {"apiVersion": "cloudml/v1", "kind": "Pipeline", "name": "t", "defaults": {"image": "python:3.11-slim"},
           "steps": steps, **top}
    p = validate_data(doc)
    assert isinstance(p, Pipeline)
    return p


def compile_(p: Pipeline, base: Path | str = ".", settings: SageMakerSettings = SETTINGS) -> dict[str, Any]:
    return compile_definition(p, settings, base)


def assert_both_valid(definition: dict[str, Any]) -> None:
    assert definition_errors(definition) == [], "patched public schema"
    assert validate_definition(definition) == [], "botocore shapes and reference checks"


def by_name(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["Name"]: step for _, step in walk_steps(definition["Steps"])}


# -- the fixture itself ------------------------------------------------------------------------------

def test_schema_fixture_is_the_pinned_unmodified_copy() -> None:
    assert hashlib.sha256(SCHEMA_PATH.read_bytes()).hexdigest() == PROVENANCE_SHA256
    assert raw_schema()["definitions"]["RetryPolicy"]["properties"]["ExceptionType"]["type"] == "string"


# -- 1. every compiled output passes both validators ------------------------------------------------

def test_reference_pipeline_passes_both_validators() -> None:
    d = compile_(reference_pipeline())
    assert_both_valid(d)
    assert [s["Type"] for _, s in walk_steps(d["Steps"])] == [
        "Processing", "Training", "Processing", "Condition", "RegisterModel", "Fail"]


def _supported_pipeline_cases() -> list[str]:
    caps = SageMakerAdapter.capabilities
    out = []
    for feature, make in sorted(FEATURE_CASES.items()):
        if feature.startswith("deploy."):
            continue
        spec = make()
        assert isinstance(spec, Pipeline)
        if all(caps.supports(u.feature) for u in pipeline_features(spec)):
            out.append(feature)
    return out


SUPPORTED_CASES = _supported_pipeline_cases()


def test_feature_cases_split_into_supported_and_declared_gaps() -> None:
    assert {"step.secrets", "step.python", "step.code", "step.retry", "condition", "condition.or", "register_model",
            "schedule"} <= set(SUPPORTED_CASES)


@pytest.mark.parametrize("feature", SUPPORTED_CASES)
def test_feature_case_passes_both_validators(feature: str, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "job.py").write_text("def run():\n    return {}\n")
    (tmp_path / "lib").mkdir()  # the step.code_paths case's extra folder
    spec = FEATURE_CASES[feature]()
    assert isinstance(spec, Pipeline)
    assert_both_valid(compile_(spec, tmp_path))


def test_python_steps_with_a_code_folder_pass_both(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "steps.py").write_text("def prep(raw, train):\n    pass\n")
    p = build([
        {"name": "prep", "python": "steps:prep", "code": "src", "inputs": {"raw": "s3://data/raw/"},
         "outputs": {"train": "dataset", "report": "metrics"}, "params": {"n": 3, "flag": True, "name": "x"}},
        {"name": "fit", "kind": "training", "python": "steps:fit", "code": "src",
         "inputs": {"train": "prep.outputs.train"}, "outputs": {"model": "model"}, "params": {"lr": 0.1}},
    ])
    d = compile_(p, tmp_path)
    assert_both_valid(d)
    code_inputs = [i for i in by_name(d)["prep"]["Arguments"]["ProcessingInputs"] if i["InputName"] == "cloudml_code"]
    assert len(code_inputs) == 1
    channels = [c["ChannelName"] for c in by_name(d)["fit"]["Arguments"]["InputDataConfig"]]
    assert channels == ["train", "cloudml_code"]


def test_retries_pass_both() -> None:
    p = build([{"name": "a", "command": "python a.py", "retry": {"attempts": 20, "backoff": "1m"}},
               {"name": "t", "kind": "training", "command": "python t.py {{outputs.model}}",
                "outputs": {"model": "model"}, "retry": {"attempts": 2, "backoff": "0.5s"}}])
    d = compile_(p)
    assert_both_valid(d)
    assert by_name(d)["a"]["RetryPolicies"][0]["MaxAttempts"] == 20
    assert by_name(d)["t"]["RetryPolicies"][0]["IntervalSeconds"] == 1


_EVAL = {"name": "evaluate", "command": "python ev.py {{outputs.metrics}}", "outputs": {"metrics": "metrics"}}


@pytest.mark.parametrize("condition", [
    'evaluate.outputs.metrics["auc"] >= params.min_auc and evaluate.outputs.metrics["loss"] < 0.4',
    'evaluate.outputs.metrics["auc"] > 0.9 or evaluate.outputs.metrics["f1"] >= 0.8',
    'not evaluate.outputs.metrics["auc"] < 0.5',
    'evaluate.outputs.metrics["auc"] != 0.5',
    '(evaluate.outputs.metrics["a"] > 1 and evaluate.outputs.metrics["b"] > 2) or not evaluate.outputs.metrics.c == 3',
    'evaluate.outputs.metrics["model"]["name"] == "xgb" and params.flag == true',
])
def test_conditions_with_and_or_not_pass_both(condition: str) -> None:
    p = build([_EVAL, {"name": "gate", "condition": condition, "then": ["ok"], "else": ["low"]},
               {"name": "ok", "command": "echo ok"}, {"name": "low", "fail": "too low: {{params.min_auc}}"}],
              parameters={"min_auc": {"type": "float", "default": 0.8}, "flag": {"type": "bool", "default": True}})
    assert_both_valid(compile_(p))


def nested_pipeline() -> Pipeline:
    """gate1 guards eval2; gate2 (reading eval2) is nested in gate1's branch; dependents follow."""
    return build([
        {"name": "eval1", "command": "e {{outputs.m}}", "outputs": {"m": "metrics"}},
        {"name": "gate1", "condition": 'eval1.outputs.m["auc"] >= 0.5', "then": ["eval2"], "else": ["fail1"]},
        {"name": "eval2", "command": "e {{outputs.m}} {{outputs.data}}", "outputs": {"m": "metrics", "data": "dataset"}},
        {"name": "fail1", "fail": "eval1 too low"},
        {"name": "use2", "command": "u {{inputs.d}}", "inputs": {"d": "eval2.outputs.data"}},
        {"name": "gate2", "condition": 'eval2.outputs.m["f1"] > 0.5', "then": ["publish"], "else": ["fail2"]},
        {"name": "publish", "command": "p {{outputs.o}}", "outputs": {"o": "dataset"}},
        {"name": "fail2", "fail": "eval2 too low"},
        {"name": "after", "command": "a {{inputs.x}}", "inputs": {"x": "publish.outputs.o"}},
        {"name": "top", "command": "t"},
    ])


def test_nested_condition_branches_pass_both_and_nest_dependents() -> None:
    d = compile_(nested_pipeline())
    assert_both_valid(d)
    assert [where for where, _ in walk_steps(d["Steps"])] == [
        "Steps[0](eval1)", "Steps[1](top)", "Steps[2](gate1)",
        "Steps[2](gate1).IfSteps[0](eval2)", "Steps[2](gate1).IfSteps[1](use2)", "Steps[2](gate1).IfSteps[2](gate2)",
        "Steps[2](gate1).IfSteps[2](gate2).IfSteps[0](publish)", "Steps[2](gate1).IfSteps[2](gate2).IfSteps[1](after)",
        "Steps[2](gate1).IfSteps[2](gate2).ElseSteps[0](fail2)", "Steps[2](gate1).ElseSteps[0](fail1)"]
    # the unpatched schema cannot express this at all: a Condition inside IfSteps is not allowed there
    assert any("IfSteps/2" in e for e in step_errors(by_name(d)["gate1"], patched=False))


def test_training_feeding_register_passes_both() -> None:
    p = build([
        {"name": "train", "kind": "training", "framework": "xgboost==1.7", "command": "python t.py {{outputs.model}}",
         "outputs": {"model": "model"}},
        {"name": "evaluate", "command": "python e.py {{inputs.model}} {{outputs.metrics}}",
         "inputs": {"model": "train.outputs.model"}, "outputs": {"metrics": "metrics"}},
        {"name": "register", "register_model": {
            "model": "train.outputs.model", "group": "churn", "metrics": "evaluate.outputs.metrics",
            "framework": "xgboost==1.7", "approval": "approved", "description": "nightly", "tags": {"team": "ml"}}},
    ])
    d = compile_(p)
    assert_both_valid(d)
    reg = by_name(d)["register"]["Arguments"]
    assert reg["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == {
        "Get": "Steps.train.ModelArtifacts.S3ModelArtifacts"}


def test_parameters_in_commands_env_and_params_pass_both(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    p = build([
        {"name": "a", "command": "python a.py --n {{params.n}} --lr={{params.lr}} --in {{inputs.raw}}",
         "inputs": {"raw": "{{params.uri}}"}, "env": {"MODE": "{{params.mode}}", "TAG": "v-{{params.n}}"},
         "resources": {"instance_count": 2}},
        {"name": "b", "python": "m:f", "code": "src", "params": {"lr": "{{params.lr}}", "label": "run-{{params.mode}}"}},
        {"name": "t", "kind": "training", "command": "python t.py", "env": {"LR": "{{params.lr}}"},
         "outputs": {"model": "model"}},
        {"name": "u", "kind": "training", "python": "m:f", "code": "src", "params": {"lr": "{{params.lr}}", "k": 4},
         "outputs": {"model": "model"}},
    ], parameters={"n": {"type": "int", "default": 3}, "lr": {"type": "float", "default": 0.1},
                   "mode": {"type": "string", "default": "fast"}, "uri": {"type": "string", "default": "s3://b/x"}})
    d = compile_(p, tmp_path)
    assert_both_valid(d)
    assert by_name(d)["u"]["Arguments"]["HyperParameters"] == {"lr": {"Get": "Parameters.lr"}, "k": "4"}


def test_unset_role_and_bucket_still_pass_both() -> None:
    d = compile_(reference_pipeline(), settings=SageMakerSettings(region="us-east-1"))
    assert_both_valid(d)


def test_the_unpatched_schema_rejects_a_jsonget_gate_which_is_why_the_patch_exists() -> None:
    gate = by_name(compile_(reference_pipeline()))["gate"]
    raw = step_errors(gate, patched=False)
    assert any("Arguments/Conditions/0" in e for e in raw), raw
    # The operand is the cause: the same condition on a literal passes the unpatched BinaryCondition.
    literal = copy.deepcopy(gate)
    literal["Arguments"]["Conditions"][0]["LeftValue"] = 0.9
    assert not any("Conditions" in e for e in step_errors(literal, patched=False))
    assert step_errors(gate) == []
    # and the PropertyFiles the gate reads are rejected by the unpatched ProcessingStep
    evaluate = by_name(compile_(reference_pipeline()))["evaluate"]
    assert any("PropertyFiles" in e for e in step_errors(evaluate, patched=False))
    assert definition_errors(compile_(reference_pipeline()), patched=False) != []


# -- the patched schema still rejects what SageMaker would -----------------------------------------

def _processing() -> dict[str, Any]:
    return copy.deepcopy(by_name(compile_(reference_pipeline()))["evaluate"])


@pytest.mark.parametrize(("mutate", "where"), [
    (lambda s: s["Arguments"].update(Foo=1), "Arguments"),
    (lambda s: s.update(RetryPolicies=[{"ExceptionType": ["Step.BOGUS"], "MaxAttempts": 2}]), "RetryPolicies"),
    (lambda s: s.update(RetryPolicies=[{"ExceptionType": ["Step.THROTTLING"], "MaxAttempts": 21}]), "RetryPolicies"),
    (lambda s: s["PropertyFiles"][0].pop("FilePath"), "PropertyFiles"),
    (lambda s: s.update(CacheConfig={"Enabled": "yes"}), "CacheConfig"),
    (lambda s: s["Arguments"]["ProcessingResources"]["ClusterConfig"].update(InstanceCount="2"), "InstanceCount"),
    (lambda s: s.update(Name="bad name!"), "Name"),
])
def test_patched_schema_still_rejects_bad_steps(mutate: Any, where: str) -> None:
    step = _processing()
    assert step_errors(step) == []
    mutate(step)
    errors = step_errors(step)
    assert errors and any(where in e for e in errors), errors


def test_patched_schema_requires_a_literal_jsonget_path() -> None:
    gate = copy.deepcopy(by_name(compile_(reference_pipeline()))["gate"])
    gate["Arguments"]["Conditions"][0]["LeftValue"]["Std:JsonGet"]["Path"] = {"Get": "Parameters.metric"}
    assert step_errors(gate) != []


def test_patched_schema_rejects_an_unknown_step_type_in_a_branch() -> None:
    d = compile_(reference_pipeline())
    gate = by_name(d)["gate"]
    gate["Arguments"]["IfSteps"][0]["Type"] = "Teleport"
    assert any("IfSteps" in e for e in definition_errors(d))


# -- 2. negative: botocore shapes ------------------------------------------------------------------

def _mutated(path: list[Any], value: Any = None, *, delete: bool = False, step: str = "prep") -> list[str]:
    d = compile_(reference_pipeline())
    target = by_name(d)[step]["Arguments"]
    for key in path[:-1]:
        target = target[key]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return validate_definition(d)


def test_botocore_catches_a_wrong_type_in_arguments() -> None:
    problems = _mutated(["ProcessingResources", "ClusterConfig", "InstanceCount"], "2")
    assert len(problems) == 1
    assert "step prep (CreateProcessingJob)" in problems[0]
    assert "Invalid type for parameter ProcessingResources.ClusterConfig.InstanceCount" in problems[0]


def test_botocore_catches_a_missing_required_member() -> None:
    problems = _mutated(["RoleArn"], delete=True)
    assert len(problems) == 1 and 'Missing required parameter in input: "RoleArn"' in problems[0]
    problems = _mutated(["OutputDataConfig", "S3OutputPath"], delete=True, step="train")
    assert len(problems) == 1 and "step train (CreateTrainingJob)" in problems[0]
    assert 'Missing required parameter in OutputDataConfig: "S3OutputPath"' in problems[0]


def test_botocore_catches_an_unknown_arguments_key() -> None:
    problems = _mutated(["InstanceCount"], 2)
    assert len(problems) == 1 and 'Unknown parameter in input: "InstanceCount"' in problems[0]
    problems = _mutated(["InferenceSpecification", "Containers", 0, "Imagee"], "x", step="register")
    assert "step register (CreateModelPackage)" in problems[0] and "Imagee" in problems[0]


def test_botocore_checks_types_under_expressions_by_dummy_substitution() -> None:
    # a Get where a string is expected is fine; a literal of the wrong type next to it is not
    problems = _mutated(["ProcessingResources", "ClusterConfig", "VolumeSizeInGB"], {"Get": "Parameters.n_estimators"})
    assert problems == []
    problems = _mutated(["StoppingCondition", "MaxRuntimeInSeconds"], 0)
    assert problems and "MaxRuntimeInSeconds" in problems[0]


# -- 2. negative: reference, name and size checks ---------------------------------------------------

def test_reference_checks_catch_unknown_step_parameter_property_file_and_depends_on() -> None:
    d = compile_(reference_pipeline())
    steps = by_name(d)
    steps["train"]["Arguments"]["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] = {
        "Get": "Steps.nope.ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri"}
    steps["prep"]["Arguments"]["ProcessingInputs"][0]["S3Input"]["S3Uri"] = {"Get": "Parameters.missing"}
    steps["gate"]["Arguments"]["Conditions"][0]["LeftValue"]["Std:JsonGet"]["PropertyFile"] = {
        "Get": "Steps.evaluate.PropertyFiles.report"}
    steps["too-low"]["DependsOn"] = ["ghost"]
    problems = validate_definition(d)
    assert "step train: reference to unknown step nope" in problems
    assert "step prep: reference to undeclared parameter missing" in problems
    assert "step gate: step evaluate declares no property file report" in problems
    assert "step too-low: DependsOn names unknown step ghost" in problems
    assert len(problems) == 4


def test_duplicate_step_names_are_caught_even_across_branches() -> None:
    d = compile_(reference_pipeline())
    by_name(d)["too-low"]["Name"] = "prep"
    assert "duplicate step names: prep" in validate_definition(d)


def test_more_than_fifty_steps_are_caught() -> None:
    p = build([{"name": f"s{i}", "command": f"echo {i}"} for i in range(QUOTA_STEPS + 1)])
    d = compile_(p)
    assert definition_errors(d) == []
    assert validate_definition(d) == [f"{QUOTA_STEPS + 1} steps: SageMaker's default quota is 50 per pipeline"]
    assert validate_definition(compile_(build([{"name": f"s{i}", "command": "x"} for i in range(QUOTA_STEPS)]))) == []


def test_a_definition_over_one_mebibyte_is_caught() -> None:
    d = compile_(build([{"name": "stop", "fail": "x"}]))
    d["Steps"][0]["Arguments"]["ErrorMessage"] = "x" * (1024 * 1024)
    assert len(json.dumps(d)) > 1_048_576
    problems = validate_definition(d)
    assert len(problems) == 1 and problems[0].startswith("CreatePipeline:") and "PipelineDefinition" in problems[0]


@pytest.mark.parametrize("step", [
    {"name": "a", "command": "x", "timeout": "10d"},
    {"name": "a", "command": "x", "resources": {"instance_count": 101}},
    {"name": "a", "command": "x", "retry": {"attempts": 2}, "inputs": {f"i{n}": "s3://b/x" for n in range(10)}},
])
def test_botocore_maximums_in_arguments_are_caught(step: dict[str, Any]) -> None:
    assert validate_definition(compile_(build([step]))) != []


def test_an_unknown_step_type_and_an_empty_condition_are_caught() -> None:
    d = compile_(reference_pipeline())
    by_name(d)["gate"]["Arguments"]["Conditions"] = []
    d["Steps"].append({"Name": "odd", "Type": "Teleport", "Arguments": {}})
    problems = validate_definition(d)
    assert "step gate: a Condition step needs Conditions" in problems
    assert "step odd: unknown step type Teleport" in problems
    assert any("unknown step Type 'Teleport'" in e for e in definition_errors(d))


def test_validate_compiled_on_the_adapter_runs_the_botocore_checks() -> None:
    adapter = SageMakerAdapter(SETTINGS)
    compiled = adapter.compile(reference_pipeline())
    assert adapter.validate_compiled(compiled) == []
    compiled.document["Steps"][0]["Arguments"]["RoleArn"] = 7
    assert any("RoleArn" in p for p in adapter.validate_compiled(compiled))
