"""The Azure ML adapter: pipeline-job runs; model registry and managed online endpoints not built yet.

The compiler (spec -> Azure ML pipeline job, CLI v2 schema) is pure and needs no SDK; what it
cannot express is declared in the capabilities and refused by name at compile time. Runs go through
azure-ai-ml's ``MLClient`` (``pip install 'cloudml[azure]'``, see client.py): submit, status, steps,
wait, cancel. The model registry and managed online endpoints are still to come (issue 7), so
``deploy`` and the registry calls raise UnsupportedFeatureError naming the operation.

Example:
    >>> import cloudml
    >>> cloudml.registry.adapter_class("azureml").extra
    'azure'
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from cloudml.adapter import Adapter, Capabilities, Compiled
from cloudml.errors import UnsupportedFeatureError
from cloudml.spec.pipeline import Pipeline

__all__ = ["AzureMLAdapter", "Options"]

_CLIENT = "Azure ML online endpoints are not built yet (issue 7); runs are"


class Options(BaseModel):
    """``backend_options.azureml``: settings only the Azure ML adapter understands."""

    model_config = ConfigDict(extra="forbid")

    compute: str | None = Field(None, description="compute cluster name, or 'serverless'")
    instance_type: str | None = Field(None, description="default VM size, e.g. Standard_DS3_v2")


class AzureMLAdapter(Adapter):
    """Azure ML pipeline jobs, model registry and managed online endpoints."""

    name = "azureml"
    extra = "azure"
    requires = ("azure-ai-ml", "azure-identity")
    description = "Azure ML pipeline jobs (compile and run; registry and endpoints not built yet)"
    options_model: ClassVar[type[BaseModel] | None] = Options
    capabilities = Capabilities(
        "azureml",
        {
            "step.secrets": ("notyet", "command jobs have no secret injection; read Key Vault in the step"),
            "step.cache_expiry": ("notyet", "Azure ML reuse has no expiry"),
            "step.tuning": ("notimpl", "Azure ML pipeline jobs have sweep nodes; compiling a tuning step to one "
                            "is not built yet"),
            "step.depends_on": ("notyet", "Azure ML orders nodes by their data bindings only"),
            "input.parameter": ("notimpl", "a parameter holding an input URI is not built yet"),
            "condition": ("notimpl", "if_else nodes are private preview; the opt-in is not built yet"),
            "condition.or": ("notimpl", "if_else nodes are private preview; the opt-in is not built yet"),
            "register_model": ("notimpl", "registering from inside an Azure ML pipeline is not built yet"),
            "schedule": ("notimpl", "Azure ML job schedules are not built yet"),
            "deploy.existing_alarm": ("notimpl", "reading Azure Monitor alerts is not built yet"),
            "deploy.capture": ("notimpl", "data collection is not built yet"),
            "deploy.autoscale": ("notimpl", "autoscale settings are not built yet"),
        },
    )

    def __init__(self, settings: Any = None) -> None:
        from cloudml.config import AzureMLSettings

        super().__init__(settings or AzureMLSettings())

    def compile(self, pipeline: Pipeline) -> Compiled:
        """The Azure ML pipeline job (CLI v2 schema) as YAML."""
        from cloudml.adapter import pipeline_features
        from cloudml.adapters.azureml.compiler import compile_job

        self.check_supported(pipeline_features(pipeline))
        return Compiled("azureml", pipeline.name, compile_job(pipeline, self.settings), "yaml")

    def validate_compiled(self, compiled: Compiled) -> list[str]:
        """Reference checks azure-ai-ml misses, then ``load_job`` when the SDK is installed."""
        if compiled.document.get("type") != "pipeline":
            return []
        from cloudml.adapters.azureml.validate import validate_job

        return validate_job(compiled.document)

    def _client_missing(self, operation: str) -> UnsupportedFeatureError:
        return UnsupportedFeatureError(self.name, None, operation, _CLIENT)

    # -- the client (azure-ai-ml) ----------------------------------------------------------------------
    def client(self, credential: Any = None, **mlclient_kwargs: Any) -> Any:
        """The azure-ai-ml client (cached); AdapterNotInstalledError without the azure extra.

        Arguments are used the first time only (or when given again): a credential and ``MLClient``
        keyword arguments such as ``cloud_metadata`` or ``transport``.

        Example:
            >>> from azure.identity import AzureCliCredential  # doctest: +SKIP
            >>> backend.client(AzureCliCredential()).workspace  # doctest: +SKIP
            'my-workspace'
        """
        self.require()
        from cloudml.adapters.azureml.client import AzureMLClient

        if getattr(self, "_client", None) is None or credential is not None or mlclient_kwargs:
            self._client = AzureMLClient(self.settings, credential, **mlclient_kwargs)
        return self._client

    def run(self, pipeline: Pipeline, parameters: dict[str, Any] | None = None, **options: Any) -> Any:
        """Compile, check ``parameters`` against the spec, submit the pipeline job; returns an AzureMLRun.

        Options: ``wait=True`` waits for the end (``timeout``, ``poll`` seconds), ``name`` sets the job
        name, ``experiment_name`` the experiment, ``spec_dir`` where relative code folders start.

        Example:
            >>> backend = cloudml.get_adapter("azureml", subscription_id="...", resource_group="rg",
            ...                               workspace="ws")  # doctest: +SKIP
            >>> backend.run(cloudml.load("pipeline.yaml"), {"n_estimators": 300}, wait=True).status  # doctest: +SKIP
            'succeeded'
        """
        from pathlib import Path

        values = pipeline.resolve_parameters(parameters)  # unknown or bad values: SpecError, no request sent
        if any(p.default is None for p in pipeline.parameters.values()):
            # a pipeline job carries a value for every input: at submit time the run's values are known
            pipeline = pipeline.model_copy(update={"parameters": {
                n: p if p.default is not None else p.model_copy(update={"default": values[n]})
                for n, p in pipeline.parameters.items()}})
        document = self.compile(pipeline).document
        base_dir = Path(options["spec_dir"]) if options.get("spec_dir") else self.base_dir
        handle = self.client().submit(document, values, base_dir=base_dir, name=options.get("name"),
                                      experiment_name=options.get("experiment_name"))
        if options.get("wait"):
            handle.wait(options.get("timeout"), options.get("poll", 10.0))
        return handle

    def get_run(self, run_id: str) -> Any:
        """A handle on an existing pipeline job (by name); NotFoundError when there is none.

        Example:
            >>> backend.get_run("azure_reference_20260101_120000_ab12cd").status  # doctest: +SKIP
            'succeeded'
        """
        return self.client().get_run(run_id)

    def deploy(self, deployment: Any, **options: Any) -> Any:
        """Not built yet: raises UnsupportedFeatureError."""
        raise self._client_missing("deploy")
