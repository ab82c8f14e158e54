"""Code bundles for Vertex AI steps: a content-addressed ``.tar.gz`` of a step's code folder plus cloudml's
runtime entry point, stored at ``<pipeline root>/cloudml/code/<sha256>.tar.gz``.

The compiler only names the bundle (it computes the digest from the files, no upload); the client builds
and uploads it at submit time, skipping a bundle that is already there. The archive is deterministic
(sorted members, zero mtimes and owners), so the same folder always gives the same bytes.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "job.py").write_text("def run(): return {}")
    >>> code_digest(d) == code_digest(d), len(code_digest(d))
    (True, 64)
    >>> sorted(members(build_bundle(d)))
    ['cloudml_runtime.py', 'job.py']
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

__all__ = ["CODE_PREFIX", "NO_CODE", "RUNTIME_FILE", "build_bundle", "bundle_uri", "code_digest", "code_files",
           "members"]

RUNTIME_FILE = "cloudml_runtime.py"
CODE_PREFIX = "cloudml/code"
NO_CODE = Path("/nonexistent-cloudml-code")  # the bundle of a python step with no code folder: the runtime only


def code_files(folder: Path) -> list[Path]:
    """The files a bundle holds from ``folder`` (sorted; ``__pycache__`` and ``.git`` left out).

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "train.py").write_text("x = 1")
        >>> (d / "__pycache__").mkdir(); _ = (d / "__pycache__" / "train.pyc").write_bytes(b"")
        >>> [p.name for p in code_files(d)]
        ['train.py']
    """
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and not {"__pycache__", ".git"} & set(p.parts))


def _runtime_source() -> bytes:
    import cloudml.runtime

    return Path(cloudml.runtime.__file__).read_bytes()


def code_digest(folder: Path) -> str:
    """SHA-256 over the folder's files (relative path + content) and cloudml's runtime entry point.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "train.py").write_text("x = 1")
        >>> before = code_digest(d); _ = (d / "train.py").write_text("x = 2")
        >>> len(before), before != code_digest(d)
        (64, True)
    """
    h = hashlib.sha256(b"cloudml-vertex-code-v1\n")
    for f in code_files(folder):
        h.update(f"{f.relative_to(folder).as_posix()}\0".encode() + hashlib.sha256(f.read_bytes()).digest())
    h.update(f"{RUNTIME_FILE}\0".encode() + hashlib.sha256(_runtime_source()).digest())
    return h.hexdigest()


def bundle_uri(root: str, digest: str) -> str:
    """Where a bundle lives under a pipeline root (a ``gs://`` URI or a KFP placeholder).

    Example:
        >>> bundle_uri("gs://b/root/", "ab12")
        'gs://b/root/cloudml/code/ab12.tar.gz'
    """
    return f"{root.rstrip('/')}/{CODE_PREFIX}/{digest}.tar.gz"


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uid, info.gid = len(data), 0, 0o644, 0, 0
    tar.addfile(info, io.BytesIO(data))


def build_bundle(folder: Path) -> bytes:
    """The ``.tar.gz`` bytes of a bundle (deterministic for the same files).

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "train.py").write_text("x = 1")
        >>> build_bundle(d) == build_bundle(d)
        True
    """
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for f in code_files(folder):
            rel = f.relative_to(folder).as_posix()
            if rel != RUNTIME_FILE:
                _add(tar, rel, f.read_bytes())
        _add(tar, RUNTIME_FILE, _runtime_source())
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def members(bundle: bytes) -> dict[str, bytes]:
    """The files in a bundle, by name (for tests and debugging).

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "train.py").write_text("x = 1")
        >>> sorted(members(build_bundle(d)))
        ['cloudml_runtime.py', 'train.py']
    """
    with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
