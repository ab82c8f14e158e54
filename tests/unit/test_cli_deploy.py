"""`cloudml deploy`, `rollback`, `rollout resume|promote|history|timeline`, `endpoints list|show|delete`, `invoke`.

The CLI runs in-process (typer's CliRunner) against a local backend in a temp folder; the endpoints
it starts are real gateway and worker processes, stopped at teardown.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import cloudml
from cloudml.adapter import RolloutOutcome
from cloudml.adapters.local.serving.endpoints import FileStateStore
from cloudml.cli import deploy as deploy_cli
from cloudml.cli.main import app
from cloudml.spec.deployment import Deployment
from tests.serving_helpers import model_folder, serving_pids

HEADER = "apiVersion: cloudml/v1\nkind: Deployment\n"
ALWAYS_ALARM = """alarms:
  - {name: errors, metric: error_rate, threshold: 0.05, period: 1s, treat_missing_data: breaching}
"""


# -- helpers ---------------------------------------------------------------------------------------------------------
def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def stop_everything(root: Path) -> list[int]:
    adapter = cloudml.get_adapter("local", root=str(root))
    with contextlib.suppress(Exception):
        adapter.endpoints.shutdown()
    deadline = time.monotonic() + 10
    while serving_pids(root) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = serving_pids(root)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return left


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def deployment_yaml(folder: Path, name: str, version: int, predictor: str, strategy: str, extra: str = "") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(HEADER + f"endpoint: ep\nmodel: {{group: toy, version: {version}}}\nstrategy: {strategy}\n"
                    f"serving: {{predictor: 'pred:{predictor}'}}\n" + extra)
    return path


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deploy_cli.out, "_width", 250)
    monkeypatch.setattr(deploy_cli.err, "_width", 250)


class Env:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.root = base / "state"
        self.adapter = cloudml.get_adapter("local", root=str(self.root))
        for v in (1, 2, 3):
            self.adapter.register_model("toy", str(model_folder(base, f"v{v}")), approval="approved")

    def deploy_v1(self) -> None:
        f = deployment_yaml(self.base, "v1", 1, "Good", "{all_at_once: {bake: 0s}}")
        code, out, err = cli("deploy", str(f), "--root", str(self.root))
        assert code == 0, out + err


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    try:
        yield e
    finally:
        assert not stop_everything(e.root)


@pytest.fixture(scope="module")
def rolled_back(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Env, tuple[int, str, str]]]:
    """v1 deployed, then v2 (a model that fails) canaried by `cloudml deploy` and rolled back."""
    e = Env(tmp_path_factory.mktemp("cli"))
    try:
        e.deploy_v1()
        f = deployment_yaml(e.base, "v2", 2, "Bad", "{canary: {percent: 50, bake: 10s}}", ALWAYS_ALARM)
        yield e, cli("deploy", str(f), "--root", str(e.root))
    finally:
        stop_everything(e.root)


# -- deploy ------------------------------------------------------------------------------------------------------------
def test_deploy_succeeds_with_exit_0(env: Env) -> None:
    f = deployment_yaml(env.base, "v1", 1, "Good", "{all_at_once: {bake: 0s}}")
    code, out, err = cli("deploy", str(f), "--root", str(env.root))
    assert code == 0, out + err
    assert "rollout started" in out
    assert "succeeded ep" in out
    assert "next:" not in err
    assert env.adapter.invoke("ep", [[1, 2]]) == {"predictions": [3], "deployment": "toy-v1"}


def test_deploy_rolled_back_exits_1_with_the_next_hint(rolled_back: tuple[Env, tuple[int, str, str]]) -> None:
    e, (code, out, err) = rolled_back
    assert code == 1, out + err
    assert "rolled back ep: alarm errors" in out
    assert out.count("rollout started") == 1 and "green=toy-v2" in out  # not v1's rollout again
    assert "next:" in err and "cloudml rollout timeline ep" in err and "cloudml rollout history ep" in err
    status = e.adapter.endpoint_status("ep")
    assert status["traffic"]["weights"] == {"toy-v1": 100}
    assert set(status["deployments"]) == {"toy-v1"}


def test_deploy_of_a_pipeline_or_a_missing_file_exits_2(env: Env) -> None:
    pipeline = env.base / "p.yaml"
    pipeline.write_text("apiVersion: cloudml/v1\nkind: Pipeline\nname: p\nsteps:\n  - {name: a, command: echo}\n")
    code, _, err = cli("deploy", str(pipeline), "--root", str(env.root))
    assert code == 2 and "cloudml run" in err
    assert cli("deploy", str(env.base / "missing.yaml"), "--root", str(env.root))[0] == 2


# -- invoke ------------------------------------------------------------------------------------------------------------
def test_invoke_with_json_data(rolled_back: tuple[Env, Any]) -> None:
    e, _ = rolled_back
    code, out, err = cli("invoke", "ep", "--data", "[[1, 2], [3, 4]]", "--root", str(e.root))
    assert code == 0, err
    assert json.loads(out) == {"predictions": [3, 7], "deployment": "toy-v1"}
    code, out, _ = cli("invoke", "ep", "-d", '{"instances": [[5]]}', "--root", str(e.root))
    assert code == 0 and json.loads(out)["predictions"] == [5]


def test_invoke_with_data_from_a_file(rolled_back: tuple[Env, Any], tmp_path: Path) -> None:
    e, _ = rolled_back
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"instances": [[1, 1], [2, 2]]}))
    code, out, err = cli("invoke", "ep", "--data", f"@{request}", "--root", str(e.root))
    assert code == 0, err
    assert json.loads(out)["predictions"] == [2, 4]


def test_invoke_pinned_to_a_deployment(rolled_back: tuple[Env, Any]) -> None:
    e, _ = rolled_back
    code, out, _ = cli("invoke", "ep", "--data", "[[1]]", "--deployment", "toy-v1", "--root", str(e.root))
    assert code == 0 and json.loads(out)["deployment"] == "toy-v1"
    code, _, err = cli("invoke", "ep", "--data", "[[1]]", "--deployment", "ghost", "--root", str(e.root))
    assert code == 1 and "ghost" in err


@pytest.mark.parametrize("data", ["not json", "[[1, 2]", '{"instances": 5}', "5", '"text"'])
def test_invoke_with_malformed_data_exits_2(rolled_back: tuple[Env, Any], data: str) -> None:
    e, _ = rolled_back
    code, out, err = cli("invoke", "ep", "--data", data, "--root", str(e.root))
    assert code == 2
    assert "error:" in err and out == ""


def test_invoke_unknown_endpoint_exits_1(rolled_back: tuple[Env, Any]) -> None:
    e, _ = rolled_back
    code, _, err = cli("invoke", "nope", "--data", "[[1]]", "--root", str(e.root))
    assert code == 1 and "nope" in err and "next:" in err


def test_invoke_with_a_missing_data_file_is_a_clear_error(rolled_back: tuple[Env, Any], tmp_path: Path) -> None:
    e, _ = rolled_back
    code, _, err = cli("invoke", "ep", "--data", f"@{tmp_path / 'missing.json'}", "--root", str(e.root))
    assert code == 2 and "missing.json" in err


# -- endpoints, history, timeline ------------------------------------------------------------------------------------------
def test_endpoints_list(rolled_back: tuple[Env, Any]) -> None:
    e, _ = rolled_back
    code, out, _ = cli("endpoints", "list", "--root", str(e.root))
    assert code == 0
    (row,) = [ln for ln in out.splitlines() if " ep " in ln]
    assert "toy-v1" in row and "rolled_back" in row and "toy-v1 100%" in row


def test_endpoints_show(rolled_back: tuple[Env, Any]) -> None:
    e, _ = rolled_back
    code, out, _ = cli("endpoints", "show", "ep", "--root", str(e.root))
    assert code == 0
    assert "endpoint ep" in out and "rolled_back" in out
    assert "toy-v1" in out and "100%" in out
    assert "url: http://127.0.0.1:" in out and "/endpoints/ep/predict" in out
    code, _, err = cli("endpoints", "show", "nope", "--root", str(e.root))
    assert code == 1 and "nope" in err


def test_rollout_history(rolled_back: tuple[Env, Any]) -> None:
    e, _ = rolled_back
    code, out, _ = cli("rollout", "history", "ep", "--root", str(e.root))
    assert code == 0
    events = out
    for event in ("rollout started", "created", "ready", "traffic", "baking", "rolled back", "removed"):
        assert event in events
    assert events.index("rolled back") > events.rindex("rollout started")
    assert "alarm=errors" in out
    code, _, err = cli("rollout", "history", "nope", "--root", str(e.root))
    assert code == 2 and "no rollout history" in err


def test_rollout_timeline_html_and_png(rolled_back: tuple[Env, Any], tmp_path: Path) -> None:
    e, _ = rolled_back
    html = tmp_path / "x.html"
    code, out, err = cli("rollout", "timeline", "ep", "-o", str(html), "--root", str(e.root))
    assert code == 0, err
    assert "wrote" in out
    page = html.read_text()
    assert page.lstrip().lower().startswith(("<!doctype html", "<html")) and "<svg" in page
    assert "toy-v2" in page and "rolled back" in page
    png = tmp_path / "x.png"
    code, out, err = cli("rollout", "timeline", "ep", "-o", str(png), "--root", str(e.root))
    assert code == 0, err
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    code, _, err = cli("rollout", "timeline", "ep", "-o", str(tmp_path / "x.txt"), "--root", str(e.root))
    assert code == 2 and "error:" in err
    code, _, err = cli("rollout", "timeline", "nope", "-o", str(tmp_path / "y.html"), "--root", str(e.root))
    assert code == 2


# -- rollback, resume, promote ------------------------------------------------------------------------------------------
def start_paused_canary(env: Env, bake: str = "30s") -> None:
    """v2 canaried at 50% and left paused mid-bake (as if its controller had been stopped)."""
    env.deploy_v1()
    stop = threading.Event()
    box: dict[str, Any] = {}
    d = Deployment.model_validate({"endpoint": "ep", "model": {"group": "toy", "version": 2},
                                   "strategy": {"canary": {"percent": 50, "bake": bake, "final_bake": "0s"}},
                                   "serving": {"predictor": "pred:Good"}})
    t = threading.Thread(target=lambda: box.update(result=env.adapter.deploy(d, stop=stop, poll=0.1)), daemon=True)
    t.start()
    store = FileStateStore(env.root)
    wait_for(lambda: (store.load("ep") or {}).get("phase_started"), 30, "the canary bake to start")
    stop.set()
    t.join(10)
    assert not t.is_alive()
    assert (store.load("ep") or {})["status"] == "in_progress"
    assert env.adapter.endpoint_status("ep")["traffic"]["weights"] == {"toy-v1": 50, "toy-v2": 50}


def test_rollback_of_a_paused_rollout(env: Env) -> None:
    start_paused_canary(env)
    code, out, err = cli("rollback", "ep", "--root", str(env.root))
    assert code == 0, err
    assert "rolled back ep" in out and "manual rollback" in out
    status = env.adapter.endpoint_status("ep")
    assert status["traffic"]["weights"] == {"toy-v1": 100}
    assert set(status["deployments"]) == {"toy-v1"}
    assert status["rollout"]["status"] == "rolled_back"


def test_rollback_reaches_a_running_controller(env: Env) -> None:
    env.deploy_v1()
    d = Deployment.model_validate({"endpoint": "ep", "model": {"group": "toy", "version": 2},
                                   "strategy": {"canary": {"percent": 50, "bake": "60s"}},
                                   "serving": {"predictor": "pred:Good"}})
    box: dict[str, Any] = {}
    t = threading.Thread(target=lambda: box.update(result=env.adapter.deploy(d, poll=0.1)), daemon=True)
    t.start()
    store = FileStateStore(env.root)
    wait_for(lambda: (store.load("ep") or {}).get("phase_started"), 30, "the canary bake to start")
    code, out, err = cli("rollback", "ep", "--root", str(env.root))
    t.join(30)
    assert code == 0, err
    assert "rolled back ep: manual rollback" in out
    assert box["result"].outcome is RolloutOutcome.ROLLED_BACK
    assert box["result"].reason == "manual rollback"
    assert env.adapter.endpoint_status("ep")["traffic"]["weights"] == {"toy-v1": 100}


def test_rollback_after_success_exits_1_with_a_hint(env: Env) -> None:
    env.deploy_v1()
    f = deployment_yaml(env.base, "v2", 2, "Good", "{all_at_once: {bake: 0s}}")
    assert cli("deploy", str(f), "--root", str(env.root))[0] == 0
    code, _, err = cli("rollback", "ep", "--root", str(env.root))
    assert code == 1
    assert "already retired" in err and "next:" in err
    assert cli("rollback", "nope", "--root", str(env.root))[0] == 1


def test_rollout_resume_finishes_a_paused_rollout(env: Env) -> None:
    start_paused_canary(env, bake="2s")
    code, out, err = cli("rollout", "resume", "ep", "--root", str(env.root))
    assert code == 0, err
    assert "succeeded ep" in out
    assert env.adapter.endpoint_status("ep")["traffic"]["weights"] == {"toy-v2": 100}


def test_rollout_promote_a_paused_rollout(env: Env) -> None:
    start_paused_canary(env, bake="1h")
    code, out, err = cli("rollout", "promote", "ep", "--root", str(env.root))
    assert code == 0, err
    assert "promoted ep" in out
    status = env.adapter.endpoint_status("ep")
    assert status["traffic"]["weights"] == {"toy-v2": 100}
    assert set(status["deployments"]) == {"toy-v2"}


def test_deploy_detach_returns_and_the_background_rollout_is_promoted(env: Env) -> None:
    env.deploy_v1()
    f = deployment_yaml(env.base, "v2", 2, "Good", "{ab_test: {percent: 50, duration: 1h}}")
    started = time.monotonic()
    code, out, err = cli("deploy", str(f), "--root", str(env.root), "--detach")
    assert code == 0, out + err
    assert time.monotonic() - started < 60  # not the hour-long A/B test
    assert "rollout started" in out and "in the background" in out and "cloudml rollout promote ep" in err
    log = next((env.root / "logs").glob("deploy-ep-*.log"))
    deadline = time.monotonic() + 30
    while env.adapter.endpoint_status("ep")["traffic"]["weights"] != {"toy-v1": 50, "toy-v2": 50}:
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    code, out, err = cli("rollout", "promote", "ep", "--root", str(env.root))  # the background process obeys
    assert code == 0, out + err
    assert env.adapter.endpoint_status("ep")["traffic"]["weights"] == {"toy-v2": 100}
    deadline = time.monotonic() + 30
    while "succeeded ep" not in log.read_text():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)


def test_deploy_detach_reports_a_background_failure(env: Env) -> None:
    f = deployment_yaml(env.base, "v9", 9, "Good", "{all_at_once: {}}")  # no version 9 in the registry
    code, _, err = cli("deploy", str(f), "--root", str(env.root), "--detach")
    assert code == 1 and "background deploy stopped" in err and "model toy v9 does not exist" in err


def test_endpoints_delete(env: Env) -> None:
    env.deploy_v1()
    assert serving_pids(env.root)
    code, out, _ = cli("endpoints", "delete", "ep", "--root", str(env.root))
    assert code == 0 and "deleted ep" in out
    code, out, _ = cli("endpoints", "list", "--root", str(env.root))
    assert code == 0 and " ep " not in out
    # the workers are gone, and with the last endpoint the gateway too
    wait_for(lambda: not serving_pids(env.root), 10, "the endpoint's processes to exit")
    code, _, err = cli("endpoints", "delete", "ep", "--root", str(env.root))
    assert code == 1 and "ep" in err


# -- a rollback request that arrives after the last bake --------------------------------------------------------------
@pytest.fixture(scope="module")
def late_rollback(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`cloudml rollback` sent while a running controller waits out the termination wait before retiring blue."""
    e = Env(tmp_path_factory.mktemp("late"))
    try:
        e.deploy_v1()
        d = Deployment.model_validate({"endpoint": "ep", "model": {"group": "toy", "version": 2},
                                       "strategy": {"all_at_once": {"bake": "0s"}},
                                       "rollback": {"termination_wait": "3s"}, "serving": {"predictor": "pred:Good"}})
        box: dict[str, Any] = {}
        t = threading.Thread(target=lambda: box.update(result=e.adapter.deploy(d, poll=0.1)), daemon=True)
        t.start()
        store = FileStateStore(e.root)
        wait_for(lambda: (store.load("ep") or {}).get("weights") == {"toy-v1": 0, "toy-v2": 100}, 30,
                 "all traffic on v2 (the termination wait starts)")
        code, out, err = cli("rollback", "ep", "--root", str(e.root))
        t.join(30)
        yield {"env": e, "code": code, "out": out, "err": err, "deploy": box["result"], "state": store.load("ep")}
    finally:
        stop_everything(e.root)


def test_rollback_during_the_termination_wait_is_honoured(late_rollback: dict[str, Any]) -> None:
    # blue still exists while the termination wait runs, so the running controller goes back to it
    assert late_rollback["deploy"].outcome is RolloutOutcome.ROLLED_BACK
    assert late_rollback["state"]["status"] == "rolled_back"
    assert {k: v for k, v in late_rollback["state"]["weights"].items() if v} == {"toy-v1": 100}
    assert late_rollback["code"] == 0 and "rolled back" in late_rollback["out"]


def test_stale_rollback_request_does_not_hit_the_next_rollout(late_rollback: dict[str, Any]) -> None:
    e: Env = late_rollback["env"]
    d = Deployment.model_validate({"endpoint": "ep", "model": {"group": "toy", "version": 3},
                                   "strategy": {"canary": {"percent": 10, "bake": "2s", "final_bake": "0s"}},
                                   "serving": {"predictor": "pred:Good"}})
    result = e.adapter.deploy(d, poll=0.1)
    assert result.outcome is RolloutOutcome.SUCCEEDED, result.reason
