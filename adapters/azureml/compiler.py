"""Spec -> Azure ML pipeline job (CLI v2 YAML, as a dict). Pure: no azure-ai-ml import, no network.

Mapping (docs/adapters/azureml.md has the full table):

* parameters -> pipeline ``inputs`` (literals), bound into nodes as ``${{parent.inputs.p}}``; a parameter
  used as a whole input (``{{params.uri}}``) is a ``uri_folder``/``uri_file`` input whose ``path`` is its
  default (run-time values replace the path; ``s3://``/``gs://``/local defaults are refused);
* ``schedule:`` -> checked here (cron and time zone), applied as a job schedule (schedule.py);
* each task step -> a ``command`` node with an inline command component: ``{{inputs.x}}`` ->
  ``${{inputs.x}}``, ``{{outputs.y}}`` -> ``${{outputs.y}}``, ``{{params.p}}`` -> ``${{inputs.p}}``;
* artifact passing -> ``${{parent.jobs.<node>.outputs.<name>}}``; outputs are ``uri_folder``
  (``custom_model`` for models; a ``metrics`` output is the ``metrics.json`` file inside its folder);
* external ``azureml://`` / blob URIs -> node inputs with a ``path``;
* image -> ``environment.image``; compute and instance type from resources or backend options;
* timeout -> ``limits.timeout``; cache off -> ``is_deterministic: false``;
* fail -> a node that prints the message and exits 1;
* python steps -> ``python cloudml_runtime.py --function module:function ...`` run in the step's
  ``code:`` folder; the cloudml client copies cloudml's runtime entry point into a staged copy of that
  folder (or into a folder of its own for a python step without code) and azure-ai-ml uploads it at
  submit time. Submitting the YAML another way needs ``cloudml_runtime.py`` in the code folder;
* retries (Azure ML command steps have none) -> the command runs under the runtime's retry wrapper,
  ``python cloudml_runtime.py --retry N --backoff S -- ...`` (so the image needs ``python``);
* framework shortcuts -> curated environments of the ``azureml`` registry (``environments.py``);
* whatever the adapter's capabilities declare unsupported is refused here too (UnsupportedFeatureError).

Node names are the step names with ``-`` turned into ``_`` (Azure ML wants identifiers).

Example:
    >>> import cloudml
    >>> b = cloudml.PipelineBuilder("demo"); _ = b.add_step("say-hi", command="echo hi", image="python:3.11")
    >>> job = compile_job(b.build(), None)
    >>> job["type"], list(job["jobs"]), job["jobs"]["say_hi"]["component"]["command"]
    ('pipeline', ['say_hi'], 'echo hi')
"""

from __future__ import annotations

import json
import math
import re
import shlex
from pathlib import Path
from typing import Any

from cloudml.adapters.azureml.environments import curated_environment
from cloudml.dag import StepGraph
from cloudml.errors import CompileError, UnsupportedFeatureError
from cloudml.spec.pipeline import Pipeline
from cloudml.spec.refs import ExternalRef, ParamSourceRef, StepOutputRef, find_placeholders
from cloudml.spec.steps import ConditionStep, FailStep, RegisterModelStep, TaskStep

__all__ = ["BUILD_DIR", "CONDITIONS_FILE", "PREVIEW_FEATURES", "REGISTER_TYPE", "RUNTIME_FILE", "SCHEMA", "check_uri", "compile_job",
           "node_name", "uri_parameters"]

SCHEMA = "https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json"
FAIL_IMAGE = "python:3.11-slim"
RUNTIME_FILE = "cloudml_runtime.py"  # cloudml's runtime entry point, shipped in the node's code folder
BUILD_DIR = ".cloudml/build/azureml/code"  # a step's code bundle, when it has code_paths, under the pipeline folder
DIGEST_CHARS = 16
CONDITIONS_FILE = "cloudml_conditions.py"  # cloudml.spec.conditions, beside it in a guarded node's code folder
# a registered model output: the model folder as is (an mlflow_model type needs an option the spec lacks)
REGISTER_TYPE = "custom_model"
# with AzureMLSettings.enable_preview_conditions, top-level conditions are if_else nodes (else runtime guards)
PREVIEW_FEATURES = ("condition", "condition.or")
_PTYPE = {"string": "string", "int": "integer", "float": "number", "bool": "boolean"}
_RUNTIME_TYPE = {"string": "str", "int": "int", "float": "float", "bool": "bool"}
_OTYPE = {"dataset": "uri_folder", "generic": "uri_folder", "metrics": "uri_folder", "model": "custom_model"}
_SCHEMES = ("azureml", "https", "wasbs", "abfss")
# neutral size -> (vCPU, GiB) of the smallest general-purpose Azure VM that fits
_VMS = [("Standard_DS2_v2", 2, 7), ("Standard_DS3_v2", 4, 14), ("Standard_DS4_v2", 8, 28),
        ("Standard_DS5_v2", 16, 56), ("Standard_E4s_v3", 4, 32), ("Standard_E8s_v3", 8, 64),
        ("Standard_E16s_v3", 16, 128)]
# gpu type -> [(VM size, GPUs, vCPU, GiB)], smallest first
_GPU_VMS = {
    "nvidia-t4": [("Standard_NC4as_T4_v3", 1, 4, 28), ("Standard_NC8as_T4_v3", 1, 8, 56),
                  ("Standard_NC16as_T4_v3", 1, 16, 110), ("Standard_NC64as_T4_v3", 4, 64, 440)],
    "nvidia-v100": [("Standard_NC6s_v3", 1, 6, 112), ("Standard_NC12s_v3", 2, 12, 224),
                    ("Standard_NC24s_v3", 4, 24, 448)],
    "nvidia-a100": [("Standard_NC24ads_A100_v4", 1, 24, 220), ("Standard_NC48ads_A100_v4", 2, 48, 440),
                    ("Standard_NC96ads_A100_v4", 4, 96, 880)],
}
# a shell word Azure ML's ${{...}} substitution cannot split: safe characters and bindings only
_BARE_WORD = re.compile(r"(?:[\w@%+=:,./-]|\$\{\{[A-Za-z0-9_.]+\}\})+")


def node_name(step: str) -> str:
    """The Azure ML node name of a step (an identifier).

    Example:
        >>> node_name("validate-data")
        'validate_data'
    """
    return step.replace("-", "_")


def _unsupported(step: str | None, feature: str, reason: str) -> UnsupportedFeatureError:
    return UnsupportedFeatureError("azureml", step, feature, reason)


def _text(text: str, s: TaskStep | None, metric_inputs: frozenset[str] = frozenset()) -> str:
    """Neutral placeholders -> Azure ML bindings; metrics inputs/outputs name the JSON file in the folder."""
    out, pos = [], 0
    for ph in find_placeholders(text):
        out.append(text[pos:ph.start])
        # parameters are inputs of the node, and so are a sweep trial's searched values
        namespace = "inputs" if ph.namespace in ("params", "tuning") else ph.namespace
        out.append(f"${{{{{namespace}.{ph.name}}}}}")
        if s is not None and ph.namespace == "outputs" and s.outputs[ph.name].type == "metrics":
            out.append("/metrics.json")
        if ph.namespace == "inputs" and ph.name in metric_inputs:
            out.append("/metrics.json")
        pos = ph.end
    out.append(text[pos:])
    return "".join(out)


def _vm(s: TaskStep, default: str | None) -> str | None:
    r = s.resources
    if r is not None and r.instance_type.get("azureml"):
        return str(r.instance_type["azureml"])
    if r is None or (r.cpu is None and r.memory is None and not r.gpu):
        return default
    cpu, mem = r.cpu or 1, (r.memory or 0) / 1024**3
    if r.gpu:
        gpu_fits = [v for v in _GPU_VMS.get(str(r.gpu_type), []) if v[1] >= r.gpu and v[2] >= cpu and v[3] >= mem]
        if not gpu_fits:
            raise CompileError(f"step '{s.name}': no Azure VM in cloudml's table for {r.gpu} x {r.gpu_type} "
                               f"with {cpu} vCPU and {mem:g} GiB", hint="set resources.instance_type.azureml")
        return gpu_fits[0][0]
    fits = [v for v in _VMS if v[1] >= cpu and v[2] >= mem]
    if not fits:
        raise CompileError(f"step '{s.name}': no Azure VM in cloudml's table has {cpu} vCPU and {mem:g} GiB",
                           hint="set resources.instance_type.azureml")
    return min(fits, key=lambda v: (v[1], v[2]))[0]


class _Ctx:
    def __init__(self, p: Pipeline, settings: Any, base_dir: Path | None = None) -> None:
        self.p = p
        self.base = Path(base_dir) if base_dir is not None else Path(".")
        self.settings = settings
        self.steps = {s.name: s for s in p.steps}
        self.options: dict[str, Any] = p.backend_options.get("azureml", {})
        self.p_order = StepGraph.from_pipeline(p).topological_order()
        self.uri_params = uri_parameters(p)


def check_uri(param: str, uri: str, step: str | None) -> None:
    """A URI a parameter brings as an input must be one Azure ML jobs can read (``_SCHEMES``).

    Example:
        >>> check_uri("data", "s3://bucket/churn.csv", "prep")
        Traceback (most recent call last):
        cloudml.errors.UnsupportedFeatureError: azureml cannot express 'input.parameter' on step 'prep': parameter data holds 's3://bucket/churn.csv'; Azure ML jobs read azureml:// datastore URIs or blob storage URLs (https://, wasbs://, abfss://), not s3://
    """
    scheme = ExternalRef(uri).scheme
    if scheme not in _SCHEMES or find_placeholders(uri):
        what = "a local path" if scheme == "file" else f"{scheme}://"
        raise UnsupportedFeatureError("azureml", step, "input.parameter", f"parameter {param} holds '{uri}'; Azure ML "
                                      "jobs read azureml:// datastore URIs or blob storage URLs (https://, wasbs://, "
                                      f"abfss://), not {what}", hint=f"give {param} an azureml://datastores/<datastore>"
                                      "/paths/<path> value (copy the data there first), as its default and at run time")


def uri_parameters(p: Pipeline) -> dict[str, str]:
    """Parameters used as a whole input (``{{params.x}}``) -> the Azure ML input type of their default
    (``uri_folder`` when it ends with ``/``, else ``uri_file``); their defaults are checked with :func:`check_uri`.

    Example:
        >>> import cloudml
        >>> b = cloudml.PipelineBuilder("p"); _ = b.param("data", str, "azureml://datastores/d/paths/x/")
        >>> _ = b.add_step("a", command="ls {{inputs.d}}", image="i", inputs={"d": "{{params.data}}"})
        >>> uri_parameters(b.build())
        {'data': 'uri_folder'}
    """
    found: dict[str, str] = {}
    for s in p.steps:
        if not isinstance(s, TaskStep):
            continue
        for spec in s.inputs.values():
            if isinstance(spec.ref, ParamSourceRef) and spec.ref.param not in found:
                default = p.parameters[spec.ref.param].default
                if default is not None:
                    check_uri(spec.ref.param, str(default), s.name)
                found[spec.ref.param] = "uri_folder" if str(default or "").endswith("/") else "uri_file"
    return found


def _inputs(ctx: _Ctx, s: TaskStep) -> tuple[dict[str, Any], dict[str, Any]]:
    """(node inputs, component inputs) for a step's artifacts and the parameters it uses."""
    node: dict[str, Any] = {}
    comp: dict[str, Any] = {}
    for name, spec in s.inputs.items():
        ref = spec.ref
        if isinstance(ref, StepOutputRef):
            producer = ctx.steps[ref.step]
            assert isinstance(producer, TaskStep)
            node[name] = f"${{{{parent.jobs.{node_name(ref.step)}.outputs.{ref.output}}}}}"
            comp[name] = {"type": _OTYPE[producer.outputs[ref.output].type]}
        elif isinstance(ref, ExternalRef) and ref.scheme in _SCHEMES and not find_placeholders(ref.uri):
            kind = "uri_folder" if ref.uri.endswith("/") else "uri_file"
            node[name] = {"type": kind, "path": ref.uri}
            comp[name] = {"type": kind}
        elif isinstance(ref, ParamSourceRef):  # a pipeline input of an asset type: run-time values override it
            node[name] = f"${{{{parent.inputs.{ref.param}}}}}"
            comp[name] = {"type": ctx.uri_params[ref.param]}
        else:
            raise _unsupported(s.name, "input.external", f"input '{name}' is {ref}; Azure ML jobs read azureml:// "
                               "datastore URIs or blob storage URLs")
    texts = ([s.command] if isinstance(s.command, str) else list(s.command or [])) + s.args
    texts += [v for v in s.params.values() if isinstance(v, str)]  # a python step's params
    for p in dict.fromkeys(ph.name for t in texts for ph in find_placeholders(t) if ph.namespace == "params"):
        if p in ctx.uri_params:
            raise _unsupported(s.name, "input.parameter", f"parameter {p} holds an input URI (a {ctx.uri_params[p]} "
                               "pipeline input on Azure ML) and is also used as text here; Azure ML binds it as "
                               "one or the other")
        same = [n for n in node if n.lower() == p.lower()]
        if same:
            raise CompileError(f"step '{s.name}': parameter {p} and an input share the name {same[0]} "
                               "(Azure ML ignores case)",
                               hint="rename one of them: Azure ML binds parameters and inputs as inputs")
        node[p] = f"${{{{parent.inputs.{p}}}}}"
        comp[p] = {"type": _PTYPE[ctx.p.parameters[p].type]}
    return node, comp


def _word(text: str) -> str:
    """One argv item as one shell word. Azure ML substitutes ``${{...}}`` textually before the shell runs,
    so an item that is more than safe characters and bindings is single-quoted as a whole."""
    return text if text and _BARE_WORD.fullmatch(text) else shlex.quote(text)


def _command(s: TaskStep, metric_inputs: frozenset[str]) -> str:
    if isinstance(s.command, list):
        cmd = " ".join(_word(_text(c, s, metric_inputs)) for c in s.command)
    else:
        cmd = _text(s.command or "", s, metric_inputs)
    args = " ".join(_word(_text(a, s, metric_inputs)) for a in s.args)
    return f"{cmd} {args}".strip()


def _producer_type(ctx: _Ctx, ref: StepOutputRef) -> str:
    producer = ctx.steps[ref.step]
    assert isinstance(producer, TaskStep)
    return str(producer.outputs[ref.output].type)


def _plain(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def _python_command(s: TaskStep, metric_inputs: frozenset[str], code_paths: list[str]) -> str:
    """cloudml's runtime calling ``module:function`` with the node's inputs, outputs and params."""
    assert s.python is not None
    words = ["python", RUNTIME_FILE, "--function", s.python, "--code", ".", *code_paths]
    words += [_text(f"--input={n}={{{{inputs.{n}}}}}", s, metric_inputs) for n in s.inputs]
    words += [_text(f"--output={n}={{{{outputs.{n}}}}}", s, metric_inputs) for n in s.outputs]
    words += [f"--output-type={n}={o.type}" for n, o in s.outputs.items()]
    words += [_text(f"--param={k}={v}", s, metric_inputs) if isinstance(v, str) else f"--param={k}={_plain(v)}"
              for k, v in s.params.items()]
    words += [f"--param={n}=${{{{inputs.{n}}}}}" for n in (s.tuning.search_space if s.tuning else {})]
    return " ".join(_word(w) for w in words)


def _code(ctx: _Ctx, s: TaskStep) -> tuple[str | None, list[str]]:
    """(the component's ``code``, the runtime's ``--code-path`` args). A step with ``code_paths`` ships one
    folder, its bundle (cloudml.codebundle: the code folder at the top, each ``code_paths`` folder under
    ``_cloudml_paths/<i>-<name>/``, ``cloudml_runtime.py``), written once per content under
    ``<pipeline folder>/.cloudml/build/azureml/code/<digest>/`` and named relative to that folder."""
    if not s.code_paths:
        return s.code, []
    from cloudml.codebundle import step_bundle

    bundle = step_bundle(ctx.base, s)  # a missing folder: CompileError naming the step and the folder
    relative = f"{BUILD_DIR}/{bundle.digest('cloudml-azureml-code-v1')[:DIGEST_CHARS]}"
    dest = ctx.base / relative
    if not dest.is_dir():
        import os
        import tempfile

        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=dest.parent))
            bundle.materialize(partial)
        except OSError as e:
            raise CompileError(f"step '{s.name}': cannot write its code bundle under {dest.parent}: {e.strerror or e}",
                               hint="Azure ML takes one code folder per step, so cloudml writes the code and its "
                               "code_paths there; compile from a folder you can write to (e.g. a copy made with "
                               "cloudml init)") from None
        try:
            os.replace(partial, dest)  # content-addressed: a concurrent compile wrote the same files
        except OSError:
            import shutil

            shutil.rmtree(partial, ignore_errors=True)
    return relative, bundle.path_args(".") if s.python else []


def _environment(s: TaskStep) -> Any:
    if s.image:
        return {"image": s.image}
    if s.framework:
        return curated_environment(s.framework, s.name)
    raise CompileError(f"step '{s.name}' has no image or framework",
                       hint="set image: or framework: on the step or in defaults")


def _task_node(ctx: _Ctx, s: TaskStep) -> dict[str, Any]:
    environment = _environment(s)
    if s.cache and s.cache.expire is not None:
        raise _unsupported(s.name, "step.cache_expiry", "Azure ML reuse has no expiry")
    for k, v in s.env.items():
        if any(ph.namespace != "tuning" or not s.tuning for ph in find_placeholders(v)):
            raise _unsupported(s.name, "step.env", f"env {k} uses a placeholder; Azure ML environment variables are static")
    node_inputs, comp_inputs = _inputs(ctx, s)
    metric_inputs = frozenset(n for n, spec in s.inputs.items() if isinstance(spec.ref, StepOutputRef)
                              and _producer_type(ctx, spec.ref) == "metrics")
    code, code_paths = _code(ctx, s)
    command = _python_command(s, metric_inputs, code_paths) if s.python else _command(s, metric_inputs)
    if s.retry and s.retry.attempts > 1:  # emulated: Azure ML command steps have no retries
        command = (f"python {RUNTIME_FILE} --retry {s.retry.attempts} --backoff {s.retry.backoff:g} -- "
                   f"sh -c {shlex.quote(command)}")
    component: dict[str, Any] = {"type": "command", "name": node_name(s.name), "command": command,
                                 "environment": environment}
    if code:
        component["code"] = code
    if comp_inputs:
        component["inputs"] = comp_inputs
    if s.outputs:
        component["outputs"] = {n: {"type": _OTYPE[o.type]} for n, o in s.outputs.items()}
    if s.cache is not None and not s.cache.enabled:
        component["is_deterministic"] = False
    node: dict[str, Any] = {"type": "command", "component": component}
    if node_inputs:
        node["inputs"] = node_inputs
    if s.outputs:
        node["outputs"] = {n: {"type": _OTYPE[o.type]} for n, o in s.outputs.items()}
    opts = {**ctx.options, **s.backend_options.get("azureml", {})}
    compute = opts.get("compute")
    if compute:
        node["compute"] = compute if compute == "serverless" else f"azureml:{compute.removeprefix('azureml:')}"
    vm = _vm(s, opts.get("instance_type"))
    if vm or (s.resources and s.resources.instance_count > 1):
        node["resources"] = {**({"instance_type": vm} if vm else {}),
                             **({"instance_count": s.resources.instance_count} if s.resources else {})}
    if s.timeout is not None:
        node["limits"] = {"timeout": max(1, math.ceil(s.timeout))}
    # the runtime contract (docs/runtime-contract.md); paths travel in the command only
    node["environment_variables"] = {"CLOUDML_STEP": s.name, "CLOUDML_BACKEND": "azureml", **s.env}
    if s.description:
        node["description"] = s.description
    if s.tuning is not None:  # a sweep node whose trial is this command (sweep.py)
        from cloudml.adapters.azureml.sweep import sweep_node

        bindings = {n: _text(f"{{{{outputs.{n}}}}}", s) for n in s.outputs}
        env = {k: _text(v, s) for k, v in node["environment_variables"].items()}
        return sweep_node(node, s.tuning, s.name, bindings, RUNTIME_FILE, env)
    return node


def _fail_node(s: FailStep) -> dict[str, Any]:
    params = [ph.name for ph in find_placeholders(s.fail) if ph.namespace == "params"]
    message = _text(s.fail, None)
    component: dict[str, Any] = {"type": "command", "name": node_name(s.name),
                                 "command": f"echo {shlex.quote(message)} >&2; exit 1",
                                 "environment": {"image": FAIL_IMAGE}}
    node: dict[str, Any] = {"type": "command", "component": component}
    if params:
        component["inputs"] = {p: {"type": "string"} for p in params}
        node["inputs"] = {p: f"${{{{parent.inputs.{p}}}}}" for p in params}
    return node


def _ref(text: str) -> tuple[str, str]:
    step, _, output = text.partition(".outputs.")
    return step, output


def _set_compute(node: dict[str, Any], compute: str | None) -> None:
    if compute:
        node["compute"] = compute if compute == "serverless" else f"azureml:{compute.removeprefix('azureml:')}"


def _register_node(ctx: _Ctx, s: RegisterModelStep) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(node, pipeline output or None). A pending registration with no tags, metrics or description is a
    copy node promoted to a named pipeline output (:func:`_output_register_node`, plain Azure ML); anything
    else is a node running cloudml's runtime, which registers through the registry API
    (:func:`_runtime_register_node`)."""
    r = s.register_model
    if r.approval == "pending" and not r.tags and not r.metrics and not r.description:
        return _output_register_node(ctx, s)
    return _runtime_register_node(ctx, s), None


def _output_register_node(ctx: _Ctx, s: RegisterModelStep) -> tuple[dict[str, Any], dict[str, Any]]:
    """A node copies the model into an output that the pipeline promotes to a job output with
    ``name: <group>``, which Azure ML registers when the job ends."""
    r = s.register_model
    opts = {**ctx.options, **s.backend_options.get("azureml", {})}
    step, output = _ref(r.model)
    node_inputs = {"model": f"${{{{parent.jobs.{node_name(step)}.outputs.{output}}}}}"}
    comp_inputs: dict[str, Any] = {"model": {"type": _OTYPE[_producer_type(ctx, StepOutputRef(step, output))]}}
    command = "mkdir -p ${{outputs.model}} && cp -a ${{inputs.model}}/. ${{outputs.model}}/"
    component = {"type": "command", "name": node_name(s.name), "command": command,
                 "environment": {"image": FAIL_IMAGE}, "inputs": comp_inputs,
                 "outputs": {"model": {"type": REGISTER_TYPE}}}
    node: dict[str, Any] = {"type": "command", "component": component, "inputs": node_inputs,
                            "outputs": {"model": f"${{{{parent.outputs.{node_name(s.name)}}}}}"}}
    _set_compute(node, opts.get("compute"))
    if s.description:
        node["description"] = s.description
    return node, {"type": REGISTER_TYPE, "name": r.group, "mode": "upload"}


def _runtime_register_node(ctx: _Ctx, s: RegisterModelStep) -> dict[str, Any]:
    """A command node running ``python -m cloudml.runtime --register-model azureml ...`` (in_job.py).

    The model input is bound with ``mode: direct``, so ``${{inputs.model}}`` is the output's storage URI
    (registered as the version's path, nothing is copied or uploaded); the metrics folder is mounted.
    """
    r = s.register_model
    opts = {**ctx.options, **s.backend_options.get("azureml", {})}
    image = opts.get("runtime_image") or ctx.p.defaults.image
    if not image:
        raise CompileError(f"step '{s.name}': an Azure ML register step with approval, tags, metrics or a "
                           "description runs cloudml's runtime, and the pipeline names no image with "
                           "cloudml[azure] installed", hint="set backend_options.azureml.runtime_image (or "
                           "defaults.image); see docs/adapters/azureml.md for a two-line Dockerfile")
    step, output = _ref(r.model)
    node_inputs: dict[str, Any] = {"model": {"path": f"${{{{parent.jobs.{node_name(step)}.outputs.{output}}}}}",
                                             "mode": "direct"}}
    comp_inputs: dict[str, Any] = {"model": {"type": _OTYPE[_producer_type(ctx, StepOutputRef(step, output))]}}
    words = ["python", "-m", "cloudml.runtime", "--register-model", "azureml", "--group", r.group,
             "--model-uri", "${{inputs.model}}", "--model-type", REGISTER_TYPE, "--approval", r.approval]
    if r.metrics:
        mstep, mout = _ref(r.metrics)
        node_inputs["metrics"] = f"${{{{parent.jobs.{node_name(mstep)}.outputs.{mout}}}}}"
        comp_inputs["metrics"] = {"type": "uri_folder"}
        words += ["--metrics", "${{inputs.metrics}}"]
    if r.tags:
        words += ["--tags", json.dumps(r.tags, sort_keys=True)]
    if r.description:
        words += ["--description", r.description]
    component = {"type": "command", "name": node_name(s.name), "command": " ".join(_word(w) for w in words),
                 "environment": {"image": image}, "inputs": comp_inputs,
                 "is_deterministic": False}  # registering twice makes two versions: never reuse a result
    node: dict[str, Any] = {"type": "command", "component": component, "inputs": node_inputs,
                            "environment_variables": {"CLOUDML_STEP": s.name, "CLOUDML_BACKEND": "azureml"}}
    _set_compute(node, opts.get("compute"))
    if s.description:
        node["description"] = s.description
    return node


def _condition_nodes(ctx: _Ctx, s: ConditionStep, chains: dict[str, list[tuple[str, str]]]) -> dict[str, Any]:
    """The evaluating command node (``<gate>_eval``, boolean output ``result``) and the ``if_else`` node of a
    top-level condition (preview only). Its blocks hold every node whose outermost branch is this one;
    conditions nested inside are runtime guards on those nodes (guards.py), as azure-ai-ml refuses an
    ``if_else`` in another's block."""
    gate, evaluator = node_name(s.name), f"{node_name(s.name)}_eval"
    node_inputs: dict[str, Any] = {}
    comp_inputs: dict[str, Any] = {}
    words = ["python", "-m", "cloudml.runtime", "--condition", str(s.condition)]
    producers: list[str] = []
    for m in s.condition.metric_operands():
        key = f"{node_name(m.step)}__{m.output}"
        if key not in node_inputs:
            node_inputs[key] = f"${{{{parent.jobs.{node_name(m.step)}.outputs.{m.output}}}}}"
            comp_inputs[key] = {"type": "uri_folder"}
            words.append(f"--metrics={m.step}.{m.output}=${{{{inputs.{key}}}}}")
            producers.append(m.step)
    for name in dict.fromkeys(o.name for o in s.condition.param_operands()):
        node_inputs[name] = f"${{{{parent.inputs.{name}}}}}"
        comp_inputs[name] = {"type": _PTYPE[ctx.p.parameters[name].type]}
        words += [f"--param={name}=${{{{inputs.{name}}}}}",
                  f"--param-type={name}={_RUNTIME_TYPE[ctx.p.parameters[name].type]}"]
    words += ["--result", "${{outputs.result}}"]
    if not producers:
        raise _unsupported(s.name, "condition", "a condition without a metric has no step whose environment can "
                           "evaluate it on Azure ML")
    producer = ctx.steps[producers[0]]
    assert isinstance(producer, TaskStep)
    component = {"type": "command", "name": evaluator, "command": " ".join(_word(w) for w in words),
                 "environment": _environment(ctx.p.effective(producer)), "inputs": comp_inputs,
                 "outputs": {"result": {"type": "boolean"}}, "is_deterministic": False}
    eval_node: dict[str, Any] = {"type": "command", "component": component, "inputs": node_inputs}
    _set_compute(eval_node, ctx.options.get("compute"))
    branch: dict[str, Any] = {"type": "if_else", "condition": f"${{{{parent.jobs.{evaluator}.outputs.result}}}}"}
    for key, label in (("then", "true_block"), ("else", "false_block")):
        members = [f"${{{{parent.jobs.{node_name(n)}}}}}" for n in ctx.p_order
                   if chains.get(n) and chains[n][0] == (s.name, key)]
        if members:
            branch[label] = members[0] if len(members) == 1 else members
    return {evaluator: eval_node, gate: branch}


def _guarded(ctx: _Ctx, step: str, node: dict[str, Any], guards: dict[str, list[tuple[str, str]]],
             installed: bool = False) -> dict[str, Any]:
    """The node behind a runtime guard when its step sits in a branch that is not an if_else block (guards.py)."""
    if step not in guards:
        return node
    from cloudml.adapters.azureml.guards import guard_node

    runtime = "python -m cloudml.runtime" if installed else f"python {RUNTIME_FILE}"
    return guard_node(node, step, guards[step], ctx.p, runtime)


def _owners(p: Pipeline) -> dict[str, Any]:
    """The branch each step runs in (``cloudml.dag.branch_owners``); a step needing two branches is refused."""
    from cloudml.dag import BranchConflict, branch_owners

    try:
        return dict(branch_owners(p))
    except BranchConflict as e:
        raise _unsupported(e.step, "condition", f"{e}; an if_else block holds each node once") from None


def _refuse_gaps(p: Pipeline) -> None:
    """What the adapter's capabilities declare unsupported is refused here too, not silently dropped."""
    from cloudml.adapter import pipeline_features
    from cloudml.adapters.azureml import AzureMLAdapter

    caps = AzureMLAdapter.capabilities
    for use in pipeline_features(p):
        if not caps.supports(use.feature):
            raise UnsupportedFeatureError("azureml", use.step, use.feature, caps.reason(use.feature),
                                          hint="`cloudml backends --features` shows what each backend supports")


def compile_job(p: Pipeline, settings: Any, base_dir: Path | None = None) -> dict[str, Any]:
    """The pipeline job as a dict (write it as YAML for ``az ml job create`` or ``load_job``).

    ``base_dir`` is the pipeline file's folder, where ``code`` and ``code_paths`` start (default: the
    working directory); the code bundle of a step with ``code_paths`` is written under it (:func:`_code`).

    Example:
        >>> import cloudml
        >>> b = cloudml.PipelineBuilder("p"); _ = b.param("lr", float, 0.1)
        >>> _ = b.add_step("t", command="python t.py --lr {{params.lr}}", image="img")
        >>> compile_job(b.build(), None)["jobs"]["t"]["component"]["command"]
        'python t.py --lr ${{inputs.lr}}'
    """
    from cloudml.adapters.azureml.guards import guard_chains

    _refuse_gaps(p)
    ctx = _Ctx(p, settings, base_dir)
    preview = bool(getattr(settings, "enable_preview_conditions", False))
    owner = _owners(p)
    if_else = [s.name for s in p.steps if isinstance(s, ConditionStep) and preview and owner.get(s.name) is None]
    names = [node_name(s.name) for s in p.steps if not isinstance(s, ConditionStep) or s.name in if_else]
    names += [f"{node_name(s)}_eval" for s in if_else]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise CompileError(f"steps {', '.join(clash)} collide as Azure ML node names ('-' becomes '_'; a condition "
                           "<gate> also makes a node <gate>_eval)", hint="rename one of them")
    chains = guard_chains(p, preview=False)  # every enclosing branch, outermost first
    guards = {n: c[1:] if preview else c for n, c in chains.items()}
    guards = {n: c for n, c in guards.items() if c}
    jobs: dict[str, Any] = {}
    outputs: dict[str, Any] = {}
    for name in ctx.p_order:
        s = ctx.steps[name]
        if s.depends_on:
            raise _unsupported(name, "step.depends_on", "Azure ML orders nodes by their data bindings only")
        if isinstance(s, TaskStep):
            jobs[node_name(name)] = _guarded(ctx, name, _task_node(ctx, p.effective(s)), guards)
        elif isinstance(s, FailStep):
            jobs[node_name(name)] = _guarded(ctx, name, _fail_node(s), guards)
        elif isinstance(s, ConditionStep):
            if name in if_else:
                jobs.update(_condition_nodes(ctx, s, chains))
        elif name in guards:  # the copy route would register an empty folder: the runtime registers
            jobs[node_name(name)] = _guarded(ctx, name, _runtime_register_node(ctx, s), guards, installed=True)
        else:
            assert isinstance(s, RegisterModelStep)
            jobs[node_name(name)], registered = _register_node(ctx, s)
            if registered is not None:
                outputs[node_name(name)] = registered
    job: dict[str, Any] = {"$schema": SCHEMA, "type": "pipeline", "display_name": p.name, "experiment_name": p.name,
                           "settings": {"continue_on_step_failure": False}, "jobs": jobs}
    if outputs:
        job["outputs"] = outputs
    if p.description:
        job["description"] = p.description
    compute = ctx.options.get("compute") or (settings.compute if settings is not None else None)
    if compute:
        job["settings"]["default_compute"] = compute if compute == "serverless" else f"azureml:{compute.removeprefix('azureml:')}"
    required = [n for n, v in p.parameters.items() if v.default is None]
    if required:
        raise CompileError(f"parameter(s) {', '.join(required)} have no default; an Azure ML pipeline job "
                           "carries a value for every input", hint="give each a default in the spec (a run can "
                           "still override it)")
    if p.parameters:
        job["inputs"] = {n: {"type": ctx.uri_params[n], "path": v.default} if n in ctx.uri_params else v.default
                         for n, v in p.parameters.items()}
    if p.schedule is not None:  # refused here, at compile time, when Azure ML cannot say it (schedule.py)
        from cloudml.adapters.azureml.schedule import azure_cron, azure_time_zone

        azure_cron(p.schedule.cron), azure_time_zone(p.schedule.timezone)
    return job

