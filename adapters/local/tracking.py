"""Experiment tracking: log a finished local run to MLflow (parameters, metrics, artifacts, lineage tags).

Enabled with ``local: {tracking: mlflow, mlflow_tracking_uri: ...}`` in cloudml.yaml. The default
URI is ``sqlite:///<root>/mlflow.db`` with artifacts under ``<root>/mlflow-artifacts``: it works
offline. Needs ``pip install 'cloudml[mlflow]'``.

Example:
    >>> from cloudml.adapters.local.tracking import mlflow_params
    >>> mlflow_params({"lr": 0.1}, {"train": {"n": "10"}})
    {'lr': 0.1, 'train.n': '10'}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cloudml.adapters.local.metadata import MetadataStore
from cloudml.errors import AdapterNotInstalledError

__all__ = ["MAX_ARTIFACT_BYTES", "log_run", "mlflow_params"]

MAX_ARTIFACT_BYTES = 50 * 1024 * 1024


def mlflow_params(run_params: dict[str, Any], step_params: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Pipeline parameters plus step parameters prefixed with the step name.

    Example:
        >>> mlflow_params({"seed": 1}, {"train": {"n": 3}})
        {'seed': 1, 'train.n': 3}
    """
    out = dict(run_params)
    for step, values in step_params.items():
        out.update({f"{step}.{k}": v for k, v in values.items()})
    return out


def log_run(meta: MetadataStore, run_id: str, tracking_uri: str, artifact_root: Path) -> str:
    """Log one cloudml run as an MLflow run in the experiment named after the pipeline; returns its id.

    Outputs up to ``MAX_ARTIFACT_BYTES`` are logged as artifacts under ``<step>/<output>``; larger
    ones are recorded as a ``cloudml.artifact.<step>.<output>`` tag holding their SHA-256.

    Example:
        >>> import cloudml, tempfile, pathlib
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> backend = cloudml.get_adapter("local", root=str(root))
        >>> b = cloudml.PipelineBuilder("tracked"); _ = b.add_step("a", command="echo hi")
        >>> run = backend.run(b.build()); run.wait()
        'succeeded'
        >>> mlflow_id = log_run(backend.meta, run.id, f"sqlite:///{root}/mlflow.db", root / "artifacts")
        >>> from mlflow.tracking import MlflowClient
        >>> MlflowClient(f"sqlite:///{root}/mlflow.db").get_run(mlflow_id).data.tags["cloudml.run_id"] == run.id
        True
    """
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise AdapterNotInstalledError("local (mlflow tracking)", "mlflow", ["mlflow"]) from None
    row = meta.get_run(run_id)
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(row["pipeline"])
    if experiment is None:
        artifact_root.mkdir(parents=True, exist_ok=True)
        experiment_id = client.create_experiment(row["pipeline"], artifact_location=artifact_root.as_uri())
    else:
        experiment_id = experiment.experiment_id
    tags = {"cloudml.run_id": run_id, "cloudml.pipeline": row["pipeline"], "cloudml.status": row["status"]}
    mlrun = client.create_run(experiment_id, run_name=run_id, tags=tags)
    rid = mlrun.info.run_id
    for key, value in mlflow_params(row["parameters"], meta.params(run_id)).items():
        client.log_param(rid, key, value)
    for step, values in meta.metrics(run_id).items():
        for key, value in values.items():
            client.log_metric(rid, f"{step}.{key}", value)
    for io in meta.io(run_id, direction="out"):
        path = Path(row["plan"]["steps"][io["step"]]["outputs"][io["name"]]["path"])
        tag = f"cloudml.artifact.{io['step']}.{io['name']}"
        client.set_tag(rid, tag, f"sha256:{io['digest']}")
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0
        if path.is_file():
            client.log_artifact(rid, str(path), artifact_path=f"{io['step']}/{io['name']}")
        elif path.is_dir() and size <= MAX_ARTIFACT_BYTES:
            client.log_artifacts(rid, str(path), artifact_path=f"{io['step']}/{io['name']}")
    status = {"succeeded": "FINISHED", "failed": "FAILED"}.get(row["status"], "KILLED")
    client.set_terminated(rid, status=status)
    return str(rid)
