"""Spec -> KFP v2 PipelineSpec IR (schemaVersion 2.1.0) for Vertex AI Pipelines. Pure: no kfp, no network.

Mapping (docs/adapters/vertex.md has the full table):

* parameters -> ``root.inputDefinitions.parameters`` (integers travel as doubles);
* task steps -> one component + executor each; ``{{inputs.x}}`` -> ``{{$.inputs.artifacts['x'].path}}``,
  ``{{outputs.y}}`` -> ``{{$.outputs.artifacts['y'].path}}``, ``{{params.p}}`` ->
  ``{{$.inputs.parameters['p']}}``; ``gs://`` inputs -> their Cloud Storage FUSE path ``/gcs/...``;
* an input that is a whole ``{{params.p}}`` (a string parameter holding a ``gs://`` URI) -> the
  parameter reaches the task as ``{{$.inputs.parameters['p']}}`` and :data:`GCS_MAPPER` (run first,
  inside the container) turns the value into its ``/gcs/...`` path in the command, refusing anything
  that is not ``gs://`` with a message naming the parameter; a non-``gs://`` default is refused here;
* retries -> ``retryPolicy``; cache -> ``cachingOptions``; timeouts -> the container's command runs
  under ``timeout`` (the IR has no per-task timeout);
* conditions -> sub-DAG tasks with ``triggerPolicy.condition`` (CEL) on the metric, which the
  evaluation step exposes as an output parameter (a small extraction after its command);
  the else branch is a second sub-DAG with the negated condition;
* fail -> a task that prints the message and exits 1;
* python steps (``python: module:function``) and ``code:`` folders -> the executor fetches a
  content-addressed bundle ``<pipeline root>/cloudml/code/<sha256>.tar.gz`` through the Cloud Storage
  FUSE mount (``/gcs/...``), unpacks it into a temporary folder, and runs the command (or cloudml's
  runtime entry point) there; the client uploads the bundle at submit time (see ``bundles.py``).
  Without ``vertex.pipeline_root`` at compile time the URI starts with KFP's ``{{$.pipeline_root}}``;
* framework shortcuts -> Vertex prebuilt training images (``images.py``);
* whatever the adapter's capabilities declare unsupported is refused here too (UnsupportedFeatureError).

Example:
    >>> import cloudml
    >>> b = cloudml.PipelineBuilder("demo"); _ = b.add_step("hello", command="echo hi", image="python:3.11")
    >>> ir = compile_ir(b.build(), None)
    >>> ir["schemaVersion"], ir["root"]["dag"]["tasks"]["hello"]["componentRef"]
    ('2.1.0', {'name': 'comp-hello'})
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

from cloudml.adapters.vertex.bundles import RUNTIME_FILE, bundle_uri, code_digest
from cloudml.adapters.vertex.images import framework_image, prediction_image
from cloudml.adapters.vertex.inputs import (
    GCS_MAPPER,
    check_input_uris,
    input_token,
    param_inputs,
    refuse_non_gs_defaults,
)
from cloudml.codebundle import step_bundle
from cloudml.dag import StepGraph
from cloudml.errors import CompileError, UnsupportedFeatureError
from cloudml.spec.conditions import And, Compare, Expr, LiteralOperand, MetricOperand, Not, Or, ParamOperand
from cloudml.spec.pipeline import Pipeline
from cloudml.spec.refs import ExternalRef, ParamSourceRef, StepOutputRef, find_placeholders, split_command
from cloudml.spec.steps import ConditionStep, FailStep, RegisterModelStep, TaskStep

__all__ = ["GCS_MAPPER", "LAUNCHER", "ROOT_PLACEHOLDER", "SCHEMA_VERSION", "WRAPPER", "check_input_uris", "compile_ir",
           "input_token", "metric_key"]

SCHEMA_VERSION = "2.1.0"
_PTYPE = {"string": "STRING", "int": "NUMBER_INTEGER", "float": "NUMBER_DOUBLE", "bool": "BOOLEAN"}
_ARTIFACT = {"dataset": "system.Dataset", "model": "system.Model", "metrics": "system.Metrics",
             "generic": "system.Artifact"}
_GPU = {"nvidia-t4": "NVIDIA_TESLA_T4", "nvidia-v100": "NVIDIA_TESLA_V100", "nvidia-p100": "NVIDIA_TESLA_P100",
        "nvidia-a100": "NVIDIA_TESLA_A100", "nvidia-l4": "NVIDIA_L4", "nvidia-h100": "NVIDIA_H100_80GB"}
_CEL_OPS = {">=": ">=", ">": ">", "<=": "<=", "<": "<", "==": "==", "!=": "!="}
FAIL_IMAGE = "python:3.11-slim"
ROOT_PLACEHOLDER = "{{$.pipeline_root}}"
# Fetches a step's code bundle (gs:// -> the /gcs/ FUSE path), unpacks it into a fresh folder, and runs the
# rest of the argv there: ``python3 -c LAUNCHER <bundle uri> -- <command...>``.
LAUNCHER = (
    "import os,sys,tarfile,tempfile\n"
    "u=sys.argv[1]\nc=sys.argv[3:]\n"
    "p='/gcs/'+u[5:] if u.startswith('gs://') else u\n"
    "d=tempfile.mkdtemp(prefix='cloudml-code-')\n"
    "with tarfile.open(p) as t:\n"
    " t.extractall(d,**({'filter':'data'} if hasattr(tarfile,'data_filter') else {}))\n"
    "os.chdir(d)\n"
    "os.execvp(c[0],c)\n"
)
# Runs the step's command (with a timeout), then copies metric values out of metrics files into KFP
# output-parameter files. It is an argv element, never shell text, so KFP placeholders stay intact.
WRAPPER = (
    "import json,os,signal,subprocess,sys\n"
    "a=sys.argv[1:]\nt=float(a[0]) or None\ni=a.index('--')\nx=a[1:i]\n"
    "p=subprocess.Popen(a[i+1:],start_new_session=True)\n"
    "try:\n r=p.wait(timeout=t)\n"
    "except subprocess.TimeoutExpired:\n os.killpg(p.pid,signal.SIGKILL)\n p.wait()\n"
    " print('cloudml: step timed out after %ss' % a[0],file=sys.stderr)\n r=124\n"
    "if r:\n sys.exit(128-r if r<0 else r)\n"
    "for j in range(0,len(x),3):\n v=json.load(open(x[j]))\n"
    " q=x[j+1]\n for k in (json.loads(q) if q[:1]=='[' else q.split('.')):\n"
    "  v=v[int(k)] if isinstance(v,list) else v[str(k)]\n"
    " os.makedirs(os.path.dirname(x[j+2]) or '.',exist_ok=True)\n"
    " open(x[j+2],'w').write(v if isinstance(v,str) else json.dumps(v))\n"
)


def metric_key(output: str, path: tuple[str | int, ...]) -> str:
    """The output-parameter name under which a metric value travels between tasks.

    A single plain key keeps its name; any other path gets a short digest of the exact path, so two
    different paths never share a parameter (``["a-b"]``, ``["a_b"]`` and ``["a"]["b"]`` stay apart).

    Example:
        >>> metric_key("metrics", ("auc",))
        'metrics__auc'
        >>> metric_key("metrics", ("per_class", 0, "f1"))
        'metrics__per_class_0_f1_df11f277'
    """
    if len(path) == 1 and isinstance(path[0], str) and re.fullmatch(r"[A-Za-z0-9_]+", path[0]):
        return f"{output}__{path[0]}"
    readable = re.sub(r"[^A-Za-z0-9_]", "_", "_".join(str(k) for k in path))
    digest = hashlib.sha256(json.dumps(list(path)).encode()).hexdigest()[:8]
    return f"{output}__{readable}_{digest}"


def _wrapper_path(path: tuple[str | int, ...]) -> str:
    """The path argument WRAPPER reads: dotted when that is unambiguous, else a JSON list."""
    if all(isinstance(k, int) or re.fullmatch(r"[A-Za-z0-9_-]+", k) for k in path):
        return ".".join(str(k) for k in path)
    return json.dumps(list(path))


def _metric_types(e: Expr, params: dict[str, Any]) -> list[tuple[MetricOperand, str]]:
    """KFP parameter type of every metric a condition reads, from what it is compared with."""
    if isinstance(e, Compare):
        out = []
        for side, other in ((e.left, e.right), (e.right, e.left)):
            if isinstance(side, MetricOperand):
                kind = "NUMBER_DOUBLE"
                v = other.value if isinstance(other, LiteralOperand) else None
                if isinstance(other, ParamOperand) and other.name in params:
                    kind = {"string": "STRING", "bool": "BOOLEAN"}.get(params[other.name].type, kind)
                elif isinstance(v, bool):
                    kind = "BOOLEAN"
                elif isinstance(v, str):
                    kind = "STRING"
                out.append((side, kind))
        return out
    if isinstance(e, Not):
        return _metric_types(e.term, params)
    assert isinstance(e, (And, Or))
    return [pair for t in e.terms for pair in _metric_types(t, params)]


def _unsupported(step: str | None, feature: str, reason: str) -> UnsupportedFeatureError:
    return UnsupportedFeatureError("vertex", step, feature, reason)


def _double(value: Any) -> Any:
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


class _Ctx:
    def __init__(self, p: Pipeline, settings: Any, base_dir: Path) -> None:
        self.p = p
        self.settings = settings
        self.base = base_dir
        self.steps = {s.name: s for s in p.steps}
        self.components: dict[str, Any] = {}
        self.executors: dict[str, Any] = {}
        self.metrics_used: dict[str, dict[str, tuple[str, tuple[str | int, ...]]]] = {}  # step -> {key: (output, path)}
        self.metric_type: dict[tuple[str, str], str] = {}  # (step, key) -> KFP parameter type
        for s in p.steps:
            if isinstance(s, ConditionStep):
                for m, kind in _metric_types(s.condition, p.parameters):
                    key = metric_key(m.output, m.path)
                    self.metrics_used.setdefault(m.step, {})[key] = (m.output, m.path)
                    known = self.metric_type.setdefault((m.step, key), kind)
                    if known != kind:
                        raise CompileError(f"condition '{s.name}': {m} is compared with a {kind.lower()} here and "
                                           f"a {known.lower()} elsewhere",
                                           hint="compare each metric with values of one type")


def _text(text: str, s: TaskStep | None, paths: dict[str, str]) -> str:
    """Neutral placeholders -> KFP placeholders (or FUSE paths for gs:// inputs)."""
    out, pos = [], 0
    for ph in find_placeholders(text):
        out.append(text[pos:ph.start])
        if ph.namespace == "params":
            out.append(f"{{{{$.inputs.parameters['{ph.name}']}}}}")
        elif ph.namespace == "outputs":
            out.append(f"{{{{$.outputs.artifacts['{ph.name}'].path}}}}")
        else:
            out.append(paths[ph.name])
        pos = ph.end
    out.append(text[pos:])
    return "".join(out)


def _params_used(s: TaskStep) -> list[str]:
    """Parameters a task reads: in its command, args and params, and as whole inputs (``{{params.p}}``)."""
    texts = ([s.command] if isinstance(s.command, str) else list(s.command or [])) + s.args
    texts += [v for v in s.params.values() if isinstance(v, str)]
    names = [ph.name for t in texts for ph in find_placeholders(t) if ph.namespace == "params"]
    names += [spec.ref.param for spec in s.inputs.values() if isinstance(spec.ref, ParamSourceRef)]
    return list(dict.fromkeys(names))


def _input_paths(s: TaskStep) -> dict[str, str]:
    paths: dict[str, str] = {}
    for name, spec in s.inputs.items():
        ref = spec.ref
        if isinstance(ref, StepOutputRef):
            paths[name] = f"{{{{$.inputs.artifacts['{name}'].path}}}}"
        elif isinstance(ref, ExternalRef) and ref.scheme == "gs" and not find_placeholders(ref.uri):
            paths[name] = "/gcs/" + ref.uri[len("gs://"):]
        elif isinstance(ref, ParamSourceRef):
            paths[name] = input_token(name)  # GCS_MAPPER puts the value's /gcs/ path here at run time
        else:
            raise _unsupported(s.name, "input.external", f"input '{name}' is {ref}; Vertex jobs read gs:// URIs "
                               "(mounted at /gcs/)")
    return paths


def _component(ctx: _Ctx, s: TaskStep) -> None:
    inputs = {n: spec for n, spec in s.inputs.items() if isinstance(spec.ref, StepOutputRef)}
    comp: dict[str, Any] = {"executorLabel": f"exec-{s.name}"}
    in_defs: dict[str, Any] = {}
    if inputs:
        in_defs["artifacts"] = {n: {"artifactType": {"schemaTitle": _ARTIFACT[_in_type(ctx, spec)],
                                                     "schemaVersion": "0.0.1"}} for n, spec in inputs.items()}
    used = _params_used(s)
    if used:
        in_defs["parameters"] = {p: {"parameterType": _PTYPE[ctx.p.parameters[p].type]} for p in used}
    if in_defs:
        comp["inputDefinitions"] = in_defs
    out_defs: dict[str, Any] = {}
    if s.outputs:
        out_defs["artifacts"] = {n: {"artifactType": {"schemaTitle": _ARTIFACT[o.type], "schemaVersion": "0.0.1"}}
                                 for n, o in s.outputs.items()}
    if s.name in ctx.metrics_used:
        out_defs["parameters"] = {k: {"parameterType": ctx.metric_type[(s.name, k)]} for k in ctx.metrics_used[s.name]}
    if out_defs:
        comp["outputDefinitions"] = out_defs
    ctx.components[f"comp-{s.name}"] = comp
    ctx.executors[f"exec-{s.name}"] = {"container": _container(ctx, s)}


def _in_type(ctx: _Ctx, spec: Any) -> str:
    ref = spec.ref
    producer = ctx.steps[ref.step]
    assert isinstance(producer, TaskStep)
    return str(producer.outputs[ref.output].type)


def _image(s: TaskStep) -> str:
    if s.image:
        return s.image
    if s.framework:
        return framework_image(s.framework, s.name, gpu=bool(s.resources and s.resources.gpu))
    raise CompileError(f"step '{s.name}' has no image or framework",
                       hint="set image: or framework: on the step or in defaults")


def _code_uri(ctx: _Ctx, s: TaskStep) -> str | None:
    """The step's bundle URI (None for a command step without code or code_paths folders).

    A missing ``code`` or ``code_paths`` folder is a CompileError naming the step and the folder.
    """
    if not s.code and not s.code_paths and not s.python and not s.tuning:
        return None
    root = getattr(ctx.settings, "pipeline_root", None) or ROOT_PLACEHOLDER
    return bundle_uri(root, code_digest(step_bundle(ctx.base, s)))


def _plain(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def _python_argv(ctx: _Ctx, s: TaskStep, paths: dict[str, str]) -> list[str]:
    """cloudml's runtime entry point (shipped in the bundle) calling ``module:function``; ``code_paths``
    folders sit under ``_cloudml_paths/`` in the bundle (``--code-path``)."""
    assert s.python is not None
    argv = ["python3", RUNTIME_FILE, "--function", s.python, "--code", "."]
    argv += step_bundle(ctx.base, s).path_args(".")
    argv += [f"--input={k}={v}" for k, v in paths.items()]
    argv += [f"--output={k}={{{{$.outputs.artifacts['{k}'].path}}}}" for k in s.outputs]
    argv += [f"--output-type={k}={o.type}" for k, o in s.outputs.items()]
    argv += [_text(f"--param={k}={v}", s, paths) if isinstance(v, str) else f"--param={k}={_plain(v)}"
             for k, v in s.params.items()]
    return argv


def _container(ctx: _Ctx, s: TaskStep) -> dict[str, Any]:
    image = _image(s)
    paths = _input_paths(s)
    if s.python:
        argv = _python_argv(ctx, s, paths)
    else:
        cmd = split_command(s.command)
        argv = [_text(c, s, paths) for c in cmd] + [_text(a, s, paths) for a in s.args]
    mapped = param_inputs(s)
    if mapped:
        triples = [x for name, param in mapped.items()
                   for x in (param, input_token(name), f"{{{{$.inputs.parameters['{param}']}}}}")]
        argv = ["python3", "-c", GCS_MAPPER, str(len(mapped)), *triples, *argv]
    extract = ctx.metrics_used.get(s.name, {})
    if extract or s.timeout is not None:
        argv = _wrap(s, argv, extract)
    code = _code_uri(ctx, s)
    if code is not None:
        argv = ["python3", "-c", LAUNCHER, code, "--", *argv]
    container: dict[str, Any] = {"image": image, "command": argv[:1], "args": argv[1:]} if argv[1:] else {
        "image": image, "command": argv}
    for k, v in s.env.items():
        if find_placeholders(v):
            raise _unsupported(s.name, "step.env", f"env {k} uses a placeholder; KFP container env is static")
    # the runtime contract (docs/runtime-contract.md); input/output paths travel as arguments only,
    # because KFP does not resolve placeholders in env values
    env = {"CLOUDML_STEP": s.name, "CLOUDML_BACKEND": "vertex", **s.env}
    container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    resources = _resources(s)
    if resources:
        container["resources"] = resources
    return container


def _wrap(s: TaskStep, argv: list[str], extract: dict[str, tuple[str, tuple[str | int, ...]]]) -> list[str]:
    """Run the command under a timeout and/or copy metric values into KFP output-parameter files."""
    triples: list[str] = []
    for key, (output, path) in extract.items():
        triples += [f"{{{{$.outputs.artifacts['{output}'].path}}}}", _wrapper_path(path),
                    f"{{{{$.outputs.parameters['{key}'].output_file}}}}"]
    timeout = str(math.ceil(s.timeout)) if s.timeout is not None else "0"
    return ["python3", "-c", WRAPPER, timeout, *triples, "--", *argv]


def _resources(s: TaskStep) -> dict[str, Any]:
    r = s.resources
    if r is None:
        return {}
    if r.instance_count > 1:
        raise _unsupported(s.name, "step.instance_count", "a KFP container task runs on one node")
    if r.disk is not None:
        raise CompileError(f"step '{s.name}': Vertex AI Pipelines has no disk size for a container task",
                           hint="remove resources.disk for this step, or run it on another backend")
    if "vertex" in r.instance_type:
        raise CompileError(f"step '{s.name}': Vertex AI Pipelines picks the machine from cpu/memory/gpu; "
                           "a machine type cannot be set on a container task",
                           hint="remove resources.instance_type.vertex and set resources.cpu / memory / gpu")
    out: dict[str, Any] = {}
    if r.cpu is not None:
        out["cpuLimit"] = float(r.cpu)
    if r.memory is not None:
        out["memoryLimit"] = round(r.memory / 1e9, 3)
    if r.gpu:
        if r.gpu_type is None or r.gpu_type not in _GPU:
            raise CompileError(f"step '{s.name}': Vertex needs a GPU type, one of {', '.join(_GPU)}",
                               hint="set resources.gpu_type")
        out["accelerator"] = {"type": _GPU[r.gpu_type], "count": str(r.gpu)}
    return out


def _task(ctx: _Ctx, s: TaskStep, scope: dict[str, Any]) -> dict[str, Any]:
    _component(ctx, s)
    task: dict[str, Any] = {"taskInfo": {"name": s.name}, "componentRef": {"name": f"comp-{s.name}"}}
    arts, params = {}, {}
    for name, spec in s.inputs.items():
        ref = spec.ref
        if isinstance(ref, StepOutputRef):
            arts[name] = _artifact_source(scope, ref.step, ref.output)
    for p in _params_used(s):
        params[p] = {"componentInputParameter": scope["param"](p)}
    if arts or params:
        task["inputs"] = {**({"artifacts": arts} if arts else {}), **({"parameters": params} if params else {})}
    _options(s, task)
    return task


def _artifact_source(scope: dict[str, Any], step: str, output: str) -> dict[str, Any]:
    if step in scope["local"]:
        return {"taskOutputArtifact": {"producerTask": step, "outputArtifactKey": output}}
    return {"componentInputArtifact": scope["artifact"](step, output)}


def _options(s: TaskStep, task: dict[str, Any]) -> None:
    if s.cache is not None and s.cache.expire is not None:
        raise _unsupported(s.name, "step.cache_expiry", "KFP caching has no expiry")
    task["cachingOptions"] = {"enableCache": True} if (s.cache is None or s.cache.enabled) else {}
    if s.retry and s.retry.attempts > 1:
        task["retryPolicy"] = {"maxRetryCount": s.retry.attempts - 1, "backoffDuration": f"{math.ceil(s.retry.backoff)}s",
                               "backoffFactor": 2.0,
                               "backoffMaxDuration": f"{math.ceil(s.retry.max_backoff or 3600)}s"}


def _cel(e: Expr, scope: dict[str, Any]) -> str:
    if isinstance(e, Compare):
        return f"{_cel_operand(e.left, scope)} {_CEL_OPS[e.op]} {_cel_operand(e.right, scope)}"
    if isinstance(e, Not):
        return f"!({_cel(e.term, scope)})"
    joiner = " && " if isinstance(e, And) else " || "
    assert isinstance(e, (And, Or))
    return joiner.join(f"({_cel(t, scope)})" for t in e.terms)


def _cel_operand(o: Any, scope: dict[str, Any]) -> str:
    if isinstance(o, MetricOperand):
        return f"inputs.parameter_values['{scope['metric'](o)}']"
    if isinstance(o, ParamOperand):
        return f"inputs.parameter_values['pipelinechannel--{o.name}']"
    assert isinstance(o, LiteralOperand)
    v = o.value
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(float(v))
    return json.dumps(v)


class _Scope:
    """One DAG: the root, or the sub-DAG of a condition branch. Knows how values reach it."""

    def __init__(self, key: tuple[str, str] | None, local: set[str]) -> None:
        self.key = key
        self.local = local  # steps whose tasks sit directly in this DAG

    def param(self, name: str) -> str:
        return name if self.key is None else f"pipelinechannel--{name}"

    def artifact(self, step: str, output: str) -> dict[str, Any]:
        if step in self.local:
            return {"taskOutputArtifact": {"producerTask": step, "outputArtifactKey": output}}
        return {"componentInputArtifact": f"pipelinechannel--{step}-{output}"}

    def metric(self, step: str, key: str) -> dict[str, Any]:
        if step in self.local:
            return {"taskOutputParameter": {"producerTask": step, "outputParameterKey": key}}
        return {"componentInputParameter": f"pipelinechannel--{step}-{key}"}

    def as_dict(self) -> dict[str, Any]:
        return {"param": self.param, "artifact": lambda st, out: f"pipelinechannel--{st}-{out}",
                "local": self.local, "metric": lambda o: f"pipelinechannel--{o.step}-{metric_key(o.output, o.path)}"}


def _needs(ctx: _Ctx, members: list[str]) -> tuple[set[str], set[tuple[str, str]], set[tuple[str, str]]]:
    """Parameters, artifacts (step, output) and metrics (step, key) that the given steps read."""
    params: set[str] = set()
    arts: set[tuple[str, str]] = set()
    metrics: set[tuple[str, str]] = set()
    for name in members:
        s = ctx.steps[name]
        if isinstance(s, TaskStep):
            e = ctx.p.effective(s)
            params.update(_params_used(e))
            arts.update((r.step, r.output) for r in (spec.ref for spec in e.inputs.values()) if isinstance(r, StepOutputRef))
        elif isinstance(s, FailStep):
            params.update(ph.name for ph in find_placeholders(s.fail) if ph.namespace == "params")
        elif isinstance(s, ConditionStep):
            params.update(o.name for o in s.condition.param_operands())
            metrics.update((m.step, metric_key(m.output, m.path)) for m in s.condition.metric_operands())
        elif isinstance(s, RegisterModelStep):
            arts.update(_register_refs(s).values())
    return params, arts, metrics


class _Builder:
    def __init__(self, ctx: _Ctx, owner: dict[str, tuple[str, str] | None]) -> None:
        self.ctx = ctx
        self.owner = owner
        self.order = StepGraph.from_pipeline(ctx.p).topological_order()
        self.up = StepGraph.from_pipeline(ctx.p).upstream()
        self._check_names()

    def _check_names(self) -> None:
        """Generated task and component names must not collide with step names."""
        made: dict[str, str] = {}
        for n, s in self.ctx.steps.items():
            if isinstance(s, ConditionStep):
                for b in ("then", "else"):
                    made[f"condition-{n}-{b}"] = n
        for n in self.ctx.steps:
            if n in made:
                raise CompileError(f"step '{n}' has the name cloudml gives the {n.rsplit('-', 1)[1]} branch of "
                                   f"condition '{made[n]}' on Vertex", hint=f"rename step '{n}'")

    def members(self, key: tuple[str, str] | None) -> list[str]:
        return [n for n in self.order if self.owner.get(n) == key]

    def subtree(self, key: tuple[str, str]) -> list[str]:
        out = []
        for n in self.members(key):
            out.append(n)
            if isinstance(self.ctx.steps[n], ConditionStep):
                for b in ("then", "else"):
                    out += self.subtree((n, b))
        return out

    def representative(self, step: str, local: set[str]) -> str | None:
        """The step in ``local`` that stands for ``step``: itself, or the condition whose branch holds it."""
        while step not in local:
            key = self.owner.get(step)
            if key is None:
                return None
            step = key[0]
        return step

    def task_names(self, step: str) -> list[str]:
        """The task(s) a step becomes: a condition becomes one task per non-empty branch."""
        if isinstance(self.ctx.steps[step], ConditionStep):
            return [f"condition-{step}-{b}" for b in ("then", "else") if self.members((step, b))]
        return [step]

    def dag(self, key: tuple[str, str] | None) -> dict[str, Any]:
        local = set(self.members(key))
        scope = _Scope(key, local)
        tasks: dict[str, Any] = {}
        for name in self.members(key):
            s = self.ctx.steps[name]
            deps = sorted({t for u in self.up[name] if u in local for t in self.task_names(u)})
            if isinstance(s, TaskStep) and s.tuning is not None:  # the tuning job, then the best trial (tuning.py)
                from cloudml.adapters.vertex.tuning import tuning_tasks

                tasks.update(tuning_tasks(self.ctx, self.ctx.p.effective(s), scope.as_dict(), deps))
            elif isinstance(s, TaskStep):
                task = _task(self.ctx, self.ctx.p.effective(s), scope.as_dict())
                if deps:
                    task["dependentTasks"] = deps
                tasks[name] = task
            elif isinstance(s, FailStep):
                tasks[name] = self.fail(s, scope, deps)
            elif isinstance(s, ConditionStep):
                for b in ("then", "else"):
                    if self.members((name, b)):
                        tasks[f"condition-{name}-{b}"] = self.condition(s, b, scope, deps)
            else:
                assert isinstance(s, RegisterModelStep)
                tasks[name] = _register_task(self.ctx, s, scope, deps)
        return tasks

    def condition(self, s: ConditionStep, branch: str, scope: _Scope, deps: list[str]) -> dict[str, Any]:
        sub = (s.name, branch)
        inner = self.subtree(sub)
        params, arts, metrics = _needs(self.ctx, [*inner, s.name])
        arts = {(st, o) for st, o in arts if st not in inner}
        metrics = {(st, k) for st, k in metrics if st not in inner}
        comp_inputs: dict[str, Any] = {}
        task_inputs: dict[str, Any] = {}
        if params or metrics:
            comp_inputs["parameters"] = {f"pipelinechannel--{p}": {"parameterType": _PTYPE[self.ctx.p.parameters[p].type]}
                                         for p in sorted(params)}
            comp_inputs["parameters"].update({f"pipelinechannel--{st}-{k}": {"parameterType": self.ctx.metric_type[(st, k)]}
                                              for st, k in sorted(metrics)})
            task_inputs["parameters"] = {f"pipelinechannel--{p}": {"componentInputParameter": scope.param(p)}
                                         for p in sorted(params)}
            task_inputs["parameters"].update({f"pipelinechannel--{st}-{k}": scope.metric(st, k) for st, k in sorted(metrics)})
        if arts:
            comp_inputs["artifacts"] = {f"pipelinechannel--{st}-{o}": {"artifactType": {
                "schemaTitle": _ARTIFACT[self._out_type(st, o)], "schemaVersion": "0.0.1"}} for st, o in sorted(arts)}
            task_inputs["artifacts"] = {f"pipelinechannel--{st}-{o}": scope.artifact(st, o) for st, o in sorted(arts)}
        comp_name = f"comp-condition-{s.name}-{branch}"
        component: dict[str, Any] = {"dag": {"tasks": self.dag(sub)}}
        if comp_inputs:
            component["inputDefinitions"] = comp_inputs
        self.ctx.components[comp_name] = component
        # ordering: producers of what the branch reads, and every edge (depends_on included) from a step
        # inside the branch to one outside it, attached to the outside step's task in this DAG
        producers = {st for st, _ in metrics | arts if st in scope.local}
        producers |= {r for n in inner for u in self.up[n] if u not in inner
                      for r in [self.representative(u, scope.local)] if r is not None and r != s.name}
        cel = _cel(s.condition, {"metric": lambda o: f"pipelinechannel--{o.step}-{metric_key(o.output, o.path)}"})
        task: dict[str, Any] = {"taskInfo": {"name": f"condition-{s.name}-{branch}"}, "componentRef": {"name": comp_name},
                                "triggerPolicy": {"condition": cel if branch == "then" else f"!({cel})"}}
        all_deps = sorted(set(deps) | {t for p in producers for t in self.task_names(p)})
        if all_deps:
            task["dependentTasks"] = all_deps
        if task_inputs:
            task["inputs"] = task_inputs
        return task

    def _out_type(self, step: str, output: str) -> str:
        producer = self.ctx.steps[step]
        assert isinstance(producer, TaskStep)
        return str(producer.outputs[output].type)

    def fail(self, s: FailStep, scope: _Scope, deps: list[str]) -> dict[str, Any]:
        params = [ph.name for ph in find_placeholders(s.fail) if ph.namespace == "params"]
        message = _text(s.fail, None, {})
        comp: dict[str, Any] = {"executorLabel": f"exec-{s.name}"}
        if params:
            comp["inputDefinitions"] = {"parameters": {p: {"parameterType": _PTYPE[self.ctx.p.parameters[p].type]}
                                                       for p in params}}
        self.ctx.components[f"comp-{s.name}"] = comp
        self.ctx.executors[f"exec-{s.name}"] = {"container": {
            "image": FAIL_IMAGE, "command": ["sh", "-c", 'echo "$0" >&2; exit 1'], "args": [message]}}
        task: dict[str, Any] = {"taskInfo": {"name": s.name}, "componentRef": {"name": f"comp-{s.name}"}}
        if params:
            task["inputs"] = {"parameters": {p: {"componentInputParameter": scope.param(p)} for p in params}}
        if deps:
            task["dependentTasks"] = deps
        return task


def _register_refs(s: RegisterModelStep) -> dict[str, tuple[str, str]]:
    """The artifacts a register step reads: ``model`` and, when named, ``metrics`` -> (step, output)."""
    r = s.register_model
    refs = {"model": r.model, **({"metrics": r.metrics} if r.metrics else {})}
    return {k: (v.partition(".outputs.")[0], v.partition(".outputs.")[2]) for k, v in refs.items()}


def _register_task(ctx: _Ctx, s: RegisterModelStep, scope: _Scope, deps: list[str]) -> dict[str, Any]:
    """A container task running ``python3 -m cloudml.runtime --register-model vertex ...`` (VertexRegistry).

    The image is the pipeline's ``defaults.image`` and needs ``cloudml[gcp]``; the model travels as its
    ``gs://`` URI (``Model.upload``'s ``artifact_uri``), the metrics as a file the runtime reads.
    """
    r = s.register_model
    if r.description:
        raise _unsupported(s.name, "register_model", "a description cannot be set: the version description holds "
                           "cloudml's metadata (metrics, tags, run)")
    if not r.image and not r.framework:
        raise CompileError(f"step '{s.name}': registering on Vertex AI needs the serving image",
                           hint="set register_model.framework (a prebuilt serving image, e.g. sklearn==1.5) or "
                                "register_model.image")
    serving = r.image or prediction_image(str(r.framework), s.name)
    runtime_image = (ctx.p.backend_options.get("vertex") or {}).get("runtime_image") or ctx.p.defaults.image
    if not runtime_image:
        raise CompileError(f"step '{s.name}': a Vertex register step runs cloudml's runtime, and the pipeline names "
                           "no image with cloudml[gcp] installed", hint="set backend_options.vertex.runtime_image "
                           "(or defaults.image); see docs/adapters/vertex.md for a two-line Dockerfile")
    argv = ["python3", "-m", "cloudml.runtime", "--register-model", "vertex", "--group", r.group,
            "--model-uri", "{{$.inputs.artifacts['model'].uri}}", "--image", serving, "--approval", r.approval]
    if r.metrics:
        argv += ["--metrics", "{{$.inputs.artifacts['metrics'].path}}"]
    if r.tags:
        argv += ["--tags", json.dumps(r.tags, sort_keys=True)]
    argv += ["--project", "{{$.pipeline_google_cloud_project_id}}", "--location", "{{$.pipeline_google_cloud_location}}",
             "--run", "{{$.pipeline_job_resource_name}}"]
    defs: dict[str, Any] = {}
    sources: dict[str, Any] = {}
    for key, (step, output) in _register_refs(s).items():
        producer = ctx.steps[step]
        assert isinstance(producer, TaskStep)
        defs[key] = {"artifactType": {"schemaTitle": _ARTIFACT[str(producer.outputs[output].type)],
                                      "schemaVersion": "0.0.1"}}
        sources[key] = _artifact_source(scope.as_dict(), step, output)
    ctx.components[f"comp-{s.name}"] = {"executorLabel": f"exec-{s.name}", "inputDefinitions": {"artifacts": defs}}
    env = [{"name": "CLOUDML_STEP", "value": s.name}, {"name": "CLOUDML_BACKEND", "value": "vertex"}]
    ctx.executors[f"exec-{s.name}"] = {"container": {"image": runtime_image, "command": argv[:1], "args": argv[1:],
                                                     "env": env}}
    task: dict[str, Any] = {"taskInfo": {"name": s.name}, "componentRef": {"name": f"comp-{s.name}"},
                            "inputs": {"artifacts": sources},
                            "cachingOptions": {}}  # registering twice makes two versions: never reuse a result
    if deps:
        task["dependentTasks"] = deps
    return task


def _refuse_gaps(p: Pipeline) -> None:
    """What the adapter's capabilities declare unsupported is refused here too, not silently dropped."""
    from cloudml.adapter import pipeline_features
    from cloudml.adapters.vertex import VertexAdapter

    caps = VertexAdapter.capabilities
    for use in pipeline_features(p):
        if not caps.supports(use.feature):
            raise UnsupportedFeatureError("vertex", use.step, use.feature, caps.reason(use.feature),
                                          hint="`cloudml backends --features` shows what each backend supports")


def compile_ir(p: Pipeline, settings: Any, base_dir: str | Path = ".") -> dict[str, Any]:
    """The PipelineSpec IR as a dict (JSON/YAML-serialisable).

    ``base_dir`` is where relative ``code:`` folders start (the pipeline file's folder).

    Example:
        >>> import cloudml
        >>> b = cloudml.PipelineBuilder("p"); _ = b.param("n", int, 3)
        >>> _ = b.add_step("a", command="echo {{params.n}}", image="alpine")
        >>> compile_ir(b.build(), None)["root"]["inputDefinitions"]
        {'parameters': {'n': {'parameterType': 'NUMBER_INTEGER', 'defaultValue': 3.0, 'isOptional': True}}}
    """
    from cloudml.dag import BranchConflict, branch_owners

    _refuse_gaps(p)
    if p.schedule is not None:  # refused here, at compile time, when a Vertex schedule cannot say it (schedule.py)
        from cloudml.adapters.vertex.schedule import vertex_cron

        vertex_cron(p.schedule.cron, p.schedule.timezone)
    refuse_non_gs_defaults(p)  # before anything else, so the message names the parameter (inputs.py)
    ctx = _Ctx(p, settings, Path(base_dir))
    try:
        owner = branch_owners(p)
    except BranchConflict as e:
        raise _unsupported(e.step, "condition", f"{e}; KFP nests guarded steps in one sub-DAG") from None
    builder = _Builder(ctx, owner)
    tasks = builder.dag(None)
    root: dict[str, Any] = {"dag": {"tasks": tasks}}
    if p.parameters:
        root["inputDefinitions"] = {"parameters": {
            n: {"parameterType": _PTYPE[v.type], **({"defaultValue": _double(v.default), "isOptional": True}
                                                    if v.default is not None else {})}
            for n, v in p.parameters.items()}}
    ir: dict[str, Any] = {
        "pipelineInfo": {"name": p.name, **({"description": p.description} if p.description else {})},
        "schemaVersion": SCHEMA_VERSION,
        "sdkVersion": "cloudml-0.1.0",
        "components": dict(sorted(ctx.components.items())),
        "deploymentSpec": {"executors": dict(sorted(ctx.executors.items()))},
        "root": root,
    }
    if settings is not None and getattr(settings, "pipeline_root", None):
        ir["defaultPipelineRoot"] = settings.pipeline_root
    return ir
