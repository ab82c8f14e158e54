"""Local serving over real HTTP: the gateway and worker processes, their faults, routing and metrics.

Most tests share one pool of worker processes (one per predictor) and give each test its own endpoint
on the gateway (``PUT /-/endpoints/{ep}`` with those workers' URLs), so every test starts with empty
metrics. Every process started here is stopped at teardown (``endpoints.shutdown()``, then anything
of this root that is still alive, by pid).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cloudml
from cloudml.adapter import RolloutOutcome
from cloudml.adapters.local.serving.endpoints import FileStateStore, LocalEndpoints, http_json
from cloudml.adapters.local.serving.metrics import DeploymentMetrics, period_value, prometheus_text
from cloudml.errors import DeploymentError, NotFoundError
from cloudml.rollout import RolloutController
from cloudml.spec.deployment import Deployment
from tests.serving_helpers import model_folder, serving_pids

MAX_BODY = 6 * 1024 * 1024


# -- helpers (processes, models, HTTP) ---------------------------------------------------------------------
def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if Path(f"/proc/{p}").exists() and not _zombie(p)]
        time.sleep(0.05)
    return alive


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def stop_everything(adapter: Any) -> list[int]:
    """shutdown(), then wait for the processes of this root to exit; kill (by pid) any that do not.

    Returns the pids that were still alive after shutdown() had returned and 10 s had passed.
    """
    root = Path(adapter.root)
    with contextlib.suppress(Exception):
        adapter.endpoints.shutdown()
    left = _wait_gone(serving_pids(root), 10.0)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _wait_gone(left, 5.0)
    return left


class Client:
    """One keep-alive HTTP/1.1 connection to the gateway."""

    def __init__(self, base: str) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)

    def post(self, path: str, body: bytes | Any, headers: dict[str, str] | None = None,
             chunked: bool = False) -> tuple[int, Any]:
        data = body if isinstance(body, bytes) or chunked else json.dumps(body).encode()
        self.conn.request("POST", path, body=data, headers={"content-type": "application/json", **(headers or {})},
                          encode_chunked=chunked)
        resp = self.conn.getresponse()
        raw = resp.read()
        try:
            return resp.status, json.loads(raw)
        except ValueError:
            return resp.status, raw.decode(errors="replace")

    def get(self, path: str) -> tuple[int, str, str]:
        self.conn.request("GET", path)
        resp = self.conn.getresponse()
        return resp.status, resp.getheader("content-type") or "", resp.read().decode()

    def close(self) -> None:
        self.conn.close()


def wait_for(check: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def put_route(gateway: str, endpoint: str, urls: dict[str, list[str]], weights: dict[str, Any],
              mirror: dict[str, Any] | None = None, capture: Any = None) -> tuple[int, Any]:
    return http_json("PUT", f"{gateway}/-/endpoints/{endpoint}",
                     {"deployments": urls, "weights": weights, "mirror": mirror or {}, "capture": capture})


def endpoint_view(gateway: str, endpoint: str) -> dict[str, Any]:
    status, body = http_json("GET", f"{gateway}/-/endpoints")
    assert status == 200
    return dict(body.get(endpoint, {}))


def new_endpoint() -> str:
    return "t" + uuid.uuid4().hex[:10]


# -- the shared pool of workers ------------------------------------------------------------------------------
class Pool:
    def __init__(self, adapter: Any, gateway: str, urls: dict[str, list[str]], model: Any) -> None:
        self.adapter, self.gateway, self.urls, self.model = adapter, gateway, urls, model

    def route(self, weights: dict[str, Any], mirror: dict[str, Any] | None = None,
              extra: dict[str, list[str]] | None = None) -> str:
        ep = new_endpoint()
        names = set(weights) | set(mirror or {})
        urls = {n: self.urls[n] for n in names if n in self.urls} | (extra or {})
        status, body = put_route(self.gateway, ep, urls, weights, mirror)
        assert status == 200, body
        return ep

    def client(self) -> Client:
        return Client(self.gateway)


POOL = {"good": "Good", "good2": "Good", "other": "Other", "picky": "Picky", "bad": "Bad"}


def deployment(predictor: str, endpoint: str = "pool", version: int = 1, **kw: Any) -> Deployment:
    return Deployment.model_validate({"endpoint": endpoint, "model": {"group": "toy", "version": version},
                                      "serving": {"predictor": f"pred:{predictor}", **kw.pop("serving", {})}, **kw})


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    base = tmp_path_factory.mktemp("serving")
    adapter = cloudml.get_adapter("local", root=str(base / "state"))
    model = adapter.register_model("toy", str(model_folder(base, "pool")), approval="approved")
    info = {"uri": model.uri, "digest": Path(model.uri).name}
    eps = adapter.endpoints
    try:
        for name, cls in POOL.items():
            eps.create_deployment("pool", name, deployment(cls), info)
        wait_for(lambda: all(eps.is_ready("pool", n) for n in POOL), 60, "the pool workers to be ready")
        urls = {n: eps._urls("pool", n) for n in POOL}
        yield Pool(adapter, eps.gateway_url(), urls, model)
    finally:
        stop_everything(adapter)


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Any]:
    adapter = cloudml.get_adapter("local", root=str(tmp_path / "state"))
    try:
        yield adapter
    finally:
        left = stop_everything(adapter)
        assert not left, f"processes still running 10 s after shutdown(): {left}"


# -- workers ---------------------------------------------------------------------------------------------------
def test_worker_health_and_ready(pool: Pool) -> None:
    for name in POOL:
        (url,) = pool.urls[name]
        assert http_json("GET", url + "/health") == (200, {"status": "alive", "deployment": name})
        assert http_json("GET", url + "/ready") == (200, {"ready": True, "deployment": name})


def test_predict_through_the_gateway(pool: Pool) -> None:
    ep = pool.route({"good": 100})
    c = pool.client()
    status, body = c.post(f"/endpoints/{ep}/predict", {"instances": [[1, 2], [3, 4]]})
    assert (status, body) == (200, {"predictions": [3, 7], "deployment": "good"})


def test_adapter_invoke_and_pin(pool: Pool) -> None:
    assert pool.adapter.invoke("pool", [[1, 2]]) == {"predictions": [3], "deployment": "good"}
    assert pool.adapter.invoke("pool", [[1, 2]], deployment="other") == {"predictions": [4], "deployment": "other"}


@pytest.fixture(scope="module", autouse=True)
def _pool_route(pool: Pool) -> None:
    pool.adapter.endpoints.set_traffic("pool", {"good": 100, "good2": 0, "other": 0, "picky": 0, "bad": 0}, {})


# -- bad input and faults ------------------------------------------------------------------------------------
@pytest.mark.parametrize("body", [b"{not json", b"", b"[1, 2]", b'{"rows": [[1]]}', b'{"instances": 5}',
                                  b'{"instances": "abc"}', "é".encode("latin-1")])
def test_malformed_json_gets_400_with_a_message(pool: Pool, body: bytes) -> None:
    ep = pool.route({"good": 100})
    c = pool.client()
    status, answer = c.post(f"/endpoints/{ep}/predict", body)
    assert status == 400
    assert "instances" in answer["error"]
    # the same connection and the same worker keep serving
    assert c.post(f"/endpoints/{ep}/predict", {"instances": [[1]]}) == (200, {"predictions": [1], "deployment": "good"})


def test_oversized_body_gets_413(pool: Pool) -> None:
    ep = pool.route({"good": 100})
    c = pool.client()
    status, answer = c.post(f"/endpoints/{ep}/predict", b"x" * (MAX_BODY + 1))
    assert status == 413 and "larger than" in answer["error"]

    def chunks() -> Iterator[bytes]:
        for _ in range(7):
            yield b"x" * (1024 * 1024)

    status, answer = c.post(f"/endpoints/{ep}/predict", chunks(), chunked=True)  # no Content-Length
    assert status == 413 and "larger than" in answer["error"]
    assert c.post(f"/endpoints/{ep}/predict", {"instances": [[2, 2]]})[0] == 200
    # a large body under the limit is fine
    big = {"instances": [[1]] * 900_000}
    assert len(json.dumps(big)) < MAX_BODY
    status, answer = c.post(f"/endpoints/{ep}/predict", big)
    assert status == 200 and len(answer["predictions"]) == 900_000
    view = endpoint_view(pool.gateway, ep)
    assert view["metrics"]["good"]["requests"] == 2  # refused bodies never reached a worker


def test_predictor_exception_gets_500_is_counted_and_serving_goes_on(pool: Pool) -> None:
    ep = pool.route({"picky": 100})
    c = pool.client()
    assert c.post(f"/endpoints/{ep}/predict", {"instances": [[1, 2]]})[0] == 200
    status, answer = c.post(f"/endpoints/{ep}/predict", {"instances": ["explode"]})
    assert status == 500
    assert "ValueError" in answer["error"] and answer["deployment"] == "picky"
    for _ in range(3):
        assert c.post(f"/endpoints/{ep}/predict", {"instances": [[5]]}) == (200, {"predictions": [5],
                                                                                 "deployment": "picky"})
    snap = endpoint_view(pool.gateway, ep)["metrics"]["picky"]
    assert (snap["requests"], snap["errors"], snap["inflight"]) == (5, 1, 0)

    def periods() -> Any:
        status, body = http_json("GET", f"{pool.gateway}/-/endpoints/{ep}/metrics?period=1&count=30")
        assert status == 200
        rows = body["picky"]
        return rows if sum(r["requests"] for r in rows) == 5 else None

    rows = wait_for(periods, 5, "the requests to land in complete 1 s periods")
    assert sum(r["errors"] for r in rows) == 1
    assert any(r["error_rate"] and r["error_rate"] > 0 for r in rows)


def test_failing_model_errors_are_counted(pool: Pool) -> None:
    ep = pool.route({"bad": 100})
    c = pool.client()
    for _ in range(4):
        status, answer = c.post(f"/endpoints/{ep}/predict", {"instances": [[1]]})
        assert status == 500 and "RuntimeError: boom" in answer["error"]
    snap = endpoint_view(pool.gateway, ep)["metrics"]["bad"]
    assert (snap["requests"], snap["errors"]) == (4, 4)


def test_unknown_endpoint_and_deployment_get_404(pool: Pool) -> None:
    c = pool.client()
    status, answer = c.post("/endpoints/nope/predict", {"instances": [[1]]})
    assert status == 404 and "nope" in answer["error"]
    ep = pool.route({"good": 100})
    status, answer = c.post(f"/endpoints/{ep}/predict", {"instances": [[1]]}, headers={"X-Cloudml-Deployment": "ghost"})
    assert status == 404 and "ghost" in answer["error"]
    with pytest.raises(NotFoundError):
        pool.adapter.invoke("nope", [[1]])
    with pytest.raises(NotFoundError):
        pool.adapter.invoke("pool", [[1]], deployment="ghost")
    assert http_json("DELETE", f"{pool.gateway}/-/endpoints/nope")[0] == 404
    c.conn.request("GET", f"/endpoints/{ep}/predict")
    assert c.conn.getresponse().status == 405


@pytest.mark.parametrize(("weights", "mirror", "message"), [
    ({"good": 60, "other": 35}, {}, "sum to 100"),
    ({"good": 60, "other": 50}, {}, "sum to 100"),
    ({"good": 50.5, "other": 49.5}, {}, "integer"),
    ({"good": 110, "other": -10}, {}, "integer from 0 to 100"),
    ({"good": True, "other": 99}, {}, "integer"),
    ({"good": 100, "ghost": 0}, {}, "unknown deployment"),
    ({"good": 100}, {"good": 10}, "either live or mirrored"),
    ({"good": 100}, {"other": 150}, "integer from 0 to 100"),
])
def test_invalid_weights_are_refused_with_422(pool: Pool, weights: dict[str, Any], mirror: dict[str, Any],
                                              message: str) -> None:
    ep = pool.route({"good": 100})
    urls = {"good": pool.urls["good"], "other": pool.urls["other"]}
    status, body = put_route(pool.gateway, ep, urls, weights, mirror)
    assert status == 422
    assert message in body["error"]
    # the previous route is untouched
    assert endpoint_view(pool.gateway, ep)["weights"] == {"good": 100}
    assert pool.client().post(f"/endpoints/{ep}/predict", {"instances": [[1]]})[1]["deployment"] == "good"


def test_malformed_route_is_refused_with_400(pool: Pool) -> None:
    ep = new_endpoint()
    for bad in ({"weights": {"a": 100}}, {"deployments": {"a": "http://x"}, "weights": {"a": 100}},
                {"deployments": {"a": []}, "weights": {"a": 100}}):
        status, body = http_json("PUT", f"{pool.gateway}/-/endpoints/{ep}", bad)
        assert status == 400, bad
        assert body["error"]


def test_local_endpoints_refuse_weights_not_summing_to_100(pool: Pool) -> None:
    with pytest.raises(DeploymentError, match="sum to 100"):
        pool.adapter.endpoints.set_traffic("pool", {"good": 60, "other": 30}, {})
    assert endpoint_view(pool.gateway, "pool")["weights"]["good"] == 100


# -- routing ------------------------------------------------------------------------------------------------------
def test_weighted_split_is_roughly_honoured_and_every_request_is_recorded(pool: Pool) -> None:
    ep = pool.route({"good": 70, "other": 30})
    c = pool.client()
    seen: Counter[str] = Counter()
    n = 400
    for i in range(n):
        status, answer = c.post(f"/endpoints/{ep}/predict", {"instances": [[i]]})
        assert status == 200
        seen[answer["deployment"]] += 1
        expected = i if answer["deployment"] == "good" else i + 1
        assert answer["predictions"] == [expected]
    assert set(seen) == {"good", "other"}
    assert 0.6 < seen["good"] / n < 0.8  # 70% expected; bounds are > 4 standard deviations wide
    metrics = endpoint_view(pool.gateway, ep)["metrics"]
    assert {k: v["requests"] for k, v in metrics.items()} == dict(seen)
    assert all(v["errors"] == 0 for v in metrics.values())


def test_zero_weight_gets_no_traffic(pool: Pool) -> None:
    ep = pool.route({"good": 100, "other": 0})
    c = pool.client()
    assert {c.post(f"/endpoints/{ep}/predict", {"instances": [[1]]})[1]["deployment"] for _ in range(50)} == {"good"}


def test_pin_header_overrides_weights(pool: Pool) -> None:
    ep = pool.route({"good": 100, "other": 0})
    c = pool.client()
    for _ in range(20):
        status, answer = c.post(f"/endpoints/{ep}/predict", {"instances": [[1]]},
                                headers={"X-Cloudml-Deployment": "other"})
        assert (status, answer["deployment"]) == (200, "other")
    metrics = endpoint_view(pool.gateway, ep)["metrics"]
    assert metrics["other"]["requests"] == 20
    assert metrics.get("good", {}).get("requests", 0) == 0


def test_shadow_mirrors_a_share_and_compares(pool: Pool) -> None:
    ep = pool.route({"good": 100}, mirror={"other": 50, "good2": 100})
    c = pool.client()
    n = 200
    for i in range(n):
        status, answer = c.post(f"/endpoints/{ep}/predict", {"instances": [[i, 1]]})
        assert (status, answer) == (200, {"predictions": [i + 1], "deployment": "good"})  # always the live one

    def settled() -> Any:
        view = endpoint_view(pool.gateway, ep)
        shadow = view.get("shadow", {})
        g2 = shadow.get("good2", {})
        done = g2.get("compared", 0) + g2.get("failed", 0) == n and view["metrics"]["other"]["inflight"] == 0
        return view if done else None

    view = wait_for(settled, 10, "the mirrored requests to finish")
    shadow = view["shadow"]
    assert shadow["good2"] == {"compared": n, "agreed": n, "failed": 0}
    other = shadow["other"]
    assert 60 <= other["compared"] <= 140  # 50% of 200, loose
    assert other["agreed"] == 0 and other["failed"] == 0
    metrics = view["metrics"]
    assert metrics["good"]["requests"] == n
    assert metrics["good2"]["requests"] == n
    assert metrics["other"]["requests"] == other["compared"]


def test_failing_shadow_never_reaches_the_client(pool: Pool) -> None:
    ep = pool.route({"good": 100}, mirror={"bad": 100})
    c = pool.client()
    for _ in range(30):
        assert c.post(f"/endpoints/{ep}/predict", {"instances": [[1]]}) == (200, {"predictions": [1],
                                                                                "deployment": "good"})
    view = wait_for(lambda: (v := endpoint_view(pool.gateway, ep))["shadow"].get("bad", {}).get("failed") == 30 and v,
                    10, "the mirrored requests to fail")
    assert view["shadow"]["bad"]["compared"] == 0
    assert (view["metrics"]["bad"]["requests"], view["metrics"]["bad"]["errors"]) == (30, 30)


def test_unreachable_deployment_is_retried_on_another(pool: Pool) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"  # closed again: nothing listens there
    ep = pool.route({"good": 50, "dead": 50}, extra={"dead": [dead]})
    c = pool.client()
    for _ in range(40):
        status, answer = c.post(f"/endpoints/{ep}/predict", {"instances": [[1]]})
        assert (status, answer["deployment"]) == (200, "good")
    assert endpoint_view(pool.gateway, ep)["metrics"]["dead"]["errors"] > 0
    only_dead = pool.route({"dead": 100}, extra={"dead": [dead]})
    status, answer = c.post(f"/endpoints/{only_dead}/predict", {"instances": [[1]]})
    assert status == 503 and "unreachable" in answer["error"]


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_dead_instance_is_retried_on_the_deployments_other_instance(pool: Pool) -> None:
    ep = pool.route({"two": 100}, extra={"two": [pool.urls["good"][0], _dead_url()]})
    c = pool.client()
    statuses = Counter(c.post(f"/endpoints/{ep}/predict", {"instances": [[1]]})[0] for _ in range(40))
    assert statuses == {200: 40}


def test_every_deployment_unreachable_is_a_json_503(pool: Pool) -> None:
    ep = pool.route({"dead1": 50, "dead2": 50}, extra={"dead1": [_dead_url()], "dead2": [_dead_url()]})
    c = pool.client()
    status, answer = c.post(f"/endpoints/{ep}/predict", {"instances": [[1]]})
    assert status == 503
    assert isinstance(answer, dict) and "unreachable" in answer["error"]
    metrics = endpoint_view(pool.gateway, ep)["metrics"]
    assert metrics["dead1"]["errors"] + metrics["dead2"]["errors"] == 2


# -- metrics ------------------------------------------------------------------------------------------------------
PROM_LINE = r'{name}{{endpoint="{ep}",deployment="{dep}"{extra}}} {value}'


def test_prometheus_text_has_counters_and_histogram(pool: Pool) -> None:
    ep = pool.route({"picky": 100})
    c = pool.client()
    for _ in range(7):
        c.post(f"/endpoints/{ep}/predict", {"instances": [[1]]})
    c.post(f"/endpoints/{ep}/predict", {"instances": ["explode"]})
    status, ctype, text = c.get("/metrics")
    assert status == 200 and ctype.startswith("text/plain")
    lines = text.splitlines()
    assert "# TYPE cloudml_requests_total counter" in lines
    assert "# TYPE cloudml_errors_total counter" in lines
    assert "# TYPE cloudml_request_latency_seconds histogram" in lines
    labels = f'endpoint="{ep}",deployment="picky"'
    assert f"cloudml_requests_total{{{labels}}} 8" in lines
    assert f"cloudml_errors_total{{{labels}}} 1" in lines
    buckets = [ln for ln in lines if ln.startswith(f"cloudml_request_latency_seconds_bucket{{{labels},")]
    counts = [int(ln.rsplit(" ", 1)[1]) for ln in buckets]
    assert len(buckets) >= 5 and counts == sorted(counts)  # cumulative
    assert buckets[-1].startswith(f'cloudml_request_latency_seconds_bucket{{{labels},le="+Inf"}}')
    assert counts[-1] == 8
    assert f"cloudml_request_latency_seconds_count{{{labels}}} 8" in lines
    (total,) = [ln for ln in lines if ln.startswith(f"cloudml_request_latency_seconds_sum{{{labels}}}")]
    assert float(total.rsplit(" ", 1)[1]) > 0


def test_period_metrics_api(pool: Pool) -> None:
    ep = pool.route({"good": 100})
    status, body = http_json("GET", f"{pool.gateway}/-/endpoints/{ep}/metrics?period=1&count=3&deployment=good")
    assert status == 200 and len(body["good"]) == 3
    assert set(body["good"][0]) == {"start", "requests", "errors", "error_rate", "latency_p50", "latency_p90",
                                    "latency_p99"}
    assert http_json("GET", f"{pool.gateway}/-/endpoints/{ep}/metrics?period=x")[0] == 400


def test_metrics_periods_are_complete_seconds() -> None:
    m = DeploymentMetrics()
    for t, lat, err in [(100.1, 0.01, False), (100.9, 0.02, True), (101.5, 0.5, False), (102.2, 0.03, False)]:
        m.record(lat, error=err, now=t)
    rows = m.periods(period=1, count=3, now=102.7)  # 102 is not complete
    assert [(r["start"], r["requests"], r["errors"]) for r in rows] == [(99, 0, 0), (100, 2, 1), (101, 1, 0)]
    two = m.periods(period=2, count=1, now=102.7)
    assert (two[0]["start"], two[0]["requests"]) == (100, 3)
    assert period_value("error_rate", rows[1]) == 0.5
    assert period_value("latency_p99", rows[1]) == 0.02
    assert period_value("latency_p50", rows[1]) == 0.01
    assert period_value("error_rate", rows[0]) is None
    assert period_value("invocations", rows[0]) == 0.0
    assert m.snapshot()["requests"] == 4 and m.snapshot()["errors"] == 1


def test_prometheus_text_of_nothing_and_of_one() -> None:
    assert "cloudml_requests_total" in prometheus_text({})
    m = DeploymentMetrics()
    m.record(0.2, error=False)
    text = prometheus_text({("ep", "d"): m})
    assert 'cloudml_request_latency_seconds_bucket{endpoint="ep",deployment="d",le="0.1"} 0' in text
    assert 'cloudml_request_latency_seconds_bucket{endpoint="ep",deployment="d",le="0.25"} 1' in text


# -- deployments: drain, digest, port, capture, scikit-learn -------------------------------------------------------
def test_delete_deployment_drains_in_flight_requests(local: Any, tmp_path: Path) -> None:
    model = local.register_model("toy", str(model_folder(tmp_path, "drain")), approval="approved")
    info = {"uri": model.uri, "digest": Path(model.uri).name}
    eps: LocalEndpoints = local.endpoints
    eps.create_deployment("drain", "slow", deployment("Slow", "drain", serving={"env": {"PRED_SLEEP": "1.5"}}), info)
    eps.create_deployment("drain", "good", deployment("Good", "drain"), info)
    wait_for(lambda: eps.is_ready("drain", "slow") and eps.is_ready("drain", "good"), 30, "workers")
    eps.set_traffic("drain", {"slow": 100, "good": 0}, {})
    slow_pid = eps._deployments("drain")["slow"]["pids"][0]
    box: dict[str, Any] = {}

    def call() -> None:
        box["answer"] = Client(eps.gateway_url()).post("/endpoints/drain/predict", {"instances": [[1, 1]]})

    t = threading.Thread(target=call)
    t.start()
    wait_for(lambda: eps.traffic("drain")["metrics"].get("slow", {}).get("inflight"), 10, "the request in flight")
    eps.set_traffic("drain", {"slow": 0, "good": 100}, {})
    eps.delete_deployment("drain", "slow")
    t.join(10)
    assert box["answer"] == (200, {"predictions": [2], "deployment": "slow"})
    assert not _wait_gone([slow_pid], 5)
    assert set(eps._deployments("drain")) == {"good"}
    assert eps.traffic("drain")["weights"] == {"good": 100}
    assert local.invoke("drain", [[1]])["deployment"] == "good"
    with pytest.raises(DeploymentError, match="still takes traffic"):
        eps.delete_deployment("drain", "good")


def _tamper(model_uri: str) -> None:
    target = Path(model_uri) / "pred.py"
    os.chmod(target, 0o644)
    os.chmod(target.parent, 0o755)
    target.write_text(target.read_text() + "\n# changed after registration\n")


def test_model_whose_digest_changed_is_refused(local: Any, tmp_path: Path) -> None:
    model = local.register_model("toy", str(model_folder(tmp_path, "tamper")), approval="approved")
    _tamper(model.uri)
    eps: LocalEndpoints = local.endpoints
    eps.create_deployment("tampered", "v1", deployment("Good", "tampered"), {"uri": model.uri,
                                                                            "digest": Path(model.uri).name})

    def refused() -> Any:
        urls = eps._urls("tampered", "v1")
        if not urls:
            return None
        try:
            status, body = http_json("GET", urls[0] + "/ready")
        except OSError:
            return None
        return (status, body) if body.get("error") else None

    status, body = wait_for(refused, 30, "the worker to refuse the model")
    assert status == 503 and body["ready"] is False
    assert "digest mismatch" in body["error"]
    assert not eps.is_ready("tampered", "v1")
    assert "digest mismatch" in eps.worker_error("tampered", "v1")
    log = (local.root / "endpoints" / "tampered" / "v1" / "worker-0.log").read_text()
    assert "refusing to load a model that changed after registration" in log
    status, body = http_json("POST", eps._urls("tampered", "v1")[0] + "/predict", {"instances": [[1]]})
    assert status == 503 and "not loaded" in body["error"]


def test_rollout_of_a_refused_model_fails_and_blue_keeps_serving(local: Any, tmp_path: Path) -> None:
    local.register_model("toy", str(model_folder(tmp_path, "one")), approval="approved")
    v2 = local.register_model("toy", str(model_folder(tmp_path, "two")), approval="approved")
    assert local.deploy(deployment("Good", "ep", 1, strategy={"all_at_once": {"bake": "0s"}}),
                        poll=0.1).outcome is RolloutOutcome.SUCCEEDED
    _tamper(v2.uri)
    ctl = RolloutController(local.endpoints, FileStateStore(local.root), poll=0.1, ready_timeout=4)
    result = ctl.deploy(deployment("Good", "ep", 2, strategy={"canary": {"percent": 50, "bake": "5s"}}),
                        model_name="toy-v2", model={"uri": v2.uri, "digest": Path(v2.uri).name})
    assert result.outcome is RolloutOutcome.FAILED
    assert "did not become ready" in result.reason
    status = local.endpoint_status("ep")
    assert status["traffic"]["weights"] == {"toy-v1": 100}
    assert set(status["deployments"]) == {"toy-v1"}
    assert local.invoke("ep", [[1, 2]]) == {"predictions": [3], "deployment": "toy-v1"}


def test_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        adapter = cloudml.get_adapter("local", root=str(tmp_path / "state"), port=port)
        try:
            adapter.register_model("toy", str(model_folder(tmp_path, "port")), approval="approved")
            with pytest.raises(DeploymentError) as e:
                adapter.deploy(deployment("Good", "ep", 1, strategy="all_at_once"), poll=0.1)
            assert str(port) in str(e.value)
            assert "in use" in str(e.value).lower()
            assert e.value.hint and "port" in e.value.hint
        finally:
            assert not stop_everything(adapter)
        assert not serving_pids(tmp_path / "state")


def test_capture_writes_json_lines(local: Any, tmp_path: Path) -> None:
    local.register_model("toy", str(model_folder(tmp_path, "cap")), approval="approved")
    d = deployment("Good", "cap", 1, strategy={"all_at_once": {"bake": "0s"}}, capture={"percent": 100})
    assert local.deploy(d, poll=0.1).outcome is RolloutOutcome.SUCCEEDED
    for i in range(3):
        assert local.invoke("cap", [[i, 1]])["predictions"] == [i + 1]
    files = sorted((local.root / "endpoints" / "cap" / "capture").glob("*.jsonl"))
    assert len(files) == 1
    records = [json.loads(line) for line in files[0].read_text().splitlines()]
    assert [r["request"] for r in records] == [{"instances": [[i, 1]]} for i in range(3)]
    assert [r["response"]["predictions"] for r in records] == [[1], [2], [3]]
    assert {r["deployment"] for r in records} == {"toy-v1"}
    assert all(isinstance(r["at"], float) for r in records)
    assert all(0 < r["latency_ms"] < 10_000 for r in records) and "request_id" not in records[0]
    request = urllib.request.Request(f"{local.endpoints.gateway_url()}/endpoints/cap/predict",
                                     data=b'{"instances": [[5, 1]]}', method="POST",
                                     headers={"content-type": "application/json", "x-request-id": "req-42"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert json.loads(resp.read())["predictions"] == [6]
    last = json.loads(files[0].read_text().splitlines()[-1])
    assert last["request_id"] == "req-42" and last["request"] == {"instances": [[5, 1]]}


def test_no_capture_without_the_spec(local: Any, tmp_path: Path) -> None:
    local.register_model("toy", str(model_folder(tmp_path, "nocap")), approval="approved")
    local.deploy(deployment("Good", "nocap", 1, strategy={"all_at_once": {"bake": "0s"}}), poll=0.1)
    local.invoke("nocap", [[1]])
    assert not (local.root / "endpoints" / "nocap" / "capture").exists()


def test_scikit_learn_model_is_served(local: Any, tmp_path: Path) -> None:
    import joblib
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    frame = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    model = LinearRegression().fit(frame, 2 * frame["a"] + 3 * frame["b"] + 1)
    folder = tmp_path / "sk"
    folder.mkdir()
    joblib.dump(model, folder / "model.joblib")
    local.register_model("sk", str(folder), approval="approved")
    d = Deployment.model_validate({"endpoint": "sk", "model": {"group": "sk", "version": 1},
                                   "strategy": {"all_at_once": {"bake": "0s"}}})
    assert local.deploy(d, poll=0.1).outcome is RolloutOutcome.SUCCEEDED
    rows = local.invoke("sk", [[1.0, 1.0], [2.0, 0.0]])
    assert rows["predictions"] == pytest.approx([6.0, 5.0])
    records = local.invoke("sk", [{"a": 1.0, "b": 1.0}])
    assert records["predictions"] == pytest.approx([6.0])


# -- the controller killed at a side effect on the real backend, then resumed ---------------------------------------
class Killed(BaseException):
    """The controller process died here."""


class KilledAfter(LocalEndpoints):
    """LocalEndpoints that 'dies' right after one call (by name and deployment) has done its work."""

    def __init__(self, root: Path, method: str, target: str) -> None:
        super().__init__(root)
        self.method, self.target = method, target

    def create_deployment(self, endpoint: str, name: str, deployment: Deployment, model: dict[str, Any]) -> None:
        super().create_deployment(endpoint, name, deployment, model)
        self._maybe_die("create_deployment", name)

    def delete_deployment(self, endpoint: str, name: str, drain_timeout: float = 30.0) -> None:
        super().delete_deployment(endpoint, name, drain_timeout)
        self._maybe_die("delete_deployment", name)

    def _maybe_die(self, method: str, name: str) -> None:
        if (method, name) == (self.method, self.target):
            raise Killed(f"killed after {method}({name})")


ALWAYS_ALARM = [{"name": "errors", "metric": "error_rate", "threshold": 0.05, "period": "1s",
                 "treat_missing_data": "breaching"}]


def two_versions(local: Any, tmp_path: Path) -> tuple[Any, Any]:
    local.register_model("toy", str(model_folder(tmp_path, "one")), approval="approved")
    v2 = local.register_model("toy", str(model_folder(tmp_path, "two")), approval="approved")
    first = local.deploy(deployment("Good", "ep", 1, strategy={"all_at_once": {"bake": "0s"}}), poll=0.1)
    assert first.outcome is RolloutOutcome.SUCCEEDED
    return first, v2


def kill_during(local: Any, v2: Any, d: Deployment, method: str, target: str) -> None:
    ctl = RolloutController(KilledAfter(local.root, method, target), FileStateStore(local.root), poll=0.1)
    with pytest.raises(Killed):
        ctl.deploy(d, model_name="toy-v2", model={"uri": v2.uri, "digest": Path(v2.uri).name})


def test_killed_right_after_create_leaves_no_orphan_worker(local: Any, tmp_path: Path) -> None:
    _, v2 = two_versions(local, tmp_path)
    kill_during(local, v2, deployment("Good", "ep", 2, strategy={"all_at_once": {"bake": "0s"}}),
                "create_deployment", "toy-v2")
    first_pids = list(local.endpoints._deployments("ep")["toy-v2"]["pids"])
    try:
        result = local.resume_rollout("ep", poll=0.1)
        assert result.outcome is RolloutOutcome.SUCCEEDED
        assert local.invoke("ep", [[1]])["deployment"] == "toy-v2"
        known = {p for info in local.endpoints._deployments("ep").values() for p in info["pids"]}
        orphans = [p for p in first_pids if p not in known and _wait_gone([p], 0.5)]
        assert not orphans, f"worker processes nobody tracks: {orphans}"
    finally:
        for pid in first_pids:  # started by this test through the controller: stop them by pid
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def test_killed_right_after_retiring_blue_then_resumed(local: Any, tmp_path: Path) -> None:
    _, v2 = two_versions(local, tmp_path)
    kill_during(local, v2, deployment("Good", "ep", 2, strategy={"all_at_once": {"bake": "0s"}}),
                "delete_deployment", "toy-v1")
    assert local.invoke("ep", [[1]])["deployment"] == "toy-v2"  # serving fine meanwhile
    result = local.resume_rollout("ep", poll=0.1)
    assert result.outcome is RolloutOutcome.SUCCEEDED


def test_killed_right_after_removing_green_in_a_rollback_then_resumed(local: Any, tmp_path: Path) -> None:
    _, v2 = two_versions(local, tmp_path)
    d = deployment("Bad", "ep", 2, strategy={"canary": {"percent": 50, "bake": "5s"}}, alarms=ALWAYS_ALARM)
    kill_during(local, v2, d, "delete_deployment", "toy-v2")
    assert local.invoke("ep", [[1]])["deployment"] == "toy-v1"
    result = local.resume_rollout("ep", poll=0.1)
    assert result.outcome is RolloutOutcome.ROLLED_BACK


def test_killed_mid_canary_then_resumed_on_the_real_backend(local: Any, tmp_path: Path) -> None:
    _, v2 = two_versions(local, tmp_path)
    d = deployment("Good", "ep", 2, strategy={"canary": {"percent": 50, "bake": "1s", "final_bake": "0s"}})

    class KilledAtBake(LocalEndpoints):
        def alarm_datapoints(self, endpoint: str, name: str, alarm: Any) -> list[float | None]:
            raise Killed("killed while baking")

    d = d.model_copy(update={"alarms": Deployment.model_validate(
        {"endpoint": "ep", "model": {"group": "toy"}, "alarms": [{"name": "errors", "metric": "error_rate",
                                                                   "threshold": 0.5}]}).alarms})
    with pytest.raises(Killed):
        RolloutController(KilledAtBake(local.root), FileStateStore(local.root), poll=0.1).deploy(
            d, model_name="toy-v2", model={"uri": v2.uri, "digest": Path(v2.uri).name})
    assert local.endpoint_status("ep")["traffic"]["weights"] == {"toy-v1": 50, "toy-v2": 50}
    result = local.resume_rollout("ep", poll=0.1)
    assert result.outcome is RolloutOutcome.SUCCEEDED
    status = local.endpoint_status("ep")
    assert status["traffic"]["weights"] == {"toy-v2": 100}
    assert set(status["deployments"]) == {"toy-v2"}
    assert status["rollout"]["status"] == "succeeded"


def test_shadow_rollout_after_a_rollback_on_the_real_backend(local: Any, tmp_path: Path) -> None:
    two_versions(local, tmp_path)
    rolled = local.deploy(deployment("Bad", "ep", 2, strategy={"canary": {"percent": 50, "bake": "5s"}},
                                     alarms=ALWAYS_ALARM), poll=0.1)
    assert rolled.outcome is RolloutOutcome.ROLLED_BACK
    local.register_model("toy", str(model_folder(tmp_path, "three")), approval="approved")
    result = local.deploy(deployment("Good", "ep", 3, strategy={"shadow": {"percent": 50, "duration": "1s"}}),
                          poll=0.1)
    assert result.outcome is RolloutOutcome.SUCCEEDED
