"""Local endpoint serving, side by side with a bare FastAPI/uvicorn app serving the same model.

Run:  python benchmarks/bench_serving.py [--seconds 10] [--clients 16] [--json]

Measured in one run, with the same scikit-learn model, the same request and the same load
(``--clients`` keep-alive client threads for ``--seconds``, loopback only):
  * a bare FastAPI (or Starlette, if FastAPI is not installed) app on uvicorn that loads the model
    and predicts directly — what a user would write instead;
  * the cloudml local endpoint through its gateway (the path real clients use);
  * the cloudml worker hit directly (to show what the gateway adds).
Then the time from the alarm's evaluation window closing to 100% of traffic back on blue, for a
canary of a model that fails every request (error-rate alarm, 1 s period).
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import pickle
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import cloudml
from cloudml.spec.deployment import Deployment

BODY = json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}).encode()

BARE_APP = '''
import pickle, sys
from pathlib import Path
model = pickle.loads(Path(sys.argv[1]).read_bytes())
try:
    from fastapi import FastAPI, Request
    app = FastAPI()
    @app.post("/predict")
    async def predict(request: Request):
        payload = await request.json()
        return {"predictions": model.predict(payload["instances"]).tolist()}
except ImportError:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    async def predict(request):
        payload = await request.json()
        return JSONResponse({"predictions": model.predict(payload["instances"]).tolist()})
    app = Starlette(routes=[Route("/predict", predict, methods=["POST"])])
import uvicorn
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
'''

FAILING = textwrap.dedent('''
    class Broken:
        def load(self, model_dir):
            pass
        def predict(self, instances):
            raise RuntimeError("this model fails every request")
''')


def train_model(folder: Path) -> Path:
    """A logistic regression on iris, pickled into ``folder/model.pkl``."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.pkl"
    path.write_bytes(pickle.dumps(LogisticRegression(max_iter=500).fit(x, y)))
    return path


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(host: str, port: int, path: str, timeout: float = 30) -> None:
    """Wait until ``path`` answers (any status)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection(host, port, timeout=1)
            conn.request("POST", path, BODY, {"content-type": "application/json"})
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{host}:{port}{path} did not answer")


def load(host: str, port: int, path: str, seconds: float, clients: int) -> dict[str, Any]:
    """Keep-alive clients for ``seconds``: throughput, latency percentiles, failures."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures = [0] * clients
    stop = time.perf_counter() + seconds

    def client(i: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=10)
        while time.perf_counter() < stop:
            t = time.perf_counter()
            try:
                conn.request("POST", path, BODY, {"content-type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    failures[i] += 1
            except (OSError, http.client.HTTPException):
                failures[i] += 1
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=10)
                continue
            latencies[i].append(time.perf_counter() - t)
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = sorted(x for lst in latencies for x in lst)
    return {"rps": len(flat) / seconds, "p50_ms": 1000 * flat[len(flat) // 2] if flat else math.nan,
            "p99_ms": 1000 * flat[int(len(flat) * 0.99)] if flat else math.nan, "failures": sum(failures),
            "requests": len(flat)}


def bench_bare(model: Path, seconds: float, clients: int) -> dict[str, Any]:
    """The bare app users would write."""
    port = free_port()
    script = Path(tempfile.mkdtemp()) / "bare.py"
    script.write_text(BARE_APP)
    proc = subprocess.Popen([sys.executable, str(script), str(model), str(port)], stderr=subprocess.DEVNULL)
    try:
        wait_http("127.0.0.1", port, "/predict")
        load("127.0.0.1", port, "/predict", 1.0, clients)  # warm-up
        return load("127.0.0.1", port, "/predict", seconds, clients)
    finally:
        proc.terminate()
        proc.wait()


def bench_cloudml(model: Path, seconds: float, clients: int) -> tuple[dict[str, Any], dict[str, Any], float]:
    """Through the gateway, the worker directly, and the alarm-to-rollback time."""
    root = Path(tempfile.mkdtemp())
    adapter = cloudml.get_adapter("local", root=str(root / "state"))
    try:
        adapter.register_model("iris", str(model.parent), approval="approved")
        spec = Deployment(endpoint="iris", model={"group": "iris", "version": 1}, strategy="all_at_once",
                          instances={"count": 1})
        result = adapter.deploy(spec, poll=0.1)
        assert result.outcome.value == "succeeded", result.reason
        url = adapter.endpoints.gateway_url(start=False).removeprefix("http://")
        host, port = url.split(":")
        wait_http(host, int(port), "/endpoints/iris/predict")
        load(host, int(port), "/endpoints/iris/predict", 1.0, clients)
        through = load(host, int(port), "/endpoints/iris/predict", seconds, clients)
        worker_url = adapter.endpoints._urls("iris", "iris-v1")[0].removeprefix("http://")
        whost, wport = worker_url.split(":")
        direct = load(whost, int(wport), "/predict", seconds, clients)
        rollback = alarm_to_rollback(adapter, root, host, int(port), clients)
        return through, direct, rollback
    finally:
        adapter.endpoints.shutdown()


def alarm_to_rollback(adapter: Any, root: Path, host: str, port: int, clients: int) -> float:
    """Seconds from the end of the first 1 s period with errors to 100% on blue."""
    broken = root / "broken"
    broken.mkdir()
    (broken / "broken.py").write_text(FAILING)
    adapter.register_model("iris", str(broken), approval="approved")
    spec = Deployment(endpoint="iris", model={"group": "iris", "version": 2},
                      strategy={"canary": {"percent": 50, "bake": "30s"}}, serving={"predictor": "broken:Broken"},
                      alarms=[{"name": "errors", "metric": "error_rate", "threshold": 0.05, "period": "1s"}])
    stop = threading.Event()
    first_error: list[float] = []

    def client() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=10)
        while not stop.is_set():
            conn.request("POST", "/endpoints/iris/predict", BODY, {"content-type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            if resp.status >= 500 and not first_error:
                first_error.append(time.time())

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients // 4 or 1)]
    for t in threads:
        t.start()
    result = adapter.deploy(spec, poll=0.1)
    stop.set()
    back = next(h["t"] for h in result.history if h["event"] == "rolled back")
    window_close = math.floor(first_error[0]) + 1.0
    return float(back - window_close)


def main() -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    model = train_model(Path(tempfile.mkdtemp()) / "model")
    bare = bench_bare(model, args.seconds, args.clients)
    through, direct, rollback = bench_cloudml(model, args.seconds, args.clients)
    res = {"bare": bare, "gateway": through, "worker_direct": direct, "alarm_to_rollback_s": rollback,
           "cpus": os.cpu_count()}
    if args.json:
        print(json.dumps(res, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"same model, {args.clients} keep-alive clients, {args.seconds:g} s, loopback", header_style="bold")
    for col in ("server", "req/s", "vs bare", "p50 ms", "p99 ms", "failures"):
        t.add_column(col)
    for label, r in (("bare FastAPI/uvicorn app (what users write instead)", bare),
                     ("cloudml endpoint via gateway", through), ("cloudml worker, direct", direct)):
        t.add_row(label, f"{r['rps']:.0f}", f"{r['rps'] / bare['rps']:.0%}", f"{r['p50_ms']:.2f}",
                  f"{r['p99_ms']:.2f}", str(r["failures"]))
    console = Console(width=140)
    console.print(t)
    ratio = through["rps"] / bare["rps"]
    added = through["p50_ms"] - direct["p50_ms"]
    console.print(f"throughput vs bare: {ratio:.0%} (target >= 70%: {'PASS' if ratio >= 0.7 else 'MISS'})")
    console.print(f"gateway adds to p50: {added:.2f} ms (target <= 2 ms: {'PASS' if added <= 2 else 'MISS'})")
    console.print(f"alarm window closed -> 100% on blue: {rollback:.2f} s (target <= 2 s: "
                  f"{'PASS' if rollback <= 2 else 'MISS'})")
    console.print(f"median of the three p50s: {statistics.median([bare['p50_ms'], through['p50_ms'], direct['p50_ms']]):.2f} ms")


if __name__ == "__main__":
    main()
