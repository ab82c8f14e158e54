"""A pytest plugin for users' CI: a local backend in a temp folder, plus helpers to run, deploy and load-test.

Installed with cloudml (entry point ``pytest11``), so the fixture is available in any test suite:

.. code-block:: python

    def test_bad_model_is_rolled_back(cloudml_local):
        cloudml_local.run("pipelines/train.yaml", {"epochs": 1})
        with cloudml_local.traffic("churn", [[1.0, 2.0]], concurrency=8) as report:
            result = cloudml_local.deploy("deploy/canary.yaml")
        cloudml_local.assert_rollout(result, "rolled_back", alarm="errors")
        assert report.connection_errors == 0

Everything the harness starts (endpoint gateway and workers) is stopped when the test ends.

Example:
    >>> import tempfile
    >>> h = LocalHarness(tempfile.mkdtemp())
    >>> b = __import__("cloudml").PipelineBuilder("p"); _ = b.add_step("a", command="echo hi")
    >>> h.run(b.build()).status
    'succeeded'
    >>> h.close()
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

__all__ = ["LocalHarness", "TrafficReport", "cloudml_local"]


@dataclass
class TrafficReport:
    """What the clients saw: answers by status and by deployment, and connection errors."""

    sent: int = 0
    ok: int = 0
    status: dict[int, int] = field(default_factory=dict)
    by_deployment: dict[str, int] = field(default_factory=dict)
    errors_by_deployment: dict[str, int] = field(default_factory=dict)
    connection_errors: int = 0
    connection_error_samples: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, status: int | None, deployment: str | None, error: str | None = None) -> None:
        """Count one request."""
        with self._lock:
            self.sent += 1
            if status is None:
                self.connection_errors += 1
                if len(self.connection_error_samples) < 5 and error:
                    self.connection_error_samples.append(error)
                return
            self.status[status] = self.status.get(status, 0) + 1
            if status == 200:
                self.ok += 1
            if deployment:
                self.by_deployment[deployment] = self.by_deployment.get(deployment, 0) + 1
                if status >= 500:
                    self.errors_by_deployment[deployment] = self.errors_by_deployment.get(deployment, 0) + 1


class LocalHarness:
    """A local backend rooted in a temp folder, with helpers for tests."""

    def __init__(self, root: str | os.PathLike[str], **settings: Any) -> None:
        import cloudml

        self.root = Path(root)
        self.adapter: Any = cloudml.get_adapter("local", root=str(self.root), **settings)

    def run(self, pipeline: Any, parameters: dict[str, Any] | None = None, *, check: bool = True,
            **options: Any) -> Any:
        """Run a pipeline (model or file path) and wait; with ``check`` a failed run raises AssertionError."""
        import cloudml

        spec_dir = options.pop("spec_dir", None)
        if isinstance(pipeline, (str, os.PathLike)):
            spec_dir = spec_dir or str(Path(pipeline).resolve().parent)
            pipeline = cloudml.load(pipeline)
        handle = self.adapter.run(pipeline, parameters, spec_dir=spec_dir, **options)
        status = handle.wait()
        if check and status != "succeeded":
            raise AssertionError(f"run {handle.id} {status}: {handle.error}")
        return handle

    def register(self, group: str, path: str | os.PathLike[str], approval: str = "approved", **info: Any) -> Any:
        """Register a model folder as the next version of ``group``."""
        return self.adapter.register_model(group, str(path), approval=approval, **info)

    def deploy(self, deployment: Any, **options: Any) -> Any:
        """Roll out a deployment (model or file path) and return its RolloutResult."""
        import cloudml

        if isinstance(deployment, (str, os.PathLike)):
            deployment = cloudml.load(deployment)
        options.setdefault("poll", 0.1)
        return self.adapter.deploy(deployment, **options)

    def invoke(self, endpoint: str, instances: list[Any], deployment: str | None = None) -> dict[str, Any]:
        """One prediction request through the gateway."""
        return dict(self.adapter.invoke(endpoint, instances, deployment=deployment))

    def _address(self) -> tuple[str, int]:
        url = self.adapter.endpoints.gateway_url(start=False)
        host, port = url.removeprefix("http://").split(":")
        return host, int(port)

    @contextlib.contextmanager
    def traffic(self, endpoint: str, instances: list[Any], *, concurrency: int = 4,
                max_seconds: float = 120.0) -> Iterator[TrafficReport]:
        """Send requests from ``concurrency`` keep-alive clients while the ``with`` block runs."""
        report = TrafficReport()
        stop = threading.Event()
        body = json.dumps({"instances": instances}).encode()
        host, port = self._address()
        deadline = time.time() + max_seconds

        def client() -> None:
            conn = http.client.HTTPConnection(host, port, timeout=30)
            while not stop.is_set() and time.time() < deadline:
                try:
                    conn.request("POST", f"/endpoints/{endpoint}/predict", body,
                                 {"content-type": "application/json"})
                    resp = conn.getresponse()
                    payload = resp.read()
                    try:
                        deployment = json.loads(payload).get("deployment")
                    except ValueError:
                        deployment = None
                    report.add(resp.status, deployment)
                except (OSError, http.client.HTTPException) as e:
                    report.add(None, None, repr(e))
                    conn.close()
                    conn = http.client.HTTPConnection(host, port, timeout=30)
            conn.close()

        threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
        for t in threads:
            t.start()
        try:
            yield report
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=35)

    def send_traffic(self, endpoint: str, instances: list[Any], *, seconds: float = 1.0,
                     concurrency: int = 4) -> TrafficReport:
        """Send requests for ``seconds`` and return what the clients saw."""
        with self.traffic(endpoint, instances, concurrency=concurrency) as report:
            time.sleep(seconds)
        return report

    @staticmethod
    def assert_rollout(result: Any, outcome: str = "succeeded", *, alarm: str | None = None) -> None:
        """Assert a rollout's outcome (``succeeded``, ``rolled_back``, ``failed``) and, optionally, its alarm."""
        got = result.outcome.value
        assert got == outcome, f"rollout of {result.endpoint} {got} ({result.reason}); expected {outcome}"
        if alarm is not None:
            assert result.alarm == alarm, f"rolled back by {result.alarm!r}, expected {alarm!r}"

    def close(self) -> None:
        """Stop every endpoint process this harness started."""
        if (self.root / "endpoints").exists():
            self.adapter.endpoints.shutdown()


@pytest.fixture
def cloudml_local(tmp_path: Path) -> Iterator[LocalHarness]:
    """A :class:`LocalHarness` rooted in ``tmp_path``; its endpoint processes stop after the test."""
    harness = LocalHarness(tmp_path / "cloudml")
    try:
        yield harness
    finally:
        harness.close()
