"""cloudml code that runs inside a Vertex AI pipeline task (in ``backend_options.vertex.runtime_image``, which has
``cloudml[gcp]``): the pick of a tuning step's best trial.

    python3 -m cloudml.adapters.vertex.in_job --best-trial <gcp_resources JSON> --objective OUTPUT.KEY
        --goal maximize|minimize [--output NAME=PATH]... [--output-type NAME=TYPE]...
        [--api-endpoint URL] [--gcs-mount DIR]

It reads the HyperparameterTuningJob that GCPC's launcher wrote into its ``gcp_resources`` output
(``{"resources": [{"resourceType": "HyperparameterTuningJob", "resourceUri": "https://<location>-aiplatform
.googleapis.com/v1/projects/.../hyperparameterTuningJobs/<id>"}]}``), picks the best ``SUCCEEDED`` trial by the
objective (its ``final_measurement`` value of ``metric_id`` OUTPUT.KEY; ties go to the earlier trial), and
copies that trial's outputs (``<base_output_directory>/<trial id>/cloudml/outputs/<name>``, read through the
Cloud Storage FUSE mount ``/gcs/``) to the task's output paths. The objective's metrics output gets a
``tuning`` key: ``{"best_trial", "best_objective", "params", "trials", "succeeded_trials", "failed_trials"}``.
One line per trial is printed. Exit codes: 0 copied, 1 no usable trial or a missing output, 2 the call is wrong.

``--api-endpoint`` (or ``CLOUDML_VERTEX_API_ENDPOINT``) points the client elsewhere, e.g. at the tests'
fake (an ``http://`` endpoint uses the REST transport and anonymous credentials); ``--gcs-mount`` replaces
``/gcs`` (tests).

Example:
    >>> job = {"study_spec": {"metrics": [{"metric_id": "m.auc", "goal": "MAXIMIZE"}]}, "trials": [
    ...     {"id": "1", "state": "SUCCEEDED", "final_measurement": {"metrics": [{"metric_id": "m.auc", "value": 0.7}]}},
    ...     {"id": "2", "state": "SUCCEEDED", "final_measurement": {"metrics": [{"metric_id": "m.auc", "value": 0.9}]}},
    ...     {"id": "3", "state": "INFEASIBLE"}]}
    >>> best_trial(job, "m.auc", "maximize")["id"]
    '2'
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

__all__ = ["best_trial", "copy_outputs", "main", "objective_of", "parse_gcp_resources", "trial_folder"]

_RESOURCE = re.compile(r"^https://(?P<host>[^/]+)/v1/(?P<name>projects/[^/]+/locations/[^/]+/"
                       r"hyperparameterTuningJobs/[^/]+)$")
OUTPUTS_DIR = "cloudml/outputs"  # as adapters/vertex/tuning.py's TRIAL writes them


class InJobError(Exception):
    """The call is wrong (exit 2) or the job gives nothing to copy (exit 1)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def parse_gcp_resources(text: str) -> tuple[str, str]:
    """(API host, job resource name) from the launcher's ``gcp_resources`` JSON.

    Example:
        >>> parse_gcp_resources('{"resources": [{"resourceType": "HyperparameterTuningJob", "resourceUri": '
        ...     '"https://europe-west4-aiplatform.googleapis.com/v1/projects/p/locations/europe-west4/'
        ...     'hyperparameterTuningJobs/123"}]}')
        ('europe-west4-aiplatform.googleapis.com', 'projects/p/locations/europe-west4/hyperparameterTuningJobs/123')
    """
    try:
        resources = json.loads(text)["resources"]
        uri = next(r for r in resources if r.get("resourceType") in ("HyperparameterTuningJob", None))["resourceUri"]
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, StopIteration) as e:
        raise InJobError(f"--best-trial: not the gcp_resources of a tuning job: {text[:200]!r} ({e!r})", 2) from None
    m = _RESOURCE.match(uri)
    if not m:
        raise InJobError(f"--best-trial: {uri!r} is not a HyperparameterTuningJob resource URI", 2)
    return m["host"], m["name"]


def objective_of(trial: dict[str, Any], metric: str) -> float | None:
    """A trial's final objective value, or None when it has none (or it is not finite).

    Example:
        >>> objective_of({"final_measurement": {"metrics": [{"metric_id": "m.a", "value": 0.5}]}}, "m.a")
        0.5
    """
    for m in (trial.get("final_measurement") or {}).get("metrics") or []:
        if m.get("metric_id") == metric:
            try:
                value = float(m.get("value", 0.0))
            except (TypeError, ValueError):
                return None
            return value if math.isfinite(value) else None
    return None


def best_trial(job: dict[str, Any], metric: str, goal: str) -> dict[str, Any] | None:
    """The best succeeded trial of a job (snake_case dict, as proto-plus ``to_dict`` gives it), or None.

    Example:
        >>> t = lambda i, v: {"id": i, "state": "SUCCEEDED", "final_measurement": {"metrics": [
        ...     {"metric_id": "m.loss", "value": v}]}}
        >>> best_trial({"trials": [t("1", 0.3), t("2", 0.1), t("3", 0.1)]}, "m.loss", "minimize")["id"]
        '2'
    """
    scored = [(objective_of(t, metric), i, t) for i, t in enumerate(job.get("trials") or [])
              if t.get("state") == "SUCCEEDED"]
    usable = [(v, i, t) for v, i, t in scored if v is not None]
    if not usable:
        return None
    sign = -1.0 if goal == "maximize" else 1.0
    best: dict[str, Any] = min(usable, key=lambda x: (sign * x[0], x[1]))[2]
    return best


def trial_folder(job: dict[str, Any], trial: dict[str, Any], mount: str = "/gcs") -> Path:
    """Where a trial's outputs are, through the Cloud Storage FUSE mount.

    Example:
        >>> job = {"trial_job_spec": {"base_output_directory": {"output_uri_prefix": "gs://b/root/tune/"}}}
        >>> trial_folder(job, {"id": "7"}).as_posix()
        '/gcs/b/root/tune/7/cloudml/outputs'
    """
    prefix = (((job.get("trial_job_spec") or {}).get("base_output_directory") or {}).get("output_uri_prefix") or "")
    if not prefix.startswith("gs://"):
        raise InJobError(f"the tuning job's base_output_directory is {prefix!r}, not a gs:// folder")
    return Path(mount) / prefix[len("gs://"):].strip("/") / str(trial["id"]) / OUTPUTS_DIR


def copy_outputs(source: Path, outputs: dict[str, str]) -> None:
    """Copy each ``source/<name>`` (a file or a folder) to ``outputs[name]``.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()); (d / "src" / "model").mkdir(parents=True)
        >>> _ = (d / "src" / "model" / "m.bin").write_text("x")
        >>> copy_outputs(d / "src", {"model": str(d / "out" / "model")}); (d / "out" / "model" / "m.bin").read_text()
        'x'
    """
    for name, dest in outputs.items():
        src, target = source / name, Path(dest)
        if src.is_dir():
            shutil.copytree(src, target, dirs_exist_ok=True)
        elif src.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
        else:
            raise InJobError(f"the best trial wrote no output '{name}' (looked for {src}); the step's command must "
                             f"write every declared output (see the trial's logs in the Vertex AI console)")


def _fetch_job(name: str, host: str, endpoint: str | None = None) -> dict[str, Any]:
    """GET the job through google-cloud-aiplatform's ``JobServiceClient``; the resource as a snake_case dict.

    Example: ``_fetch_job("projects/p/locations/l/hyperparameterTuningJobs/1", "l-aiplatform.googleapis.com")``.
    """
    from google.cloud import aiplatform_v1

    target = endpoint or host
    options: dict[str, Any] = {"client_options": {"api_endpoint": target}}
    if target.startswith("http://"):  # a local fake: REST, no credentials
        from google.auth.credentials import AnonymousCredentials

        options.update(transport="rest", credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
    client = aiplatform_v1.JobServiceClient(**options)
    job = client.get_hyperparameter_tuning_job(name=name)
    return dict(type(job).to_dict(job, use_integers_for_enums=False))


def _summary(job: dict[str, Any], best: dict[str, Any], metric: str) -> dict[str, Any]:
    trials = job.get("trials") or []
    succeeded = [t for t in trials if t.get("state") == "SUCCEEDED" and objective_of(t, metric) is not None]
    return {"best_trial": str(best["id"]), "best_objective": objective_of(best, metric),
            "params": {p.get("parameter_id"): p.get("value") for p in best.get("parameters") or []},
            "trials": len(trials), "succeeded_trials": len(succeeded), "failed_trials": len(trials) - len(succeeded)}


def _record(path: Path, summary: dict[str, Any]) -> None:
    """Add the tuning summary to the objective's metrics output (a JSON file, or a folder's metrics.json)."""
    target = path / "metrics.json" if path.is_dir() else path
    try:
        data = json.loads(target.read_text())
    except (OSError, ValueError) as e:
        raise InJobError(f"the best trial's metrics output {target} is not JSON: {e}") from None
    if isinstance(data, dict):
        data["tuning"] = summary
        target.write_text(json.dumps(data, sort_keys=True))


def _parse(argv: list[str]) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    single = ("--best-trial", "--objective", "--goal", "--api-endpoint", "--gcs-mount")
    one: dict[str, str] = {}
    pairs: dict[str, dict[str, str]] = {"--output": {}, "--output-type": {}}
    i = 0
    while i < len(argv):
        flag, eq, value = argv[i].partition("=")
        if not eq:
            if i + 1 >= len(argv):
                raise InJobError(f"{flag} needs a value", 2)
            value, i = argv[i + 1], i + 1
        i += 1
        if flag in single:
            one[flag] = value
        elif flag in pairs and "=" in value:
            k, v = value.split("=", 1)
            pairs[flag][k] = v
        else:
            raise InJobError(f"unknown argument {flag!r}", 2)
    for flag in ("--best-trial", "--objective", "--goal"):
        if flag not in one:
            raise InJobError(f"{flag} is required", 2)
    if one["--goal"] not in ("maximize", "minimize"):
        raise InJobError(f"--goal {one['--goal']}: expected maximize or minimize", 2)
    return one, pairs


def run_best_trial(argv: list[str], job: dict[str, Any] | None = None) -> int:
    """The ``--best-trial`` entry (``job`` given: skip the fetch, for tests). Returns the exit code.

    Example:
        >>> run_best_trial(["--objective", "m.auc"])  # the reason goes to stderr
        2
    """
    try:
        one, pairs = _parse(argv)
        metric, goal = one["--objective"], one["--goal"]
        host, name = parse_gcp_resources(one["--best-trial"])
        if job is None:
            job = _fetch_job(name, host, one.get("--api-endpoint") or os.environ.get("CLOUDML_VERTEX_API_ENDPOINT"))
        for t in job.get("trials") or []:
            values = {p.get("parameter_id"): p.get("value") for p in t.get("parameters") or []}
            print(f"cloudml: trial {t.get('id')} {str(t.get('state', '')).lower()} "
                  f"objective={objective_of(t, metric)} {values}", flush=True)
        best = best_trial(job, metric, goal)
        if best is None:
            raise InJobError(f"no trial of {name} succeeded with a finite {metric}; see the trials above and each "
                             "trial's logs in the Vertex AI console (Training > Hyperparameter tuning jobs)")
        copy_outputs(trial_folder(job, best, one.get("--gcs-mount", "/gcs")), pairs["--output"])
        summary = _summary(job, best, metric)
        output = metric.split(".", 1)[0]
        if output in pairs["--output"]:
            _record(Path(pairs["--output"][output]), summary)
        print(f"cloudml: best trial {best['id']}: {metric}={summary['best_objective']} {summary['params']}", flush=True)
        return 0
    except InJobError as e:
        step = os.environ.get("CLOUDML_STEP")
        print(f"cloudml: {f'step {step!r}: ' if step else ''}{e}", file=sys.stderr)
        return e.code


def main(argv: list[str] | None = None) -> int:
    """Dispatch on the first flag (only ``--best-trial`` today).

    Example:
        >>> main(["--nope"])
        cloudml.adapters.vertex.in_job: usage: --best-trial GCP_RESOURCES --objective OUTPUT.KEY --goal GOAL ...
        2
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or not args[0].startswith("--best-trial"):
        print("cloudml.adapters.vertex.in_job: usage: --best-trial GCP_RESOURCES --objective OUTPUT.KEY --goal GOAL ...")
        return 2
    return run_best_trial(args)


if __name__ == "__main__":
    raise SystemExit(main())
