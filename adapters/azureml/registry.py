"""The Azure ML model registry as cloudml's registry: versions, approval tags, latest approved.

A cloudml model group is an Azure ML model name and a cloudml version is the Azure ML version number
(``"1"``, ``"2"``, ...; versions that are not numbers are skipped). Azure ML has no approval status, so
cloudml keeps it in the tag ``cloudml.approval`` (``pending``, ``approved`` or ``rejected``), which is
the one field besides the description that an existing version lets a PUT change. Metrics go into the
version's immutable ``properties`` as ``cloudml.metric.<name>``, the producing run as ``cloudml.run_id``.

Every call goes through :meth:`AzureMLClient.call`, so Azure errors arrive as cloudml errors.

Example:
    >>> approval_tags({"team": "churn"}, "approved")
    {'team': 'churn', 'cloudml.approval': 'approved'}
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from cloudml.adapter import ModelVersion
from cloudml.errors import BackendValidationError, ConflictError, NotFoundError

__all__ = [
    "APPROVALS",
    "APPROVAL_TAG",
    "MODEL_TYPES",
    "approval_tags",
    "latest_approved",
    "list_models",
    "register_model",
    "resolve_model",
    "set_approval",
    "to_model_version",
]

APPROVAL_TAG = "cloudml.approval"
APPROVALS = ("pending", "approved", "rejected")
MODEL_TYPES = ("custom_model", "mlflow_model", "triton_model")
_METRIC = "cloudml.metric."
_RUN = "cloudml.run_id"


def _check_approval(approval: str) -> None:
    if approval not in APPROVALS:
        raise BackendValidationError(f"approval must be pending, approved or rejected, not {approval!r}",
                                     backend="azureml", hint="cloudml models approve GROUP VERSION")


def approval_tags(tags: dict[str, str] | None, approval: str) -> dict[str, str]:
    """The version's tags with cloudml's approval tag set.

    Example:
        >>> approval_tags(None, "pending")
        {'cloudml.approval': 'pending'}
    """
    _check_approval(approval)
    return {**(tags or {}), APPROVAL_TAG: approval}


def to_model_version(model: Any) -> ModelVersion:
    """An azure-ai-ml ``Model`` as a neutral :class:`ModelVersion`.

    Example:
        >>> from types import SimpleNamespace as NS
        >>> m = NS(name="churn", version="3", path="azureml://datastores/ws/paths/m/", creation_context=None,
        ...        tags={"cloudml.approval": "approved", "team": "a"}, properties={"cloudml.metric.auc": "0.9"})
        >>> v = to_model_version(m)
        >>> (v.group, v.version, v.approval, v.metrics, v.tags)
        ('churn', 3, 'approved', {'auc': 0.9}, {'team': 'a'})
    """
    tags = dict(model.tags or {})
    props = dict(model.properties or {})
    approval = tags.pop(APPROVAL_TAG, "pending")
    metrics: dict[str, Any] = {}
    for key, value in props.items():
        if key.startswith(_METRIC):
            with contextlib.suppress(TypeError, ValueError):  # a number, or not a metric cloudml wrote
                metrics[key[len(_METRIC):]] = float(value)
    created = getattr(getattr(model, "creation_context", None), "created_at", None)
    return ModelVersion(group=str(model.name), version=int(model.version), uri=str(model.path or ""),
                        approval=approval if approval in APPROVALS else "pending",
                        metrics=metrics, run_id=props.get(_RUN), tags=tags,
                        created_at=created if isinstance(created, datetime) else None)


def _versions(client: Any, group: str) -> list[Any]:
    """Every numbered version of ``group`` (azure-ai-ml ``Model`` objects), newest first; [] when none."""
    try:
        found = client.call("models.list", lambda ml: list(ml.models.list(name=group)))
    except NotFoundError:
        return []
    return sorted((m for m in found if str(m.version).isdigit()), key=lambda m: int(m.version), reverse=True)


def register_model(client: Any, group: str, uri: str, *, approval: str = "pending",
                   metrics: dict[str, Any] | None = None, tags: dict[str, str] | None = None,
                   description: str | None = None, run_id: str | None = None,
                   model_type: str = "custom_model") -> ModelVersion:
    """Register ``uri`` as the next version of ``group`` (``models.create_or_update``).

    ``uri`` is anything Azure ML takes as a model path: ``azureml://datastores/<ds>/paths/<p>``, a job
    output (``azureml://jobs/<job>/outputs/<out>``), an https blob URL, or a local folder (uploaded).
    ``model_type`` is ``custom_model`` (deployments need an environment and a scoring script),
    ``mlflow_model`` (deploys without code) or ``triton_model``.

    Example:
        >>> register_model(client, "churn", "azureml://datastores/workspaceblobstore/paths/churn/",
        ...                approval="approved", metrics={"auc": 0.91})  # doctest: +SKIP
        ModelVersion(group='churn', version=1, uri='azureml://...', approval='approved', ...)
    """
    from azure.ai.ml.entities import Model

    if model_type not in MODEL_TYPES:
        raise BackendValidationError(f"model type must be one of {', '.join(MODEL_TYPES)}, not {model_type!r}",
                                     backend="azureml", hint="pass type='mlflow_model' for an MLflow model folder")
    full_tags = approval_tags(tags, approval)
    bad = sorted(k for k, v in (metrics or {}).items() if isinstance(v, bool) or not isinstance(v, int | float))
    if bad:
        raise BackendValidationError(f"model metrics are numbers; {', '.join(bad)} is not", backend="azureml",
                                     hint="put other facts about the model in tags")
    props = {f"{_METRIC}{k}": str(v) for k, v in (metrics or {}).items()}
    if run_id:
        props[_RUN] = run_id
    for _attempt in range(3):  # another writer may take the version number first
        versions = _versions(client, group)
        number = int(versions[0].version) + 1 if versions else 1
        model = Model(name=group, version=str(number), path=uri, type=model_type, tags=full_tags,
                      properties=props, description=description)
        try:
            created = client.call("models.create_or_update", lambda ml, m=model: ml.models.create_or_update(m))
        except ConflictError:
            continue
        return to_model_version(created)
    raise ConflictError(f"could not register a new version of {group}: other writers kept taking the number",
                        backend="azureml", hint="try again")


def list_models(client: Any, group: str | None = None) -> list[ModelVersion]:
    """Registered versions, newest first within each group (every group when ``group`` is None).

    Example:
        >>> [(m.group, m.version) for m in list_models(client, "churn")]  # doctest: +SKIP
        [('churn', 2), ('churn', 1)]
    """
    if group is not None:
        return [to_model_version(m) for m in _versions(client, group)]
    names = sorted({str(c.name) for c in client.call("models.list", lambda ml: list(ml.models.list()))})
    return [to_model_version(m) for name in names for m in _versions(client, name)]


def _get(client: Any, group: str, version: int) -> Any:
    try:
        return client.call("models.get", lambda ml: ml.models.get(group, str(version)))
    except NotFoundError as e:
        raise NotFoundError(f"model {group} v{version} does not exist in workspace {client.workspace}",
                            backend="azureml", vendor_code=e.vendor_code,
                            hint=f"cloudml models list {group} --backend azureml") from e


def set_approval(client: Any, group: str, version: int, approval: str) -> ModelVersion:
    """Approve, reject or reset a version to pending (rewrites the ``cloudml.approval`` tag).

    Example:
        >>> set_approval(client, "churn", 2, "approved").approval  # doctest: +SKIP
        'approved'
    """
    _check_approval(approval)
    model = _get(client, group, version)
    model.tags = approval_tags(dict(model.tags or {}), approval)
    return to_model_version(client.call("models.create_or_update", lambda ml: ml.models.create_or_update(model)))


def latest_approved(client: Any, group: str) -> ModelVersion:
    """The newest version of ``group`` tagged approved; NotFoundError naming the next step otherwise.

    Example:
        >>> latest_approved(client, "churn").version  # doctest: +SKIP
        2
    """
    for model in _versions(client, group):
        if (model.tags or {}).get(APPROVAL_TAG) == "approved":
            return to_model_version(model)
    raise NotFoundError(f"model group '{group}' has no approved version in workspace {client.workspace}",
                        backend="azureml", hint=f"approve one: cloudml models approve {group} VERSION --backend azureml")


def resolve_model(client: Any, group: str, version: int | str) -> ModelVersion:
    """A version by number, ``latest`` or ``latest-approved`` (what a Deployment's model names).

    Example:
        >>> resolve_model(client, "churn", "latest").version  # doctest: +SKIP
        3
    """
    if version == "latest-approved":
        return latest_approved(client, group)
    if version == "latest":
        versions = _versions(client, group)
        if not versions:
            raise NotFoundError(f"model group '{group}' has no versions in workspace {client.workspace}",
                                backend="azureml", hint="register one with register_model() or a pipeline's register step")
        return to_model_version(versions[0])
    return to_model_version(_get(client, group, int(version)))
