"""The ``cloudml`` command line.

Errors are short, say what to do next and never end in a traceback: spec and config errors exit
with 2, other cloudml errors with 1.

Example:
    >>> from typer.testing import CliRunner
    >>> from cloudml.cli.main import app
    >>> CliRunner().invoke(app, ["backends"]).exit_code
    0
"""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cloudml.errors import CloudMLError, ConfigError, SpecError

__all__ = ["app", "main"]

app = typer.Typer(
    name="cloudml",
    help="Describe ML pipelines and deployments once; run them locally or on SageMaker, Vertex AI, Azure ML.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class GraphFormat(str, Enum):
    """Output formats of ``cloudml graph``."""

    text = "text"
    mermaid = "mermaid"
    dot = "dot"


class SchemaKind(str, Enum):
    """Which schema ``cloudml schema`` prints."""

    all = "all"
    pipeline = "pipeline"
    deployment = "deployment"


def _print_spec_error(e: SpecError) -> None:
    n = len(e.issues)
    err.print(f"[bold red]✗ {n} problem{'s' if n != 1 else ''}[/] in {e.source or 'the spec'}")
    for issue in e.issues:
        where = issue.location()
        path = issue.path + (f" (step '{issue.step}')" if issue.step else "") if issue.path else ""
        sep = ": " if path else ""
        err.print(f"  [bold]{escape(where)}[/]: [cyan]{escape(path)}[/]{sep}{escape(issue.message)}")
        if issue.expected:
            err.print(f"      expected: {escape(issue.expected)}")
        if issue.fix:
            err.print(f"      [green]fix:[/] {escape(issue.fix)}")


def _fail(e: CloudMLError) -> typer.Exit:
    if isinstance(e, SpecError):
        _print_spec_error(e)
        return typer.Exit(2)
    err.print(f"[bold red]error:[/] {escape(str(e))}")
    if e.hint:
        err.print(f"[green]next:[/] {escape(e.hint)}")
    return typer.Exit(2 if isinstance(e, ConfigError) else 1)


def _load(path: Path) -> Any:
    from cloudml.loader import load

    return load(path)


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="pipeline or deployment YAML/JSON files")],
    target: Annotated[str | None, typer.Option("--target", "-t", help="also compile and check for this backend")] = None,
) -> None:
    """Check specs and report every problem with file:line:column and a fix."""
    from cloudml.api import validate as validate_spec

    failed = False
    for f in files:
        try:
            model = validate_spec(f, target)
        except CloudMLError as e:
            failed = True
            if isinstance(e, SpecError):
                _print_spec_error(e)
            else:
                err.print(f"[bold red]✗ {f}[/]: {escape(str(e))}")
                if e.hint:
                    err.print(f"  [green]next:[/] {escape(e.hint)}")
            continue
        what = f"{len(model.steps)} steps" if model.kind == "Pipeline" else f"endpoint {model.endpoint}"
        suffix = f", compiles for {target}" if target else ""
        name = getattr(model, "name", None) or getattr(model, "endpoint", "")
        out.print(f"[green]✓[/] {f}: {model.kind} '{name}' ({what}{suffix})")
    if failed:
        raise typer.Exit(2)


@app.command("compile")
def compile_cmd(
    file: Annotated[Path, typer.Argument(help="pipeline or deployment file")],
    target: Annotated[str, typer.Option("--target", "-t", help="local, sagemaker, vertex, azureml, ...")] = "local",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write here instead of stdout")] = None,
) -> None:
    """Translate a spec into the target's native document (the local target prints the resolved plan)."""
    from cloudml.api import compile as compile_spec

    try:
        compiled = compile_spec(file, target)
    except CloudMLError as e:
        raise _fail(e) from None
    text = compiled.dumps()
    if output:
        output.write_text(text, encoding="utf-8")
        err.print(f"[green]✓[/] wrote {output} ({compiled.target}, {len(text)} bytes)")
    else:
        sys.stdout.write(text)


@app.command()
def graph(
    file: Annotated[Path, typer.Argument(help="pipeline file")],
    fmt: Annotated[GraphFormat, typer.Option("--format", "-f", help="text, mermaid or dot")] = GraphFormat.text,
) -> None:
    """Draw the pipeline's step graph (text in the terminal; Mermaid or Graphviz DOT for docs)."""
    from cloudml.render import to_dot, to_mermaid, to_text
    from cloudml.spec.pipeline import Pipeline

    try:
        model = _load(file)
    except CloudMLError as e:
        raise _fail(e) from None
    if not isinstance(model, Pipeline):
        err.print(f"[bold red]error:[/] {file} is a {model.kind}; graph draws pipelines")
        err.print("[green]next:[/] for a deployment, run `cloudml compile FILE` to see its rollout plan")
        raise typer.Exit(2)
    render = {GraphFormat.text: to_text, GraphFormat.mermaid: to_mermaid, GraphFormat.dot: to_dot}[fmt]
    sys.stdout.write(render(model) + "\n")


@app.command()
def schema(
    kind: Annotated[SchemaKind, typer.Option("--kind", "-k", help="all, pipeline or deployment")] = SchemaKind.all,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write here instead of stdout")] = None,
) -> None:
    """Print the JSON Schema of the spec (for editor autocompletion; see docs/editor-setup.md)."""
    from cloudml.schema import json_schema

    text = json.dumps(json_schema(kind.value), indent=2) + "\n"
    if output:
        output.write_text(text, encoding="utf-8")
        err.print(f"[green]✓[/] wrote {output}")
    else:
        sys.stdout.write(text)


@app.command()
def backends(
    features: Annotated[bool, typer.Option("--features", help="show the full capability matrix")] = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="print the capability matrix as Markdown")] = False,
) -> None:
    """List registered adapters, whether their extras are installed, and what they support."""
    from cloudml.adapter import FEATURES, capabilities_markdown
    from cloudml.registry import adapter_class, adapter_names, backends_info

    if markdown:
        sys.stdout.write(capabilities_markdown([adapter_class(n).capabilities for n in adapter_names()]) + "\n")
        return

    infos = backends_info()
    table = Table(title="cloudml backends", header_style="bold")
    for col in ("backend", "installed", "install with", "features"):
        table.add_column(col, no_wrap=True)
    table.add_column("description")
    for b in infos:
        installed = "[green]yes[/]" if b.installed else f"[yellow]no[/] (needs {escape(', '.join(b.missing))})"
        install = escape(f"pip install 'cloudml[{b.extra}]'") if b.extra else "(core)"
        table.add_row(b.name, installed, install, f"{b.supported}/{b.supported + b.gaps}", b.description)
    out.print(table)
    if features:
        matrix = Table(title="capabilities", header_style="bold")
        matrix.add_column("feature")
        names = [b.name for b in infos]
        for n in names:
            matrix.add_column(n)
        style = {"supported": "[green]✓[/]", "notimpl": "[yellow]not yet built[/]",
                 "notyet": "[magenta]cloud lacks it[/]", "never": "[red]by design[/]"}
        for f in FEATURES:
            matrix.add_row(f, *(style[adapter_class(n).capabilities.level(f)] for n in names))
        out.print(matrix)


@app.command("iam-policy")
def iam_policy(
    target: Annotated[str, typer.Option("--target", "-t", help="the backend, e.g. sagemaker")],
) -> None:
    """Print the least-privilege cloud policy the adapter's own calls need (JSON)."""
    from cloudml.registry import get_adapter

    try:
        policy = get_adapter(target).iam_policy()
    except CloudMLError as e:
        raise _fail(e) from None
    sys.stdout.write(json.dumps(policy, indent=2) + "\n")


def _register_verbs() -> None:
    from cloudml.cli.deploy import deploy, endpoints_app, invoke, rollback, rollout_app
    from cloudml.cli.init import init
    from cloudml.cli.runs import models_app, run, runs_app, schedule_app

    app.command("run")(run)
    app.add_typer(schedule_app, name="schedule")
    app.add_typer(runs_app, name="runs")
    app.add_typer(models_app, name="models")
    app.command("deploy")(deploy)
    app.command("rollback")(rollback)
    app.command("invoke")(invoke)
    app.add_typer(rollout_app, name="rollout")
    app.add_typer(endpoints_app, name="endpoints")
    app.command("init")(init)


_register_verbs()


def main() -> None:
    """Console-script entry point: run the app and turn stray cloudml errors into short messages.

    Example:
        >>> import subprocess, sys
        >>> subprocess.run([sys.executable, "-m", "cloudml.cli.main", "--help"], capture_output=True).returncode
        0
    """
    try:
        app()
    except CloudMLError as e:  # pragma: no cover - commands handle their own; this is the safety net
        err.print(f"[bold red]error:[/] {escape(str(e))}")
        if e.hint:
            err.print(f"[green]next:[/] {escape(e.hint)}")
        sys.exit(2 if isinstance(e, (SpecError, ConfigError)) else 1)
    except KeyboardInterrupt:  # pragma: no cover
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
