"""Cloud Storage objects for the Vertex fake: what google-cloud-storage sends for ``blob.exists()``,
``blob.upload_from_string()`` (multipart or media upload) and ``blob.download_as_bytes()``.

Served when ``STORAGE_EMULATOR_HOST`` (or the storage client's ``api_endpoint``) points at the fake;
objects live in ``fake.objects`` as ``{"gs://bucket/name": bytes}``. Rules, as Cloud Storage answers them:
an unknown object is 404; ``ifGenerationMatch=0`` on an existing object is 412 (conditionNotMet).

Example:
    >>> _multipart('multipart/related; boundary="b"', b'--b\\r\\nA: j\\r\\n\\r\\n{"name": "x"}\\r\\n--b\\r\\n'
    ...            b'A: d\\r\\n\\r\\nDATA\\r\\n--b--')
    ({'name': 'x'}, b'DATA')
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any
from urllib.parse import unquote

__all__ = ["serve_object"]

_OBJECT = re.compile(r"^/(upload/)?storage/v1/b/([^/]+)/o(?:/(.+))?$")


def _multipart(content_type: str, raw: bytes) -> tuple[dict[str, Any], bytes]:
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not m:
        return {}, raw
    parts = [p for p in raw.split(b"--" + m.group(1).encode()) if p.strip() not in (b"", b"--")]
    bodies = [p.split(b"\r\n\r\n", 1)[1].removesuffix(b"\r\n") for p in parts]
    return json.loads(bodies[0] or b"{}"), bodies[1] if len(bodies) > 1 else b""


def _resource(bucket: str, name: str, data: bytes) -> dict[str, Any]:
    return {"kind": "storage#object", "id": f"{bucket}/{name}/1", "bucket": bucket, "name": name,
            "generation": "1", "metageneration": "1", "size": str(len(data)),
            "md5Hash": base64.b64encode(hashlib.md5(data).digest()).decode(), "contentType": "application/gzip"}


def serve_object(handler: Any, path: str, query: dict[str, list[str]]) -> bool:
    """Answer an object route on ``handler`` (a fake request handler with ``owner`` and ``_send``).

    Returns False, having read nothing, when ``path`` is not an object route.
    """
    m = _OBJECT.match(path)
    if not m:
        return False
    upload, bucket, name = m.group(1), m.group(2), unquote(m.group(3) or "")
    length = int(handler.headers.get("Content-Length") or 0)
    raw = handler.rfile.read(length) if length else b""
    fake = handler.owner
    with fake._lock:
        objects: dict[str, bytes] = fake.objects
        if upload and handler.command == "POST":
            kind = (query.get("uploadType") or ["media"])[0]
            meta, data = _multipart(handler.headers.get("Content-Type", ""), raw) if kind == "multipart" else ({}, raw)
            name = str(meta.get("name") or (query.get("name") or [""])[0])
            key = f"gs://{bucket}/{name}"
            if query.get("ifGenerationMatch") == ["0"] and key in objects:
                handler._send(412, {"error": {"code": 412, "message": "At least one of the pre-conditions you "
                                              "specified did not hold.", "errors": [{"reason": "conditionNotMet"}]}})
                return True
            objects[key] = data
            handler._send(200, _resource(bucket, name, data))
            return True
        key = f"gs://{bucket}/{name}"
        if handler.command == "GET" and name and key in objects:
            if query.get("alt") == ["media"]:
                data = objects[key]
                handler.send_response(200)
                handler.send_header("Content-Type", "application/octet-stream")
                handler.send_header("Content-Length", str(len(data)))
                handler.end_headers()
                handler.wfile.write(data)
                return True
            handler._send(200, _resource(bucket, name, objects[key]))
            return True
    handler._send(404, {"error": {"code": 404, "message": f"No such object: {bucket}/{name}"}})
    return True
