"""``code_paths`` on Vertex AI: the extra folders travel in the step's one bundle (the shared CodeBundle layout),
the runtime call names them with ``--code-path``, the client uploads that bundle, and the step really imports
from them when its executor runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cloudml
from cloudml.adapters.vertex import VertexAdapter
from cloudml.adapters.vertex.bundles import CodeBundle, build_bundle, bundle_uri, code_digest, members
from cloudml.adapters.vertex.compiler import LAUNCHER, compile_ir
from cloudml.adapters.vertex.validate import validate_ir
from cloudml.config import VertexSettings
from cloudml.errors import CompileError
from tests.fakes.vertex import VertexFake
from tests.unit.test_vertex_compiler import run_compiled

ROOT = "gs://cloudml-test/root"
SETTINGS = VertexSettings(project="my-project-42", location="europe-west4", pipeline_root=ROOT)


def spec_folder(base: Path, code_paths: str = "[../shared, lib]") -> Path:
    """A pipeline whose python step imports from two code_paths folders (one outside the spec folder)."""
    spec = base / "spec"
    for folder, name, text in ((spec / "src", "job.py", "import helpers, extra\n\ndef run(out):\n"
                                "    (out / 'v.txt').write_text(f'{helpers.VALUE}-{extra.NAME}')\n"),
                               (base / "shared", "helpers.py", "VALUE = 41\n"),
                               (spec / "lib", "extra.py", "NAME = 'lib'\n")):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    (spec / "pipeline.yaml").write_text(
        "kind: Pipeline\nname: paths-demo\ndefaults: {framework: sklearn==1.6}\nsteps:\n"
        f"  - {{name: fit, python: 'job:run', code: src, code_paths: {code_paths}, outputs: {{out: dataset}}}}\n"
        "  - {name: plain, python: 'job:run', code: src, outputs: {out: dataset}}\n")
    return spec


def argv(ir: dict[str, Any], step: str) -> list[str]:
    c = ir["deploymentSpec"]["executors"][f"exec-{step}"]["container"]
    return [*c["command"], *c.get("args", [])]


def bundle_of(spec: Path, step: str = "fit") -> CodeBundle:
    from cloudml.codebundle import step_bundle

    p = cloudml.load(spec / "pipeline.yaml")
    return step_bundle(spec, p.effective(next(s for s in p.task_steps() if s.name == step)))


def test_the_runtime_call_names_each_code_path_inside_the_bundle(tmp_path: Path) -> None:
    spec = spec_folder(tmp_path)
    ir = compile_ir(cloudml.load(spec / "pipeline.yaml"), SETTINGS, spec)
    assert validate_ir(ir) == []
    a = argv(ir, "fit")
    assert a[:3] == ["python3", "-c", LAUNCHER] and a[3] == bundle_uri(ROOT, code_digest(bundle_of(spec)))
    runtime = a[a.index("--function") - 2:]
    assert runtime[:10] == ["python3", "cloudml_runtime.py", "--function", "job:run", "--code", ".",
                            "--code-path", "./_cloudml_paths/0-shared", "--code-path", "./_cloudml_paths/1-lib"]
    assert "--code-path" not in argv(ir, "plain")  # a step without code_paths is compiled as before
    assert argv(ir, "plain")[3] == bundle_uri(ROOT, code_digest(spec / "src"))


def test_a_missing_code_paths_folder_is_a_compile_error_naming_step_and_folder(tmp_path: Path) -> None:
    spec = spec_folder(tmp_path, "[../shared, nope]")
    with pytest.raises(CompileError) as info:
        compile_ir(cloudml.load(spec / "pipeline.yaml"), SETTINGS, spec)
    assert "step 'fit'" in str(info.value) and "nope" in str(info.value) and "does not exist" in str(info.value)
    with pytest.raises(CompileError, match="code_paths"):
        cloudml.compile(spec / "pipeline.yaml", "vertex")


def test_the_bundle_changes_when_a_code_paths_file_changes(tmp_path: Path) -> None:
    spec = spec_folder(tmp_path)
    p = cloudml.load(spec / "pipeline.yaml")
    first = argv(compile_ir(p, SETTINGS, spec), "fit")[3]
    (tmp_path / "shared" / "helpers.py").write_text("VALUE = 42\n")
    assert argv(compile_ir(p, SETTINGS, spec), "fit")[3] != first


def test_the_compiled_step_imports_from_its_code_paths_when_it_runs(tmp_path: Path) -> None:
    """The executor as a KFP launcher would run it: the bundle fetched, unpacked, the runtime importing helpers."""
    spec = spec_folder(tmp_path)
    ir = compile_ir(cloudml.load(spec / "pipeline.yaml"), None, spec)
    root = tmp_path / "root"
    uri = argv(ir, "fit")[3].replace("{{$.pipeline_root}}", str(root))
    Path(uri).parent.mkdir(parents=True)
    Path(uri).write_bytes(build_bundle(bundle_of(spec)))
    for c in ir["deploymentSpec"]["executors"].values():
        c["container"]["args"] = [x.replace("{{$.pipeline_root}}", str(root)) for x in c["container"]["args"]]
    proc = run_compiled(ir, "fit", tmp_path / "kfp")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "kfp" / "outputs" / "artifacts" / "out" / "v.txt").read_text() == "41-lib"


# -- the client uploads the bundle with the extra folders -------------------------------------------------
@pytest.fixture(scope="module")
def fake() -> Iterator[VertexFake]:
    with VertexFake() as f:
        yield f


@pytest.fixture(autouse=True)
def _offline_env(fake: VertexFake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "my-project-42")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake.url)


def test_the_uploaded_bundle_holds_the_code_paths_folders(fake: VertexFake, tmp_path: Path) -> None:
    from google.auth.credentials import AnonymousCredentials

    from cloudml.adapters.vertex.client import VertexClient

    spec = spec_folder(tmp_path)
    a = VertexAdapter(VertexSettings(project=fake.project, location=fake.location, pipeline_root=ROOT,
                                     service_account="runner@my-project-42.iam.gserviceaccount.com",
                                     api_endpoint=fake.url))
    a._client = VertexClient(a.settings, credentials=AnonymousCredentials(), retry_delay=0.01)
    run = a.run(cloudml.load(spec / "pipeline.yaml"), spec_dir=str(spec))
    fit = bundle_uri(ROOT, code_digest(bundle_of(spec)))
    plain = bundle_uri(ROOT, code_digest(bundle_of(spec, "plain")))
    assert fit != plain
    files = members(fake.objects[fit])
    assert set(files) == {"job.py", "cloudml_runtime.py", "_cloudml_paths/0-shared/helpers.py",
                          "_cloudml_paths/1-lib/extra.py"}
    assert files["_cloudml_paths/0-shared/helpers.py"] == b"VALUE = 41\n"
    assert set(members(fake.objects[plain])) == {"job.py", "cloudml_runtime.py"}
    sent = json.dumps(fake.job(run.id).body["pipelineSpec"]["deploymentSpec"])
    assert fit in sent and plain in sent
