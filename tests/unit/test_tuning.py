"""Tuning steps: spec validation, the local backend's trials (real processes), and SageMaker's Tuning step."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import cloudml
from cloudml.adapters.sagemaker.compiler import compile_definition
from cloudml.adapters.sagemaker.validate import validate_definition
from cloudml.config import SageMakerSettings
from cloudml.errors import SpecError, UnsupportedFeatureError
from cloudml.spec.pipeline import Pipeline
from cloudml.spec.tuning import Tuning
from cloudml.spec.validate import validate_data
from cloudml.tuning import Sampler

JOB = '''
import json, os, time
from pathlib import Path


def fit(depth: int, kernel: str, model: Path, metrics: Path, trace: str = "", lr: float = 0.0, nap: float = 0.0):
    if trace:
        folder = Path(trace)
        folder.mkdir(exist_ok=True)
        stamp = f"{depth}-{kernel}-{lr}-{os.getpid()}"
        (folder / f"{stamp}.start").write_text(repr(time.time()))
        if (folder / "block").exists() and depth == 4:
            time.sleep(60)
    time.sleep(nap)
    if kernel == "bad":
        raise RuntimeError("bad kernel")
    (model / "model.txt").write_text(f"depth={depth} kernel={kernel}")
    if trace:
        (folder / f"{stamp}.end").write_text(repr(time.time()))
    return {"score": -(depth - 4) ** 2 - (0 if kernel == "rbf" else 1) + lr}
'''

SETTINGS = SageMakerSettings(region="us-east-1", bucket="cloudml-test",
                             role_arn="arn:aws:iam::123456789012:role/cloudml-test")


def pipeline(tuning: dict[str, Any], *, params: dict[str, Any] | None = None, extra: list[dict[str, Any]] | None = None,
             **step: Any) -> Pipeline:
    train = {"name": "train", "python": "job:fit", "outputs": {"model": "model", "metrics": "metrics"},
             "params": params or {}, "tuning": tuning, **step}
    p = validate_data({"apiVersion": "cloudml/v1", "kind": "Pipeline", "name": "tune",
                       "defaults": {"framework": "sklearn==1.2"}, "steps": [train, *(extra or [])]})
    assert isinstance(p, Pipeline)
    return p


def grid(depth: tuple[int, int] = (1, 6), kernels: tuple[str, ...] = ("rbf", "linear"), **more: Any) -> dict[str, Any]:
    return {"search_space": {"depth": {"type": "int", "min": depth[0], "max": depth[1]},
                             "kernel": {"type": "categorical", "values": list(kernels)}},
            "objective": {"metric": "metrics.score", "goal": "maximize"}, "strategy": "grid", **more}


@pytest.fixture
def spec_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "spec"
    folder.mkdir()
    (folder / "job.py").write_text(JOB)
    return folder


@pytest.fixture
def local(tmp_path: Path) -> Any:
    return cloudml.get_adapter("local", root=str(tmp_path / "state"))


def run(local: Any, p: Pipeline, spec_dir: Path, **options: Any) -> Any:
    handle = local.run(p, spec_dir=str(spec_dir), in_process=False, **options)
    handle.wait(60)
    return handle


def trials(handle: Any, step: str = "train") -> dict[str, Any]:
    record: dict[str, Any] = json.loads(handle.step(step)["result"])
    return record


def spans(trace: Path) -> list[tuple[float, float]]:
    out = []
    for start in trace.glob("*.start"):
        end = start.with_suffix(".end")
        if end.exists():
            out.append((float(start.read_text()), float(end.read_text())))
    return out


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    live = peak = 0
    for _, delta in events:
        live += delta
        peak = max(peak, live)
    return peak


# -- the spec -----------------------------------------------------------------------------------------

def _errors(doc_step: dict[str, Any]) -> list[str]:
    doc = {"apiVersion": "cloudml/v1", "kind": "Pipeline", "name": "p", "steps": [doc_step]}
    with pytest.raises(SpecError) as info:
        validate_data(doc)
    return [f"{i.path}: {i.message} | {i.fix or ''}" for i in info.value.issues]


_CMD = "python t.py --lr {{tuning.lr}} --out {{outputs.metrics}}"
_SPACE = {"lr": {"type": "float", "min": 0.001, "max": 0.1}}
_OBJ = {"metric": "metrics.auc"}


@pytest.mark.parametrize(("step", "path", "text"), [
    ({"command": "python t.py --lr {{tuning.rate}} --out {{outputs.metrics}}"}, "steps[0].command",
     "placeholder {{tuning.rate}}: no search-space entry 'rate'"),
    ({"tuning": {"search_space": {"lr": {"type": "float", "min": 0.1, "max": 0.01}}, "objective": _OBJ}},
     "steps[0].tuning.search_space.lr", "no valid point: min 0.1 >= max 0.01"),
    ({"tuning": {"search_space": {"lr": {"type": "float", "min": 0, "max": 1, "scale": "log"}}, "objective": _OBJ}},
     "steps[0].tuning.search_space.lr", "no valid point on a log scale"),
    ({"tuning": {"search_space": {"lr": {"type": "categorical", "values": []}}, "objective": _OBJ}},
     "steps[0].tuning.search_space.lr", "no valid point: a categorical dimension needs at least one entry"),
    ({"tuning": {"search_space": _SPACE, "objective": _OBJ, "strategy": "grid"}},
     "steps[0].tuning", "'lr' is a continuous range without 'grid_step'"),
    ({"tuning": {"search_space": {"lr": {"type": "int", "min": 1, "max": 9}}, "objective": _OBJ, "strategy": "grid",
                 "max_trials": 4}}, "steps[0].tuning", "the grid has 9 points but max_trials is 4"),
    ({"tuning": {"search_space": _SPACE, "objective": _OBJ, "max_trials": 0}}, "steps[0].tuning.max_trials",
     "greater than or equal to 1"),
    ({"tuning": {"search_space": _SPACE, "objective": {"metric": "scores.auc"}}},
     "steps[0].tuning.objective.metric", "step 'train' has no output 'scores' | did you mean 'metrics.auc'?"),
    ({"outputs": {"metrics": "dataset"}}, "steps[0].tuning.objective.metric", "'metrics' is a dataset output"),
    ({"tuning": {"search_space": {**_SPACE, "depth": {"type": "int", "min": 2, "max": 8}}, "objective": _OBJ}},
     "steps[0].tuning.search_space.depth", "search-space entry 'depth' never reaches the step"),
])
def test_validation_errors_name_the_place_and_the_fix(step: dict[str, Any], path: str, text: str) -> None:
    base = {"name": "train", "command": _CMD, "outputs": {"metrics": "metrics"},
            "tuning": {"search_space": _SPACE, "objective": _OBJ}}
    errors = _errors({**base, **step})
    assert any(e.startswith(path + ":") and text in e for e in errors), errors


def test_parallel_trials_above_max_trials_is_fine_and_python_params_may_not_shadow_a_search() -> None:
    t = Tuning.model_validate({"search_space": _SPACE, "objective": _OBJ, "max_trials": 2, "parallel_trials": 8})
    assert (t.trials, t.parallel_trials) == (2, 8)
    errors = _errors({"name": "train", "python": "job:fit", "params": {"lr": 0.1}, "outputs": {"metrics": "metrics"},
                      "tuning": {"search_space": _SPACE, "objective": _OBJ}})
    assert any("'lr' is both a searched value and a fixed param" in e for e in errors), errors
    errors = _errors({"name": "plain", "command": "echo {{tuning.lr}}"})
    assert any("this step has no 'tuning' block" in e for e in errors), errors


def test_no_valid_point_points_at_the_file_the_stage_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(textwrap.dedent("""\
        apiVersion: cloudml/v1
        kind: Pipeline
        name: p
        steps:
          - name: train
            command: python t.py --depth {{tuning.depth}} --out {{outputs.metrics}}
            outputs: {metrics: metrics}
            tuning:
              search_space:
                depth: {type: int, min: 8, max: 3}
              objective: {metric: metrics.auc}
        """))
    with pytest.raises(SpecError) as info:
        cloudml.load(path)
    text = str(info.value)
    assert f"{path}:10:" in text and "step 'train'" in text and "no valid point" in text and "set min below max" in text


# -- the local backend -----------------------------------------------------------------------------------

def test_grid_runs_every_point_in_parallel_and_the_best_trial_becomes_the_step(local: Any, spec_dir: Path,
                                                                                tmp_path: Path) -> None:
    after = {"name": "use", "command": "cat {{inputs.m}}/model.txt", "inputs": {"m": "train.outputs.model"}}
    gate = {"name": "gate", "condition": 'train.outputs.metrics["score"] >= 0', "then": ["use"]}
    p = pipeline(grid(parallel_trials=3), params={"trace": str(tmp_path / "trace"), "nap": 0.3},
                 extra=[gate, after])  # a nap per trial, so parallel trials overlap even on a loaded machine
    h = run(local, p, spec_dir)
    assert h.status == "succeeded", h.error
    record = trials(h)
    assert len(record["trials"]) == 12 and all(t["status"] == "succeeded" for t in record["trials"])
    assert sorted((t["params"]["depth"], t["params"]["kernel"]) for t in record["trials"]) == sorted(
        (d, k) for d in range(1, 7) for k in ("rbf", "linear"))
    best = record["trials"][record["best"]]
    assert best["params"] == {"depth": 4, "kernel": "rbf"} and best["objective"] == 0
    assert h.metrics["train"]["tuning.best_objective"] == 0 and h.metrics["train"]["tuning.trials"] == 12
    assert h.metrics["train"]["score"] == 0  # the best trial's own metrics are the step's
    assert h.params["train"]["depth"] == 4 and h.params["train"]["kernel"] == "rbf"
    assert h.logs("use").strip() == "depth=4 kernel=rbf"
    assert 1 < max_overlap(spans(tmp_path / "trace")) <= 3


def test_parallel_trials_are_bounded_by_the_runners_workers(local: Any, spec_dir: Path, tmp_path: Path) -> None:
    p = pipeline(grid(depth=(1, 4), kernels=("rbf",), parallel_trials=4),
                 params={"trace": str(tmp_path / "trace"), "nap": 0.4})
    h = run(local, p, spec_dir, max_workers=2)
    assert h.status == "succeeded", h.error
    assert max_overlap(spans(tmp_path / "trace")) == 2


def test_failed_trials_are_recorded_and_tolerated(local: Any, spec_dir: Path) -> None:
    h = run(local, pipeline(grid(depth=(3, 4), kernels=("bad", "rbf"))), spec_dir)
    assert h.status == "succeeded", h.error
    record = trials(h)
    failed = [t for t in record["trials"] if t["status"] == "failed"]
    assert [t["params"]["kernel"] for t in failed] == ["bad", "bad"]
    assert all("bad kernel" in t["error"] for t in failed)
    summary = h.logs("train").splitlines()
    assert len(summary) == 4 and "objective=0 depth=4 kernel=rbf" in summary[3]
    assert h.logs("train", stream="stderr").count("bad kernel") == 2
    assert h.metrics["train"]["tuning.failed_trials"] == 2 and h.metrics["train"]["tuning.succeeded_trials"] == 2
    assert record["trials"][record["best"]]["params"] == {"depth": 4, "kernel": "rbf"}


def test_all_trials_failing_fails_the_step_with_the_reason(local: Any, spec_dir: Path) -> None:
    h = run(local, pipeline(grid(depth=(1, 2), kernels=("bad",))), spec_dir)
    assert h.status == "failed"
    assert "all 2 tuning trials failed" in (h.error or "") and "bad kernel" in (h.error or "")
    assert "trials/<n>/stderr.log" in (h.error or "")


def test_random_search_is_reproducible_with_its_seed_and_records_the_seed(local: Any, spec_dir: Path) -> None:
    space = {"search_space": {"depth": {"type": "int", "min": 1, "max": 8},
                              "kernel": {"type": "categorical", "values": ["rbf", "linear"]},
                              "lr": {"type": "float", "min": 1e-4, "max": 1e-1, "scale": "log"}},
             "objective": {"metric": "metrics.score"}, "max_trials": 4, "parallel_trials": 4}
    first = trials(run(local, pipeline({**space, "seed": 7}, cache=False), spec_dir))
    again = trials(run(local, pipeline({**space, "seed": 7}, cache=False), spec_dir))
    assert first["seed"] == again["seed"] == 7
    assert [t["params"] for t in first["trials"]] == [t["params"] for t in again["trials"]]
    unseeded = trials(run(local, pipeline(space, cache=False), spec_dir))
    assert isinstance(unseeded["seed"], int)  # drawn, and recorded so the search can be repeated
    t = Tuning.model_validate({**space, "seed": 7})
    assert [Sampler(t, 7).propose(i, []) for i in range(4)] == [x["params"] for x in first["trials"]]
    assert [Sampler(t, 8).propose(i, []) for i in range(4)] != [x["params"] for x in first["trials"]]


def test_bayesian_is_a_real_model_based_search() -> None:
    t = Tuning.model_validate({"search_space": {"x": {"type": "float", "min": 0, "max": 1},
                                                "k": {"type": "categorical", "values": ["a", "b", "c"]}},
                               "objective": {"metric": "m.loss", "goal": "minimize"}, "strategy": "bayesian",
                               "max_trials": 30})
    wins = 0
    for seed in range(6):
        found = {}
        for strategy in ("random", "bayesian"):
            s = Sampler(t.model_copy(update={"strategy": strategy}), seed)
            history: list[tuple[dict[str, Any], float]] = []
            for i in range(30):
                point = s.propose(i, history)
                history.append((point, (point["x"] - 0.73) ** 2 + (0 if point["k"] == "b" else 0.2)))
            found[strategy] = min(v for _, v in history)
        wins += found["bayesian"] <= found["random"]
    assert wins >= 5


def test_a_cached_tuning_step_keeps_its_trials_and_reruns_nothing(local: Any, spec_dir: Path, tmp_path: Path) -> None:
    p = pipeline(grid(depth=(3, 5), kernels=("rbf",)), params={"trace": str(tmp_path / "trace")})
    run(local, p, spec_dir)
    starts = len(list((tmp_path / "trace").glob("*.start")))
    h = run(local, p, spec_dir)
    assert h.step("train")["status"] == "cached"
    assert len(list((tmp_path / "trace").glob("*.start"))) == starts == 3
    assert h.metrics["train"]["tuning.trials"] == 3 and trials(h)["trials"][trials(h)["best"]]["params"]["depth"] == 4
    # a grown grid reuses the trials it already ran (per-trial cache entries)
    h = run(local, pipeline(grid(depth=(3, 6), kernels=("rbf",)), params={"trace": str(tmp_path / "trace")}), spec_dir)
    assert h.status == "succeeded" and len(list((tmp_path / "trace").glob("*.start"))) == 4
    assert [t["cached"] for t in trials(h)["trials"]] == [True, True, True, False]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_resumed_run_does_not_rerun_finished_trials(local: Any, spec_dir: Path, tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    trace.mkdir()
    (trace / "block").write_text("")  # the depth=4 trial hangs until the runner is killed
    p = pipeline(grid(depth=(1, 4), kernels=("rbf",), parallel_trials=2), params={"trace": str(trace)}, cache=False)
    (tmp_path / "p.yaml").write_text(cloudml.dumps(p))
    script = textwrap.dedent(f"""
        import cloudml, sys
        backend = cloudml.get_adapter("local", root={str(tmp_path / "state")!r})
        h = backend.run(cloudml.load({str(tmp_path / "p.yaml")!r}), spec_dir={str(spec_dir)!r}, in_process=False)
        print(h.id, flush=True)
        h.wait(120)
        """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert child.stdout is not None
        run_id = child.stdout.readline().strip()
        deadline = time.time() + 30
        while time.time() < deadline:
            row = local.get_run(run_id).step("train")
            done = json.loads(row["result"])["trials"] if row["result"] else []
            if len(done) == 3 and any(trace.glob("4-*.start")):
                break
            time.sleep(0.1)
        else:
            pytest.fail("the first three trials did not finish")
    finally:
        os.killpg(child.pid, signal.SIGKILL)  # the runner dies mid-step, like a killed terminal
        child.wait()
    orphans = [int(f.read_text()) for f in (tmp_path / "state").rglob("trials/*/pid")]
    alive = [pid for pid in orphans if _alive(pid)]
    assert alive, "the hanging trial outlives its runner"
    try:
        before = sorted(f.name.split("-")[0] for f in trace.glob("*.start"))
        (trace / "block").unlink()  # the orphan sleeps on regardless: only resume can end it
        h = local.resume(run_id, in_process=False)  # kills the orphaned trial before running it again
        deadline = time.time() + 10
        while any(_alive(pid) for pid in alive) and time.time() < deadline:
            time.sleep(0.05)
        assert not any(_alive(pid) for pid in alive), "resume left the orphaned trial running"
        h.wait(60)
    finally:
        for pid in orphans:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    assert h.status == "succeeded", h.error
    after = sorted(f.name.split("-")[0] for f in trace.glob("*.start"))
    assert before == ["1", "2", "3", "4"] and after == ["1", "2", "3", "4", "4"]  # only the unfinished trial again
    assert trials(h)["trials"][trials(h)["best"]]["params"] == {"depth": 4, "kernel": "rbf"}


# -- SageMaker -------------------------------------------------------------------------------------------

def sm(p: Pipeline, base: Path) -> dict[str, Any]:
    return compile_definition(p, SETTINGS, base)


def test_sagemaker_compiles_a_tuning_step_that_botocore_accepts(spec_dir: Path) -> None:
    space = {"search_space": {"lr": {"type": "float", "min": 1e-4, "max": 0.1, "scale": "log"},
                              "depth": {"type": "int", "min": 2, "max": 10},
                              "kernel": {"type": "categorical", "values": ["rbf", "linear"]}},
             "objective": {"metric": "metrics.score", "goal": "minimize"}, "strategy": "bayesian",
             "max_trials": 20, "parallel_trials": 4, "seed": 3}
    evaluate = {"name": "evaluate", "command": "python ev.py {{inputs.model}} {{outputs.report}}",
                "inputs": {"model": "train.outputs.model"}, "outputs": {"report": "metrics"}}
    register = {"name": "register", "register_model": {"model": "train.outputs.model", "group": "g",
                                                       "framework": "sklearn==1.2"}}
    d = sm(pipeline(space, kind="training", code=".", extra=[evaluate, register]), spec_dir)
    assert validate_definition(d) == []
    steps = {s["Name"]: s for s in d["Steps"]}
    tuning = steps["train"]
    assert tuning["Type"] == "Tuning"
    config = tuning["Arguments"]["HyperParameterTuningJobConfig"]
    assert config["Strategy"] == "Bayesian" and config["RandomSeed"] == 3
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 20, "MaxParallelTrainingJobs": 4}
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Minimize", "MetricName": "metrics.score"}
    assert config["ParameterRanges"] == {
        "IntegerParameterRanges": [{"Name": "depth", "MinValue": "2", "MaxValue": "10", "ScalingType": "Linear"}],
        "ContinuousParameterRanges": [{"Name": "lr", "MinValue": "0.0001", "MaxValue": "0.1",
                                       "ScalingType": "Logarithmic"}],
        "CategoricalParameterRanges": [{"Name": "kernel", "Values": ["rbf", "linear"]}]}
    definition = tuning["Arguments"]["TrainingJobDefinition"]
    assert definition["StaticHyperParameters"]["sagemaker_program"] == "cloudml_runtime.py"
    best = steps["evaluate"]["Arguments"]["ProcessingInputs"][0]["S3Input"]["S3Uri"]
    assert {"Get": "Steps.train.TrainingJobSummaries[0].TrainingJobName"} in best["Std:Join"]["Values"]
    assert best["Std:Join"]["Values"][-1].endswith("/output/model.tar.gz")
    assert steps["register"]["Arguments"]["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == best


def test_sagemaker_grid_is_categorical_and_counts_itself(spec_dir: Path) -> None:
    g = grid(depth=(1, 3))
    g["search_space"]["lr"] = {"type": "float", "min": 0.1, "max": 0.3, "grid_step": 0.1}
    d = sm(pipeline(g, kind="training"), spec_dir)
    assert validate_definition(d) == []
    config = d["Steps"][0]["Arguments"]["HyperParameterTuningJobConfig"]
    assert config["Strategy"] == "Grid" and config["ResourceLimits"] == {"MaxParallelTrainingJobs": 1}
    assert config["ParameterRanges"] == {"CategoricalParameterRanges": [
        {"Name": "depth", "Values": ["1", "2", "3"]}, {"Name": "kernel", "Values": ["rbf", "linear"]},
        {"Name": "lr", "Values": ["0.1", "0.2", "0.3"]}]}


def test_sagemaker_refuses_what_a_tuning_job_cannot_do(spec_dir: Path) -> None:
    with pytest.raises(UnsupportedFeatureError, match="set kind: training"):
        sm(pipeline(grid()), spec_dir)
    reads_metrics = {"name": "after", "command": "cat {{inputs.m}}", "inputs": {"m": "train.outputs.metrics"}}
    with pytest.raises(UnsupportedFeatureError, match="hands over only its best training job's model"):
        sm(pipeline(grid(), kind="training", extra=[reads_metrics]), spec_dir)


def test_the_objective_line_sagemaker_reads_is_printed_by_the_runtime_a_trial_runs(spec_dir: Path,
                                                                                tmp_path: Path) -> None:
    """Run a compiled trial the way the training toolkit would: cloudml_runtime.py with the hyperparameters."""
    d = sm(pipeline(grid(), kind="training", code="."), spec_dir)
    definition = d["Steps"][0]["Arguments"]["TrainingJobDefinition"]
    root = tmp_path / "container"  # stands in for / inside the container: /opt/ml/... -> <root>/opt/ml/...

    def here(value: str) -> str:
        return value.replace("/opt/ml/", f"{root}/opt/ml/")

    code = root / "opt/ml/input/data/cloudml_code"
    shutil.copytree(spec_dir, code)
    shutil.copy(Path(cloudml.__file__).parent / "runtime.py", code / "cloudml_runtime.py")
    hp = {k: here(v) for k, v in definition["StaticHyperParameters"].items()}
    hp.update({"depth": "3", "kernel": '"linear"'})  # as the service writes them (the SDK JSON-quotes strings)
    (root / "hyperparameters.json").write_text(json.dumps(hp))
    env = {**os.environ, **{k: here(v) for k, v in definition["Environment"].items()},
           "CLOUDML_HYPERPARAMETERS": str(root / "hyperparameters.json")}
    env.pop("PYTHONPATH", None)
    toolkit_args = ["--depth", "3", "--kernel", "linear"]  # the toolkit also passes them on the command line
    proc = subprocess.run([sys.executable, str(code / "cloudml_runtime.py"), *toolkit_args], env=env, cwd=code,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    regex = definition["AlgorithmSpecification"]["MetricDefinitions"][0]["Regex"]
    values = re.findall(regex, proc.stdout + proc.stderr)
    assert [float(v) for v in values] == [-(3 - 4) ** 2 - 1]
    assert (root / "opt/ml/model/model.txt").read_text() == "depth=3 kernel=linear"
