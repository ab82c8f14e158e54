"""``cloudml init --blueprint NAME DIR``: copy a blueprint shipped with cloudml into a folder, ready to edit.

Example:
    >>> import tempfile, pathlib
    >>> from typer.testing import CliRunner
    >>> from cloudml.cli.main import app
    >>> d = pathlib.Path(tempfile.mkdtemp()) / "mine"
    >>> CliRunner().invoke(app, ["init", "--blueprint", "quickstart", str(d)]).exit_code
    0
    >>> (d / "pipeline.yaml").is_file()
    True
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

__all__ = ["blueprint_descriptions", "copy_blueprint", "init"]

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".cloudml", ".pytest_cache")


def blueprint_descriptions() -> dict[str, str]:
    """Each shipped blueprint's name and the description of its pipeline.

    Example:
        >>> "quickstart" in blueprint_descriptions()
        True
    """
    import yaml

    from cloudml.blueprints import blueprint_path, list_blueprints

    found: dict[str, str] = {}
    for name in list_blueprints():
        try:
            doc = yaml.safe_load((blueprint_path(name) / "pipeline.yaml").read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            doc = {}
        found[name] = " ".join(str(doc.get("description", "")).split()) if isinstance(doc, dict) else ""
    return found


def copy_blueprint(name: str, target: Path, force: bool = False) -> list[Path]:
    """Copy blueprint ``name`` into ``target``; returns the files written (relative to ``target``).

    Raises KeyError (with the known names) for an unknown blueprint and FileExistsError when
    ``target`` holds anything and ``force`` is off. With ``force``, files of the same name are
    overwritten and other files in ``target`` are left alone.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()) / "qs"
        >>> "pipeline.yaml" in [p.name for p in copy_blueprint("quickstart", d)]
        True
        >>> copy_blueprint("quickstart", d)
        Traceback (most recent call last):
        ...
        FileExistsError: ...
    """
    from cloudml.blueprints import blueprint_path

    source = blueprint_path(name)
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"{target} is a file, not a folder")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise FileExistsError(f"{target} is not empty")
    shutil.copytree(source, target, ignore=_SKIP, dirs_exist_ok=True)
    skipped = {"__pycache__", ".cloudml", ".pytest_cache"}
    files = [p.relative_to(source) for p in source.rglob("*")
             if p.is_file() and not skipped & set(p.relative_to(source).parts) and p.suffix != ".pyc"]
    for outside, inside in _bring_code_paths(source, target).items():
        files += [inside / p.relative_to(outside) for p in outside.rglob("*")
                  if p.is_file() and not skipped & set(p.relative_to(outside).parts) and p.suffix != ".pyc"]
    return sorted(files)


def _bring_code_paths(source: Path, target: Path) -> dict[Path, Path]:
    """Copy each ``code_paths`` folder outside the blueprint into ``target/shared/`` and point the specs at it.

    A derived blueprint imports the flagship's step code (``code_paths: [../tabular-classification/src]``);
    the copy must not depend on a folder next to it. Returns {folder copied: its place under ``target``}.
    """
    import yaml

    blueprints = source.parent.resolve()
    copied: dict[Path, Path] = {}
    for spec in sorted(target.glob("*.yaml")):
        text = spec.read_text(encoding="utf-8")
        doc = yaml.safe_load(text) or {}
        if not isinstance(doc, dict):
            continue
        entries = list((doc.get("defaults") or {}).get("code_paths") or [])
        entries += [p for step in doc.get("steps") or [] if isinstance(step, dict) for p in step.get("code_paths") or []]
        for entry in dict.fromkeys(str(e) for e in entries):
            folder = (source / entry).resolve()
            if folder.is_relative_to(source.resolve()) or not folder.is_relative_to(blueprints) or not folder.is_dir():
                continue
            inside = Path("shared") / folder.relative_to(blueprints)
            if folder not in copied:
                shutil.copytree(folder, target / inside, ignore=_SKIP, dirs_exist_ok=True)
                copied[folder] = inside
            text = text.replace(entry, inside.as_posix())
        spec.write_text(text, encoding="utf-8")
    return copied


def _print_list(descriptions: dict[str, str]) -> None:
    err.print("blueprints:")
    width = max(map(len, descriptions), default=0)
    for name, text in descriptions.items():
        err.print(f"  [bold]{escape(name.ljust(width))}[/]  {escape(text)}")


def init(
    directory: Annotated[Path, typer.Argument(help="folder to create (must be empty unless --force)")],
    blueprint: Annotated[str | None, typer.Option("--blueprint", "-b", help="which blueprint to copy")] = None,
    force: Annotated[bool, typer.Option("--force", help="write into a non-empty folder, overwriting same-named files")] = False,
) -> None:
    """Copy a blueprint (pipeline, deployment, code, README) into DIRECTORY, ready to edit and run.

    Example:
        >>> import tempfile
        >>> from typer.testing import CliRunner
        >>> from cloudml.cli.main import app
        >>> r = CliRunner().invoke(app, ["init", "--blueprint", "nope", tempfile.mkdtemp()])
        >>> r.exit_code, "quickstart" in r.output
        (2, True)
    """
    descriptions = blueprint_descriptions()
    if blueprint is None or blueprint not in descriptions:
        what = "say which blueprint to copy" if blueprint is None else f"no blueprint '{escape(blueprint)}'"
        err.print(f"[bold red]error:[/] {what}")
        _print_list(descriptions)
        first = next(iter(descriptions), "NAME")
        err.print(f"[green]next:[/] cloudml init --blueprint {escape(first)} {escape(str(directory))}")
        raise typer.Exit(2)
    try:
        files = copy_blueprint(blueprint, directory, force)
    except FileExistsError as e:
        err.print(f"[bold red]error:[/] {escape(str(e))}; nothing was copied")
        err.print("[green]next:[/] pick a new or empty folder, or pass --force to overwrite files of the same name")
        raise typer.Exit(2) from None
    out.print(f"[green]✓[/] copied blueprint [bold]{escape(blueprint)}[/] to {escape(str(directory))} "
              f"({len(files)} files)")
    for f in files:
        out.print(f"  {escape(str(f))}")
    deployment = " && cloudml deploy deployment.yaml" if (directory / "deployment.yaml").is_file() else ""
    out.print(f"[green]next:[/] cd {escape(str(directory))} && cloudml run pipeline.yaml{deployment}   "
              "(README.md says what to edit)")
