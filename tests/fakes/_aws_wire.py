"""Wire level of the AWS fakes: moto_server as a subprocess, a threaded HTTP proxy, errors in every AWS protocol.

Private to tests/fakes: :mod:`tests.fakes.sagemaker` is the public face.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

REGION = "us-east-1"
TEST_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true"}
JSON_TYPE = "application/x-amz-json-1.1"


@contextlib.contextmanager
def aws_test_env() -> Iterator[None]:
    """Test credentials and region, no profile, IMDS off, 127.0.0.1 never proxied; restored afterwards."""
    saved = dict(os.environ)
    os.environ.update(TEST_ENV)
    os.environ.pop("AWS_PROFILE", None)
    for key in ("NO_PROXY", "no_proxy"):
        os.environ[key] = ",".join(filter(None, [os.environ.get(key), "127.0.0.1", "localhost"]))
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


# ----------------------------------------------------------------------------------------------- moto server
def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class MotoServer:
    """``moto_server -H 127.0.0.1 -p <free port>`` as a subprocess; ``with MotoServer() as moto: moto.url``."""

    def __init__(self, host: str = "127.0.0.1", startup_timeout: float = 30.0) -> None:
        self.host, self.port, self._timeout = host, 0, startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> MotoServer:
        exe, log = Path(sys.executable).parent / "moto_server", ""
        for _attempt in range(3):  # a free port can be taken between probing and binding
            self.port = _free_port(self.host)
            self._log = tempfile.TemporaryFile()  # noqa: SIM115 -- closed in close()
            self._proc = subprocess.Popen([str(exe), "-H", self.host, "-p", str(self.port)],
                                          stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
            if self._wait_ready():
                return self
            log = self.log()
            self.close()
        raise RuntimeError(f"moto_server did not start on {self.url}:\n{log[-3000:]}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                return False
            with contextlib.suppress(OSError, http.client.HTTPException):
                conn = http.client.HTTPConnection(self.host, self.port, timeout=1)
                try:
                    conn.request("GET", "/moto-api/")
                    if conn.getresponse().status == 200:
                        return True
                finally:
                    conn.close()
            time.sleep(0.05)
        return False

    def log(self) -> str:
        """moto's own output: NotImplementedError tracebacks behind its HTTP 500 answers land here."""
        if self._log is None:
            return ""
        self._log.seek(0)
        return str(self._log.read().decode("utf-8", "replace"))

    def reset(self) -> None:
        """Drop all of moto's state (``POST /moto-api/reset``)."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            conn.request("POST", "/moto-api/reset")
            conn.getresponse().read()
        finally:
            conn.close()

    def close(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait(timeout=5)
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Request:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    service: str = ""
    operation: str = ""

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.body or b"{}"))


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    reason: str = ""

    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.body or b"{}"))


def json_reply(status: int, data: dict[str, Any]) -> Reply:
    headers = [("Content-Type", JSON_TYPE), ("x-amzn-RequestId", str(uuid.uuid4()))]
    return Reply(status, headers, json.dumps(data, default=str).encode())


def validation_error(message: str) -> Reply:
    return json_reply(400, {"__type": "ValidationException", "message": message})


def from_client_error(exc: ClientError) -> Reply:
    err = exc.response.get("Error", {})
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400))
    return json_reply(status, {"__type": err.get("Code", "ValidationException"), "message": err.get("Message", "")})


def cbor_head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([major << 5 | n])
    if n < 256:
        return bytes([major << 5 | 24, n])
    return bytes([major << 5 | 25]) + n.to_bytes(2, "big")


def cbor_text_map(data: dict[str, str]) -> bytes:
    out = bytearray(cbor_head(5, len(data)))
    for key, value in data.items():
        for text in (key.encode(), value.encode()):
            out += cbor_head(3, len(text)) + text
    return bytes(out)


def error_reply(req: Request, status: int, code: str, message: str) -> Reply:
    """An error in the protocol the request used, so botocore parses the code (JSON, CBOR, query, REST)."""
    rid = str(uuid.uuid4())
    if "/operation/" in req.path and req.path.startswith("/service/"):
        return Reply(status, [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor"),
                               ("x-amzn-RequestId", rid)], cbor_text_map({"__type": code, "message": message}))
    if req.header("X-Amz-Target"):
        return json_reply(status, {"__type": code, "message": message})
    kind = "Sender" if status < 500 else "Receiver"
    inner = f"<Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error>"
    form = "x-www-form-urlencoded" in (req.header("Content-Type") or "")
    xml = f"<ErrorResponse>{inner}<RequestId>{rid}</RequestId></ErrorResponse>" if form else inner
    return Reply(status, [("Content-Type", "text/xml"), ("x-amzn-RequestId", rid)], xml.encode())


def operation_of(req: Request) -> tuple[str, str]:
    target = req.header("X-Amz-Target")
    if target:
        service, _, op = target.rpartition(".")
        return service, op
    match = re.match(r"/service/([^/]+)/operation/([^/?]+)", req.path)
    if match:
        return match.group(1), match.group(2)
    scope = re.search(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/", req.header("Authorization") or "")
    service = scope.group(1) if scope else ""
    parts = urllib.parse.urlsplit(req.path)
    form = "x-www-form-urlencoded" in (req.header("Content-Type") or "")
    params = urllib.parse.parse_qs(req.body.decode("latin-1") if form else parts.query)
    action = params.get("Action", [""])[0]
    return service, action or f"{req.method} {parts.path}"



def forward(address: tuple[str, int], req: Request) -> Reply:
    """Send ``req`` unchanged (method, path and query, headers, body bytes) to ``address``."""
    conn = http.client.HTTPConnection(*address, timeout=120)
    try:
        conn.putrequest(req.method, req.path, skip_host=True, skip_accept_encoding=True)
        for key, value in req.headers:
            if key.lower() != "expect":  # the proxy already answered 100-continue
                conn.putheader(key, value)
        conn.endheaders(req.body or None)
        resp = conn.getresponse()
        return Reply(resp.status, resp.getheaders(), resp.read(), resp.reason)
    finally:
        conn.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the fake records requests itself."""

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            raw = bytearray()  # forwarded still chunked, byte for byte
            while True:
                line = self.rfile.readline()
                raw += line
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while (trailer := self.rfile.readline()) not in (b"\r\n", b"\n", b""):
                        raw += trailer
                    return bytes(raw + b"\r\n")
                raw += self.rfile.read(size + 2)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self) -> None:
        req = Request(self.command, self.path, list(self.headers.items()), self._read_body())
        reply = self.server.dispatch(req)
        self.send_response_only(reply.status, reply.reason or None)
        skip = {"transfer-encoding", "connection", "content-length"}
        for key, value in reply.headers:
            if key.lower() not in skip:
                self.send_header(key, value)
        length = next((v for k, v in reply.headers if k.lower() == "content-length"), None)
        self.send_header("Content-Length", length if self.command == "HEAD" and length else str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _handle


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins the handler threads
    block_on_close = True

    def __init__(self, dispatch: Callable[[Request], Reply]) -> None:
        self.dispatch = dispatch
        self.connections: set[socket.socket] = set()
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def track(self, conn: socket.socket, *, add: bool) -> None:
        with self.lock:
            (self.connections.add if add else self.connections.discard)(conn)


class ProxyServer:
    """A ThreadingHTTPServer on 127.0.0.1:<free port> that answers every request with ``dispatch(req)``."""

    def __init__(self, dispatch: Callable[[Request], Reply]) -> None:
        self._httpd = _HTTPServer(dispatch)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="aws-fake-http", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def close(self) -> None:
        """Stop serving, cut kept-alive client connections, join the serving and handler threads."""
        self._httpd.shutdown()
        with self._httpd.lock:
            for conn in list(self._httpd.connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()
        self._thread.join(timeout=10)
