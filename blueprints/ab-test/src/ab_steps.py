"""Training steps of the ab-test blueprint: the flagship's stages, imported, not copied.

``ingest``, ``validate``, ``split``, ``features``, ``train`` and ``evaluate`` are the functions of the
tabular-classification blueprint (``tabular_steps``), found through the installed cloudml package
(:func:`cloudml.blueprints.blueprint_path`), so a fix there reaches this pipeline too. Only
``ingest`` and ``validate`` are wrapped: relative paths start at *this* blueprint's folder.

To change a flagship stage in a copy made with ``cloudml init``, copy ``tabular_steps.py`` (and
``tabular_checks.py``, ``tabular_eval.py``) into ``src/``: the step's own code folder comes first on
``sys.path``, so the copy wins.

Example:
    >>> tabular().__name__, callable(split)
    ('tabular_steps', True)
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["evaluate", "features", "ingest", "split", "tabular", "train", "validate"]

BLUEPRINT = Path(__file__).resolve().parent.parent  # where pipeline.yaml is: relative paths start here


def tabular() -> ModuleType:
    """The flagship's step module ``tabular_steps``.

    In a pipeline step it imports as it is: the pipeline's ``code_paths`` puts the flagship's ``src/`` on
    ``sys.path`` after this one (every backend ships it with the step), so a ``tabular_steps.py`` copied
    into this blueprint's own ``src/`` wins. Imported anywhere else (doctests, a notebook), the folder is
    looked up next to this blueprint, then in the installed cloudml.

    Example:
        >>> hasattr(tabular(), "StageError")
        True
    """
    try:
        return importlib.import_module("tabular_steps")
    except ImportError:
        from cloudml.blueprints import shared_code

        shared_code("tabular-classification", Path(__file__).resolve().parent, "tabular_steps.py")
        return importlib.import_module("tabular_steps")


_t = tabular()
StageError = _t.StageError
split = _t.split
train = _t.train
features = _t.features
evaluate = _t.evaluate


def ingest(data: Path, input_uri: str, max_rows: int = 0) -> None:
    """The flagship's ingest, with relative paths starting at this blueprint's folder.

    Example:
        >>> import contextlib, io, json, tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> with contextlib.redirect_stdout(io.StringIO()):
        ...     ingest(d, "sklearn://breast_cancer", 50)
        >>> json.loads((d / "source.json").read_text())["rows"]
        50
    """
    location = input_uri.removeprefix("file://")
    if input_uri and "://" not in location and not Path(location).is_absolute():
        input_uri = str(BLUEPRINT / location)
    _t.ingest(data, input_uri, max_rows)


def validate(data: Path, valid: Path, report: Path, label: str, schema: str = "") -> dict[str, Any]:
    """The flagship's validate; a relative ``schema`` file starts at this blueprint's ``src/``; empty: inferred.

    Example:
        >>> import contextlib, io, tempfile
        >>> d = Path(tempfile.mkdtemp()); raw, ok, rep = d / "raw", d / "ok", d / "rep"
        >>> for p in (raw, ok, rep): p.mkdir()
        >>> with contextlib.redirect_stdout(io.StringIO()):
        ...     ingest(raw, "", 0); result = validate(raw, ok, rep, "target", "")
        >>> result["passed"]
        True
    """
    if schema and not Path(schema).is_absolute():
        schema = str(Path(__file__).resolve().parent / schema)
    return dict(_t.validate(data, valid, report, label, schema))
