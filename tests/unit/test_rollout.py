"""The rollout controller (cloudml.rollout) as a pure state machine over FakeTrafficBackend.

Time is fake: the controller's clock is a counter and its stop event advances that counter when the
controller waits, so hour-long bakes run in microseconds. A kill is simulated by raising ``Killed`` (a
BaseException nothing in the controller catches) right after a chosen side effect: the n-th backend
call or the n-th state save. Every test that resumes builds a fresh controller over the same backend
and store, as a new process would.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from cloudml.adapter import RolloutOutcome
from cloudml.errors import DeploymentError, NotFoundError, RollbackError
from cloudml.rollout import FakeTrafficBackend, MemoryStateStore, RolloutController
from cloudml.rollout_plan import linear_steps, plan_rollout
from cloudml.spec.deployment import Alarm, Deployment

EP = "ep"
ALARMS = [{"name": "errors", "metric": "error_rate", "threshold": 0.05, "period": "1s"}]
STRATEGIES: dict[str, Any] = {
    "all_at_once": {"all_at_once": {"bake": "10s"}},
    "blue_green": {"blue_green": {"bake": "10s"}},
    "canary": {"canary": {"percent": 10, "bake": "10s", "final_bake": "5s"}},
    "linear": {"linear": {"step_percent": 40, "interval": "5s"}},
    "shadow_promote": {"shadow": {"percent": 20, "duration": "10s", "promote": True}},
    "shadow_discard": {"shadow": {"percent": 20, "duration": "10s"}},
    "ab_keep_a": {"ab_test": {"percent": 50, "duration": "10s"}},
    "ab_promote": {"ab_test": {"percent": 30, "duration": "10s", "conclude": "promote"}},
}


class Killed(BaseException):
    """The controller process died here."""


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class FakeStop:
    """The controller's stop event: waiting advances the fake clock; ``at`` sets it at a given time."""

    def __init__(self, clock: Clock, at: float | None = None) -> None:
        self.clock = clock
        self.at = at
        self._set = False

    def is_set(self) -> bool:
        if self.at is not None and self.clock.t >= self.at:
            self._set = True
        return self._set

    def set(self) -> None:
        self._set = True

    def wait(self, timeout: float | None = None) -> bool:
        if self.is_set():
            return True
        self.clock.t += timeout or 0.0
        return self.is_set()


class Crash:
    """Counts side effects (backend calls that change something, state saves); raises Killed after the n-th."""

    def __init__(self) -> None:
        self.at: int | None = None
        self.n = 0

    def arm(self, at: int | None) -> None:
        self.at, self.n = at, 0

    def step(self) -> None:
        self.n += 1
        if self.at is not None and self.n == self.at:
            self.at = None
            raise Killed(f"killed after side effect {self.n}")


Journal = list[tuple[Any, ...]]


class Backend(FakeTrafficBackend):
    """FakeTrafficBackend with a journal, kill points, slow readiness and scripted alarm data.

    * A deployment is ready after ``ready_after`` readiness polls (a worker loading its model).
    * ``set_traffic`` asserts that every deployment given a positive weight is ready at that moment.
    * Deleting a deployment that does not exist raises NotFoundError, as LocalEndpoints.delete_deployment does.
    * Alarm data: deployments in ``bad`` breach every alarm once they get live or mirrored traffic.
    """

    def __init__(self, clock: Clock, journal: Journal, crash: Crash, *, ready_after: int = 2,
                 bad: set[str] | None = None,
                 points: Callable[[str, Alarm], list[float | None]] | None = None) -> None:
        super().__init__()
        self.clock, self.journal, self.crash = clock, journal, crash
        self.ready_after = ready_after
        self.bad = bad or set()
        self.points_fn = points
        self.polls: dict[str, int] = {}
        self.need: dict[str, int] = {}
        self.dead: set[str] = set()
        self.calls: list[tuple[Any, ...]] = []

    def ready(self, name: str) -> bool:
        return (name in self.deployments.get(EP, set()) and name not in self.dead
                and self.polls.get(name, 0) >= self.need.get(name, self.ready_after))

    def create_deployment(self, endpoint: str, name: str, deployment: Deployment, model: dict[str, Any]) -> None:
        super().create_deployment(endpoint, name, deployment, model)
        self.polls.setdefault(name, 0)
        self.need.setdefault(name, self.ready_after)
        self._did("create_deployment", name)

    def is_ready(self, endpoint: str, name: str) -> bool:
        if name in self.deployments.get(endpoint, set()):
            self.polls[name] = self.polls.get(name, 0) + 1
        return self.ready(name)

    def set_traffic(self, endpoint: str, weights: dict[str, int], mirror: dict[str, int]) -> None:
        not_ready = [n for n, w in weights.items() if w > 0 and not self.ready(n)]
        assert not not_ready, f"traffic {weights} names deployments that are not ready: {not_ready}"
        super().set_traffic(endpoint, weights, mirror)
        self._did("set_traffic", dict(weights), dict(mirror))

    def delete_deployment(self, endpoint: str, name: str) -> None:
        if name not in self.deployments.get(endpoint, set()):
            raise NotFoundError(f"{endpoint} has no deployment {name}", backend="fake")
        super().delete_deployment(endpoint, name)
        self._did("delete_deployment", name)

    def alarm_datapoints(self, endpoint: str, name: str, alarm: Alarm) -> list[float | None]:
        self.calls.append(("alarm", name, alarm.name, self.clock.t))
        if self.points_fn is not None:
            return self.points_fn(name, alarm)
        serving = self.traffic.get(endpoint, {}).get(name, 0) or self.mirror.get(endpoint, {}).get(name, 0)
        if name in self.bad and serving:
            return [0.5]
        return [0.0] if serving else [None]

    def _did(self, *entry: Any) -> None:
        self.journal.append(("call", *entry))
        self.calls.append(entry)
        self.crash.step()


class Store(MemoryStateStore):
    """MemoryStateStore that journals every save (and may be killed right after one)."""

    def __init__(self, journal: Journal, crash: Crash) -> None:
        super().__init__()
        self.journal, self.crash = journal, crash
        self.saves = 0

    def save(self, endpoint: str, state: dict[str, Any]) -> None:
        super().save(endpoint, state)
        self.saves += 1
        self.journal.append(("save", copy.deepcopy(state)))
        self.crash.step()


class World:
    """One endpoint: a backend, a store and a clock that outlive controllers."""

    def __init__(self, **backend: Any) -> None:
        self.clock = Clock()
        self.journal: Journal = []
        self.crash = Crash()
        self.backend = Backend(self.clock, self.journal, self.crash, **backend)
        self.store = Store(self.journal, self.crash)

    def controller(self, stop_at: float | None = None, ready_timeout: float = 30.0) -> RolloutController:
        return RolloutController(self.backend, self.store, poll=1.0, ready_timeout=ready_timeout, clock=self.clock,
                                 stop=FakeStop(self.clock, stop_at))  # type: ignore[arg-type]

    def with_blue(self) -> World:
        """v1 live at 100% before the test starts; the journal then starts empty."""
        result = self.controller().deploy(spec(1, "all_at_once", bake="0s"), model_name="v1")
        assert result.outcome is RolloutOutcome.SUCCEEDED
        assert self.backend.traffic[EP] == {"v1": 100}
        self.journal.clear()
        self.backend.calls.clear()
        return self

    def state(self) -> dict[str, Any]:
        state = self.store.load(EP)
        assert state is not None
        return state

    def assert_consistent(self, live: str, status: str) -> None:
        """Final and coherent: 100% on one ready deployment, nothing mirrored, every other deployment removed."""
        state = self.state()
        assert state["status"] == status
        assert state["live"] == live
        assert self.backend.traffic[EP] == {live: 100}
        assert self.backend.mirror[EP] == {}
        assert self.backend.deployments[EP] == {live}
        assert self.backend.ready(live)
        assert {k: v for k, v in state["weights"].items() if v} == {live: 100}


def spec(version: int, strategy: str | dict[str, Any], *, bake: str | None = None, alarms: Any = ALARMS,
         **kw: Any) -> Deployment:
    if isinstance(strategy, str) and strategy in STRATEGIES:
        strategy = copy.deepcopy(STRATEGIES[strategy])
    if bake is not None:
        strategy = {strategy: {"bake": bake}} if isinstance(strategy, str) else strategy
    data: dict[str, Any] = {"endpoint": EP, "model": {"group": "g", "version": version}, "strategy": strategy,
                            "alarms": alarms, **kw}
    data.setdefault("rollback", {"termination_wait": "3s"})
    return Deployment.model_validate(data)


def traffic_changes(world: World) -> list[dict[str, int]]:
    return [{k: v for k, v in c[1].items() if v} for c in world.backend.calls if c[0] == "set_traffic"]


def events(world: World) -> list[str]:
    return [h["event"] for h in world.state()["history"]]


# -- plans ------------------------------------------------------------------------------------------------
def phase_kinds(d: Deployment) -> list[str]:
    return [p["phase"] for p in plan_rollout(d)["phases"]]


@pytest.mark.parametrize(("strategy", "kinds", "greens"), [
    ("all_at_once", ["create", "wait_ready", "shift", "bake", "retire"], [100]),
    ("blue_green", ["create", "wait_ready", "shift", "bake", "retire"], [100]),
    ("canary", ["create", "wait_ready", "shift", "bake", "shift", "bake", "retire"], [10, 100]),
    ("linear", ["create", "wait_ready", "shift", "bake", "shift", "bake", "shift", "bake", "retire"], [40, 80, 100]),
    ("shadow_promote", ["create", "wait_ready", "mirror", "bake", "promote", "shift", "retire"], [100]),
    ("shadow_discard", ["create", "wait_ready", "mirror", "bake", "discard"], []),
    ("ab_keep_a", ["create", "wait_ready", "shift", "bake", "conclude"], [50]),
    ("ab_promote", ["create", "wait_ready", "shift", "bake", "shift", "retire"], [30, 100]),
])
def test_plan_phases_per_strategy(strategy: str, kinds: list[str], greens: list[int]) -> None:
    d = spec(2, strategy)
    plan = plan_rollout(d)
    assert phase_kinds(d) == kinds
    shifts = [p["weights"] for p in plan["phases"] if p["phase"] == "shift"]
    assert [w["green"] for w in shifts] == greens
    assert all(sum(w.values()) == 100 for w in shifts)
    assert all(p["alarms"] == ["errors"] for p in plan["phases"] if p["phase"] == "bake")
    assert plan["strategy"] == strategy.split("_")[0] if strategy.startswith("shadow") else strategy


def test_plan_bake_durations() -> None:
    d = spec(2, "canary")
    bakes = [p["seconds"] for p in plan_rollout(d)["phases"] if p["phase"] == "bake"]
    assert bakes == [10.0, 5.0]
    no_final = spec(2, {"canary": {"percent": 25, "bake": "7s"}})
    assert [p["seconds"] for p in plan_rollout(no_final)["phases"] if p["phase"] == "bake"] == [7.0, 7.0]


@pytest.mark.parametrize(("step", "expected"), [(50, [50, 100]), (25, [25, 50, 75, 100]), (30, [30, 60, 90, 100]),
                                                (60, [60, 100]), (99, [99, 100])])
def test_linear_steps(step: float, expected: list[int]) -> None:
    assert linear_steps(step) == expected


def test_linear_steps_strictly_increase() -> None:
    for step in (33.3, 12.3, 7.7, 45.5, 3.3):
        steps = linear_steps(step)
        assert steps == sorted(set(steps)), (step, steps)


def test_small_canary_percent_is_not_silently_zero() -> None:
    try:
        d = spec(2, {"canary": {"percent": 0.4, "bake": "10s"}})
    except ValueError:
        return  # refused by the spec: fine
    first = next(p for p in plan_rollout(d)["phases"] if p["phase"] == "shift")
    assert first["weights"]["green"] >= 1


# -- the fake backend's own rules ------------------------------------------------------------------------
def test_fake_backend_refuses_weights_not_summing_to_100() -> None:
    b = FakeTrafficBackend()
    b.create_deployment(EP, "a", spec(1, "blue_green"), {})
    b.create_deployment(EP, "b", spec(1, "blue_green"), {})
    with pytest.raises(DeploymentError, match="sum to 100"):
        b.set_traffic(EP, {"a": 60, "b": 30}, {})
    with pytest.raises(DeploymentError, match="sum to 100"):
        b.set_traffic(EP, {"a": 60, "b": 50}, {})
    with pytest.raises(DeploymentError, match="unknown"):
        b.set_traffic(EP, {"a": 50, "zz": 50}, {})
    b.set_traffic(EP, {"a": 70, "b": 30}, {})
    assert b.traffic[EP] == {"a": 70, "b": 30}
    with pytest.raises(DeploymentError, match="still takes traffic"):
        b.delete_deployment(EP, "b")


def test_controller_refuses_traffic_the_backend_rejects() -> None:
    """A weight set the backend refuses stops the controller with a DeploymentError, not a silent skip."""
    w = World().with_blue()

    class Refusing(Backend):
        def set_traffic(self, endpoint: str, weights: dict[str, int], mirror: dict[str, int]) -> None:
            if weights.get("v2"):
                raise DeploymentError("the gateway refused the traffic split: weights must sum to 100, got 95")
            super().set_traffic(endpoint, weights, mirror)

    w.backend.__class__ = Refusing
    with pytest.raises(DeploymentError, match="sum to 100"):
        w.controller().deploy(spec(2, "canary"), model_name="v2")
    assert w.backend.traffic[EP] == {"v1": 100}
    assert w.state()["status"] == "in_progress"  # resumable, nothing half-applied
    w.backend.__class__ = Backend
    result = w.controller().resume(EP)
    assert result.outcome is RolloutOutcome.SUCCEEDED
    w.assert_consistent("v2", "succeeded")


# -- every strategy, healthy and unhealthy ----------------------------------------------------------------
EXPECTED_TRAFFIC = {
    "all_at_once": [{"v2": 100}],
    "blue_green": [{"v2": 100}],
    "canary": [{"v1": 90, "v2": 10}, {"v2": 100}],
    "linear": [{"v1": 60, "v2": 40}, {"v1": 20, "v2": 80}, {"v2": 100}],
    "shadow_promote": [{"v1": 100}, {"v2": 100}],
    "shadow_discard": [{"v1": 100}, {"v1": 100}],
    "ab_keep_a": [{"v1": 50, "v2": 50}, {"v1": 100}],
    "ab_promote": [{"v1": 70, "v2": 30}, {"v2": 100}],
}


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_healthy_rollout_follows_the_plan(strategy: str) -> None:
    w = World().with_blue()
    start = w.clock()
    result = w.controller().deploy(spec(2, strategy), model_name="v2", model={"uri": "/m/2"})
    assert result.outcome is RolloutOutcome.SUCCEEDED, result.reason
    assert traffic_changes(w) == EXPECTED_TRAFFIC[strategy]
    if strategy.startswith("shadow"):
        mirrors = [c[2] for c in w.backend.calls if c[0] == "set_traffic"]
        assert mirrors[0] == {"v2": 20}
    live = "v1" if strategy in ("shadow_discard", "ab_keep_a") else "v2"
    w.assert_consistent(live, "succeeded")
    # every bake ran its full (fake) time and no longer
    bake_total = sum(p["seconds"] for p in plan_rollout(spec(2, strategy))["phases"] if p["phase"] == "bake")
    wait = 3.0 if live == "v2" else 0.0
    assert bake_total + wait <= w.clock() - start <= bake_total + wait + 10
    assert w.state()["model"] == {"uri": "/m/2"}
    assert events(w)[-1] in ("rollout succeeded", "shadow discarded", "removed")


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_alarm_rolls_back_every_strategy(strategy: str) -> None:
    w = World(bad={"v2"}).with_blue()
    result = w.controller().deploy(spec(2, strategy), model_name="v2")
    assert result.outcome is RolloutOutcome.ROLLED_BACK
    assert result.alarm == "errors"
    assert result.metric_value == 0.5
    assert "errors" in result.reason and result.at is not None
    w.assert_consistent("v1", "rolled_back")
    # the alarm fired at the first bake: green never got more than its first share
    first = EXPECTED_TRAFFIC[strategy][0]
    assert traffic_changes(w) == [first, {"v1": 100}]
    names = events(w)
    assert names.index("rolled back") < names.index("removed")


def test_rollback_waits_the_termination_wait_before_removing_green() -> None:
    w = World(bad={"v2"}).with_blue()
    w.controller().deploy(spec(2, "canary", rollback={"termination_wait": "30s"}), model_name="v2")
    history = w.state()["history"]
    t_back = next(h["t"] for h in history if h["event"] == "rolled back")
    t_removed = next(h["t"] for h in history if h["event"] == "removed")
    assert t_removed - t_back == pytest.approx(30)


def test_blue_retired_after_the_termination_wait() -> None:
    w = World().with_blue()
    w.controller().deploy(spec(2, "blue_green", rollback={"termination_wait": "20s"}), model_name="v2")
    history = w.state()["history"]
    t_full = [h["t"] for h in history if h["event"] == "traffic"][-1]
    t_retired = next(h["t"] for h in history if h["event"] == "retired")
    assert t_retired - t_full >= 20 + 10  # final bake (10 s) then the termination wait


def test_alarm_firing_mid_bake_after_ok_periods() -> None:
    clock = Clock()
    start: dict[str, float] = {}

    def points(name: str, alarm: Alarm) -> list[float | None]:
        if name != "v2":
            return [0.0]
        elapsed = clock() - start.setdefault("t", clock())
        return [0.0, 0.0, 0.9 if elapsed >= 6 else 0.0]

    w = World(points=points)
    w.clock = w.backend.clock = clock
    w.with_blue()
    result = w.controller().deploy(
        spec(2, "canary", alarms=[{"name": "errors", "metric": "error_rate", "threshold": 0.05, "period": "1s",
                                   "evaluation_periods": 3, "datapoints_to_alarm": 1}]), model_name="v2")
    assert result.outcome is RolloutOutcome.ROLLED_BACK
    assert result.metric_value == 0.9
    alarm_checks = [c for c in w.backend.calls if c[0] == "alarm"]
    assert len(alarm_checks) >= 6  # several OK evaluations before the breach
    w.assert_consistent("v1", "rolled_back")


def test_m_of_n_alarm_needs_enough_breaching_periods() -> None:
    w = World(points=lambda name, alarm: [0.9, 0.0, 0.0, 0.9, 0.0] if name == "v2" else [0.0]).with_blue()
    result = w.controller().deploy(
        spec(2, "canary", alarms=[{"name": "errors", "metric": "error_rate", "threshold": 0.05,
                                   "evaluation_periods": 5, "datapoints_to_alarm": 3}]), model_name="v2")
    assert result.outcome is RolloutOutcome.SUCCEEDED


def test_automatic_rollback_off_ignores_alarms() -> None:
    w = World(bad={"v2"}).with_blue()
    result = w.controller().deploy(spec(2, "canary", rollback={"automatic": False}), model_name="v2")
    assert result.outcome is RolloutOutcome.SUCCEEDED
    assert not [c for c in w.backend.calls if c[0] == "alarm"]
    w.assert_consistent("v2", "succeeded")


def test_existing_cloud_alarms_are_not_evaluated_locally() -> None:
    w = World(bad={"v2"}).with_blue()
    result = w.controller().deploy(spec(2, "canary", alarms=[{"name": "cw", "existing": {"sagemaker": "x"}}]),
                                   model_name="v2")
    assert result.outcome is RolloutOutcome.SUCCEEDED


def test_max_duration_rolls_back() -> None:
    w = World().with_blue()
    d = spec(2, {"canary": {"percent": 10, "bake": "1h"}}, max_duration="30s")
    start = w.clock()
    result = w.controller().deploy(d, model_name="v2")
    assert result.outcome is RolloutOutcome.ROLLED_BACK
    assert result.alarm == "max_duration"
    assert "max_duration" in result.reason
    assert 30 <= w.clock() - start <= 30 + 3 + 2  # deadline, termination wait, one poll
    w.assert_consistent("v1", "rolled_back")


def test_green_never_ready_fails_and_keeps_blue() -> None:
    w = World().with_blue()
    w.backend.ready_after = 10_000
    result = w.controller(ready_timeout=20).deploy(spec(2, "canary"), model_name="v2")
    assert result.outcome is RolloutOutcome.FAILED
    assert "did not become ready" in result.reason
    assert all(c[1] == {"v1": 100, "v2": 0} for c in w.backend.calls if c[0] == "set_traffic")
    w.assert_consistent("v1", "failed")


def test_first_deployment_has_nothing_to_roll_back_to() -> None:
    w = World(bad={"v1"})
    result = w.controller().deploy(spec(1, "blue_green"), model_name="v1")
    assert result.outcome is RolloutOutcome.FAILED
    assert result.alarm == "errors"
    state = w.state()
    assert state["live"] == "v1" and state["status"] == "failed"
    assert w.backend.traffic[EP] == {"v1": 100}  # the only deployment keeps serving
    assert "alarm with nothing to roll back to" in events(w)


def test_first_deployment_goes_live_then_bakes_once() -> None:
    w = World()
    start = w.clock()
    result = w.controller().deploy(spec(1, "canary"), model_name="v1")
    assert result.outcome is RolloutOutcome.SUCCEEDED
    assert traffic_changes(w) == [{"v1": 100}]
    assert [p["phase"] for p in w.state()["phases"]] == ["create", "wait_ready", "shift", "bake"]
    assert 5 <= w.clock() - start <= 5 + 3  # the final bake only (plus readiness polls)
    w.assert_consistent("v1", "succeeded")


def test_deploy_refused_while_a_rollout_is_in_progress() -> None:
    w = World().with_blue()
    paused = w.controller(stop_at=w.clock() + 4).deploy(spec(2, "canary"), model_name="v2")
    assert paused.outcome is RolloutOutcome.FAILED and "stopped while in_progress" in paused.reason
    with pytest.raises(DeploymentError, match="in progress") as e:
        w.controller().deploy(spec(3, "canary"), model_name="v3")
    assert e.value.hint and "resume" in e.value.hint


def test_deploy_of_the_live_model_is_refused() -> None:
    w = World().with_blue()
    with pytest.raises(DeploymentError, match="already live"):
        w.controller().deploy(spec(1, "canary"), model_name="v1")


def test_next_rollout_after_a_rollback_starts_from_the_old_blue() -> None:
    w = World(bad={"v2"}).with_blue()
    w.controller().deploy(spec(2, "canary"), model_name="v2")
    result = w.controller().deploy(spec(3, "canary"), model_name="v3")
    assert result.outcome is RolloutOutcome.SUCCEEDED
    assert w.state()["blue"] == "v1"
    w.assert_consistent("v3", "succeeded")


def test_shadow_rollout_after_a_rollback() -> None:
    w = World(bad={"v2"}).with_blue()
    w.controller().deploy(spec(2, "canary"), model_name="v2")
    result = w.controller().deploy(spec(3, "shadow_discard"), model_name="v3")
    assert result.outcome is RolloutOutcome.SUCCEEDED
    w.assert_consistent("v1", "succeeded")


# -- manual rollback and promote ----------------------------------------------------------------------------
def test_manual_rollback_mid_bake() -> None:
    w = World().with_blue()
    paused = w.controller(stop_at=w.clock() + 5).deploy(spec(2, "canary"), model_name="v2")
    assert w.state()["status"] == "in_progress"
    assert paused.outcome is RolloutOutcome.FAILED  # paused, not finished
    assert w.backend.traffic[EP] == {"v1": 90, "v2": 10}
    result = w.controller().rollback(EP)
    assert result.outcome is RolloutOutcome.ROLLED_BACK
    assert result.reason == "manual rollback" and result.alarm is None
    w.assert_consistent("v1", "rolled_back")


def test_manual_rollback_with_a_reason() -> None:
    w = World().with_blue()
    w.controller(stop_at=w.clock() + 5).deploy(spec(2, "linear"), model_name="v2")
    result = w.controller().rollback(EP, reason="latency looks odd")
    assert result.reason == "latency looks odd"
    w.assert_consistent("v1", "rolled_back")


def test_manual_rollback_after_success_is_refused() -> None:
    w = World().with_blue()
    w.controller().deploy(spec(2, "blue_green"), model_name="v2")
    with pytest.raises(RollbackError, match="already retired") as e:
        w.controller().rollback(EP)
    assert e.value.hint
    w.assert_consistent("v2", "succeeded")


def test_manual_rollback_of_a_first_deployment_is_refused() -> None:
    w = World().with_blue()
    with pytest.raises(RollbackError, match="nothing to roll back to"):
        w.controller().rollback(EP)


def test_rollback_of_an_unknown_endpoint() -> None:
    with pytest.raises(NotFoundError):
        World().controller().rollback("nope")
    with pytest.raises(NotFoundError):
        World().controller().resume("nope")


def test_promote_mid_bake_skips_the_remaining_bakes() -> None:
    w = World(bad=set()).with_blue()
    w.controller(stop_at=w.clock() + 5).deploy(spec(2, {"canary": {"percent": 10, "bake": "1h"}}), model_name="v2")
    before = w.clock()
    result = w.controller().promote(EP)
    assert result.outcome is RolloutOutcome.SUCCEEDED
    assert w.clock() - before < 60
    assert "manual promotion" in events(w)
    w.assert_consistent("v2", "succeeded")


def test_promote_refused_when_nothing_is_in_progress() -> None:
    w = World().with_blue()
    with pytest.raises(DeploymentError, match="no rollout in progress"):
        w.controller().promote(EP)


def test_promote_refused_while_green_is_not_ready() -> None:
    w = World().with_blue()
    w.backend.ready_after = 10_000
    c = w.controller()

    def boom(endpoint: str, name: str) -> bool:
        raise Killed("killed while waiting for readiness")

    w.backend.is_ready = boom  # type: ignore[method-assign]
    with pytest.raises(Killed):
        c.deploy(spec(2, "canary"), model_name="v2")
    del w.backend.is_ready
    with pytest.raises(DeploymentError, match="not ready"):
        w.controller().promote(EP)
    assert w.backend.traffic[EP] == {"v1": 100}


# -- stop (pause) and resume --------------------------------------------------------------------------------
def test_resume_mid_bake_keeps_the_original_bake_end() -> None:
    w = World().with_blue()
    w.crash.arm(None)
    d = spec(2, {"canary": {"percent": 10, "bake": "20s", "final_bake": "0s"}}, rollback={"termination_wait": "0s"})

    kill_at = {"n": 0}

    def kill_after_bake_started(endpoint: str, state: dict[str, Any]) -> None:
        MemoryStateStore.save(w.store, endpoint, state)
        if state.get("phase_started") is not None and not kill_at["n"]:
            kill_at["n"] = 1
            raise Killed("killed mid-bake")

    w.store.save = kill_after_bake_started  # type: ignore[method-assign]
    with pytest.raises(Killed):
        w.controller().deploy(d, model_name="v2")
    del w.store.save
    baking = w.state()
    assert baking["phases"][baking["phase"]]["phase"] == "bake"
    started = baking["phase_started"]
    w.clock.t += 8  # dead for 8 s
    result = w.controller().resume(EP)
    assert result.outcome is RolloutOutcome.SUCCEEDED
    history = w.state()["history"]
    resumed_t = next(h["t"] for h in history if h["event"] == "resumed")
    full_t = next(h["t"] for h in history if h["event"] == "traffic" and h["weights"] == {"v1": 0, "v2": 100})
    assert resumed_t - started == pytest.approx(8)
    assert full_t - started == pytest.approx(20, abs=1.01)  # not 8 + 20
    this_rollout = [h["event"] for h in history][max(i for i, h in enumerate(history)
                                                      if h["event"] == "rollout started"):]
    assert this_rollout.count("baking") == 2  # the canary bake was not restarted, then the final bake


def test_resume_after_the_deadline_rolls_back() -> None:
    w = World().with_blue()
    d = spec(2, {"canary": {"percent": 10, "bake": "1h"}}, max_duration="2m")
    w.controller(stop_at=w.clock() + 10).deploy(d, model_name="v2")
    w.clock.t += 600
    result = w.controller().resume(EP)
    assert result.outcome is RolloutOutcome.ROLLED_BACK and result.alarm == "max_duration"
    w.assert_consistent("v1", "rolled_back")


def test_resume_when_green_died_rolls_back() -> None:
    w = World().with_blue()
    w.controller(stop_at=w.clock() + 5).deploy(spec(2, "canary"), model_name="v2")
    w.backend.dead.add("v2")
    result = w.controller().resume(EP)
    assert result.outcome is RolloutOutcome.ROLLED_BACK
    assert "v2 is not ready" in result.reason
    w.assert_consistent("v1", "rolled_back")


def test_resume_when_blue_died_never_routes_to_it() -> None:
    w = World().with_blue()
    w.controller(stop_at=w.clock() + 5).deploy(spec(2, "canary"), model_name="v2")
    w.backend.dead.add("v1")
    w.controller().resume(EP)
    served = w.backend.traffic[EP]
    assert all(w.backend.ready(n) for n in served)


def test_resume_of_a_finished_rollout_changes_nothing() -> None:
    w = World().with_blue()
    w.controller().deploy(spec(2, "canary"), model_name="v2")
    calls = len(w.backend.calls)
    result = w.controller().resume(EP)
    assert result.outcome is RolloutOutcome.SUCCEEDED
    assert len(w.backend.calls) == calls


def test_stop_mid_bake_pauses_and_resume_finishes() -> None:
    w = World().with_blue()
    paused = w.controller(stop_at=w.clock() + 3).deploy(spec(2, "linear"), model_name="v2")
    assert "stopped while in_progress" in paused.reason
    assert w.state()["status"] == "in_progress"
    result = w.controller().resume(EP)
    assert result.outcome is RolloutOutcome.SUCCEEDED
    assert "resumed" in events(w)
    w.assert_consistent("v2", "succeeded")


def test_stop_while_waiting_for_readiness_is_a_pause() -> None:
    w = World().with_blue()
    w.backend.ready_after = 5
    result = w.controller(stop_at=w.clock() + 2).deploy(spec(2, "canary"), model_name="v2")
    assert w.state()["status"] == "in_progress", result.reason
    assert w.controller().resume(EP).outcome is RolloutOutcome.SUCCEEDED


def test_resume_of_an_interrupted_rollback_finishes_it() -> None:
    w = World(bad={"v2"}).with_blue()
    w.crash.arm(None)

    def kill_on_rolling_back(endpoint: str, state: dict[str, Any]) -> None:
        MemoryStateStore.save(w.store, endpoint, state)
        if state["status"] == "rolling_back":
            raise Killed("killed as the rollback starts")

    w.store.save = kill_on_rolling_back  # type: ignore[method-assign]
    with pytest.raises(Killed):
        w.controller().deploy(spec(2, "canary"), model_name="v2")
    del w.store.save
    assert w.state()["status"] == "rolling_back"
    assert w.backend.traffic[EP] == {"v1": 90, "v2": 10}
    result = w.controller().resume(EP)
    assert result.outcome is RolloutOutcome.ROLLED_BACK
    assert "alarm errors" in result.reason
    w.assert_consistent("v1", "rolled_back")


# -- a kill after every single side effect, for every strategy ---------------------------------------------
def run(strategy: str, healthy: bool, crash_at: int | None) -> tuple[World, Any]:
    w = World(bad=set() if healthy else {"v2"}).with_blue()
    w.crash.arm(crash_at)
    try:
        return w, w.controller().deploy(spec(2, strategy), model_name="v2")
    except Killed as k:
        return w, k


def describe(entry: tuple[Any, ...]) -> str:
    if entry[0] == "save":
        state = entry[1]
        kind = state["phases"][state["phase"]]["phase"] if state["phase"] < len(state["phases"]) else "end"
        started = "-started" if state.get("phase_started") is not None and kind == "bake" else ""
        return f"save-{state['status']}-{state['phase']}{kind}{started}"
    return f"{entry[1]}-{entry[2] if isinstance(entry[2], str) else '+'.join(f'{k}{v}' for k, v in entry[2].items())}"


DRY: dict[tuple[str, bool], tuple[World, Any]] = {(s, h): run(s, h, None) for s in STRATEGIES for h in (True, False)}


def kill_points() -> list[Any]:
    params = []
    for (strategy, healthy), (world, _result) in DRY.items():
        for i, entry in enumerate(world.journal, start=1):
            params.append(pytest.param(strategy, healthy, i, id=f"{strategy}-{'good' if healthy else 'bad'}-"
                                                                f"{i:02d}-{describe(entry)}"))
    return params


def test_dry_runs_reach_the_expected_outcomes() -> None:
    for (strategy, healthy), (_, result) in DRY.items():
        expected = RolloutOutcome.SUCCEEDED if healthy else RolloutOutcome.ROLLED_BACK
        assert result.outcome is expected, (strategy, healthy)


@pytest.mark.parametrize(("strategy", "healthy", "crash_at"), kill_points())
def test_killed_after_any_side_effect_then_resumed(strategy: str, healthy: bool, crash_at: int) -> None:
    w, killed = run(strategy, healthy, crash_at)
    assert isinstance(killed, Killed)
    persisted = w.state()
    result = w.controller().resume(EP)
    expected = DRY[(strategy, healthy)][1]
    assert result.outcome is expected.outcome, (persisted["status"], persisted["phase"], result.reason)
    live = "v2" if healthy and strategy not in ("shadow_discard", "ab_keep_a") else "v1"
    w.assert_consistent(live, expected.outcome.value)
    if not healthy:
        assert "alarm errors in ALARM" in result.reason


@pytest.mark.parametrize(("strategy", "healthy"), list(DRY))
def test_state_saved_after_every_transition(strategy: str, healthy: bool) -> None:
    world, _ = DRY[(strategy, healthy)]
    journal = world.journal
    assert journal[0][0] == "save" and journal[0][1]["status"] == "in_progress"  # saved before anything happens
    for i, entry in enumerate(journal):
        if entry[0] != "call":
            continue
        follow = journal[i + 1]
        assert follow[0] == "save", f"{describe(entry)} was not saved before the next side effect"
        saved = follow[1]
        if entry[1] == "set_traffic":
            assert saved["weights"] == entry[2] and saved["mirror"] == entry[3]
        elif entry[1] == "create_deployment":
            assert saved["history"][-1]["event"] == "created" and saved["phase"] == 1
        else:
            assert any(h.get("deployment") == entry[2] and h["event"] in ("retired", "removed", "shadow discarded")
                       for h in saved["history"])
    phases = [e[1]["phase"] for e in journal if e[0] == "save"]
    assert phases == sorted(phases)
    assert sorted(set(phases)) == list(range(phases[0], phases[-1] + 1))  # every phase transition persisted
    assert journal[-1][0] == "save" and journal[-1][1]["status"] in ("succeeded", "rolled_back")


@pytest.mark.parametrize(("strategy", "healthy"), list(DRY))
def test_weights_only_ever_name_ready_deployments(strategy: str, healthy: bool) -> None:
    world, _ = DRY[(strategy, healthy)]  # the backend asserted it on every call; check the readiness polls too
    ready_checks = world.backend.polls.get("v2", 0)
    assert ready_checks >= world.backend.ready_after
    for entry in world.journal:
        if entry[0] == "call" and entry[1] == "set_traffic":
            assert sum(entry[2].values()) == 100
            assert set(entry[2]) <= {"v1", "v2"}


def test_resumed_rollback_keeps_the_alarm() -> None:
    w = World(bad={"v2"}).with_blue()

    def kill_on_rolling_back(endpoint: str, state: dict[str, Any]) -> None:
        MemoryStateStore.save(w.store, endpoint, state)
        if state["status"] == "rolling_back":
            raise Killed("killed as the rollback starts")

    w.store.save = kill_on_rolling_back  # type: ignore[method-assign]
    with pytest.raises(Killed):
        w.controller().deploy(spec(2, "canary"), model_name="v2")
    del w.store.save
    result = w.controller().resume(EP)
    assert (result.alarm, result.metric_value) == ("errors", 0.5)
    assert w.state()["outcome"]["alarm"] == "errors"


# -- manual requests reaching a running controller (the store's request channel) --------------------------
class RequestStore(Store):
    """A store with the optional request channel (take_request) that FileStateStore provides."""

    def __init__(self, journal: Journal, crash: Crash, clock: Clock) -> None:
        super().__init__(journal, crash)
        self.clock = clock
        self.pending: dict[str, tuple[float, str]] = {}
        self.taken: list[str] = []

    def take_request(self, endpoint: str) -> str | None:
        at, action = self.pending.get(endpoint, (float("inf"), ""))
        if self.clock() < at:
            return None
        del self.pending[endpoint]
        self.taken.append(action)
        return action


def request_world(action: str, after: float) -> World:
    w = World().with_blue()
    store = RequestStore(w.journal, w.crash, w.clock)
    store.states = w.store.states
    w.store = store
    store.pending[EP] = (w.clock() + after, action)
    return w


def test_rollback_request_during_a_bake() -> None:
    w = request_world("rollback", after=6)
    start = w.clock()
    result = w.controller().deploy(spec(2, {"canary": {"percent": 10, "bake": "1h"}}), model_name="v2")
    assert result.outcome is RolloutOutcome.ROLLED_BACK
    assert result.reason == "manual rollback" and result.alarm is None
    assert w.clock() - start < 60
    assert w.store.taken == ["rollback"]  # type: ignore[attr-defined]
    w.assert_consistent("v1", "rolled_back")


def test_promote_request_during_a_bake() -> None:
    w = request_world("promote", after=6)
    start = w.clock()
    result = w.controller().deploy(spec(2, {"linear": {"step_percent": 10, "interval": "1h"}}), model_name="v2")
    assert result.outcome is RolloutOutcome.SUCCEEDED
    assert w.clock() - start < 60
    assert traffic_changes(w) == [{"v1": 90, "v2": 10}, {"v2": 100}]
    assert "manual promotion" in events(w)
    w.assert_consistent("v2", "succeeded")


@pytest.mark.parametrize("action", ["promote", "rollback"])
def test_ab_test_decided_early_by_a_request(action: str) -> None:
    """The analysis picks a winner mid-test: promote B, or roll back to A."""
    w = request_world(action, after=6)
    start = w.clock()
    result = w.controller().deploy(spec(2, {"ab_test": {"percent": 50, "duration": "7d"}}), model_name="v2")
    assert w.clock() - start < 60
    assert traffic_changes(w)[0] == {"v1": 50, "v2": 50}
    if action == "promote":
        assert result.outcome is RolloutOutcome.SUCCEEDED
        w.assert_consistent("v2", "succeeded")
    else:
        assert result.outcome is RolloutOutcome.ROLLED_BACK and result.reason == "manual rollback"
        w.assert_consistent("v1", "rolled_back")


def test_ab_test_keeps_a_when_it_ends_and_rolls_back_on_alarm() -> None:
    w = World().with_blue()
    result = w.controller().deploy(spec(2, "ab_keep_a"), model_name="v2")
    assert result.outcome is RolloutOutcome.SUCCEEDED
    assert result.reason == "A/B test ended without a promotion; v1 keeps all traffic"
    assert "ab test concluded" in events(w)
    bad = World(bad={"v2"}).with_blue()
    result = bad.controller().deploy(spec(2, "ab_keep_a"), model_name="v2")
    assert result.outcome is RolloutOutcome.ROLLED_BACK and result.alarm == "errors"


def test_ab_test_needs_a_live_model() -> None:
    w = World()
    with pytest.raises(DeploymentError, match="no live model to test v1 against") as e:
        w.controller().deploy(spec(1, "ab_keep_a"), model_name="v1")
    assert e.value.hint and "all_at_once" in e.value.hint
    assert w.backend.calls == []


def test_promote_request_then_kill_then_resume() -> None:
    """A promotion rewrites the remaining phases; that rewrite must survive a kill."""
    w = request_world("promote", after=3)
    w.crash.arm(None)
    saves = {"n": 0}
    original = w.store.save

    def kill_after_promotion_saved(endpoint: str, state: dict[str, Any]) -> None:
        original(endpoint, state)
        if any(h["event"] == "manual promotion" for h in state["history"]) and not saves["n"]:
            saves["n"] = 1
            raise Killed("killed right after the promotion was saved")

    w.store.save = kill_after_promotion_saved  # type: ignore[method-assign]
    with pytest.raises(Killed):
        w.controller().deploy(spec(2, {"canary": {"percent": 10, "bake": "1h"}}), model_name="v2")
    del w.store.save
    before = w.clock()
    result = w.controller().resume(EP)
    assert result.outcome is RolloutOutcome.SUCCEEDED
    assert w.clock() - before < 60  # the skipped bakes stay skipped
    w.assert_consistent("v2", "succeeded")


# -- a green that fails to provision, and alarms the cloud evaluates --------------------------------------
class FailingCreate(FakeTrafficBackend):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def create_deployment(self, endpoint: str, name: str, deployment: Deployment, model: dict[str, Any]) -> None:
        if name == "v2" or (name == "v1" and "first" in str(self.error)):
            raise self.error
        super().create_deployment(endpoint, name, deployment, model)


def _fake_time_controller(backend: FakeTrafficBackend) -> RolloutController:
    clock = Clock()
    return RolloutController(backend, MemoryStateStore(), poll=1.0, clock=clock,
                             stop=FakeStop(clock))  # type: ignore[arg-type]


def _with_live_v1(backend: FakeTrafficBackend) -> RolloutController:
    ctl = _fake_time_controller(backend)
    assert ctl.deploy(spec(1, "all_at_once", alarms=[], rollback={}), model_name="v1").outcome is RolloutOutcome.SUCCEEDED
    return ctl


def test_a_green_that_fails_to_provision_ends_failed_and_blue_keeps_everything() -> None:
    backend = FailingCreate(DeploymentError("quota exceeded for Standard_DS3_v2"))
    ctl = _with_live_v1(backend)
    result = ctl.deploy(spec(2, "canary", alarms=[], rollback={}), model_name="v2")
    assert result.outcome is RolloutOutcome.FAILED
    assert result.reason == "deployment v2 failed: quota exceeded for Standard_DS3_v2"
    state = ctl.store.load(EP)
    assert state is not None and state["live"] == "v1" and backend.traffic[EP] == {"v1": 100}


def test_a_first_deployment_that_fails_leaves_nothing_live() -> None:
    backend = FailingCreate(DeploymentError("first image pull failed"))
    ctl = _fake_time_controller(backend)
    result = ctl.deploy(spec(1, "all_at_once", alarms=[], rollback={}), model_name="v1")
    assert result.outcome is RolloutOutcome.FAILED
    state = ctl.store.load(EP)
    assert state is not None and state["live"] is None and "v1" in state["removed"]


def test_a_retryable_api_error_while_creating_leaves_the_rollout_to_resume() -> None:
    from cloudml.errors import ThrottlingError

    backend = FailingCreate(ThrottlingError("slow down", backend="fake"))
    ctl = _with_live_v1(backend)
    with pytest.raises(ThrottlingError):
        ctl.deploy(spec(2, "canary", alarms=[], rollback={}), model_name="v2")
    state = ctl.store.load(EP)
    assert state is not None and state["status"] == "in_progress" and state["phase"] == 0
    backend.error = DeploymentError("never again")  # v2 still fails: resume ends it cleanly
    assert ctl.resume(EP).outcome is RolloutOutcome.FAILED


class CloudAlarms(FakeTrafficBackend):
    """A backend whose cloud evaluates alarms itself (existing: in the spec)."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[tuple[str, str, str]] = []
        self.states: dict[str, str] = {}

    def existing_alarm_state(self, endpoint: str, name: str, alarm: Alarm) -> Any:
        from cloudml.alarms import AlarmStatus

        self.asked.append((endpoint, name, alarm.name))
        return AlarmStatus(alarm.name, self.states.get(name, "OK"), (), 0, None, "cloud alarm")


def test_existing_alarms_are_read_from_the_backend() -> None:
    backend = CloudAlarms()
    ctl = _with_live_v1(backend)
    existing = [{"name": "p99", "existing": {"fake": "ep-latency"}}]
    assert ctl.deploy(spec(2, "canary", alarms=existing), model_name="v2").outcome is RolloutOutcome.SUCCEEDED
    assert ("ep", "v2", "p99") in backend.asked
    backend.states["v3"] = "ALARM"
    result = ctl.deploy(spec(3, "canary", alarms=existing), model_name="v3")
    assert result.outcome is RolloutOutcome.ROLLED_BACK and result.alarm == "p99"
    assert backend.traffic[EP] == {"v2": 100}


class NeverReady(FakeTrafficBackend):
    def is_ready(self, endpoint: str, name: str) -> bool:
        if name == "v2":
            raise DeploymentError("image pull failed: manifest unknown")
        return super().is_ready(endpoint, name)


def test_a_deployment_the_backend_knows_has_failed_ends_at_once_not_at_the_ready_timeout() -> None:
    backend = NeverReady()
    ctl = _with_live_v1(backend)
    start = ctl.clock()
    result = ctl.deploy(spec(2, "canary", alarms=[], rollback={}), model_name="v2")
    assert result.outcome is RolloutOutcome.FAILED
    assert result.reason == "deployment v2 failed: image pull failed: manifest unknown"
    assert ctl.clock() - start < 5 and backend.traffic[EP] == {"v1": 100}
