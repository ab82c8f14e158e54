"""`cloudml.__all__` is the public API, every name resolves, and public functions document an example."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import cloudml

EXPECTED = {
    "Adapter", "AdapterNotInstalledError", "Capabilities", "CloudMLError", "Compiled", "Config", "ConfigError",
    "Deployment", "Pipeline", "PipelineBuilder", "RolloutResult", "RunState", "SpecError",
    "UnsupportedFeatureError", "__version__", "compile", "dump", "dumps", "errors", "get_adapter", "load",
    "load_config", "loads", "registry", "validate",
}


def test_all_is_the_public_api() -> None:
    assert set(cloudml.__all__) == EXPECTED
    assert len(cloudml.__all__) == len(set(cloudml.__all__))


def test_every_public_name_resolves() -> None:
    for name in cloudml.__all__:
        assert getattr(cloudml, name) is not None, name


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        cloudml.nope  # noqa: B018
    except AttributeError as e:
        assert "nope" in str(e)
    else:
        raise AssertionError("expected AttributeError")


def _modules() -> list[str]:
    names = ["cloudml"]
    for info in pkgutil.walk_packages(cloudml.__path__, "cloudml."):
        names.append(info.name)
    for pkg in ("cloudml.adapters", "cloudml.blueprints"):
        mod = importlib.import_module(pkg)
        names += [i.name for i in pkgutil.walk_packages(mod.__path__, pkg + ".")]
    return sorted(set(names))


def test_public_functions_have_docstrings_with_examples() -> None:
    missing: list[str] = []
    for modname in _modules():
        mod = importlib.import_module(modname)
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)) or getattr(obj, "__module__", "") != modname:
                continue
            doc = inspect.getdoc(obj) or ""
            if inspect.isfunction(obj) and ">>>" not in doc:
                missing.append(f"{modname}.{name}: no example")
            elif not doc:
                missing.append(f"{modname}.{name}: no docstring")
    assert missing == []
