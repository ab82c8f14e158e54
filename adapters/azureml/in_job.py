"""What cloudml's runtime does inside an Azure ML job: register a model version as the job's identity.

``python -m cloudml.runtime --register-model azureml ...`` (the node a ``register_model`` step compiles
to, see compiler.py) lands here through :func:`cloudml.runtime.register_entry`. It needs
``cloudml[azure]`` in the node's image.

* **Workspace**: ``--subscription`` / ``--resource-group`` / ``--workspace``, else the variables Azure ML
  sets in every job (``AZUREML_ARM_SUBSCRIPTION``, ``AZUREML_ARM_RESOURCEGROUP``,
  ``AZUREML_ARM_WORKSPACE_NAME``; azure-ai-ml 1.35 reads the same names in its Spark on-behalf-of
  credential), else ``CLOUDML_AZUREML_SUBSCRIPTION_ID`` / ``_RESOURCE_GROUP`` / ``_WORKSPACE``.
* **Identity** (:func:`job_credential`): a job submitted with a user identity has ``OBO_ENDPOINT`` and uses
  azure-ai-ml's ``AzureMLOnBehalfOfCredential``; otherwise, with ``MSI_ENDPOINT`` (what Azure ML compute
  exposes for the compute's managed identity), azure-identity's ``ManagedIdentityCredential`` with the
  client id in ``DEFAULT_IDENTITY_CLIENT_ID`` when set; anywhere else ``DefaultAzureCredential``.
* **Run id**: ``--run``, else ``AZUREML_RUN_ID`` (the node's own job name), recorded as ``cloudml.run_id``.

Example:
    >>> workspace_from({"AZUREML_ARM_SUBSCRIPTION": "s", "AZUREML_ARM_RESOURCEGROUP": "rg",
    ...                 "AZUREML_ARM_WORKSPACE_NAME": "ws"}, {})
    ('s', 'rg', 'ws')
"""

from __future__ import annotations

import json
import sys
from typing import Any

__all__ = ["REGISTER_FLAGS", "job_credential", "register_in_job", "workspace_from"]

REGISTER_FLAGS = ("--register-model", "--group", "--model-uri", "--model-type", "--approval", "--metrics", "--tags",
                  "--description", "--run", "--subscription", "--resource-group", "--workspace")
_WORKSPACE_VARS = (("--subscription", "AZUREML_ARM_SUBSCRIPTION", "CLOUDML_AZUREML_SUBSCRIPTION_ID"),
                   ("--resource-group", "AZUREML_ARM_RESOURCEGROUP", "CLOUDML_AZUREML_RESOURCE_GROUP"),
                   ("--workspace", "AZUREML_ARM_WORKSPACE_NAME", "CLOUDML_AZUREML_WORKSPACE"))


def workspace_from(environ: dict[str, str], flags: dict[str, str]) -> tuple[str, str, str]:
    """(subscription, resource group, workspace) from the flags, else the job's variables; KeyError names what is missing.

    Example:
        >>> workspace_from({"CLOUDML_AZUREML_SUBSCRIPTION_ID": "s"}, {"--resource-group": "rg", "--workspace": "w"})
        ('s', 'rg', 'w')
    """
    found = [flags.get(flag) or environ.get(job_var) or environ.get(own) for flag, job_var, own in _WORKSPACE_VARS]
    missing = [job_var for (_, job_var, _), v in zip(_WORKSPACE_VARS, found, strict=True) if not v]
    if missing:
        raise KeyError(f"no Azure ML workspace: {', '.join(missing)} not set (Azure ML sets them in a job; "
                       "elsewhere pass --subscription, --resource-group and --workspace)")
    return str(found[0]), str(found[1]), str(found[2])


def job_credential(environ: dict[str, str]) -> Any:
    """The credential of the identity the job runs as (see the module docstring for the order).

    Example:
        >>> type(job_credential({"MSI_ENDPOINT": "http://127.0.0.1:9/t", "MSI_SECRET": "s"})).__name__  # doctest: +SKIP
        'ManagedIdentityCredential'
    """
    if environ.get("OBO_ENDPOINT"):
        from azure.ai.ml.identity import AzureMLOnBehalfOfCredential

        return AzureMLOnBehalfOfCredential()
    if environ.get("MSI_ENDPOINT") or environ.get("IDENTITY_ENDPOINT"):
        from azure.identity import ManagedIdentityCredential

        return ManagedIdentityCredential(client_id=environ.get("DEFAULT_IDENTITY_CLIENT_ID") or None)
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(managed_identity_client_id=environ.get("DEFAULT_IDENTITY_CLIENT_ID") or None)


def _read_metrics(path: str | None) -> dict[str, Any]:
    from pathlib import Path

    if not path:
        return {}
    source = Path(path) / "metrics.json" if Path(path).is_dir() else Path(path)
    data = json.loads(source.read_text())
    if not isinstance(data, dict):
        return {"value": data}
    # the registry keeps numbers; other values of the metrics file (lists, texts) are not model metrics
    return {k: v for k, v in data.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def register_in_job(one: dict[str, str], environ: dict[str, str], client_kwargs: dict[str, Any] | None = None,
                    credential: Any = None) -> int:
    """Register ``--model-uri`` as the next version of ``--group`` (registry.register_model); the exit code.

    ``one`` holds the parsed flags (:data:`REGISTER_FLAGS`). ``client_kwargs`` go to ``MLClient``
    (``cloud_metadata`` for a sovereign cloud, or a test's fake). Exit codes: 0 registered, 1 the
    registry refused, 2 the call is wrong or cloudml[azure] is missing.

    Example:
        >>> register_in_job({"--register-model": "azureml"}, {})
        2
    """
    try:
        group, uri = one["--group"], one["--model-uri"]
        tags = dict(json.loads(one.get("--tags") or "{}"))
        metrics = _read_metrics(one.get("--metrics"))
        subscription, resource_group, workspace = workspace_from(environ, one)
    except (KeyError, ValueError, OSError, TypeError) as e:
        print(f"cloudml.runtime: --register-model azureml: {e!r}", file=sys.stderr)
        return 2
    try:
        from cloudml.adapters.azureml.client import AzureMLClient
        from cloudml.adapters.azureml.registry import register_model
        from cloudml.config import AzureMLSettings

        cred = credential if credential is not None else job_credential(environ)
    except ImportError as e:
        print(f"cloudml.runtime: registering needs cloudml[azure] in the image: {e}", file=sys.stderr)
        return 2
    from cloudml.errors import CloudMLError

    settings = AzureMLSettings(subscription_id=subscription, resource_group=resource_group, workspace=workspace)
    try:
        client = AzureMLClient(settings, cred, **(client_kwargs or {}))
        version = register_model(client, group, uri, approval=one.get("--approval", "pending"), metrics=metrics,
                                 tags=tags, description=one.get("--description") or None,
                                 run_id=one.get("--run") or environ.get("AZUREML_RUN_ID") or None,
                                 model_type=one.get("--model-type", "custom_model"))
    except CloudMLError as e:
        print(f"cloudml.runtime: registering {group} failed: {e}", file=sys.stderr)
        return 1
    print(f"cloudml.runtime: registered {group} v{version.version} ({version.approval}) from {uri}", flush=True)
    return 0
