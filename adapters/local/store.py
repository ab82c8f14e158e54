"""Content-addressed artifact store: every file or folder is kept once, by its SHA-256, never overwritten.

Objects live under ``<root>/objects/<aa>/<digest>`` (a file, or a folder for folder artifacts).
Writes go to ``<root>/tmp`` first, are fsynced, then renamed into place, so a crash at any moment
leaves either nothing or a complete object. A folder's digest covers its relative paths and the
digests of its files, so the same content always gets the same address.

Example:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> src = root / "data.csv"; _ = src.write_text("a,b\\n1,2\\n")
    >>> store = ArtifactStore(root / "store")
    >>> ref = store.put(src)
    >>> ref.kind, ref.size, store.path(ref.digest).read_text()
    ('file', 8, 'a,b\\n1,2\\n')
    >>> store.put(src) == ref
    True
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cloudml.errors import ArtifactError

__all__ = ["ArtifactRef", "ArtifactStore", "digest_path"]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ArtifactRef:
    """A stored artifact: its SHA-256, whether it is a file or a folder, and its size in bytes."""

    digest: str
    kind: Literal["file", "dir"]
    size: int


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def digest_path(path: Path) -> tuple[str, Literal["file", "dir"], int]:
    """SHA-256 of a file, or of a folder's (relative path, file digest) listing; plus kind and size.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "x").write_text("1")
        >>> digest_path(d / "x")[0][:12], digest_path(d)[1]
        ('6b86b273ff34', 'dir')
    """
    if path.is_symlink():
        raise ArtifactError(f"{path} is a symbolic link; artifacts hold real files only")
    if path.is_file():
        return _file_digest(path), "file", path.stat().st_size
    if not path.is_dir():
        raise ArtifactError(f"{path} does not exist")
    h = hashlib.sha256(b"cloudml-dir-v1\n")
    size = 0
    entries = list(path.rglob("*"))
    for entry in entries:
        if entry.is_symlink():
            raise ArtifactError(f"{entry} is a symbolic link; artifacts hold real files only")
    for file in sorted(p for p in entries if p.is_file()):
        rel = file.relative_to(path).as_posix()
        h.update(f"{rel}\0{_file_digest(file)}\n".encode())
        size += file.stat().st_size
    return h.hexdigest(), "dir", size


def _fsync_tree(path: Path) -> None:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for f in files:
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _CopyFailed(Exception):
    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class ArtifactStore:
    """A folder of immutable, content-addressed objects.

    ``copy`` is the function that copies a file (``shutil.copyfile`` by default); tests pass one
    that fails to simulate a full disk.
    """

    def __init__(self, root: str | os.PathLike[str], *, copy: Callable[[str, str], object] | None = None) -> None:
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.tmp = self.root / "tmp"
        self._copy = copy or shutil.copyfile
        self.objects.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        """Where the object with ``digest`` lives (it may not exist).

        Example:
            >>> import tempfile
            >>> ArtifactStore(tempfile.mkdtemp()).path("ab" * 32).parent.name
            'ab'
        """
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ArtifactError(f"'{digest}' is not a SHA-256 digest")
        return self.objects / digest[:2] / digest

    def exists(self, digest: str) -> bool:
        """True when the object is stored."""
        return self.path(digest).exists()

    def put(self, source: str | os.PathLike[str]) -> ArtifactRef:
        """Store a file or folder (copied); returns its reference. Idempotent: same content, same ref."""
        src = Path(source)
        digest, kind, size = digest_path(src)
        final = self.path(digest)
        if final.exists():
            return ArtifactRef(digest, kind, size)
        staging = self.tmp / f"{digest}.{uuid.uuid4().hex}"

        def copy(a: str, b: str) -> None:
            try:
                self._copy(a, b)
            except OSError as e:
                raise _CopyFailed(e) from e  # not an OSError: copytree stops at the first failure

        try:
            try:
                if kind == "file":
                    copy(str(src), str(staging))
                else:
                    shutil.copytree(src, staging, copy_function=copy, symlinks=False)
            except _CopyFailed as failed:
                raise failed.error from None
            _fsync_tree(staging)
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(staging, final)
            except OSError:
                if not final.exists():
                    raise
            _fsync_dir(final.parent)
        except OSError as e:
            raise ArtifactError(
                f"could not store {src}: {e.strerror or e}", hint="free disk space under the cloudml root and retry"
            ) from e
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True) if staging.is_dir() else staging.unlink(missing_ok=True)
        return ArtifactRef(digest, kind, size)

    def verify(self, digest: str) -> bool:
        """Re-hash a stored object; False when it is missing or its content changed.

        Example:
            >>> import tempfile, pathlib
            >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "f").write_text("x")
            >>> s = ArtifactStore(d / "s"); r = s.put(d / "f"); s.verify(r.digest)
            True
        """
        p = self.path(digest)
        return p.exists() and digest_path(p)[0] == digest

    def materialize(self, digest: str, dest: str | os.PathLike[str]) -> Path:
        """Place a copy of the object at ``dest`` (replacing what is there).

        Always a copy, never a hard link: a step that edits its input in place must not be able to
        change the stored object.
        """
        src = self.path(digest)
        if not src.exists():
            raise ArtifactError(f"artifact {digest[:12]} is missing from the store",
                                hint="re-run the step that produced it with --no-cache")
        target = Path(dest)
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_file():
            shutil.copyfile(src, target)
        else:
            shutil.copytree(src, target)
        return target

    def clean_tmp(self) -> int:
        """Remove staging leftovers of interrupted writes; returns how many were removed."""
        n = 0
        for leftover in self.tmp.iterdir():
            shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)
            n += 1
        return n

