"""Find adapters by name through the ``cloudml.adapters`` entry-point group; import them on first use.

Third parties add a backend the same way: an entry point ``mybackend = "pkg.module:MyAdapter"``.

Example:
    >>> from cloudml import registry
    >>> "local" in registry.adapter_names()
    True
    >>> registry.adapter_class("local").name
    'local'
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

from cloudml.errors import AdapterNotFoundError, CloudMLError

if TYPE_CHECKING:
    from cloudml.adapter import Adapter
    from cloudml.config import Config

__all__ = [
    "ENTRY_POINT_GROUP",
    "BackendInfo",
    "adapter_class",
    "adapter_names",
    "backends_info",
    "get_adapter",
    "validate_backend_options",
]

ENTRY_POINT_GROUP = "cloudml.adapters"


@functools.lru_cache(maxsize=1)
def _entry_points() -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep)
    return found


def refresh() -> None:
    """Forget discovered entry points (after installing a plugin in the same process)."""
    _entry_points.cache_clear()
    adapter_class.cache_clear()


def adapter_names() -> list[str]:
    """Names of every registered adapter, installed extras or not.

    Example:
        >>> sorted(adapter_names())[:2]
        ['azureml', 'local']
    """
    return sorted(_entry_points())


@functools.cache
def adapter_class(name: str) -> type[Adapter]:
    """The adapter class registered as ``name`` (imported now). Raises AdapterNotFoundError.

    Example:
        >>> adapter_class("sagemaker").extra
        'aws'
    """
    from cloudml.adapter import Adapter

    eps = _entry_points()
    if name not in eps:
        raise AdapterNotFoundError(name, list(eps))
    try:
        cls = eps[name].load()
    except ImportError as e:
        raise CloudMLError(f"adapter '{name}' failed to import: {e}",
                           hint=f"reinstall the package that provides it ({eps[name].value})") from e
    if not (isinstance(cls, type) and issubclass(cls, Adapter)):
        raise CloudMLError(f"entry point '{name}' = {eps[name].value} is not a cloudml Adapter class")
    return cls


def get_adapter(name: str | None = None, *, config: Config | None = None, **settings: Any) -> Adapter:
    """An adapter instance configured from cloudml.yaml / CLOUDML_* / ``settings`` (code wins).

    With no name, the configured backend is used (``local`` when nothing is configured).

    Example:
        >>> import tempfile
        >>> a = get_adapter("local", root=tempfile.mkdtemp())
        >>> a.name
        'local'
    """
    from cloudml.config import load_config

    cfg = config or load_config(overrides={"backend": name} if name else None)
    backend = name or cfg.backend
    cls = adapter_class(backend)
    return cls(cfg.settings_for(backend, **settings))


@dataclass
class BackendInfo:
    """What ``cloudml backends`` shows for one adapter."""

    name: str
    target: str
    installed: bool
    missing: list[str]
    extra: str | None
    description: str
    supported: int
    gaps: int


def backends_info() -> list[BackendInfo]:
    """Every registered adapter with its install state and capability counts.

    Example:
        >>> [b.name for b in backends_info()][:1]
        ['azureml']
    """
    out: list[BackendInfo] = []
    for name in adapter_names():
        try:
            cls = adapter_class(name)
        except CloudMLError as e:
            out.append(BackendInfo(name, _entry_points()[name].value, False, [str(e)], None, "", 0, 0))
            continue
        caps = cls.capabilities
        gaps = len(caps.gaps)
        from cloudml.adapter import FEATURES

        out.append(BackendInfo(name, _entry_points()[name].value, not cls.missing_requirements(),
                               cls.missing_requirements(), cls.extra, cls.description, len(FEATURES) - gaps, gaps))
    return out


def validate_backend_options(adapter: str, options: Any) -> list[tuple[tuple[str | int, ...], str, str | None]]:
    """Check one ``backend_options.<adapter>`` block with that adapter's own options model.

    Returns ``(location inside the block, message, fix)`` triples; empty when valid.

    Example:
        >>> validate_backend_options("sagemkr", {})[0][1]
        "no adapter named 'sagemkr'"
    """
    from pydantic import ValidationError

    names = adapter_names()
    if adapter not in names:
        import difflib

        close = difflib.get_close_matches(adapter, names, n=1)
        return [((), f"no adapter named '{adapter}'",
                 f"did you mean '{close[0]}'?" if close else f"registered: {', '.join(names)}")]
    if not isinstance(options, dict):
        return [((), "backend options are a mapping of settings", None)]
    model = adapter_class(adapter).options_model
    if model is None:
        if options:
            return [((), f"the {adapter} adapter takes no backend options", "remove this block")]
        return []
    try:
        model.model_validate(options)
    except ValidationError as err:
        out: list[tuple[tuple[str | int, ...], str, str | None]] = []
        for e in err.errors(include_url=False):
            msg = "unknown option" if e["type"] == "extra_forbidden" else e["msg"].removeprefix("Value error, ")
            out.append((tuple(e["loc"]), f"{adapter} option: {msg}", None))
        return out
    return []
