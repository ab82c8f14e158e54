"""Framework shortcuts -> Azure ML curated environments in the ``azureml`` registry.

Names are the environment assets Microsoft publishes in the ``azureml`` registry (their sources live in
the Azure/azureml-assets repository under ``assets/training/general/environments/<name>``); a step refers
to one as ``azureml://registries/azureml/environments/<name>/labels/latest``. A framework or version that
is not in the table is a CompileError naming what is, never a guessed name. The PyTorch environments are
the ACPT (Azure Container for PyTorch) images, built with CUDA.

Example:
    >>> curated_environment("sklearn==1.5", "train")
    'azureml://registries/azureml/environments/sklearn-1.5/labels/latest'
"""

from __future__ import annotations

from cloudml.errors import CompileError

__all__ = ["CURATED", "REGISTRY", "curated_environment"]

REGISTRY = "azureml://registries/azureml/environments"
CURATED: dict[str, dict[str, str]] = {
    "sklearn": {"1.5": "sklearn-1.5"},
    "lightgbm": {"3.3": "lightgbm-3.3"},
    "tensorflow": {"2.16": "tensorflow-2.16-cuda12"},
    "pytorch": {"2.8": "acpt-pytorch-2.8-cuda12.6", "2.7": "acpt-pytorch-2.7-cuda12.6",
                "2.5": "acpt-pytorch-2.5-cuda12.4", "2.4": "acpt-pytorch-2.4-cuda12.4",
                "2.2": "acpt-pytorch-2.2-cuda12.1"},
}


def curated_environment(framework: str, step: str) -> str:
    """The curated environment for ``name`` or ``name==version`` (the newest when no version is given).

    Example:
        >>> curated_environment("pytorch", "train")
        'azureml://registries/azureml/environments/acpt-pytorch-2.8-cuda12.6/labels/latest'
        >>> curated_environment("xgboost==1.7", "train")
        Traceback (most recent call last):
        ...
        cloudml.errors.CompileError: step 'train': Azure ML has no curated xgboost environment in cloudml's table (known: sklearn, lightgbm, tensorflow, pytorch)
    """
    name, _, version = framework.partition("==")
    if name not in CURATED:
        raise CompileError(f"step '{step}': Azure ML has no curated {name} environment in cloudml's table "
                           f"(known: {', '.join(CURATED)})",
                           hint=f"set image: on the step (a container with {name} installed)")
    versions = CURATED[name]
    key = ".".join(version.split(".")[:2]) if version else max(
        versions, key=lambda v: tuple(int(x) for x in v.split(".")))
    if key not in versions:
        raise CompileError(f"step '{step}': Azure ML has no curated {name} {version} environment; "
                           f"available: {', '.join(versions)}",
                           hint=f"pin framework: {name}==<one of those>, or set image: on the step")
    return f"{REGISTRY}/{versions[key]}/labels/latest"
