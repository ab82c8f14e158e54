"""One deployment's worker process: loads a registered model and answers ``/predict`` over HTTP.

    python -m cloudml.adapters.local.serving.worker --name green --model-dir DIR --digest SHA256 \\
        --host 127.0.0.1 --port-file FILE [--predictor module:Class] [--code DIR]

The model folder's SHA-256 is checked against the registry before anything is loaded; a mismatch
is refused and the worker never becomes ready. Built in: scikit-learn models saved with joblib or
pickle (``*.joblib``, ``*.pkl``). Anything else: a predictor class with ``load(model_dir)`` and
``predict(instances)``.

Routes: ``GET /health`` (alive), ``GET /ready`` (200 once the model is loaded, else 503 with the
reason), ``POST /predict`` with ``{"instances": [...]}`` → ``{"predictions": [...], "deployment": NAME}``.

Example:
    >>> import pathlib, pickle, tempfile
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with open(d / "model.pkl", "wb") as fh:
    ...     pickle.dump(_Echo(), fh)
    >>> p = load_predictor(d, None, None)
    >>> p.predict([[1, 2]])
    [[1, 2]]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import pickle
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["SklearnPredictor", "build_app", "load_predictor", "main"]

MAX_BODY = 6 * 1024 * 1024
INLINE_SECONDS = 0.002


class _Echo:
    """A stand-in model used by the docstring example."""

    def predict(self, x: Any) -> Any:
        return x


class SklearnPredictor:
    """Serves a scikit-learn style estimator (anything with ``predict``) saved with joblib or pickle."""

    def __init__(self) -> None:
        self.model: Any = None

    def load(self, model_dir: Path) -> None:
        """Load the first ``*.joblib`` or ``*.pkl`` file of the folder."""
        files = sorted(model_dir.rglob("*.joblib")) + sorted(model_dir.rglob("*.pkl"))
        if not files:
            raise FileNotFoundError(f"no *.joblib or *.pkl model file in {model_dir}; "
                                    "set serving.predictor for other formats")
        if files[0].suffix == ".joblib":
            import joblib

            self.model = joblib.load(files[0])
        else:
            with open(files[0], "rb") as fh:
                self.model = pickle.load(fh)

    def predict(self, instances: list[Any]) -> list[Any]:
        """Predictions for a list of feature rows (lists) or records (dicts, as a DataFrame)."""
        x: Any = instances
        if instances and isinstance(instances[0], dict):
            import pandas as pd

            x = pd.DataFrame(instances)
        elif getattr(self.model, "feature_names_in_", None) is not None:
            import pandas as pd

            x = pd.DataFrame(instances, columns=list(self.model.feature_names_in_))
        result = self.model.predict(x)
        return result.tolist() if hasattr(result, "tolist") else list(result)


def load_predictor(model_dir: Path, target: str | None, code_dir: str | None) -> Any:
    """The predictor for a model folder: the custom ``module:Class`` when given, else scikit-learn."""
    if target:
        for folder in (code_dir, str(model_dir)):
            if folder and folder not in sys.path:
                sys.path.insert(0, folder)
        module_name, _, cls_name = target.partition(":")
        predictor = getattr(importlib.import_module(module_name), cls_name)()
    else:
        predictor = SklearnPredictor()
    predictor.load(model_dir)
    return predictor


def build_app(name: str, model_dir: Path, digest: str | None, predictor_target: str | None,
              code_dir: str | None) -> Any:
    """The worker's ASGI app; the model loads in the background so /health answers at once."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    state: dict[str, Any] = {"predictor": None, "error": None, "avg": 0.0}

    async def _predict(state: dict[str, Any], instances: list[Any]) -> Any:
        # Fast models run inline (a thread hop costs more than the prediction); once predictions take
        # longer than INLINE_SECONDS on average they move to a thread pool so requests overlap.
        predictor = state["predictor"]
        if state["avg"] > INLINE_SECONDS:
            start = time.perf_counter()
            result = await run_in_threadpool(predictor.predict, instances)
        else:
            start = time.perf_counter()
            result = predictor.predict(instances)
        state["avg"] = 0.9 * state["avg"] + 0.1 * (time.perf_counter() - start)
        return result

    def load() -> None:
        try:
            if digest:
                from cloudml.adapters.local.store import digest_path

                actual = digest_path(model_dir)[0]
                if actual != digest:
                    raise ValueError(f"model digest mismatch: registry has {digest[:12]}, files hash to {actual[:12]}"
                                     " — refusing to load a model that changed after registration")
            state["predictor"] = load_predictor(model_dir, predictor_target, code_dir)
        except Exception as e:
            state["error"] = f"{type(e).__name__}: {e}"
            print(f"cloudml worker {name}: cannot load model: {state['error']}", file=sys.stderr, flush=True)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "alive", "deployment": name})

    async def ready(request: Request) -> JSONResponse:
        if state["predictor"] is not None:
            return JSONResponse({"ready": True, "deployment": name})
        return JSONResponse({"ready": False, "deployment": name, "error": state["error"]}, status_code=503)

    async def predict(request: Request) -> JSONResponse:
        if state["predictor"] is None:
            return JSONResponse({"error": "model not loaded", "deployment": name}, status_code=503)
        body = await request.body()
        if len(body) > MAX_BODY:
            return JSONResponse({"error": f"body larger than {MAX_BODY} bytes"}, status_code=413)
        try:
            payload = json.loads(body)
            instances = payload["instances"]
            if not isinstance(instances, list):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": 'expected JSON {"instances": [...]}', "deployment": name}, status_code=400)
        try:
            predictions = await _predict(state, instances)
        except Exception as e:
            return JSONResponse({"error": f"model raised {type(e).__name__}: {e}", "deployment": name},
                                status_code=500)
        return JSONResponse({"predictions": predictions, "deployment": name})

    app = Starlette(routes=[Route("/health", health), Route("/ready", ready),
                            Route("/predict", predict, methods=["POST"])])
    threading.Thread(target=load, daemon=True).start()
    return app


def main(argv: list[str] | None = None) -> int:
    """Bind a free port on ``--host``, write it to ``--port-file``, and serve until killed."""
    parser = argparse.ArgumentParser(prog="python -m cloudml.adapters.local.serving.worker")
    parser.add_argument("--name", required=True)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--digest")
    parser.add_argument("--predictor")
    parser.add_argument("--code")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", required=True)
    args = parser.parse_args(argv)
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # proto set: asyncio then enables TCP_NODELAY
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    port = sock.getsockname()[1]
    tmp = f"{args.port_file}.tmp"
    Path(tmp).write_text(str(port))
    os.replace(tmp, args.port_file)
    app = build_app(args.name, Path(args.model_dir), args.digest, args.predictor, args.code)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_keep_alive=30)
    server = uvicorn.Server(config)
    asyncio.run(server.serve(sockets=[sock]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
