"""Opt-in gate of the live tests, and the environment a live run needs.

``tests/conftest.py`` skips every ``cloud``-marked test unless ``CLOUDML_LIVE_AWS/GCP/AZURE`` is set,
with one generic reason. The tests in this folder follow their own rule (``CLOUDML_LIVE=1`` plus the
cloud's settings and credentials, or ``CLOUDML_LIVE_TARGET=fake``), so this hook, which runs after that
one, replaces its skip marker on the items of this folder with the precise decision of
``_live.skip_reason``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cloud import _live

HERE = Path(__file__).resolve().parent
GENERIC = "live cloud test: set CLOUDML_LIVE_<CLOUD>=1 with credentials"  # tests/conftest.py's reason


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "cloud" not in item.keywords or HERE not in Path(str(item.fspath)).resolve().parents:
            continue
        item.own_markers[:] = [m for m in item.own_markers
                               if not (m.name == "skip" and m.kwargs.get("reason") == GENERIC)]
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
