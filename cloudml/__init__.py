"""cloudml: describe an ML pipeline and a deployment once, run them on any cloud or locally.

``import cloudml`` is cheap: the public names below load on first use, and no cloud SDK is ever
imported by the core.

Example:
    >>> import cloudml
    >>> b = cloudml.PipelineBuilder("hello"); _ = b.add_step("say", command="echo hello")
    >>> p = b.build()
    >>> cloudml.compile(p, target="local").document["waves"]
    [['say']]
"""

from __future__ import annotations

__version__ = "0.1.0"

TYPE_CHECKING = False  # `import typing` costs more than the rest of this module
if TYPE_CHECKING:
    from typing import Any

    from cloudml import errors, registry
    from cloudml.adapter import Adapter, Capabilities, Compiled, RolloutResult, RunState
    from cloudml.api import compile, validate
    from cloudml.builder import PipelineBuilder
    from cloudml.config import Config, load_config
    from cloudml.errors import (
        AdapterNotInstalledError,
        CloudMLError,
        ConfigError,
        SpecError,
        UnsupportedFeatureError,
    )
    from cloudml.loader import dump, dumps, load, loads
    from cloudml.registry import get_adapter
    from cloudml.spec.deployment import Deployment
    from cloudml.spec.pipeline import Pipeline

_LAZY: dict[str, str] = {
    "AdapterNotInstalledError": "cloudml.errors",
    "CloudMLError": "cloudml.errors",
    "ConfigError": "cloudml.errors",
    "SpecError": "cloudml.errors",
    "UnsupportedFeatureError": "cloudml.errors",
    "Adapter": "cloudml.adapter",
    "Capabilities": "cloudml.adapter",
    "Compiled": "cloudml.adapter",
    "RolloutResult": "cloudml.adapter",
    "RunState": "cloudml.adapter",
    "compile": "cloudml.api",
    "validate": "cloudml.api",
    "PipelineBuilder": "cloudml.builder",
    "Config": "cloudml.config",
    "load_config": "cloudml.config",
    "dump": "cloudml.loader",
    "dumps": "cloudml.loader",
    "load": "cloudml.loader",
    "loads": "cloudml.loader",
    "get_adapter": "cloudml.registry",
    "Deployment": "cloudml.spec.deployment",
    "Pipeline": "cloudml.spec.pipeline",
}
_SUBMODULES = {"errors", "registry", "spec", "adapter", "config", "loader", "dag", "runtime", "api", "builder"}

__all__ = [
    "Adapter",
    "AdapterNotInstalledError",
    "Capabilities",
    "CloudMLError",
    "Compiled",
    "Config",
    "ConfigError",
    "Deployment",
    "Pipeline",
    "PipelineBuilder",
    "RolloutResult",
    "RunState",
    "SpecError",
    "UnsupportedFeatureError",
    "__version__",
    "compile",
    "dump",
    "dumps",
    "errors",
    "get_adapter",
    "load",
    "load_config",
    "loads",
    "registry",
    "validate",
]


def __getattr__(name: str) -> Any:
    import importlib

    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(f"cloudml.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'cloudml' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
