"""The vendor-neutral rollout controller: a persisted state machine over a small traffic interface.

Every backend that lacks native guarded rollouts (local, Vertex AI, Azure ML) implements
:class:`TrafficBackend`; the controller executes the plan from :func:`cloudml.rollout_plan.plan_rollout`:
create the new deployment (green), wait until it is ready, move traffic or mirror a share, bake while
watching alarms, and retire the old deployment (blue). Any alarm in ALARM during a bake rolls all
traffic back to blue; green is removed after the termination wait.

State is saved after every transition, so a controller killed at any moment can be resumed and
either finishes or rolls back. Weights only ever name deployments that are ready.

Example:
    >>> from cloudml.rollout import RolloutController, MemoryStateStore
    >>> from cloudml.rollout import FakeTrafficBackend  # an in-memory backend for examples and tests
    >>> from cloudml.spec.deployment import Deployment
    >>> backend = FakeTrafficBackend()
    >>> ctl = RolloutController(backend, MemoryStateStore(), poll=0.001)
    >>> d = Deployment(endpoint="churn", model={"group": "churn", "version": 1}, strategy="all_at_once")
    >>> ctl.deploy(d, model_name="churn-v1").outcome.value
    'succeeded'
    >>> backend.traffic["churn"]
    {'churn-v1': 100}
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from cloudml.adapter import RolloutOutcome, RolloutResult
from cloudml.alarms import AlarmStatus, evaluate_alarm
from cloudml.errors import BackendError, DeploymentError, NotFoundError, RollbackError
from cloudml.rollout_plan import plan_rollout
from cloudml.spec.deployment import Alarm, Deployment

__all__ = [
    "FakeTrafficBackend",
    "FileStateStore",
    "MemoryStateStore",
    "RolloutController",
    "StateStore",
    "TrafficBackend",
    "manual_action",
]


class TrafficBackend(Protocol):
    """What the controller needs from an endpoint: deployments, readiness, weights, alarms."""

    def create_deployment(self, endpoint: str, name: str, deployment: Deployment, model: dict[str, Any]) -> None:
        """Start a deployment of ``model`` (it takes no traffic yet)."""

    def is_ready(self, endpoint: str, name: str) -> bool:
        """True once the deployment answers its readiness check (DeploymentError: it never will)."""

    def set_traffic(self, endpoint: str, weights: dict[str, int], mirror: dict[str, int]) -> None:
        """Set integer percentages (summing to 100) and mirrored shares."""

    def alarm_datapoints(self, endpoint: str, name: str, alarm: Alarm) -> list[float | None]:
        """Per-period values of the alarm's metric for one deployment, oldest first, complete periods only."""

    def delete_deployment(self, endpoint: str, name: str) -> None:
        """Remove a deployment that takes no traffic."""

    # Optional: ``existing_alarm_state(endpoint, name, alarm) -> AlarmStatus`` reads an alarm the cloud
    # evaluates itself (``existing:`` in the spec). A backend without it declares deploy.existing_alarm
    # unsupported. ``create_deployment`` raising DeploymentError (or a BackendError that is not
    # retryable) ends the rollout ``failed`` with blue untouched; a retryable error leaves it to resume.


class StateStore(Protocol):
    """Where rollout state lives between transitions (a file, a table, ...)."""

    def load(self, endpoint: str) -> dict[str, Any] | None:
        """The saved state, or None."""

    def save(self, endpoint: str, state: dict[str, Any]) -> None:
        """Persist the state atomically."""


class MemoryStateStore:
    """A StateStore in a dict (tests and examples)."""

    def __init__(self) -> None:
        self.states: dict[str, dict[str, Any]] = {}

    def load(self, endpoint: str) -> dict[str, Any] | None:
        """The saved state, or None."""
        import copy

        state = self.states.get(endpoint)
        return copy.deepcopy(state) if state is not None else None

    def save(self, endpoint: str, state: dict[str, Any]) -> None:
        """Keep a copy of the state."""
        import copy

        self.states[endpoint] = copy.deepcopy(state)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=1, default=str)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class FileStateStore:
    """Rollout state as ``<root>/endpoints/<endpoint>/rollout.json``, written atomically.

    It also carries manual requests (``request``/``take_request``) from another process to the
    controller driving a rollout. Every backend driven by the controller keeps its state this way.

    Example:
        >>> import tempfile, pathlib
        >>> store = FileStateStore(pathlib.Path(tempfile.mkdtemp()))
        >>> store.save("churn", {"status": "in_progress"})
        >>> store.load("churn")["status"]
        'in_progress'
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def load(self, endpoint: str) -> dict[str, Any] | None:
        """The saved state, or None."""
        path = self.root / "endpoints" / endpoint / "rollout.json"
        try:
            return dict(json.loads(path.read_text()))
        except FileNotFoundError:
            return None

    def request(self, endpoint: str, action: str) -> None:
        """Ask the controller running a rollout of ``endpoint`` to ``rollback`` or ``promote``."""
        folder = self.root / "endpoints" / endpoint
        folder.mkdir(parents=True, exist_ok=True)
        _write_json(folder / "request.json", {"action": action, "at": time.time()})

    def take_request(self, endpoint: str) -> str | None:
        """The pending request for ``endpoint`` (removed once taken), or None."""
        path = self.root / "endpoints" / endpoint / "request.json"
        try:
            action = json.loads(path.read_text())["action"]
        except (OSError, ValueError, KeyError):
            return None
        path.unlink(missing_ok=True)
        return str(action)

    def save(self, endpoint: str, state: dict[str, Any]) -> None:
        """Write the state (temp file, fsync, rename)."""
        folder = self.root / "endpoints" / endpoint
        folder.mkdir(parents=True, exist_ok=True)
        _write_json(folder / "rollout.json", state)


MANUAL_TIMEOUT = 1800.0  # a running controller's rollback may wait out termination and deletions


def manual_action(make_controller: Callable[[], RolloutController], lock: Callable[[], Any], endpoint: str,
                  action: str, timeout: float = MANUAL_TIMEOUT) -> RolloutResult:
    """``promote`` or ``rollback`` an endpoint's rollout now, whoever drives it.

    With ``lock()`` taken, this process drives the change itself. When another process holds the lock
    (its controller is running the rollout), the request goes through the store's request channel and
    this call waits until that controller has acted, at most ``timeout`` seconds; an unanswered request
    is withdrawn, so it cannot hit a later rollout. Every backend the controller drives uses this.

    Example:
        >>> import contextlib
        >>> backend, store = FakeTrafficBackend(), MemoryStateStore()
        >>> make = lambda: RolloutController(backend, store, poll=0.001)
        >>> d = Deployment(endpoint="ep", model={"group": "g"}, strategy="all_at_once")
        >>> make().deploy(d, model_name="v1").outcome.value
        'succeeded'
        >>> manual_action(make, contextlib.nullcontext, "ep", "rollback")
        Traceback (most recent call last):
        ...
        cloudml.errors.RollbackError: endpoint ep has nothing to roll back to
    """
    if action not in ("promote", "rollback"):
        raise ValueError(f"unknown manual action {action!r}")
    try:
        with lock():
            ctl = make_controller()
            return ctl.rollback(endpoint) if action == "rollback" else ctl.promote(endpoint)
    except DeploymentError as e:
        if "another controller" not in str(e):
            raise
    ctl = make_controller()
    ask = getattr(ctl.store, "request", None)
    if ask is None:
        raise DeploymentError(f"another process drives the rollout of {endpoint} and this state store cannot "
                              "pass it a request", hint=f"stop that process, then cloudml rollout resume {endpoint}")
    ask(endpoint, action)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = ctl.store.load(endpoint) or {}
        if state.get("status") not in ("in_progress", "rolling_back"):
            return ctl.result(state)
        time.sleep(0.1)
    getattr(ctl.store, "take_request", lambda _: None)(endpoint)  # withdraw it: it must not hit a later rollout
    raise DeploymentError(f"the controller of {endpoint} did not act on the {action} request in {timeout:g}s",
                          hint=f"cloudml rollout history {endpoint}  (the request was withdrawn; ask again)")


class RolloutController:
    """Executes rollout plans against a :class:`TrafficBackend`, persisting every transition."""

    def __init__(self, backend: TrafficBackend, store: StateStore, *, poll: float = 0.2,
                 ready_timeout: float = 300.0, clock: Callable[[], float] = time.time,
                 stop: threading.Event | None = None) -> None:
        self.backend = backend
        self.store = store
        self.poll = poll
        self.ready_timeout = ready_timeout
        self.clock = clock
        self.stop = stop or threading.Event()

    # -- entry points ---------------------------------------------------------------------------
    def deploy(self, deployment: Deployment, *, model_name: str, model: dict[str, Any] | None = None) -> RolloutResult:
        """Start a rollout of a new deployment called ``model_name`` and drive it to its outcome."""
        endpoint = deployment.endpoint
        previous = self.store.load(endpoint)
        if previous and previous["status"] in ("in_progress", "rolling_back"):
            raise DeploymentError(f"endpoint {endpoint} has a rollout in progress",
                                  hint=f"cloudml rollout resume {endpoint}  (or cloudml rollback {endpoint})")
        blue = previous.get("live") if previous else None
        if blue == model_name:
            raise DeploymentError(f"{model_name} is already live on {endpoint}", hint="deploy another model version")
        if blue is None and deployment.strategy.name == "ab_test":
            raise DeploymentError(f"endpoint {endpoint} has no live model to test {model_name} against",
                                  hint="deploy the current model first (strategy: all_at_once), then start the A/B test")
        plan = plan_rollout(deployment)
        if blue is None:  # a first deployment has nothing to shift from: go live, then one bake
            bakes = [p for p in plan["phases"] if p["phase"] == "bake"]
            plan["phases"] = [p for p in plan["phases"] if p["phase"] in ("create", "wait_ready")] + [
                {"phase": "shift", "weights": {"blue": 0, "green": 100}}, *bakes[-1:]]
        state: dict[str, Any] = {
            "endpoint": endpoint, "spec": deployment.model_dump(mode="json", by_alias=True),
            "model": model or {}, "blue": blue, "green": model_name, "live": blue,
            "phases": plan["phases"], "phase": 0, "status": "in_progress", "started": self.clock(),
            "phase_started": None, "weights": {blue: 100} if blue else {},
            "mirror": {}, "history": (previous or {}).get("history", [])[-200:], "outcome": None,
        }
        stale = self._request(endpoint)  # a request nobody answered must not hit this new rollout
        self._event(state, "rollout started", strategy=plan["strategy"], blue=blue, green=model_name,
                    **({"ignored_request": stale} if stale else {}))
        self._save(state)
        return self._drive(state, deployment)

    def resume(self, endpoint: str) -> RolloutResult:
        """Continue an interrupted rollout (or finish an interrupted rollback)."""
        state = self._load(endpoint)
        deployment = Deployment.model_validate(state["spec"])
        if state["status"] == "rolling_back":
            return self._rollback(state, state.get("rollback_reason", "resumed rollback"),
                                  state.get("rollback_alarm"), state.get("rollback_value"))
        if state["status"] != "in_progress":
            return self._result(state)
        self._event(state, "resumed", phase=state["phase"])
        blue, green = state["blue"], state["green"]
        dead = [n for n, w in state["weights"].items() if w > 0 and not self.backend.is_ready(endpoint, n)]
        if green in dead and blue and blue not in dead:
            return self._rollback(state, f"deployment {green} is not ready after resume", None, None)
        if blue in dead and green not in dead and state["phase"] > self._phase_index(state, "wait_ready"):
            # the old deployment died while the controller was away: go forward, the bakes still guard green
            self._set(state, {green: 100}, {})
            self._event(state, "blue lost while stopped; traffic moved to green", deployment=blue)
        elif dead:
            return self._rollback(state, f"deployments {', '.join(dead)} are not ready after resume", None, None,
                                  failed=True)
        return self._drive(state, deployment)

    def _phase_index(self, state: dict[str, Any], kind: str) -> int:
        return next((i for i, p in enumerate(state["phases"]) if p["phase"] == kind), -1)

    def rollback(self, endpoint: str, reason: str = "manual rollback") -> RolloutResult:
        """Send all traffic back to blue now and remove green (after the termination wait)."""
        state = self._load(endpoint)
        if state["status"] not in ("in_progress", "rolling_back"):
            if not state.get("previous_live"):
                raise RollbackError(f"endpoint {endpoint} has nothing to roll back to",
                                    hint="deploy another model version instead")
            state = self._reopen_last(state)
        return self._rollback(state, reason, None, None)

    def promote(self, endpoint: str) -> RolloutResult:
        """Skip the remaining bakes: all traffic to green, then retire blue."""
        state = self._load(endpoint)
        if state["status"] != "in_progress":
            raise DeploymentError(f"no rollout in progress on {endpoint}")
        self._event(state, "manual promotion")
        self._shift(state, {"blue": 0, "green": 100})
        return self._finish(state)

    # -- the state machine ------------------------------------------------------------------------
    def _drive(self, state: dict[str, Any], deployment: Deployment) -> RolloutResult:
        alarms = deployment.alarms if deployment.rollback.automatic else []
        deadline = state["started"] + deployment.max_duration
        while state["phase"] < len(state["phases"]):
            phase = state["phases"][state["phase"]]
            kind = phase["phase"]
            if kind == "create":
                try:
                    self.backend.create_deployment(state["endpoint"], state["green"], deployment, state["model"])
                except (DeploymentError, BackendError) as e:
                    if getattr(e, "retryable", False):
                        raise  # the API, not the deployment: the rollout stays in progress for `resume`
                    return self._rollback(state, f"deployment {state['green']} failed: {e}", None, None, failed=True)
                self._event(state, "created", deployment=state["green"])
            elif kind == "wait_ready":
                ready = self._wait_ready(state)
                if ready is None:
                    return self._result(state)  # stopped: paused, resume later
                if isinstance(ready, str):
                    return self._rollback(state, f"deployment {state['green']} failed: {ready}", None, None,
                                          failed=True)
                if not ready:
                    return self._rollback(state, f"{state['green']} did not become ready in {self.ready_timeout:g}s",
                                          None, None, failed=True)
                self._event(state, "ready", deployment=state["green"])
            elif kind == "shift":
                self._shift(state, phase["weights"])
            elif kind == "mirror":
                self._set(state, state["weights"] or self._blue_only(state), {state["green"]: max(1, round(phase["percent"]))})
                self._event(state, "mirroring", percent=phase["percent"])
            elif kind == "bake":
                fired = self._bake(state, phase["seconds"], alarms, deadline)
                if fired is not None:
                    if fired.name == "manual":
                        return self._rollback(state, "manual rollback", None, None)
                    return self._rollback(state, f"alarm {fired.name} in ALARM: {fired.reason}", fired.name,
                                          fired.value)
                if self.stop.is_set():
                    return self._result(state)
            elif kind == "conclude":
                return self._conclude(state)
            elif kind in ("promote", "discard"):
                if kind == "discard":
                    return self._discard(state)
                self._event(state, "promoting")
            elif kind == "retire":
                return self._finish(state, wait=self._termination_wait(state))
            state["phase"] += 1
            state["phase_started"] = None
            self._save(state)
        return self._finish(state)

    def _remove(self, state: dict[str, Any], name: str, event: str) -> None:
        """Delete a deployment once (a resumed controller never deletes what is already gone); record ``event``."""
        removed = state.setdefault("removed", [])
        if name not in removed:
            with contextlib.suppress(NotFoundError):
                self.backend.delete_deployment(state["endpoint"], name)
            removed.append(name)
            self._event(state, event, deployment=name)
            self._save(state)

    def _blue_only(self, state: dict[str, Any]) -> dict[str, int]:
        return {state["blue"]: 100} if state["blue"] else {}

    def _weights(self, state: dict[str, Any], roles: dict[str, int]) -> dict[str, int]:
        blue, green = state["blue"], state["green"]
        if not blue:
            return {green: 100}
        return {blue: int(roles["blue"]), green: int(roles["green"])}

    def _shift(self, state: dict[str, Any], roles: dict[str, int]) -> None:
        weights = self._weights(state, roles)
        self._set(state, weights, {} if roles.get("green", 0) == 100 else state["mirror"])
        self._event(state, "traffic", weights=weights)

    def _set(self, state: dict[str, Any], weights: dict[str, int], mirror: dict[str, int]) -> None:
        for name, w in weights.items():
            if w > 0 and not self.backend.is_ready(state["endpoint"], name):
                raise DeploymentError(f"refusing to send traffic to {name}: it is not ready")
        self.backend.set_traffic(state["endpoint"], weights, mirror)
        state["weights"], state["mirror"] = weights, mirror
        self._save(state)

    def _wait_ready(self, state: dict[str, Any]) -> bool | str | None:
        """True when green is ready, False on timeout, the reason when the backend says it never will be
        (``is_ready`` raising DeploymentError), None when the controller was stopped."""
        end = self.clock() + self.ready_timeout
        while self.clock() < end:
            try:
                if self.backend.is_ready(state["endpoint"], state["green"]):
                    return True
            except DeploymentError as e:
                return str(e)
            if self.stop.wait(self.poll):
                return None
        return False

    def _bake(self, state: dict[str, Any], seconds: float, alarms: list[Alarm], deadline: float) -> AlarmStatus | None:
        if state.get("phase_started") is None:
            state["phase_started"] = self.clock()
            self._event(state, "baking", seconds=seconds, alarms=[a.name for a in alarms])
            self._save(state)
        end = state["phase_started"] + seconds
        while True:
            request = self._request(state["endpoint"])
            if request == "rollback":
                return AlarmStatus("manual", "ALARM", (), 0, None, "manual rollback requested")
            if request == "promote":
                state["phases"] = [p for p in state["phases"][: state["phase"] + 1]] + [
                    {"phase": "shift", "weights": {"blue": 0, "green": 100}}, {"phase": "retire", "deployment": "blue"}]
                self._event(state, "manual promotion")
                return None
            for alarm in alarms:
                if alarm.existing:  # an alarm the cloud evaluates: ask the backend for its state
                    read = getattr(self.backend, "existing_alarm_state", None)
                    if read is None:
                        continue  # such backends declare deploy.existing_alarm unsupported: never reached
                    status: AlarmStatus = dataclasses.replace(read(state["endpoint"], state["green"], alarm),
                                                              name=alarm.name)
                else:
                    status = evaluate_alarm(alarm, self.backend.alarm_datapoints(state["endpoint"], state["green"], alarm))
                if status.state == "ALARM":
                    return status
            if self.clock() >= deadline:
                return AlarmStatus("max_duration", "ALARM", (), 0, None, "the rollout exceeded max_duration")
            if self.clock() >= end or self.stop.wait(self.poll):
                return None

    def _request(self, endpoint: str) -> str | None:
        take = getattr(self.store, "take_request", None)
        return take(endpoint) if take is not None else None

    def _termination_wait(self, state: dict[str, Any]) -> float:
        return float(Deployment.model_validate(state["spec"]).rollback.termination_wait)

    def _finish(self, state: dict[str, Any], wait: float = 0.0) -> RolloutResult:
        weights = self._weights(state, {"blue": 0, "green": 100})
        if state["weights"] != weights or state["mirror"]:
            self._set(state, weights, {})
        if state["blue"] and state["blue"] not in state.get("removed", []):
            end = self.clock() + wait
            while self.clock() < end:  # blue still exists: a rollback can still go back to it
                if self._request(state["endpoint"]) == "rollback":
                    return self._rollback(state, "manual rollback", None, None)
                if self.stop.wait(min(self.poll, max(0.0, end - self.clock()))):
                    return self._result(state)
            self._remove(state, state["blue"], "retired")
        state.update(status="succeeded", previous_live=state["blue"], live=state["green"],
                     outcome={"outcome": "succeeded"}, weights={state["green"]: 100})
        self._event(state, "rollout succeeded")
        self._save(state)
        return self._result(state)

    def _discard(self, state: dict[str, Any]) -> RolloutResult:
        self._set(state, state["weights"] or self._blue_only(state), {})
        self._remove(state, state["green"], "shadow discarded")
        state.update(status="succeeded", live=state["blue"], outcome={"outcome": "succeeded",
                     "reason": "shadow deployment compared and discarded"})
        self._save(state)
        return self._result(state)

    def _conclude(self, state: dict[str, Any]) -> RolloutResult:
        """End an A/B test that keeps blue: all traffic back to blue, green removed, no alarm involved."""
        weights = {state["blue"]: 100}
        if state["green"] not in state.get("removed", []):
            weights[state["green"]] = 0
        if state["weights"] != weights or state["mirror"]:
            self._set(state, weights, {})
            self._event(state, "ab test concluded", kept=state["blue"], weights=weights)
        self._remove(state, state["green"], "removed")
        state.update(status="succeeded", live=state["blue"], outcome={
            "outcome": "succeeded", "reason": f"A/B test ended without a promotion; {state['blue']} keeps all traffic"})
        self._save(state)
        return self._result(state)

    def _rollback(self, state: dict[str, Any], reason: str, alarm: str | None, value: float | None,
                  failed: bool = False) -> RolloutResult:
        endpoint = state["endpoint"]
        if state["status"] == "rolling_back":  # resumed: keep what the first attempt knew
            alarm = state.get("rollback_alarm", alarm)
            value = state.get("rollback_value", value)
            failed = state.get("rollback_failed", failed)
        state.update(status="rolling_back", rollback_reason=reason, rollback_alarm=alarm, rollback_value=value,
                     rollback_failed=failed)
        self._save(state)
        if state["blue"]:
            weights = {state["blue"]: 100}
            if state["green"] not in state.get("removed", []) and state["green"] in state["weights"]:
                weights[state["green"]] = 0
            if state["weights"] != weights or state["mirror"]:
                self.backend.set_traffic(endpoint, weights, {})
                state["weights"], state["mirror"] = weights, {}
                self._event(state, "rolled back", reason=reason, alarm=alarm, value=value, weights=weights)
                self._save(state)
            wait = self._termination_wait(state)
            if wait:
                self.stop.wait(wait)
            if state["green"] not in state.get("removed", []):
                self._remove(state, state["green"], "removed")
            state["live"] = state["blue"]
            outcome = RolloutOutcome.FAILED if failed else RolloutOutcome.ROLLED_BACK
        elif failed and not state["weights"].get(state["green"]):
            # a first deployment that never served: nothing is live, and the broken green goes
            self._remove(state, state["green"], "removed")
            outcome = RolloutOutcome.FAILED
            state["live"] = None
        else:
            self._event(state, "alarm with nothing to roll back to", reason=reason, alarm=alarm, value=value)
            outcome = RolloutOutcome.FAILED
            state["live"] = state["green"]
        state["status"] = outcome.value
        state["outcome"] = {"outcome": outcome.value, "alarm": alarm, "value": value, "reason": reason, "at": _now()}
        self._save(state)
        return self._result(state)

    def _reopen_last(self, state: dict[str, Any]) -> dict[str, Any]:
        """Manual rollback after a finished rollout: the previous live deployment must still exist."""
        raise RollbackError(
            f"the previous deployment of {state['endpoint']} ({state['previous_live']}) was already retired",
            hint="redeploy the previous model version: cloudml deploy with model.version set",
        )

    # -- persistence and results ----------------------------------------------------------------------
    def _load(self, endpoint: str) -> dict[str, Any]:
        state = self.store.load(endpoint)
        if state is None:
            raise NotFoundError(f"endpoint {endpoint} has no rollout", hint="cloudml endpoints list")
        return state

    def _save(self, state: dict[str, Any]) -> None:
        self.store.save(state["endpoint"], state)

    def _event(self, state: dict[str, Any], event: str, **data: Any) -> None:
        state["history"].append({"at": _now(), "t": self.clock(), "event": event,
                                 **{k: v for k, v in data.items() if v is not None}})

    def result(self, state: dict[str, Any]) -> RolloutResult:
        """The typed result of a saved state (what ``deploy``/``resume`` return for it).

        Example:
            >>> ctl = RolloutController(FakeTrafficBackend(), MemoryStateStore())
            >>> ctl.result({"endpoint": "ep", "status": "succeeded", "history": [],
            ...             "outcome": {"outcome": "succeeded"}}).outcome.value
            'succeeded'
        """
        return self._result(state)

    def _result(self, state: dict[str, Any]) -> RolloutResult:
        outcome = state.get("outcome") or {}
        status = outcome.get("outcome")
        kind = RolloutOutcome(status) if status in ("succeeded", "rolled_back", "failed") else RolloutOutcome.FAILED
        at = datetime.fromisoformat(outcome["at"]) if outcome.get("at") else None
        reason = outcome.get("reason", "") if status else f"stopped while {state['status']}"
        return RolloutResult(state["endpoint"], kind, alarm=outcome.get("alarm"), metric_value=outcome.get("value"),
                             at=at, reason=reason, history=list(state["history"]))


class FakeTrafficBackend:
    """An in-memory TrafficBackend: deployments are ready at once; tests set alarm datapoints.

    ``points[(endpoint, deployment, alarm_name)]`` holds the datapoints an alarm sees.
    """

    def __init__(self) -> None:
        self.deployments: dict[str, set[str]] = {}
        self.traffic: dict[str, dict[str, int]] = {}
        self.mirror: dict[str, dict[str, int]] = {}
        self.points: dict[tuple[str, str, str], list[float | None]] = {}

    def create_deployment(self, endpoint: str, name: str, deployment: Deployment, model: dict[str, Any]) -> None:
        """Record the deployment."""
        self.deployments.setdefault(endpoint, set()).add(name)

    def is_ready(self, endpoint: str, name: str) -> bool:
        """Ready as soon as it exists."""
        return name in self.deployments.get(endpoint, set())

    def set_traffic(self, endpoint: str, weights: dict[str, int], mirror: dict[str, int]) -> None:
        """Check the rules (sum 100, known deployments) and store the split."""
        if sum(weights.values()) != 100:
            raise DeploymentError(f"weights {weights} do not sum to 100")
        unknown = set(weights) - self.deployments.get(endpoint, set())
        if unknown:
            raise DeploymentError(f"unknown deployments {sorted(unknown)}")
        self.traffic[endpoint] = {k: v for k, v in weights.items() if v > 0}
        self.mirror[endpoint] = dict(mirror)

    def alarm_datapoints(self, endpoint: str, name: str, alarm: Alarm) -> list[float | None]:
        """What the test put there (no data by default)."""
        return list(self.points.get((endpoint, name, alarm.name), []))

    def delete_deployment(self, endpoint: str, name: str) -> None:
        """Forget the deployment (it must take no traffic)."""
        if self.traffic.get(endpoint, {}).get(name, 0) > 0:
            raise DeploymentError(f"{name} still takes traffic")
        self.deployments.get(endpoint, set()).discard(name)
