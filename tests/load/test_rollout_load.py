"""Rollouts under continuous load on the real local gateway and workers.

Client threads send requests over keep-alive HTTP/1.1 connections (http.client) for the whole
rollout: traffic shifts, the automatic rollback, the removal of the failed deployment, a controller
killed with SIGKILL and its resume. Every loop is bounded in count and in time and stops by itself.
Nothing here asserts a duration: times are only generous deadlines while waiting.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cloudml
from cloudml.adapter import RolloutOutcome
from cloudml.adapters.local.serving.endpoints import FileStateStore
from cloudml.spec.deployment import Deployment
from tests.serving_helpers import model_folder, serving_pids

pytestmark = pytest.mark.slow

BLUE, GREEN = "toy-v1", "toy-v2"


# -- helpers ---------------------------------------------------------------------------------------------------------
def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Any]:
    adapter = cloudml.get_adapter("local", root=str(tmp_path / "state"))
    for v in (1, 2):
        adapter.register_model("toy", str(model_folder(tmp_path, f"v{v}")), approval="approved")
    try:
        yield adapter
    finally:
        with contextlib.suppress(Exception):
            adapter.endpoints.shutdown()
        root = Path(adapter.root)
        deadline = time.monotonic() + 10
        while serving_pids(root) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = serving_pids(root)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert not left, f"processes still running 10 s after shutdown(): {left}"


def spec(version: int, predictor: str, strategy: Any, alarms: list[dict[str, Any]] | None = None,
         env: dict[str, str] | None = None) -> Deployment:
    return Deployment.model_validate({
        "endpoint": "ep", "model": {"group": "toy", "version": version}, "strategy": strategy,
        "alarms": alarms or [], "serving": {"predictor": f"pred:{predictor}", "env": env or {}}})


def deploy_blue(local: Any) -> None:
    result = local.deploy(spec(1, "Good", {"all_at_once": {"bake": "0s"}}), poll=0.1)
    assert result.outcome is RolloutOutcome.SUCCEEDED


class Load:
    """``threads`` clients, each on its own keep-alive connection, until stopped (or max count/time)."""

    def __init__(self, local: Any, endpoint: str, threads: int = 16, max_seconds: float = 45.0,
                 max_requests: int = 20_000) -> None:
        base = local.endpoints.gateway_url(start=False).removeprefix("http://")
        host, port = base.split(":")
        self.host, self.port, self.path = host, int(port), f"/endpoints/{endpoint}/predict"
        self.threads = threads
        self.max_seconds = max_seconds
        self.max_requests = max_requests
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.answers: list[tuple[float, int, str | None]] = []  # (time, status, deployment)
        self.connection_errors: list[str] = []
        self._workers: list[threading.Thread] = []

    def _client(self, n: int) -> None:
        deadline = time.monotonic() + self.max_seconds
        conn = http.client.HTTPConnection(self.host, self.port, timeout=15)
        body = json.dumps({"instances": [[n, 1]]}).encode()
        headers = {"content-type": "application/json"}
        try:
            for _ in range(self.max_requests):
                if self.stop.is_set() or time.monotonic() > deadline:
                    break
                try:
                    conn.request("POST", self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    raw = resp.read()
                except (OSError, http.client.HTTPException) as e:
                    with self.lock:
                        self.connection_errors.append(f"{time.time():.3f} {type(e).__name__}: {e}")
                    conn.close()
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=15)
                    continue
                try:
                    deployment = json.loads(raw).get("deployment")
                except (ValueError, AttributeError):
                    deployment = None
                with self.lock:
                    self.answers.append((time.time(), resp.status, deployment))
        finally:
            conn.close()

    def __enter__(self) -> Load:
        self._workers = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(self.threads)]
        for t in self._workers:
            t.start()
        wait_for(lambda: len(self.answers) >= 4 * self.threads, 20, "the clients to get going")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        for t in self._workers:
            t.join(30)
        assert not any(t.is_alive() for t in self._workers), "client threads did not stop"

    def settle(self, seconds: float) -> None:
        """Keep the load on a little longer (what happens right after a rollout matters too)."""
        self.stop.wait(seconds)

    # -- what the clients saw
    def by(self) -> Counter[tuple[int, str | None]]:
        with self.lock:
            return Counter((status, dep) for _, status, dep in self.answers)

    def after(self, t: float) -> Counter[tuple[int, str | None]]:
        with self.lock:
            return Counter((status, dep) for at, status, dep in self.answers if at > t)

    def longest_gap(self, deployment: str) -> float:
        """The longest stretch without a 200 from ``deployment`` while the load ran."""
        with self.lock:
            times = sorted(at for at, status, dep in self.answers if status == 200 and dep == deployment)
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


def event_time(history: list[dict[str, Any]], event: str) -> float:
    return float(next(h["t"] for h in reversed(history) if h["event"] == event))


def assert_clean(load: Load, healthy: set[str]) -> None:
    """No connection error at all; every answer names its deployment; healthy ones never failed."""
    assert load.connection_errors == [], load.connection_errors[:5]
    seen = load.by()
    assert not [k for k in seen if k[1] is None], f"answers not from a deployment: {seen}"
    for dep in healthy:
        bad = {k: v for k, v in seen.items() if k[1] == dep and k[0] != 200}
        assert not bad, f"{dep} answered non-200: {bad}"
        assert seen[(200, dep)] > 0


def assert_only(local: Any, live: str) -> None:
    status = local.endpoint_status("ep")
    assert status["traffic"]["weights"] == {live: 100}
    assert set(status["deployments"]) == {live}
    assert status["deployments"][live]["ready"]
    assert status["rollout"]["live"] == live


# -- (a) a canary that fails every request -------------------------------------------------------------------------
def test_failing_canary_is_rolled_back_under_load_without_a_dropped_connection(local: Any) -> None:
    deploy_blue(local)
    errors_alarm = [{"name": "errors", "metric": "error_rate", "threshold": 0.05, "period": "1s"}]
    with Load(local, "ep", threads=16) as load:
        result = local.deploy(spec(2, "Bad", {"canary": {"percent": 20, "bake": "40s"}}, errors_alarm), poll=0.1)
        load.settle(1.5)
    assert result.outcome is RolloutOutcome.ROLLED_BACK, result.reason
    assert result.alarm == "errors" and result.metric_value is not None and result.metric_value > 0.5
    assert_clean(load, healthy={BLUE})
    seen = load.by()
    assert seen[(500, GREEN)] > 0, seen  # the canary did get (and fail) requests
    assert not {k for k in seen if k[1] == GREEN and k[0] != 500}
    history = FileStateStore(Path(local.root)).load("ep")["history"]  # type: ignore[index]
    removed = event_time(history, "removed")
    assert set(load.after(removed)) == {(200, BLUE)}  # after the removal only blue answers
    assert load.longest_gap(BLUE) < 5.0  # blue never stalled (generous)
    assert_only(local, BLUE)
    # green's worker is gone: only the gateway and blue's worker are left running
    wait_for(lambda: set(serving_pids(Path(local.root))) == _blue_and_gateway(local), 10, "green's worker to exit")
    # the gateway counted every answer of blue, none as an error
    metrics = local.endpoints.traffic("ep")["metrics"]
    assert metrics[BLUE]["errors"] == 0 and metrics[BLUE]["requests"] >= seen[(200, BLUE)]
    assert metrics[GREEN]["errors"] == metrics[GREEN]["requests"] > 0


def _blue_and_gateway(local: Any) -> set[int]:
    info = json.loads((Path(local.root) / "gateway.json").read_text())
    blue = local.endpoints._deployments("ep")[BLUE]["pids"]
    return {int(info["pid"]), *map(int, blue)}


# -- (b) a canary that is slow ----------------------------------------------------------------------------------
def test_slow_canary_is_rolled_back_by_the_latency_alarm(local: Any) -> None:
    deploy_blue(local)
    latency_alarm = [{"name": "latency", "metric": "latency_p99", "threshold": "200ms", "period": "1s"}]
    with Load(local, "ep", threads=16) as load:
        result = local.deploy(spec(2, "Slow", {"canary": {"percent": 20, "bake": "40s"}}, latency_alarm,
                                   env={"PRED_SLEEP": "0.3"}), poll=0.1)
        load.settle(1.5)
    assert result.outcome is RolloutOutcome.ROLLED_BACK, result.reason
    assert result.alarm == "latency"
    assert result.metric_value is not None and result.metric_value >= 0.2
    assert_clean(load, healthy={BLUE, GREEN})  # slow, not failing: every answer is a 200
    assert load.by()[(200, GREEN)] > 0
    assert_only(local, BLUE)


# -- (c) the controller killed with SIGKILL mid-bake, then resumed --------------------------------------------------
CONTROLLER = """
import sys
import cloudml
from cloudml.spec.deployment import Deployment
adapter = cloudml.get_adapter("local", root=sys.argv[1])
adapter.deploy(Deployment.model_validate_json(sys.argv[2]), poll=0.1)
"""


def test_controller_killed_mid_bake_then_resumed_under_load(local: Any, tmp_path: Path) -> None:
    deploy_blue(local)
    green = spec(2, "Good", {"canary": {"percent": 50, "bake": "6s", "final_bake": "1s"}},
                 [{"name": "errors", "metric": "error_rate", "threshold": 0.05, "period": "1s"}])
    store = FileStateStore(Path(local.root))
    log = open(tmp_path / "controller.log", "wb")  # noqa: SIM115 - closed below
    with Load(local, "ep", threads=8) as load:
        proc = subprocess.Popen([sys.executable, "-c", CONTROLLER, str(local.root), green.model_dump_json(by_alias=True)],
                                stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        try:
            def baking() -> bool:
                s = store.load("ep") or {}
                return (s.get("green") == GREEN and s.get("status") == "in_progress" and s.get("phase_started") is not None
                        and s["phases"][s["phase"]]["phase"] == "bake")

            wait_for(baking, 30, "the controller to start the canary bake")
            load.stop.wait(1.0)  # some traffic on the 50/50 split
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(10) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            log.close()
        killed = store.load("ep")
        assert killed is not None and killed["status"] == "in_progress"
        assert killed["weights"] == {BLUE: 50, GREEN: 50}
        mid = time.time()
        load.stop.wait(1.0)  # the endpoint keeps serving with nobody driving the rollout
        assert {dep for _, dep in load.after(mid)} == {BLUE, GREEN}
        result = local.resume_rollout("ep", poll=0.1)
        load.settle(1.0)
    assert result.outcome is RolloutOutcome.SUCCEEDED, result.reason
    assert_clean(load, healthy={BLUE, GREEN})
    assert {k[0] for k in load.by()} == {200}
    assert_only(local, GREEN)
    final = store.load("ep")
    assert final is not None and final["status"] == "succeeded" and final["outcome"] == {"outcome": "succeeded"}
    history = final["history"]
    events = [h["event"] for h in history]
    this = events[max(i for i, e in enumerate(events) if e == "rollout started"):]
    assert "resumed" in this
    assert this.count("baking") == 2  # the canary bake went on where it was; then the final bake
    assert set(load.after(event_time(history, "retired"))) == {(200, GREEN)}


# -- what a removed deployment leaves behind in the gateway ------------------------------------------------------
def _gateway_sockets_to(root: Path, port: int) -> int:
    """Sockets of the gateway process whose remote end is 127.0.0.1:port (from /proc/net/tcp)."""
    gw = int(json.loads((root / "gateway.json").read_text())["pid"])
    inodes = set()
    for fd in os.listdir(f"/proc/{gw}/fd"):
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/{gw}/fd/{fd}")
            if link.startswith("socket:["):
                inodes.add(link[len("socket:["):-1])
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[9] in inodes and int(fields[2].split(":")[1], 16) == port:
            count += 1
    return count


def test_removed_deployment_leaves_no_sockets_in_the_gateway(local: Any) -> None:
    deploy_blue(local)
    root = Path(local.root)
    errors_alarm = [{"name": "errors", "metric": "error_rate", "threshold": 0.05, "period": "1s"}]
    with Load(local, "ep", threads=16) as load:
        result = local.deploy(spec(2, "Bad", {"canary": {"percent": 20, "bake": "40s"}}, errors_alarm), poll=0.1)
        load.settle(0.5)
    assert result.outcome is RolloutOutcome.ROLLED_BACK
    assert load.by()[(500, GREEN)] > 0
    green_port = int((root / "endpoints" / "ep" / GREEN / "port-0").read_text())
    time.sleep(1.0)  # let the worker's closes arrive
    assert _gateway_sockets_to(root, green_port) == 0
