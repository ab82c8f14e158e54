"""Config: file found upward, env overrides file, code overrides both; clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

import cloudml
from cloudml.config import find_config_file, load_config
from cloudml.errors import AdapterNotFoundError, ConfigError


def test_default_is_local_without_any_config(tmp_path: Path) -> None:
    cfg = load_config(env={}, search_from=tmp_path)
    assert cfg.backend == "local" and cfg.source is None
    assert cfg.local.root == ".cloudml" and cfg.local.host == "127.0.0.1"


def test_file_is_found_upward(tmp_path: Path) -> None:
    (tmp_path / "cloudml.yaml").write_text("backend: sagemaker\nsagemaker: {region: eu-west-1, bucket: my-ml}\n")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert find_config_file(deep) == tmp_path / "cloudml.yaml"
    cfg = load_config(env={}, search_from=deep)
    assert cfg.backend == "sagemaker" and cfg.sagemaker.region == "eu-west-1"
    assert cfg.source == str(tmp_path / "cloudml.yaml")


def test_env_overrides_file_and_code_overrides_env(tmp_path: Path) -> None:
    (tmp_path / "cloudml.yaml").write_text("backend: sagemaker\nlocal: {max_workers: 2}\n")
    env = {"CLOUDML_BACKEND": "vertex", "CLOUDML_LOCAL_MAX_WORKERS": "3", "CLOUDML_VERTEX_PROJECT": "proj-123"}
    cfg = load_config(env=env, search_from=tmp_path)
    assert cfg.backend == "vertex" and cfg.local.max_workers == 3 and cfg.vertex.project == "proj-123"
    cfg = load_config(env=env, search_from=tmp_path, overrides={"backend": "local", "local": {"max_workers": 8}})
    assert cfg.backend == "local" and cfg.local.max_workers == 8


def test_cwd_search_and_env_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cloudml.yaml").write_text("backend: azureml\nazureml: {workspace: ws1}\n")
    monkeypatch.chdir(tmp_path)
    assert load_config(env={}).backend == "azureml"
    monkeypatch.setenv("CLOUDML_BACKEND", "local")
    assert load_config().backend == "local"


def test_explicit_config_path_variable(tmp_path: Path) -> None:
    f = tmp_path / "other.yaml"
    f.write_text("backend: vertex\n")
    assert load_config(env={"CLOUDML_CONFIG": str(f)}).backend == "vertex"


@pytest.mark.parametrize(
    "text,needle",
    [
        ("sagemaker: {regoin: x}\n", "sagemaker.regoin: unknown setting"),
        ("sagemaker: {role_arn: not-an-arn}\n", "sagemaker.role_arn"),
        ("local: {max_workers: zero}\n", "local.max_workers"),
        ("- a list\n", "expected a mapping"),
        ("backend: [\n", "YAML syntax"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path: Path, text: str, needle: str) -> None:
    (tmp_path / "cloudml.yaml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(env={}, search_from=tmp_path)
    assert needle in str(info.value)


def test_settings_for_applies_code_overrides() -> None:
    cfg = load_config(env={}, search_from=None)
    assert cfg.settings_for("local", root="/tmp/x").root == "/tmp/x"
    with pytest.raises(ConfigError, match="max_workers"):
        cfg.settings_for("local", max_workers=0)


def test_third_party_sections_are_kept_as_dicts(tmp_path: Path) -> None:
    (tmp_path / "cloudml.yaml").write_text("backend: local\nmycloud: {zone: z1}\n")
    cfg = load_config(env={}, search_from=tmp_path)
    assert cfg.settings_for("mycloud", extra=1) == {"zone": "z1", "extra": 1}


def test_get_adapter_uses_configured_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cloudml.yaml").write_text(f"backend: local\nlocal: {{root: {tmp_path / 'state'}}}\n")
    monkeypatch.chdir(tmp_path)
    adapter = cloudml.get_adapter()
    assert adapter.name == "local" and adapter.settings.root == str(tmp_path / "state")
    assert cloudml.get_adapter("local", root="/x").settings.root == "/x"
    monkeypatch.setenv("CLOUDML_BACKEND", "nope")
    with pytest.raises(AdapterNotFoundError, match="registered: azureml, local, sagemaker, vertex"):
        cloudml.get_adapter()
