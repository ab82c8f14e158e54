"""Validate a compiled SageMaker pipeline definition with botocore's own request shapes, plus reference checks.

* Each step's ``Arguments`` is the request of the matching API minus the job name, so it is checked
  with ``botocore.validate.ParamValidator`` against ``CreateProcessingJob``, ``CreateTrainingJob``,
  ``CreateHyperParameterTuningJob`` or ``CreateModelPackage``, after every ``Get`` / ``Std:Join`` /
  ``Std:JsonGet`` expression is replaced by a dummy of the type that shape expects. Condition branches are checked recursively.
* The ``CreatePipeline`` request itself (the definition as a string, at most 1,048,576 characters).
* What botocore cannot see: unique step names, ``DependsOn`` / ``Steps.X`` / ``Parameters.X`` /
  ``PropertyFiles.Y`` references, condition branch sizes, the 50-step default quota.

botocore is imported here only (the compiler never imports it).

Example:
    >>> validate_definition({"Version": "2020-12-01", "Parameters": [], "Steps": [
    ...     {"Name": "f", "Type": "Fail", "Arguments": {"ErrorMessage": "x"}}]})
    []
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["QUOTA_STEPS", "validate_definition"]

QUOTA_STEPS = 50
_OPERATION = {"Processing": ("CreateProcessingJob", "ProcessingJobName"),
              "Training": ("CreateTrainingJob", "TrainingJobName"),
              "RegisterModel": ("CreateModelPackage", None),
              "Tuning": ("CreateHyperParameterTuningJob", "HyperParameterTuningJobName")}
_EXPR_KEYS = ("Get", "Std:Join", "Std:JsonGet")
_REF = re.compile(r"^(Steps|Parameters)\.([A-Za-z0-9\-_]+)(?:\.(PropertyFiles)\.([A-Za-z0-9\-_]+))?")


def _is_expr(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in _EXPR_KEYS


def _dummy(shape: Any) -> Any:
    kind = shape.type_name
    if kind == "string":
        if shape.enum:
            return shape.enum[0]
        return "s3://cloudml-validation/dummy" if "Uri" in shape.name or "Url" in shape.name else (
            "arn:aws:iam::123456789012:role/cloudml-validation")
    if kind in ("integer", "long"):
        return max(1, int(shape.metadata.get("min", 1)))
    if kind in ("double", "float"):
        return 1.0
    if kind == "boolean":
        return True
    if kind == "list":
        return [_dummy(shape.member)]
    return {}


def _substitute(value: Any, shape: Any) -> Any:
    """Replace expressions with dummies of the shape's type, following the shape tree."""
    if _is_expr(value):
        return _dummy(shape)
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        return {k: _substitute(v, shape.members[k]) if k in shape.members else v for k, v in value.items()}
    if kind == "list" and isinstance(value, list):
        return [_substitute(v, shape.member) for v in value]
    if kind == "map" and isinstance(value, dict):
        return {k: _substitute(v, shape.value) for k, v in value.items()}
    return value


def _limits(value: Any, shape: Any, path: str) -> list[str]:
    """What botocore's ParamValidator leaves out: maximums and enums from the service model."""
    kind = shape.type_name
    top = shape.metadata.get("max")
    out: list[str] = []
    if kind == "string" and isinstance(value, str):
        if top is not None and len(value) > top:
            out.append(f"{path}: {len(value)} characters, at most {top}")
        if shape.enum and value not in shape.enum:
            out.append(f"{path}: {value!r} is not one of {', '.join(shape.enum)}")
    elif kind in ("integer", "long", "double", "float") and isinstance(value, (int, float)) and not isinstance(value, bool):
        if top is not None and value > top:
            out.append(f"{path}: {value} is above the maximum {top}")
    elif kind == "list" and isinstance(value, list):
        if top is not None and len(value) > top:
            out.append(f"{path}: {len(value)} items, at most {top}")
        for i, v in enumerate(value):
            out += _limits(v, shape.member, f"{path}[{i}]")
    elif kind == "map" and isinstance(value, dict):
        if top is not None and len(value) > top:
            out.append(f"{path}: {len(value)} entries, at most {top}")
        for k, v in value.items():
            out += _limits(v, shape.value, f"{path}.{k}")
    elif kind == "structure" and isinstance(value, dict):
        for k, v in value.items():
            if k in shape.members:
                out += _limits(v, shape.members[k], f"{path}.{k}" if path else k)
    return out


def _walk_steps(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for s in steps:
        out.append(s)
        if s.get("Type") == "Condition":
            args = s.get("Arguments", {})
            out += _walk_steps(args.get("IfSteps", [])) + _walk_steps(args.get("ElseSteps", []))
    return out


def _refs(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = []
        if isinstance(value.get("Get"), str):
            found.append(value["Get"])
        return found + [r for v in value.values() for r in _refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in _refs(v)]
    return []


def validate_definition(definition: dict[str, Any]) -> list[str]:
    """Every problem found, as readable strings (empty when the definition is valid).

    Example:
        >>> validate_definition({"Version": "2020-12-01", "Steps": [
        ...     {"Name": "a", "Type": "Fail", "Arguments": {}, "DependsOn": ["nope"]}]})
        ['step a: DependsOn names unknown step nope', 'step a: a Fail step needs Arguments.ErrorMessage']
    """
    import botocore.session
    from botocore.validate import ParamValidator

    model = botocore.session.get_session().get_service_model("sagemaker")
    validator = ParamValidator()
    problems: list[str] = []
    text = json.dumps(definition)
    request = {"PipelineName": "cloudml-validation", "PipelineDefinition": text,
               "RoleArn": "arn:aws:iam::123456789012:role/cloudml-validation",
               "ClientRequestToken": "cloudml-validation-token-0000000000"}
    shape = model.operation_model("CreatePipeline").input_shape
    report = validator.validate(request, shape)
    found = ([report.generate_report()] if report.has_errors() else []) + _limits(request, shape, "")
    problems += [f"CreatePipeline: {p}" for p in found]
    steps = _walk_steps(definition.get("Steps", []))
    names = [s.get("Name") for s in steps]
    dupes = sorted({str(n) for n in names if names.count(n) > 1})
    if dupes:
        problems.append(f"duplicate step names: {', '.join(map(str, dupes))}")
    if len(steps) > QUOTA_STEPS:
        problems.append(f"{len(steps)} steps: SageMaker's default quota is {QUOTA_STEPS} per pipeline")
    params = {p["Name"] for p in definition.get("Parameters", [])}
    by_name = {s.get("Name"): s for s in steps}
    for s in steps:
        name, kind = s.get("Name"), s.get("Type")
        for dep in s.get("DependsOn", []):
            if dep not in by_name:
                problems.append(f"step {name}: DependsOn names unknown step {dep}")
        for ref in _refs(s.get("Arguments", {})):
            m = _REF.match(ref)
            if ref.startswith("Execution."):
                continue
            if m is None:
                problems.append(f"step {name}: unknown reference {ref}")
            elif m.group(1) == "Parameters" and m.group(2) not in params:
                problems.append(f"step {name}: reference to undeclared parameter {m.group(2)}")
            elif m.group(1) == "Steps" and m.group(2) not in by_name:
                problems.append(f"step {name}: reference to unknown step {m.group(2)}")
            elif m.group(3) == "PropertyFiles":
                files = {f["PropertyFileName"] for f in by_name[m.group(2)].get("PropertyFiles", [])}
                if m.group(4) not in files:
                    problems.append(f"step {name}: step {m.group(2)} declares no property file {m.group(4)}")
        if kind in _OPERATION:
            op, job_key = _OPERATION[kind]
            shape = model.operation_model(op).input_shape
            args = _substitute(dict(s.get("Arguments", {})), shape)
            if job_key:
                args[job_key] = "cloudml-validation-job"
            report = validator.validate(args, shape)
            found = ([report.generate_report()] if report.has_errors() else []) + _limits(args, shape, "")
            problems += [f"step {name} ({op}): {p}" for p in found]
        elif kind == "Fail" and "ErrorMessage" not in s.get("Arguments", {}):
            problems.append(f"step {name}: a Fail step needs Arguments.ErrorMessage")
        elif kind == "Condition":
            args = s.get("Arguments", {})
            if not args.get("Conditions"):
                problems.append(f"step {name}: a Condition step needs Conditions")
            for branch in ("IfSteps", "ElseSteps"):
                if len(args.get(branch, [])) > 20:
                    problems.append(f"step {name}: {branch} holds more than 20 steps")
        elif kind not in ("Fail", "Condition"):
            problems.append(f"step {name}: unknown step type {kind}")
    return problems
