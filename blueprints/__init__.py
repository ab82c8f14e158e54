"""Ready pipelines and deployments to copy or run, shipped inside the package as data.

Example:
    >>> from cloudml.blueprints import blueprint_path, list_blueprints
    >>> "quickstart" in list_blueprints()
    True
    >>> (blueprint_path("quickstart") / "pipeline.yaml").is_file()
    True
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["blueprint_path", "list_blueprints", "shared_code"]

_HERE = Path(__file__).parent


def list_blueprints() -> list[str]:
    """Names of the blueprints shipped with cloudml.

    Example:
        >>> isinstance(list_blueprints(), list)
        True
    """
    return sorted(p.name for p in _HERE.iterdir() if (p / "pipeline.yaml").is_file())


def blueprint_path(name: str) -> Path:
    """The folder of blueprint ``name`` (KeyError with the known names when there is none).

    Example:
        >>> blueprint_path("quickstart").name
        'quickstart'
    """
    path = _HERE / name
    if not (path / "pipeline.yaml").is_file():
        raise KeyError(f"no blueprint '{name}'; known: {', '.join(list_blueprints())}")
    return path


def shared_code(name: str, own_src: Path, marker: str) -> Path:
    """The ``src/`` of blueprint ``name`` whose modules another blueprint imports, put on ``sys.path``.

    Looked for, in order: ``own_src`` (copy the files there to pin them, or for a cloud run, whose code
    bundle is that folder only), the sibling blueprint next to ``own_src``'s blueprint (a checkout), then
    the blueprint shipped with the installed cloudml (a copy made with ``cloudml init``). ``marker`` is a
    file that must be there. The folder is appended to ``sys.path``: a copy in the step's own folder wins.

    Example:
        >>> src = shared_code("tabular-classification", _HERE / "quickstart" / "src", "tabular_steps.py")
        >>> (src / "tabular_steps.py").is_file()
        True
    """
    import sys

    candidates = [own_src, own_src.parent.parent / name / "src"]
    if (_HERE / name / "src").is_dir():
        candidates.append(_HERE / name / "src")
    for folder in candidates:
        if (folder / marker).is_file():
            if str(folder) not in sys.path:
                sys.path.append(str(folder))
            return folder
    raise ImportError(f"the {name} blueprint's step code ({marker}) was not found in "
                      f"{', '.join(str(c) for c in candidates)} — fix: pip install cloudml (it ships the "
                      f"blueprints), or copy blueprints/{name}/src/*.py into {own_src}")
