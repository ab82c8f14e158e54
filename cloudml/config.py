"""Configuration: which backend, and each backend's settings.

Precedence, lowest to highest:

1. built-in defaults (``backend: local``, no file needed);
2. ``cloudml.yaml`` found by searching upward from the working directory (or ``CLOUDML_CONFIG``);
3. environment: ``CLOUDML_BACKEND`` and ``CLOUDML_<SECTION>_<SETTING>``, e.g.
   ``CLOUDML_SAGEMAKER_REGION`` or ``CLOUDML_LOCAL_ROOT``;
4. code: ``load_config(overrides=...)`` or ``cloudml.get_adapter(name, **settings)``.

Example ``cloudml.yaml``::

    backend: sagemaker
    sagemaker: {region: eu-west-1, role_arn: "arn:aws:iam::123456789012:role/ml", bucket: my-ml}
    local: {root: .cloudml, max_workers: 4}

Example:
    >>> from cloudml.config import load_config
    >>> cfg = load_config(env={"CLOUDML_BACKEND": "vertex", "CLOUDML_VERTEX_PROJECT": "my-project"},
    ...                   search_from=None)
    >>> cfg.backend, cfg.vertex.project, cfg.vertex.location
    ('vertex', 'my-project', 'us-central1')
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cloudml.errors import ConfigError

__all__ = [
    "CONFIG_FILENAME",
    "AzureMLSettings",
    "Config",
    "LocalSettings",
    "SageMakerSettings",
    "VertexSettings",
    "find_config_file",
    "load_config",
]

CONFIG_FILENAME = "cloudml.yaml"


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LocalSettings(_Settings):
    """The local backend: where state lives and how much runs at once."""

    root: str = Field(".cloudml", description="folder for artifacts, metadata and endpoints")
    max_workers: int | None = Field(None, ge=1, le=256, description="parallel steps (default: CPU count)")
    in_process: bool = Field(False, description="run Python steps inside this process (fast tests)")
    host: str = Field("127.0.0.1", description="address endpoints bind to; never 0.0.0.0 unless you ask")
    port: int = Field(0, ge=0, le=65535, description="gateway port for endpoints (0: any free port)")
    tracking: Literal["none", "mlflow"] = "none"
    mlflow_tracking_uri: str | None = None


class SageMakerSettings(_Settings):
    """AWS: region, execution role, and where artifacts go in S3."""

    region: str | None = Field(None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    role_arn: str | None = Field(None, pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
    bucket: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    prefix: str = "cloudml"
    endpoint_url: str | None = Field(None, description="override the API endpoint (tests, VPC endpoints)")
    state_dir: str = Field(".cloudml", description="folder keeping the rollout controller's state for this cloud's endpoints")


class VertexSettings(_Settings):
    """GCP: project, location, pipeline root and the service account runs use."""

    project: str | None = Field(None, pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
    location: str = "us-central1"
    pipeline_root: str | None = Field(None, pattern=r"^gs://.+")
    service_account: str | None = None
    api_endpoint: str | None = Field(None, description="override the API endpoint (tests)")
    monitoring_endpoint: str | None = Field(None, description="Cloud Monitoring gRPC host:port (tests, private "
                                            "endpoints); a 127.0.0.1 address is reached without TLS")
    state_dir: str = Field(".cloudml", description="folder keeping the rollout controller's state for this cloud's endpoints")


class AzureMLSettings(_Settings):
    """Azure: subscription, resource group, workspace and default compute."""

    subscription_id: str | None = None
    resource_group: str | None = None
    workspace: str | None = None
    compute: str | None = None
    enable_preview_conditions: bool = Field(
        False, description="compile conditions to Azure ML's private-preview if_else nodes"
    )
    state_dir: str = Field(".cloudml", description="folder keeping the rollout controller's state for this cloud's endpoints")


_SECTIONS: dict[str, type[_Settings]] = {
    "local": LocalSettings,
    "sagemaker": SageMakerSettings,
    "vertex": VertexSettings,
    "azureml": AzureMLSettings,
}


class Config(BaseModel):
    """The whole configuration. ``source`` is the file it came from, if any."""

    model_config = ConfigDict(extra="allow")

    backend: str = "local"
    local: LocalSettings = Field(default_factory=LocalSettings)
    sagemaker: SageMakerSettings = Field(default_factory=SageMakerSettings)
    vertex: VertexSettings = Field(default_factory=VertexSettings)
    azureml: AzureMLSettings = Field(default_factory=AzureMLSettings)
    source: str | None = Field(None, exclude=True)

    def settings_for(self, backend: str, **overrides: Any) -> Any:
        """The settings model for ``backend`` with ``overrides`` applied (validated).

        Third-party backends get their ``cloudml.yaml`` section as a plain dict.

        Example:
            >>> Config().settings_for("local", root="/tmp/x").root
            '/tmp/x'
        """
        if backend in _SECTIONS:
            current: BaseModel = getattr(self, backend)
            data = {**current.model_dump(exclude_unset=True), **overrides}
            try:
                return _SECTIONS[backend].model_validate(data)
            except ValidationError as e:
                raise ConfigError(_format(e, f"settings for {backend}"), hint="check the names above") from None
        extra = (self.model_extra or {}).get(backend) or {}
        return {**extra, **overrides}

    @property
    def extra_sections(self) -> dict[str, Any]:
        """Sections for third-party backends (kept as plain dicts)."""
        return dict(self.model_extra or {})


def _format(err: ValidationError, where: str) -> str:
    lines = [f"invalid {where}:"]
    for e in err.errors(include_url=False):
        loc = ".".join(str(x) for x in e["loc"])
        msg = "unknown setting" if e["type"] == "extra_forbidden" else e["msg"].removeprefix("Value error, ")
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)


def find_config_file(start: str | os.PathLike[str] | None = None) -> Path | None:
    """The nearest ``cloudml.yaml`` in ``start`` or any parent folder.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()); (d / "cloudml.yaml").write_text("backend: local\\n")
        15
        >>> (d / "sub").mkdir(); find_config_file(d / "sub") == d / "cloudml.yaml"
        True
    """
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_FILENAME
        if candidate.is_file():
            return candidate
    return None


def _env_layer(env: Mapping[str, str]) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    if env.get("CLOUDML_BACKEND"):
        layer["backend"] = env["CLOUDML_BACKEND"]
    for section, model in _SECTIONS.items():
        for fname in model.model_fields:
            key = f"CLOUDML_{section.upper()}_{fname.upper()}"
            if key in env:
                layer.setdefault(section, {})[fname] = env[key]
    return layer


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in top.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def load_config(
    *,
    search_from: str | os.PathLike[str] | Literal[False] | None = False,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Config:
    """Build the configuration from file, environment and code overrides (in that order).

    ``search_from`` is where the upward search starts (default: the working directory; ``None``
    disables the file). ``env`` defaults to ``os.environ``.

    Example:
        >>> load_config(env={}, search_from=None, overrides={"local": {"max_workers": 2}}).local.max_workers
        2
    """
    from cloudml.loader import parse_yaml

    env = os.environ if env is None else env
    file: Path | None = None
    if path is not None:
        file = Path(path)
    elif env.get("CLOUDML_CONFIG"):
        file = Path(env["CLOUDML_CONFIG"])
    elif search_from is not None:
        file = find_config_file(None if search_from is False else search_from)
    data: dict[str, Any] = {}
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"cannot read config {file}: {e}", hint="check CLOUDML_CONFIG or the file") from None
        from cloudml.errors import SpecError

        try:
            parsed = parse_yaml(text, str(file)).data
        except SpecError as e:
            raise ConfigError(str(e), hint=f"fix {file}") from None
        if parsed is not None and not isinstance(parsed, dict):
            raise ConfigError(f"{file}: expected a mapping like 'backend: local'", hint=f"fix {file}")
        data = parsed or {}
    data = _merge(data, _env_layer(env))
    if overrides:
        data = _merge(data, {k: v for k, v in overrides.items() if v is not None})
    try:
        cfg = Config.model_validate(data)
    except ValidationError as e:
        where = str(file) if file else "configuration"
        raise ConfigError(_format(e, where), hint="see docs/configuration.md for every setting") from None
    cfg.source = str(file) if file else None
    return cfg
