"""Every example in every docstring of the package runs (adapters and blueprints included)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import cloudml


def _modules() -> list[str]:
    names = ["cloudml"] + [i.name for i in pkgutil.walk_packages(cloudml.__path__, "cloudml.")]
    for pkg in ("cloudml.adapters", "cloudml.blueprints"):
        mod = importlib.import_module(pkg)
        names += [pkg] + [i.name for i in pkgutil.walk_packages(mod.__path__, pkg + ".")]
    return sorted(set(n for n in names if not n.endswith("__main__")))


@pytest.mark.parametrize("modname", _modules())
def test_docstring_examples_run(modname: str) -> None:
    module = importlib.import_module(modname)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {modname}"
