"""Opt-in gate of the live tests, and the environment a live run needs.

``tests/conftest.py`` leaves the ``cloud``-marked tests of this folder to this hook, which applies
their rule (``CLOUDML_LIVE=1`` plus the cloud's settings and credentials, or
``CLOUDML_LIVE_TARGET=fake``) with the precise reason from ``_live.skip_reason``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cloud import _live

HERE = Path(__file__).resolve().parent


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "cloud" not in item.keywords or HERE not in Path(str(item.fspath)).resolve().parents:
            continue
        cloud = getattr(item.module, "CLOUD", None)
        if cloud is None:
            continue
        reason = _live.skip_reason(cloud)  # credentials only with CLOUDML_LIVE=1; cached per cloud
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def live_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``"fake"`` or ``"live"``; in live mode, the real credentials and settings the root fixture scrubbed."""
    if _live.fake_mode():
        yield "fake"
        return
    for key in _live.SCRUBBED:
        if key in _live.ENV:
            monkeypatch.setenv(key, _live.ENV[key])
        else:
            monkeypatch.delenv(key, raising=False)
    for key, value in _live.ENV.items():
        if key.startswith("CLOUDML_"):
            monkeypatch.setenv(key, value)
    yield "live"
