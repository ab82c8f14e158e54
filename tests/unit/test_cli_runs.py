"""`cloudml run`, `cloudml runs list/show/logs/lineage` and `cloudml models list/show/approve/reject`."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cloudml
from cloudml.adapters.local.backend import LocalAdapter
from cloudml.cli import runs as runs_cli
from cloudml.cli.main import app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "steps"
HEADER = "apiVersion: cloudml/v1\nkind: Pipeline\n"

PIPELINE = HEADER + """
name: cli
parameters:
  word: {type: string, default: hello}
  flag: {type: string, default: /nonexistent/flag}
steps:
  - name: a
    command: python steps/write.py {{outputs.d}} {{params.word}}
    outputs: {d: dataset}
  - name: b
    command: python steps/upper.py {{inputs.x}} {{outputs.d}}
    inputs: {x: a.outputs.d}
    outputs: {d: dataset}
  - name: check
    command: python steps/fail_unless.py {{params.flag}}
    depends_on: [b]
"""

MODEL = HEADER + """
name: mdl
parameters:
  word: {type: string, default: weights}
steps:
  - name: train
    command: python steps/write.py {{outputs.model}} {{params.word}}
    outputs: {model: model}
  - name: evaluate
    command: python steps/metrics.py {{outputs.m}} auc=0.875 loss=0.25
    outputs: {m: metrics}
  - name: register
    register_model: {model: train.outputs.model, group: churn, metrics: evaluate.outputs.m}
"""


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables as wide as they need, whatever terminal the tests run in."""
    monkeypatch.setattr(runs_cli.out, "_width", 250)
    monkeypatch.setattr(runs_cli.err, "_width", 250)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    shutil.copytree(FIXTURES, folder / "steps", ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "pipeline.yaml").write_text(PIPELINE)
    (folder / "model.yaml").write_text(MODEL)
    return folder


@pytest.fixture
def root(tmp_path: Path) -> str:
    return str(tmp_path / "state")


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def backend(root: str) -> LocalAdapter:
    adapter = cloudml.get_adapter("local", root=root)
    assert isinstance(adapter, LocalAdapter)
    return adapter


def run_ok(project: Path, root: str, *extra: str) -> str:
    flag = project / "flag"
    flag.write_text("ok")
    code, output = cli("run", str(project / "pipeline.yaml"), "--root", root, "-p", f"flag={flag}", *extra)
    assert code == 0, output
    match = re.search(r"✓ run (\S+) succeeded", output)
    assert match, output
    return match.group(1)


def row(output: str, step: str) -> str:
    return next(line for line in output.splitlines() if re.search(rf"│ {re.escape(step)}\s+│", line))


# -- cloudml run ------------------------------------------------------------------------------------------
def test_run_succeeds_and_prints_the_step_table(project: Path, root: str) -> None:
    flag = project / "flag"
    flag.write_text("ok")
    code, output = cli("run", str(project / "pipeline.yaml"), "--root", root, "-p", "word=bonjour",
                       "-p", f"flag={flag}")
    assert code == 0, output
    (handle_row,) = backend(root).list_runs()
    run_id = handle_row["id"]
    assert f"run {run_id} — succeeded" in output
    for col in ("step", "state", "attempt", "time", "detail"):
        assert col in output.splitlines()[2]
    for step in ("a", "b", "check"):
        assert "✓ succeeded" in row(output, step)
    assert output.rstrip().endswith(f"✓ run {run_id} succeeded")
    assert handle_row["parameters"]["word"] == "bonjour"
    assert (backend(root).get_run(run_id).output_path("b", "d") / "data.txt").read_text() == "BONJOUR"


def test_failed_run_exits_1_with_the_error_and_the_resume_hint(project: Path, root: str) -> None:
    code, output = cli("run", str(project / "pipeline.yaml"), "--root", root)
    assert code == 1
    run_id = backend(root).list_runs()[0]["id"]
    assert "✗ failed" in row(output, "check")
    assert "exit code 4: flag flag is missing" in row(output, "check")
    assert f"✗ run {run_id} failed: step 'check' failed: exit code 4: flag flag is missing" in output
    assert f"cloudml runs logs {run_id} STEP" in output
    assert f"cloudml run --resume {run_id}" in output


def test_resume_from_the_cli(project: Path, root: str) -> None:
    cli("run", str(project / "pipeline.yaml"), "--root", root, "-p", f"flag={project / 'flag'}")
    adapter = backend(root)
    run_id = adapter.list_runs()[0]["id"]
    assert adapter.get_run(run_id).status == "failed"
    finished_a = adapter.get_run(run_id).step("a")["finished"]
    (project / "flag").write_text("fixed")
    code, output = cli("run", "--resume", run_id, "--root", root)
    assert code == 0, output
    assert f"✓ run {run_id} succeeded" in output
    assert "✓ succeeded" in row(output, "check")
    assert [r["id"] for r in adapter.list_runs()] == [run_id]  # the same run, not a new one
    assert adapter.get_run(run_id).step("a")["finished"] == finished_a


def test_second_run_is_cached_and_no_cache_runs_everything(project: Path, root: str) -> None:
    run_ok(project, root)
    code, output = cli("run", str(project / "pipeline.yaml"), "--root", root, "-p", f"flag={project / 'flag'}")
    assert code == 0
    assert "↺ cached" in row(output, "a") and "cache hit" in row(output, "a")
    code, output = cli("run", str(project / "pipeline.yaml"), "--root", root, "-p", f"flag={project / 'flag'}",
                       "--no-cache", "-j", "1")
    assert code == 0
    assert "cached" not in output
    assert all("✓ succeeded" in row(output, s) for s in ("a", "b", "check"))


@pytest.mark.parametrize(("args", "code", "message"), [
    (["-p", "nope=1"], 2, "unknown parameter 'nope'"),
    (["-p", "word"], 2, "expected NAME=VALUE"),
])
def test_run_refuses_bad_parameters(project: Path, root: str, args: list[str], code: int, message: str) -> None:
    exit_code, output = cli("run", str(project / "pipeline.yaml"), "--root", root, *args)
    assert exit_code == code
    assert message in output
    assert not Path(root, "runs").exists() or list(Path(root, "runs").iterdir()) == []


def test_run_needs_a_file_or_a_run_to_resume(root: str) -> None:
    assert cli("run", "--root", root) == (2, "error: give a pipeline file, or --resume RUN_ID\n")
    code, output = cli("run", "--resume", "nope", "--root", root)
    assert code == 1
    assert "no run 'nope'" in output and "cloudml runs list" in output
    code, output = cli("run", "missing.yaml", "--root", root)
    assert code == 2 and "no such file" in output


# -- cloudml runs ...----------------------------------------------------------------------------------------
def test_runs_list(project: Path, root: str) -> None:
    first = run_ok(project, root, "-p", "word=x1")
    code, _ = cli("run", str(project / "model.yaml"), "--root", root)
    assert code == 0
    second = backend(root).list_runs()[0]["id"]
    code, output = cli("runs", "list", "--root", root)
    assert code == 0
    lines = [ln for ln in output.splitlines() if first in ln or second in ln]
    assert len(lines) == 2 and second in lines[0] and first in lines[1]  # newest first
    assert "succeeded" in lines[1] and "word=x1" in lines[1]
    code, output = cli("runs", "list", "--root", root, "--pipeline", "cli")
    assert first in output and second not in output
    code, output = cli("runs", "list", "--root", root, "-n", "1")
    assert second in output and first not in output


def test_runs_list_shows_whole_run_ids_on_a_narrow_terminal(
        project: Path, root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = run_ok(project, root, "-p", "word=a-rather-long-parameter-value")
    monkeypatch.setattr(runs_cli.out, "_width", 80)
    code, output = cli("runs", "list", "--root", root)
    assert code == 0
    assert run_id in output


def test_runs_show(project: Path, root: str) -> None:
    code, _ = cli("run", str(project / "model.yaml"), "--root", root, "-p", "word=w1")
    assert code == 0
    run_id = backend(root).list_runs()[0]["id"]
    code, output = cli("runs", "show", run_id, "--root", root)
    assert code == 0
    assert f"run {run_id} — succeeded" in output
    assert "→ churn:v1" in row(output, "register")
    assert re.search(r"│ word\s+│ \"w1\"\s+│", output)
    assert re.search(r"│ evaluate\s+│ auc\s+│ 0\.875\s+│", output)
    assert re.search(r"│ evaluate\s+│ loss\s+│ 0\.25\s+│", output)


COMPARED = HEADER + """
name: cmp
parameters:
  auc: {type: float, default: 0.8}
  word: {type: string, default: same}
steps:
  - name: evaluate
    command: python steps/metrics.py {{outputs.m}} auc={{params.auc}} loss=0.25
    outputs: {m: metrics}
"""


def test_runs_compare_table_json_and_plot(project: Path, root: str, tmp_path: Path) -> None:
    (project / "cmp.yaml").write_text(COMPARED)
    assert cli("run", str(project / "cmp.yaml"), "--root", root, "-p", "auc=0.8")[0] == 0
    assert cli("run", str(project / "cmp.yaml"), "--root", root, "-p", "auc=0.875")[0] == 0
    second, first = [r["id"] for r in backend(root).list_runs()]
    code, output = cli("runs", "compare", first, second, "--root", root, "--plot", str(tmp_path / "cmp.png"))
    assert code == 0, output
    assert re.search(r"│ auc\s+│ 0\.8\s+│ 0\.875\s+│", output)
    assert re.search(r"│ evaluate\.auc\s+│ 0\.8\s+│ 0\.875\s+│\s+\+0\.075 │", output)
    assert re.search(r"│ evaluate\.loss\s+│ 0\.25\s+│ 0\.25\s+│\s+0 │", output)
    assert (tmp_path / "cmp.png").read_bytes()[:4] == b"\x89PNG"
    code, output = cli("runs", "compare", first, second, "--root", root, "--json")
    data = json.loads(output)
    assert data["runs"] == [first, second]
    rows = {r["name"]: r for r in data["parameters"]}
    assert rows["auc"]["differs"] and not rows["word"]["differs"]
    assert {r["name"]: r["delta"] for r in data["metrics"]} == {"evaluate.auc": 0.075, "evaluate.loss": 0.0}


def test_runs_compare_errors(project: Path, root: str, tmp_path: Path) -> None:
    (project / "cmp.yaml").write_text(COMPARED)
    cli("run", str(project / "cmp.yaml"), "--root", root)
    run_id = backend(root).list_runs()[0]["id"]
    code, output = cli("runs", "compare", run_id, "--root", root)
    assert code == 2 and "at least two runs" in output and "next:" in output
    code, output = cli("runs", "compare", run_id, "nope", "--root", root)
    assert code == 1 and "nope" in output
    code, output = cli("runs", "compare", run_id, run_id, "--root", root, "--plot", str(tmp_path / "x.jpg"))
    assert code == 1 and ".png or .svg" in output


def test_runs_show_of_a_failed_run_prints_its_error(project: Path, root: str) -> None:
    cli("run", str(project / "pipeline.yaml"), "--root", root)
    run_id = backend(root).list_runs()[0]["id"]
    code, output = cli("runs", "show", run_id, "--root", root)
    assert code == 0
    assert "error: step 'check' failed: exit code 4" in output
    assert cli("runs", "show", "nope", "--root", root)[0] == 1


def test_runs_logs(project: Path, root: str) -> None:
    cli("run", str(project / "pipeline.yaml"), "--root", root)
    run_id = backend(root).list_runs()[0]["id"]
    assert cli("runs", "logs", run_id, "a", "--root", root) == (0, "wrote hello\n")
    assert cli("runs", "logs", run_id, "check", "--root", root) == (0, "checking the flag\n")
    assert cli("runs", "logs", run_id, "check", "--stderr", "--root", root) == (0, "flag flag is missing\n")
    assert cli("runs", "logs", run_id, "check", "--attempt", "1", "--root", root) == (0, "checking the flag\n")
    code, output = cli("runs", "logs", run_id, "nope", "--root", root)
    assert code == 2 and f"run {run_id} has no step 'nope'" in output


def test_runs_logs_of_an_attempt_that_never_ran_is_an_error(project: Path, root: str) -> None:
    cli("run", str(project / "pipeline.yaml"), "--root", root)
    run_id = backend(root).list_runs()[0]["id"]
    code, output = cli("runs", "logs", run_id, "check", "--attempt", "7", "--root", root)
    assert code != 0
    assert "checking the flag" not in output


def test_runs_lineage(project: Path, root: str) -> None:
    run_id = run_ok(project, root)
    code, output = cli("runs", "lineage", run_id, "--root", root)
    assert code == 0
    adapter = backend(root)
    a_out = adapter.meta.io(run_id, "a", "out")[0]["digest"]
    b_out = adapter.meta.io(run_id, "b", "out")[0]["digest"]
    assert output.splitlines()[0] == f"run {run_id}"
    assert f"→ d: sha256:{a_out[:16]}…" in output
    assert f"← x: sha256:{a_out[:16]}… from a.outputs.d" in output
    assert f"→ d: sha256:{b_out[:16]}…" in output
    assert "check (succeeded)" not in output  # a step with no artifacts has no branch


# -- cloudml models ...--------------------------------------------------------------------------------------
def test_models_list_show_approve_reject(project: Path, root: str) -> None:
    assert cli("run", str(project / "model.yaml"), "--root", root)[0] == 0
    assert cli("run", str(project / "model.yaml"), "--root", root, "-p", "word=better")[0] == 0
    run_ids = [r["id"] for r in backend(root).list_runs()]

    code, output = cli("models", "list", "--root", root)
    assert code == 0
    assert re.search(rf"│ churn\s+│ 2\s+│ pending\s+│ auc=0\.875, loss=0\.25\s+│ {run_ids[0]}", output)
    assert re.search(rf"│ churn\s+│ 1\s+│ pending\s+│ .*│ {run_ids[1]}", output)

    code, output = cli("models", "show", "churn", "--root", root)
    assert code == 1
    assert "model group 'churn' has no approved version" in output
    assert "cloudml models approve churn VERSION" in output

    assert cli("models", "approve", "churn", "1", "--root", root) == (0, "✓ churn v1 is approved\n")
    code, output = cli("models", "show", "churn", "--root", root)
    assert code == 0
    uri = backend(root).list_models("churn")[1].uri
    assert output.splitlines()[:3] == ["churn v1 (approved)", f"  uri: {uri}", f"  run: {run_ids[1]}"]
    assert "  auc: 0.875" in output.splitlines()
    assert (Path(uri) / "data.txt").read_text() == "weights"

    assert cli("models", "approve", "churn", "2", "--root", root)[0] == 0
    assert cli("models", "show", "churn", "--root", root)[1].startswith("churn v2 (approved)")
    assert cli("models", "reject", "churn", "2", "--root", root) == (0, "✓ churn v2 is rejected\n")
    assert cli("models", "show", "churn", "--root", root)[1].startswith("churn v1 (approved)")
    assert cli("models", "show", "churn", "2", "--root", root)[1].startswith("churn v2 (rejected)")

    code, output = cli("models", "list", "churn", "--root", root)
    assert re.search(r"│ churn\s+│ 2\s+│ rejected", output) and re.search(r"│ churn\s+│ 1\s+│ approved", output)


def test_models_errors(root: str) -> None:
    code, output = cli("models", "approve", "churn", "3", "--root", root)
    assert code == 1 and "model churn v3 does not exist" in output
    code, output = cli("models", "show", "churn", "3", "--root", root)
    assert code == 2 and "churn has no version 3" in output
    code, output = cli("models", "list", "--root", root)
    assert code == 0 and "churn" not in output
