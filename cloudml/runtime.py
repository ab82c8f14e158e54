"""The one entry point that runs a Python-function step, locally and inside cloud containers alike.

    python -m cloudml.runtime --function src.train:fit [--code DIR] [--code-path DIR]...
        [--input NAME=PATH ...] [--output NAME=PATH ...] [--output-type NAME=TYPE ...]
        [--param NAME=VALUE ...]

The function receives its inputs and outputs as :class:`pathlib.Path` (or ``str`` when annotated
so) and its params converted to the annotated type (``int``, ``float``, ``bool``, ``str``). Output
folders exist before it is called. When it returns a ``dict`` and the step has exactly one
``metrics`` output the function did not write, the dict is written there as JSON.

Exit codes: 0 success, 1 the function raised (its traceback is printed: it is user code),
2 the call itself is wrong (missing argument, bad module, bad value), with a one-line reason.

Other entry forms, chosen by the first argument: ``--retry`` (:func:`retry_command`), ``--condition``
(:func:`condition_entry`), ``--guard`` (:func:`guard_entry`: run a command only when the step's condition
branch is taken, for clouds that always start it), ``--from-log`` (:func:`from_log_entry`: searched
values a tuning service sampled as their natural log, turned back before the command runs),
``--register-model`` (:func:`register_entry`) and ``--log-objective`` (:func:`log_objective_entry`).

When ``CLOUDML_SECRETS`` (JSON ``{VAR: aws-secretsmanager://... | aws-ssm://...}``, set by the SageMaker
compiler) is in the environment, every entry form first resolves those references with boto3 into
the process environment and removes ``CLOUDML_SECRETS`` (:func:`load_secrets`); a reference that
cannot be resolved exits 2 naming the variable, the reference and the IAM permission, never a value.

Example:
    >>> import subprocess, sys, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "job.py").write_text("def fit(n: int, out):\\n    return {'n2': n * 2}\\n")
    >>> r = subprocess.run([sys.executable, "-m", "cloudml.runtime", "--function", "job:fit", "--code", str(d),
    ...     "--param", "n=21", "--output", f"out={d}/m.json", "--output-type", "out=metrics"],
    ...     capture_output=True, text=True)
    >>> r.returncode, (d / "m.json").read_text()
    (0, '{"n2": 42}')
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from pathlib import Path

# Imported lazily below: this module starts once per step, so every import is paid per step.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

__all__ = ["LOG_TOKEN", "SKIPPED_MARKER", "RuntimeCallError", "SecretError", "call_step_function",
           "condition_entry", "from_log_entry", "from_log_value", "guard_entry", "load_secrets",
           "log_objective_entry", "main", "objective_regex", "register_entry", "resolve_function", "resolve_secrets",
           "set_step_env", "step_env", "tuning_trial"]

_EMPTY = object()
_STEP_ENV: dict[int, dict[str, str]] = {}  # per thread: the contract variables of an in-process step


def step_env(name: str, default: str | None = None) -> str | None:
    """A runtime-contract variable (``CLOUDML_RUN_ID``, ``CLOUDML_STEP``, ...) of the running step.

    Use it instead of ``os.environ`` in step code: a step the local backend runs in-process (a thread of
    the runner, so it cannot have an environment of its own) gets its variables here too.

    Example:
        >>> set_step_env({"CLOUDML_STEP": "train"})  # what the runner does for an in-process step
        >>> step_env("CLOUDML_STEP"), step_env("CLOUDML_NOT_SET", "-")
        ('train', '-')
        >>> set_step_env(None)
    """
    import _thread

    values = _STEP_ENV.get(_thread.get_ident())
    if values is not None and name in values:
        return values[name]
    return os.environ.get(name, default)


def set_step_env(values: dict[str, str] | None) -> None:
    """Set (or with None, clear) the calling thread's in-process step variables; the local runner uses it.

    Example:
        >>> set_step_env({"CLOUDML_STEP": "evaluate"}); step_env("CLOUDML_STEP")
        'evaluate'
        >>> set_step_env(None)
    """
    import _thread

    if values is None:
        _STEP_ENV.pop(_thread.get_ident(), None)
    else:
        _STEP_ENV[_thread.get_ident()] = dict(values)


class RuntimeCallError(Exception):
    """The step function could not be called as declared (exit code 2)."""


def resolve_function(target: str, code: str | None = None, code_paths: Sequence[str] = ()) -> Callable[..., Any]:
    """Import ``module:function``, with ``code``, then ``code_paths``, then the working directory on ``sys.path``.

    Example:
        >>> resolve_function("json:dumps")([1])
        '[1]'
    """
    if ":" not in target:
        raise RuntimeCallError(f"'{target}' is not module:function")
    module_name, func_name = target.split(":", 1)
    for extra in code_paths:
        if not Path(extra).is_dir():
            raise RuntimeCallError(f"code path '{extra}' is not a folder (from the step's code_paths); "
                                   f"working directory {os.getcwd()}")
    for folder in reversed([code, *code_paths, os.getcwd()]):  # inserted last-first: code ends up first
        if not folder:
            continue
        resolved = str(Path(folder).resolve())
        if resolved in sys.path and folder in (code, *code_paths):
            sys.path.remove(resolved)  # an earlier step's folder may sit ahead of it
        if resolved not in sys.path:
            sys.path.insert(0, resolved)
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise RuntimeCallError(f"cannot import module '{module_name}': {e}") from e
    func = getattr(module, func_name, None)
    if not callable(func):
        raise RuntimeCallError(f"module '{module_name}' has no function '{func_name}'")
    return func  # type: ignore[no-any-return]


def _convert(value: str, annotation: Any, name: str) -> Any:
    if annotation is _EMPTY or annotation in (str, "str", "Any", "typing.Any"):
        return value
    if annotation in (bool, "bool"):
        if value.lower() in ("true", "1", "yes"):
            return True
        if value.lower() in ("false", "0", "no"):
            return False
        raise RuntimeCallError(f"param '{name}': {value!r} is not a bool")
    if annotation in (int, "int"):
        try:
            return int(value)
        except ValueError:
            pass
        try:
            number = float(value)  # "1e3" or "200.0": whole numbers written as floats
        except ValueError:
            number = float("nan")
        if not number.is_integer():
            raise RuntimeCallError(f"param '{name}': {value!r} is not an int")
        return int(number)
    if annotation in (float, "float"):
        try:
            return float(value)
        except ValueError:
            raise RuntimeCallError(f"param '{name}': {value!r} is not a float") from None
    return value


def _as_path(value: str, annotation: Any) -> Any:
    return value if annotation in (str, "str") else Path(value)


def _signature(func: Callable[..., Any]) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """(annotations by name, defaults by name, accepts **kwargs) without importing inspect when possible."""
    code = getattr(func, "__code__", None)
    if code is None or not hasattr(func, "__defaults__") or hasattr(func, "__self__"):  # bound methods: no self
        import inspect

        sig = inspect.signature(func)
        params = {n: p for n, p in sig.parameters.items()
                  if p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)}
        ann = {n: (_EMPTY if p.annotation is inspect.Parameter.empty else p.annotation) for n, p in params.items()}
        defaults = {n: p.default for n, p in params.items() if p.default is not inspect.Parameter.empty}
        kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
        return ann, defaults, kwargs
    names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
    positional = names[: code.co_argcount]
    defaults = dict(zip(positional[len(positional) - len(func.__defaults__ or ()):], func.__defaults__ or (), strict=True))
    defaults.update(func.__kwdefaults__ or {})
    annotations = getattr(func, "__annotations__", {})
    ann = {n: annotations.get(n, _EMPTY) for n in names}
    return ann, defaults, bool(code.co_flags & 0x08)


def call_step_function(
    func: Callable[..., Any],
    inputs: dict[str, str],
    outputs: dict[str, str],
    params: dict[str, str],
    output_types: dict[str, str] | None = None,
) -> Any:
    """Call ``func`` the way a step runs it; returns what it returned. Raises RuntimeCallError on misuse.

    Example:
        >>> import tempfile, json, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> def f(x: float) -> dict: return {"y": x + 1}
        >>> call_step_function(f, {}, {"m": str(d / "m.json")}, {"x": "1.5"}, {"m": "metrics"})
        {'y': 2.5}
        >>> json.loads((d / "m.json").read_text())
        {'y': 2.5}
    """
    output_types = output_types or {}
    hints, defaults, accepts_kwargs = _signature(func)
    for name, path in outputs.items():
        target = Path(path)
        if output_types.get(name) == "metrics":
            target.parent.mkdir(parents=True, exist_ok=True)
        else:
            target.mkdir(parents=True, exist_ok=True)
    available: dict[str, Any] = {}
    for name, value in [*inputs.items(), *outputs.items()]:
        available[name] = _as_path(value, hints.get(name, _EMPTY))
    for name, value in params.items():
        available[name] = _convert(value, hints.get(name, _EMPTY), name)
    kwargs: dict[str, Any] = {}
    for name in hints:
        if name in available:
            kwargs[name] = available[name]
        elif name not in defaults:
            raise RuntimeCallError(
                f"function argument '{name}' has no input, output or param of that name "
                f"(have: {', '.join(sorted(available)) or 'none'})"
            )
    if accepts_kwargs:
        kwargs.update({k: v for k, v in available.items() if k not in kwargs})
    result = func(**kwargs)
    metrics = [n for n, t in output_types.items() if t == "metrics" and n in outputs]
    if isinstance(result, dict) and len(metrics) == 1 and not Path(outputs[metrics[0]]).exists():
        import json

        Path(outputs[metrics[0]]).write_text(json.dumps(result, sort_keys=True, default=str))
    return result


_USAGE = ("usage: python -m cloudml.runtime --function MODULE:FUNCTION [--code DIR] [--code-path DIR]... "
          "[--input NAME=PATH]... "
          "[--output NAME=PATH]... [--output-type NAME=TYPE]... [--param NAME=VALUE]...")
_PAIR_FLAGS = ("--input", "--output", "--output-type", "--param")


def _parse(argv: Sequence[str]) -> tuple[str, str | None, list[str], dict[str, dict[str, str]]]:
    """Parse ``--flag value`` and ``--flag=value`` forms (argparse costs a few ms per step)."""
    function: str | None = None
    code: str | None = None
    code_paths: list[str] = []
    pairs: dict[str, dict[str, str]] = {f: {} for f in _PAIR_FLAGS}
    args = list(argv)
    i = 0
    while i < len(args):
        flag, eq, value = args[i].partition("=")
        if not eq:
            if i + 1 >= len(args):
                raise RuntimeCallError(f"{flag} needs a value")
            value = args[i + 1]
            i += 1
        i += 1
        if flag == "--function":
            function = value
        elif flag == "--code":
            code = value
        elif flag == "--code-path":
            code_paths.append(value)
        elif flag in pairs:
            if "=" not in value:
                raise RuntimeCallError(f"{flag} expects NAME=VALUE, got {value!r}")
            k, v = value.split("=", 1)
            pairs[flag][k] = v
        else:
            raise RuntimeCallError(f"unknown argument {flag!r}")
    if function is None:
        raise RuntimeCallError("--function MODULE:FUNCTION is required")
    return function, code, code_paths, pairs


def retry_command(argv: Sequence[str]) -> int:
    """``--retry N --backoff SECONDS -- CMD...``: run CMD up to N times, waiting backoff * 2**k with jitter.

    Clouds without retries of user-code failures (SageMaker, Azure ML command jobs) run steps through
    this, so a neutral ``retry`` means the same everywhere. Returns CMD's last exit code.

    Example:
        >>> retry_command(["--retry", "2", "--backoff", "0", "--", sys.executable, "-c", "raise SystemExit(3)"])
        3
    """
    import random
    import subprocess
    import time

    try:
        sep = list(argv).index("--")
        opts = dict(zip(argv[:sep:2], argv[1:sep:2], strict=True))
        attempts, backoff = int(opts["--retry"]), float(opts.get("--backoff", "0"))
        command = list(argv[sep + 1:])
    except (ValueError, KeyError):
        print("cloudml.runtime: usage: --retry N [--backoff SECONDS] -- COMMAND...", file=sys.stderr)
        return 2
    code = 1
    for attempt in range(1, attempts + 1):
        code = subprocess.call(command)
        if code == 0 or attempt == attempts:
            return code
        delay = backoff * 2 ** (attempt - 1) * (0.5 + random.random())
        print(f"cloudml.runtime: attempt {attempt} of {attempts} exited {code}; retrying in {delay:.1f}s",
              file=sys.stderr, flush=True)
        time.sleep(delay)
    return code


OBJECTIVE_PREFIX = "cloudml-objective: "
_HYPERPARAMETERS = "/opt/ml/input/config/hyperparameters.json"


def objective_regex(metric: str) -> str:
    """The MetricDefinitions regex that matches the line :func:`tuning_trial` prints for ``metric``.

    Example:
        >>> import re
        >>> re.search(objective_regex("metrics.auc"), "cloudml-objective: metrics.auc=0.875").group(1)
        '0.875'
    """
    return OBJECTIVE_PREFIX + re.escape(metric) + r"=([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"


def tuning_trial(environ: dict[str, str] | None = None) -> int:
    """Run one trial of a SageMaker tuning job, then print its objective for the job's MetricDefinitions.

    SageMaker's training toolkit starts this file (static hyperparameters ``sagemaker_program`` and
    ``sagemaker_submit_directory``). The step's command is in the static hyperparameters
    ``cloudml_argc`` / ``cloudml_arg_<i>``; the searched values are the other hyperparameters, read
    from ``hyperparameters.json`` and put in place of ``{{tuning.NAME}}``. After the command exits 0,
    ``cloudml-objective: OUTPUT.KEY=VALUE`` is printed from the metrics file it wrote.

    Example:
        >>> import json, tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()); hp = d / "hp.json"; m = d / "m.json"
        >>> cmd = [sys.executable, "-c", "import sys, json; json.dump({'auc': float(sys.argv[1]) / 2}, open(sys.argv[2], 'w'))",
        ...        "{{tuning.x}}", str(m)]
        >>> _ = hp.write_text(json.dumps({"x": "1.5", "cloudml_argc": str(len(cmd)),
        ...                               **{f"cloudml_arg_{i}": a for i, a in enumerate(cmd)}}))
        >>> tuning_trial({"CLOUDML_HYPERPARAMETERS": str(hp), "CLOUDML_TUNING_NAMES": "x",
        ...               "CLOUDML_TUNING_OBJECTIVE": "metrics.auc", "CLOUDML_TUNING_METRICS_FILE": str(m)})
        cloudml-objective: metrics.auc=0.75
        0
    """
    import json
    import subprocess

    env = dict(os.environ if environ is None else environ)
    try:
        hp = json.loads(Path(env.get("CLOUDML_HYPERPARAMETERS", _HYPERPARAMETERS)).read_text())
        values = {n: _hp_value(hp[n]) for n in env.get("CLOUDML_TUNING_NAMES", "").split(",") if n}
        argv = [hp[f"cloudml_arg_{i}"] for i in range(int(hp["cloudml_argc"]))]
    except (OSError, ValueError, KeyError) as e:
        print(f"cloudml.runtime: cannot read the trial's hyperparameters: {e!r}", file=sys.stderr)
        return 2

    def fill(text: str) -> str:
        return re.sub(r"\{\{\s*tuning\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}",
                      lambda m: values.get(m.group(1), m.group(0)), text)

    metric, metrics_file = env.get("CLOUDML_TUNING_OBJECTIVE", ""), env.get("CLOUDML_TUNING_METRICS_FILE", "")
    child = {k: fill(v) for k, v in env.items() if not k.startswith(("CLOUDML_TUNING_", "CLOUDML_HYPERPARAMETERS"))}
    cwd = env.get("CLOUDML_TUNING_CWD")
    try:
        code = subprocess.call([fill(a) for a in argv], env=child, cwd=cwd if cwd and Path(cwd).is_dir() else None)
    except OSError as e:
        print(f"cloudml.runtime: cannot start {argv[:1]}: {e}", file=sys.stderr)
        return 127
    if code != 0:
        return code
    try:
        value: Any = json.loads(Path(metrics_file).read_text())
        for part in metric.split(".", 1)[1].split("."):
            value = value[part]
        number = float(value)
        if isinstance(value, bool) or number != number or number in (float("inf"), float("-inf")):
            raise ValueError(f"{value!r} is not a finite number")
    except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
        print(f"cloudml.runtime: objective {metric} not found in {metrics_file}: {e!r}", file=sys.stderr)
        return 1
    print(f"{OBJECTIVE_PREFIX}{metric}={number!r}", flush=True)
    return 0


def log_objective_entry(argv: Sequence[str], environ: dict[str, str] | None = None) -> int:
    """``--log-objective OUTPUT.KEY --metrics FILE``: report a tuning trial's objective where its cloud reads it.

    After an Azure ML sweep trial's command (compiled by cloudml.adapters.azureml.sweep): reads KEY (dotted)
    from the metrics FILE (a folder means its ``metrics.json``), prints ``cloudml-objective: OUTPUT.KEY=VALUE``
    and, when ``MLFLOW_TRACKING_URI`` is set (Azure ML sets it, with ``MLFLOW_RUN_ID``, in every job), logs
    it with ``mlflow.log_metric("OUTPUT.KEY", VALUE)``: the sweep's ``primary_metric``.

    ``--report hypertune`` (a Vertex AI hyperparameter tuning trial) appends the value instead as one JSON
    line to the file Vertex AI's tuning service reads: ``CLOUD_ML_HP_METRIC_FILE``, by default
    ``/tmp/hypertune/output.metrics``, in the format of Google's ``cloudml-hypertune`` package, under the
    tag ``OUTPUT.KEY`` (the study's ``metric_id``). Exit codes: 0 reported, 1 the metric is missing or
    not a finite number, 2 the call is wrong or mlflow is missing.

    Example:
        >>> import json, tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "metrics.json").write_text(json.dumps({"auc": 0.8}))
        >>> log_objective_entry(["--log-objective", "metrics.auc", "--metrics", str(d)], {})
        cloudml-objective: metrics.auc=0.8
        0
    """
    import json

    env = dict(os.environ if environ is None else environ)
    try:
        one, _ = _flags(argv, ("--log-objective", "--metrics", "--report"), ())
        metric, path = one["--log-objective"], Path(one["--metrics"])
        key = metric.split(".", 1)[1]
        report = one.get("--report", "mlflow")
        if report not in ("mlflow", "hypertune"):
            raise RuntimeCallError(f"--report {report}: expected mlflow or hypertune")
    except (RuntimeCallError, KeyError, IndexError) as e:
        print(f"cloudml.runtime: --log-objective: {e!r}", file=sys.stderr)
        return 2
    source = path / "metrics.json" if path.is_dir() else path
    try:
        value: Any = json.loads(source.read_text())
        for part in key.split("."):
            value = value[part]
        number = float(value)
        if isinstance(value, bool) or number != number or number in (float("inf"), float("-inf")):
            raise ValueError(f"{value!r} is not a finite number")
    except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
        print(f"cloudml.runtime: objective {metric} not found in {source}: {e!r}", file=sys.stderr)
        return 1
    print(f"{OBJECTIVE_PREFIX}{metric}={number!r}", flush=True)
    if report == "hypertune":
        return _report_hypertune(metric, number, env)
    if not env.get("MLFLOW_TRACKING_URI"):
        print("cloudml.runtime: MLFLOW_TRACKING_URI is not set: the objective was not logged to MLflow",
              file=sys.stderr)
        return 0
    try:
        import mlflow
    except ImportError as e:
        print(f"cloudml.runtime: logging the objective needs mlflow and azureml-mlflow in the image: {e}",
              file=sys.stderr)
        return 2
    mlflow.log_metric(metric, number)
    return 0


def _report_hypertune(tag: str, value: float, env: dict[str, str]) -> int:
    """Append one metric line where Vertex AI's tuning service reads a trial's objective (cloudml-hypertune's format)."""
    import json
    import time

    target = Path(env.get("CLOUD_ML_HP_METRIC_FILE") or "/tmp/hypertune/output.metrics")
    line = {"global_step": "1", tag: str(value), "timestamp": time.time(), "trial": env.get("CLOUD_ML_TRIAL_ID", "0")}
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
    except OSError as e:
        print(f"cloudml.runtime: cannot write the objective to {target}: {e}", file=sys.stderr)
        return 1
    return 0


def _hp_value(raw: str) -> str:
    """A hyperparameter as text; a JSON-quoted string (as the SageMaker SDK writes categoricals) is unquoted."""
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        import json

        return str(json.loads(raw))
    return raw


def unpack_model_archives(inputs: dict[str, str]) -> None:
    """Unpack an input folder that holds only ``model.tar.gz`` (how SageMaker hands over trained models).

    Example:
        >>> unpack_model_archives({})  # nothing to do
    """
    import tarfile

    for path in inputs.values():
        folder = Path(path)
        archive = folder / "model.tar.gz"
        if folder.is_dir() and archive.is_file() and [p.name for p in folder.iterdir()] == ["model.tar.gz"]:
            with tarfile.open(archive) as tar:
                tar.extractall(folder, filter="data")


def _flags(argv: Sequence[str], single: tuple[str, ...], multi: tuple[str, ...]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """``--flag value`` / ``--flag=value`` pairs; ``multi`` flags may repeat. RuntimeCallError on anything else."""
    one: dict[str, str] = {}
    many: dict[str, list[str]] = {f: [] for f in multi}
    args, i = list(argv), 0
    while i < len(args):
        flag, eq, value = args[i].partition("=")
        if not eq:
            if i + 1 >= len(args):
                raise RuntimeCallError(f"{flag} needs a value")
            value, i = args[i + 1], i + 1
        i += 1
        if flag in single:
            one[flag] = value
        elif flag in multi:
            many[flag].append(value)
        else:
            raise RuntimeCallError(f"unknown argument {flag!r}")
    return one, many


def _conditions() -> Any:
    """:mod:`cloudml.spec.conditions`, else ``cloudml_conditions.py`` beside this file (the Azure ML client
    stages it there, so a guard runs in an image without cloudml); RuntimeCallError when neither is found."""
    try:
        from cloudml.spec import conditions

        return conditions
    except ImportError:
        import importlib.util

        beside = Path(__file__).resolve().parent / "cloudml_conditions.py"
        spec = importlib.util.spec_from_file_location("cloudml_conditions", beside)
        if spec is None or spec.loader is None or not beside.is_file():
            raise RuntimeCallError("evaluating a condition needs cloudml in the image (pip install cloudml) or "
                                   "cloudml_conditions.py beside the runtime") from None
        module = importlib.util.module_from_spec(spec)
        sys.modules["cloudml_conditions"] = module
        spec.loader.exec_module(module)
        return module


def _condition_values(many: dict[str, list[str]]) -> tuple[dict[str, Any], dict[tuple[str, str], str]]:
    """(params, metrics files by (step, output)) from ``--param``, ``--param-type`` and ``--metrics`` flags."""
    types = dict(p.split("=", 1) for p in many["--param-type"])
    params = {k: _convert(v, types.get(k, "str"), k) for k, v in (p.split("=", 1) for p in many["--param"])}
    files = {(k.rsplit(".", 1)[0], k.rsplit(".", 1)[1]): v for k, v in (m.split("=", 1) for m in many["--metrics"])}
    return params, files


def _evaluate(text: str, files: dict[tuple[str, str], str], params: dict[str, Any]) -> bool:
    """Parse and evaluate one condition, reading only the metrics files it names (a folder means its
    ``metrics.json``). OSError, ValueError, KeyError, TypeError or IndexError when it cannot be answered."""
    import json

    mod = _conditions()
    expr = mod.parse_condition(text)
    metrics: dict[tuple[str, str], Any] = {}
    for m in expr.metric_operands():
        key = (m.step, m.output)
        if key not in metrics:
            if key not in files:
                raise KeyError(f"no --metrics for {m.step}.{m.output}")
            source = Path(files[key]) / "metrics.json" if Path(files[key]).is_dir() else Path(files[key])
            metrics[key] = json.loads(source.read_text())
    return bool(mod.evaluate_condition(expr, metrics, params))


def condition_entry(argv: Sequence[str]) -> int:
    """``--condition EXPR [--metrics STEP.OUTPUT=FILE]... [--param NAME=VALUE]... [--param-type NAME=TYPE]...
    --result FILE``: evaluate a neutral condition and write ``true`` / ``false`` to FILE.

    For clouds whose branch node reads a boolean output of a previous node (Azure ML ``if_else``). The
    expression is parsed and evaluated by :mod:`cloudml.spec.conditions`, the same evaluator the local
    backend uses, so the image needs cloudml installed. A FILE that is a folder means its ``metrics.json``.
    Exit codes: 0 evaluated, 1 a metric is missing or values do not compare, 2 the call is wrong.

    Example:
        >>> import json, tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "m.json").write_text(json.dumps({"auc": 0.9}))
        >>> condition_entry(["--condition", 'ev.outputs.m["auc"] >= params.min', f"--metrics=ev.m={d}/m.json",
        ...                  "--param=min=0.8", "--param-type=min=float", "--result", str(d / "r")])
        cloudml.runtime: condition ev.outputs.m["auc"] >= params.min is true
        0
        >>> (d / "r").read_text()
        'true'
    """
    try:
        one, many = _flags(argv, ("--condition", "--result"), ("--metrics", "--param", "--param-type"))
        text, result = one["--condition"], one["--result"]
        params, files = _condition_values(many)
        _conditions()
    except (RuntimeCallError, KeyError, ValueError, IndexError) as e:
        print(f"cloudml.runtime: --condition: {e!r}", file=sys.stderr)
        return 2
    try:
        value = _evaluate(text, files, params)
    except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
        print(f"cloudml.runtime: condition {text} cannot be evaluated: {e!r}", file=sys.stderr)
        return 1
    Path(result).parent.mkdir(parents=True, exist_ok=True)
    Path(result).write_text("true" if value else "false")
    print(f"cloudml.runtime: condition {text} is {'true' if value else 'false'}", flush=True)
    return 0


SKIPPED_MARKER = "_cloudml_skipped.json"
_GUARD_FLAGS = ("--metrics", "--param", "--param-type", "--outputs")


def guard_entry(argv: Sequence[str]) -> int:
    """``--guard JSON [--metrics STEP.OUTPUT=PATH]... [--param NAME=VALUE]... [--param-type NAME=TYPE]...
    [--outputs DIR]... -- COMMAND...``: run COMMAND only when the step's branch is taken.

    JSON is the list of the conditions around the step, outermost first: ``[{"name": "gate", "condition":
    EXPR, "expect": true}, ...]`` (``expect`` is false on an else branch). They are evaluated in order and
    the first that does not give ``expect`` ends the check, so an inner condition's metrics are never read
    when the outer branch is not taken. For clouds without conditional nodes (Azure ML without the
    preview): the step always starts, and when its branch is not taken it prints one ``skipped:`` line,
    writes ``_cloudml_skipped.json`` into each ``--outputs`` folder (so steps bound to them find a folder)
    and exits 0. Otherwise it runs COMMAND and returns its exit code. Exit codes of its own: 1 a metric
    is missing or does not compare, 2 the call is wrong.

    Example:
        >>> import json, tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "m.json").write_text(json.dumps({"auc": 0.6}))
        >>> g = json.dumps([{"name": "gate", "condition": 'ev.outputs.m["auc"] >= params.min', "expect": True}])
        >>> guard_entry(["--guard", g, f"--metrics=ev.m={d}/m.json", "--param=min=0.8", "--param-type=min=float",
        ...              "--outputs", str(d / "out"), "--", sys.executable, "-c", "raise SystemExit(3)"])
        skipped: condition 'gate' is false: ev.outputs.m["auc"] >= params.min
        0
        >>> json.loads((d / "out" / "_cloudml_skipped.json").read_text())["skipped"]
        True
    """
    import json
    import subprocess

    args = list(argv)
    try:
        sep = args.index("--")
        one, many = _flags(args[:sep], ("--guard",), _GUARD_FLAGS)
        guards = json.loads(one["--guard"])
        if not isinstance(guards, list) or not all(isinstance(g, dict) and "condition" in g for g in guards):
            raise ValueError("--guard expects a JSON list of {name, condition, expect}")
        params, files = _condition_values(many)
        command = args[sep + 1:]
        if not command:
            raise ValueError("no command after --")
        _conditions()
    except (RuntimeCallError, KeyError, ValueError, IndexError) as e:
        print(f"cloudml.runtime: --guard: {e!r}; usage: --guard JSON [--metrics STEP.OUTPUT=PATH]... "
              "[--param NAME=VALUE]... [--param-type NAME=TYPE]... [--outputs DIR]... -- COMMAND...", file=sys.stderr)
        return 2
    for g in guards:
        name, text, expect = str(g.get("name", "condition")), str(g["condition"]), bool(g.get("expect", True))
        try:
            value = _evaluate(text, files, params)
        except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
            print(f"cloudml.runtime: condition '{name}' ({text}) cannot be evaluated: {e!r}", file=sys.stderr)
            return 1
        if value != expect:
            branch = "" if expect else " (this step is on its else branch)"
            reason = f"condition '{name}' is {'true' if value else 'false'}{branch}: {text}"
            for folder in many["--outputs"]:
                Path(folder).mkdir(parents=True, exist_ok=True)
                (Path(folder) / SKIPPED_MARKER).write_text(json.dumps(
                    {"skipped": True, "step": step_env("CLOUDML_STEP"), "reason": reason}, sort_keys=True))
            print(f"skipped: {reason}", flush=True)
            return 0
    return subprocess.call(command)


LOG_TOKEN = "@CLOUDML_TUNING_{}@"  # where a searched value sampled in log space goes in a --from-log command


def from_log_value(kind: str, low: float, high: float, sampled: float) -> int | float:
    """The value of a log-scale dimension from its sampled natural log: ``exp``, rounded for an ``int``
    (to 12 significant digits for a ``float``), then clamped to ``[low, high]``.

    Example:
        >>> import math
        >>> from_log_value("float", 0.01, 0.5, math.log(0.1)), from_log_value("int", 10, 200, math.log(57.4))
        (0.1, 57)
        >>> from_log_value("int", 10, 200, math.log(9.6)), from_log_value("int", 10, 200, math.log(300))
        (10, 200)
    """
    import math

    value = math.exp(sampled)
    if kind == "int":
        return int(min(max(round(value), math.ceil(low)), math.floor(high)))
    if kind != "float":
        raise ValueError(f"kind {kind!r} is not int or float")
    return min(max(float(f"{value:.12g}"), low), high)  # 12 digits: exp(log(0.1)) is 0.1, not 0.10000000000000002


def from_log_entry(argv: Sequence[str]) -> int:
    """``--from-log NAME=KIND:MIN:MAX:SAMPLED ... -- COMMAND...``: turn searched values sampled as their
    natural log back into values, put each into COMMAND where ``@CLOUDML_TUNING_<NAME>@`` stands, run it.

    For tuning services that sample a log-scale dimension as ``uniform(ln min, ln max)`` (Azure ML's
    Bayesian sampling takes no log-uniform, and no sampler has an integer one): :func:`from_log_value`
    gives ``exp(SAMPLED)``, rounded for ``int``, clamped to ``[MIN, MAX]``. Prints one line per value.
    Returns COMMAND's exit code, or 2 when the call is wrong.

    Example:
        >>> import math
        >>> from_log_entry([f"--from-log=n=int:10:200:{math.log(57.2)}", "--", sys.executable, "-c",
        ...                 "import sys; raise SystemExit(int(sys.argv[1]) - 57)", "@CLOUDML_TUNING_n@"])
        cloudml.runtime: n = 57 (sampled on a log scale: 4.04655)
        0
    """
    import subprocess

    args = list(argv)
    try:
        sep = args.index("--")
        _, many = _flags(args[:sep], (), ("--from-log",))
        values: dict[str, int | float] = {}
        for item in many["--from-log"]:
            name, _, rest = item.partition("=")
            kind, low, high, sampled = rest.split(":", 3)
            values[name] = from_log_value(kind, float(low), float(high), float(sampled))
            print(f"cloudml.runtime: {name} = {values[name]:g} (sampled on a log scale: {float(sampled):g})",
                  flush=True)
        command = args[sep + 1:]
        if not values or not command:
            raise ValueError("nothing to convert, or no command after --")
    except (RuntimeCallError, ValueError) as e:
        print(f"cloudml.runtime: --from-log: {e}; usage: --from-log NAME=int|float:MIN:MAX:SAMPLED... -- COMMAND...",
              file=sys.stderr)
        return 2
    for name, value in values.items():
        command = [word.replace(LOG_TOKEN.format(name), repr(value)) for word in command]
    return subprocess.call(command)


def _read_metrics(path: str | None) -> dict[str, Any]:
    import json

    if not path:
        return {}
    source = Path(path) / "metrics.json" if Path(path).is_dir() else Path(path)
    data = json.loads(source.read_text())
    return dict(data) if isinstance(data, dict) else {"value": data}


def register_entry(argv: Sequence[str], environ: dict[str, str] | None = None,
                   client_kwargs: dict[str, Any] | None = None) -> int:
    """``--register-model vertex --group G --model-uri URI --image IMG [--approval A] [--metrics FILE]
    [--tags JSON] [--project P] [--location L] [--run RESOURCE] [--alias A]...``: register a model version
    from inside a pipeline task.

    Azure ML (``--register-model azureml --group G --model-uri URI [--model-type T] [--approval A]
    [--metrics FILE] [--tags JSON] [--description D] [--run JOB] [--subscription S --resource-group RG
    --workspace W]``): the version goes to the workspace's model registry through
    :func:`cloudml.adapters.azureml.registry.register_model`, authenticated as the job's identity
    (:mod:`cloudml.adapters.azureml.in_job`); ``client_kwargs`` go to ``MLClient``. The image needs
    ``cloudml[azure]``.

    Vertex AI: the version goes to the Model Registry through
    :class:`cloudml.adapters.vertex.registry.VertexRegistry` (``Model.upload`` with ``parent_model``,
    the approval label and the ``approved`` alias), exactly as ``cloudml models register`` does, so the
    image needs ``cloudml[gcp]``. Project and location come from ``--project`` / ``--location`` (the
    compiler passes Vertex's run-time placeholders), else ``CLOUDML_VERTEX_PROJECT`` /
    ``CLOUDML_VERTEX_LOCATION``, else the pipeline job's resource name (``--run``), which is also
    recorded as the version's run id; a value still reading ``{{$...}}`` (a backend that does not
    resolve it) counts as unset. Exit codes: 0 registered, 1 the registry refused, 2 the call is wrong.

    Example:
        >>> register_entry(["--register-model", "sagemaker", "--group", "g", "--model-uri", "s3://b/m"])
        2
    """
    import json

    env = dict(os.environ if environ is None else environ)
    if list(argv[:2]) == ["--register-model", "azureml"] or list(argv[:1]) == ["--register-model=azureml"]:
        return _register_azureml(argv, env, client_kwargs)
    try:
        one, many = _flags(argv, ("--register-model", "--group", "--model-uri", "--image", "--approval", "--metrics",
                                  "--tags", "--run", "--project", "--location"), ("--alias",))
        one = {k: v for k, v in one.items() if not v.startswith("{{$")}  # unresolved run-time placeholders
        if one.get("--register-model") != "vertex":
            raise RuntimeCallError(f"cannot register on {one.get('--register-model')!r} (known: vertex, azureml)")
        group, uri, image = one["--group"], one["--model-uri"], one.get("--image", "")
        tags = dict(json.loads(one.get("--tags") or "{}"))
        metrics = _read_metrics(one.get("--metrics"))
    except (RuntimeCallError, KeyError, ValueError, OSError) as e:
        print(f"cloudml.runtime: --register-model: {e!r}", file=sys.stderr)
        return 2
    run = one.get("--run", "")
    parts = run.split("/")
    found = dict(zip(parts[0::2], parts[1::2], strict=False)) if run.startswith("projects/") else {}
    try:
        from cloudml.adapters.vertex.client import VertexClient
        from cloudml.adapters.vertex.registry import VertexRegistry
        from cloudml.config import VertexSettings
    except ImportError as e:
        print(f"cloudml.runtime: registering needs cloudml[gcp] in the image: {e}", file=sys.stderr)
        return 2
    # model_construct: a project number from the job's resource name is fine for Vertex, not for the setting's pattern
    settings = VertexSettings.model_construct(
        project=one.get("--project") or env.get("CLOUDML_VERTEX_PROJECT") or found.get("projects"),
        location=one.get("--location") or env.get("CLOUDML_VERTEX_LOCATION") or found.get("locations") or "us-central1",
        api_endpoint=env.get("CLOUDML_VERTEX_API_ENDPOINT") or None)
    from cloudml.errors import CloudMLError

    try:
        version = VertexRegistry(VertexClient(settings)).register(
            group, uri, image=image, approval=one.get("--approval", "pending"), metrics=metrics, tags=tags,
            run_id=run or None, aliases=many["--alias"])
    except CloudMLError as e:
        print(f"cloudml.runtime: registering {group} failed: {e}", file=sys.stderr)
        return 1
    print(f"cloudml.runtime: registered {group} v{version.version} ({version.approval}) from {uri}", flush=True)
    return 0


def _register_azureml(argv: Sequence[str], env: dict[str, str], client_kwargs: dict[str, Any] | None) -> int:
    """``--register-model azureml ...``: parsed here, registered by cloudml.adapters.azureml.in_job."""
    try:
        from cloudml.adapters.azureml.in_job import REGISTER_FLAGS, register_in_job
    except ImportError as e:
        print(f"cloudml.runtime: registering needs cloudml[azure] in the image: {e}", file=sys.stderr)
        return 2
    try:
        one, _ = _flags(argv, REGISTER_FLAGS, ())
    except RuntimeCallError as e:
        print(f"cloudml.runtime: --register-model: {e!r}", file=sys.stderr)
        return 2
    return register_in_job(one, env, client_kwargs)


SECRETS_VAR = "CLOUDML_SECRETS"
_SECRET_PERMISSION = {"aws-secretsmanager": "secretsmanager:GetSecretValue", "aws-ssm": "ssm:GetParameter"}


class SecretError(Exception):
    """A secret reference could not be resolved. The message names the variable and the reference, never a value."""


def _secret_region(ref: str) -> str | None:
    """The region of an ARN reference (``arn:aws:secretsmanager:eu-west-1:...``), else None (the default chain)."""
    parts = ref.split(":")
    return parts[3] if len(parts) > 5 and parts[0] == "arn" and parts[3] else None


def _ssm_name(ref: str) -> str:
    """``aws-ssm://prod/db`` and ``aws-ssm:///prod/db`` both name ``/prod/db``; a flat name or an ARN stays."""
    return ref if ref.startswith(("/", "arn:")) or "/" not in ref else "/" + ref


def _secret_failure(var: str, ref: str, exc: Exception) -> SecretError:
    scheme = ref.split("://", 1)[0]
    permission = _SECRET_PERMISSION.get(scheme, "")
    code, detail = type(exc).__name__, str(exc)
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        code, detail = str(error.get("Code", code)), str(error.get("Message", ""))
    if code in ("ResourceNotFoundException", "ParameterNotFound", "ParameterVersionNotFound"):
        why = "does not exist in this account and region (or the execution role cannot see it)"
    elif code in ("AccessDeniedException", "AccessDenied", "UnrecognizedClientException"):
        why = (f"access denied: the job's execution role needs {permission} on it (and kms:Decrypt when it is "
               "encrypted with a customer managed KMS key)")
    elif code in ("DecryptionFailure", "KMSAccessDeniedException", "KMSDisabledException", "KMSNotFoundException",
                  "InvalidKeyId"):
        why = f"cannot be decrypted: the job's execution role needs kms:Decrypt on its key ({code})"
    elif code in ("NoCredentialsError", "PartialCredentialsError"):
        why = f"no AWS credentials in the job (the execution role needs {permission})"
    elif code == "NoRegionError":
        why = "no AWS region: set AWS_DEFAULT_REGION in the step's env, or reference the secret by ARN"
    else:
        why = f"{code}: {detail}" if detail else code
    return SecretError(f"secret {var} ({ref}): {why}")


def resolve_secrets(references: dict[str, str], clients: dict[str, Any] | None = None) -> dict[str, str]:
    """Resolve ``{VAR: reference}`` to ``{VAR: value}`` with boto3 (the job's credentials and region).

    ``aws-secretsmanager://NAME-or-ARN[#json-key]``: Secrets Manager ``GetSecretValue`` (``SecretString``,
    or a UTF-8 ``SecretBinary``); with ``#key`` the secret is a JSON object and the variable is that
    member. ``aws-ssm://PARAM``: SSM ``GetParameter`` with ``WithDecryption=True`` (``aws-ssm://prod/db``
    is ``/prod/db``). ``clients`` maps ``secretsmanager`` / ``ssm`` (or ``service@region``) to boto3
    clients to use instead of new ones. Raises :class:`SecretError`, whose message never holds a value.

    Example:
        >>> resolve_secrets({})
        {}
        >>> try:
        ...     resolve_secrets({"TOKEN": "env://TOKEN"})
        ... except SecretError as e:
        ...     print(e)
        secret TOKEN (env://TOKEN): only aws-secretsmanager:// and aws-ssm:// references are resolved in a job
    """
    import json

    clients = {} if clients is None else clients
    values: dict[str, str] = {}
    for var, ref in sorted(references.items()):
        scheme, sep, target = ref.partition("://")
        if not sep or scheme not in _SECRET_PERMISSION or not target:
            raise SecretError(f"secret {var} ({ref}): only aws-secretsmanager:// and aws-ssm:// references are "
                              "resolved in a job")
        key = None
        if scheme == "aws-secretsmanager" and "#" in target:
            target, key = target.rsplit("#", 1)
        service = "secretsmanager" if scheme == "aws-secretsmanager" else "ssm"
        try:
            client = _secret_client(clients, service, _secret_region(target))
            if service == "ssm":
                values[var] = str(client.get_parameter(Name=_ssm_name(target), WithDecryption=True)["Parameter"]["Value"])
                continue
            answer = client.get_secret_value(SecretId=target)
        except SecretError:
            raise
        except Exception as e:  # botocore errors; their text names the secret, never its value
            raise _secret_failure(var, ref, e) from None
        text = answer.get("SecretString")
        if text is None:
            try:
                text = bytes(answer.get("SecretBinary") or b"").decode("utf-8")
            except UnicodeDecodeError:
                raise SecretError(f"secret {var} ({ref}): a binary secret that is not UTF-8 text") from None
        if key is None:
            values[var] = text
            continue
        try:
            member = json.loads(text)[key]
        except (ValueError, TypeError):  # the error text could quote the secret: say only what is wrong
            raise SecretError(f"secret {var} ({ref}): the secret is not a JSON object, so it has no key '{key}'") from None
        except KeyError:
            raise SecretError(f"secret {var} ({ref}): the JSON secret has no key '{key}'") from None
        values[var] = member if isinstance(member, str) else json.dumps(member)
    return values


def _secret_client(clients: dict[str, Any], service: str, region: str | None) -> Any:
    for key in (f"{service}@{region}", service) if region else (service,):
        if key in clients:
            return clients[key]
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise SecretError(f"resolving {service} secrets needs boto3 in the image (pip install boto3; the SageMaker "
                          "framework images have it)") from None
    key = f"{service}@{region}" if region else service
    clients[key] = boto3.client(service, region_name=region, config=Config(retries={"mode": "standard",
                                                                                   "max_attempts": 5}))
    return clients[key]


def load_secrets(environ: Any = None, clients: dict[str, Any] | None = None) -> list[str]:
    """Resolve ``CLOUDML_SECRETS`` (JSON ``{VAR: reference}``, continued in ``CLOUDML_SECRETS_1``, ``_2``, ...
    when long) into ``environ`` and remove them; returns the names.

    ``environ`` defaults to ``os.environ``: the step's own process (and the command it starts) sees the
    values, nothing else does, and nothing is printed. Raises :class:`SecretError`.

    Example:
        >>> env = {"CLOUDML_SECRETS": "{}", "PATH": "/bin"}
        >>> load_secrets(env), env
        ([], {'PATH': '/bin'})
    """
    import json

    environ = os.environ if environ is None else environ
    keys = sorted(k for k in environ if k == SECRETS_VAR or re.fullmatch(SECRETS_VAR + r"_\d+", k))
    references: dict[str, str] = {}
    for key in keys:
        try:
            chunk = json.loads(environ[key])
            if not isinstance(chunk, dict) or not all(isinstance(v, str) for v in chunk.values()):
                raise ValueError("not an object of strings")
        except ValueError as e:
            raise SecretError(f"{key} is not a JSON object of references: {e}") from None
        references.update(chunk)
    if not keys:
        return []
    values = resolve_secrets(references, clients)
    environ.update(values)
    for key in keys:
        del environ[key]
    return sorted(values)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``python -m cloudml.runtime``). Returns the exit code.

    Example:
        >>> main(["--function", "json:nope"])
        2
    """
    argv = sys.argv[1:] if argv is None else argv
    if SECRETS_VAR in os.environ:  # a SageMaker step's secret references: resolve before anything runs
        try:
            names = load_secrets()
        except SecretError as e:
            print(f"cloudml.runtime: {e}", file=sys.stderr)
            return 2
        print(f"cloudml.runtime: resolved secrets {', '.join(names) or '(none)'}", file=sys.stderr, flush=True)
    if os.environ.get("CLOUDML_TUNING_TRIAL") == "1":  # started by SageMaker's toolkit; its argv is the hyperparameters
        return tuning_trial()
    if argv[:1] == ["--retry"]:
        return retry_command(argv)
    if argv[:1] and argv[0].partition("=")[0] == "--condition":
        return condition_entry(argv)
    if argv[:1] and argv[0].partition("=")[0] == "--guard":
        return guard_entry(argv)
    if argv[:1] and argv[0].partition("=")[0] == "--from-log":
        return from_log_entry(argv)
    if argv[:1] and argv[0].partition("=")[0] == "--register-model":
        return register_entry(argv)
    if argv[:1] and argv[0].partition("=")[0] == "--log-objective":
        return log_objective_entry(argv)
    if any(a in ("-h", "--help") for a in argv):
        print(_USAGE)
        return 0
    try:
        function, code, code_paths, pairs = _parse(argv)
    except RuntimeCallError as e:
        print(f"cloudml.runtime: {e}", file=sys.stderr)
        print(_USAGE, file=sys.stderr)
        return 2
    try:
        func = resolve_function(function, code, code_paths)
        unpack_model_archives(pairs["--input"])
        call_step_function(func, pairs["--input"], pairs["--output"], pairs["--param"], pairs["--output-type"])
    except RuntimeCallError as e:
        print(f"cloudml.runtime: {e}", file=sys.stderr)  # one line: the call is wrong, not its syntax
        return 2
    except Exception:
        import traceback

        traceback.print_exc()
        return 1
    return 0

if __name__ == "__main__":
    # Run by path (``python .../cloudml/runtime.py``), Python puts this folder first on sys.path, where
    # cloudml's own modules (config, testing, ...) would shadow the user's. Take it off again.
    if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
        del sys.path[0]
    raise SystemExit(main())
