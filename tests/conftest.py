"""Shared test setup: keep every test off the network and out of the user's config."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@pytest.fixture(autouse=True)
def _isolated_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No cloudml.yaml from the developer's tree and no CLOUDML_* variables leak into a test."""
    for key in list(os.environ):
        if key.startswith("CLOUDML_") or key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "GOOGLE_APPLICATION_CREDENTIALS"):
            monkeypatch.delenv(key, raising=False)
    # No cloud credentials, and no credential lookups that leave the machine (instance metadata).
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_EC2_METADATA_DISABLED": "true", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    yield


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", help="rewrite tests/golden files from the compilers")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip `cloud`-marked tests unless CLOUDML_LIVE=1. tests/cloud/ decides for its own tests, with the
    exact settings each cloud still lacks (see tests/cloud/conftest.py and docs/testing.md)."""
    live = os.environ.get("CLOUDML_LIVE") == "1"
    cloud_dir = Path(__file__).resolve().parent / "cloud"
    for item in items:
        if "cloud" in item.keywords and not live and cloud_dir not in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.skip(reason="live cloud test: set CLOUDML_LIVE=1 with the cloud's credentials"))
