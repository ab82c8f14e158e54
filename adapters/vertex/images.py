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

__all__ = ["REGISTRY", "TRAINING_IMAGES", "framework_image"]

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
