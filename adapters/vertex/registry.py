"""The Vertex AI Model Registry as cloudml's model registry: groups, versions, approval.

A cloudml model group is one Vertex ``Model`` (display name = the group, label ``cloudml_group``);
each registered version is a Vertex model version uploaded with ``Model.upload(parent_model=...)``,
so Vertex numbers the versions 1, 2, 3... exactly as cloudml does. Approval is the per-version label
``cloudml_approval`` (``pending`` / ``approved`` / ``rejected``); the newest approved version also
carries the version alias ``approved``, so ``models/ID@approved`` names it in the console and in
``gcloud``. Metrics, tags and the producing run travel as JSON in the version description (labels
cannot hold dots or upper case).

Example:
    >>> approval_of({"cloudml_approval": "approved"}), approval_of({})
    ('approved', 'pending')
    >>> describe({"auc": 0.91}, {"team": "Risk"}, "run-1")
    '{"cloudml": {"metrics": {"auc": 0.91}, "tags": {"team": "Risk"}, "run_id": "run-1"}}'
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from cloudml.adapter import ModelVersion
from cloudml.errors import BackendError, BackendValidationError, CloudMLError, NotFoundError

__all__ = ["APPROVAL_LABEL", "APPROVED_ALIAS", "GROUP_LABEL", "VertexRegistry", "approval_of", "describe"]

APPROVAL_LABEL = "cloudml_approval"
GROUP_LABEL = "cloudml_group"
APPROVED_ALIAS = "approved"
UPLOAD_LABEL = "cloudml_upload"
APPROVALS = ("pending", "approved", "rejected")
_HINT = ("`cloudml models list GROUP --backend vertex` shows the versions; check vertex.project and vertex.location "
         "(the console's Vertex AI Model Registry lists models)")


def approval_of(labels: Any) -> str:
    """The neutral approval of a version from its labels (``pending`` when unlabelled).

    Example:
        >>> approval_of({APPROVAL_LABEL: "approved"}), approval_of(None), approval_of({APPROVAL_LABEL: "bogus"})
        ('approved', 'pending', 'pending')
    """
    value = str(dict(labels or {}).get(APPROVAL_LABEL, "pending"))
    return value if value in APPROVALS else "pending"


def describe(metrics: dict[str, Any] | None, tags: dict[str, str] | None, run_id: str | None) -> str:
    """The version description cloudml writes: its metadata as JSON.

    Example:
        >>> describe({"auc": 0.9}, {"team": "risk"}, "run-1")
        '{"cloudml": {"metrics": {"auc": 0.9}, "tags": {"team": "risk"}, "run_id": "run-1"}}'
    """
    return json.dumps({"cloudml": {"metrics": dict(metrics or {}), "tags": dict(tags or {}), "run_id": run_id}})


def _meta(description: str) -> dict[str, Any]:
    try:
        data = json.loads(description or "{}")
    except ValueError:
        return {}
    return dict(data.get("cloudml", {})) if isinstance(data, dict) else {}


def _label_value(text: str) -> str:
    import re

    return re.sub(r"[^a-z0-9_-]", "-", text.lower())[:63]


class VertexRegistry:
    """Model groups and versions over ``aiplatform.Model`` / ``ModelRegistry``; errors are cloudml errors.

    Example:
        >>> from cloudml.adapters.vertex.client import VertexClient
        >>> from cloudml.config import VertexSettings
        >>> VertexRegistry(VertexClient(VertexSettings())).register("churn", "gs://b/model", image="")
        Traceback (most recent call last):
        ...
        cloudml.errors.BackendValidationError: registering on Vertex AI needs the serving image
    """

    def __init__(self, client: Any) -> None:
        self.client = client

    # -- plumbing -----------------------------------------------------------------------------------
    def _sdk(self) -> Any:
        from cloudml.adapters.vertex.client import _LOCK

        aiplatform = self.client._sdk()
        with _LOCK:
            self.client._init(aiplatform)
        return aiplatform

    def _call(self, action: str, fn: Any) -> Any:
        from cloudml.adapters.vertex.client import _LOCK

        def locked() -> Any:
            with _LOCK:  # aiplatform.init is process-global: init and the call happen together
                self.client._init(self.client._sdk())
                return fn()

        try:
            return self.client.call(action, locked)
        except BackendError as e:
            if isinstance(e, NotFoundError):
                e.hint = _HINT
            raise

    def _model_name(self, group: str) -> str | None:
        aiplatform = self._sdk()
        found = self._call(f"find model group {group}", lambda: aiplatform.Model.list(
            filter=f'display_name="{group}"'))
        for m in found:
            if dict(m.labels or {}).get(GROUP_LABEL) == _label_value(group):
                return str(m.resource_name).split("@")[0]
        return None

    def _require(self, group: str) -> str:
        name = self._model_name(group)
        if name is None:
            raise NotFoundError(f"model group '{group}' does not exist on Vertex AI", backend="vertex",
                                hint=f"register a version first: cloudml models register {group} URI --backend vertex")
        return name

    def _version(self, group: str, gca: Any) -> ModelVersion:
        meta = _meta(gca.version_description)
        created = gca.version_create_time
        return ModelVersion(
            group=group, version=int(gca.version_id), uri=str(gca.artifact_uri),
            approval=approval_of(gca.labels),  # type: ignore[arg-type]
            metrics=dict(meta.get("metrics") or {}), run_id=meta.get("run_id"),
            created_at=created if isinstance(created, datetime) else None,
            tags={**dict(meta.get("tags") or {}), "vertex_model": f"{str(gca.name).split('@')[0]}@{gca.version_id}"})

    def _versions_gca(self, name: str) -> list[Any]:
        aiplatform = self._sdk()

        def listing() -> list[Any]:
            registry = aiplatform.models.ModelRegistry(name)
            return list(registry.client.list_model_versions(name=name))

        return sorted(self._call(f"list versions of {name}", listing), key=lambda m: int(m.version_id), reverse=True)

    # -- the registry -------------------------------------------------------------------------------
    def register(self, group: str, uri: str, *, image: str, approval: str = "pending",
                 metrics: dict[str, Any] | None = None, tags: dict[str, str] | None = None,
                 run_id: str | None = None, aliases: list[str] | None = None) -> ModelVersion:
        """Upload ``uri`` (a gs:// model folder) served by ``image`` as the next version of ``group``.

        Example: see :class:`VertexRegistry` (the image is checked before any request).
        """
        if not image:
            raise BackendValidationError("registering on Vertex AI needs the serving image", backend="vertex",
                                         hint="pass image=..., e.g. a prebuilt one such as "
                                              "us-docker.pkg.dev/vertex-ai/prediction/sklearn-cpu.1-3:latest")
        if approval not in APPROVALS:
            raise CloudMLError(f"approval must be pending, approved or rejected, not {approval!r}")
        parent = self._model_name(group)
        aiplatform = self._sdk()
        token = uuid.uuid4().hex  # makes a retried upload idempotent: the retry finds the version it made
        labels = {GROUP_LABEL: _label_value(group), APPROVAL_LABEL: approval, UPLOAD_LABEL: token}
        attempts = [0]

        def upload() -> tuple[str, int]:
            attempts[0] += 1
            if attempts[0] > 1:  # an earlier attempt may have landed before its answer was lost
                landed = self._find_upload(group, token)
                if landed is not None:
                    return landed
            model = aiplatform.Model.upload(
                display_name=group, artifact_uri=uri, serving_container_image_uri=image, parent_model=parent,
                is_default_version=True, version_aliases=list(aliases or []) or None, labels=labels,
                version_description=describe(metrics, tags, run_id), sync=True)
            return str(model.resource_name).split("@")[0], int(model.version_id)

        name, version = self._call(f"register a version of {group}", upload)
        if approval == "approved":
            self._move_alias(name, version)
        return self.get(group, version, name)

    def _find_upload(self, group: str, token: str) -> tuple[str, int] | None:
        """The (model, version) an upload labelled ``token`` created, if any (called inside a locked call)."""
        aiplatform = self.client._sdk()
        for m in aiplatform.Model.list(filter=f'display_name="{group}"'):
            name = str(m.resource_name).split("@")[0]
            registry = aiplatform.models.ModelRegistry(name)
            for v in registry.client.list_model_versions(request={"name": name,
                                                                  "filter": f'labels.{UPLOAD_LABEL}="{token}"'}):
                return name, int(v.version_id)
        return None

    def get(self, group: str, version: int, name: str | None = None) -> ModelVersion:
        """One version of a group (NotFoundError, with the next step, when it does not exist).

        Example: ``registry.get("churn", 2).approval`` -> ``'pending'``.
        """
        name = name or self._require(group)
        for gca in self._versions_gca(name):
            if int(gca.version_id) == version:
                return self._version(group, gca)
        raise NotFoundError(f"model {group} v{version} does not exist on Vertex AI", backend="vertex", hint=_HINT)

    def versions(self, group: str | None = None) -> list[ModelVersion]:
        """Versions of ``group`` (every cloudml group when None), newest first within each group.

        Example: ``[m.version for m in registry.versions("churn")]`` -> ``[2, 1]``.
        """
        if group is not None:
            name = self._model_name(group)
            return [] if name is None else [self._version(group, g) for g in self._versions_gca(name)]
        aiplatform = self._sdk()
        models = self._call("list model groups", lambda: aiplatform.Model.list(filter=f"labels.{GROUP_LABEL}:*"))
        out: list[ModelVersion] = []
        for m in sorted(models, key=lambda m: str(m.display_name)):
            if GROUP_LABEL in dict(m.labels or {}):
                out += [self._version(str(m.display_name), g)
                        for g in self._versions_gca(str(m.resource_name).split("@")[0])]
        return out

    def set_approval(self, group: str, version: int, approval: str) -> ModelVersion:
        """Label a version approved, rejected or pending; the ``approved`` alias follows the newest approved.

        Example: ``registry.set_approval("churn", 2, "approved").approval`` -> ``'approved'``.
        """
        if approval not in APPROVALS:
            raise CloudMLError(f"approval must be pending, approved or rejected, not {approval!r}")
        name = self._require(group)
        current = self.get(group, version, name)
        aiplatform = self._sdk()
        gca = next(g for g in self._versions_gca(name) if int(g.version_id) == version)
        labels = {**dict(gca.labels or {}), APPROVAL_LABEL: approval}

        def update() -> Any:  # UpdateModel targets one version when model.name carries "@<version>"
            from google.protobuf import field_mask_pb2

            model = type(gca)(name=f"{name}@{version}", labels=labels)
            return aiplatform.models.ModelRegistry(name).client.update_model(
                model=model, update_mask=field_mask_pb2.FieldMask(paths=["labels"]))

        self._call(f"set approval of {group} v{version}", update)
        if approval == "approved" or current.approval == "approved":
            self._move_alias(name)
        return self.get(group, version, name)

    def _move_alias(self, name: str, newest: int | None = None) -> None:
        """Put the ``approved`` alias on the newest approved version (and only there)."""
        aiplatform = self._sdk()
        versions = self._versions_gca(name)
        approved = [int(g.version_id) for g in versions if approval_of(g.labels) == "approved"]
        target = max(approved) if approved else None
        registry = aiplatform.models.ModelRegistry(name)
        for g in versions:
            if APPROVED_ALIAS in list(g.version_aliases) and int(g.version_id) != target:
                self._call("move the approved alias", lambda g=g: registry.remove_version_aliases(
                    [APPROVED_ALIAS], str(g.version_id)))
        if target is not None and not any(
                APPROVED_ALIAS in list(g.version_aliases) for g in versions if int(g.version_id) == target):
            self._call("move the approved alias", lambda: registry.add_version_aliases([APPROVED_ALIAS], str(target)))

    def latest_approved(self, group: str) -> ModelVersion:
        """The newest approved version of ``group``.

        Example: ``registry.latest_approved("churn").version`` -> ``2``.
        """
        for m in self.versions(group):
            if m.approval == "approved":
                return m
        raise NotFoundError(f"model group '{group}' has no approved version on Vertex AI", backend="vertex",
                            hint=f"approve one: cloudml models approve {group} VERSION --backend vertex")

    def resolve(self, group: str, version: int | str) -> ModelVersion:
        """A version by number, ``latest`` or ``latest-approved``.

        Example: ``registry.resolve("churn", "latest").version`` -> ``2``.
        """
        if version == "latest-approved":
            return self.latest_approved(group)
        if version == "latest":
            found = self.versions(group)
            if not found:
                raise NotFoundError(f"model group '{group}' has no versions on Vertex AI", backend="vertex",
                                    hint=f"cloudml models register {group} URI --backend vertex")
            return found[0]
        return self.get(group, int(version))
