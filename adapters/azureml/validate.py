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

from cloudml.adapters.azureml.sweep import SWEEP_KEYS

__all__ = ["COMPONENT_KEYS", "CONTROL_FLOW", "IF_ELSE_KEYS", "NODE_KEYS", "PIPELINE_OUTPUT_KEYS", "validate_job"]

NODE_KEYS = {"type", "component", "inputs", "outputs", "compute", "resources", "limits", "environment_variables",
             "description", "display_name"}
COMPONENT_KEYS = {"type", "name", "version", "display_name", "command", "environment", "code", "inputs", "outputs",
                  "is_deterministic", "description"}
IF_ELSE_KEYS = {"type", "condition", "true_block", "false_block"}
# node types azure-ai-ml loads only with AZURE_ML_CLI_PRIVATE_FEATURES_ENABLED=true (private preview)
CONTROL_FLOW = {"if_else", "do_while", "parallel_for"}
PIPELINE_OUTPUT_KEYS = {"type", "name", "version", "mode", "path"}  # azure-ai-ml 1.35's OutputSchema: no tags
_MODEL_TYPES = {"custom_model", "mlflow_model", "triton_model"}
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")
_PARENT_JOB = re.compile(r"^\$\{\{parent\.jobs\.([A-Za-z0-9_]+)\.outputs\.([A-Za-z0-9_]+)\}\}$")
_PARENT_INPUT = re.compile(r"^\$\{\{parent\.inputs\.([A-Za-z0-9_]+)\}\}$")
_PARENT_OUTPUT = re.compile(r"^\$\{\{parent\.outputs\.([A-Za-z0-9_]+)\}\}$")
_NODE_REF = re.compile(r"^\$\{\{parent\.jobs\.([A-Za-z0-9_]+)\}\}$")
_COMMAND_REF = re.compile(r"\$\{\{(inputs|outputs)\.([A-Za-z0-9_]+)\}\}")


def _if_else_problems(name: str, node: dict[str, Any], jobs: dict[str, Any], edges: dict[str, set[str]],
                      guarded: dict[str, str]) -> list[str]:
    """An ``if_else`` node: its condition is a boolean output of an existing node; its blocks name existing
    nodes, each node in at most one block of one ``if_else``."""
    problems = [f"{name}: unknown if_else key {k}" for k in node if k not in IF_ELSE_KEYS]
    condition = node.get("condition")
    match = _PARENT_JOB.match(condition) if isinstance(condition, str) else None
    if match is None:
        problems.append(f"{name}: condition must bind to a node output, ${{{{parent.jobs.<node>.outputs.<name>}}}}")
    else:
        upstream, output = match.groups()
        declared = jobs.get(upstream, {}).get("component", {}).get("outputs", {})
        if upstream not in jobs:
            problems.append(f"{name}: condition binds to unknown node {upstream}")
        elif declared.get(output, {}).get("type") != "boolean":
            problems.append(f"{name}: condition binds to {upstream}.outputs.{output}, which is not a boolean output")
        else:
            edges[name].add(upstream)
    if not node.get("true_block") and not node.get("false_block"):
        problems.append(f"{name}: an if_else needs a true_block or a false_block")
    for key in ("true_block", "false_block"):
        block = node.get(key) or []
        for ref in block if isinstance(block, list) else [block]:
            found = _NODE_REF.match(ref) if isinstance(ref, str) else None
            if found is None or found.group(1) not in jobs or found.group(1) == name:
                problems.append(f"{name}: {key} entry {ref!r} is not a binding to another node of this pipeline")
                continue
            target = found.group(1)
            if target in guarded:
                problems.append(f"{name}: node {target} is already in a block of {guarded[target]}")
            guarded[target] = name
            edges[target].add(name)
    return problems


def _sweep_problems(name: str, node: dict[str, Any]) -> list[str]:
    """A sweep node: its trial is an inline command component, every searched name is a trial input the
    node does not bind, and it has an objective and limits."""
    trial = node.get("trial", {})
    problems = [f"{name}: unknown sweep node key {k}" for k in node if k not in SWEEP_KEYS]
    if trial.get("type") != "command":
        problems.append(f"{name}: the trial must be an inline command component (type: command)")
    for key in node.get("search_space") or {}:
        if key not in trial.get("inputs", {}):
            problems.append(f"{name}: search space {key} is not an input of the trial")
        if key in node.get("inputs", {}):
            problems.append(f"{name}: search space {key} is also bound as a node input")
    if not node.get("search_space"):
        problems.append(f"{name}: a sweep needs a search_space")
    if not (node.get("objective") or {}).get("primary_metric"):
        problems.append(f"{name}: a sweep needs objective.primary_metric")
    if not (node.get("limits") or {}).get("max_total_trials"):
        problems.append(f"{name}: a sweep needs limits.max_total_trials")
    return problems


def _node_problems(name: str, node: dict[str, Any], jobs: dict[str, Any], pipeline_inputs: dict[str, Any],
                   edges: dict[str, set[str]], pipeline_outputs: dict[str, Any] | None = None) -> list[str]:
    sweep = node.get("type") == "sweep"
    problems = _sweep_problems(name, node) if sweep else [f"{name}: unknown node key {k}" for k in node
                                                          if k not in NODE_KEYS]
    comp = node.get("trial" if sweep else "component", {})
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
                elif output not in {**_component(jobs[upstream]).get("outputs", {}),
                                    **jobs[upstream].get("outputs", {})}:
                    problems.append(f"{name}: input {key} binds to {upstream}.outputs.{output}, which does not exist")
                edges[name].add(upstream)
            elif parent and parent.group(1) not in pipeline_inputs:
                problems.append(f"{name}: input {key} binds to unknown pipeline input {parent.group(1)}")
    for key, value in node.get("outputs", {}).items():
        if key not in declared_out:
            problems.append(f"{name}: output {key} is not declared by its component")
        promoted = _PARENT_OUTPUT.match(value) if isinstance(value, str) else None
        if promoted and promoted.group(1) not in (pipeline_outputs or {}):
            problems.append(f"{name}: output {key} binds to unknown pipeline output {promoted.group(1)}")
        elif promoted and key in declared_out and (pipeline_outputs or {})[promoted.group(1)].get("type") != \
                declared_out[key].get("type"):
            problems.append(f"{name}: output {key} is {declared_out[key].get('type')} but pipeline output "
                            f"{promoted.group(1)} is {(pipeline_outputs or {})[promoted.group(1)].get('type')}")
    for kind, key in _COMMAND_REF.findall(comp.get("command", "")):
        if key not in (declared_in if kind == "inputs" else declared_out):
            problems.append(f"{name}: command uses ${{{{{kind}.{key}}}}}, which the component does not declare")
    if not comp.get("command"):
        problems.append(f"{name}: the component has no command")
    return problems


def _component(node: dict[str, Any]) -> dict[str, Any]:
    """A node's component: ``component``, or a sweep node's ``trial``."""
    comp = node.get("trial" if node.get("type") == "sweep" else "component", {})
    return comp if isinstance(comp, dict) else {}


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


_LOAD_IN_CHILD = (
    "import sys\n"
    "from azure.ai.ml import load_job\n"
    "try:\n load_job(source=sys.argv[1])\n"
    "except Exception as e:\n print(f'{type(e).__name__}: {e}'); sys.exit(1)\n"
)


def _load_in_child(path: str) -> list[str]:
    """load_job in a fresh interpreter with the private-preview flag, which azure-ai-ml reads when it loads."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "AZURE_ML_CLI_PRIVATE_FEATURES_ENABLED": "true", "AZURE_ML_DISABLE_ON_DISK_CACHE": "true"}
    proc = subprocess.run([sys.executable, "-c", _LOAD_IN_CHILD, path], capture_output=True, text=True, env=env,
                          timeout=300)
    if proc.returncode == 0:
        return []
    return [f"load_job (private preview): {(proc.stdout or proc.stderr).strip()[:500]}"]


def _load_job(document: dict[str, Any]) -> list[str]:
    import importlib.util

    try:
        if importlib.util.find_spec("azure.ai.ml") is None:
            return []
    except ImportError:  # no azure namespace at all
        return []
    import copy
    import tempfile
    from pathlib import Path

    import yaml

    document = copy.deepcopy(document)
    preview = any(isinstance(n, dict) and n.get("type") in CONTROL_FLOW for n in document.get("jobs", {}).values())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "job.yaml"
        # load_job resolves code: folders; point each at an empty folder inside tmp, never the real path
        for i, node in enumerate(document.get("jobs", {}).values()):
            component = _component(node) if isinstance(node, dict) else None
            if isinstance(component, dict) and component.get("code"):
                component["code"] = f"code_{i}"
                (Path(tmp) / f"code_{i}").mkdir()
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        if preview:  # if_else loads only when the flag was set before azure.ai.ml was imported
            return _load_in_child(str(path))
        from azure.ai.ml import load_job

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
    pipeline_outputs = document.get("outputs", {})
    edges: dict[str, set[str]] = {name: set() for name in jobs}
    guarded: dict[str, str] = {}
    for name, node in jobs.items():
        if not _IDENT.match(name):
            problems.append(f"{name}: node names are lower-case identifiers")
        if isinstance(node, dict) and node.get("type") == "if_else":
            problems += _if_else_problems(name, node, jobs, edges, guarded)
        else:
            problems += _node_problems(name, node, jobs, pipeline_inputs, edges, pipeline_outputs)
    for name, out in pipeline_outputs.items():
        problems += [f"pipeline output {name}: unknown key {k}" for k in out if k not in PIPELINE_OUTPUT_KEYS]
        if "version" in out and "name" not in out:
            problems.append(f"pipeline output {name}: a version needs a name")
        if "name" in out and out.get("type") in _MODEL_TYPES and out.get("mode", "upload") != "upload":
            problems.append(f"pipeline output {name}: a registered model output is uploaded (mode: upload)")
    problems += [f"cycle: {c}" for c in _cycle(edges)]
    return problems + _load_job(document)
