"""``code_paths``: more code folders a step imports from, on the local backend and in ``cloudml init``."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import cloudml
from cloudml.cli.init import copy_blueprint
from cloudml.errors import CompileError, SpecError
from cloudml.spec.pipeline import Pipeline

SPEC = """
apiVersion: cloudml/v1
kind: Pipeline
name: paths
defaults: {code: src, code_paths: [../shared/lib]}
steps:
  - name: work
    python: job:run
    outputs: {m: metrics}
"""


def _tree(tmp_path: Path, value: int = 1) -> Path:
    spec_dir = tmp_path / "proj"
    (spec_dir / "src").mkdir(parents=True, exist_ok=True)
    (tmp_path / "shared" / "lib").mkdir(parents=True, exist_ok=True)
    (spec_dir / "src" / "job.py").write_text(textwrap.dedent("""
        import helpers

        def run():
            return {"value": helpers.VALUE, "shared": int("shared" in helpers.__file__)}
    """))
    (tmp_path / "shared" / "lib" / "helpers.py").write_text(f"VALUE = {value}\n")
    return spec_dir


def _run(tmp_path: Path, spec_dir: Path, **options: object) -> dict[str, object]:
    spec = cloudml.loads(SPEC)
    assert isinstance(spec, Pipeline)
    backend = cloudml.get_adapter("local", root=str(tmp_path / "state"))
    handle = backend.run(spec, spec_dir=str(spec_dir), **options)
    handle.wait(60)
    assert handle.status == "succeeded", handle.error
    return dict(handle.metrics["work"])


@pytest.mark.parametrize("in_process", [True, False])
def test_a_step_imports_from_its_code_paths_and_reruns_when_they_change(tmp_path: Path, in_process: bool) -> None:
    spec_dir = _tree(tmp_path)
    first = _run(tmp_path, spec_dir, in_process=in_process)
    assert first["value"] == 1 and first["shared"] == 1
    (tmp_path / "shared" / "lib" / "helpers.py").write_text("VALUE = 2\n")  # the shared code changed
    assert _run(tmp_path, spec_dir, in_process=in_process)["value"] == 2  # not a cache hit, not a stale import


def test_the_code_folder_wins_over_a_code_path(tmp_path: Path) -> None:
    spec_dir = _tree(tmp_path)
    (spec_dir / "src" / "helpers.py").write_text("VALUE = 7\n")  # a pinned copy beside the step
    assert _run(tmp_path, spec_dir, in_process=False)["value"] == 7


def test_a_missing_code_paths_folder_stops_the_run_before_it_starts(tmp_path: Path) -> None:
    spec_dir = tmp_path / "proj"
    (spec_dir / "src").mkdir(parents=True)
    spec = cloudml.loads(SPEC)
    assert isinstance(spec, Pipeline)
    backend = cloudml.get_adapter("local", root=str(tmp_path / "state"))
    with pytest.raises(CompileError, match=r"step 'work': code_paths folder .*shared/lib does not exist") as info:
        backend.run(spec, spec_dir=str(spec_dir))
    assert "relative to the pipeline file" in (info.value.hint or "")
    assert not (tmp_path / "state" / "runs").exists() or not any((tmp_path / "state" / "runs").iterdir())


@pytest.mark.parametrize("bad", ["/abs/lib", "s3://bucket/lib", "C:/lib"])
def test_code_paths_are_relative_folders(bad: str) -> None:
    with pytest.raises(SpecError, match="not a relative folder"):
        cloudml.loads(SPEC.replace("../shared/lib", bad))



def test_init_brings_the_shared_code_into_the_copy(tmp_path: Path) -> None:
    target = tmp_path / "mine"
    files = {str(f) for f in copy_blueprint("continuous-training", target)}
    assert "shared/tabular-classification/src/tabular_steps.py" in files
    spec = cloudml.load(target / "pipeline.yaml")
    assert isinstance(spec, Pipeline)
    assert spec.defaults.code_paths == ["shared/tabular-classification/src"]
    assert (target / "shared" / "tabular-classification" / "src" / "tabular_steps.py").is_file()
    assert "../tabular-classification" not in (target / "pipeline.yaml").read_text()


def test_azureml_says_where_it_cannot_write_the_bundle(tmp_path: Path) -> None:
    spec_dir = _tree(tmp_path)
    (spec_dir / ".cloudml").write_text("a file where the build folder goes")  # the bundle folder cannot be made
    adapter = cloudml.get_adapter("azureml")
    adapter.base_dir = spec_dir
    spec = cloudml.loads(SPEC.replace("defaults: {", "defaults: {image: python:3.11, "))
    with pytest.raises(CompileError, match=r"step 'work': cannot write its code bundle") as info:
        adapter.compile(spec)  # type: ignore[arg-type]
    assert "cloudml init" in (info.value.hint or "")
