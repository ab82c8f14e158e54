"""The conformance suite runs every test against every registered adapter.

A known gap is declared on the test with a marker that names the adapter, the kind of gap, the
expected error and the reason::

    @pytest.mark.gap("vertex", "notyet", UnsupportedFeatureError, "Vertex has no per-task timeout")

Kinds: ``notimpl`` (not done yet), ``notyet`` (the cloud lacks it), ``never`` (by design). A gap
becomes a strict expected failure for that adapter only: if the test starts passing, the run fails
until the marker is removed. Nothing is skipped silently.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudml.registry import adapter_names

GAP_KINDS = ("notimpl", "notyet", "never")

# Settings the cloud compilers read; fixed values keep compiled output stable (golden files).
CLOUD_SETTINGS = {
    "CLOUDML_SAGEMAKER_REGION": "us-east-1",
    "CLOUDML_SAGEMAKER_BUCKET": "cloudml-conformance",
    "CLOUDML_SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/cloudml-conformance",
    # a dead loopback port: nothing a conformance test does can reach AWS
    "CLOUDML_SAGEMAKER_ENDPOINT_URL": "http://127.0.0.1:9",
}


@pytest.fixture(autouse=True)
def _cloud_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key, value in CLOUD_SETTINGS.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "src").mkdir(exist_ok=True)  # the code folder the cases name (relative to the working dir)
    (tmp_path / "src" / "job.py").write_text("def run():\n    return {}\n")
    (tmp_path / "lib").mkdir(exist_ok=True)  # a code_paths folder
    (tmp_path / "lib" / "helpers.py").write_text("VALUE = 1\n")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "adapter_name" in metafunc.fixturenames:
        metafunc.parametrize("adapter_name", adapter_names())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or "adapter_name" not in callspec.params:
            continue
        adapter = callspec.params["adapter_name"]
        for mark in item.iter_markers("gap"):
            name, kind, raises, reason = mark.args
            if kind not in GAP_KINDS:
                raise pytest.UsageError(f"{item.nodeid}: gap kind {kind!r} is not one of {GAP_KINDS}")
            if name == adapter:
                item.add_marker(pytest.mark.xfail(strict=True, raises=raises, reason=f"[{kind}] {reason}"))
