"""Top-level helpers: validate and compile a spec for a target.

Example:
    >>> import cloudml
    >>> b = cloudml.PipelineBuilder("p"); _ = b.add_step("a", command="echo hi")
    >>> p = b.build()
    >>> cloudml.compile(p, target="local").target
    'local'
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cloudml.adapter import Compiled
    from cloudml.spec.deployment import Deployment
    from cloudml.spec.pipeline import Pipeline

__all__ = ["compile", "validate"]



def _as_model(spec: Any) -> Pipeline | Deployment:
    from cloudml.loader import load

    if isinstance(spec, (str, os.PathLike)):
        return load(Path(spec))
    return spec  # type: ignore[no-any-return]


def compile(spec: Pipeline | Deployment | str | os.PathLike[str], target: str | None = None) -> Compiled:
    """Compile a pipeline or deployment (model or file path) for ``target`` (default: configured backend).

    Raises :class:`cloudml.UnsupportedFeatureError` naming the adapter, step and feature when the
    target cannot express something. Pure: no network, no credentials.

    Example:
        >>> import cloudml
        >>> d = cloudml.loads("kind: Deployment\\nendpoint: ep\\nmodel: {group: g}\\nstrategy: all_at_once\\n")
        >>> [p["phase"] for p in cloudml.compile(d, "local").document["phases"]][:3]
        ['create', 'wait_ready', 'shift']
    """
    from cloudml.adapter import pipeline_features
    from cloudml.registry import get_adapter
    from cloudml.spec.pipeline import Pipeline

    model = _as_model(spec)
    adapter = get_adapter(target)
    if isinstance(spec, (str, os.PathLike)):
        adapter.base_dir = Path(spec).resolve().parent
    if isinstance(model, Pipeline):
        adapter.check_supported(pipeline_features(model))
        return adapter.compile(model)
    return adapter.compile_deployment(model)


def validate(spec: Pipeline | Deployment | str | os.PathLike[str], target: str | None = None) -> Pipeline | Deployment:
    """Validate a spec; with ``target``, also compile it and run that target's own validator.

    Raises :class:`cloudml.SpecError` (every issue at once) or :class:`cloudml.errors.CompileError`.

    Example:
        >>> import cloudml
        >>> b = cloudml.PipelineBuilder("p"); _ = b.add_step("a", command="echo")
        >>> p = b.build()
        >>> cloudml.validate(p, target="local").name
        'p'
    """
    from cloudml.errors import CompileError
    from cloudml.spec.validate import validate_model

    model = _as_model(spec)
    if not isinstance(spec, (str, os.PathLike)):
        validate_model(model)
    if target is not None:
        from cloudml.registry import get_adapter

        compiled = compile(spec if isinstance(spec, (str, os.PathLike)) else model, target)
        problems = get_adapter(target).validate_compiled(compiled)
        if problems:
            raise CompileError(f"{target} rejected the compiled output:\n  " + "\n  ".join(problems))
    return model
