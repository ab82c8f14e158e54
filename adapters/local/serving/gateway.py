"""The local gateway: one HTTP front for every endpoint of a backend root, with traffic splitting.

    python -m cloudml.adapters.local.serving.gateway --root ROOT [--host 127.0.0.1] [--port 0]

* ``POST /endpoints/{endpoint}/predict`` — routed to a deployment by weight; the header
  ``X-Cloudml-Deployment: NAME`` pins a request to one deployment (smoke tests). A share of requests
  is mirrored to shadow deployments; the client never sees their answers, which are compared with
  the primary answer and recorded.
* ``PUT /-/endpoints/{endpoint}`` — set deployments (name → URL), weights (integers summing to
  100) and mirror shares; invalid maps are refused with 422. ``GET /-/endpoints`` and
  ``GET /-/endpoints/{endpoint}/metrics`` read the state, ``DELETE`` removes an endpoint.
* ``GET /metrics`` — Prometheus text; ``GET /health``.

A deployment whose weight drops to 0 gets no new requests; requests already in flight finish, and
``inflight`` tells the controller when it may stop the worker. A request whose deployment cannot be
reached is retried once on another live deployment, so clients never see a refused connection.

Example:
    >>> check_traffic({"a": 90, "b": 10}, {}, {"a", "b"}) is None
    True
    >>> check_traffic({"a": 90, "b": 5}, {}, {"a", "b"})
    'weights must sum to 100, got 95'
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from cloudml.adapters.local.serving.metrics import DeploymentMetrics, period_value, prometheus_text

__all__ = ["Gateway", "check_traffic", "main"]

MAX_BODY = 6 * 1024 * 1024
PIN_HEADER = "x-cloudml-deployment"


def _err(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


def check_traffic(weights: dict[str, int], mirror: dict[str, int], deployments: set[str]) -> str | None:
    """Why a traffic map is invalid, or None when it is fine."""
    for name, w in {**weights, **mirror}.items():
        if not isinstance(w, int) or isinstance(w, bool) or not 0 <= w <= 100:
            return f"share of {name} must be an integer from 0 to 100, got {w!r}"
        if name not in deployments:
            return f"unknown deployment {name!r}"
    if weights and sum(weights.values()) != 100:
        return f"weights must sum to 100, got {sum(weights.values())}"
    for name, share in mirror.items():
        if share and weights.get(name, 0) > 0:
            return f"{name} takes live traffic; a deployment is either live or mirrored"
    return None


class WorkerUnreachable(ConnectionError):
    """A worker could not be reached (refused, reset, or closed before answering)."""


class Pool:
    """Keep-alive HTTP/1.1 connections to the workers: the gateway's hot path, kept small and fast.

    Workers are cloudml's own (uvicorn) and always answer with a Content-Length. A request on a
    reused connection that the worker has closed in the meantime is retried once on a fresh one.
    """

    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self._idle: dict[str, list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]] = {}

    async def post(self, url: str, path: str, body: bytes) -> tuple[int, bytes]:
        """POST ``body`` (JSON) to ``url + path``; returns (status, content)."""
        hostport = url.removeprefix("http://")
        host, _, port = hostport.partition(":")
        head = (f"POST {path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        idle = self._idle.setdefault(url, [])
        for attempt in range(2):
            fresh = not idle or attempt == 1
            try:
                reader, writer = await asyncio.open_connection(host, int(port)) if fresh else idle.pop()
            except OSError as e:
                raise WorkerUnreachable(f"{url}: {e}") from e
            try:
                writer.write(head + body)
                status, content, keep = await asyncio.wait_for(self._response(reader), self.timeout)
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as e:
                writer.close()
                if fresh:
                    raise WorkerUnreachable(f"{url}: {e!r}") from e
                continue  # a stale keep-alive connection: try once more on a new one
            if keep:
                idle.append((reader, writer))
            else:
                writer.close()
            return status, content
        raise WorkerUnreachable(url)

    @staticmethod
    async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
        line = await reader.readline()
        if not line:
            raise ConnectionResetError("connection closed before the response")
        status = int(line.split(None, 2)[1])
        length: int | None = None
        keep = True
        while True:
            header = await reader.readline()
            if header in (b"\r\n", b"\n", b""):
                break
            key, _, value = header.partition(b":")
            key = key.strip().lower()
            if key == b"content-length":
                length = int(value)
            elif key == b"connection" and value.strip().lower() == b"close":
                keep = False
        if length is None:
            return status, await reader.read(), False
        return status, await reader.readexactly(length), keep

    def forget(self, keep: set[str]) -> None:
        """Close idle connections to workers that are no longer routed to."""
        for url in [u for u in self._idle if u not in keep]:
            for _, writer in self._idle.pop(url):
                writer.close()

    def close(self) -> None:
        """Close every idle connection."""
        for conns in self._idle.values():
            for _, writer in conns:
                writer.close()
        self._idle.clear()


class Gateway:
    """Routing tables, metrics and the pooled connections to the workers."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.routes: dict[str, dict[str, Any]] = {}
        self.metrics: dict[tuple[str, str], DeploymentMetrics] = {}
        self.shadow: dict[tuple[str, str], dict[str, int]] = {}
        self.pool = Pool()
        self._load()

    def _routes_file(self) -> Path:
        return self.root / "gateway-routes.json"

    def _load(self) -> None:
        try:
            self.routes = json.loads(self._routes_file().read_text())
        except (OSError, ValueError):
            self.routes = {}

    def _persist(self) -> None:
        tmp = self._routes_file().with_suffix(".tmp")
        tmp.write_text(json.dumps(self.routes))
        os.replace(tmp, self._routes_file())

    def metric(self, endpoint: str, deployment: str) -> DeploymentMetrics:
        key = (endpoint, deployment)
        if key not in self.metrics:
            self.metrics[key] = DeploymentMetrics()
        return self.metrics[key]

    def pick(self, route: dict[str, Any], exclude: str | None = None) -> str | None:
        live = [(n, w) for n, w in route["weights"].items() if w > 0 and n != exclude]
        if not live:
            return None
        r = random.uniform(0, sum(w for _, w in live))
        for name, w in live:
            r -= w
            if r <= 0:
                return str(name)
        return str(live[-1][0])

    async def forward(self, endpoint: str, name: str, urls: list[str], body: bytes) -> tuple[int, bytes]:
        """Send to one instance of the deployment, trying its other instances if one is unreachable."""
        order = list(urls) if len(urls) == 1 else random.sample(urls, len(urls))
        m = self.metric(endpoint, name)
        m.inflight += 1
        start = time.perf_counter()
        try:
            for i, url in enumerate(order):
                try:
                    status, content = await self.pool.post(url, "/predict", body)
                    break
                except WorkerUnreachable:
                    if i == len(order) - 1:
                        m.record(time.perf_counter() - start, error=True)
                        raise
        finally:
            m.inflight -= 1
        m.record(time.perf_counter() - start, error=status >= 500)
        return status, content

    def capture(self, endpoint: str, name: str, body: bytes, content: bytes, *, latency: float | None = None,
                request_id: str | None = None) -> None:
        """Append one request/response pair to the endpoint's capture log (JSON lines): when, which
        deployment answered, how long the answer took (``latency_ms``) and the caller's ``X-Request-Id``."""
        folder = self.root / "endpoints" / endpoint / "capture"
        folder.mkdir(parents=True, exist_ok=True)
        try:
            record = {"at": time.time(), "deployment": name, "request": json.loads(body),
                      "response": json.loads(content)}
        except ValueError:
            return
        if latency is not None:
            record["latency_ms"] = round(latency * 1000, 3)
        if request_id:
            record["request_id"] = request_id
        with open(folder / f"{time.strftime('%Y%m%d', time.gmtime())}.jsonl", "a") as fh:
            fh.write(json.dumps(record) + "\n")

    async def mirror(self, endpoint: str, name: str, url: list[str], body: bytes, primary: bytes) -> None:
        stats = self.shadow.setdefault((endpoint, name), {"compared": 0, "agreed": 0, "failed": 0})
        try:
            status, content = await self.forward(endpoint, name, url, body)
        except Exception:
            self.metric(endpoint, name).record(0.0, error=True)
            stats["failed"] += 1
            return
        if status >= 400:
            stats["failed"] += 1
            return
        stats["compared"] += 1
        try:
            if json.loads(content).get("predictions") == json.loads(primary).get("predictions"):
                stats["agreed"] += 1
        except ValueError:
            pass


def build_app(gw: Gateway) -> Any:
    """The gateway's ASGI app."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    async def send_json(send: Any, status: int, content: bytes) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]})
        await send({"type": "http.response.body", "body": content})

    async def predict(scope: Any, receive: Any, send: Any) -> None:
        """The hot path, in plain ASGI: read, pick a deployment, forward, record, answer."""
        endpoint = scope["path"][len("/endpoints/"): -len("/predict")]
        route = gw.routes.get(endpoint)
        if route is None:
            return await send_json(send, 404, _err(f"unknown endpoint {endpoint!r}"))
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY:
            return await send_json(send, 413, _err(f"body larger than {MAX_BODY} bytes"))
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                return await send_json(send, 413, _err(f"body larger than {MAX_BODY} bytes"))
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        pin_raw = headers.get(PIN_HEADER.encode())
        pin = pin_raw.decode() if pin_raw is not None else None
        if pin is not None and pin not in route["urls"]:
            return await send_json(send, 404, _err(f"endpoint {endpoint!r} has no deployment {pin!r}"))
        name = pin or gw.pick(route)
        if name is None:
            return await send_json(send, 503, _err(f"endpoint {endpoint!r} has no deployment taking traffic"))
        started = time.perf_counter()
        try:
            status, content = await gw.forward(endpoint, name, route["urls"][name], body)
        except WorkerUnreachable:
            other = None if pin else gw.pick(route, exclude=name)
            if other is None:
                return await send_json(send, 503, _err(f"deployment {name!r} of {endpoint!r} is unreachable"))
            name = other
            try:
                status, content = await gw.forward(endpoint, other, route["urls"][other], body)
            except WorkerUnreachable:
                return await send_json(send, 503, _err(f"every deployment of {endpoint!r} is unreachable"))
        capture = route.get("capture")
        if capture and status < 400 and random.uniform(0, 100) < float(capture.get("percent", 100)):
            request_id = headers.get(b"x-request-id")
            gw.capture(endpoint, name, body, content, latency=time.perf_counter() - started,
                       request_id=request_id.decode(errors="replace") if request_id else None)
        for shadow, share in route.get("mirror", {}).items():
            if share and shadow in route["urls"] and random.uniform(0, 100) < share:
                asyncio.get_running_loop().create_task(gw.mirror(endpoint, shadow, route["urls"][shadow], body, content))
        await send_json(send, status, content)

    async def put_endpoint(request: Request) -> JSONResponse:
        endpoint = request.path_params["endpoint"]
        try:
            spec = await request.json()
            urls = dict(spec["deployments"])
            weights = {k: v for k, v in dict(spec.get("weights", {})).items()}
            mirror = dict(spec.get("mirror", {}))
        except (ValueError, KeyError, TypeError):
            return error(400, 'expected {"deployments": {name: [url, ...]}, "weights": {...}, "mirror": {...}}')
        if not all(isinstance(u, list) and u and all(isinstance(x, str) for x in u) for u in urls.values()):
            return error(400, "each deployment maps to a non-empty list of worker URLs")
        problem = check_traffic(weights, mirror, set(urls))
        if problem:
            return error(422, problem)
        capture = spec.get("capture") or None
        gw.routes[endpoint] = {"urls": urls, "weights": weights, "mirror": mirror, "capture": capture}
        gw._persist()
        gw.pool.forget({u for r in gw.routes.values() for lst in r["urls"].values() for u in lst})
        return JSONResponse(gw.routes[endpoint])

    async def get_endpoints(request: Request) -> JSONResponse:
        out = {}
        for ep, route in gw.routes.items():
            names = set(route["urls"]) | {d for (e, d) in gw.metrics if e == ep}
            out[ep] = {**route, "metrics": {n: gw.metric(ep, n).snapshot() for n in sorted(names)},
                       "shadow": {d: s for (e, d), s in gw.shadow.items() if e == ep}}
        return JSONResponse(out)

    async def delete_endpoint(request: Request) -> JSONResponse:
        endpoint = request.path_params["endpoint"]
        if gw.routes.pop(endpoint, None) is None:
            return error(404, f"unknown endpoint {endpoint!r}")
        gw._persist()
        gw.pool.forget({u for r in gw.routes.values() for lst in r["urls"].values() for u in lst})
        return JSONResponse({"deleted": endpoint})

    async def endpoint_metrics(request: Request) -> JSONResponse:
        endpoint = request.path_params["endpoint"]
        q = request.query_params
        try:
            period, count = int(q.get("period", "60")), int(q.get("count", "5"))
        except ValueError:
            return error(400, "period and count are integers")
        names = [q["deployment"]] if "deployment" in q else sorted({d for (e, d) in gw.metrics if e == endpoint})
        out: dict[str, Any] = {}
        for n in names:
            periods = gw.metric(endpoint, n).periods(period, count)
            out[n] = [{"start": p["start"], "requests": p["requests"], "errors": p["errors"],
                       **{m: period_value(m, p) for m in ("error_rate", "latency_p50", "latency_p90", "latency_p99")}}
                      for p in periods]
        return JSONResponse(out)

    async def metrics(request: Request) -> PlainTextResponse:
        return PlainTextResponse(prometheus_text(gw.metrics), media_type="text/plain; version=0.0.4")

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "endpoints": sorted(gw.routes)})

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            gw.pool.close()

    routes = [
        Route("/-/endpoints/{endpoint}", put_endpoint, methods=["PUT"]),
        Route("/-/endpoints/{endpoint}", delete_endpoint, methods=["DELETE"]),
        Route("/-/endpoints", get_endpoints),
        Route("/-/endpoints/{endpoint}/metrics", endpoint_metrics),
        Route("/metrics", metrics),
        Route("/health", health),
    ]
    admin = Starlette(routes=routes, lifespan=lifespan)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path.startswith("/endpoints/") and path.endswith("/predict"):
            if scope["method"] != "POST":
                return await send_json(send, 405, _err("use POST"))
            return await predict(scope, receive, send)
        await admin(scope, receive, send)

    return app


def main(argv: list[str] | None = None) -> int:
    """Bind, record ``gateway.json`` (pid, host, port) under the root, and serve until killed."""
    parser = argparse.ArgumentParser(prog="python -m cloudml.adapters.local.serving.gateway")
    parser.add_argument("--root", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    import uvicorn

    root = Path(args.root)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # proto set: asyncio then enables TCP_NODELAY
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as e:
        print(f"cloudml gateway: cannot listen on {args.host}:{args.port}: {e.strerror}", file=sys.stderr, flush=True)
        return 3
    info = {"pid": os.getpid(), "host": args.host, "port": sock.getsockname()[1]}
    tmp = root / "gateway.json.tmp"
    tmp.write_text(json.dumps(info))
    os.replace(tmp, root / "gateway.json")
    gw = Gateway(root)
    config = uvicorn.Config(build_app(gw), log_level="warning", access_log=False, timeout_keep_alive=30)
    asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
