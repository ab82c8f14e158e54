"""Framework shortcuts -> Vertex AI prebuilt training containers (``framework: sklearn==1.6``).

The URIs are the region-independent ``us-docker.pkg.dev/vertex-ai/training/...`` names from Google's
"Prebuilt containers for custom training" page (the same images are mirrored under ``europe-docker``
and ``asia-docker``; Google supports only the ``latest`` tag). A framework, or a version, that is not
in the table is a CompileError naming what is, never a guessed URI.

Example:
    >>> framework_image("sklearn==1.6", "step")
    'us-docker.pkg.dev/vertex-ai/training/sklearn-cpu.1-6:latest'
    >>> framework_image("pytorch==2.4", "step", gpu=True)
    'us-docker.pkg.dev/vertex-ai/training/pytorch-gpu.2-4.py310:latest'
"""

from __future__ import annotations

from cloudml.errors import CompileError

__all__ = ["PREDICTION_IMAGES", "REGISTRY", "TRAINING_IMAGES", "framework_image", "prediction_image"]

REGISTRY = "us-docker.pkg.dev/vertex-ai/training"
# framework -> version -> (CPU image, GPU image or None); names as Google's page lists them
TRAINING_IMAGES: dict[str, dict[str, tuple[str, str | None]]] = {
    "sklearn": {
        "1.6": ("sklearn-cpu.1-6", "sklearn-gpu.1-6"),
        "1.0": ("sklearn-cpu.1-0", "sklearn-gpu.1-0"),
        "0.23": ("scikit-learn-cpu.0-23", None),
    },
    "xgboost": {
        "2.1": ("xgboost-cpu.2-1", "xgboost-gpu.2-1"),
        "1.6": ("xgboost-cpu.1-6", "xgboost-gpu.1-6"),
        "1.1": ("xgboost-cpu.1-1", None),
    },
    "tensorflow": {
        "2.17": ("tf-cpu.2-17.py310", "tf-gpu.2-17.py310"),
        "2.16": ("tf-cpu.2-16.py310", "tf-gpu.2-16.py310"),
        "2.15": ("tf-cpu.2-15.py310", "tf-gpu.2-15.py310"),
        "2.14": ("tf-cpu.2-14.py310", "tf-gpu.2-14.py310"),
        "2.13": ("tf-cpu.2-13.py310", "tf-gpu.2-13.py310"),
    },
    "pytorch": {  # Google names the CPU images pytorch-xla
        "2.4": ("pytorch-xla.2-4.py310", "pytorch-gpu.2-4.py310"),
        "2.3": ("pytorch-xla.2-3.py310", "pytorch-gpu.2-3.py310"),
        "2.2": ("pytorch-xla.2-2.py310", "pytorch-gpu.2-2.py310"),
        "2.1": ("pytorch-xla.2-1.py310", "pytorch-gpu.2-1.py310"),
    },
}


def _newest(versions: dict[str, tuple[str, str | None]]) -> str:
    return max(versions, key=lambda v: tuple(int(x) for x in v.split(".")))


def framework_image(framework: str, step: str, *, gpu: bool = False) -> str:
    """The prebuilt training image for ``name`` or ``name==version`` (newest when no version is given).

    ``1.6.1`` matches the ``1.6`` image. A GPU step gets the GPU build; a version without one is an error.

    Example:
        >>> framework_image("xgboost", "train")
        'us-docker.pkg.dev/vertex-ai/training/xgboost-cpu.2-1:latest'
        >>> framework_image("sklearn==1.2", "train")
        Traceback (most recent call last):
        ...
        cloudml.errors.CompileError: step 'train': Vertex AI has no prebuilt sklearn 1.2 training image; available: 1.6, 1.0, 0.23
    """
    name, _, version = framework.partition("==")
    if name not in TRAINING_IMAGES:
        raise CompileError(f"step '{step}': Vertex AI has no prebuilt {name} training image (cloudml knows "
                           f"{', '.join(TRAINING_IMAGES)})", hint="set image: on the step (a container with "
                           f"{name} installed)")
    versions = TRAINING_IMAGES[name]
    key = ".".join(version.split(".")[:2]) if version else _newest(versions)
    if key not in versions:
        raise CompileError(f"step '{step}': Vertex AI has no prebuilt {name} {version} training image; "
                           f"available: {', '.join(versions)}",
                           hint=f"pin framework: {name}==<one of those>, or set image: on the step")
    cpu, gpu_image = versions[key]
    if gpu and gpu_image is None:
        raise CompileError(f"step '{step}': Vertex AI has no GPU build of {name} {key}",
                           hint=f"pick a version with one ({', '.join(v for v, i in versions.items() if i[1])}) "
                           "or set image:")
    return f"{REGISTRY}/{gpu_image if gpu else cpu}:latest"


PREDICTION_REGISTRY = "us-docker.pkg.dev/vertex-ai/prediction"
# framework -> versions with a prebuilt *prediction* (serving) container, CPU builds; names as Google lists
# them (aiplatform's constants.prediction, which a test compares this table with). TensorFlow 2 serving
# images are called tf2-cpu.
PREDICTION_IMAGES: dict[str, tuple[str, list[str]]] = {
    "sklearn": ("sklearn-cpu", ["1.6", "1.5", "1.4", "1.3", "1.2", "1.0", "0.24", "0.23", "0.22", "0.20"]),
    "xgboost": ("xgboost-cpu", ["2.1", "2.0", "1.7", "1.6", "1.5", "1.4", "1.3", "1.2", "1.1", "0.90", "0.82"]),
    "tensorflow": ("tf2-cpu", ["2.15", "2.14", "2.13", "2.12", "2.11", "2.10", "2.9", "2.8", "2.7", "2.6", "2.5",
                               "2.4", "2.3", "2.2", "2.1"]),
    "pytorch": ("pytorch-cpu", ["2.4", "2.3", "2.2", "2.1", "2.0", "1.13", "1.12", "1.11"]),
}


def prediction_image(framework: str, step: str) -> str:
    """The prebuilt serving image for a registered model's ``framework`` (newest when unpinned).

    Example:
        >>> prediction_image("sklearn", "register")
        'us-docker.pkg.dev/vertex-ai/prediction/sklearn-cpu.1-6:latest'
        >>> prediction_image("xgboost==1.7.6", "register")
        'us-docker.pkg.dev/vertex-ai/prediction/xgboost-cpu.1-7:latest'
    """
    name, _, version = framework.partition("==")
    if name not in PREDICTION_IMAGES:
        raise CompileError(f"step '{step}': Vertex AI has no prebuilt {name} prediction image (cloudml knows "
                           f"{', '.join(PREDICTION_IMAGES)})", hint="set register_model.image to your serving container")
    prefix, versions = PREDICTION_IMAGES[name]
    key = ".".join(version.split(".")[:2]) if version else versions[0]
    if key not in versions:
        raise CompileError(f"step '{step}': Vertex AI has no prebuilt {name} {version} prediction image; "
                           f"available: {', '.join(versions)}",
                           hint=f"pin framework: {name}==<one of those>, or set register_model.image")
    return f"{PREDICTION_REGISTRY}/{prefix}.{key.replace('.', '-')}:latest"
