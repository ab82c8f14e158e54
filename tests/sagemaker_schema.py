"""The public SageMaker pipeline-definition JSON schema as a test fixture, with its known gaps patched here.

The schema (aws-sagemaker-mlops/sagemaker-model-building-pipeline-definition-JSON-schema, pinned in
``../shared/reference/sagemaker-pipeline-schema/`` with its PROVENANCE.md) has no stated license, so
it is read from the shared folder next to the repository and never copied into the package.

It rejects definitions that SageMaker SDK 3.27 emits (see ``../shared/notes/aws.md`` §4 and
PROVENANCE.md). :func:`patched_schema` fixes those gaps, all of them in :data:`PATCHES`, each with
its reason; nothing else in the test suite edits the schema.

Validation follows aws.md §4: the top level is checked with ``Steps`` items relaxed, then every step
is checked against the definition for its ``Type`` (``ProcessingStep``, ``ConditionStep``, ...),
recursing into ``IfSteps`` and ``ElseSteps``, so a whole-document ``oneOf`` never hides the cause.

Example:
    >>> errors = definition_errors({"Version": "2020-12-01", "Steps": [
    ...     {"Name": "stop", "Type": "Fail", "Arguments": {"ErrorMessage": "no"}}]})
    >>> errors
    []
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError, best_match
from jsonschema.validators import validator_for

__all__ = ["PATCHES", "SCHEMA_PATH", "STEP_DEFINITIONS", "definition_errors", "patched_schema", "raw_schema",
           "step_errors", "walk_steps"]

SCHEMA_PATH = (Path(__file__).resolve().parents[2] / "shared" / "reference" / "sagemaker-pipeline-schema"
               / "pipeline-definition.schema.json")

# Step "Type" -> the schema definition that describes it.
STEP_DEFINITIONS = {
    "Processing": "ProcessingStep", "Training": "TrainingStep", "Transform": "TransformStep",
    "Model": "CreateModelStep", "RegisterModel": "RegisterModelStep", "Condition": "ConditionStep",
    "Fail": "FailStep", "Lambda": "LambdaStep", "Callback": "CallbackStep", "Tuning": "TuningStep",
    "ClarifyCheck": "ClarifyCheckStep", "QualityCheck": "QualityCheckStep", "EMR": "EMRStep",
    "AutoML": "AutoMLStep", "Endpoint": "EndpointStep", "EndpointConfig": "EndpointConfigStep",
}

_REF = "#/definitions/"
_EXCEPTION_TYPES = ["Step.SERVICE_FAULT", "Step.THROTTLING", "SageMaker.JOB_INTERNAL_ERROR",
                    "SageMaker.CAPACITY_ERROR", "SageMaker.RESOURCE_LIMIT", "Emr.RESOURCE_LIMIT"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


@functools.lru_cache(maxsize=1)
def _raw_text() -> str:
    if not SCHEMA_PATH.is_file():
        raise FileNotFoundError(f"the SageMaker schema fixture is missing: {SCHEMA_PATH} (see aws.md §1.1)")
    return SCHEMA_PATH.read_text()


def raw_schema() -> dict[str, Any]:
    """The unmodified public schema (a fresh copy)."""
    schema: dict[str, Any] = json.loads(_raw_text())
    return schema


# -- the patches: one function per documented gap --------------------------------------------------

def _join_function(d: dict[str, Any]) -> None:
    """``Std:Join``: the schema's JoinFunction is malformed (it rejects On/Values) and never referenced."""
    d["JoinFunction"] = {
        "type": "object", "required": ["Std:Join"], "additionalProperties": False,
        "properties": {"Std:Join": {
            "type": "object", "required": ["On", "Values"], "additionalProperties": False,
            "properties": {"On": {"type": "string"}, "Values": {"type": "array", "minItems": 1, "items": {
                "anyOf": [{"type": ["string", "number", "boolean"]}, _ref("GetFunction"), _ref("JoinFunction")]}}}}},
    }


def _json_get_function(d: dict[str, Any]) -> None:
    """``Std:JsonGet`` is absent. Its Path must be a literal string (SDK issues #3463, #4418)."""
    d["JsonGetFunction"] = {
        "type": "object", "required": ["Std:JsonGet"], "additionalProperties": False,
        "properties": {"Std:JsonGet": {
            "type": "object", "required": ["PropertyFile", "Path"], "additionalProperties": False,
            "properties": {
                "PropertyFile": {"type": "object", "required": ["Get"], "additionalProperties": False,
                                 "properties": {"Get": {"type": "string",
                                                        "pattern": r"^Steps\.[A-Za-z0-9\-_]+\.PropertyFiles\."
                                                                   r"[A-Za-z0-9\-_]+$"}}},
                "Path": {"type": "string", "minLength": 1}}}},
    }


def _string_values_join(d: dict[str, Any]) -> None:
    """String arguments (S3 URIs, entrypoints, env, Fail ErrorMessage) accept ``Std:Join`` in the SDK."""
    d["StringArgumentValue"] = {"oneOf": [{"type": "string"}, _ref("GetFunction"), _ref("JoinFunction")]}


def _conditions(d: dict[str, Any]) -> None:
    """Operands may be ``Std:JsonGet`` / ``Std:Join``; ``Not`` is missing; ``Or`` cannot hold Or/Not."""
    operand = {"anyOf": [_ref("StringArgumentValue"), _ref("BooleanArgumentValue"), _ref("IntegerArgumentValue"),
                         _ref("FloatArgumentValue"), _ref("JsonGetFunction")]}
    d["BinaryCondition"]["properties"]["LeftValue"] = operand
    d["BinaryCondition"]["properties"]["RightValue"] = operand
    d["Condition"] = {"oneOf": [_ref("BinaryCondition"), _ref("InCondition"), _ref("OrCondition"),
                                _ref("NotCondition")]}
    d["NotCondition"] = {"type": "object", "required": ["Type", "Condition"], "additionalProperties": False,
                         "properties": {"Type": {"enum": ["Not"]}, "Condition": _ref("Condition")}}
    d["OrCondition"]["properties"]["Conditions"] = {"type": "array", "minItems": 1, "items": _ref("Condition")}
    d["ConditionStep"]["properties"]["Arguments"]["properties"]["Conditions"] = {
        "type": "array", "minItems": 1, "items": _ref("Condition")}


def _branches(d: dict[str, Any]) -> None:
    """IfSteps/ElseSteps allow only five step types (no nested Condition): each branch entry is checked
    separately against the definition for its own Type; the quota of 20 per branch is kept."""
    args = d["ConditionStep"]["properties"]["Arguments"]["properties"]
    for branch in ("IfSteps", "ElseSteps"):
        args[branch] = {"type": "array", "maxItems": 20, "items": {
            "type": "object", "required": ["Name", "Type"], "properties": {"Type": {"enum": sorted(STEP_DEFINITIONS)}}}}


def _retry_policy(d: dict[str, Any]) -> None:
    """``ExceptionType`` is a list in the SDK (the schema wants one string); SDK bounds on attempts/expiry."""
    d["RetryPolicy"]["properties"]["ExceptionType"] = {
        "type": "array", "minItems": 1, "uniqueItems": True, "items": {"enum": _EXCEPTION_TYPES}}
    d["RetryPolicy"]["properties"]["MaxAttempts"] = {"type": "integer", "minimum": 1, "maximum": 20}
    d["RetryPolicy"]["properties"]["ExpireAfterMin"] = {"type": "integer", "minimum": 0, "maximum": 14400}
    d["RetryPolicy"]["properties"]["IntervalSeconds"] = {"type": "integer", "minimum": 1}
    d["RetryPolicy"]["oneOf"] = [{"required": ["MaxAttempts"]}, {"required": ["ExpireAfterMin"]}]


def _property_files(d: dict[str, Any]) -> None:
    """Processing steps declare ``PropertyFiles`` (at most 10), which the schema lacks."""
    d["ProcessingStep"]["properties"]["PropertyFiles"] = {"type": "array", "minItems": 1, "maxItems": 10, "items": {
        "type": "object", "required": ["PropertyFileName", "OutputName", "FilePath"], "additionalProperties": False,
        "properties": {"PropertyFileName": _ref("StepName"), "OutputName": {"type": "string", "minLength": 1},
                       "FilePath": {"type": "string", "minLength": 1}}}}


def _training(d: dict[str, Any]) -> None:
    """CreateTrainingJob members the schema predates: ContainerEntrypoint/Arguments, Environment,
    OutputDataConfig.CompressionType."""
    args = d["TrainingStep"]["properties"]["Arguments"]["properties"]
    strings = {"type": "array", "items": _ref("StringArgumentValue")}
    args["AlgorithmSpecification"]["properties"]["ContainerEntrypoint"] = {**strings, "minItems": 1, "maxItems": 100}
    args["AlgorithmSpecification"]["properties"]["ContainerArguments"] = {**strings, "minItems": 1, "maxItems": 100}
    args["Environment"] = {"type": "object", "maxProperties": 100,
                           "patternProperties": {"^[a-zA-Z_][a-zA-Z0-9_]{0,511}$": _ref("StringArgumentValue")},
                           "additionalProperties": False}
    args["OutputDataConfig"]["properties"]["CompressionType"] = {"enum": ["GZIP", "NONE"]}


def _register_model(d: dict[str, Any]) -> None:
    """RegisterModel: ModelApprovalStatus, SkipModelValidation, CustomerMetadataProperties, container
    Environment; and the misplaced ``additionalProperties`` the schema nests inside ``properties``."""
    arguments = d["RegisterModelStep"]["properties"]["Arguments"]
    arguments.pop("ModelPackageName", None)  # misplaced next to "properties"
    props = arguments["properties"]
    props.pop("additionalProperties", None)
    props["ModelPackageName"] = _ref("StringArgumentValue")
    props["ModelApprovalStatus"] = {"anyOf": [{"enum": ["Approved", "Rejected", "PendingManualApproval"]},
                                              _ref("GetFunction")]}
    props["SkipModelValidation"] = {"enum": ["All", "None"]}
    props["CustomerMetadataProperties"] = {"type": "object", "maxProperties": 50,
                                           "additionalProperties": _ref("StringArgumentValue")}
    container = props["InferenceSpecification"]["properties"]["Containers"]["items"]["properties"]
    container["Environment"] = {"type": "object", "additionalProperties": _ref("StringArgumentValue")}
    arguments["additionalProperties"] = False


def _tuning(d: dict[str, Any]) -> None:
    """CreateHyperParameterTuningJob members the schema predates: Strategy Grid/Hyperband, RandomSeed, a
    ResourceLimits without MaxNumberOfTrainingJobs (Grid counts its own jobs) and TrainingJobDefinition
    Environment (botocore: HyperParameterTrainingJobEnvironmentMap, at most 48 entries)."""
    config = d["TuningStep"]["properties"]["Arguments"]["properties"]["HyperParameterTuningJobConfig"]
    config["properties"]["Strategy"] = {"enum": ["Bayesian", "Random", "Hyperband", "Grid"]}
    config["properties"]["RandomSeed"] = {"type": "integer", "minimum": 0}
    config["properties"]["ResourceLimits"]["required"] = ["MaxParallelTrainingJobs"]
    d["HyperParameterTrainingJobDefinition"]["properties"]["Environment"] = {
        "type": "object", "maxProperties": 48, "additionalProperties": _ref("StringArgumentValue"),
        "propertyNames": {"pattern": "^[a-zA-Z_][a-zA-Z0-9_]{0,511}$"}}


def _top_level_steps(schema: dict[str, Any]) -> None:
    """The top-level ``Steps`` oneOf is relaxed: each step is validated against its own Type instead."""
    schema["properties"]["Steps"] = {"type": "array", "minItems": 1, "items": {
        "type": "object", "required": ["Name", "Type"], "properties": {"Type": {"enum": sorted(STEP_DEFINITIONS)}}}}


PATCHES: tuple[Callable[[dict[str, Any]], None], ...] = (
    _join_function, _json_get_function, _string_values_join, _conditions, _branches, _retry_policy,
    _property_files, _training, _register_model, _tuning,
)
"""Every change made to the public schema, applied in order to its ``definitions``."""


@functools.lru_cache(maxsize=1)
def _patched_text() -> str:
    schema = raw_schema()
    for patch in PATCHES:
        patch(schema["definitions"])
    _top_level_steps(schema)
    return json.dumps(schema)


def patched_schema() -> dict[str, Any]:
    """The public schema with every gap in :data:`PATCHES` fixed (a fresh copy)."""
    schema: dict[str, Any] = json.loads(_patched_text())
    return schema


def walk_steps(steps: list[dict[str, Any]], where: str = "Steps") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every step with its location, depth first into condition branches."""
    for i, step in enumerate(steps):
        here = f"{where}[{i}]({step.get('Name')})"
        yield here, step
        if step.get("Type") == "Condition":
            args = step.get("Arguments", {})
            for branch in ("IfSteps", "ElseSteps"):
                yield from walk_steps(args.get(branch, []), f"{here}.{branch}")


@functools.lru_cache(maxsize=64)
def _validator(patched: bool, target: str | None) -> Any:
    """A (reusable) validator for the whole document or for one step definition."""
    schema = patched_schema() if patched else raw_schema()
    if target is None:
        _top_level_steps(schema)  # already done on the patched copy; idempotent
        body = schema
    else:
        body = {key: schema[key] for key in ("$schema", "$id", "definitions")}
        body["allOf"] = [_ref(target)]
    cls = validator_for(schema, default=Draft7Validator)
    return cls(body)


def _describe(where: str, error: ValidationError) -> str:
    cause = best_match(error.context) if error.context else error
    path = "/".join(str(p) for p in cause.absolute_path)
    return f"{where}: {path or '<step>'}: {cause.message[:300]}"


def step_errors(step: dict[str, Any], *, patched: bool = True, where: str = "step") -> list[str]:
    """Problems with one step against the definition for its Type (branches are not entered)."""
    target = STEP_DEFINITIONS.get(step.get("Type", ""))
    if target is None:
        return [f"{where}: unknown step Type {step.get('Type')!r}"]
    errors = _validator(patched, target).iter_errors(step)
    return [_describe(where, e) for e in sorted(errors, key=lambda e: list(map(str, e.absolute_path)))]


def definition_errors(definition: dict[str, Any], *, patched: bool = True) -> list[str]:
    """Every problem in a pipeline definition: the top level, then each step by Type, recursively."""
    problems = [_describe("definition", e) for e in _validator(patched, None).iter_errors(definition)]
    for where, step in walk_steps(definition.get("Steps", [])):
        problems += step_errors(step, patched=patched, where=where)
    return problems
