"""A task step with ``tuning:`` -> two KFP tasks: a Vertex AI HyperparameterTuningJob, then the best trial. Pure.

1. ``<step>-hpt-job`` runs Google's launcher the way google-cloud-pipeline-components (GCPC) v1
   ``HyperparameterTuningJobRunOp`` compiles (checked against GCPC 2.22.0 compiled by kfp 2.17.3): image
   :data:`GCPC_IMAGE`, ``python3 -u -m google_cloud_pipeline_components.container.v1.hyperparameter_tuning_job.launcher
   --type HyperparameterTuningJob --payload <JSON> --project --location --gcp_resources <output file>``. The
   launcher creates the job (``JobService.CreateHyperparameterTuningJob``, the payload read as the GAPIC
   ``HyperparameterTuningJob`` in snake_case), waits for it and writes the job's resource URI to its
   ``gcp_resources`` output parameter. Unlike GCPC's component, the payload is one string: the trial's command
   carries KFP placeholders (upstream artifact URIs, pipeline parameters) that KFP fills in before the launcher
   reads it.
2. ``<step>`` (the step's own name, so downstream tasks read its outputs as from any step) runs
   ``python3 -m cloudml.adapters.vertex.in_job --best-trial`` in ``backend_options.vertex.runtime_image`` (an
   image with ``cloudml[gcp]``, as register steps use): it reads the finished job, picks the best succeeded
   trial by the objective and copies that trial's outputs into the step's output artifacts (``in_job.py``).

Mapping of the tuning block (``study_spec``):

* ``objective`` -> ``metrics: [{metric_id: OUTPUT.KEY, goal: MAXIMIZE|MINIMIZE}]``;
* ``float`` -> ``DOUBLE`` (``double_value_spec``), ``int`` -> ``INTEGER`` (``integer_value_spec``), with
  ``scale_type`` ``UNIT_LINEAR_SCALE`` / ``UNIT_LOG_SCALE``; ``categorical`` -> ``CATEGORICAL`` with the values
  as text (exactly what ``{{tuning.NAME}}`` gives elsewhere);
* ``strategy: grid`` -> ``GRID_SEARCH``, and (Vertex's grid search takes no DOUBLE) a float range becomes
  ``DISCRETE`` with its ``grid_step`` points, an int range with a ``grid_step`` other than 1 ``DISCRETE`` too;
  ``random`` -> ``RANDOM_SEARCH``; ``bayesian`` -> ``ALGORITHM_UNSPECIFIED`` (Vertex's default, Bayesian
  optimisation);
* ``max_trials`` / ``parallel_trials`` -> ``max_trial_count`` / ``parallel_trial_count`` (grid: the grid size);
  ``max_failed_trial_count`` is the trial count, so failed trials are tolerated and the job fails only when
  every trial failed (as the local backend does; Vertex's default, 0, lets Vertex decide);
* ``seed``: ignored. A Vertex study has no seed (``StudySpec`` in aiplatform v1 has no such field); the
  search is not reproducible on Vertex, as documented in docs/adapters/vertex.md.

A trial (``trial_job_spec.worker_pool_specs[0]``) runs the step's image with :data:`TRIAL` (a few lines of
Python passed with ``-c``): Vertex appends the searched values as ``--NAME=VALUE`` arguments; TRIAL unpacks
the step's code bundle, writes the outputs under the trial's own folder (``AIP_MODEL_DIR``'s parent, under
the job's ``base_output_directory``, through the Cloud Storage FUSE mount ``/gcs/``; ``CLOUDML_GCS_MOUNT``
replaces it in tests), runs the step's command
(python steps: cloudml's runtime with each searched value as ``--param=NAME=VALUE``), then reports the
objective with ``python3 cloudml_runtime.py --log-objective OUTPUT.KEY --metrics <file> --report hypertune``.

Example:
    >>> from cloudml.spec.tuning import Tuning
    >>> t = Tuning.model_validate({"search_space": {"lr": {"type": "float", "min": 0.01, "max": 0.1, "scale": "log"}},
    ...                            "objective": {"metric": "metrics.auc"}, "strategy": "random"})
    >>> study_spec(t)["algorithm"], study_spec(t)["parameters"][0]["scale_type"]
    ('RANDOM_SEARCH', 'UNIT_LOG_SCALE')
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from cloudml.errors import CompileError
from cloudml.spec.refs import ExternalRef, ParamSourceRef, StepOutputRef, find_placeholders, split_command
from cloudml.spec.tuning import SearchParam, Tuning
from cloudml.tuning import format_value

if TYPE_CHECKING:
    from cloudml.spec.steps import TaskStep

__all__ = ["GCPC_IMAGE", "GCPC_LAUNCHER", "JOB_SUFFIX", "MAX_DISCRETE", "TRIAL", "job_task_name", "launcher_args", "machine_spec", "study_parameters", "study_spec", "token", "trial_command", "trial_inputs", "tuning_tasks"]

GCPC_IMAGE = "gcr.io/ml-pipeline/google-cloud-pipeline-components:2.22.0"
GCPC_LAUNCHER = ["python3", "-u", "-m", "google_cloud_pipeline_components.container.v1.hyperparameter_tuning_job.launcher"]
JOB_SUFFIX = "-hpt-job"
OUTPUTS_DIR = "cloudml/outputs"  # a trial's outputs: <base_output_directory>/<trial id>/cloudml/outputs/<name>
DEFAULT_MACHINE = "n1-standard-4"
_N1 = (4, 8, 16, 32, 64, 96)  # n1-standard-N: N vCPUs, 3.75 GB each
_ALGORITHM = {"random": "RANDOM_SEARCH", "grid": "GRID_SEARCH", "bayesian": "ALGORITHM_UNSPECIFIED"}
_SCALE = {"linear": "UNIT_LINEAR_SCALE", "log": "UNIT_LOG_SCALE"}

# One tuning trial: ``python3 -c TRIAL <bundle uri> <code|image> <OUTPUT.KEY> <metrics output> <names,> <outputs,>
# <k> (<token> <gs uri>)*k <n> <command: n args> [--NAME=VALUE as Vertex appends them]``; ``code``: the command
# runs in the unpacked bundle (a code folder or a python step), ``image``: in the image's working directory.
TRIAL = (
    "import os,subprocess,sys,tarfile,tempfile\n"
    "a=sys.argv[1:]\nu,w,obj,mout=a[:4]\nnames=[x for x in a[4].split(',') if x]\nouts=[x for x in a[5].split(',') if x]\n"
    "k=int(a[6])\np=a[7:7+2*k]\ni=7+2*k\nn=int(a[i])\ncmd=a[i+1:i+1+n]\nrest=a[i+1+n:]\n"
    "g=lambda x:os.environ.get('CLOUDML_GCS_MOUNT','/gcs')+'/'+x[5:] if x.startswith('gs://') else x\n"
    "hp={}\nj=0\n"
    "while j<len(rest):\n"
    " f,e,v=rest[j].partition('=')\n"
    " if not e and j+1<len(rest):\n  j+=1\n  v=rest[j]\n"
    " hp[f.lstrip('-')]=v\n j+=1\n"
    "miss=[x for x in names if x not in hp]\n"
    "if miss:\n sys.exit('cloudml: Vertex passed no value for %s (arguments: %r)'%(','.join(miss),rest))\n"
    "m=os.environ.get('AIP_MODEL_DIR','').rstrip('/')\n"
    "if not m.startswith('gs://'):\n sys.exit('cloudml: AIP_MODEL_DIR is not a gs:// folder; this runs as a Vertex AI tuning trial')\n"
    "o=g(m.rsplit('/',1)[0])+'/" + OUTPUTS_DIR + "'\nos.makedirs(o,exist_ok=True)\n"
    "r={'@@cloudml:tuning:%s@@'%x:hp[x] for x in names}\n"
    "r.update({'@@cloudml:output:%s@@'%x:o+'/'+x for x in outs})\n"
    "r.update({p[q]:g(p[q+1]) for q in range(0,len(p),2)})\n"
    "def f(s):\n for t,v in r.items():\n  s=s.replace(t,v)\n return s\n"
    "d=tempfile.mkdtemp(prefix='cloudml-code-')\n"
    "with tarfile.open(g(u)) as t:\n t.extractall(d,**({'filter':'data'} if hasattr(tarfile,'data_filter') else {}))\n"
    "env={x:f(y) for x,y in os.environ.items()}\n"
    "print('cloudml: trial values',{x:hp[x] for x in names},flush=True)\n"
    "c=subprocess.call([f(x) for x in cmd],cwd=d if w=='code' else None,env=env)\n"
    "if c:\n sys.exit(128-c if c<0 else c)\n"
    "sys.exit(subprocess.call([sys.executable,'cloudml_runtime.py','--log-objective',obj,'--metrics',o+'/'+mout,"
    "'--report','hypertune'],cwd=d,env=env))\n"
)


def token(kind: str, name: str) -> str:
    """The stand-in TRIAL replaces at run time (``kind``: tuning, output or input).

    Example:
        >>> token("tuning", "lr")
        '@@cloudml:tuning:lr@@'
    """
    return f"@@cloudml:{kind}:{name}@@"


def job_task_name(step: str) -> str:
    """The name of the task (and ``comp-``/``exec-`` suffix) that launches the tuning job.

    Example:
        >>> job_task_name("tune")
        'tune-hpt-job'
    """
    return f"{step}{JOB_SUFFIX}"


MAX_DISCRETE = 1000  # aiplatform v1 DiscreteValueSpec: "should not contain more than 1,000 values"


def _discrete(values: list[Any], name: str, step: str | None) -> dict[str, Any]:
    if len(values) > MAX_DISCRETE:
        from cloudml.errors import UnsupportedFeatureError

        raise UnsupportedFeatureError("vertex", step, "step.tuning", f"'{name}' has {len(values)} grid points; a Vertex "
                                      f"DISCRETE parameter holds at most {MAX_DISCRETE}",
                                      hint=f"raise the grid_step of '{name}' or narrow its range")
    return {"values": sorted(float(v) for v in values)}


def _parameter(name: str, dim: SearchParam, strategy: str, step: str | None = None) -> dict[str, Any]:
    if dim.type == "categorical":
        return {"parameter_id": name, "categorical_value_spec": {"values": [format_value(v) for v in dim.values or []]}}
    assert dim.min is not None and dim.max is not None
    scale = {"scale_type": _SCALE[dim.scale]}
    if strategy == "grid" and (dim.type == "float" or (dim.grid_step or 1) != 1):
        return {"parameter_id": name, "discrete_value_spec": _discrete(dim.points() or [], name, step), **scale}
    if dim.type == "int":
        return {"parameter_id": name, "integer_value_spec": {"min_value": int(dim.min), "max_value": int(dim.max)},
                **scale}
    return {"parameter_id": name, "double_value_spec": {"min_value": float(dim.min), "max_value": float(dim.max)},
            **scale}


def study_parameters(t: Tuning, step: str | None = None) -> list[dict[str, Any]]:
    """The search space as ``StudySpec.parameters`` (GAPIC field names, enums by name); ``step`` names the step in
    the UnsupportedFeatureError of a grid dimension with more points than a DISCRETE parameter holds.

    Example:
        >>> t = Tuning.model_validate({"search_space": {
        ...     "depth": {"type": "int", "min": 2, "max": 8, "grid_step": 2},
        ...     "kernel": {"type": "categorical", "values": ["rbf", 1, True]}},
        ...     "objective": {"metric": "m.loss", "goal": "minimize"}, "strategy": "grid"})
        >>> study_parameters(t)[0]
        {'parameter_id': 'depth', 'discrete_value_spec': {'values': [2.0, 4.0, 6.0, 8.0]}, 'scale_type': 'UNIT_LINEAR_SCALE'}
        >>> study_parameters(t)[1]
        {'parameter_id': 'kernel', 'categorical_value_spec': {'values': ['rbf', '1', 'true']}}
    """
    return [_parameter(name, dim, t.strategy, step) for name, dim in t.search_space.items()]


def study_spec(t: Tuning, step: str | None = None) -> dict[str, Any]:
    """The tuning block as a Vertex ``StudySpec`` (the seed has no place in it: Vertex studies take none).

    Example:
        >>> t = Tuning.model_validate({"search_space": {"c": {"type": "categorical", "values": ["a", "b"]}},
        ...                            "objective": {"metric": "metrics.auc"}, "strategy": "bayesian", "seed": 3})
        >>> s = study_spec(t); s["metrics"], s["algorithm"]
        ([{'metric_id': 'metrics.auc', 'goal': 'MAXIMIZE'}], 'ALGORITHM_UNSPECIFIED')
    """
    return {"metrics": [{"metric_id": t.objective.metric, "goal": t.objective.goal.upper()}],
            "parameters": study_parameters(t, step), "algorithm": _ALGORITHM[t.strategy],
            "measurement_selection_type": "BEST_MEASUREMENT"}


def machine_spec(s: TaskStep) -> dict[str, Any]:
    """A trial's ``machine_spec``: ``resources.instance_type.vertex``, else the smallest n1-standard machine with
    the step's cpu and memory (default :data:`DEFAULT_MACHINE`), plus its GPUs.

    Example:
        >>> from cloudml.spec.steps import TaskStep
        >>> machine_spec(TaskStep(name="t", command="x", resources={"cpu": 6, "memory": "20Gi"}))
        {'machine_type': 'n1-standard-8'}
    """
    from cloudml.adapters.vertex.compiler import _GPU

    r = s.resources
    spec: dict[str, Any] = {"machine_type": DEFAULT_MACHINE}
    if r is None:
        return spec
    if r.instance_type.get("vertex"):
        spec["machine_type"] = r.instance_type["vertex"]
    elif r.cpu is not None or r.memory is not None:
        cpu, gb = float(r.cpu or 0), (r.memory or 0) / 1e9
        fits = [n for n in _N1 if n >= cpu and 3.75 * n >= gb]
        if not fits:
            raise CompileError(f"step '{s.name}': no n1-standard machine has {cpu:g} vCPUs and {gb:g} GB for its "
                               "tuning trials", hint="set resources.instance_type.vertex to a machine type")
        spec["machine_type"] = f"n1-standard-{fits[0]}"
    if r.gpu:
        if r.gpu_type is None or r.gpu_type not in _GPU:
            raise CompileError(f"step '{s.name}': Vertex needs a GPU type, one of {', '.join(_GPU)}",
                               hint="set resources.gpu_type")
        spec.update(accelerator_type=_GPU[r.gpu_type], accelerator_count=r.gpu)
    return spec


def _trial_text(text: str, s: TaskStep, paths: dict[str, str]) -> str:
    """Neutral placeholders -> KFP input placeholders (params) or TRIAL's stand-ins (inputs, outputs, tuning)."""
    out, pos = [], 0
    for ph in find_placeholders(text):
        out.append(text[pos:ph.start])
        if ph.namespace == "params":
            out.append(f"{{{{$.inputs.parameters['{ph.name}']}}}}")
        elif ph.namespace in ("outputs", "tuning"):
            out.append(token("output" if ph.namespace == "outputs" else "tuning", ph.name))
        elif ph.namespace == "inputs":
            out.append(paths[ph.name])
        else:
            out.append(ph.raw)
        pos = ph.end
    out.append(text[pos:])
    return "".join(out)


def trial_inputs(s: TaskStep) -> tuple[dict[str, str], list[str]]:
    """(input name -> what the trial's command reads, ``[token, gs uri placeholder]*`` TRIAL maps to /gcs/).

    Example:
        >>> from cloudml.spec.steps import TaskStep
        >>> trial_inputs(TaskStep(name="t", command="x", inputs={"a": "prep.outputs.train", "b": "gs://b/k"}))
        ({'a': '@@cloudml:input:a@@', 'b': '/gcs/b/k'}, ['@@cloudml:input:a@@', "{{$.inputs.artifacts['a'].uri}}"])
    """
    from cloudml.adapters.vertex.compiler import _unsupported

    paths: dict[str, str] = {}
    pairs: list[str] = []
    for name, spec in s.inputs.items():
        ref = spec.ref
        if isinstance(ref, StepOutputRef):
            paths[name] = token("input", name)
            pairs += [paths[name], f"{{{{$.inputs.artifacts['{name}'].uri}}}}"]
        elif isinstance(ref, ParamSourceRef):
            paths[name] = token("input", name)
            pairs += [paths[name], f"{{{{$.inputs.parameters['{ref.param}']}}}}"]
        elif isinstance(ref, ExternalRef) and ref.scheme == "gs" and not find_placeholders(ref.uri):
            paths[name] = "/gcs/" + ref.uri[len("gs://"):]
        else:
            raise _unsupported(s.name, "input.external", f"input '{name}' is {ref}; Vertex jobs read gs:// URIs "
                               "(mounted at /gcs/)")
    return paths, pairs


def trial_command(base: Any, s: TaskStep, paths: dict[str, str]) -> list[str]:
    """The step's command inside a trial (before TRIAL fills in the stand-ins).

    Example:
        >>> from cloudml.spec.steps import TaskStep
        >>> s = TaskStep(name="t", python="job:fit", outputs={"m": "metrics"}, tuning={
        ...     "search_space": {"lr": {"type": "float", "min": 0.1, "max": 1}}, "objective": {"metric": "m.auc"}})
        >>> trial_command(".", s, {})[-3:]
        ['--output=m=@@cloudml:output:m@@', '--output-type=m=metrics', '--param=lr=@@cloudml:tuning:lr@@']
    """
    from pathlib import Path

    from cloudml.adapters.vertex.bundles import RUNTIME_FILE
    from cloudml.codebundle import step_bundle

    assert s.tuning is not None
    if not s.python:
        cmd = split_command(s.command)
        return [_trial_text(c, s, paths) for c in cmd] + [_trial_text(a, s, paths) for a in s.args]
    argv = ["python3", RUNTIME_FILE, "--function", s.python, "--code", ".",
            *step_bundle(Path(base), s).path_args(".")]
    argv += [f"--input={k}={v}" for k, v in paths.items()]
    argv += [f"--output={k}={token('output', k)}" for k in s.outputs]
    argv += [f"--output-type={k}={o.type}" for k, o in s.outputs.items()]
    argv += [_trial_text(f"--param={k}={v}", s, paths) if isinstance(v, str)
             else f"--param={k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in s.params.items()]
    argv += [f"--param={k}={token('tuning', k)}" for k in s.tuning.search_space if k not in s.params]
    return argv


def _trial_job_spec(ctx: Any, s: TaskStep, bundle: str, image: str, base_output: str) -> dict[str, Any]:
    """``trial_job_spec``: one worker pool running TRIAL in the step's image, the step's timeout, the job's
    output folder and the settings' service account."""
    from cloudml.adapters.vertex.compiler import _unsupported

    assert s.tuning is not None
    paths, pairs = trial_inputs(s)
    cmd = trial_command(ctx.base, s, paths)
    t = s.tuning
    where = "code" if s.code or s.python else "image"
    argv = ["python3", "-c", TRIAL, bundle, where, t.objective.metric, t.objective.output, ",".join(t.search_space),
            ",".join(s.outputs), str(len(pairs) // 2), *pairs, str(len(cmd)), *cmd]
    env = {"CLOUDML_STEP": s.name, "CLOUDML_BACKEND": "vertex"}
    for k, v in s.env.items():
        if any(ph.namespace != "tuning" for ph in find_placeholders(v)):
            raise _unsupported(s.name, "step.env", f"env {k} uses a placeholder other than tuning.*; a Vertex "
                               "trial's environment is static")
        env[k] = _trial_text(v, s, paths)
    spec: dict[str, Any] = {
        "worker_pool_specs": [{"machine_spec": machine_spec(s), "replica_count": 1,
                               "container_spec": {"image_uri": image, "command": argv,
                                                  "env": [{"name": k, "value": v} for k, v in env.items()]}}],
        "base_output_directory": {"output_uri_prefix": base_output},
    }
    if s.resources is not None and s.resources.disk is not None:
        spec["worker_pool_specs"][0]["disk_spec"] = {"boot_disk_size_gb": math.ceil(s.resources.disk / 1e9)}
    if s.timeout is not None:
        spec["scheduling"] = {"timeout": f"{math.ceil(s.timeout)}s"}
    account = getattr(ctx.settings, "service_account", None)
    if account:
        spec["service_account"] = account
    return spec


def _payload(ctx: Any, s: TaskStep, bundle: str, image: str, base_output: str) -> dict[str, Any]:
    """The launcher's ``--payload``: a ``HyperparameterTuningJob`` with GAPIC (snake_case) field names."""
    assert s.tuning is not None
    t = s.tuning
    return {"display_name": f"{ctx.p.name}-{s.name}"[:128], "study_spec": study_spec(t, s.name),
            "max_trial_count": t.trials, "parallel_trial_count": min(t.parallel_trials, t.trials),
            "max_failed_trial_count": t.trials,  # as on the other backends: the step fails only when every trial did
            "trial_job_spec": _trial_job_spec(ctx, s, bundle, image, base_output)}


def launcher_args(document: dict[str, Any]) -> list[str]:
    """The launcher container's args, as GCPC's component passes them.

    Example:
        >>> launcher_args({"display_name": "x"})[:4]
        ['--type', 'HyperparameterTuningJob', '--payload', '{"display_name": "x"}']
    """
    return ["--type", "HyperparameterTuningJob", "--payload", json.dumps(document),
            "--project", "{{$.pipeline_google_cloud_project_id}}", "--location", "{{$.pipeline_google_cloud_location}}",
            "--gcp_resources", "{{$.outputs.parameters['gcp_resources'].output_file}}"]


def _runtime_image(ctx: Any, s: TaskStep) -> str:
    image = (ctx.p.backend_options.get("vertex") or {}).get("runtime_image") or ctx.p.defaults.image
    if not image:
        raise CompileError(f"step '{s.name}': on Vertex AI the best tuning trial is picked by cloudml's code in a "
                           "pipeline task, and the pipeline names no image with cloudml[gcp] installed",
                           hint="set backend_options.vertex.runtime_image (see docs/adapters/vertex.md)")
    return str(image)


def tuning_tasks(ctx: Any, s: TaskStep, scope: dict[str, Any], deps: list[str]) -> dict[str, Any]:
    """The two tasks of a tuning step (components and executors are added to ``ctx``): the job, then the pick.

    Example:
        >>> import cloudml
        >>> from cloudml.adapters.vertex.compiler import compile_ir
        >>> b = cloudml.PipelineBuilder("p", backend_options={"vertex": {"runtime_image": "img/cloudml-gcp"}})
        >>> _ = b.add_step("tune", command="python t.py --lr {{tuning.lr}} --m {{outputs.m}}", image="py",
        ...     outputs={"m": "metrics"}, tuning={"search_space": {"lr": {"type": "float", "min": 0.1, "max": 1}},
        ...                                       "objective": {"metric": "m.auc"}})
        >>> sorted(compile_ir(b.build(), None)["root"]["dag"]["tasks"])
        ['tune', 'tune-hpt-job']
    """
    from cloudml.adapters.vertex import compiler as c

    assert s.tuning is not None
    job = job_task_name(s.name)
    if job in ctx.steps:
        raise CompileError(f"step '{job}' has the name cloudml gives the tuning job of step '{s.name}' on Vertex",
                           hint=f"rename step '{job}'")
    bundle = c._code_uri(ctx, s)
    assert bundle is not None  # a tuning step always ships the runtime, which reports the objective
    root = getattr(ctx.settings, "pipeline_root", None) or c.ROOT_PLACEHOLDER
    base_output = f"{root.rstrip('/')}/cloudml/tuning/{{{{$.pipeline_job_uuid}}}}/{s.name}"
    document = _payload(ctx, s, bundle, c._image(s), base_output)

    # 1. the tuning job: GCPC's launcher; inputs are what the trial's command reads
    arts = {n: spec.ref for n, spec in s.inputs.items() if isinstance(spec.ref, StepOutputRef)}
    in_defs: dict[str, Any] = {}
    if arts:
        in_defs["artifacts"] = {n: {"artifactType": {"schemaTitle": c._ARTIFACT[c._in_type(ctx, s.inputs[n])],
                                                     "schemaVersion": "0.0.1"}} for n in arts}
    used = c._params_used(s)
    if used:
        in_defs["parameters"] = {p: {"parameterType": c._PTYPE[ctx.p.parameters[p].type]} for p in used}
    comp: dict[str, Any] = {"executorLabel": f"exec-{job}", **({"inputDefinitions": in_defs} if in_defs else {}),
                            "outputDefinitions": {"parameters": {"gcp_resources": {"parameterType": "STRING"}}}}
    ctx.components[f"comp-{job}"] = comp
    ctx.executors[f"exec-{job}"] = {"container": {"image": GCPC_IMAGE, "command": list(GCPC_LAUNCHER),
                                                  "args": launcher_args(document)}}
    first: dict[str, Any] = {"taskInfo": {"name": job}, "componentRef": {"name": f"comp-{job}"}}
    sources = {"artifacts": {n: c._artifact_source(scope, ref.step, ref.output) for n, ref in arts.items()},
               "parameters": {p: {"componentInputParameter": scope["param"](p)} for p in used}}
    if arts or used:
        first["inputs"] = {k: v for k, v in sources.items() if v}
    c._options(s, first)
    if deps:
        first["dependentTasks"] = deps

    # 2. the best trial's outputs become the step's: cloudml's code in the runtime image
    argv = ["python3", "-m", "cloudml.adapters.vertex.in_job", "--best-trial",
            "{{$.inputs.parameters['gcp_resources']}}", "--objective", s.tuning.objective.metric,
            "--goal", s.tuning.objective.goal]
    argv += [f"--output={k}={{{{$.outputs.artifacts['{k}'].path}}}}" for k in s.outputs]
    argv += [f"--output-type={k}={o.type}" for k, o in s.outputs.items()]
    extract = ctx.metrics_used.get(s.name, {})
    if extract:
        triples = [x for key, (output, path) in extract.items()
                   for x in (f"{{{{$.outputs.artifacts['{output}'].path}}}}", c._wrapper_path(path),
                             f"{{{{$.outputs.parameters['{key}'].output_file}}}}")]
        argv = ["python3", "-c", c.WRAPPER, "0", *triples, "--", *argv]
    out_defs: dict[str, Any] = {"artifacts": {n: {"artifactType": {"schemaTitle": c._ARTIFACT[o.type],
                                                                   "schemaVersion": "0.0.1"}}
                                              for n, o in s.outputs.items()}}
    if extract:
        out_defs["parameters"] = {k: {"parameterType": ctx.metric_type[(s.name, k)]} for k in extract}
    ctx.components[f"comp-{s.name}"] = {"executorLabel": f"exec-{s.name}", "inputDefinitions": {
        "parameters": {"gcp_resources": {"parameterType": "STRING"}}}, "outputDefinitions": out_defs}
    env = [{"name": "CLOUDML_STEP", "value": s.name}, {"name": "CLOUDML_BACKEND", "value": "vertex"}]
    ctx.executors[f"exec-{s.name}"] = {"container": {"image": _runtime_image(ctx, s), "command": argv[:1],
                                                     "args": argv[1:], "env": env}}
    pick: dict[str, Any] = {"taskInfo": {"name": s.name}, "componentRef": {"name": f"comp-{s.name}"},
                            "inputs": {"parameters": {"gcp_resources": {"taskOutputParameter": {
                                "producerTask": job, "outputParameterKey": "gcp_resources"}}}},
                            "dependentTasks": [job]}
    c._options(s, pick)
    pick.pop("retryPolicy", None)  # a retry of the whole search belongs to the job task
    return {job: first, s.name: pick}
