"""The CLI: exit codes, short errors without tracebacks, and what each verb prints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cloudml.cli.main import app
from tests.conftest import REPO

QUICKSTART = REPO / "blueprints" / "quickstart" / "pipeline.yaml"
runner = CliRunner()

BAD = """apiVersion: cloudml/v1
kind: Pipeline
name: bad
steps:
  - name: a
    command: echo {{outputs.nope}}
    outputs: {o: dataset}
  - name: b
    command: echo {{inputs.x}}
    inputs: {x: c.outputs.o}
    timout: 5m
"""


@pytest.fixture
def bad_file(tmp_path: Path) -> Path:
    f = tmp_path / "bad.yaml"
    f.write_text(BAD)
    return f


def test_validate_ok() -> None:
    result = runner.invoke(app, ["validate", str(QUICKSTART)])
    assert result.exit_code == 0, result.output
    assert "✓" in result.output and "quickstart" in result.output and "7 steps" in result.output


def test_validate_reports_every_problem_and_exits_2(bad_file: Path) -> None:
    result = runner.invoke(app, ["validate", str(bad_file)])
    assert result.exit_code == 2
    out = result.output
    assert "3 problems" in out
    assert f"{bad_file}:6:" in out and "no output 'nope'" in out
    assert f"{bad_file}:10:" in out and "unknown step 'c'" in out
    assert f"{bad_file}:11:" in out and "unknown field 'timout'" in out and "did you mean 'timeout'" in out
    assert "Traceback" not in out


def test_validate_several_files_one_bad(bad_file: Path) -> None:
    result = runner.invoke(app, ["validate", str(QUICKSTART), str(bad_file)])
    assert result.exit_code == 2
    assert "✓" in result.output and "problems" in result.output


def _with_secret(tmp_path: Path) -> Path:
    """The quickstart with a secret on its train step: Azure ML command jobs have no secret injection."""
    spec = tmp_path / "pipeline.yaml"
    text = QUICKSTART.read_text().replace("    python: steps:train\n",
                                          "    python: steps:train\n    secrets: {TOKEN: \"env://TOKEN\"}\n")
    assert "secrets:" in text
    spec.write_text(text)
    (tmp_path / "src").mkdir()
    return spec


def test_validate_with_a_target_that_cannot_express_a_feature(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(_with_secret(tmp_path)), "--target", "azureml"])
    assert result.exit_code == 2
    assert "azureml cannot express 'step.secrets' on step 'train'" in result.output
    assert "cloudml backends --features" in result.output


def test_compile_local_prints_the_plan(tmp_path: Path) -> None:
    result = runner.invoke(app, ["compile", str(QUICKSTART), "--target", "local"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["waves"][0] == ["load"]
    assert plan["steps"]["register"]["guard"] == {"condition": "gate", "branch": "then"}
    out = tmp_path / "plan.json"
    result = runner.invoke(app, ["compile", str(QUICKSTART), "-t", "local", "-o", str(out)])
    assert result.exit_code == 0 and json.loads(out.read_text()) == plan


def test_compile_unknown_target_suggests() -> None:
    result = runner.invoke(app, ["compile", str(QUICKSTART), "--target", "sagemakr"])
    assert result.exit_code == 2
    assert "did you mean 'sagemaker'" in result.output and "cloudml backends" in result.output


def test_compile_refuses_what_the_target_cannot_express_by_name(tmp_path: Path) -> None:
    result = runner.invoke(app, ["compile", str(_with_secret(tmp_path)), "--target", "azureml"])
    assert result.exit_code == 1
    assert "azureml cannot express 'step.secrets' on step 'train'" in result.output
    assert "Traceback" not in result.output


def test_compile_deployment_prints_rollout_plan(tmp_path: Path) -> None:
    f = tmp_path / "d.yaml"
    f.write_text("kind: Deployment\nendpoint: churn\nmodel: {group: churn}\nstrategy: {canary: {percent: 10}}\n"
                 "alarms: [{name: e, metric: error_rate, threshold: 1%}]\n")
    result = runner.invoke(app, ["compile", str(f)])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["strategy"] == "canary"
    assert {"phase": "shift", "weights": {"blue": 90, "green": 10}} in plan["phases"]


@pytest.mark.parametrize("fmt,needle", [("text", "wave 1"), ("mermaid", "flowchart TD"), ("dot", "digraph")])
def test_graph_formats(fmt: str, needle: str) -> None:
    result = runner.invoke(app, ["graph", str(QUICKSTART), "--format", fmt])
    assert result.exit_code == 0, result.output
    assert needle in result.stdout and "evaluate" in result.stdout


def test_graph_of_a_deployment_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "d.yaml"
    f.write_text("kind: Deployment\nendpoint: churn\nmodel: {group: churn}\n")
    result = runner.invoke(app, ["graph", str(f)])
    assert result.exit_code == 2 and "graph draws pipelines" in result.output


def test_schema_is_valid_json_schema(tmp_path: Path) -> None:
    import jsonschema

    result = runner.invoke(app, ["schema"])
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    out = tmp_path / "s.json"
    assert runner.invoke(app, ["schema", "-k", "pipeline", "-o", str(out)]).exit_code == 0
    assert json.loads(out.read_text())["title"] == "Pipeline"


def test_backends_lists_every_adapter_and_install_command() -> None:
    result = runner.invoke(app, ["backends", "--features"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in ("local", "sagemaker", "vertex", "azureml"):
        assert name in result.output
    assert "pip install 'cloudml[gcp]'" in result.output
    assert "step.timeout" in result.output


def test_missing_file_is_a_short_error() -> None:
    result = runner.invoke(app, ["compile", "nope.yaml"])
    assert result.exit_code == 2
    assert "no such file" in result.output and "Traceback" not in result.output


def test_console_script_runs_without_traceback(bad_file: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "cloudml.cli.main", "validate", str(bad_file)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "unknown step 'c'" in proc.stderr


def test_help_everywhere() -> None:
    for verb in ([], ["validate"], ["compile"], ["graph"], ["schema"], ["backends"]):
        result = runner.invoke(app, [*verb, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output
