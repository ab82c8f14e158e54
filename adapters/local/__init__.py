"""The local backend: runs the same spec for real on one machine (processes, files, SQLite, HTTP).

Compilation is complete; running pipelines and serving endpoints arrive with the local-backend
issues and raise a clear UnsupportedFeatureError until then.

Example:
    >>> import cloudml
    >>> a = cloudml.get_adapter("local")
    >>> a.name, a.capabilities.supports("condition")
    ('local', True)
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from cloudml.adapter import Adapter, Capabilities, Compiled
from cloudml.config import LocalSettings
from cloudml.spec.pipeline import Pipeline

__all__ = ["LocalAdapter", "LocalOptions"]


class LocalOptions(BaseModel):
    """``backend_options.local``: per-spec knobs for the local backend."""

    model_config = ConfigDict(extra="forbid")

    max_workers: int | None = None
    fail_fast: bool = False
    in_process: bool | None = None


class LocalAdapter(Adapter):
    """Runs pipelines as local processes and serves endpoints on 127.0.0.1."""

    name = "local"
    extra = None
    requires = ()
    description = "runs on this machine: processes, files, SQLite, HTTP endpoints"
    options_model: ClassVar[type[BaseModel] | None] = LocalOptions
    capabilities = Capabilities(
        "local",
        {
            "deploy.existing_alarm": ("never", "cloud alarms cannot be read locally; use a neutral alarm"),
        },
    )

    def __init__(self, settings: LocalSettings | None = None) -> None:
        super().__init__(settings or LocalSettings())

    def compile(self, pipeline: Pipeline) -> Compiled:
        """The local execution plan (see :mod:`cloudml.adapters.local.compiler`)."""
        from cloudml.adapters.local.compiler import compile_plan

        return Compiled("local", pipeline.name, compile_plan(pipeline), "json")
