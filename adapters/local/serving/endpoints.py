"""Local endpoints: start the gateway and worker processes, and drive them as a TrafficBackend.

State lives under ``<root>/endpoints/<endpoint>/``: ``deployments.json`` (worker pids, ports,
models), ``rollout.json`` (the controller's state), and each worker's logs. Processes are
detached: endpoints keep serving after the command that deployed them exits.

Example:
    >>> import tempfile, pathlib
    >>> eps = LocalEndpoints(pathlib.Path(tempfile.mkdtemp()))
    >>> eps.list()
    []
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from cloudml.errors import AdapterNotInstalledError, DeploymentError, NotFoundError
from cloudml.rollout import FileStateStore
from cloudml.spec.deployment import Alarm, Deployment

__all__ = ["MAX_LOCAL_INSTANCES", "FileStateStore", "LocalEndpoints", "http_json"]

MAX_LOCAL_INSTANCES = 4


def http_json(method: str, url: str, body: Any = None, timeout: float = 10.0,
              headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """A small JSON-over-HTTP call (status, parsed body); connection problems raise OSError.

    Example:
        >>> http_json("GET", "http://127.0.0.1:9/nothing", timeout=0.2)
        Traceback (most recent call last):
        ...
        ConnectionRefusedError: [Errno 111] Connection refused
    """
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, {"error": raw.decode(errors="replace")}
    except urllib.error.URLError as e:
        raise (e.reason if isinstance(e.reason, OSError) else OSError(str(e.reason))) from None


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=1, default=str)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of this process counts as dead
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


class LocalEndpoints:
    """The gateway and workers of one root; implements :class:`cloudml.rollout.TrafficBackend`."""

    def __init__(self, root: Path, *, host: str = "127.0.0.1", port: int = 0, ready_timeout: float = 60.0) -> None:
        self.root = root
        self.host = host
        self.port = port
        self.ready_timeout = ready_timeout
        (root / "endpoints").mkdir(parents=True, exist_ok=True)

    # -- gateway -----------------------------------------------------------------------------
    def gateway_url(self, start: bool = True) -> str:
        """Base URL of the running gateway (started when needed)."""
        info = self._gateway_info()
        if info is not None:
            return f"http://{info['host']}:{info['port']}"
        if not start:
            raise NotFoundError("the local gateway is not running", backend="local", hint="deploy an endpoint first")
        return self._start_gateway()

    def _gateway_info(self) -> dict[str, Any] | None:
        try:
            info = json.loads((self.root / "gateway.json").read_text())
        except (OSError, ValueError):
            return None
        if not _alive(int(info["pid"])):
            return None
        try:
            status, _ = http_json("GET", f"http://{info['host']}:{info['port']}/health", timeout=2)
        except OSError:
            return None
        return info if status == 200 else None

    def _start_gateway(self) -> str:
        _require_serving()
        (self.root / "gateway.json").unlink(missing_ok=True)
        log = open(self.root / "gateway.log", "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(
            [sys.executable, "-m", "cloudml.adapters.local.serving.gateway", "--root", str(self.root),
             "--host", self.host, "--port", str(self.port)],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.time() + 20
        while time.time() < deadline:
            if proc.poll() is not None:
                tail = (self.root / "gateway.log").read_text(errors="replace").strip().splitlines()[-1:]
                raise DeploymentError(f"the local gateway did not start: {' '.join(tail) or 'exit ' + str(proc.returncode)}",
                                      hint="if the port is in use, set local.port in cloudml.yaml or free it")
            info = self._gateway_info()
            if info is not None:
                return f"http://{info['host']}:{info['port']}"
            time.sleep(0.05)
        raise DeploymentError("the local gateway did not answer within 20 s", hint=f"see {self.root / 'gateway.log'}")

    def stop_gateway(self) -> None:
        """Stop the gateway process (endpoints stop answering)."""
        info = self._gateway_info()
        if info is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(info["pid"]), signal.SIGTERM)
        (self.root / "gateway.json").unlink(missing_ok=True)

    # -- deployments ---------------------------------------------------------------------------
    def _folder(self, endpoint: str) -> Path:
        return self.root / "endpoints" / endpoint

    def _deployments(self, endpoint: str) -> dict[str, Any]:
        try:
            return dict(json.loads((self._folder(endpoint) / "deployments.json").read_text()))
        except FileNotFoundError:
            return {}

    def _save_deployments(self, endpoint: str, deployments: dict[str, Any]) -> None:
        self._folder(endpoint).mkdir(parents=True, exist_ok=True)
        _write_json(self._folder(endpoint) / "deployments.json", deployments)

    def create_deployment(self, endpoint: str, name: str, deployment: Deployment, model: dict[str, Any]) -> None:
        """Start a worker process for ``model`` (``uri``, ``digest``); it takes no traffic yet."""
        _require_serving()
        self.gateway_url()
        old = self._deployments(endpoint).get(name)
        if old is not None:  # created before a controller was killed: replace it, never leave it running
            for pid in old["pids"]:
                _stop(int(pid))
        folder = self._folder(endpoint) / name
        folder.mkdir(parents=True, exist_ok=True)
        count = min(deployment.instances.count, os.cpu_count() or 1, MAX_LOCAL_INSTANCES)
        env = {**os.environ, **deployment.serving.env}
        pids = []
        for i in range(count):
            port_file = folder / f"port-{i}"
            port_file.unlink(missing_ok=True)
            cmd = [sys.executable, "-m", "cloudml.adapters.local.serving.worker", "--name", name,
                   "--model-dir", model["uri"], "--host", self.host, "--port-file", str(port_file)]
            if model.get("digest"):
                cmd += ["--digest", model["digest"]]
            if deployment.serving.predictor:
                cmd += ["--predictor", deployment.serving.predictor]
            if model.get("code"):
                cmd += ["--code", model["code"]]
            with open(folder / f"worker-{i}.log", "ab") as log:
                proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env,
                                        start_new_session=True)
            pids.append(proc.pid)
        deployments = self._deployments(endpoint)
        deployments[name] = {"pids": pids, "model": model, "started": time.time(), "folder": str(folder)}
        self._save_deployments(endpoint, deployments)

    def _urls(self, endpoint: str, name: str) -> list[str]:
        info = self._deployments(endpoint).get(name)
        urls = []
        for i in range(len(info["pids"]) if info else 0):
            try:
                port = int((self._folder(endpoint) / name / f"port-{i}").read_text())
            except (OSError, ValueError):
                continue
            urls.append(f"http://{self.host}:{port}")
        return urls

    def is_ready(self, endpoint: str, name: str) -> bool:
        """True when every worker process of the deployment is alive and has loaded the model."""
        info = self._deployments(endpoint).get(name)
        if info is None or not all(_alive(int(pid)) for pid in info["pids"]):
            return False
        urls = self._urls(endpoint, name)
        if len(urls) != len(info["pids"]):
            return False
        for url in urls:
            try:
                status, _ = http_json("GET", url + "/ready", timeout=2)
            except OSError:
                return False
            if status != 200:
                return False
        return True

    def worker_error(self, endpoint: str, name: str) -> str:
        """The last line a worker of the deployment logged (why it is not ready)."""
        for log in sorted((self._folder(endpoint) / name).glob("worker-*.log")):
            try:
                lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
            except OSError:
                continue
            if lines:
                return lines[-1]
        return ""

    def set_traffic(self, endpoint: str, weights: dict[str, int], mirror: dict[str, int]) -> None:
        """Tell the gateway the deployments, their weights and mirror shares."""
        urls = {}
        for name in self._deployments(endpoint):
            found = self._urls(endpoint, name)
            if found:
                urls[name] = found
        status, body = http_json("PUT", f"{self.gateway_url()}/-/endpoints/{endpoint}",
                                 {"deployments": urls, "weights": weights, "mirror": mirror,
                                  "capture": self._capture(endpoint)})
        if status != 200:
            raise DeploymentError(f"the gateway refused the traffic split {weights}: {body.get('error', body)}")

    def _capture(self, endpoint: str) -> dict[str, Any] | None:
        state = FileStateStore(self.root).load(endpoint) or {}
        capture = (state.get("spec") or {}).get("capture")
        return capture if capture and capture.get("enabled", True) else None

    def traffic(self, endpoint: str) -> dict[str, Any]:
        """The gateway's view of an endpoint: urls, weights, mirror, metrics, shadow comparisons."""
        try:
            status, body = http_json("GET", f"{self.gateway_url(start=False)}/-/endpoints")
        except (OSError, NotFoundError):
            return {}
        return dict(body.get(endpoint, {})) if status == 200 else {}

    def periods(self, endpoint: str, name: str, period: int, count: int) -> list[dict[str, Any]]:
        """Per-period metrics of a deployment from the gateway, oldest first."""
        url = f"{self.gateway_url()}/-/endpoints/{endpoint}/metrics?deployment={name}&period={period}&count={count}"
        status, body = http_json("GET", url)
        return list(body.get(name, [])) if status == 200 else []

    def alarm_datapoints(self, endpoint: str, name: str, alarm: Alarm) -> list[float | None]:
        """The alarm metric for the last ``evaluation_periods`` complete periods."""
        assert alarm.metric is not None
        periods = self.periods(endpoint, name, max(1, round(alarm.period)), alarm.evaluation_periods)
        if alarm.metric == "invocations":
            return [float(p["requests"]) for p in periods]
        return [p.get(alarm.metric) for p in periods]

    def delete_deployment(self, endpoint: str, name: str, drain_timeout: float = 30.0) -> None:
        """Stop a deployment that takes no traffic, after its in-flight requests finish."""
        view = self.traffic(endpoint)
        if view.get("weights", {}).get(name, 0) > 0:
            raise DeploymentError(f"{name} still takes traffic on {endpoint}; shift it away first")
        deadline = time.time() + drain_timeout
        while time.time() < deadline:
            inflight = self.traffic(endpoint).get("metrics", {}).get(name, {}).get("inflight", 0)
            if not inflight:
                break
            time.sleep(0.05)
        deployments = self._deployments(endpoint)
        info = deployments.pop(name, None)
        if info is None:
            raise NotFoundError(f"{endpoint} has no deployment {name}", backend="local")
        if view:
            weights = {k: v for k, v in view.get("weights", {}).items() if k != name}
            mirror = {k: v for k, v in view.get("mirror", {}).items() if k != name}
            self._save_deployments(endpoint, {**deployments, name: info})
            urls = {n: u for n, u in view.get("urls", {}).items() if n != name}
            http_json("PUT", f"{self.gateway_url()}/-/endpoints/{endpoint}",
                      {"deployments": urls, "weights": weights, "mirror": mirror, "capture": self._capture(endpoint)})
        for pid in info["pids"]:
            _stop(int(pid))
        self._save_deployments(endpoint, deployments)

    # -- whole endpoints ---------------------------------------------------------------------------
    def list(self) -> list[str]:
        """Endpoints with state under this root."""
        return sorted(p.name for p in (self.root / "endpoints").iterdir() if p.is_dir())

    def status(self, endpoint: str) -> dict[str, Any]:
        """Deployments (with liveness and readiness), traffic and rollout state of an endpoint."""
        if not self._folder(endpoint).is_dir():
            raise NotFoundError(f"no endpoint {endpoint!r}", backend="local", hint="cloudml endpoints list")
        deployments = {
            name: {**info, "alive": all(_alive(int(p)) for p in info["pids"]), "ready": self.is_ready(endpoint, name)}
            for name, info in self._deployments(endpoint).items()
        }
        rollout = FileStateStore(self.root).load(endpoint) or {}
        return {"endpoint": endpoint, "deployments": deployments, "traffic": self.traffic(endpoint),
                "rollout": {k: rollout.get(k) for k in ("status", "live", "blue", "green", "outcome")},
                "url": f"{self.gateway_url(start=False)}/endpoints/{endpoint}/predict"
                if self._gateway_info() else None}

    def delete(self, endpoint: str) -> None:
        """Stop every worker of an endpoint and forget it."""
        if not self._folder(endpoint).is_dir():
            raise NotFoundError(f"no endpoint {endpoint!r}", backend="local", hint="cloudml endpoints list")
        with contextlib.suppress(OSError, NotFoundError):
            http_json("DELETE", f"{self.gateway_url(start=False)}/-/endpoints/{endpoint}")
        for info in self._deployments(endpoint).values():
            for pid in info["pids"]:
                _stop(int(pid))
        import shutil

        shutil.rmtree(self._folder(endpoint))
        if not self.list():
            self.stop_gateway()  # the last endpoint is gone: nothing is left listening

    def shutdown(self) -> None:
        """Stop every worker and the gateway of this root (tests, `cloudml endpoints delete --all`)."""
        for endpoint in self.list():
            for info in self._deployments(endpoint).values():
                for pid in info["pids"]:
                    _stop(int(pid))
        self.stop_gateway()


def _stop(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.time() + 5
    while time.time() < deadline and _alive(pid):
        time.sleep(0.02)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _require_serving() -> None:
    import importlib.util

    missing = [m for m in ("uvicorn", "starlette") if importlib.util.find_spec(m) is None]
    if missing:
        raise AdapterNotInstalledError("local (endpoints)", "serve", missing)
