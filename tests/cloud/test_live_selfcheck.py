"""Always on (not ``cloud``-marked): the three live scenarios run against the fakes, so the code of the
opt-in live tests cannot rot unnoticed, plus the opt-in gate's decisions.

The scenarios are the very functions ``test_live_<cloud>.py`` runs in a real account; only their
targets differ (see each module's docstring for what fake mode does differently). About 15 s here.
The same runs, one test per cloud: ``CLOUDML_LIVE_TARGET=fake python -m pytest tests/cloud``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.cloud import _live
from tests.cloud.test_live_azureml import azureml_target
from tests.cloud.test_live_azureml import scenario as azureml_scenario
from tests.cloud.test_live_sagemaker import sagemaker_target
from tests.cloud.test_live_sagemaker import scenario as sagemaker_scenario
from tests.cloud.test_live_vertex import scenario as vertex_scenario
from tests.cloud.test_live_vertex import vertex_target

SCENARIOS = {"sagemaker": (sagemaker_target, sagemaker_scenario), "vertex": (vertex_target, vertex_scenario),
             "azureml": (azureml_target, azureml_scenario)}
EXPECTED_UNSERVED = {"sagemaker": 2, "vertex": 4, "azureml": 1}  # deletions the fakes have no route for


def test_the_three_live_scenarios_pass_against_the_fakes(tmp_path: Path) -> None:
    took: dict[str, float] = {}
    for cloud, (target, scenario) in SCENARIOS.items():
        started = time.monotonic()
        with target("fake", tmp_path / cloud) as t:
            record = scenario(t)
            assert t.remaining() == [], (cloud, t.remaining())
        took[cloud] = time.monotonic() - started
        assert record.failures == [], (cloud, record.failures)
        assert len(record.unserved) == EXPECTED_UNSERVED[cloud], (cloud, record.unserved)
        assert record.done and all(t.prefix in label for label in record.done + record.unserved), record
        assert any(label.startswith(("endpoint", "online endpoint")) for label in record.done), record.done
    print("fake-mode scenarios took " + ", ".join(f"{c} {s:.1f}s" for c, s in took.items()))


FULL = {"CLOUDML_SAGEMAKER_REGION": "eu-west-1", "CLOUDML_SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/r",
        "CLOUDML_SAGEMAKER_BUCKET": "b", "CLOUDML_VERTEX_PROJECT": "p", "CLOUDML_VERTEX_PIPELINE_ROOT": "gs://b/r",
        "CLOUDML_AZUREML_SUBSCRIPTION_ID": "s", "CLOUDML_AZUREML_RESOURCE_GROUP": "g",
        "CLOUDML_AZUREML_WORKSPACE": "w"}


@pytest.fixture
def no_credential_lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    asked: list[str] = []

    def refuse(cloud: str) -> Any:
        def check(env: Any) -> str | None:
            asked.append(cloud)
            return "no token for this test"
        return check

    monkeypatch.setattr(_live, "CREDENTIALS", {c: refuse(c) for c in _live.REQUIRED})
    return asked


@pytest.mark.parametrize("cloud", sorted(_live.REQUIRED))
def test_without_cloudml_live_every_missing_variable_is_named_and_no_credential_is_looked_up(
        cloud: str, no_credential_lookups: list[str]) -> None:
    reason = _live.skip_reason(cloud, {})
    assert reason is not None and reason.startswith(f"live {cloud} test: missing CLOUDML_LIVE=1, ")
    for var in _live.REQUIRED[cloud]:
        assert var in reason
    present = {k: v for k, v in FULL.items() if k in _live.REQUIRED[cloud]}
    reason = _live.skip_reason(cloud, present)
    assert reason is not None and "missing CLOUDML_LIVE=1 (" in reason
    assert not any(var in reason for var in present)
    assert no_credential_lookups == []


@pytest.mark.parametrize("cloud", sorted(_live.REQUIRED))
def test_with_cloudml_live_the_missing_settings_then_the_credentials_decide(
        cloud: str, no_credential_lookups: list[str]) -> None:
    required = _live.REQUIRED[cloud]
    partial = {"CLOUDML_LIVE": "1", **{k: FULL[k] for k in required[1:]}}
    assert _live.skip_reason(cloud, partial) == f"live {cloud} test: missing {required[0]}"
    assert no_credential_lookups == []  # settings first: no token while something else is missing
    full = {"CLOUDML_LIVE": "1", **{k: FULL[k] for k in required}}
    assert _live.skip_reason(cloud, full) == f"live {cloud} test: no token for this test"
    assert no_credential_lookups == [cloud]


def test_fake_target_needs_no_settings(no_credential_lookups: list[str]) -> None:
    assert all(_live.skip_reason(c, {"CLOUDML_LIVE_TARGET": "fake"}) is None for c in _live.REQUIRED)
    assert no_credential_lookups == []


def test_aws_credentials_are_resolved_without_instance_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    """The root conftest's fake keys resolve; with none at all, the answer is a reason, not an IMDS call."""
    assert _live._aws_credentials({}) is None  # AWS_ACCESS_KEY_ID=testing from tests/conftest.py
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.delenv("AWS_EC2_METADATA_DISABLED", raising=False)  # IMDS is removed from the chain anyway
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9")  # and would be refused fast
    started = time.monotonic()
    reason = _live._aws_credentials({})
    assert reason is not None and "no AWS credentials" in reason
    assert time.monotonic() - started < 2


def test_a_hard_timeout_interrupts_and_the_cleanup_still_runs() -> None:
    ran: list[str] = []

    def body(cleanup: _live.Cleanup) -> None:
        cleanup.add("resource", lambda: ran.append("deleted"))
        time.sleep(5)

    with pytest.raises(_live.LiveTimeout, match=r"overran its hard timeout of 0\.2s"):
        _live.run_scenario(body, fake=True, limit=0.2, cleanup_limit=5, what="scenario")
    assert ran == ["deleted"]


def test_a_failed_cleanup_fails_an_otherwise_passing_scenario() -> None:
    def body(cleanup: _live.Cleanup) -> None:
        cleanup.add("endpoint x", lambda: 1 / 0)
        cleanup.add("unserved by the fake", lambda: 1 / 0, fake_unserved=True)

    with pytest.raises(AssertionError, match=r"cleanup could not delete:\n  endpoint x: ZeroDivisionError"):
        _live.run_scenario(body, fake=True, limit=5, cleanup_limit=5, what="scenario")
