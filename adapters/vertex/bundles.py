"""Code bundles for Vertex AI steps: the shared :class:`cloudml.codebundle.CodeBundle` (a step's code folder,
its ``code_paths`` folders under ``_cloudml_paths/`` and cloudml's runtime entry point) as a content-addressed
``.tar.gz`` at ``<pipeline root>/cloudml/code/<sha256>.tar.gz``.

The compiler only names the bundle (it computes the digest from the files, no upload); the client builds
and uploads it at submit time, skipping a bundle that is already there. The archive is deterministic
(sorted members, zero mtimes and owners), so the same folders always give the same bytes. Every function
here takes a folder (the step's code folder, no ``code_paths``) or a whole :class:`CodeBundle`.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "job.py").write_text("def run(): return {}")
    >>> code_digest(d) == code_digest(CodeBundle(d)), len(code_digest(d))
    (True, 64)
    >>> sorted(members(build_bundle(d)))
    ['cloudml_runtime.py', 'job.py']
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from cloudml.codebundle import NO_CODE, RUNTIME_FILE, CodeBundle

__all__ = ["CODE_PREFIX", "NO_CODE", "RUNTIME_FILE", "CodeBundle", "build_bundle", "bundle_uri", "code_digest",
           "code_files", "members"]

CODE_PREFIX = "cloudml/code"
_SALT = "cloudml-vertex-code-v2"  # v2: the shared CodeBundle layout (code_paths under _cloudml_paths/)


def _bundle(source: Path | CodeBundle) -> CodeBundle:
    return source if isinstance(source, CodeBundle) else CodeBundle(Path(source))


def code_files(source: Path | CodeBundle) -> list[str]:
    """The names a bundle holds (sorted; ``__pycache__``, ``.git`` and ``*.pyc`` left out; the runtime included).

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "train.py").write_text("x = 1")
        >>> (d / "__pycache__").mkdir(); _ = (d / "__pycache__" / "train.pyc").write_bytes(b"")
        >>> code_files(d)
        ['cloudml_runtime.py', 'train.py']
    """
    return [name for name, _ in _bundle(source).files()]


def code_digest(source: Path | CodeBundle) -> str:
    """SHA-256 over the bundle's members (name + content), cloudml's runtime entry point included.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "train.py").write_text("x = 1")
        >>> before = code_digest(d); _ = (d / "train.py").write_text("x = 2")
        >>> len(before), before != code_digest(d)
        (64, True)
    """
    return _bundle(source).digest(_SALT)


def bundle_uri(root: str, digest: str) -> str:
    """Where a bundle lives under a pipeline root (a ``gs://`` URI or a KFP placeholder).

    Example:
        >>> bundle_uri("gs://b/root/", "ab12")
        'gs://b/root/cloudml/code/ab12.tar.gz'
    """
    return f"{root.rstrip('/')}/{CODE_PREFIX}/{digest}.tar.gz"


def build_bundle(source: Path | CodeBundle) -> bytes:
    """The ``.tar.gz`` bytes of a bundle (deterministic for the same files).

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "train.py").write_text("x = 1")
        >>> build_bundle(d) == build_bundle(d)
        True
    """
    return _bundle(source).tar_gz()


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
