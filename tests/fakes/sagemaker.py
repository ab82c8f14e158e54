"""A SageMaker fake for tests: a real HTTP server in front of a real ``moto_server``.

moto covers SageMaker and CloudWatch CRUD, but not deployment guardrails (``UpdateEndpoint``),
``ListPipelineExecutionSteps``, ``StopPipelineExecution`` or service faults. :class:`SageMakerFake`
forwards every request byte for byte to a :class:`MotoServer` and answers those operations itself.
Real boto3 clients reach it through ``endpoint_url``; nothing in boto3 or botocore is patched.
See tests/fakes/README.md for what is enforced and what is not modelled.

Example::

    with sagemaker_fake(time_scale=0.01) as fake:
        sm = fake.client("sagemaker", total_max_attempts=5)
        sm.list_endpoints()
"""

from __future__ import annotations

import contextlib
import copy
import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.fakes import _sagemaker_rules as rules
from tests.fakes._aws_wire import (
    REGION,
    MotoServer,
    ProxyServer,
    Reply,
    Request,
    aws_test_env,
    error_reply,
    forward,
    from_client_error,
    json_reply,
    operation_of,
    validation_error,
)

__all__ = ["Deployment", "MotoServer", "RecordedRequest", "SageMakerFake", "aws_test_env", "sagemaker_fake"]

_STEP_STATUSES = ("Starting", "Executing", "Stopping", "Stopped", "Failed", "Succeeded")
_EXECUTION_STATUSES = ("Executing", "Stopping", "Stopped", "Failed", "Succeeded", "CompletedWithFailures")
_FAULT_BY_CODE = {"ThrottlingException": (400, "Rate exceeded"), "ServiceUnavailable": (503, "Service Unavailable"),
                  "InternalFailure": (500, "We encountered an internal error. Please try again.")}
_FAULT_BY_STATUS = {400: "ThrottlingException", 429: "ThrottlingException", 500: "InternalFailure",
                    503: "ServiceUnavailable"}


@dataclass(frozen=True)
class RecordedRequest:
    """One request seen by the fake; ``handled_by`` is ``moto``, ``fake`` or ``fault``."""

    service: str
    operation: str
    status: int
    method: str
    path: str
    handled_by: str


# ----------------------------------------------------------------------------------------- emulated state
@dataclass
class Deployment:
    """One emulated ``UpdateEndpoint``; ``outcome`` is None while it runs, then Succeeded or RolledBack."""

    endpoint_name: str
    old_config: str
    new_config: str
    deployment_config: dict[str, Any] | None
    traffic_steps: list[float]
    new_variants: list[dict[str, Any]]
    time_scale: float
    status: str = "Updating"
    variant_status: str | None = "Creating"
    traffic_percent: float = 0.0
    outcome: str | None = None
    reason: str = ""
    history: list[str] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)
    status_since: float = field(default_factory=time.time)
    done: threading.Event = field(default_factory=threading.Event)
    cancel: threading.Event = field(default_factory=threading.Event)
    fail_reason: str = ""


@dataclass
class _EndpointState:
    config_name: str
    last_deployment_config: dict[str, Any] | None = None
    deployment: Deployment | None = None
    variants_override: list[dict[str, Any]] | None = None
    shadow_override: list[dict[str, Any]] = field(default_factory=list)
    weights_pending: list[dict[str, Any]] | None = None
    weights_until: float = 0.0
    failure_reason: str = ""
    fail_next: str = ""
    failed: bool = False
    last_modified: float = field(default_factory=time.time)

    def busy(self) -> bool:
        return self.weights_pending is not None or (self.deployment is not None and self.deployment.outcome is None)


@dataclass
class _ExecutionState:
    statuses: list[tuple[str, str]] = field(default_factory=list)  # consumed per describe; the last one sticks
    steps: list[dict[str, Any]] | None = None
    outcomes: dict[str, bool] = field(default_factory=dict)


class _Cancelled(Exception):
    pass


# -------------------------------------------------------------------------------------------------- the fake
class SageMakerFake:
    """HTTP proxy to moto that emulates guardrails, pipeline steps, stop and faults (see module docstring).

    Durations of the emulation are in service seconds, multiplied by ``time_scale`` to get real seconds;
    they are read when an update or stop starts, so a test may change them on a shared fake.
    """

    def __init__(self, moto_url: str, *, region: str = REGION, time_scale: float = 1.0, poll_interval: float = 0.1,
                 provisioning_seconds: float = 0.0, activation_seconds: float = 0.2, rollback_seconds: float = 0.5,
                 stop_seconds: float = 0.5, weights_seconds: float = 0.2) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be > 0")
        parts = urllib.parse.urlsplit(moto_url)
        self.moto_url, self.region = moto_url.rstrip("/"), region
        self._moto_addr = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.time_scale, self.poll_interval = time_scale, poll_interval
        self.provisioning_seconds, self.activation_seconds = provisioning_seconds, activation_seconds
        self.rollback_seconds, self.stop_seconds = rollback_seconds, stop_seconds
        self.weights_seconds = weights_seconds
        self._shadows: dict[str, list[dict[str, Any]]] = {}  # endpoint config -> ShadowProductionVariants
        self._create_failures: dict[str, str] = {}  # endpoint name -> FailureReason of its next CreateEndpoint
        self._lock = threading.RLock()
        self._closing = threading.Event()
        self._requests: list[RecordedRequest] = []
        self._faults: dict[str, list[tuple[int, str, str]]] = {}
        self._endpoints: dict[str, _EndpointState] = {}
        self._executions: dict[str, _ExecutionState] = {}
        self._outcomes: dict[str, bool] = {}
        self._threads: list[threading.Thread] = []
        self._proxy: ProxyServer | None = None
        self._session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                              aws_session_token="testing", region_name=region)
        self._clients: dict[tuple[str, int, str], Any] = {}
        self.moto: MotoServer | None = None  # set by sagemaker_fake()
        self._sm: Any = self._moto_client("sagemaker")
        self._cw: Any = self._moto_client("cloudwatch")
        self._aas: Any = None
        self._handlers: dict[str, Callable[[Request], Reply]] = {
            "UpdateEndpoint": self._update_endpoint, "DescribeEndpoint": self._describe_endpoint,
            "ListEndpoints": self._list_endpoints, "CreateEndpoint": self._create_endpoint,
            "CreateEndpointConfig": self._create_endpoint_config,
            "DescribeEndpointConfig": self._describe_endpoint_config,
            "UpdateEndpointWeightsAndCapacities": self._update_weights,
            "DeleteEndpoint": self._forget_endpoint, "ListPipelineExecutionSteps": self._list_steps,
            "DescribePipelineExecution": self._describe_execution, "ListPipelineExecutions": self._list_executions,
            "StopPipelineExecution": self._stop_execution}

    # lifecycle -------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._proxy is None:
            raise RuntimeError("SageMakerFake is not started")
        return f"http://127.0.0.1:{self._proxy.port}"

    def start(self) -> SageMakerFake:
        self._proxy = ProxyServer(self._dispatch)
        return self

    def close(self) -> None:
        """Stop the server, cut kept-alive connections, and join every thread the fake started."""
        self._closing.set()
        with self._lock:
            for state in self._endpoints.values():
                if state.deployment is not None:
                    state.deployment.cancel.set()
        if self._proxy is not None:
            self._proxy.close()
            self._proxy = None
        for thread in list(self._threads):
            thread.join(timeout=10)

    def __enter__(self) -> SageMakerFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def client(self, service: str, *, total_max_attempts: int = 1, mode: str = "standard") -> Any:
        """A boto3 client for ``service`` pointed at the fake (test credentials, explicit region).

        ``total_max_attempts`` counts the first try: 1 means no retry. (botocore's ``max_attempts`` key
        counts retries only: ``Config(retries={"max_attempts": 1})`` makes two attempts.)
        """
        key = (service, total_max_attempts, mode)
        with self._lock:  # clients are cached: building one loads the service model (~0.1 s)
            if key not in self._clients:
                retries = {"mode": mode, "total_max_attempts": total_max_attempts}
                self._clients[key] = self._session.client(service, endpoint_url=self.url,
                                                          config=Config(retries=retries))
            return self._clients[key]

    def _moto_client(self, service: str) -> Any:
        return self._session.client(service, endpoint_url=self.moto_url,
                                    config=Config(retries={"total_max_attempts": 1}))

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    # test controls ---------------------------------------------------------------------------------------
    def inject(self, operation: str, status_or_error: int | str = "ThrottlingException", times: int = 1) -> None:
        """Fail the next ``times`` calls of ``operation`` (``CreatePipeline`` or ``SageMaker.CreatePipeline``).

        ``status_or_error``: ``"ThrottlingException"`` / 400 / 429 (HTTP 400, "Rate exceeded"),
        ``"ServiceUnavailable"`` / 503, ``"InternalFailure"`` / 500, or any other code (HTTP 400).
        """
        if isinstance(status_or_error, int):
            code = _FAULT_BY_STATUS.get(status_or_error, "ServiceUnavailable")
            status, message = status_or_error, _FAULT_BY_CODE[code][1]
        else:
            code = status_or_error
            status, message = _FAULT_BY_CODE.get(code, (400, f"Injected {code}"))
        with self._lock:
            self._faults.setdefault(operation, []).extend([(status, code, message)] * times)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def calls(self, operation: str) -> list[RecordedRequest]:
        return [r for r in self.requests if operation in (r.operation, f"{r.service}.{r.operation}")]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def deployment(self, endpoint_name: str) -> Deployment | None:
        with self._lock:
            state = self._endpoints.get(endpoint_name)
            return state.deployment if state else None

    def wait_for_deployment(self, endpoint_name: str, timeout: float = 30.0) -> Deployment:
        dep = self.deployment(endpoint_name)
        if dep is None or not dep.done.wait(timeout):
            raise TimeoutError(f"no finished deployment for endpoint {endpoint_name!r} within {timeout}s")
        return dep

    def fail_next_update(self, endpoint_name: str, reason: str = "Unable to provision requested ML compute "
                         "capacity. Please retry using a different ML instance type.") -> None:
        """The next UpdateEndpoint of ``endpoint_name`` fails once its new fleet is provisioned: the endpoint
        returns to ``InService`` on the old config with ``FailureReason`` set, as SageMaker does."""
        with self._lock:
            state = self._endpoints.get(endpoint_name)
            if state is None:
                raise ValueError(f"the fake keeps no state for endpoint {endpoint_name!r} (create it through the fake)")
            state.fail_next = reason

    def fail_next_create(self, endpoint_name: str, reason: str = "The primary container for production variant "
                         "failed the ping health check.") -> None:
        """The next CreateEndpoint of ``endpoint_name`` ends ``Failed`` with ``FailureReason`` (moto's endpoint
        exists, so DeleteEndpoint works as on SageMaker)."""
        with self._lock:
            self._create_failures[endpoint_name] = reason

    def set_execution_steps(self, execution_arn: str, steps: Sequence[dict[str, Any]]) -> None:
        """Steps ListPipelineExecutionSteps returns, in run order (the API lists newest first by default)."""
        for step in steps:
            if "StepName" not in step or step.get("StepStatus") not in _STEP_STATUSES:
                raise ValueError(f"step needs StepName and a StepStatus in {_STEP_STATUSES}: {step}")
        with self._lock:
            self._execution(execution_arn).steps = copy.deepcopy(list(steps))

    def set_execution_status(self, execution_arn: str, status: str | Sequence[str], failure_reason: str = "") -> None:
        """Override PipelineExecutionStatus; a sequence is consumed one per DescribePipelineExecution."""
        statuses = [status] if isinstance(status, str) else list(status)
        if not statuses or any(s not in _EXECUTION_STATUSES for s in statuses):
            raise ValueError(f"statuses must be in {_EXECUTION_STATUSES}: {statuses}")
        with self._lock:
            self._execution(execution_arn).statuses = [
                (s, failure_reason if s in ("Failed", "CompletedWithFailures") else "") for s in statuses]

    def set_condition_outcome(self, step_name: str, outcome: bool, execution_arn: str | None = None) -> None:
        """Which branch a Condition step takes in generated steps (default True: IfSteps)."""
        with self._lock:
            (self._execution(execution_arn).outcomes if execution_arn else self._outcomes)[step_name] = outcome

    def _execution(self, arn: str) -> _ExecutionState:
        return self._executions.setdefault(arn, _ExecutionState())

    # dispatch --------------------------------------------------------------------------------------------
    def _dispatch(self, req: Request) -> Reply:
        req.service, req.operation = operation_of(req)
        fault = self._take_fault(req)
        emulated = req.service == "SageMaker" and req.operation in self._handlers
        by = "fault" if fault else "fake" if emulated else "moto"
        try:
            if fault is not None:
                reply = error_reply(req, *fault)
            else:
                reply = self._handlers[req.operation](req) if emulated else self._forward(req)
        except ClientError as exc:  # moto's answer to the fake's own lookups (unknown endpoint, execution...)
            reply = from_client_error(exc)
        except Exception as exc:  # moto unreachable, or a bug in the fake: answer, don't drop the connection
            reply = error_reply(req, 500, "InternalFailure", f"SageMakerFake: {type(exc).__name__}: {exc}")
        with self._lock:
            self._requests.append(RecordedRequest(req.service, req.operation, reply.status, req.method,
                                                  req.path, by))
        return reply

    def _take_fault(self, req: Request) -> tuple[int, str, str] | None:
        with self._lock:
            for key in (f"{req.service}.{req.operation}", req.operation):
                if self._faults.get(key):
                    return self._faults[key].pop(0)
        return None

    def _forward(self, req: Request) -> Reply:
        return forward(self._moto_addr, req)

    # endpoints -------------------------------------------------------------------------------------------
    def _forget_endpoint(self, req: Request) -> Reply:
        reply = self._forward(req)
        if reply.status == 200:
            with self._lock:
                state = self._endpoints.pop(req.json().get("EndpointName", ""), None)
                if state and state.deployment:
                    state.deployment.cancel.set()
        return reply

    def _update_endpoint(self, req: Request) -> Reply:
        args = req.json()
        name, new_name = args.get("EndpointName", ""), args.get("EndpointConfigName", "")
        endpoint = self._sm.describe_endpoint(EndpointName=name)
        new_variants = self._sm.describe_endpoint_config(EndpointConfigName=new_name)["ProductionVariants"]
        with self._lock:
            state = self._endpoints.get(name) or _EndpointState(endpoint["EndpointConfigName"])
            self._settle(state)
            if state.weights_pending is not None:
                return validation_error(f'Cannot update in-progress endpoint "{endpoint["EndpointArn"]}".')
        if error := self._scaling_conflict(name, endpoint["EndpointConfigName"], new_variants):
            return validation_error(error)
        dc = args.get("DeploymentConfig")
        if dc is None and args.get("RetainDeploymentConfig"):
            dc = state.last_deployment_config
        if dc is not None:
            old = [v["VariantName"] for v in self._variants(state)[0]]
            error = rules.validate_deployment(dc, old, new_variants) or self._missing_alarms(rules.alarm_names(dc))
            if error:
                return validation_error(error)
        dep = Deployment(name, state.config_name, new_name, dc, rules.traffic_steps(dc, new_variants), new_variants,
                         self.time_scale)
        with self._lock:
            state = self._endpoints.setdefault(name, state)
            if state.busy():
                return validation_error(f'Cannot update in-progress endpoint "{endpoint["EndpointArn"]}".')
            state.deployment, state.last_modified = dep, time.time()
            dep.fail_reason, state.fail_next = state.fail_next, ""
            if dc is not None:
                state.last_deployment_config = dc
        self._spawn(lambda: self._run_deployment(dep), f"deploy-{name}")
        return json_reply(200, {"EndpointArn": endpoint["EndpointArn"]})

    def _scaling_conflict(self, name: str, old_config: str, new_variants: list[dict[str, Any]]) -> str | None:
        """SageMaker refuses an update that changes the instance type of a variant registered with Application
        Auto Scaling (AWS docs, "Update endpoints that use auto scaling"); registrations are read from moto."""
        old = {v["VariantName"]: v.get("InstanceType") for v in
               self._sm.describe_endpoint_config(EndpointConfigName=old_config)["ProductionVariants"]}
        changed = [v["VariantName"] for v in new_variants
                   if v["VariantName"] in old and v.get("InstanceType") != old[v["VariantName"]]]
        if not changed:
            return None
        with self._lock:  # built on first use: most tests never scale
            if self._aas is None:
                self._aas = self._moto_client("application-autoscaling")
            scaling = self._aas
        ids = [f"endpoint/{name}/variant/{v}" for v in changed]
        found = scaling.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=ids)["ScalableTargets"]
        if not found:
            return None
        return (f"The variant(s) {[t['ResourceId'].rsplit('/', 1)[-1] for t in found]} of endpoint {name} are "
                "registered for automatic scaling; deregister them before changing their instance type.")

    def _missing_alarms(self, names: list[str]) -> str | None:
        if not names:
            return None
        found = {a["AlarmName"] for a in self._cw.describe_alarms(AlarmNames=names)["MetricAlarms"]}
        missing = [n for n in names if n not in found]
        return f"The alarm(s) {missing} in AutoRollbackConfiguration do not exist in CloudWatch." if missing else None

    def _describe_endpoint(self, req: Request) -> Reply:
        reply = self._forward(req)
        with self._lock:
            state = self._endpoints.get(req.json().get("EndpointName", ""))
            if reply.status != 200 or state is None:
                return reply
            self._settle(state)
            data = reply.json()
            data.update(EndpointConfigName=state.config_name, LastModifiedTime=state.last_modified)
            if state.last_deployment_config is not None:
                data["LastDeploymentConfig"] = state.last_deployment_config
            if state.failure_reason:
                data["FailureReason"] = state.failure_reason
            if state.failed:
                data["EndpointStatus"] = "Failed"
            if state.variants_override is not None:
                data["ProductionVariants"] = copy.deepcopy(state.variants_override)
            if state.shadow_override:
                data["ShadowProductionVariants"] = copy.deepcopy(state.shadow_override)
            if state.weights_pending is not None:
                data["EndpointStatus"] = "Updating"
                for variant in data.get("ProductionVariants", []) + data.get("ShadowProductionVariants", []):
                    for item in state.weights_pending:
                        if item["VariantName"] == variant["VariantName"] and "DesiredWeight" in item:
                            variant["DesiredWeight"] = float(item["DesiredWeight"])
            dep = state.deployment
            if dep is not None and dep.outcome is None:
                data["EndpointStatus"] = dep.status
                if dep.variant_status:
                    vstatus = [{"Status": dep.variant_status, "StartTime": dep.status_since,
                                "StatusMessage": f"{dep.traffic_percent:g}% of traffic on the new fleet"}]
                    for variant in data.get("ProductionVariants", []):
                        variant["VariantStatus"] = vstatus
                    data["PendingDeploymentSummary"] = {
                        "EndpointConfigName": dep.new_config, "StartTime": dep.started_at,
                        "ProductionVariants": [{"VariantName": v["VariantName"], "VariantStatus": vstatus,
                                                "DesiredInstanceCount": v.get("InitialInstanceCount", 0),
                                                "InstanceType": v.get("InstanceType", "")}
                                               for v in dep.new_variants]}
        return json_reply(200, data)

    def _list_endpoints(self, req: Request) -> Reply:
        reply = self._forward(req)
        if reply.status != 200:
            return reply
        data = reply.json()
        with self._lock:
            for summary in data.get("Endpoints", []):
                state = self._endpoints.get(summary.get("EndpointName", ""))
                if state is not None:
                    self._settle(state)
                if state and state.deployment and state.deployment.outcome is None:
                    summary["EndpointStatus"] = state.deployment.status
                elif state and state.weights_pending is not None:
                    summary["EndpointStatus"] = "Updating"
        return json_reply(200, data)

    # endpoint configs, variants and weights --------------------------------------------------------------
    def _create_endpoint_config(self, req: Request) -> Reply:
        args = req.json()
        shadow = args.get("ShadowProductionVariants") or []
        if error := rules.validate_endpoint_config(args.get("ProductionVariants") or [], shadow):
            return validation_error(error)
        reply = self._forward(req)  # moto ignores ShadowProductionVariants: the fake keeps them
        if reply.status == 200 and shadow:
            with self._lock:
                self._shadows[args.get("EndpointConfigName", "")] = copy.deepcopy(shadow)
        return reply

    def _describe_endpoint_config(self, req: Request) -> Reply:
        reply = self._forward(req)
        with self._lock:
            shadow = self._shadows.get(req.json().get("EndpointConfigName", ""))
        if reply.status != 200 or not shadow:
            return reply
        data = reply.json()
        data["ShadowProductionVariants"] = copy.deepcopy(shadow)
        return json_reply(200, data)

    def _create_endpoint(self, req: Request) -> Reply:
        reply = self._forget_endpoint(req)
        args = req.json()
        if reply.status == 200:
            config = self._sm.describe_endpoint_config(EndpointConfigName=args.get("EndpointConfigName", ""))
            with self._lock:
                shadow = self._shadows.get(config["EndpointConfigName"], [])
                reason = self._create_failures.pop(args.get("EndpointName", ""), "")
                self._endpoints[args.get("EndpointName", "")] = _EndpointState(
                    config["EndpointConfigName"], variants_override=[rules.variant_summary(v) for v in
                                                                     config["ProductionVariants"]],
                    shadow_override=[rules.variant_summary(v) for v in shadow], failure_reason=reason,
                    failed=bool(reason))
        return reply

    def _variants(self, state: _EndpointState) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(production, shadow) variant summaries of the endpoint as deployed now (the fake's own copy)."""
        if state.variants_override is None:
            config = self._sm.describe_endpoint_config(EndpointConfigName=state.config_name)
            state.variants_override = [rules.variant_summary(v) for v in config["ProductionVariants"]]
            state.shadow_override = [rules.variant_summary(v) for v in self._shadows.get(state.config_name, [])]
        return state.variants_override, state.shadow_override

    def _settle(self, state: _EndpointState) -> None:
        """Finish a weights update whose time is up (called under the lock)."""
        if state.weights_pending is not None and time.monotonic() >= state.weights_until:
            production, shadow = self._variants(state)
            rules.apply_weights(state.weights_pending, production + shadow)
            state.weights_pending, state.last_modified = None, time.time()

    def _update_weights(self, req: Request) -> Reply:
        args = req.json()
        name = args.get("EndpointName", "")
        endpoint = self._sm.describe_endpoint(EndpointName=name)  # moto's "Could not find endpoint" when missing
        desired = args.get("DesiredWeightsAndCapacities") or []
        with self._lock:
            state = self._endpoints.setdefault(name, _EndpointState(endpoint["EndpointConfigName"]))
            self._settle(state)
            if state.busy():
                return validation_error(f'Cannot update in-progress endpoint "{endpoint["EndpointArn"]}".')
            production, shadow = self._variants(state)
            if error := rules.validate_weights(desired, production, shadow):
                return validation_error(error)
            state.weights_pending = copy.deepcopy(desired)
            state.weights_until = time.monotonic() + self.weights_seconds * self.time_scale
            state.last_modified = time.time()
        return json_reply(200, {"EndpointArn": endpoint["EndpointArn"]})

    # the guardrail state machine (one thread per update) ----------------------------------------------------
    def _run_deployment(self, dep: Deployment) -> None:
        try:
            verdict = self._drive(dep)
            if verdict is None:
                self._succeed(dep)
            else:
                self._roll_back(dep, verdict)
        except _Cancelled:
            pass
        except Exception as exc:  # moto went away or the endpoint was deleted under the update
            self._set(dep, f"Error: {exc}", status="InService", variant_status=None, outcome="Error", reason=str(exc))
        finally:
            dep.done.set()

    def _set(self, dep: Deployment, note: str, **changes: Any) -> None:
        with self._lock:
            if "variant_status" in changes or "status" in changes:
                dep.status_since = time.time()
            for key, value in changes.items():
                setattr(dep, key, value)
            dep.history.append(note)

    def _drive(self, dep: Deployment) -> str | None:
        """None when every bake passed; otherwise why the deployment rolls back."""
        wait, termination, timeout = rules.timings(dep.deployment_config)
        alarms, start = rules.alarm_names(dep.deployment_config), time.monotonic()
        self._set(dep, "Creating new fleet", variant_status="Creating")
        if reason := self._pause(dep, self.provisioning_seconds, [], start, timeout):
            return reason
        if dep.fail_reason:
            return dep.fail_reason
        for percent in dep.traffic_steps:
            self._set(dep, f"ActivatingTraffic {percent:g}%", variant_status="ActivatingTraffic",
                      traffic_percent=percent)
            if reason := self._pause(dep, self.activation_seconds, [], start, timeout):
                return reason
            self._set(dep, f"Baking {percent:g}%", variant_status="Baking")
            if reason := self._pause(dep, wait, alarms, start, timeout):
                return reason
        self._set(dep, "TerminationWait", variant_status=None)
        return self._pause(dep, termination, [], start, timeout)

    def _pause(self, dep: Deployment, seconds: float, alarms: list[str], start: float,
               timeout: float | None) -> str | None:
        """Wait ``seconds`` (scaled), polling alarms and the execution timeout; raise when cancelled."""
        end = time.monotonic() + seconds * dep.time_scale
        while True:
            if dep.cancel.is_set() or self._closing.is_set():
                raise _Cancelled
            if timeout is not None and (time.monotonic() - start) / dep.time_scale > timeout:
                return f"MaximumExecutionTimeoutInSeconds ({timeout}) exceeded"
            if alarms:
                states = self._cw.describe_alarms(AlarmNames=alarms)["MetricAlarms"]
                tripped = [a["AlarmName"] for a in states if a.get("StateValue") == "ALARM"]
                if tripped:
                    return f"alarm {tripped[0]} in ALARM"
            remaining = end - time.monotonic()
            if remaining <= 0:
                return None
            dep.cancel.wait(min(self.poll_interval, remaining))

    def _succeed(self, dep: Deployment) -> None:
        # moto cannot rename, add or remove variants, so the fake keeps the variants of the new config itself
        override = [rules.variant_summary(v) for v in dep.new_variants]
        with self._lock:
            shadow = [rules.variant_summary(v) for v in self._shadows.get(dep.new_config, [])]
            state = self._endpoints.get(dep.endpoint_name)
            if state is not None and state.deployment is dep:
                state.config_name, state.variants_override, state.last_modified = dep.new_config, override, time.time()
                state.shadow_override, state.failure_reason = shadow, ""
            self._set(dep, "InService on new config", status="InService", variant_status=None,
                      traffic_percent=100.0, outcome="Succeeded")

    def _roll_back(self, dep: Deployment, reason: str) -> None:
        self._set(dep, f"RollingBack: {reason}", status="RollingBack", variant_status=None, traffic_percent=0.0,
                  reason=reason)
        self._pause(dep, self.rollback_seconds, [], time.monotonic(), None)
        with self._lock:
            state = self._endpoints.get(dep.endpoint_name)
            if state is not None and state.deployment is dep:
                state.last_modified = time.time()
                state.failure_reason = dep.fail_reason  # a fleet that failed to provision says why; alarms do not
            self._set(dep, "InService on old config", status="InService", outcome="RolledBack")

    # pipelines -------------------------------------------------------------------------------------------
    def _steps_for(self, arn: str) -> list[dict[str, Any]]:
        """The execution's steps in run order; raises moto's ClientError for an unknown execution."""
        execution = self._sm.describe_pipeline_execution(PipelineExecutionArn=arn)
        start = execution["CreationTime"].timestamp()
        with self._lock:
            state = self._executions.get(arn) or _ExecutionState()
            if state.steps is not None:
                steps = [{"StartTime": start + i, "AttemptCount": 1, "Metadata": {}, **s}
                         for i, s in enumerate(state.steps)]
                for i, step in enumerate(steps):
                    if step["StepStatus"] in ("Succeeded", "Failed", "Stopped"):
                        step.setdefault("EndTime", start + i + 1)
                return steps
            outcomes = {**self._outcomes, **state.outcomes}
        text = self._sm.describe_pipeline_definition_for_execution(PipelineExecutionArn=arn)["PipelineDefinition"]
        try:
            definition = json.loads(text)
        except ValueError:
            return []  # moto stores any string as a definition
        return rules.definition_steps(definition, outcomes, arn, start) if isinstance(definition, dict) else []

    def _execution_status(self, arn: str, *, consume: bool) -> tuple[str, str] | None:
        with self._lock:
            state = self._executions.get(arn)
            if state is not None and state.statuses:
                status = state.statuses[0]
                if consume and len(state.statuses) > 1:
                    state.statuses.pop(0)
                return status
        return rules.status_from_steps(self._steps_for(arn))

    def _list_steps(self, req: Request) -> Reply:
        args = req.json()
        steps = self._steps_for(args.get("PipelineExecutionArn", ""))
        if args.get("SortOrder", "Descending") == "Descending":
            steps.reverse()
        offset, size = int(args.get("NextToken") or 0), int(args.get("MaxResults") or 50)
        data: dict[str, Any] = {"PipelineExecutionSteps": steps[offset:offset + size]}
        if offset + size < len(steps):
            data["NextToken"] = str(offset + size)
        return json_reply(200, data)

    def _describe_execution(self, req: Request) -> Reply:
        reply = self._forward(req)
        if reply.status != 200:
            return reply
        data = reply.json()
        status = self._execution_status(data.get("PipelineExecutionArn", ""), consume=True)
        if status is not None:
            data["PipelineExecutionStatus"], data["FailureReason"] = status
        return json_reply(200, data)

    def _list_executions(self, req: Request) -> Reply:
        reply = self._forward(req)
        if reply.status != 200:
            return reply
        data = reply.json()
        for summary in data.get("PipelineExecutionSummaries", []):
            if summary.get("PipelineExecutionFailureReason") == "None":  # moto writes str(None)
                del summary["PipelineExecutionFailureReason"]
            status = self._execution_status(summary.get("PipelineExecutionArn", ""), consume=False)
            if status is not None:
                summary["PipelineExecutionStatus"] = status[0]
                if status[1]:
                    summary["PipelineExecutionFailureReason"] = status[1]
        return json_reply(200, data)

    def _stop_execution(self, req: Request) -> Reply:
        arn = req.json().get("PipelineExecutionArn", "")
        status = self._execution_status(arn, consume=False)
        current = status[0] if status else self._sm.describe_pipeline_execution(
            PipelineExecutionArn=arn)["PipelineExecutionStatus"]
        if current not in ("Executing", "Stopping"):
            return validation_error(f"Pipeline execution {arn} is in status {current} and cannot be stopped.")
        if current == "Executing":
            self._mark_stop(arn, "Stopping")
            delay = self.stop_seconds * self.time_scale

            def finish() -> None:
                if not self._closing.wait(delay):
                    self._mark_stop(arn, "Stopped")

            self._spawn(finish, f"stop-{arn.rsplit('/', 1)[-1]}")
        return json_reply(200, {"PipelineExecutionArn": arn})

    def _mark_stop(self, arn: str, status: str) -> None:
        with self._lock:
            state = self._execution(arn)
            state.statuses = [(status, "")]
            for step in state.steps or []:
                if step["StepStatus"] in ("Starting", "Executing", "Stopping"):
                    step["StepStatus"] = status


# ----------------------------------------------------------------------------------------------- factory

@contextlib.contextmanager
def sagemaker_fake(**options: Any) -> Iterator[SageMakerFake]:
    """A started moto server and a :class:`SageMakerFake` in front of it; both stopped on exit.

    ``options`` go to :class:`SageMakerFake` (``time_scale``, ``poll_interval``, ...). ``fake.url`` is
    the endpoint_url for every boto3 client (sagemaker, cloudwatch, s3, ...).
    """
    with aws_test_env(), MotoServer() as moto, SageMakerFake(moto.url, **options) as fake:
        fake.moto = moto
        yield fake
