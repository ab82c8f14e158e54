"""CLI verbs for runs and models: ``cloudml run``, ``cloudml runs ...``, ``cloudml models ...``.

Example:
    >>> from typer.testing import CliRunner
    >>> from cloudml.cli.main import app
    >>> CliRunner().invoke(app, ["runs", "--help"]).exit_code
    0
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from cloudml.errors import CloudMLError

__all__ = ["models_app", "run", "runs_app", "schedule_app", "step_table"]

runs_app = typer.Typer(help="Inspect runs: list, show, compare, logs, lineage.", no_args_is_help=True)
models_app = typer.Typer(help="The model registry: list, show, approve, reject.", no_args_is_help=True)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

_STYLE = {"succeeded": "green", "cached": "cyan", "running": "yellow", "retrying": "yellow", "failed": "bold red",
          "upstream_failed": "red", "skipped": "dim", "pending": "dim", "cancelled": "magenta"}
_ICON = {"succeeded": "✓", "cached": "↺", "running": "▶", "failed": "✗", "upstream_failed": "⊘", "skipped": "↷",
         "pending": "·", "cancelled": "■"}


def _fail(e: CloudMLError) -> typer.Exit:
    from cloudml.cli.main import _fail as fail

    return fail(e)


def _backend(name: str | None, root: str | None = None) -> Any:
    from cloudml.registry import get_adapter

    return get_adapter(name, root=root) if root else get_adapter(name)


def _duration(row: dict[str, Any]) -> str:
    if not row.get("started"):
        return ""
    end = row.get("finished") or time.time()
    return f"{max(0.0, end - row['started']):.1f}s"


def step_table(run_id: str, rows: list[dict[str, Any]], status: str) -> Table:
    """The live view: one line per step with state, attempt, duration, cache hit and detail.

    Example:
        >>> t = step_table("r1", [{"name": "a", "status": "succeeded", "attempts": 1, "cache_hit": 0,
        ...                        "started": 1.0, "finished": 2.5, "error": None, "result": None}], "succeeded")
        >>> t.row_count
        1
    """
    table = Table(title=f"run {run_id} — {status}", title_justify="left", header_style="bold", expand=False)
    for col in ("step", "state", "attempt", "time", "detail"):
        table.add_column(col)
    for r in rows:
        state = r["status"]
        detail = r.get("error") or (f"→ {r['result']}" if r.get("result") else "")
        if r.get("cache_hit"):
            detail = "cache hit" + (f"; {detail}" if detail else "")
        table.add_row(r["name"], Text(f"{_ICON.get(state, '?')} {state}", style=_STYLE.get(state, "")),
                      str(r.get("attempts") or ""), _duration(r), Text(str(detail)[:120]))
    return table


def _parse_params(values: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in values:
        if "=" not in item:
            raise typer.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint="--param")
        k, v = item.split("=", 1)
        params[k.strip()] = v
    return params


def _watch(handle: Any, live_view: bool) -> str:
    if live_view:
        with Live(step_table(handle.id, handle.steps, handle.status), console=out, refresh_per_second=8) as live:
            while handle.wait(0.15) not in ("succeeded", "failed", "cancelled"):
                live.update(step_table(handle.id, handle.steps, handle.status))
            live.update(step_table(handle.id, handle.steps, handle.status))
        return str(handle.status)
    status = handle.wait()
    out.print(step_table(handle.id, handle.steps, status))
    return str(status)


def run(
    file: Annotated[Path | None, typer.Argument(help="pipeline file (not needed with --resume)")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE, repeatable")] = None,
    backend: Annotated[str | None, typer.Option("--backend", "-b", help="default: configured backend")] = None,
    max_workers: Annotated[int | None, typer.Option("--max-workers", "-j", min=1, help="parallel steps")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="run every step even if cached")] = False,
    fail_fast: Annotated[bool, typer.Option("--fail-fast", help="stop everything at the first failure")] = False,
    resume: Annotated[str | None, typer.Option("--resume", help="re-run only failed or unrun steps of RUN_ID")] = None,
    root: Annotated[str | None, typer.Option("--root", help="local backend state folder")] = None,
) -> None:
    """Run a pipeline (live view of every step); exits 1 when the run fails.

    Example:
        >>> import tempfile, pathlib
        >>> from typer.testing import CliRunner
        >>> from cloudml.cli.main import app
        >>> d = pathlib.Path(tempfile.mkdtemp()); f = d / "p.yaml"
        >>> _ = f.write_text("kind: Pipeline\\nname: p\\nsteps: [{name: a, command: echo hi}]\\n")
        >>> CliRunner().invoke(app, ["run", str(f), "--root", str(d / "state")]).exit_code
        0
    """
    try:
        adapter = _backend(backend, root)
        options: dict[str, Any] = {"max_workers": max_workers, "use_cache": not no_cache, "fail_fast": fail_fast}
        if resume:
            handle = adapter.resume(resume, **options)
        else:
            if file is None:
                err.print("[bold red]error:[/] give a pipeline file, or --resume RUN_ID")
                raise typer.Exit(2)
            spec = _pipeline_file(file, "use `cloudml deploy` for deployments")
            handle = adapter.run(spec, _parse_params(param or []), spec_dir=str(file.resolve().parent), **options)
    except CloudMLError as e:
        raise _fail(e) from None
    status = _watch(handle, out.is_terminal)
    if status != "succeeded":
        err.print(f"[bold red]✗ run {handle.id} {status}[/]: {escape(handle.error or '')}")
        then = (f"fix it, then: cloudml run --resume {handle.id}" if hasattr(adapter, "resume")
                else "fix it, then run again (cached steps are reused where the backend caches)")
        err.print(f"[green]next:[/] cloudml runs logs {handle.id} STEP   ·   {then}")
        raise typer.Exit(1)
    out.print(f"[green]✓ run {handle.id} succeeded[/]")


schedule_app = typer.Typer(help="Cron schedules: next fire times, run them locally, apply them on a cloud.",
                            no_args_is_help=True)


def _pipeline_file(file: Path, otherwise: str) -> Any:
    """Load a file that must hold a pipeline; anything else exits 2 saying what to do instead."""
    from cloudml.loader import load
    from cloudml.spec.pipeline import Pipeline

    spec = load(file)
    if not isinstance(spec, Pipeline):
        err.print(f"[bold red]error:[/] {file} is a {spec.kind}; {otherwise}")
        raise typer.Exit(2)
    return spec


def _scheduled(file: Path) -> Any:
    return _pipeline_file(file, "schedules belong to pipelines")


@schedule_app.command("next")
def schedule_next(
    file: Annotated[Path, typer.Argument(help="pipeline file with a schedule:")],
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="how many fire times")] = 5,
) -> None:
    """Print the next fire times of a pipeline's schedule, in its time zone.

    Example:
        >>> import tempfile, pathlib
        >>> from typer.testing import CliRunner
        >>> from cloudml.cli.main import app
        >>> d = pathlib.Path(tempfile.mkdtemp()); f = d / "p.yaml"
        >>> _ = f.write_text("kind: Pipeline\\nname: p\\nschedule: {cron: '0 3 * * *'}\\nsteps: [{name: a, command: 'true'}]\\n")
        >>> result = CliRunner().invoke(app, ["schedule", "next", str(f), "-n", "2"])
        >>> result.exit_code, len([line for line in result.output.splitlines() if ":00" in line])
        (0, 2)
    """
    from cloudml.adapters.local.scheduler import upcoming

    try:
        spec = _scheduled(file)
        times = upcoming(spec, count)
    except CloudMLError as e:
        raise _fail(e) from None
    s = spec.schedule
    out.print(f"[bold]{spec.name}[/] · cron [cyan]{escape(s.cron)}[/] ({s.timezone})"
              f"{'' if s.enabled else ' · [yellow]disabled[/]'}")
    for t in times:
        out.print(f"  {t:%a %Y-%m-%d %H:%M %Z}")


@schedule_app.command("run")
def schedule_run(
    file: Annotated[Path, typer.Argument(help="pipeline file with a schedule:")],
    max_runs: Annotated[int | None, typer.Option("--max-runs", min=1, help="stop after N runs")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE over the schedule's parameters")] = None,
    now: Annotated[bool, typer.Option("--now", help="also start one run right away")] = False,
    root: Annotated[str | None, typer.Option("--root", help="local backend state folder")] = None,
) -> None:
    """Run a pipeline on its schedule on this machine, in the foreground (Ctrl-C stops it).

    Runs never overlap: a fire time that comes while the previous run is still going is skipped.
    On stop, the run in flight is waited for.

    Example:
        >>> from typer.testing import CliRunner
        >>> from cloudml.cli.main import app
        >>> CliRunner().invoke(app, ["schedule", "run", "--help"]).exit_code
        0
    """
    from cloudml.adapters.local.scheduler import run_schedule

    def show(e: Any) -> None:
        stamp = f"[dim]{time.strftime('%H:%M:%S')}[/]"
        if e.kind == "waiting":
            out.print(f"{stamp} next run at {e.at:%a %Y-%m-%d %H:%M %Z}")
        elif e.kind == "started":
            out.print(f"{stamp} [green]started[/] {e.run_id}")
        elif e.kind == "skipped":
            out.print(f"{stamp} [yellow]skipped[/] {e.at:%H:%M}: {e.reason} ({e.run_id})")
        else:
            out.print(f"{stamp} [{'green' if e.status == 'succeeded' else 'red'}]{e.status}[/] {e.run_id}")

    try:
        spec = _scheduled(file)
        run_schedule(_backend("local", root), spec, spec_dir=str(file.resolve().parent), max_runs=max_runs,
                     on_event=show, parameters=_parse_params(param or []), run_now=now)
    except KeyboardInterrupt:
        out.print("stopped")
    except CloudMLError as e:
        raise _fail(e) from None


@schedule_app.command("apply")
def schedule_apply(
    file: Annotated[Path, typer.Argument(help="pipeline file with a schedule:")],
    backend: Annotated[str | None, typer.Option("--backend", "-b", help="default: configured backend")] = None,
) -> None:
    """Publish the pipeline and create or update the cloud's own schedule for it (SageMaker: EventBridge;
    Azure ML: a job schedule).

    Example:
        >>> from typer.testing import CliRunner
        >>> from cloudml.cli.main import app
        >>> CliRunner().invoke(app, ["schedule", "apply", "--help"]).exit_code
        0
    """
    try:
        spec = _scheduled(file)
        adapter = _backend(backend)
        if not hasattr(adapter, "apply_schedule"):
            hint = ("run it here with `cloudml schedule run`" if adapter.name == "local"
                    else "`cloudml backends --features` lists what each backend supports")
            err.print(f"[bold red]error:[/] applying schedules is not built for {adapter.name}")
            err.print(f"[green]next:[/] {hint}")
            raise typer.Exit(1)
        adapter.base_dir = file.resolve().parent  # code folders are relative to the pipeline file, as for run
        arn = adapter.apply_schedule(spec)
    except CloudMLError as e:
        raise _fail(e) from None
    out.print(f"[green]✓ schedule applied[/] {arn}")


@runs_app.command("list")
def runs_list(
    pipeline: Annotated[str | None, typer.Option("--pipeline", help="only this pipeline")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n")] = 20,
    backend: Annotated[str | None, typer.Option("--backend", "-b")] = None,
    root: Annotated[str | None, typer.Option("--root")] = None,
) -> None:
    """Recent runs, newest first."""
    try:
        rows = _backend(backend, root).list_runs(pipeline, limit)
    except CloudMLError as e:
        raise _fail(e) from None
    table = Table(header_style="bold")
    table.add_column("run", no_wrap=True, min_width=max([len(r["id"]) for r in rows] + [3]))
    for col in ("pipeline", "status", "started", "took"):
        table.add_column(col, no_wrap=True)
    table.add_column("parameters")
    for r in rows:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["created"]))
        took = f"{r['finished'] - r['started']:.1f}s" if r.get("finished") and r.get("started") else ""
        table.add_row(r["id"], r["pipeline"], Text(r["status"], style=_STYLE.get(r["status"], "")), started, took,
                      escape(" ".join(f"{k}={v}" for k, v in r["parameters"].items())))
    out.print(table)


def _handle(run_id: str, backend: str | None, root: str | None) -> Any:
    try:
        return _backend(backend, root).get_run(run_id)
    except CloudMLError as e:
        raise _fail(e) from None


@runs_app.command("show")
def runs_show(run_id: str, backend: Annotated[str | None, typer.Option("--backend", "-b")] = None,
              root: Annotated[str | None, typer.Option("--root")] = None) -> None:
    """Steps, parameters and metrics of a run."""
    h = _handle(run_id, backend, root)
    try:  # every backend's run handle has status and steps; parameters and metrics where it keeps them
        parameters = dict(getattr(h, "parameters", None) or {})
        metrics = dict(getattr(h, "metrics", None) or {})
        steps, status = h.steps, h.status
    except CloudMLError as e:
        raise _fail(e) from None
    params_table = Table(title="parameters", title_justify="left", header_style="bold")
    params_table.add_column("name")
    params_table.add_column("value")
    for k, v in parameters.items():
        params_table.add_row(k, escape(json.dumps(v, default=str)))
    metrics_table = Table(title="metrics", title_justify="left", header_style="bold")
    for col in ("step", "metric", "value"):
        metrics_table.add_column(col)
    for step, values in metrics.items():
        for k, v in values.items():
            metrics_table.add_row(step, k, f"{v:.6g}" if isinstance(v, (int, float)) else escape(str(v)))
    out.print(Group(step_table(run_id, steps, status), params_table, metrics_table))
    if h.error:
        err.print(f"[bold red]error:[/] {escape(h.error)}")


@runs_app.command("compare")
def runs_compare(
    run_ids: Annotated[list[str], typer.Argument(help="two or more run ids; the first is the baseline")],
    plot: Annotated[Path | None, typer.Option("--plot", help="also draw the metrics (.png or .svg)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the comparison as JSON")] = False,
    backend: Annotated[str | None, typer.Option("--backend", "-b")] = None,
    root: Annotated[str | None, typer.Option("--root")] = None,
) -> None:
    """Parameters and metrics of runs side by side; the change column is last run minus first."""
    from cloudml.compare import compare, summarize, write_plot

    if len(run_ids) < 2:
        err.print("[bold red]error:[/] compare needs at least two runs\n[dim]next:[/] cloudml runs list, then "
                  "cloudml runs compare RUN RUN")
        raise typer.Exit(2)
    try:
        comparison = compare([summarize(_handle(r, backend, root)) for r in run_ids])
        if plot is not None:
            write_plot(comparison, plot)
    except CloudMLError as e:
        raise _fail(e) from None
    if as_json:
        typer.echo(json.dumps(comparison.as_dict(), indent=1, default=str))
        return
    out.print(_comparison_table(comparison))
    if plot is not None:
        err.print(f"[green]wrote[/] {escape(str(plot))}")


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.6g}"
    return escape(value if isinstance(value, str) else json.dumps(value))


def _comparison_table(c: Any) -> Table:
    table = Table(header_style="bold", title=f"{len(c.runs)} runs; change = last - first",
                  title_justify="left")
    table.add_column("")
    for r in c.runs:
        table.add_column(f"{r.id}\n{r.pipeline} ({r.status})", no_wrap=True)
    table.add_column("change", justify="right")
    sections = (("parameters", c.parameters), ("step parameters", c.step_params), ("metrics", c.metrics))
    for title, rows in sections:
        if not rows:
            continue
        table.add_row(Text(title, style="bold underline"), *[""] * (len(c.runs) + 1))
        for row in rows:
            style = "yellow" if row.differs else ""
            change = "" if row.delta is None else (f"{row.delta:+.4g}" if row.delta else "0")
            table.add_row(Text(row.name, style=style), *[_cell(v) for v in row.values], change)
    return table


@runs_app.command("logs")
def runs_logs(run_id: str, step: str,
              attempt: Annotated[int | None, typer.Option("--attempt", "-a", help="default: the last")] = None,
              stderr: Annotated[bool, typer.Option("--stderr", help="show stderr instead of stdout")] = False,
              backend: Annotated[str | None, typer.Option("--backend", "-b")] = None,
              root: Annotated[str | None, typer.Option("--root")] = None) -> None:
    """Print what a step wrote to stdout (or stderr)."""
    h = _handle(run_id, backend, root)
    try:
        names = [s["name"] for s in h.steps]
    except CloudMLError as e:
        raise _fail(e) from None
    if step not in names:
        err.print(f"[bold red]error:[/] run {run_id} has no step '{escape(step)}'"
                  + (f" (steps: {escape(', '.join(names))})" if names else ""))
        raise typer.Exit(2) from None
    try:
        text = h.logs(step, attempt, "stderr" if stderr else "stdout")
    except CloudMLError as e:
        raise _fail(e) from None
    typer.echo(text, nl=False)


@runs_app.command("lineage")
def runs_lineage(run_id: str, backend: Annotated[str | None, typer.Option("--backend", "-b")] = None,
                 root: Annotated[str | None, typer.Option("--root")] = None) -> None:
    """Which artifact (by SHA-256) each step read and wrote: the data lineage of a run."""
    from rich.tree import Tree

    h = _handle(run_id, backend, root)
    meta = h.backend.meta
    tree = Tree(f"run {run_id}")
    for s in h.steps:
        rows = meta.io(run_id, s["name"])
        if not rows:
            continue
        node = tree.add(f"[bold]{s['name']}[/] ({s['status']})")
        for r in rows:
            arrow = "←" if r["direction"] == "in" else "→"
            source = f" from {escape(r['source'])}" if r.get("source") else ""
            node.add(f"{arrow} {r['name']}: sha256:{r['digest'][:16]}…{source}")
    out.print(tree)


@models_app.command("list")
def models_list(group: Annotated[str | None, typer.Argument(help="only this model group")] = None,
                backend: Annotated[str | None, typer.Option("--backend", "-b")] = None,
                root: Annotated[str | None, typer.Option("--root")] = None) -> None:
    """Registered model versions, newest first."""
    try:
        models = _backend(backend, root).list_models(group)
    except CloudMLError as e:
        raise _fail(e) from None
    table = Table(header_style="bold")
    for col in ("group", "version", "approval"):
        table.add_column(col, no_wrap=True)
    for col in ("metrics", "run", "created"):
        table.add_column(col)
    for m in models:
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in list(m.metrics.items())[:4])
        created = m.created_at.strftime("%Y-%m-%d %H:%M") if m.created_at else ""
        table.add_row(m.group, str(m.version), m.approval, metrics, m.run_id or "", created)
    out.print(table)


def _approval(group: str, version: int, approval: str, backend: str | None, root: str | None) -> None:
    try:
        m = _backend(backend, root).set_approval(group, version, approval)
    except CloudMLError as e:
        raise _fail(e) from None
    out.print(f"[green]✓[/] {m.group} v{m.version} is {m.approval}")


@models_app.command("approve")
def models_approve(group: str, version: int, backend: Annotated[str | None, typer.Option("--backend", "-b")] = None,
                   root: Annotated[str | None, typer.Option("--root")] = None) -> None:
    """Mark a model version approved (deployments of `latest-approved` pick it up)."""
    _approval(group, version, "approved", backend, root)


@models_app.command("reject")
def models_reject(group: str, version: int, backend: Annotated[str | None, typer.Option("--backend", "-b")] = None,
                  root: Annotated[str | None, typer.Option("--root")] = None) -> None:
    """Mark a model version rejected."""
    _approval(group, version, "rejected", backend, root)


@models_app.command("show")
def models_show(group: str, version: Annotated[str, typer.Argument(help="a number or latest-approved")] = "latest-approved",
                backend: Annotated[str | None, typer.Option("--backend", "-b")] = None,
                root: Annotated[str | None, typer.Option("--root")] = None) -> None:
    """One model version: where it is, its metrics and the run that made it."""
    try:
        adapter = _backend(backend, root)
        if version == "latest-approved":
            m = adapter.latest_approved(group)
        else:
            m = next((x for x in adapter.list_models(group) if str(x.version) == version), None)
            if m is None:
                err.print(f"[bold red]error:[/] {escape(group)} has no version {escape(version)}")
                raise typer.Exit(2)
    except CloudMLError as e:
        raise _fail(e) from None
    out.print(f"[bold]{m.group} v{m.version}[/] ({m.approval})\n  uri: {m.uri}\n  run: {m.run_id}")
    for k, v in m.metrics.items():
        out.print(f"  {k}: {v}")

