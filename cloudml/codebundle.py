"""What a step ships to a cloud: its code folder, its ``code_paths`` folders and cloudml's runtime entry point.

Every cloud adapter packs the same layout, so a step imports the same modules wherever it runs:

* the files of the step's ``code`` folder at the top (the job's working directory);
* each ``code_paths`` folder under ``_cloudml_paths/<i>-<folder name>/`` (``i`` is its place in the
  list), which the runtime puts on ``sys.path`` after the code folder (``--code-path``);
* ``cloudml_runtime.py``: :mod:`cloudml.runtime`, which runs python steps, retries and objectives.

The bundle is content-addressed (:meth:`CodeBundle.digest`) and its archive deterministic (sorted members,
zero mtimes and owners), so an unchanged step uploads to the same place and keeps the cloud's step cache.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); (d / "src").mkdir(); (d / "shared").mkdir()
    >>> _ = (d / "src" / "job.py").write_text("import helpers"); _ = (d / "shared" / "helpers.py").write_text("")
    >>> b = CodeBundle(d / "src", (d / "shared",))
    >>> [name for name, _ in b.files()]
    ['_cloudml_paths/0-shared/helpers.py', 'cloudml_runtime.py', 'job.py']
    >>> b.path_args(".")
    ['--code-path', './_cloudml_paths/0-shared']
"""

from __future__ import annotations

import gzip
import hashlib
import io
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["NO_CODE", "PATHS_DIR", "RUNTIME_FILE", "CodeBundle", "step_bundle"]

RUNTIME_FILE = "cloudml_runtime.py"
PATHS_DIR = "_cloudml_paths"
NO_CODE = Path("/nonexistent-cloudml-code")  # a step with no code folder: the bundle holds the runtime (and paths)
_SKIP = {"__pycache__", ".git"}


def _folder_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and not _SKIP & set(p.relative_to(folder).parts) and p.suffix != ".pyc")


def _runtime_source() -> bytes:
    import cloudml.runtime

    return Path(cloudml.runtime.__file__).read_bytes()


@dataclass(frozen=True)
class CodeBundle:
    """A step's code folder (``NO_CODE`` for none) and its ``code_paths`` folders, as one shippable unit.

    Example:
        >>> CodeBundle(NO_CODE).path_dirs()
        []
    """

    folder: Path
    paths: tuple[Path, ...] = ()

    def path_dirs(self) -> list[str]:
        """Where each ``code_paths`` folder sits inside the bundle (relative, in the spec's order).

        Example:
            >>> CodeBundle(NO_CODE, (Path("/x/lib"), Path("/y/lib"))).path_dirs()
            ['_cloudml_paths/0-lib', '_cloudml_paths/1-lib']
        """
        return [f"{PATHS_DIR}/{i}-{p.name or 'root'}" for i, p in enumerate(self.paths)]

    def path_args(self, root: str) -> list[str]:
        """``--code-path ROOT/_cloudml_paths/...`` for each folder: what the runtime call adds.

        Example:
            >>> CodeBundle(NO_CODE, (Path("/x/lib"),)).path_args("/opt/code")
            ['--code-path', '/opt/code/_cloudml_paths/0-lib']
        """
        out: list[str] = []
        for d in self.path_dirs():
            out += ["--code-path", f"{root.rstrip('/')}/{d}"]
        return out

    def files(self) -> list[tuple[str, Path | None]]:
        """``(name in the bundle, source file)`` pairs, sorted; the runtime's source is ``None``.

        A file named ``cloudml_runtime.py`` in the code folder is replaced by cloudml's own.

        Example:
            >>> [n for n, _ in CodeBundle(NO_CODE).files()]
            ['cloudml_runtime.py']
        """
        found: dict[str, Path | None] = {}
        for f in _folder_files(self.folder):
            found[f.relative_to(self.folder).as_posix()] = f
        for d, folder in zip(self.path_dirs(), self.paths, strict=True):
            for f in _folder_files(folder):
                found[f"{d}/{f.relative_to(folder).as_posix()}"] = f
        found[RUNTIME_FILE] = None
        return sorted(found.items())

    def read(self, source: Path | None) -> bytes:
        """The bytes of one member (the runtime's for ``None``)."""
        return _runtime_source() if source is None else source.read_bytes()

    def digest(self, salt: str = "cloudml-code-v2") -> str:
        """SHA-256 over every member's name and content (``salt`` keeps each cloud's digests apart).

        Example:
            >>> import tempfile, pathlib
            >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "a.py").write_text("x = 1")
            >>> before = CodeBundle(d).digest(); _ = (d / "a.py").write_text("x = 2")
            >>> len(before), before != CodeBundle(d).digest()
            (64, True)
        """
        h = hashlib.sha256(f"{salt}\n".encode())
        for name, source in self.files():
            h.update(f"{name}\0".encode() + hashlib.sha256(self.read(source)).digest())
        return h.hexdigest()

    def tar_gz(self) -> bytes:
        """The deterministic ``.tar.gz`` bytes of the bundle.

        Example:
            >>> import tempfile, pathlib
            >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "a.py").write_text("x = 1")
            >>> CodeBundle(d).tar_gz() == CodeBundle(d).tar_gz()
            True
        """
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, source in self.files():
                data = self.read(source)
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode, info.uid, info.gid = len(data), 0, 0o644, 0, 0
                tar.addfile(info, io.BytesIO(data))
        out = io.BytesIO()
        with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
            gz.write(raw.getvalue())
        return out.getvalue()

    def materialize(self, dest: Path) -> Path:
        """Copy the bundle's files into ``dest`` (made empty first); for clouds that upload a folder.

        Example:
            >>> import tempfile, pathlib
            >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "a.py").write_text("x = 1")
            >>> sorted(p.name for p in CodeBundle(d).materialize(d / "out").iterdir())
            ['a.py', 'cloudml_runtime.py']
        """
        if dest.exists():
            shutil.rmtree(dest)
        for name, source in self.files():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self.read(source))
        dest.mkdir(parents=True, exist_ok=True)
        return dest


def step_bundle(base: Path, step: Any) -> CodeBundle:
    """The bundle of an (effective) task step, its folders relative to ``base`` (the pipeline file's folder).

    Raises :class:`cloudml.errors.CompileError` naming the step and the folder when one does not exist.

    Example:
        >>> import tempfile, pathlib
        >>> from cloudml.spec.steps import TaskStep
        >>> d = pathlib.Path(tempfile.mkdtemp()); (d / "src").mkdir()
        >>> step_bundle(d, TaskStep(name="a", python="m:f", code="src")).folder.name
        'src'
    """
    from cloudml.errors import CompileError

    folder = base / step.code if step.code else NO_CODE
    if step.code and not folder.is_dir():
        raise CompileError(f"step '{step.name}': code folder {folder} does not exist",
                           hint="code folders are relative to the pipeline file")
    paths = []
    for p in step.code_paths or ():
        extra = (base / p).resolve()
        if not extra.is_dir():
            raise CompileError(f"step '{step.name}': code_paths folder {base / p} does not exist",
                               hint="code_paths are relative to the pipeline file; fix the path or remove it")
        paths.append(extra)
    return CodeBundle(folder, tuple(paths))
