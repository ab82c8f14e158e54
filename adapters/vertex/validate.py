"""Validate a compiled KFP IR: strict protobuf parses plus the reference checks ParseDict skips.

1. ``ParseDict`` of the whole document into ``pipeline_spec_pb2.PipelineSpec`` (strict: unknown keys,
   wrong types and bad enums are errors);
2. a second strict parse of ``deploymentSpec`` into ``PipelineDeploymentConfig`` (the first parse sees
   it as a free-form Struct);
3. references: ``root`` exists, every ``componentRef`` and ``executorLabel`` resolves, every
   ``dependentTasks`` entry and ``producerTask`` is a task of the same DAG and declares that output,
   every ``componentInput*`` is declared by the enclosing component, CEL conditions only read inputs
   of their task, placeholders name declared inputs and outputs.

Needs ``kfp-pipeline-spec`` (imported here only, never by the compiler).

Example:
    >>> validate_ir({"pipelineInfo": {"name": "p"}, "schemaVersion": "2.1.0", "root": {"dag": {"tasks": {}}}})
    []
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["RUNTIME_PLACEHOLDERS", "validate_ir"]

_PH = re.compile(r"\{\{\$\.(inputs|outputs)\.(parameters|artifacts)\['([^']+)'\]")
_CEL_INPUT = re.compile(r"inputs\.parameter_values\['([^']+)'\]")
_RUNTIME_PH = re.compile(r"\{\{\$\.(pipeline_[a-z_]+)\}\}")
# run-time placeholders: kfp 2.17's dsl constants, plus the two Vertex resolves for
# google-cloud-pipeline-components (its _placeholders.py)
RUNTIME_PLACEHOLDERS = {"pipeline_job_name", "pipeline_job_resource_name", "pipeline_job_uuid", "pipeline_task_name",
                        "pipeline_task_uuid", "pipeline_root", "pipeline_job_create_time_utc",
                        "pipeline_job_schedule_time_utc", "pipeline_google_cloud_project_id",
                        "pipeline_google_cloud_location"}


def _parse(document: Any) -> list[str]:
    try:
        from google.protobuf import json_format
        from kfp.pipeline_spec import pipeline_spec_pb2
    except ImportError:
        from cloudml.errors import AdapterNotInstalledError

        raise AdapterNotInstalledError("vertex (validation)", "gcp", ["kfp-pipeline-spec"]) from None

    if not isinstance(document, dict):
        return [f"the IR must be a mapping, not {type(document).__name__}"]
    problems = []
    for label, value, message in (("PipelineSpec", document, pipeline_spec_pb2.PipelineSpec()),
                                  ("deploymentSpec", document.get("deploymentSpec", {}),
                                   pipeline_spec_pb2.PipelineDeploymentConfig())):
        try:
            json_format.ParseDict(value, message)
        except (json_format.ParseError, AttributeError, TypeError, ValueError) as e:
            problems.append(f"{label}: {e}")
    return problems


def _dag_problems(where: str, component: dict[str, Any], components: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    tasks = component.get("dag", {}).get("tasks", {})
    declared = component.get("inputDefinitions", {})
    for name, task in tasks.items():
        ref = task.get("componentRef", {}).get("name")
        if ref not in components:
            problems.append(f"{where}/{name}: componentRef {ref} does not exist")
            continue
        for dep in task.get("dependentTasks", []):
            if dep not in tasks:
                problems.append(f"{where}/{name}: dependentTasks names {dep}, not a task of this DAG")
        callee = components[ref].get("inputDefinitions", {})
        inputs = task.get("inputs", {})
        for kind in ("parameters", "artifacts"):
            for key, source in inputs.get(kind, {}).items():
                if key not in callee.get(kind, {}):
                    problems.append(f"{where}/{name}: input {key} is not declared by {ref}")
                problems += _source_problems(f"{where}/{name}", kind, source, tasks, components, declared)
        condition = task.get("triggerPolicy", {}).get("condition")
        if condition:
            for key in _CEL_INPUT.findall(condition):
                if key not in inputs.get("parameters", {}):
                    problems.append(f"{where}/{name}: condition reads {key}, not an input of the task")
    return problems


def _source_problems(where: str, kind: str, source: dict[str, Any], tasks: dict[str, Any],
                     components: dict[str, Any], declared: dict[str, Any]) -> list[str]:
    for key in ("taskOutputArtifact", "taskOutputParameter"):
        if key in source:
            producer = source[key].get("producerTask")
            out_key = source[key].get("outputArtifactKey") or source[key].get("outputParameterKey")
            if producer not in tasks:
                return [f"{where}: producerTask {producer} is not a task of this DAG"]
            comp = components.get(tasks[producer].get("componentRef", {}).get("name"), {})
            outs = comp.get("outputDefinitions", {}).get("artifacts" if key == "taskOutputArtifact" else "parameters", {})
            if out_key not in outs:
                return [f"{where}: {producer} declares no output {out_key}"]
    for key, bucket in (("componentInputArtifact", "artifacts"), ("componentInputParameter", "parameters")):
        if key in source and source[key] not in declared.get(bucket, {}):
            return [f"{where}: {key} {source[key]} is not an input of the enclosing component"]
    return []


def validate_ir(document: dict[str, Any]) -> list[str]:
    """Every problem found, as readable strings (empty when the IR is valid).

    Example:
        >>> validate_ir({"pipelineInfo": {"name": "p"}, "schemaVersion": "2.1.0",
        ...              "root": {"dag": {"tasks": {"a": {"taskInfo": {"name": "a"}, "componentRef": {"name": "x"}}}}}})
        ['root/a: componentRef x does not exist']
    """
    problems = _parse(document)
    if not isinstance(document, dict):
        return problems
    try:
        return problems + _reference_problems(document)
    except (AttributeError, TypeError, KeyError) as e:
        # the reference checks assume the shapes the strict parse guarantees; when it already failed,
        # its problems say what is wrong
        return problems or [f"unexpected IR shape: {type(e).__name__}: {e}"]


def _reference_problems(document: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    components = document.get("components", {})
    executors = document.get("deploymentSpec", {}).get("executors", {})
    if "root" not in document:
        return [*problems, "root is missing"]
    problems += _dag_problems("root", document["root"], components)
    for name, comp in components.items():
        if "dag" in comp:
            problems += _dag_problems(name, comp, components)
        elif comp.get("executorLabel") not in executors:
            problems.append(f"{name}: executorLabel {comp.get('executorLabel')} does not exist")
        else:
            container = executors[comp["executorLabel"]].get("container", {})
            declared = {("inputs", k, n) for k, v in comp.get("inputDefinitions", {}).items() for n in v}
            declared |= {("outputs", k, n) for k, v in comp.get("outputDefinitions", {}).items() for n in v}
            for text in container.get("command", []) + container.get("args", []):
                for io, kind, key in _PH.findall(text):
                    if (io, kind, key) not in declared:
                        problems.append(f"{name}: placeholder {io}.{kind}['{key}'] is not declared")
                problems += [f"{name}: unknown run-time placeholder {{{{$.{ph}}}}}" for ph in _RUNTIME_PH.findall(text)
                             if ph not in RUNTIME_PLACEHOLDERS]
    return problems
