"""Adapters come from entry points, load lazily, declare capabilities as data, validate their options."""

from __future__ import annotations

import importlib.metadata
from typing import Any

import pytest

import cloudml
from cloudml.adapter import FEATURES, Adapter, Capabilities
from cloudml.errors import AdapterNotInstalledError, UnsupportedFeatureError
from cloudml.registry import (
    ENTRY_POINT_GROUP,
    adapter_class,
    adapter_names,
    backends_info,
    validate_backend_options,
)


def test_builtin_adapters_are_entry_points() -> None:
    eps = {ep.name: ep.value for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    assert eps["local"] == "cloudml.adapters.local:LocalAdapter"
    assert {"local", "sagemaker", "vertex", "azureml"} <= set(adapter_names())


@pytest.mark.parametrize("name", ["local", "sagemaker", "vertex", "azureml"])
def test_adapter_classes(name: str) -> None:
    cls = adapter_class(name)
    assert issubclass(cls, Adapter) and cls.name == name
    assert isinstance(cls.capabilities, Capabilities) and cls.capabilities.adapter == name
    assert {row["feature"] for row in cls.capabilities.as_table()} == set(FEATURES)


def test_missing_extra_raises_the_pip_command() -> None:
    class Fake(Adapter):
        name = "fake"
        extra = "fakecloud"
        requires = ("surely-not-installed-dist-xyz", "pydantic")
        capabilities = Capabilities("fake")

        def compile(self, pipeline):  # type: ignore[no-untyped-def]
            raise AssertionError

    assert Fake.missing_requirements() == ["surely-not-installed-dist-xyz"]
    with pytest.raises(AdapterNotInstalledError) as info:
        Fake.require()
    assert str(info.value).startswith("pip install 'cloudml[fakecloud]'")
    assert info.value.pip_command == "pip install 'cloudml[fakecloud]'"


def test_unknown_feature_in_capabilities_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown features"):
        Capabilities("x", {"step.teleport": ("never", "no")})


def test_unimplemented_operations_say_so() -> None:
    """A third-party adapter that only compiles: everything else it lacks is refused by name."""
    from cloudml.adapter import Adapter, Capabilities, Compiled

    class CompileOnly(Adapter):
        name = "compile-only"
        capabilities = Capabilities("compile-only", {})

        def compile(self, pipeline: Any) -> Compiled:
            return Compiled(self.name, pipeline.name, {}, "json")

    adapter = CompileOnly()
    for call in (lambda: adapter.deploy(None), lambda: adapter.run(None), lambda: adapter.rollout_state("ep")):  # type: ignore[arg-type]
        with pytest.raises(UnsupportedFeatureError) as info:
            call()
        assert info.value.adapter == "compile-only"


def test_backends_info_reports_install_state() -> None:
    info = {b.name: b for b in backends_info()}
    assert info["local"].installed and info["local"].extra is None
    assert info["vertex"].extra == "gcp" and info["azureml"].extra == "azure"
    assert info["local"].supported + info["local"].gaps == len(FEATURES)


def test_backend_options_validated_by_the_adapters_model() -> None:
    assert validate_backend_options("sagemaker", {"native_guardrails": True}) == []
    problems = validate_backend_options("sagemaker", {"native_guardrail": True})
    assert problems and problems[0][0] == ("native_guardrail",) and "unknown option" in problems[0][1]
    assert "did you mean 'vertex'" in (validate_backend_options("vertx", {})[0][2] or "")


def test_backend_options_errors_in_a_spec_point_at_the_line() -> None:
    text = """kind: Pipeline
name: p
backend_options:
  sagemaker: {native_guardrails: maybe}
steps:
  - name: a
    command: echo
    backend_options: {vertx: {}}
"""
    with pytest.raises(cloudml.SpecError) as info:
        cloudml.loads(text)
    issues = {i.path: i for i in info.value.issues}
    assert issues["backend_options.sagemaker.native_guardrails"].line == 4
    assert issues["steps[0].backend_options.vertx"].step == "a"
    assert issues["steps[0].backend_options.vertx"].fix == "did you mean 'vertex'?"
