"""Shared machinery of the opt-in live tests: who may run, hard timeouts, cleanup, the tiny pipeline.

Modes (read once, when this module is imported at collection time, before ``tests/conftest.py``'s
autouse fixture scrubs ``CLOUDML_*`` and replaces the AWS credentials of every test):

* ``CLOUDML_LIVE_TARGET=fake``: every scenario runs against the fakes in ``tests/fakes`` (127.0.0.1 only);
* ``CLOUDML_LIVE=1`` plus a cloud's settings and credentials: that cloud's scenario runs in a real account;
* otherwise the ``cloud``-marked tests are skipped, naming exactly what is missing. No credential is
  looked up (no token, no metadata server, no file beyond what botocore reads) unless ``CLOUDML_LIVE=1``.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import secrets
import signal
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cloudml
from cloudml.spec.pipeline import Pipeline

ENV: dict[str, str] = dict(os.environ)  # the real environment, as the user started pytest

REQUIRED: dict[str, tuple[str, ...]] = {
    "sagemaker": ("CLOUDML_SAGEMAKER_REGION", "CLOUDML_SAGEMAKER_ROLE_ARN", "CLOUDML_SAGEMAKER_BUCKET"),
    "vertex": ("CLOUDML_VERTEX_PROJECT", "CLOUDML_VERTEX_PIPELINE_ROOT"),
    "azureml": ("CLOUDML_AZUREML_SUBSCRIPTION_ID", "CLOUDML_AZUREML_RESOURCE_GROUP", "CLOUDML_AZUREML_WORKSPACE"),
}

# What tests/conftest.py's autouse fixture changes for every test; a live run puts the real values back.
SCRUBBED = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION",
            "AWS_EC2_METADATA_DISABLED", "AWS_SHARED_CREDENTIALS_FILE", "AWS_PROFILE", "AWS_CONFIG_FILE",
            "GOOGLE_APPLICATION_CREDENTIALS")


def fake_mode(env: Mapping[str, str] = ENV) -> bool:
    """True when ``CLOUDML_LIVE_TARGET=fake``: the scenarios run against tests/fakes."""
    return env.get("CLOUDML_LIVE_TARGET", "").strip().lower() == "fake"


# -- who may run ---------------------------------------------------------------------------------------------
def _aws_credentials(env: Mapping[str, str]) -> str | None:
    """None when botocore can resolve credentials without a network call, else why not.

    The instance-metadata provider (IMDS) is removed from the chain, and the container provider is
    counted from its environment variables without calling it: both would be network calls.
    Assume-role and SSO providers return deferred credentials (no call until they are used).
    """
    import botocore.session

    if env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") or env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        return None
    session = botocore.session.Session()
    resolver = session.get_component("credential_provider")
    for name in ("iam-role", "container-role"):
        with contextlib.suppress(Exception):
            resolver.remove(name)
    try:
        found = resolver.load_credentials()
    except Exception as e:  # a broken profile, an SSO cache problem...
        return f"botocore cannot resolve AWS credentials: {type(e).__name__}: {e}"
    if found is None:
        return ("no AWS credentials in the environment, shared files, SSO or assume-role profiles "
                "(instance roles are not probed, to stay off the network: export credentials or a profile)")
    return None


def _google_credentials(env: Mapping[str, str]) -> str | None:
    try:
        import google.auth

        google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    except Exception as e:
        return f"google.auth.default() failed: {type(e).__name__}: {e}"
    return None


def _azure_credentials(env: Mapping[str, str]) -> str | None:
    try:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
        try:
            credential.get_token("https://management.azure.com/.default")
        finally:
            credential.close()
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return f"DefaultAzureCredential could not get a token: {type(e).__name__}: {first}"
    return None


CREDENTIALS: dict[str, Callable[[Mapping[str, str]], str | None]] = {
    "sagemaker": _aws_credentials, "vertex": _google_credentials, "azureml": _azure_credentials}
_REASONS: dict[str, str | None] = {}


def skip_reason(cloud: str, env: Mapping[str, str] = ENV, check_credentials: bool = True) -> str | None:
    """None when ``cloud``'s live test may run; else the skip message naming every missing piece."""
    if fake_mode(env):
        return None
    if env is ENV and cloud in _REASONS:
        return _REASONS[cloud]
    missing = [v for v in REQUIRED[cloud] if not env.get(v)]
    reason: str | None
    if env.get("CLOUDML_LIVE") != "1":
        reason = (f"live {cloud} test: missing {', '.join(['CLOUDML_LIVE=1', *missing])} "
                  "(credentials are not looked up without CLOUDML_LIVE=1; CLOUDML_LIVE_TARGET=fake runs the "
                  "same scenario against tests/fakes)")
    elif missing:
        reason = f"live {cloud} test: missing {', '.join(missing)}"
    else:
        problem = CREDENTIALS[cloud](env) if check_credentials else None
        reason = f"live {cloud} test: {problem}" if problem else None
    if env is ENV:
        _REASONS[cloud] = reason
    return reason


def resource_prefix() -> str:
    """``cloudml-live-<6 hex>``: unique per run, 19 characters (endpoint names may hold 32)."""
    return f"cloudml-live-{secrets.token_hex(3)}"


# -- hard timeouts -------------------------------------------------------------------------------------------
class LiveTimeout(BaseException):
    """Raised in the main thread when a scenario or its cleanup overruns (a BaseException, so that SDK
    retry loops catching ``Exception`` cannot swallow it)."""


@contextlib.contextmanager
def hard_timeout(seconds: float, what: str) -> Iterator[None]:
    """SIGALRM after ``seconds``: raises :class:`LiveTimeout` wherever the main thread is."""
    def fire(signum: int, frame: Any) -> None:
        raise LiveTimeout(f"{what} overran its hard timeout of {seconds:g}s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# -- cleanup -------------------------------------------------------------------------------------------------
@dataclass
class Cleanup:
    """Deletions registered as resources are created, run newest first whatever happened.

    ``fake_unserved=True`` marks a deletion the fake has no route for: in fake mode it is listed in
    :attr:`unserved` instead of being called. Everything else must succeed (or find the resource already
    gone); what fails is reported with the resource, so a live run never leaks silently.
    """

    fake: bool
    actions: list[tuple[str, Callable[[], Any], bool]] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    unserved: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def add(self, label: str, fn: Callable[[], Any], *, fake_unserved: bool = False) -> None:
        self.actions.append((label, fn, fake_unserved))

    def run(self) -> list[str]:
        from cloudml.errors import NotFoundError

        while self.actions:
            label, fn, unserved = self.actions.pop()
            if unserved and self.fake:
                self.unserved.append(label)
                continue
            try:
                fn()
                self.done.append(label)
            except NotFoundError:
                self.done.append(f"{label} (already gone)")
            except Exception as e:
                self.failures.append(f"{label}: {type(e).__name__}: {e}")
        return self.failures


def run_scenario(body: Callable[[Cleanup], None], *, fake: bool, limit: float, cleanup_limit: float,
                 what: str) -> Cleanup:
    """Run ``body`` under a hard timeout, then its cleanup under its own, whatever happened.

    A last-resort watchdog (faulthandler) dumps every thread's stack and exits the process if even the
    cleanup's SIGALRM cannot get through (a hang inside C code).
    """
    cleanup = Cleanup(fake=fake)
    faulthandler.dump_traceback_later(limit + cleanup_limit + 120, exit=True)
    failed: BaseException | None = None
    try:
        with hard_timeout(limit, what):
            body(cleanup)
    except BaseException as e:
        failed = e
        raise
    finally:
        try:
            with hard_timeout(cleanup_limit, f"{what} cleanup"):
                leaks = cleanup.run()
        finally:
            faulthandler.cancel_dump_traceback_later()
        if leaks:
            report = f"{what}: cleanup could not delete:\n  " + "\n  ".join(leaks)
            if failed is None:
                raise AssertionError(report)
            print(report, file=sys.stderr)
    return cleanup


def wait_until(condition: Callable[[], Any], timeout: float, poll: float, what: str) -> Any:
    """Poll ``condition`` until it returns something truthy; AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(poll)


# -- the tiny pipeline ---------------------------------------------------------------------------------------
STEPS_PY = textwrap.dedent('''\
    """The python step of the live tests' tiny pipeline."""
    from pathlib import Path


    def summarise(data: Path) -> dict:
        rows = (Path(data) / "data.csv").read_text().strip().splitlines()[1:]
        values = [float(r.split(",")[1]) for r in rows]
        return {"rows": len(values), "mean": sum(values) / len(values)}
    ''')

PREPARE = ("import pathlib, sys; out = pathlib.Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True); "
           "(out / 'data.csv').write_text('x,y\\n1,2\\n2,4\\n3,6\\n')")


def write_code(folder: Path, tag: str) -> Path:
    """The code folder of the python step (``src/steps.py``) under ``folder``.

    ``tag`` (the run's prefix) goes into the file, so the content-addressed code bundle is this run's
    own and its cleanup cannot delete a bundle another run is using.
    """
    src = folder / "src"
    src.mkdir(parents=True, exist_ok=True)
    (src / "steps.py").write_text(f"# {tag}\n{STEPS_PY}")
    return src


def tiny_pipeline(name: str, *, processing: dict[str, Any], python: dict[str, Any],
                  backend_options: dict[str, Any] | None = None) -> Pipeline:
    """``prepare`` (a command on a public image, writes a CSV) then ``summarise`` (a python step, metrics).

    ``processing`` / ``python`` are extra step fields (``image`` or ``framework``, ``resources``...).
    """
    b = cloudml.PipelineBuilder(name, backend_options=backend_options)
    prep = b.add_step("prepare", command=["python3", "-c", PREPARE, "{{outputs.data}}"], outputs={"data": "dataset"},
                      timeout="30m", **processing)
    b.add_step("summarise", python="steps:summarise", code="src", inputs={"data": prep.outputs["data"]},
               outputs={"metrics": "metrics"}, timeout="30m", **python)
    return b.build()
