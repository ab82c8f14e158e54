"""``code_paths`` on Azure ML: a step ships one content-addressed bundle (cloudml.codebundle) as its ``code``.

The bundle is written under the pipeline folder's ``.cloudml/build/azureml/code/<digest>/``; python steps
and sweep trials get ``--code-path ./_cloudml_paths/<i>-<name>``. Uploads go through the real ``MLClient``
against tests/fakes/azureml.py on 127.0.0.1, and the compiled command is run for real in the bundle.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cloudml
from cloudml.adapters.azureml import AzureMLAdapter
from cloudml.adapters.azureml.compiler import BUILD_DIR
from cloudml.adapters.azureml.validate import validate_job
from cloudml.config import AzureMLSettings
from cloudml.errors import CompileError
from cloudml.spec.pipeline import Pipeline

pytestmark = pytest.mark.filterwarnings("ignore::marshmallow.warnings.Marshmallow4Warning")


def project(base: Path, code_paths: str = "[../shared/lib]") -> Path:
    """pipeline/ (src/job.py imports helpers) and shared/lib/helpers.py beside it; returns the pipeline file."""
    (base / "pipeline" / "src").mkdir(parents=True, exist_ok=True)
    (base / "shared" / "lib").mkdir(parents=True, exist_ok=True)
    (base / "shared" / "lib" / "helpers.py").write_text("FACTOR = 7\n")
    (base / "pipeline" / "src" / "job.py").write_text(
        "import helpers\n\ndef run(n: int, out):\n    (out / 'n.txt').write_text(str(n * helpers.FACTOR))\n")
    spec = base / "pipeline" / "pipeline.yaml"
    spec.write_text(
        "kind: Pipeline\nname: paths-demo\nparameters: {n: {type: int, default: 3}}\n"
        "backend_options: {azureml: {compute: cpu-cluster}}\n"
        f"defaults: {{image: 'python:3.11-slim', code: src, code_paths: {code_paths}}}\n"
        "steps:\n"
        "  - {name: fit, python: 'job:run', params: {n: '{{params.n}}'}, outputs: {out: dataset}}\n"
        "  - {name: tune, python: 'job:run', params: {}, outputs: {out: dataset, m: metrics},\n"
        "     tuning: {search_space: {n: {type: int, min: 1, max: 3}}, objective: {metric: m.auc}, max_trials: 2}}\n")
    return spec


def test_a_step_with_code_paths_ships_one_bundle_and_the_runtime_gets_code_path(tmp_path: Path) -> None:
    spec = project(tmp_path)
    job = cloudml.compile(spec, "azureml").document
    comp = job["jobs"]["fit"]["component"]
    assert comp["code"].startswith(f"{BUILD_DIR}/") and len(comp["code"].rsplit("/", 1)[1]) == 16
    bundle = spec.parent / comp["code"]
    assert sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()) == [
        "_cloudml_paths/0-lib/helpers.py", "cloudml_runtime.py", "job.py"]
    words = shlex.split(comp["command"].replace("${{", "<").replace("}}", ">"))
    assert words[:8] == ["python", "cloudml_runtime.py", "--function", "job:run", "--code", ".",
                         "--code-path", "./_cloudml_paths/0-lib"]
    trial = job["jobs"]["tune"]["trial"]
    assert trial["code"] == comp["code"] and "--code-path ./_cloudml_paths/0-lib" in trial["command"]
    assert validate_job(job) == []  # cloudml's reference checks, then azure-ai-ml's load_job


def test_the_bundle_is_content_addressed(tmp_path: Path) -> None:
    spec = project(tmp_path)
    first = cloudml.compile(spec, "azureml").document["jobs"]["fit"]["component"]["code"]
    assert cloudml.compile(spec, "azureml").document["jobs"]["fit"]["component"]["code"] == first
    (tmp_path / "shared" / "lib" / "helpers.py").write_text("FACTOR = 8\n")
    second = cloudml.compile(spec, "azureml").document["jobs"]["fit"]["component"]["code"]
    assert second != first
    assert (spec.parent / second / "_cloudml_paths" / "0-lib" / "helpers.py").read_text() == "FACTOR = 8\n"


def test_the_compiled_command_imports_from_the_code_path_for_real(tmp_path: Path) -> None:
    spec = project(tmp_path)
    comp = cloudml.compile(spec, "azureml").document["jobs"]["fit"]["component"]
    out = tmp_path / "out"
    out.mkdir()
    command = comp["command"].replace("${{inputs.n}}", "3").replace("${{outputs.out}}", str(out))
    words = shlex.split(command)
    proc = subprocess.run([sys.executable, "-S", *words[1:]], cwd=spec.parent / comp["code"], capture_output=True,
                          text=True, timeout=60)  # -S: nothing but the bundle on the path
    assert proc.returncode == 0, proc.stderr
    assert (out / "n.txt").read_text() == "21"


def test_a_missing_code_paths_folder_names_the_step_and_the_folder(tmp_path: Path) -> None:
    spec = project(tmp_path, code_paths="[../nowhere]")
    with pytest.raises(CompileError) as info:
        cloudml.compile(spec, "azureml")
    assert "step 'fit'" in str(info.value) and "nowhere" in str(info.value)
    assert info.value.hint and "relative to the pipeline file" in info.value.hint


def test_code_paths_is_supported() -> None:
    assert AzureMLAdapter.capabilities.supports("step.code_paths")


# -- the upload, through the real SDK against the fake ---------------------------------------------------


@pytest.fixture(scope="module")
def fake() -> Iterator[Any]:
    pytest.importorskip("azure.ai.ml")
    from tests.fakes.azureml import azure_test_env, azureml_fake

    with azureml_fake() as server, azure_test_env(server):
        server.add_compute("cpu-cluster")
        yield server
        assert server.outbound == [], "a request tried to leave 127.0.0.1"


def test_the_uploaded_code_holds_the_code_paths_folder(fake: Any, tmp_path: Path) -> None:
    from tests.fakes.azureml import RESOURCE_GROUP, SUBSCRIPTION, WORKSPACE, FakeCredential, cloud_kwargs

    spec = project(tmp_path)
    adapter = AzureMLAdapter(AzureMLSettings(subscription_id=SUBSCRIPTION, resource_group=RESOURCE_GROUP,
                                             workspace=WORKSPACE))
    adapter.client(FakeCredential(), **cloud_kwargs(fake))
    before = set(fake.code.files())
    pipeline = cloudml.load(spec)
    assert isinstance(pipeline, Pipeline)
    run = adapter.run(pipeline, spec_dir=str(spec.parent), wait=True, poll=0.01, timeout=60)
    assert run.status == "succeeded"
    uploaded = {k.split("/", 1)[1]: v for k, v in fake.code.files().items() if k not in before}
    helpers = [v for k, v in uploaded.items() if k.endswith("/_cloudml_paths/0-lib/helpers.py")]
    assert helpers and set(helpers) == {b"FACTOR = 7\n"}
    assert any(k.endswith("/job.py") for k in uploaded) and any(k.endswith("/cloudml_runtime.py") for k in uploaded)
