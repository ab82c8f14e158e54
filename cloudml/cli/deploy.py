"""CLI verbs for endpoints: deploy, rollback, rollout, endpoints, invoke.

Example:
    >>> from typer.testing import CliRunner
    >>> from cloudml.cli.main import app
    >>> CliRunner().invoke(app, ["endpoints", "--help"]).exit_code
    0
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from cloudml.errors import CloudMLError

__all__ = ["deploy", "endpoints_app", "invoke", "rollback", "rollout_app", "status_view"]

rollout_app = typer.Typer(help="Rollouts: resume, history, timeline.", no_args_is_help=True)
endpoints_app = typer.Typer(help="Endpoints: list, show, delete.", no_args_is_help=True)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
_OUTCOME_STYLE = {"succeeded": "bold green", "rolled_back": "bold yellow", "failed": "bold red"}


def _backend(name: str | None, root: str | None) -> Any:
    from cloudml.cli.runs import _backend as backend

    return backend(name, root)


def _fail(e: CloudMLError) -> typer.Exit:
    from cloudml.cli.main import _fail as fail

    return fail(e)


def status_view(status: dict[str, Any]) -> Any:
    """The live view of an endpoint: traffic share, readiness, requests, error rate, latency, alarms.

    Example:
        >>> v = status_view({"endpoint": "ep", "deployments": {}, "traffic": {}, "rollout": {"status": "in_progress"}})
        >>> type(v).__name__
        'Group'
    """
    traffic = status.get("traffic", {})
    weights = traffic.get("weights", {})
    mirror = traffic.get("mirror", {})
    metrics = traffic.get("metrics", {})
    rollout = status.get("rollout", {})
    table = Table(title=f"endpoint {status['endpoint']} — rollout {rollout.get('status') or 'none'}",
                  title_justify="left", header_style="bold")
    for col in ("deployment", "traffic", "ready", "requests", "errors", "avg latency"):
        table.add_column(col)
    names = list(dict.fromkeys([*status.get("deployments", {}), *weights, *metrics]))
    for name in names:
        share = weights.get(name, 0)
        bar = "█" * round(share / 5) + "░" * (20 - round(share / 5))
        share_text = f"{bar} {share:>3}%" + (f" (+{mirror[name]}% mirrored)" if mirror.get(name) else "")
        m = metrics.get(name, {})
        ready = status.get("deployments", {}).get(name, {}).get("ready")
        avg = m.get("latency_avg")
        rate = (m.get("errors", 0) / m["requests"]) if m.get("requests") else None
        table.add_row(name, share_text, "✓" if ready else ("…" if ready is False else "-"),
                      str(m.get("requests", 0)),
                      Text(f"{rate:.1%}" if rate is not None else "-", style="red" if rate and rate > 0.01 else ""),
                      f"{avg * 1000:.1f} ms" if avg else "-")
    parts: list[Any] = [table]
    alarms = status.get("alarms") or []
    if alarms:
        alarm_table = Table(title="alarms (on the new deployment)", title_justify="left", header_style="bold")
        for col in ("alarm", "state", "datapoints"):
            alarm_table.add_column(col)
        for a in alarms:
            style = {"ALARM": "bold red", "OK": "green"}.get(a["state"], "dim")
            points = ", ".join("-" if p is None else f"{p:.3g}" for p in a["datapoints"])
            alarm_table.add_row(a["name"], Text(a["state"], style=style), points)
        parts.append(alarm_table)
    return Group(*parts)


def _alarm_states(adapter: Any, spec: Any, endpoint: str) -> list[dict[str, Any]]:
    from cloudml.alarms import evaluate_alarm

    state = adapter.rollout_state(endpoint) or {}
    green = state.get("green")
    out = []
    for alarm in spec.alarms:
        if alarm.existing or green is None:
            continue
        try:
            points = adapter.endpoints.alarm_datapoints(endpoint, green, alarm)
        except (OSError, CloudMLError):
            continue
        s = evaluate_alarm(alarm, points)
        out.append({"name": alarm.name, "state": s.state, "datapoints": list(s.datapoints)})
    return out


def deploy(
    file: Annotated[Path, typer.Argument(help="deployment YAML")],
    backend: Annotated[str | None, typer.Option("--backend", "-b", help="default: configured backend")] = None,
    root: Annotated[str | None, typer.Option("--root", help="local backend state folder")] = None,
    detach: Annotated[bool, typer.Option("--detach", help="drive the rollout from a background process and "
                                                           "return (long bakes, A/B tests)")] = False,
) -> None:
    """Roll out a deployment with its strategy, watching alarms; exits 1 when it is rolled back or fails.

    With ``--detach`` the controller runs in a background process (its output goes to a log file) and
    the command returns once the rollout has started; ``cloudml rollout history|promote`` and
    ``cloudml rollback`` talk to it.

    Example:
        >>> from typer.testing import CliRunner
        >>> from cloudml.cli.main import app
        >>> CliRunner().invoke(app, ["deploy", "missing.yaml"]).exit_code
        2
    """
    from cloudml.loader import load
    from cloudml.spec.deployment import Deployment

    try:
        spec = load(file)
        if not isinstance(spec, Deployment):
            err.print(f"[bold red]error:[/] {file} is a {spec.kind}; use `cloudml run` for pipelines")
            raise typer.Exit(2)
        adapter = _backend(backend, root)
    except CloudMLError as e:
        raise _fail(e) from None
    if detach:
        return _detach(file, spec.endpoint, adapter, backend, root)
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["result"] = adapter.deploy(spec)
        except CloudMLError as e:
            box["error"] = e

    started = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    if out.is_terminal and adapter.name == "local":
        with Live(console=out, refresh_per_second=4) as live:
            while thread.is_alive():
                live.update(_live_status(adapter, spec))
                thread.join(0.5)
            live.update(_live_status(adapter, spec))
    else:
        printed: set[tuple[str, str]] = set()
        while True:
            thread.join(0.5)
            for h in _history(adapter, spec.endpoint):
                key = (h.get("at", ""), h.get("event", ""))
                if h.get("at", "") >= started and key not in printed:  # this rollout's events only
                    printed.add(key)
                    out.print(_event_line(h))
            if not thread.is_alive():
                break
    if "error" in box:
        raise _fail(box["error"])
    result = box["result"]
    style = _OUTCOME_STYLE.get(result.outcome.value, "")
    line = f"[{style}]{result.outcome.value.replace('_', ' ')}[/] {escape(spec.endpoint)}"
    if result.alarm:
        line += f": alarm {escape(result.alarm)} (value {result.metric_value:.4g})" if result.metric_value is not None \
            else f": alarm {escape(result.alarm)}"
    elif result.reason:
        line += f": {escape(result.reason)}"
    out.print(line)
    if result.outcome.value != "succeeded":
        err.print(f"[green]next:[/] cloudml rollout timeline {spec.endpoint} -o timeline.html   ·   "
                  f"cloudml rollout history {spec.endpoint}")
        raise typer.Exit(1)


def _detach(file: Path, endpoint: str, adapter: Any, backend: str | None, root: str | None) -> None:
    """Start ``cloudml deploy FILE`` in its own session, wait until its rollout has started, and return."""
    import subprocess
    import sys

    settings = getattr(adapter, "settings", None)
    logs = Path(root or getattr(settings, "root", None) or getattr(settings, "state_dir", None) or ".cloudml") / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"deploy-{endpoint}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    argv = [sys.executable, "-m", "cloudml.cli.main", "deploy", str(file.resolve())]
    argv += ["--backend", backend] if backend else []
    argv += ["--root", str(Path(root).resolve())] if root else []
    before = (adapter.rollout_state(endpoint) or {}).get("started")
    with open(log, "wb") as fh:
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        state = adapter.rollout_state(endpoint) or {}
        if state.get("started") != before and state.get("started") is not None:
            out.print(f"[green]rollout started[/] on {escape(endpoint)} in the background (pid {proc.pid}); "
                      f"log: {escape(str(log))}")
            err.print(f"[green]next:[/] cloudml rollout history {endpoint}   ·   cloudml rollout promote {endpoint}"
                      f"   ·   cloudml rollback {endpoint}")
            return
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            err.print(f"[bold red]error:[/] the background deploy stopped (exit {proc.returncode}): "
                      f"{escape(' '.join(tail))}")
            err.print(f"[green]next:[/] see {escape(str(log))}, or run without --detach")
            raise typer.Exit(1)
        time.sleep(0.2)
    err.print(f"[yellow]the background deploy (pid {proc.pid}) has not started a rollout after 60 s[/]; "
              f"log: {escape(str(log))}")


def _live_status(adapter: Any, spec: Any) -> Any:
    try:
        status = adapter.endpoint_status(spec.endpoint)
    except (CloudMLError, OSError):
        return Text("starting…")
    status["alarms"] = _alarm_states(adapter, spec, spec.endpoint)
    return status_view(status)


def _history(adapter: Any, endpoint: str) -> list[dict[str, Any]]:
    try:
        state = adapter.rollout_state(endpoint) or {}
    except (CloudMLError, OSError):
        return []
    return list(state.get("history", []))


def _event_line(h: dict[str, Any]) -> str:
    details = {k: v for k, v in h.items() if k not in ("at", "t", "event")}
    extra = " ".join(f"{k}={json.dumps(v) if isinstance(v, (dict, list)) else v}" for k, v in details.items())
    return f"{h['at'][11:23]}  {escape(h['event'])}  {escape(extra)}"


def rollback(endpoint: str, backend: Annotated[str | None, typer.Option("--backend", "-b")] = None,
             root: Annotated[str | None, typer.Option("--root")] = None) -> None:
    """Send all traffic back to the previous deployment now.

    Example:
        >>> import tempfile
        >>> from typer.testing import CliRunner
        >>> from cloudml.cli.main import app
        >>> CliRunner().invoke(app, ["rollback", "nope", "--root", tempfile.mkdtemp()]).exit_code
        1
    """
    try:
        result = _backend(backend, root).rollback(endpoint)
    except CloudMLError as e:
        raise _fail(e) from None
    if result.outcome.value == "rolled_back":
        out.print(f"[yellow]rolled back[/] {escape(endpoint)}: {escape(result.reason)}")
        return
    err.print(f"[bold red]not rolled back:[/] {escape(endpoint)} ended {escape(result.outcome.value)}"
              f"{': ' + escape(result.reason) if result.reason else ''}")
    err.print(f"[green]next:[/] cloudml rollout history {escape(endpoint)}")
    raise typer.Exit(1)


@rollout_app.command("resume")
def rollout_resume(endpoint: str, backend: Annotated[str | None, typer.Option("--backend", "-b")] = None,
                   root: Annotated[str | None, typer.Option("--root")] = None) -> None:
    """Resume an interrupted rollout: it finishes or rolls back."""
    try:
        result = _backend(backend, root).resume_rollout(endpoint)
    except CloudMLError as e:
        raise _fail(e) from None
    style = _OUTCOME_STYLE.get(result.outcome.value, "")
    out.print(f"[{style}]{result.outcome.value}[/] {escape(endpoint)} {escape(result.reason)}")
    if result.outcome.value != "succeeded":
        raise typer.Exit(1)


@rollout_app.command("promote")
def rollout_promote(endpoint: str, backend: Annotated[str | None, typer.Option("--backend", "-b")] = None,
                    root: Annotated[str | None, typer.Option("--root")] = None) -> None:
    """Promote the new deployment now: skip the remaining bakes, retire the old one."""
    try:
        result = _backend(backend, root).promote(endpoint)
    except CloudMLError as e:
        raise _fail(e) from None
    out.print(f"[green]promoted[/] {escape(endpoint)} ({escape(result.outcome.value)})")


@rollout_app.command("history")
def rollout_history(endpoint: str, backend: Annotated[str | None, typer.Option("--backend", "-b")] = None,
                    root: Annotated[str | None, typer.Option("--root")] = None) -> None:
    """Every transition of the endpoint's rollouts, oldest first."""
    try:
        history = _history(_backend(backend, root), endpoint)
    except CloudMLError as e:
        raise _fail(e) from None
    if not history:
        err.print(f"[bold red]error:[/] endpoint {escape(endpoint)} has no rollout history")
        err.print("[green]next:[/] cloudml endpoints list")
        raise typer.Exit(2)
    for h in history:
        out.print(_event_line(h))


@rollout_app.command("timeline")
def rollout_timeline(endpoint: str,
                     output: Annotated[Path, typer.Option("--output", "-o", help="timeline.png, .html or .svg")],
                     backend: Annotated[str | None, typer.Option("--backend", "-b")] = None,
                     root: Annotated[str | None, typer.Option("--root")] = None) -> None:
    """Draw traffic share and error rate over time, with the rollback marked."""
    from cloudml.timeline import write_timeline

    try:
        adapter = _backend(backend, root)
        history = _history(adapter, endpoint)
        if not history:
            err.print(f"[bold red]error:[/] endpoint {escape(endpoint)} has no rollout history")
            raise typer.Exit(2)
        errors = _error_series(adapter, endpoint, history)
        path = write_timeline(endpoint, history, errors, output)
    except CloudMLError as e:
        raise _fail(e) from None
    except ValueError as e:
        err.print(f"[bold red]error:[/] {escape(str(e))}")
        raise typer.Exit(2) from None
    out.print(f"[green]✓[/] wrote {path}")


def _error_series(adapter: Any, endpoint: str, history: list[dict[str, Any]]) -> dict[str, list[Any]]:
    names = {n for h in history for n in h.get("weights", {})}
    start = min(h["t"] for h in history)
    span = int(time.time() - start) + 2
    series: dict[str, list[Any]] = {}
    for name in sorted(names):
        try:
            periods = adapter.endpoints.periods(endpoint, name, 1, min(span, 3600))
        except (OSError, CloudMLError, AttributeError):
            continue
        points = [(p["start"], p["error_rate"]) for p in periods if p["start"] >= start - 1 and p["requests"]]
        if points:
            series[name] = points
    return series


@endpoints_app.command("list")
def endpoints_list(backend: Annotated[str | None, typer.Option("--backend", "-b")] = None,
                   root: Annotated[str | None, typer.Option("--root")] = None) -> None:
    """Endpoints with their live deployment and traffic."""
    try:
        adapter = _backend(backend, root)
        names = adapter.endpoints.list()
        table = Table(header_style="bold")
        for col in ("endpoint", "live", "rollout", "traffic"):
            table.add_column(col)
        for name in names:
            s = adapter.endpoint_status(name)
            weights = s.get("traffic", {}).get("weights", {})
            table.add_row(name, str(s["rollout"].get("live") or "-"), str(s["rollout"].get("status") or "-"),
                          ", ".join(f"{k} {v}%" for k, v in weights.items() if v) or "-")
    except CloudMLError as e:
        raise _fail(e) from None
    out.print(table)


@endpoints_app.command("show")
def endpoints_show(endpoint: str, backend: Annotated[str | None, typer.Option("--backend", "-b")] = None,
                   root: Annotated[str | None, typer.Option("--root")] = None) -> None:
    """One endpoint: deployments, readiness, traffic, metrics and its URL."""
    try:
        s = _backend(backend, root).endpoint_status(endpoint)
    except CloudMLError as e:
        raise _fail(e) from None
    out.print(status_view(s))
    if s.get("url"):
        out.print(f"url: {s['url']}")


@endpoints_app.command("delete")
def endpoints_delete(endpoint: str, backend: Annotated[str | None, typer.Option("--backend", "-b")] = None,
                     root: Annotated[str | None, typer.Option("--root")] = None) -> None:
    """Stop every deployment of an endpoint and forget it."""
    try:
        _backend(backend, root).endpoints.delete(endpoint)
    except CloudMLError as e:
        raise _fail(e) from None
    out.print(f"[green]✓[/] deleted {escape(endpoint)}")


def invoke(endpoint: str,
           data: Annotated[str, typer.Option("--data", "-d", help='JSON instances or {"instances": [...]}, or @file')],
           deployment: Annotated[str | None, typer.Option("--deployment", help="pin one deployment")] = None,
           backend: Annotated[str | None, typer.Option("--backend", "-b")] = None,
           root: Annotated[str | None, typer.Option("--root")] = None) -> None:
    """Send instances to an endpoint and print the predictions.

    Example:
        >>> from typer.testing import CliRunner
        >>> from cloudml.cli.main import app
        >>> CliRunner().invoke(app, ["invoke", "ep", "--data", "not json"]).exit_code
        2
    """
    try:
        raw = Path(data[1:]).read_text() if data.startswith("@") else data
    except OSError as e:
        err.print(f"[bold red]error:[/] cannot read {escape(data[1:])}: {escape(e.strerror or str(e))}")
        err.print("[green]next:[/] check the path after @")
        raise typer.Exit(2) from None
    try:
        payload = json.loads(raw)
    except ValueError as e:
        err.print(f"[bold red]error:[/] --data is not JSON: {escape(str(e))}")
        err.print('[green]next:[/] pass e.g. --data \'[[1, 2, 3]]\' or --data @request.json')
        raise typer.Exit(2) from None
    instances = payload.get("instances") if isinstance(payload, dict) else payload
    if not isinstance(instances, list):
        err.print('[bold red]error:[/] expected a list of instances or {"instances": [...]}')
        raise typer.Exit(2)
    try:
        result = _backend(backend, root).invoke(endpoint, instances, deployment=deployment)
    except (CloudMLError, OSError) as e:
        if isinstance(e, CloudMLError):
            raise _fail(e) from None
        err.print(f"[bold red]error:[/] cannot reach the endpoint: {escape(str(e))}")
        err.print("[green]next:[/] cloudml endpoints show " + escape(endpoint))
        raise typer.Exit(1) from None
    typer.echo(json.dumps(result))
