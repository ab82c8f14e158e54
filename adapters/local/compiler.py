"""Compile a pipeline into the local backend's execution plan (pure: no files are touched).

The plan fixes everything the local runner needs: the waves of steps that may run in parallel,
each step's argv with placeholders resolved to paths under the run folder, its environment (the
container contract every backend shares), retries, timeout, caching and condition guards.

Paths are relative to the run folder (``$CLOUDML_RUN_DIR``): outputs live at
``steps/<step>/outputs/<name>`` (a directory; a ``metrics`` output is ``.../metrics.json``).

Example:
    >>> import cloudml
    >>> from cloudml.adapters.local.compiler import compile_plan
    >>> b = cloudml.PipelineBuilder("p")
    >>> a = b.add_step("a", command="python make.py --out {{outputs.data}}", outputs={"data": "dataset"})
    >>> _ = b.add_step("b", command="python use.py {{inputs.x}}", inputs={"x": a.outputs["data"]})
    >>> plan = compile_plan(b.build())
    >>> plan["waves"], plan["steps"]["b"]["argv"]
    ([['a'], ['b']], ['python', 'use.py', 'steps/a/outputs/data'])
"""

from __future__ import annotations

from typing import Any

from cloudml.dag import StepGraph
from cloudml.spec.pipeline import Pipeline
from cloudml.spec.refs import ExternalRef, ParamSourceRef, StepOutputRef, split_command, substitute
from cloudml.spec.steps import ConditionStep, FailStep, RegisterModelStep, TaskStep
from cloudml.spec.types import format_duration

__all__ = ["PLAN_VERSION", "compile_plan", "output_path", "param_text"]

PLAN_VERSION = 1


def output_path(step: str, output: str, otype: str, base: str = "") -> str:
    """Where a step's output lives, relative to the run folder.

    Example:
        >>> output_path("evaluate", "metrics", "metrics")
        'steps/evaluate/outputs/metrics/metrics.json'
    """
    path = f"{base}steps/{step}/outputs/{output}"
    return f"{path}/metrics.json" if otype == "metrics" else path


def _env_name(name: str) -> str:
    return name.upper().replace("-", "_")


def param_text(value: Any) -> str:
    """How a parameter value is written into a command: ``true``/``false`` for booleans.

    Example:
        >>> param_text(True), param_text(0.5)
        ('true', '0.5')
    """
    return str(value).lower() if isinstance(value, bool) else str(value)


def _param_values(p: Pipeline, given: dict[str, Any] | None) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, spec in p.parameters.items():
        value = (given or {}).get(name, spec.default)
        if value is not None:
            values[name] = param_text(value)
    return values


def _task_plan(p: Pipeline, raw: TaskStep, params: dict[str, str], base: str,
               by_name: dict[str, Any]) -> dict[str, Any]:
    s = p.effective(raw)
    outputs = {n: output_path(s.name, n, o.type, base) for n, o in s.outputs.items()}
    inputs: dict[str, dict[str, Any]] = {}
    input_paths: dict[str, str] = {}
    for n, spec in s.inputs.items():
        ref = spec.ref
        if isinstance(ref, StepOutputRef):
            producer = by_name[ref.step]
            otype = producer.outputs[ref.output].type if isinstance(producer, TaskStep) else "generic"
            path = output_path(ref.step, ref.output, otype, base)
            inputs[n] = {"from": str(ref), "path": path}
        elif isinstance(ref, ParamSourceRef):
            path = f"{base}inputs/{s.name}/{n}"
            inputs[n] = {"param": ref.param, "resolve": params.get(ref.param, str(ref)), "path": path}
        else:
            assert isinstance(ref, ExternalRef)
            path = f"{base}inputs/{s.name}/{n}"
            inputs[n] = {"external": substitute(ref.uri, {"params": params}), "path": path}
        input_paths[n] = path
    values = {"inputs": input_paths, "outputs": outputs, "params": params}
    env = {
        "CLOUDML_STEP": s.name,
        **{f"CLOUDML_INPUT_{_env_name(k)}": v for k, v in input_paths.items()},
        **{f"CLOUDML_OUTPUT_{_env_name(k)}": v for k, v in outputs.items()},
        **{k: substitute(v, values) for k, v in s.env.items()},
    }
    if s.python:
        argv = ["python", "-m", "cloudml.runtime", "--function", s.python]
        if s.code:
            argv += ["--code", s.code]
        for folder in s.code_paths or ():  # relative to the spec folder, like --code
            argv += ["--code-path", folder]
        argv += [f"--input={k}={v}" for k, v in input_paths.items()]
        argv += [f"--output={k}={v}" for k, v in outputs.items()]
        argv += [f"--output-type={k}={o.type}" for k, o in s.outputs.items()]
        argv += [f"--param={k}={substitute(str(v), values)}" for k, v in s.params.items()]
        if s.tuning:  # searched values reach the function as keyword arguments, filled in per trial
            argv += [f"--param={k}={{{{tuning.{k}}}}}" for k in s.tuning.search_space]
    else:
        cmd = split_command(s.command)
        argv = [substitute(c, values) for c in cmd] + [substitute(a, values) for a in s.args]
    plan: dict[str, Any] = {
        "type": "task",
        "kind": s.kind,
        "argv": argv,
        "cwd": s.code or ".",
        "env": env,
        "secrets": dict(s.secrets),
        "inputs": inputs,
        "outputs": {n: {"type": o.type, "path": outputs[n]} for n, o in s.outputs.items()},
        "retry": {"attempts": s.retry.attempts if s.retry else 1,
                  "backoff": format_duration(s.retry.backoff) if s.retry else "0s",
                  "max_backoff": format_duration(s.retry.max_backoff) if s.retry and s.retry.max_backoff else None},
        "timeout": format_duration(s.timeout) if s.timeout is not None else None,
        "cache": {"enabled": s.cache.enabled if s.cache else True,
                  "expire": format_duration(s.cache.expire) if s.cache and s.cache.expire else None},
    }
    if s.code_paths:
        plan["code_paths"] = list(s.code_paths)
    if s.tuning:
        plan["tuning"] = _tuning_plan(s)
    if s.image or s.framework:
        plan["image"] = {"requested": s.image or s.framework,
                         "local": "runs on the host Python environment (no container engine)"}
    return plan


def _tuning_plan(s: TaskStep) -> dict[str, Any]:
    """What the runner needs to run trials: the block as data, the objective's file and the trial count.

    ``{{tuning.NAME}}`` stays in argv and env; the runner fills it in per trial and moves the
    outputs to ``steps/<step>/trials/<n>/outputs/...``.
    """
    t = s.tuning
    assert t is not None
    return {"objective": {"metric": t.objective.metric, "output": t.objective.output, "key": t.objective.key,
                          "goal": t.objective.goal},
            "strategy": t.strategy, "trials": t.trials, "parallel_trials": t.parallel_trials, "seed": t.seed,
            "spec": t.model_dump(mode="json", exclude_none=True, exclude_defaults=True)}


def compile_plan(p: Pipeline, *, parameters: dict[str, Any] | None = None, run_dir: str | None = None
                 ) -> dict[str, Any]:
    """The local execution plan of a validated pipeline, as plain data.

    ``parameters`` are resolved values (defaults otherwise); with ``run_dir`` every path is
    absolute under that folder (what the runner executes), else relative to it (what users read).

    Example:
        >>> import cloudml
        >>> b = cloudml.PipelineBuilder("p"); _ = b.add_step("a", python="job:run", params={"n": 3})
        >>> compile_plan(b.build())["steps"]["a"]["argv"]
        ['python', '-m', 'cloudml.runtime', '--function', 'job:run', '--param=n=3']
    """
    graph = StepGraph.from_pipeline(p)
    params = _param_values(p, parameters)
    base = run_dir.rstrip("/") + "/" if run_dir else ""
    upstream = graph.upstream()
    guards: dict[str, dict[str, str]] = {}
    for s in p.steps:
        if isinstance(s, ConditionStep):
            for t in s.then:
                guards[t] = {"condition": s.name, "branch": "then"}
            for t in s.else_:
                guards[t] = {"condition": s.name, "branch": "else"}
    steps: dict[str, Any] = {}
    by_name = {s.name: s for s in p.steps}
    for s in p.steps:
        entry: dict[str, Any]
        if isinstance(s, TaskStep):
            entry = _task_plan(p, s, params, base, by_name)
        elif isinstance(s, ConditionStep):
            entry = {"type": "condition", "condition": str(s.condition), "then": s.then, "else": s.else_,
                     "reads": sorted({f"{m.step}.outputs.{m.output}" for m in s.condition.metric_operands()})}
        elif isinstance(s, FailStep):
            entry = {"type": "fail", "message": substitute(s.fail, {"params": params})}
        else:
            assert isinstance(s, RegisterModelStep)
            entry = {"type": "register_model", **s.register_model.model_dump(exclude_none=True)}
        entry["upstream"] = upstream[s.name]
        if s.name in guards:
            entry["guard"] = guards[s.name]
        steps[s.name] = entry
    return {
        "plan_version": PLAN_VERSION,
        "pipeline": p.name,
        "parameters": {n: {"type": v.type, "default": v.default, "value": (parameters or {}).get(n, v.default)}
                       for n, v in p.parameters.items()},
        "waves": graph.levels(),
        "steps": steps,
        "schedule": p.schedule.model_dump(mode="json") if p.schedule else None,
    }
