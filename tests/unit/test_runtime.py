"""`python -m cloudml.runtime`: how a Python-function step is called, and its exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from cloudml.runtime import RuntimeCallError, call_step_function, main, resolve_function

JOB = '''\
from pathlib import Path


def fit(train: Path, model: Path, n: int, lr: float, debug: bool, name: str, note="none"):
    assert isinstance(train, Path) and isinstance(model, Path)
    assert model.is_dir(), "output folders exist before the call"
    rows = train.read_text().splitlines()
    (model / "model.txt").write_text(f"{len(rows)} {n * 2} {lr + 0.5} {debug} {name} {note}")


def score(model: str, metrics):
    assert isinstance(model, str)
    return {"auc": 0.91, "rows": 3}


def writes_own(metrics: Path):
    metrics.write_text('{"own": 1}')
    return {"ignored": True}


def boom(x: int):
    raise RuntimeError(f"user code failed with x={x}")


def big(n: int):
    return {"n": n}


def needs(thing):
    return thing
'''


@pytest.fixture
def code(tmp_path: Path) -> Path:
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "job.py").write_text(JOB)
    return folder


def run(code: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cloudml.runtime", "--code", str(code), *args],
                          capture_output=True, text=True, cwd=code.parent, timeout=60)


# --- through the command line ----------------------------------------------------------------------


def test_inputs_outputs_and_params_reach_the_function(code: Path, tmp_path: Path) -> None:
    train = tmp_path / "train.csv"
    train.write_text("a\nb\nc\n")
    model = tmp_path / "out" / "model"
    r = run(code, "--function", "job:fit", "--input", f"train={train}", "--output", f"model={model}",
            "--param", "n=21", "--param", "lr=0.25", "--param", "debug=yes", "--param", "name=x=y")
    assert r.returncode == 0, r.stderr
    assert (model / "model.txt").read_text() == "3 42 0.75 True x=y none"


def test_a_returned_dict_is_written_to_the_one_metrics_output(code: Path, tmp_path: Path) -> None:
    metrics = tmp_path / "deep" / "m.json"
    r = run(code, "--function", "job:score", "--input", f"model={tmp_path}", "--output", f"metrics={metrics}",
            "--output-type", "metrics=metrics")
    assert r.returncode == 0, r.stderr
    assert json.loads(metrics.read_text()) == {"auc": 0.91, "rows": 3}


def test_a_metrics_file_the_function_wrote_is_kept(code: Path, tmp_path: Path) -> None:
    metrics = tmp_path / "m.json"
    r = run(code, "--function", "job:writes_own", "--output", f"metrics={metrics}", "--output-type",
            "metrics=metrics")
    assert r.returncode == 0, r.stderr
    assert json.loads(metrics.read_text()) == {"own": 1}


def test_a_large_int_param_keeps_every_digit(code: Path, tmp_path: Path) -> None:
    metrics = tmp_path / "m.json"
    r = run(code, "--function", "job:big", "--param", "n=12345678901234567891", "--output", f"m={metrics}",
            "--output-type", "m=metrics")
    assert r.returncode == 0, r.stderr
    assert json.loads(metrics.read_text()) == {"n": 12345678901234567891}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--function", "job:needs"], "function argument 'thing' has no input, output or param of that name"),
        (["--function", "nosuchmodule:fit"], "cannot import module 'nosuchmodule'"),
        (["--function", "job:nope"], "module 'job' has no function 'nope'"),
        (["--function", "job"], "'job' is not module:function"),
        (["--function", "job:big", "--param", "n=ten"], "param 'n': 'ten' is not an int"),
        (["--function", "job:fit", "--input", "train=x", "--output", "model=y", "--param", "n=1", "--param",
          "lr=fast", "--param", "debug=1", "--param", "name=a"], "param 'lr': 'fast' is not a float"),
        (["--function", "job:fit", "--input", "train=x", "--output", "model=y", "--param", "n=1", "--param",
          "lr=1", "--param", "debug=maybe", "--param", "name=a"], "param 'debug': 'maybe' is not a bool"),
    ],
)
def test_a_wrong_call_exits_2_with_a_one_line_reason(code: Path, args: list[str], message: str) -> None:
    r = run(code, *args)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("cloudml.runtime: ")
    assert message in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "cloudml.runtime: --function MODULE:FUNCTION is required"),
        (["--function", "job:big", "--param", "n"], "cloudml.runtime: --param expects NAME=VALUE, got 'n'"),
        (["--function", "job:big", "--colour", "red"], "cloudml.runtime: unknown argument '--colour'"),
        (["--function"], "cloudml.runtime: --function needs a value"),
    ],
)
def test_bad_command_line_syntax_exits_2_with_the_reason_and_the_usage(code: Path, args: list[str],
                                                                        message: str) -> None:
    r = subprocess.run([sys.executable, "-m", "cloudml.runtime", *args], capture_output=True, text=True,
                       cwd=code, timeout=60)
    assert r.returncode == 2
    reason, usage = r.stderr.splitlines()
    assert reason == message
    assert usage.startswith("usage: python -m cloudml.runtime --function MODULE:FUNCTION")


def test_help_prints_the_usage(code: Path) -> None:
    r = run(code, "--help")
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout.startswith("usage: python -m cloudml.runtime")


def test_flags_also_take_the_equals_form(code: Path, tmp_path: Path) -> None:
    metrics = tmp_path / "m.json"
    r = run(code, "--function=job:big", "--param=n=5", f"--output=m={metrics}", "--output-type=m=metrics")
    assert r.returncode == 0, r.stderr
    assert json.loads(metrics.read_text()) == {"n": 5}


def test_user_code_that_raises_exits_1_with_its_traceback(code: Path) -> None:
    r = run(code, "--function", "job:boom", "--param", "x=7")
    assert r.returncode == 1
    assert "Traceback (most recent call last)" in r.stderr
    assert "RuntimeError: user code failed with x=7" in r.stderr
    assert 'job.py", line' in r.stderr


def test_a_module_is_found_from_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "here.py").write_text("def f(x: int):\n    print(x + 1)\n")
    r = subprocess.run([sys.executable, "-m", "cloudml.runtime", "--function", "here:f", "--param", "x=1"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert (r.returncode, r.stdout) == (0, "2\n")


# --- in process ------------------------------------------------------------------------------------


def test_call_step_function_converts_by_annotation(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def f(a: int, b: float, c: bool, d: str, e, inp: str, out: Path) -> None:  # type: ignore[no-untyped-def]
        seen.update(a=a, b=b, c=c, d=d, e=e, inp=inp, out=out)

    result = call_step_function(f, {"inp": "/data"}, {"out": str(tmp_path / "o")},
                                {"a": "1e3", "b": "2", "c": "False", "d": "007", "e": "raw"})
    assert result is None
    assert seen == {"a": 1000, "b": 2.0, "c": False, "d": "007", "e": "raw", "inp": "/data", "out": tmp_path / "o"}
    assert (tmp_path / "o").is_dir()


def test_call_step_function_passes_extras_to_kwargs(tmp_path: Path) -> None:
    def f(x: int, **rest: Any) -> dict[str, Any]:
        return {"x": x, **rest}

    out = call_step_function(f, {"i": "in"}, {}, {"x": "2", "y": "3"})
    assert out == {"x": 2, "i": Path("in"), "y": "3"}


def test_call_step_function_calls_a_bound_method_without_self() -> None:
    class Trainer:
        def __init__(self) -> None:
            self.base = 10

        def run(self, n: int) -> int:
            return self.base + n

    assert call_step_function(Trainer().run, {}, {}, {"n": "5"}) == 15


def test_call_step_function_uses_defaults_for_missing_arguments() -> None:
    def f(x: int = 5) -> int:
        return x

    assert call_step_function(f, {}, {}, {}) == 5


def test_call_step_function_does_not_write_metrics_when_ambiguous(tmp_path: Path) -> None:
    def f() -> dict[str, int]:
        return {"a": 1}

    outputs = {"m1": str(tmp_path / "m1.json"), "m2": str(tmp_path / "m2.json")}
    call_step_function(f, {}, outputs, {}, {"m1": "metrics", "m2": "metrics"})
    assert not (tmp_path / "m1.json").exists() and not (tmp_path / "m2.json").exists()


@pytest.mark.parametrize(
    ("value", "expected"),
    [("7", 7), ("-7", -7), ("200.0", 200), ("1e2", 100), ("12345678901234567891", 12345678901234567891)],
)
def test_int_conversion(value: str, expected: int) -> None:
    def f(n: int) -> int:
        return n

    assert call_step_function(f, {}, {}, {"n": value}) == expected


@pytest.mark.parametrize("value", ["1.5", "inf", "nan", "x", ""])
def test_int_conversion_rejects(value: str) -> None:
    def f(n: int) -> int:
        return n

    with pytest.raises(RuntimeCallError, match="is not an int"):
        call_step_function(f, {}, {}, {"n": value})


def test_resolve_function_imports_from_the_code_folder(tmp_path: Path) -> None:
    folder = tmp_path / "pkgcode"
    (folder / "mypkg").mkdir(parents=True)
    (folder / "mypkg" / "__init__.py").write_text("")
    (folder / "mypkg" / "steps_for_resolve.py").write_text(textwrap.dedent("""\
        def run():
            return "ran"
    """))
    func = resolve_function("mypkg.steps_for_resolve:run", str(folder))
    assert func() == "ran"
    with pytest.raises(RuntimeCallError, match="has no function 'missing'"):
        resolve_function("mypkg.steps_for_resolve:missing", str(folder))


def test_main_returns_the_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--function", "json:dumps", "--param", "obj=1"]) == 0
    assert main(["--function", "json:nothing_here"]) == 2
    assert "cloudml.runtime: module 'json' has no function 'nothing_here'" in capsys.readouterr().err
