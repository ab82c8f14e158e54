"""A task step with ``tuning:`` -> an Azure ML ``sweep`` node of the pipeline job. Pure: no SDK import.

The step's command node becomes the sweep's ``trial`` (its inline command component, with one input
per searched name: ``{{tuning.x}}`` is ``${{inputs.x}}``, which azure-ai-ml's ``Sweep`` node rewrites
to ``${{search_space.x}}``), and the tuning block becomes the node's fields, all checked against
azure-ai-ml 1.35's ``SweepSchema`` / ``ParameterizedSweepSchema``:

* ``search_space``: ``categorical`` -> ``choice``; ``float`` -> ``uniform`` (``min_value``/``max_value``),
  ``scale: log`` -> ``loguniform`` whose bounds are the natural logs (azure-ai-ml's ``LogUniform``: "minimum
  value of the log of the distribution"); ``int`` -> ``choice`` of every whole number (``grid_step``
  apart), exact for every sampler; ``strategy: grid`` -> ``choice`` of each dimension's grid points;
* log scale where Azure ML has no distribution for it (:func:`log_dimensions`): a log-scale ``int``
  (any strategy but grid; Azure ML has no integer log-uniform) and a log-scale ``float`` with
  ``strategy: bayesian`` (Bayesian sampling takes ``choice``, ``uniform`` and ``quniform`` only) are
  searched **as their natural log**: ``uniform(ln min, ln max)`` (an ``int``: ``uniform(ln(min - 0.5),
  ln(max + 0.5))``, so after rounding each whole number gets the share of log space around it). The trial
  input is a ``number``; the trial command starts with ``python cloudml_runtime.py --from-log
  NAME=int|float:MIN:MAX:${{inputs.NAME}} -- ...``, and the runtime (``cloudml.runtime.from_log_entry``)
  takes ``exp``, rounds an ``int``, clamps to ``[min, max]`` and puts the value where the command had
  ``${{inputs.NAME}}`` (written ``@CLOUDML_TUNING_NAME@``), before the step function or command sees it.
  Bayesian optimisation over the log of a value is what ``scale: log`` means; the objective is unchanged,
  and Azure ML's sweep view lists the sampled log, while the trial's log has the value;
* ``sampling_algorithm``: ``random`` (``{type: random, seed}`` with a seed), ``grid``, ``bayesian``;
* ``objective``: ``{goal, primary_metric: <OUTPUT.KEY>}``; ``limits``: ``max_total_trials``,
  ``max_concurrent_trials`` and, from the step's timeout, ``trial_timeout``.

Refused (``UnsupportedFeatureError``, feature ``step.tuning``): a linear ``int`` range of more than
:data:`MAX_CHOICES` values.

The objective reaches Azure ML the way sweeps read it, as an MLflow metric of the trial: the trial's
command is followed by ``python cloudml_runtime.py --log-objective ...`` (``cloudml.runtime``), which
reads the step's metrics file and calls ``mlflow.log_metric`` (Azure ML sets ``MLFLOW_TRACKING_URI``
and ``MLFLOW_RUN_ID`` in the job), so the trial image needs ``mlflow`` and ``azureml-mlflow``.

Example:
    >>> from cloudml.spec.tuning import Tuning
    >>> t = Tuning.model_validate({"search_space": {"lr": {"type": "float", "min": 0.01, "max": 0.1}},
    ...                            "objective": {"metric": "metrics.auc"}, "max_trials": 4})
    >>> search_space(t, "train")
    {'lr': {'type': 'uniform', 'min_value': 0.01, 'max_value': 0.1}}
"""

from __future__ import annotations

import math
import shlex
from typing import Any

from cloudml.errors import UnsupportedFeatureError
from cloudml.spec.tuning import SearchParam, Tuning

__all__ = ["MAX_CHOICES", "SWEEP_KEYS", "log_dimensions", "search_space", "sweep_node", "trial_input_type"]

MAX_CHOICES = 1000  # an int range becomes a choice of its values; a longer list is refused
# the keys of a sweep node cloudml emits or accepts (validate.py), besides type, inputs, outputs, compute, ...
SWEEP_KEYS = {"type", "trial", "inputs", "outputs", "compute", "resources", "description", "display_name",
              "search_space", "sampling_algorithm", "objective", "limits", "early_termination"}


def _refuse(step: str, reason: str, hint: str) -> UnsupportedFeatureError:
    return UnsupportedFeatureError("azureml", step, "step.tuning", reason, hint=hint)


def _choice_value(v: Any) -> Any:
    return str(v).lower() if isinstance(v, bool) else v  # {{tuning.x}} of a boolean is true/false


def _dimension(name: str, dim: SearchParam, strategy: str, step: str) -> dict[str, Any]:
    if dim.type == "categorical":
        return {"type": "choice", "values": [_choice_value(v) for v in dim.values or []]}
    if strategy == "grid":
        return {"type": "choice", "values": list(dim.points() or [])}
    assert dim.min is not None and dim.max is not None
    if dim.type == "int":
        if dim.scale == "log":  # searched as its log, turned back by the runtime (log_dimensions)
            return {"type": "uniform", "min_value": math.log(dim.min - 0.5), "max_value": math.log(dim.max + 0.5)}
        values = dim.points() or []
        if len(values) > MAX_CHOICES:
            raise _refuse(step, f"'{name}' is an int range of {len(values)} values; cloudml sends an int range to "
                          f"Azure ML as a choice of its values, at most {MAX_CHOICES}",
                          f"give '{name}' a grid_step, narrow it, or make it a float")
        return {"type": "choice", "values": values}
    if dim.scale == "log":
        if strategy == "bayesian":  # searched as its log, turned back by the runtime (log_dimensions)
            return {"type": "uniform", "min_value": math.log(dim.min), "max_value": math.log(dim.max)}
        return {"type": "loguniform", "min_value": math.log(dim.min), "max_value": math.log(dim.max)}
    return {"type": "uniform", "min_value": dim.min, "max_value": dim.max}


def search_space(t: Tuning, step: str) -> dict[str, Any]:
    """The sweep node's ``search_space`` for a tuning block (see the module docstring for the mapping).

    Example:
        >>> from cloudml.spec.tuning import Tuning
        >>> t = Tuning.model_validate({"search_space": {"lr": {"type": "float", "min": 1, "max": 100,
        ...     "scale": "log"}, "depth": {"type": "int", "min": 2, "max": 4}},
        ...     "objective": {"metric": "metrics.auc"}})
        >>> s = search_space(t, "train"); s["depth"], s["lr"]["type"], round(s["lr"]["max_value"], 4)
        ({'type': 'choice', 'values': [2, 3, 4]}, 'loguniform', 4.6052)
    """
    return {name: _dimension(name, dim, t.strategy, step) for name, dim in t.search_space.items()}


def log_dimensions(t: Tuning) -> dict[str, tuple[str, float, float]]:
    """Searched names Azure ML samples as their natural log: name -> (``int``/``float``, min, max).

    Example:
        >>> from cloudml.spec.tuning import Tuning
        >>> t = Tuning.model_validate({"search_space": {"n": {"type": "int", "min": 10, "max": 200, "scale": "log"},
        ...     "lr": {"type": "float", "min": 0.01, "max": 0.5, "scale": "log"}},
        ...     "objective": {"metric": "m.auc"}, "strategy": "random"})
        >>> log_dimensions(t)
        {'n': ('int', 10, 200)}
    """
    if t.strategy == "grid":
        return {}
    return {name: (dim.type, dim.min, dim.max) for name, dim in t.search_space.items()
            if dim.scale == "log" and dim.min is not None and dim.max is not None
            and (dim.type == "int" or (dim.type == "float" and t.strategy == "bayesian"))}


def trial_input_type(dim: SearchParam) -> str:
    """The trial component's input type for a searched name.

    Example:
        >>> trial_input_type(SearchParam(type="categorical", values=[1, 2])), trial_input_type(SearchParam(
        ...     type="float", min=0, max=1))
        ('integer', 'number')
    """
    if dim.type == "int":
        return "integer"
    if dim.type == "float":
        return "number"
    values = dim.values or []
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "integer"
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "number"
    return "string"


def sweep_node(node: dict[str, Any], t: Tuning, step: str, outputs: dict[str, str], runtime_file: str,
               env: dict[str, str]) -> dict[str, Any]:
    """Turn a step's compiled command node into a sweep node (a new dict; ``node`` is not changed).

    ``outputs`` maps the step's output names to their command bindings (``${{outputs.metrics}}/metrics.json``
    for a metrics output); ``env`` is the environment a command node would set, which a sweep node cannot
    carry, so the trial command starts with ``env NAME=VALUE ...``.

    Example:
        >>> from cloudml.spec.tuning import Tuning
        >>> t = Tuning.model_validate({"search_space": {"c": {"type": "categorical", "values": ["a", "b"]}},
        ...     "objective": {"metric": "m.auc"}, "strategy": "grid", "max_trials": 2})
        >>> n = sweep_node({"type": "command", "component": {"type": "command", "command": "run ${{inputs.c}}"}},
        ...                t, "train", {"m": "${{outputs.m}}/metrics.json"}, "cloudml_runtime.py", {})
        >>> n["type"], n["sampling_algorithm"], n["limits"], n["trial"]["inputs"]
        ('sweep', 'grid', {'max_total_trials': 2, 'max_concurrent_trials': 1}, {'c': {'type': 'string'}})
    """
    from cloudml.runtime import LOG_TOKEN

    sweep = {k: v for k, v in node.items() if k not in ("component", "environment_variables", "limits")}
    trial = dict(node["component"])  # a command component, typed as azure-ai-ml's own Sweep node dumps its trial
    logs = log_dimensions(t)
    trial["inputs"] = {**trial.get("inputs", {}),
                       **{n: {"type": "number" if n in logs else trial_input_type(d)} for n, d in t.search_space.items()}}
    command, head = trial["command"], ""
    for n in logs:  # the sampled log reaches the runtime only; the command gets the value in its place
        command = command.replace(f"${{{{inputs.{n}}}}}", LOG_TOKEN.format(n))
        env = {k: v.replace(f"${{{{inputs.{n}}}}}", LOG_TOKEN.format(n)) for k, v in env.items()}
    if logs:
        head = f"python {runtime_file} " + " ".join(
            f"--from-log={n}={kind}:{low:g}:{high:g}:${{{{inputs.{n}}}}}" for n, (kind, low, high) in logs.items()) + " -- "
    prefix = ("env " + " ".join(shlex.quote(f"{k}={v}") for k, v in env.items()) + " ") if env else ""
    trial["command"] = (f"{head}{prefix}sh -c {shlex.quote(command)} && python {runtime_file} --log-objective "
                        f"{shlex.quote(t.objective.metric)} --metrics {outputs[t.objective.output]}")
    sweep["type"] = "sweep"
    sweep["trial"] = trial
    sweep["search_space"] = search_space(t, step)
    sweep["sampling_algorithm"] = ({"type": "random", "seed": t.seed} if t.strategy == "random" and t.seed is not None
                                   else t.strategy)
    sweep["objective"] = {"goal": t.objective.goal, "primary_metric": t.objective.metric}
    limits: dict[str, Any] = {"max_total_trials": t.trials, "max_concurrent_trials": min(t.parallel_trials, t.trials)}
    timeout = (node.get("limits") or {}).get("timeout")
    if timeout:
        limits["trial_timeout"] = timeout
    sweep["limits"] = limits
    return sweep
