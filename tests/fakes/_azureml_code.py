"""Code assets and their blob uploads for the Azure ML fake (what ``jobs.create_or_update`` sends for a
component with a local ``code:`` folder).

Part of tests/fakes/azureml.py (``AzureMLFake.code``). Routes (``{ws}`` is the workspace ARM id):

* ``GET {ws}/codes/{name}/versions?hash=...``: no existing version with that hash (``{"value": []}``);
* ``POST {ws}/codes/{name}/versions/{v}/startPendingUpload``: a temporary blob reference whose SAS URI
  points back at this fake, path style ``/devstoreaccount1/<container>`` (like Azurite);
* ``PUT|GET {ws}/codes/{name}/versions/{v}``: the code version (``codeUri`` must name an uploaded blob
  folder: 400 ``UserError`` otherwise);
* blob service (no bearer token: SAS): ``HEAD`` a blob (404 ``BlobNotFound`` when absent), ``PUT`` a
  block blob (201), ``PUT ?comp=metadata`` (200, as the service answers).

Uploaded files land in :attr:`CodeFake.blobs` (``"<container>/<path>" -> bytes``).
"""

from __future__ import annotations

import json
import threading
import uuid
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote

__all__ = ["BLOB_ACCOUNT", "CodeFake"]

BLOB_ACCOUNT = "devstoreaccount1"
Answer = tuple[int, Any, dict[str, str]]


class CodeFake:
    """Code versions and the blob container files uploaded for them."""

    def __init__(self, owner: Any) -> None:
        self.owner = owner
        self.lock = threading.Lock()
        self.blobs: dict[str, bytes] = {}
        self.metadata: dict[str, dict[str, str]] = {}
        self.versions: dict[str, dict[str, Any]] = {}  # "name/version" -> the PUT body

    def files(self, prefix: str = "") -> dict[str, bytes]:
        """Uploaded files whose ``<container>/<path>`` starts with ``prefix``."""
        with self.lock:
            return {k: v for k, v in self.blobs.items() if k.startswith(prefix)}

    # -- blob service -----------------------------------------------------------------------------------
    def blob(self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str],
             body: bytes) -> Answer | None:
        """A blob request (path ``/devstoreaccount1/<container>/<blob>``), or None when it is not one."""
        prefix = f"/{BLOB_ACCOUNT}/"
        if not path.startswith(prefix):
            return None
        key = unquote(path[len(prefix):])
        stamp = {"ETag": f'"0x{uuid.uuid4().hex[:16].upper()}"', "Last-Modified": formatdate(usegmt=True),
                 "x-ms-version": headers.get("x-ms-version", "2021-08-06")}
        with self.lock:
            if method in ("HEAD", "GET") and "comp" not in query:
                if key not in self.blobs:
                    return 404, None, {"x-ms-error-code": "BlobNotFound"}
                meta = {f"x-ms-meta-{k}": v for k, v in self.metadata.get(key, {}).items()}
                return 200, None, {**stamp, **meta, "x-ms-blob-type": "BlockBlob",
                                   "x-ms-content-length": str(len(self.blobs[key]))}
            if method == "PUT" and query.get("comp") == ["metadata"]:
                if key not in self.blobs:
                    return 404, None, {"x-ms-error-code": "BlobNotFound"}
                self.metadata[key] = {k[len("x-ms-meta-"):]: v for k, v in headers.items()
                                      if k.startswith("x-ms-meta-")}
                return 200, None, stamp
            if method == "PUT" and "comp" not in query:
                self.blobs[key] = body
                self.metadata[key] = {k[len("x-ms-meta-"):]: v for k, v in headers.items()
                                      if k.startswith("x-ms-meta-")}
                return 201, None, {**stamp, "x-ms-request-server-encrypted": "true"}
        return 400, None, {"x-ms-error-code": "UnsupportedHttpVerb"}

    # -- ARM: code versions ---------------------------------------------------------------------------
    def arm(self, method: str, parts: list[str], raw: bytes) -> Answer | None:
        """``{ws}/codes/...`` routes (``parts`` after the workspace), or None when it is not one."""
        if not parts or parts[0] != "codes" or len(parts) < 3 or parts[2] != "versions":
            return None
        name = parts[1]
        if len(parts) == 3 and method == "GET":
            return 200, {"value": []}, {}
        if len(parts) == 5 and parts[4] == "startPendingUpload" and method == "POST":
            container = f"code-{uuid.uuid4().hex[:12]}"
            base = f"{self.owner.url}/{BLOB_ACCOUNT}/{container}"
            return 200, {"blobReferenceForConsumption": {
                "blobUri": base, "storageAccountArmId": None,
                "credential": {"credentialType": "SAS", "sasUri": f"{base}?sv=2021-08-06&sr=c&sig=fake"}},
                "pendingUploadId": uuid.uuid4().hex, "pendingUploadType": "TemporaryBlobReference"}, {}
        if len(parts) == 4:
            key = f"{name}/{parts[3]}"
            ws = self.owner.ws
            with self.lock:
                if method == "PUT":
                    payload = json.loads(raw or b"{}")
                    uri = str(payload.get("properties", {}).get("codeUri", ""))
                    folder = uri.split(f"/{BLOB_ACCOUNT}/", 1)[-1].rstrip("/")
                    if not any(k.startswith(folder + "/") for k in self.blobs):
                        return 400, {"error": {"code": "UserError", "message": f"codeUri {uri} holds no files"}}, {}
                    self.versions[key] = payload
                elif key not in self.versions:
                    return 404, {"error": {"code": "ResourceNotFound", "message": f"code {key} was not found"}}, {}
                stored = self.versions[key]
            from tests.fakes.azureml import _system_data

            return (201 if method == "PUT" else 200), {
                "id": f"{ws}/codes/{name}/versions/{parts[3]}", "name": parts[3], "systemData": _system_data(),
                "properties": stored.get("properties", {})}, {}
        return None
