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

__all__ = ["blueprint_path", "list_blueprints"]

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
