"""A tuning step -> a SageMaker ``Type: Tuning`` step (CreateHyperParameterTuningJob minus its name). Pure.

* ``strategy`` -> ``Strategy`` ``Random`` / ``Grid`` / ``Bayesian`` (SageMaker's own optimiser, not
  cloudml's TPE); ``seed`` -> ``RandomSeed``.
* ``max_trials`` / ``parallel_trials`` -> ``ResourceLimits.MaxNumberOfTrainingJobs`` /
  ``MaxParallelTrainingJobs``. For ``Grid`` the service counts the grid itself, so
  ``MaxNumberOfTrainingJobs`` is left out, and every dimension becomes a categorical range of its
  grid points (AWS: grid search takes categorical ranges only).
* ``float`` -> ``ContinuousParameterRanges``, ``int`` -> ``IntegerParameterRanges`` (``ScalingType``
  ``Linear`` or ``Logarithmic``), ``categorical`` -> ``CategoricalParameterRanges``.
* The objective ``OUTPUT.KEY`` -> ``HyperParameterTuningJobObjective`` plus one ``MetricDefinitions``
  entry whose regex matches the line ``cloudml_runtime.py`` prints after a trial
  (``cloudml-objective: OUTPUT.KEY=VALUE``, :func:`cloudml.runtime.tuning_trial`).
* How a trial runs: a hyperparameter tuning job cannot set a container entry point, so the
  training image's own entry point starts: SageMaker's training toolkit (in every SageMaker
  framework image), told by the static hyperparameters ``sagemaker_program=cloudml_runtime.py`` and
  ``sagemaker_submit_directory=<code channel>`` to run cloudml's runtime, which reads the step's
  command from ``cloudml_argc`` / ``cloudml_arg_<i>`` and the searched values from
  ``hyperparameters.json``. An ``image:`` must therefore run the training toolkit too (e.g. be
  built on a SageMaker framework image).
* Outputs: the model is ``/opt/ml/model`` (downstream steps get the best job's
  ``model.tar.gz`` through ``TrainingJobSummaries[0].TrainingJobName``); metrics outputs are
  written under ``/opt/ml/output/data/<name>/`` and stay inside the tuning job.
"""

from __future__ import annotations

import re
from typing import Any

from cloudml.adapters.sagemaker.compiler import (
    CODE_INPUT,
    RUNTIME_FILE,
    _argv,
    _code,
    _common,
    _contract_env,
    _Ctx,
    _image,
    _in_path,
    _input_uri,
    _no_clash,
    _opt,
    _seconds,
    _unsupported,
    _volume,
)
from cloudml.adapters.sagemaker.resources import instance_type
from cloudml.errors import CompileError
from cloudml.runtime import objective_regex
from cloudml.spec.steps import TaskStep
from cloudml.spec.tuning import SearchParam, Tuning

__all__: list[str] = []  # tuning_step is the compiler's; nothing here is public API

MAX_CATEGORICAL = 30  # botocore: CategoricalParameterRange.Values holds at most 30
MAX_HYPERPARAMETERS = 100  # botocore: HyperParameters map
_STRATEGY = {"random": "Random", "grid": "Grid", "bayesian": "Bayesian"}
_SCALE = {"linear": "Linear", "log": "Logarithmic"}


def _number(v: float, as_int: bool) -> str:
    return str(int(v)) if as_int else f"{v:.10g}"


def _text(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else f"{v:.10g}" if isinstance(v, float) else str(v)


def _categorical(step: str, name: str, values: list[Any]) -> dict[str, Any]:
    if len(values) > MAX_CATEGORICAL:
        raise CompileError(f"step '{step}': '{name}' has {len(values)} values; a SageMaker categorical range holds "
                           f"at most {MAX_CATEGORICAL}", hint="coarsen its grid_step or use strategy random/bayesian")
    return {"Name": name, "Values": [_text(v) for v in values]}


def parameter_ranges(step: str, t: Tuning) -> dict[str, list[dict[str, Any]]]:
    """The search space as SageMaker ``ParameterRanges``.

    Example:
        >>> t = Tuning.model_validate({"search_space": {"lr": {"type": "float", "min": 0.001, "max": 0.1,
        ...     "scale": "log"}, "k": {"type": "categorical", "values": ["rbf", "linear"]}},
        ...     "objective": {"metric": "m.auc"}})
        >>> parameter_ranges("train", t)["ContinuousParameterRanges"]
        [{'Name': 'lr', 'MinValue': '0.001', 'MaxValue': '0.1', 'ScalingType': 'Logarithmic'}]
    """
    ranges: dict[str, list[dict[str, Any]]] = {"IntegerParameterRanges": [], "ContinuousParameterRanges": [],
                                               "CategoricalParameterRanges": []}
    for name, d in t.search_space.items():
        if t.strategy == "grid" or d.type == "categorical":
            ranges["CategoricalParameterRanges"].append(_categorical(step, name, list(_points(d))))
            continue
        assert d.min is not None and d.max is not None
        kind = "IntegerParameterRanges" if d.type == "int" else "ContinuousParameterRanges"
        ranges[kind].append({"Name": name, "MinValue": _number(d.min, d.type == "int"),
                             "MaxValue": _number(d.max, d.type == "int"), "ScalingType": _SCALE[d.scale]})
    return {k: v for k, v in ranges.items() if v}


def _points(d: SearchParam) -> list[Any]:
    pts = d.points()
    assert pts is not None  # grid strategies are checked by the spec
    return pts


def tuning_step(ctx: _Ctx, s: TaskStep) -> dict[str, Any]:
    """The ``Type: Tuning`` step of an effective task step with a ``tuning`` block."""
    t = s.tuning
    assert t is not None
    if s.kind != "training":
        raise _unsupported(s.name, "step.tuning", "SageMaker tunes training jobs; set kind: training on the step")
    bad = [n for n, o in s.outputs.items() if o.type not in ("model", "metrics")]
    models = [n for n, o in s.outputs.items() if o.type == "model"]
    if bad or len(models) > 1:
        raise _unsupported(s.name, "step.tuning", "a SageMaker training job has one model output (/opt/ml/model) "
                           f"plus metrics; move {', '.join(bad or models[1:])} to a processing step")
    _no_clash(s)
    code_uri = _code(ctx, s, True)
    code_dir = f"/opt/ml/input/data/{CODE_INPUT}"
    outputs = {n: "/opt/ml/model" if o.type == "model" else f"/opt/ml/output/data/{n}/metrics.json"
               for n, o in s.outputs.items()}
    paths = {"inputs": {n: _in_path(ctx, s, "/opt/ml/input/data", n) for n in s.inputs}, "outputs": outputs,
             "tuning": {n: "{{tuning." + n + "}}" for n in t.search_space}}
    if s.python:  # searched values reach the function as keyword arguments
        s = s.model_copy(update={"params": {**s.params, **{n: "{{tuning." + n + "}}" for n in t.search_space}}})
    argv = _argv(ctx, s, paths, code_dir)
    if len(argv) + len(t.search_space) + 3 > MAX_HYPERPARAMETERS:
        raise CompileError(f"step '{s.name}': its command has {len(argv)} arguments; a SageMaker tuning job passes "
                           f"them as hyperparameters, at most {MAX_HYPERPARAMETERS} in all",
                           hint="move arguments into a config file the step reads")
    static: dict[str, Any] = {"sagemaker_program": RUNTIME_FILE, "sagemaker_submit_directory": code_dir,
                              "cloudml_argc": str(len(argv)), **{f"cloudml_arg_{i}": a for i, a in enumerate(argv)}}
    metric = t.objective.metric
    env = {**_contract_env(s, paths), "CLOUDML_TUNING_TRIAL": "1", "CLOUDML_TUNING_NAMES": ",".join(t.search_space),
           "CLOUDML_TUNING_OBJECTIVE": metric, "CLOUDML_TUNING_METRICS_FILE": outputs[t.objective.output],
           "CLOUDML_TUNING_CWD": code_dir}
    channels = [{"ChannelName": n, "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": _input_uri(ctx, s, n), "S3DataDistributionType": "FullyReplicated"}}}
        for n in s.inputs]
    channels.append({"ChannelName": CODE_INPUT, "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": code_uri, "S3DataDistributionType": "FullyReplicated"}}})
    res = s.resources
    definition: dict[str, Any] = {
        "StaticHyperParameters": static,
        "AlgorithmSpecification": {"TrainingImage": _image(ctx, s), "TrainingInputMode": "File",
                                   "MetricDefinitions": [{"Name": metric, "Regex": objective_regex(metric)}]},
        "RoleArn": _opt(ctx, s, "role_arn") or ctx.role,
        "InputDataConfig": channels,
        "OutputDataConfig": {"S3OutputPath": ctx.run_s3(s.name)},
        "ResourceConfig": {"InstanceType": instance_type(res, _opt(ctx, s, "instance_type")),
                           "InstanceCount": res.instance_count if res else 1, "VolumeSizeInGB": _volume(ctx, s)},
        "StoppingCondition": {"MaxRuntimeInSeconds": _seconds(s.timeout) if s.timeout is not None else 86400},
        "Environment": env,
    }
    limits: dict[str, Any] = {"MaxParallelTrainingJobs": t.parallel_trials}
    if t.strategy != "grid":
        limits = {"MaxNumberOfTrainingJobs": t.trials, **limits}
    config: dict[str, Any] = {
        "Strategy": _STRATEGY[t.strategy],
        "HyperParameterTuningJobObjective": {"Type": t.objective.goal.capitalize(), "MetricName": metric},
        "ResourceLimits": limits,
        "ParameterRanges": parameter_ranges(s.name, t),
    }
    if t.seed is not None:
        config["RandomSeed"] = t.seed
    step = {"Name": s.name, "Type": "Tuning",
            "Arguments": {"HyperParameterTuningJobConfig": config, "TrainingJobDefinition": definition}}
    return _common(ctx, s, step)


def objective_from_log(metric: str, log: str) -> float | None:
    """What SageMaker's metric parser would read from a trial's log (tests use it on real runtime output).

    Example:
        >>> objective_from_log("metrics.auc", "epoch 1\\ncloudml-objective: metrics.auc=0.91\\n")
        0.91
    """
    found = re.findall(objective_regex(metric), log)
    return float(found[-1]) if found else None
