"""Conditions without Azure ML's ``if_else`` preview: every step of a branch runs behind a runtime guard.

Azure ML's ``if_else`` node is private preview (notes §1.4), and azure-ai-ml refuses an ``if_else`` inside
another's block. So, unless ``enable_preview_conditions`` is on, a condition compiles to no node at all:
every node inside its branches (``cloudml.dag.branch_owners``: the steps named in ``then``/``else`` and
the steps that depend on them) always starts, and its command runs behind cloudml's runtime::

    python cloudml_runtime.py --guard '[{"name": "gate", "condition": "...", "expect": true}, ...]'
        --metrics=evaluate.metrics=${{inputs.guard_evaluate__metrics}} --param=min_auc=${{inputs.min_auc}}
        --param-type=min_auc=float --outputs ${{outputs.model}} -- sh -c '<the step command>'

The list holds every enclosing condition, outermost first, with the branch polarity (``expect: false``
on an else branch); the runtime evaluates it left to right and stops at the first miss, so an inner
condition's metrics (which a skipped outer branch never wrote) are never read. A guarded node gets the
metrics outputs its conditions read as extra ``uri_folder`` inputs (``guard_<node>__<output>``) and the
parameters they compare against as inputs. When the branch is not taken the node prints
``skipped: condition 'gate' is false: ...``, writes ``_cloudml_skipped.json`` into each output folder
(so every binding downstream still finds a folder; those nodes sit in the same branch and skip too) and
exits 0: in Azure ML Studio it shows **Completed**, with the skip line in its log, and it still takes
its compute for the few seconds the check lasts. A fail step on an else branch fails only when its
guard holds.

With ``enable_preview_conditions`` the outermost condition of each step stays an ``if_else`` node
(nodes off the taken branch do not start) and only the conditions nested inside it become guards,
since azure-ai-ml cannot nest ``if_else`` blocks.

A guarded node needs ``python`` in its image; a register step runs cloudml's runtime
(``python -m cloudml.runtime``) anyway, a node with cloudml's runtime file in its code folder
(``cloudml_runtime.py``, staged by the client with ``cloudml_conditions.py`` beside it) needs no cloudml
install. A tuning step (a sweep node) inside a branch is refused: every trial would skip, and a sweep
whose trials log no objective has no best trial.

Example:
    >>> import cloudml
    >>> p = cloudml.loads('''
    ... kind: Pipeline
    ... name: p
    ... defaults: {image: python:3.11}
    ... steps:
    ...   - {name: ev, command: "e {{outputs.m}}", outputs: {m: metrics}}
    ...   - {name: gate, condition: 'ev.outputs.m["auc"] > 0.5', then: [a]}
    ...   - {name: a, command: "echo a"}
    ... ''')
    >>> guard_chains(p, preview=False)
    {'a': [('gate', 'then')]}
"""

from __future__ import annotations

import json
from typing import Any

from cloudml.errors import CompileError, UnsupportedFeatureError
from cloudml.spec.pipeline import Pipeline
from cloudml.spec.steps import ConditionStep

__all__ = ["GUARD_INPUT_PREFIX", "guard_chains", "guard_node"]

GUARD_INPUT_PREFIX = "guard_"
_PTYPE = {"string": "string", "int": "integer", "float": "number", "bool": "boolean"}
_RUNTIME_TYPE = {"string": "str", "int": "int", "float": "float", "bool": "bool"}


def guard_chains(p: Pipeline, preview: bool) -> dict[str, list[tuple[str, str]]]:
    """Step -> the ``(condition, "then"|"else")`` branches it needs a runtime guard for, outermost first.

    Condition steps and top-level steps get none. With ``preview`` the outermost condition is an
    ``if_else`` node, so only the conditions nested inside it are guards.

    Example:
        >>> import cloudml
        >>> p = cloudml.loads('''
        ... kind: Pipeline
        ... name: p
        ... steps:
        ...   - {name: ev, command: "e {{outputs.m}}", outputs: {m: metrics}, image: i}
        ...   - {name: g1, condition: 'ev.outputs.m["auc"] > 0.5', then: [g2]}
        ...   - {name: g2, condition: 'ev.outputs.m["auc"] > 0.7', then: [a], else: [b]}
        ...   - {name: a, command: "echo a", image: i}
        ...   - {name: b, command: "echo b", image: i}
        ... ''')
        >>> guard_chains(p, preview=False)["b"], guard_chains(p, preview=True)["b"]
        ([('g1', 'then'), ('g2', 'else')], [('g2', 'else')])
    """
    from cloudml.dag import branch_owners

    owner = branch_owners(p)
    out: dict[str, list[tuple[str, str]]] = {}
    for s in p.steps:
        if isinstance(s, ConditionStep):
            continue
        chain: list[tuple[str, str]] = []
        o = owner.get(s.name)
        while o is not None:
            chain.append((o[0], o[1]))
            o = owner.get(o[0])
        chain.reverse()
        if preview:
            chain = chain[1:]
        if chain:
            out[s.name] = chain
    return out


def guard_node(node: dict[str, Any], step: str, chain: list[tuple[str, str]], p: Pipeline,
               runtime: str) -> dict[str, Any]:
    """The node (a new dict) with its component's command run behind ``--guard`` for ``chain``.

    ``runtime`` is how the node starts cloudml's runtime (``python cloudml_runtime.py`` or, where
    cloudml is installed, ``python -m cloudml.runtime``). The conditions' metrics outputs and parameters
    become inputs of the node.

    Example:
        >>> import cloudml
        >>> p = cloudml.loads('''
        ... kind: Pipeline
        ... name: p
        ... steps:
        ...   - {name: ev, command: "e {{outputs.m}}", outputs: {m: metrics}, image: i}
        ...   - {name: gate, condition: 'ev.outputs.m["auc"] > 0.5', then: [a]}
        ...   - {name: a, command: "echo a", image: i}
        ... ''')
        >>> n = guard_node({"type": "command", "component": {"type": "command", "command": "echo a"}}, "a",
        ...                [("gate", "then")], p, "python cloudml_runtime.py")
        >>> n["inputs"]
        {'guard_ev__m': '${{parent.jobs.ev.outputs.m}}'}
        >>> n["component"]["command"].split(" --")[0]
        'python cloudml_runtime.py'
    """
    from cloudml.adapters.azureml.compiler import _word, node_name

    if node.get("type") == "sweep":
        raise UnsupportedFeatureError(
            "azureml", step, "step.tuning", f"the tuning step sits in the branch of condition '{chain[-1][0]}', "
            "which Azure ML without the if_else preview runs behind a runtime guard: every trial would skip, "
            "and a sweep whose trials log no objective has no best trial",
            hint="move the tuning step before the condition (gate the steps that use its result), or make the "
            "condition top-level and set azureml.enable_preview_conditions")
    steps = {s.name: s for s in p.steps}
    node = {**node, "component": dict(node["component"])}
    comp = node["component"]
    node_inputs: dict[str, Any] = dict(node.get("inputs") or {})
    comp_inputs: dict[str, Any] = dict(comp.get("inputs") or {})
    guards: list[dict[str, Any]] = []
    words: list[str] = []
    for cond_name, key in chain:
        cond = steps[cond_name]
        assert isinstance(cond, ConditionStep)
        guards.append({"name": cond_name, "condition": str(cond.condition), "expect": key == "then"})
        for m in cond.condition.metric_operands():
            name = f"{GUARD_INPUT_PREFIX}{node_name(m.step)}__{m.output}"
            if name not in node_inputs:
                _claim(step, name, node_inputs)
                node_inputs[name] = f"${{{{parent.jobs.{node_name(m.step)}.outputs.{m.output}}}}}"
                comp_inputs[name] = {"type": "uri_folder"}
                words.append(f"--metrics={m.step}.{m.output}=${{{{inputs.{name}}}}}")
        for o in cond.condition.param_operands():
            binding = f"${{{{parent.inputs.{o.name}}}}}"
            if o.name not in node_inputs:
                _claim(step, o.name, node_inputs)
                node_inputs[o.name] = binding
                comp_inputs[o.name] = {"type": _PTYPE[p.parameters[o.name].type]}
            elif node_inputs[o.name] != binding:
                raise CompileError(f"step '{step}': condition '{cond_name}' compares against parameter {o.name}, "
                                   "and the step has an input of that name bound to something else",
                                   hint=f"rename the step's input {o.name}")
            flag = f"--param={o.name}=${{{{inputs.{o.name}}}}}"
            if flag not in words:
                words += [flag, f"--param-type={o.name}={_RUNTIME_TYPE[p.parameters[o.name].type]}"]
    for out in node.get("outputs") or {}:
        words += ["--outputs", f"${{{{outputs.{out}}}}}"]
    head = [*runtime.split(), "--guard", json.dumps(guards, separators=(",", ":")), *words, "--", "sh", "-c"]
    comp["command"] = " ".join(_word(w) for w in head) + " " + _quote(comp["command"])
    node["inputs"], comp["inputs"] = node_inputs, comp_inputs
    return node


def _quote(command: str) -> str:
    import shlex

    return shlex.quote(command)


def _claim(step: str, name: str, taken: dict[str, Any]) -> None:
    same = [n for n in taken if n.lower() == name.lower()]
    if same:
        raise CompileError(f"step '{step}': its guard needs an input named {name}, which clashes with input "
                           f"{same[0]} (Azure ML ignores case)", hint=f"rename the step's input {same[0]}")
