"""Validate a compiled Azure ML pipeline job: our reference checks, plus azure-ai-ml's ``load_job`` when installed.

``load_job`` catches wrong types and unknown top-level keys but not unknown node or component keys,
dangling bindings, undeclared inputs or placeholders that name nothing (../shared/notes/azureml.md
§4), so those are checked here: node names are identifiers, every ``${{parent.jobs.X.outputs.Y}}``
names an existing node and output, every ``${{parent.inputs.P}}`` a pipeline input, node inputs and
outputs match the component's declarations, ``${{inputs.x}}`` / ``${{outputs.y}}`` in commands are
declared, node and component keys come from a closed set, and bindings form no cycle.

Example:
    >>> validate_job({"type": "pipeline", "jobs": {"a": {"type": "command", "component": {
    ...     "type": "command", "command": "echo ${{inputs.x}}", "environment": {"image": "i"}}}}})[0]
    'a: command uses ${{inputs.x}}, which the component does not declare'
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["COMPONENT_KEYS", "NODE_KEYS", "validate_job"]

NODE_KEYS = {"type", "component", "inputs", "outputs", "compute", "resources", "limits", "environment_variables",
             "description", "display_name"}
COMPONENT_KEYS = {"type", "name", "version", "display_name", "command", "environment", "code", "inputs", "outputs",
                  "is_deterministic", "description"}
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")
_PARENT_JOB = re.compile(r"^\$\{\{parent\.jobs\.([A-Za-z0-9_]+)\.outputs\.([A-Za-z0-9_]+)\}\}$")
_PARENT_INPUT = re.compile(r"^\$\{\{parent\.inputs\.([A-Za-z0-9_]+)\}\}$")
_COMMAND_REF = re.compile(r"\$\{\{(inputs|outputs)\.([A-Za-z0-9_]+)\}\}")


def _node_problems(name: str, node: dict[str, Any], jobs: dict[str, Any], pipeline_inputs: dict[str, Any],
                   edges: dict[str, set[str]]) -> list[str]:
    problems = [f"{name}: unknown node key {k}" for k in node if k not in NODE_KEYS]
    comp = node.get("component", {})
    problems += [f"{name}: unknown component key {k}" for k in comp if k not in COMPONENT_KEYS]
    declared_in, declared_out = comp.get("inputs", {}), comp.get("outputs", {})
    for key, value in node.get("inputs", {}).items():
        if key not in declared_in:
            problems.append(f"{name}: input {key} is not declared by its component")
        if isinstance(value, dict):  # the long form {path: ${{...}}, mode: ...}
            value = value.get("path")
        if isinstance(value, str):
            job = _PARENT_JOB.match(value)
            parent = _PARENT_INPUT.match(value)
            if job:
                upstream, output = job.groups()
                if upstream not in jobs:
                    problems.append(f"{name}: input {key} binds to unknown node {upstream}")
                elif output not in {**jobs[upstream].get("component", {}).get("outputs", {}),
                                    **jobs[upstream].get("outputs", {})}:
                    problems.append(f"{name}: input {key} binds to {upstream}.outputs.{output}, which does not exist")
                edges[name].add(upstream)
            elif parent and parent.group(1) not in pipeline_inputs:
                problems.append(f"{name}: input {key} binds to unknown pipeline input {parent.group(1)}")
    for key in node.get("outputs", {}):
        if key not in declared_out:
            problems.append(f"{name}: output {key} is not declared by its component")
    for kind, key in _COMMAND_REF.findall(comp.get("command", "")):
        if key not in (declared_in if kind == "inputs" else declared_out):
            problems.append(f"{name}: command uses ${{{{{kind}.{key}}}}}, which the component does not declare")
    if not comp.get("command"):
        problems.append(f"{name}: the component has no command")
    return problems


def _cycle(edges: dict[str, set[str]]) -> list[str]:
    state: dict[str, int] = {}

    def visit(n: str, path: list[str]) -> list[str] | None:
        state[n] = 1
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                return [*path, n, m]
            if m not in state:
                found = visit(m, [*path, n])
                if found:
                    return found
        state[n] = 2
        return None

    for n in sorted(edges):
        if n not in state:
            found = visit(n, [])
            if found:
                return [" -> ".join(found)]
    return []


def _load_job(document: dict[str, Any]) -> list[str]:
    try:
        from azure.ai.ml import load_job
    except ImportError:
        return []
    import copy
    import tempfile
    from pathlib import Path

    import yaml

    document = copy.deepcopy(document)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "job.yaml"
        # load_job resolves code: folders; point each at an empty folder inside tmp, never the real path
        for i, node in enumerate(document.get("jobs", {}).values()):
            component = node.get("component") if isinstance(node, dict) else None
            if isinstance(component, dict) and component.get("code"):
                component["code"] = f"code_{i}"
                (Path(tmp) / f"code_{i}").mkdir()
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        try:
            load_job(source=str(path))
        except Exception as e:  # the SDK raises its own exception types; any of them is a finding
            return [f"load_job: {type(e).__name__}: {str(e)[:500]}"]
    return []


def validate_job(document: dict[str, Any]) -> list[str]:
    """Every problem found, as readable strings (empty when the job is valid).

    Example:
        >>> validate_job({"type": "pipeline", "jobs": {"b": {"type": "command", "inputs": {
        ...     "x": "${{parent.jobs.a.outputs.o}}"}, "component": {"type": "command", "command": "cat ${{inputs.x}}",
        ...     "inputs": {"x": {"type": "uri_folder"}}}}}})[0]
        'b: input x binds to unknown node a'
    """
    problems: list[str] = []
    if document.get("type") != "pipeline":
        problems.append("type must be 'pipeline'")
    jobs = document.get("jobs", {})
    pipeline_inputs = document.get("inputs", {})
    edges: dict[str, set[str]] = {name: set() for name in jobs}
    for name, node in jobs.items():
        if not _IDENT.match(name):
            problems.append(f"{name}: node names are lower-case identifiers")
        problems += _node_problems(name, node, jobs, pipeline_inputs, edges)
    problems += [f"cycle: {c}" for c in _cycle(edges)]
    return problems + _load_job(document)
