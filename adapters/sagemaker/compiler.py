"""Spec -> SageMaker pipeline definition JSON (``"Version": "2020-12-01"``). Pure: no boto3, no network.

Mapping (see docs/adapters/sagemaker.md for the full table):

* parameters -> ``Parameters`` (String, Integer, Float, Boolean);
* ``kind: processing`` -> ``Processing`` steps (``/opt/ml/processing/...`` paths), ``kind: training``
  -> ``Training`` steps (channels under ``/opt/ml/input/data``, the model in ``/opt/ml/model``);
* artifact passing -> ``{"Get": "Steps.X..."}`` property references; ``{{params.x}}`` ->
  ``{"Get": "Parameters.x"}`` (joined with ``Std:Join`` inside longer strings);
* conditions -> ``Condition`` steps on ``Std:JsonGet`` of a property file, with the guarded steps
  (and everything that depends on them) nested in ``IfSteps``/``ElseSteps``;
* fail -> ``Fail``; register_model -> ``RegisterModel``; retry -> ``RetryPolicies`` for service
  faults plus an in-container retry of the command itself; cache -> ``CacheConfig``;
  timeout -> ``StoppingCondition``;
* secrets -> only their *references* in ``CLOUDML_SECRETS`` (JSON, sorted keys); cloudml's runtime
  resolves them inside the job with the execution role (``aws-secretsmanager://``, ``aws-ssm://``).

Code folders are content-addressed: the definition names ``s3://<root>/code/<sha256>/`` and the
client uploads the folder (plus cloudml's runtime entry point) there at submit time.

Example:
    >>> import cloudml
    >>> from cloudml.config import SageMakerSettings
    >>> b = cloudml.PipelineBuilder("demo"); _ = b.add_step("hello", command="echo hi", image="python:3.11")
    >>> d = compile_definition(b.build(), SageMakerSettings(bucket="my-ml"), base_dir=".")
    >>> d["Steps"][0]["Type"], d["Steps"][0]["Arguments"]["AppSpecification"]["ContainerEntrypoint"]
    ('Processing', ['echo', 'hi'])
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from cloudml.adapters.sagemaker.resources import framework_image, instance_type
from cloudml.codebundle import NO_CODE, RUNTIME_FILE, CodeBundle, step_bundle
from cloudml.dag import BranchConflict, StepGraph, branch_owners
from cloudml.errors import CompileError, UnsupportedFeatureError
from cloudml.spec.conditions import And, Compare, Expr, LiteralOperand, MetricOperand, Not, Or, ParamOperand
from cloudml.spec.pipeline import Pipeline
from cloudml.spec.refs import ExternalRef, ParamSourceRef, StepOutputRef, find_placeholders, split_command
from cloudml.spec.steps import ConditionStep, FailStep, RegisterModelStep, TaskStep

__all__ = ["AWS_SECRET_SCHEMES", "NO_CODE", "PROCESSING_ROOT", "ROLE_PARAMETER", "ROOT_PARAMETER", "RUNTIME_FILE",
           "SECRETS_VAR", "code_digest", "compile_definition", "model_uri", "secrets_env"]

PROCESSING_ROOT = "/opt/ml/processing"
ROLE_PARAMETER = "CloudmlRoleArn"
ROOT_PARAMETER = "CloudmlArtifactRoot"
MAX_BRANCH_STEPS = 20
SECRETS_VAR = "CLOUDML_SECRETS"  # the step's secret references, resolved by cloudml.runtime in the job
AWS_SECRET_SCHEMES = ("aws-secretsmanager", "aws-ssm")
_PTYPES = {"string": "String", "int": "Integer", "float": "Float", "bool": "Boolean"}
_OPS = {">=": "GreaterThanOrEqualTo", ">": "GreaterThan", "<=": "LessThanOrEqualTo", "<": "LessThan",
        "==": "Equals"}
_APPROVAL = {"pending": "PendingManualApproval", "approved": "Approved", "rejected": "Rejected"}
_SERVICE_FAULTS = ["Step.SERVICE_FAULT", "Step.THROTTLING", "SageMaker.JOB_INTERNAL_ERROR",
                   "SageMaker.CAPACITY_ERROR", "SageMaker.RESOURCE_LIMIT"]


def code_digest(folder: Path | CodeBundle) -> str:
    """The content digest of a step's code bundle (its folder, its ``code_paths`` and cloudml's runtime).

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "a.py").write_text("x = 1")
        >>> len(code_digest(d)), code_digest(d) == code_digest(CodeBundle(d))
        (64, True)
    """
    bundle = folder if isinstance(folder, CodeBundle) else CodeBundle(folder)
    return bundle.digest("cloudml-code-v2")


def _join(values: list[Any], on: str = "") -> Any:
    values = [v for v in values if v != ""]
    merged: list[Any] = []
    for v in values:
        if merged and isinstance(v, str) and isinstance(merged[-1], str) and on == "":
            merged[-1] += v
        else:
            merged.append(v)
    if len(merged) == 1:
        return merged[0]
    return {"Std:Join": {"On": on, "Values": merged}}


class _Ctx:
    """What one compilation needs: settings, base folder, and the derived S3 layout."""

    def __init__(self, p: Pipeline, settings: Any, base_dir: str | Path) -> None:
        self.p = p
        self.settings = settings
        self.base = Path(base_dir)
        self.steps = {s.name: s for s in p.steps}
        self.extra_params: list[dict[str, Any]] = []
        if settings.role_arn:
            self.role: Any = settings.role_arn
        else:
            self.role = {"Get": f"Parameters.{ROLE_PARAMETER}"}
            self.extra_params.append({"Name": ROLE_PARAMETER, "Type": "String"})
        if settings.bucket:
            prefix = settings.prefix.strip("/")
            self.root: Any = f"s3://{settings.bucket}/{prefix + '/' if prefix else ''}{p.name}"
        else:
            self.root = {"Get": f"Parameters.{ROOT_PARAMETER}"}
            self.extra_params.append({"Name": ROOT_PARAMETER, "Type": "String"})

    def s3(self, *parts: Any) -> Any:
        return _join([self.root, *[x for part in parts for x in ("/", part)]])

    def run_s3(self, *parts: Any) -> Any:
        return self.s3({"Get": "Execution.PipelineExecutionId"}, *parts)


def _unsupported(step: str | None, feature: str, reason: str) -> UnsupportedFeatureError:
    return UnsupportedFeatureError("sagemaker", step, feature, reason)


def _text(text: str, paths: dict[str, dict[str, str]]) -> Any:
    """A string with neutral placeholders -> a literal, a Get, or a Std:Join."""
    pieces: list[Any] = []
    pos = 0
    for ph in find_placeholders(text):
        pieces.append(text[pos:ph.start])
        if ph.namespace == "params":
            pieces.append({"Get": f"Parameters.{ph.name}"})
        elif ph.namespace == "tuning":
            pieces.append("{{tuning." + ph.name + "}}")  # filled in per trial by cloudml_runtime.py
        else:
            pieces.append(paths[ph.namespace][ph.name])
        pos = ph.end
    pieces.append(text[pos:])
    return _join(pieces) if pieces != [""] else ""


def model_uri(ctx: _Ctx, step: str) -> Any:
    """The model.tar.gz of a training step, or of a tuning step's best training job.

    A tuning step has no ``ModelArtifacts``; like the SageMaker SDK's ``TuningStep.get_top_model_s3_uri``
    the URI is built from ``TrainingJobSummaries[0].TrainingJobName`` (index 0 is the best job) under
    the job definition's ``S3OutputPath``.

    Example:
        >>> import cloudml
        >>> from cloudml.config import SageMakerSettings
        >>> b = cloudml.PipelineBuilder("p")
        >>> _ = b.add_step("train", kind="training", command="fit", image="img", outputs={"model": "model"})
        >>> model_uri(_Ctx(b.build(), SageMakerSettings(bucket="my-ml"), "."), "train")
        {'Get': 'Steps.train.ModelArtifacts.S3ModelArtifacts'}
    """
    producer = ctx.steps[step]
    if isinstance(producer, TaskStep) and producer.tuning is not None:
        return ctx.run_s3(step, {"Get": f"Steps.{step}.TrainingJobSummaries[0].TrainingJobName"}, "output",
                          "model.tar.gz")
    return {"Get": f"Steps.{step}.ModelArtifacts.S3ModelArtifacts"}


def _producer_uri(ctx: _Ctx, ref: StepOutputRef) -> Any:
    producer = ctx.steps[ref.step]
    assert isinstance(producer, TaskStep)
    if producer.tuning is not None and producer.outputs[ref.output].type != "model":
        raise _unsupported(ref.step, "step.tuning", f"'{ref}' is not the model: a SageMaker tuning job hands over "
                           "only its best training job's model (its metrics stay inside the tuning job)")
    if ctx.p.effective(producer).kind == "training":
        return model_uri(ctx, ref.step)
    return {"Get": f"Steps.{ref.step}.ProcessingOutputConfig.Outputs['{ref.output}'].S3Output.S3Uri"}


def _input_uri(ctx: _Ctx, s: TaskStep, name: str) -> Any:
    ref = s.inputs[name].ref
    if isinstance(ref, StepOutputRef):
        return _producer_uri(ctx, ref)
    if isinstance(ref, ParamSourceRef):
        return {"Get": f"Parameters.{ref.param}"}
    assert isinstance(ref, ExternalRef)
    if ref.scheme != "s3" or find_placeholders(ref.uri):
        raise _unsupported(s.name, "input.external", f"input '{name}' is {ref.uri}; SageMaker jobs read s3:// "
                           "URIs (upload the data to S3, or pass an s3:// parameter)")
    return ref.uri


def _image(ctx: _Ctx, s: TaskStep) -> str:
    if s.image:
        return s.image
    if s.framework:
        return framework_image(s.framework, ctx.settings.region, "training")
    raise CompileError(f"step '{s.name}' has no image or framework", hint="set image: or framework: (or defaults)")


def _code(ctx: _Ctx, s: TaskStep, needs_runtime: bool) -> Any:
    if not s.code and not s.code_paths and not needs_runtime:
        return None
    return ctx.s3("code", code_digest(step_bundle(ctx.base, s)), "")


def _argv(ctx: _Ctx, s: TaskStep, paths: dict[str, dict[str, str]], code_dir: str) -> list[Any]:
    if s.python:
        argv: list[Any] = ["python3", f"{code_dir}/{RUNTIME_FILE}", "--function", s.python, "--code", code_dir]
        argv += step_bundle(ctx.base, s).path_args(code_dir)
        argv += [f"--input={k}={v}" for k, v in paths["inputs"].items()]
        argv += [f"--output={k}={v}" for k, v in paths["outputs"].items()]
        argv += [f"--output-type={k}={o.type}" for k, o in s.outputs.items()]
        argv += [_text(f"--param={k}={v}", paths) if isinstance(v, str) else f"--param={k}={_plain(v)}"
                 for k, v in s.params.items()]
    else:
        cmd = split_command(s.command)
        argv = [_text(c, paths) for c in cmd] + [_text(a, paths) for a in s.args]
    attempts = s.retry.attempts if s.retry else 1
    if attempts > 1 or (s.secrets and not s.python):  # the runtime retries, and resolves secrets, then runs argv
        argv = ["python3", f"{code_dir}/{RUNTIME_FILE}", "--retry", str(attempts), "--backoff",
                f"{s.retry.backoff if s.retry else 0:g}", "--", *argv]
    return argv


def _needs_runtime(s: TaskStep) -> bool:
    """Whether the step runs through cloudml's runtime (shipped with its code): python, retries, secrets."""
    return bool(s.python or (s.retry and s.retry.attempts > 1) or s.secrets)


SECRETS_CHUNK = 256  # a processing job's Environment values are at most 256 characters (training: 512)


def secrets_env(s: TaskStep) -> dict[str, str]:
    """``{"CLOUDML_SECRETS": JSON}`` with the step's secret references (never values), or ``{}``.

    Only AWS schemes can be resolved inside a SageMaker job (with its execution role); any other is
    refused by name. References that do not fit in one 256-character value continue in
    ``CLOUDML_SECRETS_1``, ``CLOUDML_SECRETS_2``, ... (the runtime reads them all).

    Example:
        >>> step = TaskStep(name="a", command="x", secrets={"DB": "aws-ssm:///prod/db", "API": "aws-secretsmanager://k"})
        >>> secrets_env(step)
        {'CLOUDML_SECRETS': '{"API": "aws-secretsmanager://k", "DB": "aws-ssm:///prod/db"}'}
        >>> try:
        ...     secrets_env(TaskStep(name="b", command="x", secrets={"T": "env://TOKEN"}))
        ... except UnsupportedFeatureError as e:
        ...     print(e.step, e.feature)
        b step.secrets
    """
    for var, ref in s.secrets.items():
        scheme = ref.split("://", 1)[0]
        if scheme not in AWS_SECRET_SCHEMES:
            raise _unsupported(s.name, "step.secrets", f"secret {var} is a {scheme}:// reference; a SageMaker job "
                               "resolves only aws-secretsmanager:// and aws-ssm:// references, with its execution "
                               "role (store the value in AWS Secrets Manager or SSM Parameter Store)")
    chunks: list[dict[str, str]] = []
    for var, ref in sorted(s.secrets.items()):
        if len(json.dumps({var: ref})) > SECRETS_CHUNK:
            raise CompileError(f"step '{s.name}': secret {var} ({ref}) is too long for a SageMaker environment value "
                               f"({SECRETS_CHUNK} characters with its name)", hint="reference the secret by name "
                               "rather than by ARN, or shorten the variable name")
        if chunks and len(json.dumps({**chunks[-1], var: ref}, sort_keys=True)) <= SECRETS_CHUNK:
            chunks[-1][var] = ref
        else:
            chunks.append({var: ref})
    return {SECRETS_VAR + (f"_{i}" if i else ""): json.dumps(c, sort_keys=True) for i, c in enumerate(chunks)}


def _plain(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def _seconds(value: float) -> int:
    return max(1, math.ceil(value))


def _common(ctx: _Ctx, s: TaskStep, step: dict[str, Any]) -> dict[str, Any]:
    if s.retry and s.retry.attempts > 1:
        step["RetryPolicies"] = [{"ExceptionType": _SERVICE_FAULTS, "IntervalSeconds": _seconds(s.retry.backoff),
                                  "BackoffRate": 2.0, "MaxAttempts": s.retry.attempts}]
    cache = s.cache.enabled if s.cache else True
    step["CacheConfig"] = {"Enabled": cache}
    if cache and s.cache and s.cache.expire:
        step["CacheConfig"]["ExpireAfter"] = _iso(s.cache.expire)
    if s.depends_on:
        step["DependsOn"] = list(s.depends_on)
    if s.description:
        step["Description"] = s.description
    return step


def _iso(seconds: float) -> str:
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    out = "P" + (f"{days}D" if days else "")
    time_part = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "") + (f"{secs}S" if secs else "")
    return out + ("T" + time_part if time_part else "") if (days or time_part) else "PT0S"


CODE_INPUT = "cloudml_code"  # the code bundle's input/channel; a user input of that name is refused below


def _input_type(ctx: _Ctx, s: TaskStep, name: str) -> str | None:
    ref = s.inputs[name].ref
    if isinstance(ref, StepOutputRef):
        producer = ctx.steps[ref.step]
        if isinstance(producer, TaskStep) and ref.output in producer.outputs:
            return producer.outputs[ref.output].type
    return s.inputs[name].type


def _in_path(ctx: _Ctx, s: TaskStep, root: str, name: str) -> str:
    """A metrics input is its JSON file, like the producer's ``{{outputs.m}}``; other inputs are folders."""
    return f"{root}/{name}" + ("/metrics.json" if _input_type(ctx, s, name) == "metrics" else "")


def _contract_env(s: TaskStep, paths: dict[str, dict[str, str]]) -> dict[str, Any]:
    """The runtime contract's variables (docs/runtime-contract.md), then the step's own env."""
    # (no CLOUDML_RUN_ID: an execution id in the arguments would change SageMaker's cache key every run)
    env: dict[str, Any] = {"CLOUDML_STEP": s.name, "CLOUDML_BACKEND": "sagemaker"}
    env.update({f"CLOUDML_INPUT_{n.upper()}": v for n, v in paths["inputs"].items()})
    env.update({f"CLOUDML_OUTPUT_{n.upper()}": v for n, v in paths["outputs"].items()})
    env.update({k: _text(v, paths) for k, v in s.env.items()})
    env.update(secrets_env(s))
    return env


def _no_clash(s: TaskStep) -> None:
    if CODE_INPUT in s.inputs:
        raise CompileError(f"step '{s.name}': the input name '{CODE_INPUT}' is where cloudml ships the code",
                           hint="rename the input")


def _processing(ctx: _Ctx, s: TaskStep, metrics_read: set[str]) -> dict[str, Any]:
    _no_clash(s)
    code_uri = _code(ctx, s, _needs_runtime(s))
    code_dir = f"{PROCESSING_ROOT}/input/{CODE_INPUT}"
    paths = {"inputs": {n: _in_path(ctx, s, f"{PROCESSING_ROOT}/input", n) for n in s.inputs},
             "outputs": {n: f"{PROCESSING_ROOT}/output/{n}" + ("/metrics.json" if o.type == "metrics" else "")
                         for n, o in s.outputs.items()}}
    inputs = [{"InputName": n, "S3Input": {"S3Uri": _input_uri(ctx, s, n), "LocalPath": f"{PROCESSING_ROOT}/input/{n}",
                                           "S3DataType": "S3Prefix", "S3InputMode": "File"}} for n in s.inputs]
    if code_uri is not None:
        inputs.append({"InputName": CODE_INPUT, "S3Input": {"S3Uri": code_uri, "LocalPath": code_dir,
                                                        "S3DataType": "S3Prefix", "S3InputMode": "File"}})
    res = s.resources
    args: dict[str, Any] = {
        "ProcessingResources": {"ClusterConfig": {
            "InstanceType": instance_type(res, _opt(ctx, s, "instance_type")),
            "InstanceCount": res.instance_count if res else 1, "VolumeSizeInGB": _volume(ctx, s)}},
        "AppSpecification": {"ImageUri": _image(ctx, s), "ContainerEntrypoint": _argv(ctx, s, paths, code_dir)},
        "RoleArn": _opt(ctx, s, "role_arn") or ctx.role,
    }
    if inputs:
        args["ProcessingInputs"] = inputs
    if s.outputs:
        args["ProcessingOutputConfig"] = {"Outputs": [
            {"OutputName": n, "S3Output": {"S3Uri": ctx.run_s3(s.name, n),
                                          "LocalPath": f"{PROCESSING_ROOT}/output/{n}", "S3UploadMode": "EndOfJob"}}
            for n in s.outputs]}
    args["Environment"] = _contract_env(s, paths)
    if s.timeout is not None:
        args["StoppingCondition"] = {"MaxRuntimeInSeconds": _seconds(s.timeout)}
    step: dict[str, Any] = {"Name": s.name, "Type": "Processing", "Arguments": args}
    files = [{"PropertyFileName": n, "OutputName": n, "FilePath": "metrics.json"}
             for n, o in s.outputs.items() if o.type == "metrics" and f"{s.name}.{n}" in metrics_read]
    if files:
        step["PropertyFiles"] = files
    return _common(ctx, s, step)


def _training(ctx: _Ctx, s: TaskStep, metrics_read: set[str]) -> dict[str, Any]:
    others = [n for n, o in s.outputs.items() if o.type != "model"]
    models = [n for n, o in s.outputs.items() if o.type == "model"]
    if others or len(models) > 1:
        raise _unsupported(s.name, "step.training", "a SageMaker training job has one output, its model "
                           f"(/opt/ml/model); move {', '.join(others or models[1:])} to a processing step")
    _no_clash(s)
    code_uri = _code(ctx, s, _needs_runtime(s))
    code_dir = f"/opt/ml/input/data/{CODE_INPUT}"
    paths = {"inputs": {n: _in_path(ctx, s, "/opt/ml/input/data", n) for n in s.inputs},
             "outputs": {n: "/opt/ml/model" for n in models}}
    channels = [{"ChannelName": n, "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": _input_uri(ctx, s, n), "S3DataDistributionType": "FullyReplicated"}}}
        for n in s.inputs]
    if code_uri is not None:
        channels.append({"ChannelName": CODE_INPUT, "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": code_uri, "S3DataDistributionType": "FullyReplicated"}}})
    res = s.resources
    args: dict[str, Any] = {
        "AlgorithmSpecification": {"TrainingImage": _image(ctx, s), "TrainingInputMode": "File",
                                   "ContainerEntrypoint": _argv(ctx, s, paths, code_dir)},
        "RoleArn": _opt(ctx, s, "role_arn") or ctx.role,
        "OutputDataConfig": {"S3OutputPath": ctx.run_s3(s.name)},
        "ResourceConfig": {"InstanceType": instance_type(res, _opt(ctx, s, "instance_type")),
                           "InstanceCount": res.instance_count if res else 1, "VolumeSizeInGB": _volume(ctx, s)},
        "StoppingCondition": {"MaxRuntimeInSeconds": _seconds(s.timeout) if s.timeout is not None else 86400},
    }
    if channels:
        args["InputDataConfig"] = channels
    if s.params:
        args["HyperParameters"] = {k: _text(v, paths) if isinstance(v, str) else _plain(v) for k, v in s.params.items()}
    args["Environment"] = _contract_env(s, paths)
    return _common(ctx, s, {"Name": s.name, "Type": "Training", "Arguments": args})


def _opt(ctx: _Ctx, s: TaskStep, key: str) -> Any:
    return s.backend_options.get("sagemaker", {}).get(key) or ctx.p.backend_options.get("sagemaker", {}).get(key)


def _volume(ctx: _Ctx, s: TaskStep) -> int:
    if s.resources is not None and s.resources.disk:
        return max(1, math.ceil(s.resources.disk / 1024**3))
    return int(_opt(ctx, s, "volume_size_gb") or 30)


def _operand(ctx: _Ctx, o: Any, gate: str) -> Any:
    if isinstance(o, MetricOperand):
        producer = ctx.steps[o.step]
        if isinstance(producer, TaskStep) and ctx.p.effective(producer).kind == "training":
            raise _unsupported(gate, "condition", f"conditions read metrics files that processing steps write "
                               f"(SageMaker property files), and '{o.step}' is a training step; evaluate in a "
                               "processing step")
        if any(isinstance(k, str) and any(c in k for c in ".[]") for k in o.path):
            raise CompileError(f"condition '{gate}': {o} has a key with '.', '[' or ']', which SageMaker's "
                               "dotted JsonGet path cannot address",
                               hint="rename the key in the metrics file the step writes")
        return {"Std:JsonGet": {"PropertyFile": {"Get": f"Steps.{o.step}.PropertyFiles.{o.output}"},
                                "Path": o.json_path}}
    if isinstance(o, ParamOperand):
        return {"Get": f"Parameters.{o.name}"}
    assert isinstance(o, LiteralOperand)
    return o.value


def _conditions(ctx: _Ctx, e: Expr, gate: str) -> list[dict[str, Any]]:
    """An expression as SageMaker's list of ANDed conditions."""
    if isinstance(e, And):
        return [c for t in e.terms for c in _conditions(ctx, t, gate)]
    return [_condition(ctx, e, gate)]


def _condition(ctx: _Ctx, e: Expr, gate: str) -> dict[str, Any]:
    if isinstance(e, Compare):
        left, right = _operand(ctx, e.left, gate), _operand(ctx, e.right, gate)
        if e.op == "!=":
            return {"Type": "Not", "Condition": {"Type": "Equals", "LeftValue": left, "RightValue": right}}
        return {"Type": _OPS[e.op], "LeftValue": left, "RightValue": right}
    if isinstance(e, Not):
        return {"Type": "Not", "Condition": _single(ctx, e.term, gate)}
    if isinstance(e, Or):
        return {"Type": "Or", "Conditions": [_single(ctx, t, gate) for t in e.terms]}
    return _single(ctx, e, gate)


def _single(ctx: _Ctx, e: Expr, gate: str) -> dict[str, Any]:
    conds = _conditions(ctx, e, gate)
    if len(conds) == 1:
        return conds[0]
    # And inside Or / Not: not(or(not a, not b)) == and(a, b)
    return {"Type": "Not", "Condition": {"Type": "Or", "Conditions": [{"Type": "Not", "Condition": c} for c in conds]}}


def _register(ctx: _Ctx, s: RegisterModelStep) -> dict[str, Any]:
    rm = s.register_model
    model_step, _, _ = rm.model.partition(".outputs.")
    producer = ctx.steps[model_step]
    if not (isinstance(producer, TaskStep) and ctx.p.effective(producer).kind == "training"):
        raise _unsupported(s.name, "register_model", "SageMaker registers the model.tar.gz of a training step; "
                           f"make '{model_step}' a `kind: training` step")
    image = rm.image or (framework_image(rm.framework, ctx.settings.region, "inference") if rm.framework else None)
    if image is None:
        raise CompileError(f"step '{s.name}': SageMaker needs a serving image for the model package",
                           hint="set register_model.image or register_model.framework")
    args: dict[str, Any] = {
        "ModelPackageGroupName": rm.group,
        "ModelApprovalStatus": _APPROVAL[rm.approval],
        "InferenceSpecification": {
            "Containers": [{"Image": image, "ModelDataUrl": model_uri(ctx, model_step)}],
            "SupportedContentTypes": ["application/json"], "SupportedResponseMIMETypes": ["application/json"]},
    }
    if rm.metrics:
        m_step, _, m_out = rm.metrics.partition(".outputs.")
        if getattr(ctx.steps[m_step], "tuning", None) is not None:
            raise _unsupported(s.name, "step.tuning", f"register_model.metrics reads '{rm.metrics}', but a SageMaker "
                               "tuning job keeps its metrics inside; evaluate the best model in a processing step")
        uri = {"Get": f"Steps.{m_step}.ProcessingOutputConfig.Outputs['{m_out}'].S3Output.S3Uri"}
        args["ModelMetrics"] = {"ModelQuality": {"Statistics": {"ContentType": "application/json",
                                                               "S3Uri": _join([uri, "/metrics.json"])}}}
    if rm.description:
        args["ModelPackageDescription"] = rm.description
    if rm.tags:
        args["CustomerMetadataProperties"] = dict(rm.tags)
    step: dict[str, Any] = {"Name": s.name, "Type": "RegisterModel", "Arguments": args}
    if s.depends_on:
        step["DependsOn"] = list(s.depends_on)
    return step


def _owners(p: Pipeline) -> dict[str, tuple[str, str] | None]:
    try:
        return branch_owners(p)
    except BranchConflict as e:
        raise _unsupported(e.step, "condition", f"{e}; SageMaker nests guarded steps inside one branch") from None


def compile_definition(p: Pipeline, settings: Any, base_dir: str | Path = ".") -> dict[str, Any]:
    """The pipeline definition as a dict (``json.dumps`` it for CreatePipeline).

    Example:
        >>> import cloudml
        >>> from cloudml.config import SageMakerSettings
        >>> b = cloudml.PipelineBuilder("p"); _ = b.add_step("stop", fail="always")
        >>> compile_definition(b.build(), SageMakerSettings(bucket="my-ml", role_arn="arn:aws:iam::123456789012:role/ml"))["Steps"]
        [{'Name': 'stop', 'Type': 'Fail', 'Arguments': {'ErrorMessage': 'always'}}]
    """
    ctx = _Ctx(p, settings, base_dir)
    metrics_read = {f"{m.step}.{m.output}" for s in p.steps if isinstance(s, ConditionStep)
                    for m in s.condition.metric_operands()}
    owner = _owners(p)
    order = StepGraph.from_pipeline(p).topological_order()
    compiled: dict[str, dict[str, Any]] = {}
    for name in reversed(order):  # children before their condition
        s = ctx.steps[name]
        if isinstance(s, TaskStep):
            e = p.effective(s)
            if e.tuning is not None:
                from cloudml.adapters.sagemaker.tuning import tuning_step

                compiled[name] = tuning_step(ctx, e)
            else:
                compiled[name] = _training(ctx, e, metrics_read) if e.kind == "training" else _processing(ctx, e, metrics_read)
        elif isinstance(s, FailStep):
            compiled[name] = {"Name": name, "Type": "Fail", "Arguments": {"ErrorMessage": _text(s.fail, {})}}
            if s.depends_on:
                compiled[name]["DependsOn"] = list(s.depends_on)
        elif isinstance(s, RegisterModelStep):
            compiled[name] = _register(ctx, s)
        else:
            assert isinstance(s, ConditionStep)
            branches = {b: [compiled[n] for n in order if owner.get(n) == (name, b)] for b in ("then", "else")}
            for b, members in branches.items():
                if len(members) > MAX_BRANCH_STEPS:
                    raise CompileError(f"condition '{name}' guards {len(members)} steps in its {b} branch; "
                                       f"SageMaker allows {MAX_BRANCH_STEPS}", hint="split the pipeline")
            compiled[name] = {"Name": name, "Type": "Condition", "Arguments": {
                "Conditions": _conditions(ctx, s.condition, name), "IfSteps": branches["then"],
                "ElseSteps": branches["else"]}}
            if s.depends_on:
                compiled[name]["DependsOn"] = list(s.depends_on)
    params = [{"Name": n, "Type": _PTYPES[v.type], **({"DefaultValue": v.default} if v.default is not None else {})}
              for n, v in p.parameters.items()]
    return {"Version": "2020-12-01", "Metadata": {}, "Parameters": params + ctx.extra_params,
            "Steps": [compiled[n] for n in order if owner.get(n) is None]}

