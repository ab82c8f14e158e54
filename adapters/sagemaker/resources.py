"""SageMaker instance types from neutral resources, and framework shortcuts to prebuilt image URIs.

The image table mirrors the SageMaker Python SDK's ``image_uri_config`` for the frameworks cloudml
knows; when the ``aws`` extra is installed a test checks it against the SDK. A framework version the
table does not have is an error with the versions that exist, never a silent substitute.

Example:
    >>> from cloudml.spec.steps import Resources
    >>> instance_type(Resources(cpu=4, memory="16Gi"), None)
    'ml.m5.xlarge'
    >>> framework_image("sklearn==1.2", "eu-west-1", "training")
    '141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3'
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEPLOY_SIZES", "FRAMEWORK_VERSIONS", "deploy_instance_type", "framework_image", "instance_type"]

GIB = 1024**3

# (instance type, vCPUs, memory GiB, GPUs, gpu type)
_CPU_TYPES = [
    ("ml.m5.large", 2, 8), ("ml.m5.xlarge", 4, 16), ("ml.m5.2xlarge", 8, 32), ("ml.m5.4xlarge", 16, 64),
    ("ml.m5.12xlarge", 48, 192), ("ml.m5.24xlarge", 96, 384),
    ("ml.r5.large", 2, 16), ("ml.r5.xlarge", 4, 32), ("ml.r5.2xlarge", 8, 64), ("ml.r5.4xlarge", 16, 128),
    ("ml.r5.12xlarge", 48, 384), ("ml.r5.24xlarge", 96, 768),
]
_GPU_TYPES = [
    ("ml.g4dn.xlarge", 4, 16, 1, "nvidia-t4"), ("ml.g4dn.12xlarge", 48, 192, 4, "nvidia-t4"),
    ("ml.g5.xlarge", 4, 16, 1, "nvidia-a10g"), ("ml.g5.12xlarge", 48, 192, 4, "nvidia-a10g"),
    ("ml.g5.48xlarge", 192, 768, 8, "nvidia-a10g"),
    ("ml.p3.2xlarge", 8, 61, 1, "nvidia-v100"), ("ml.p3.8xlarge", 32, 244, 4, "nvidia-v100"),
    ("ml.p3.16xlarge", 64, 488, 8, "nvidia-v100"), ("ml.p4d.24xlarge", 96, 1152, 8, "nvidia-a100"),
]
DEPLOY_SIZES = {"cpu-small": "ml.m5.large", "cpu-medium": "ml.m5.xlarge", "cpu-large": "ml.m5.4xlarge",
                "gpu-small": "ml.g4dn.xlarge", "gpu-large": "ml.g5.12xlarge"}


def instance_type(resources: Any, default: str | None) -> str:
    """The smallest ML instance type that fits the neutral resources (an override wins).

    Example:
        >>> from cloudml.spec.steps import Resources
        >>> instance_type(Resources(gpu=1), None), instance_type(None, "ml.c5.large")
        ('ml.g4dn.xlarge', 'ml.c5.large')
    """
    if resources is not None and resources.instance_type.get("sagemaker"):
        return str(resources.instance_type["sagemaker"])
    if resources is None or (resources.cpu is None and resources.memory is None and not resources.gpu):
        return default or "ml.m5.large"
    cpu = resources.cpu or 1
    mem = (resources.memory or 0) / GIB
    if resources.gpu:
        fits = [t for t in _GPU_TYPES if t[1] >= cpu and t[2] >= mem and t[3] >= resources.gpu
                and (resources.gpu_type is None or t[4] == resources.gpu_type)]
    else:
        fits = [(t[0], t[1], t[2], 0, "") for t in _CPU_TYPES if t[1] >= cpu and t[2] >= mem]
    if not fits:
        from cloudml.errors import CompileError

        raise CompileError(f"no SageMaker instance type has {cpu} vCPU, {mem:g} GiB and {resources.gpu} GPU"
                           f"{' of type ' + resources.gpu_type if resources.gpu_type else ''}",
                           hint="set resources.instance_type.sagemaker explicitly")
    return str(min(fits, key=lambda t: (t[1], t[2], t[3]))[0])


def deploy_instance_type(instances: Any) -> str:
    """The endpoint instance type for a deployment's neutral size (an override wins).

    Example:
        >>> from cloudml.spec.deployment import Instances
        >>> deploy_instance_type(Instances(type="gpu-small"))
        'ml.g4dn.xlarge'
    """
    return str(instances.instance_type.get("sagemaker") or DEPLOY_SIZES[instances.type])


_FIRST_PARTY = {  # sagemaker-scikit-learn and sagemaker-xgboost registries, by region
    "af-south-1": "510948584623", "ap-east-1": "651117190479", "ap-northeast-1": "354813040037",
    "ap-northeast-2": "366743142698", "ap-northeast-3": "867004704886", "ap-south-1": "720646828776",
    "ap-southeast-1": "121021644041", "ap-southeast-2": "783357654285", "ca-central-1": "341280168497",
    "eu-central-1": "492215442770", "eu-north-1": "662702820516", "eu-west-1": "141502667606",
    "eu-west-2": "764974769150", "eu-west-3": "659782779980", "eu-south-1": "978288397137",
    "me-south-1": "801668240914", "sa-east-1": "737474898029", "us-east-1": "683313688378",
    "us-east-2": "257758044811", "us-west-1": "746614075791", "us-west-2": "246618743249",
}
FRAMEWORK_VERSIONS: dict[str, dict[str, str]] = {
    # neutral major.minor -> the container's version tag
    "sklearn": {"0.23": "0.23-1", "1.0": "1.0-1", "1.2": "1.2-1"},
    "xgboost": {"1.5": "1.5-1", "1.7": "1.7-1"},
}
_REPOSITORY = {"sklearn": "sagemaker-scikit-learn", "xgboost": "sagemaker-xgboost"}


def framework_image(framework: str, region: str | None, job: str) -> str:
    """The prebuilt image URI for ``name==version`` in ``region`` (``job``: training or inference).

    Example:
        >>> framework_image("xgboost==1.7", "us-east-1", "training")
        '683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1'
    """
    from cloudml.errors import CompileError

    name, _, version = framework.partition("==")
    if name not in FRAMEWORK_VERSIONS:
        raise CompileError(f"sagemaker has no prebuilt {name} image in cloudml's table "
                           f"(known: {', '.join(FRAMEWORK_VERSIONS)})", hint="set the step's image explicitly")
    if not region:
        raise CompileError("resolving a framework image needs the AWS region",
                           hint="set sagemaker.region in cloudml.yaml or CLOUDML_SAGEMAKER_REGION")
    if region not in _FIRST_PARTY:
        raise CompileError(f"no {name} image registry known for region {region}", hint="set the step's image")
    versions = FRAMEWORK_VERSIONS[name]
    if version:
        key = ".".join(version.split(".")[:2])
        if key not in versions:
            raise CompileError(f"sagemaker has no prebuilt {name} {version} image; available: "
                               f"{', '.join(versions)}", hint=f"pin framework: {name}==<one of those> or set image")
        tag = versions[key]
    else:
        tag = versions[max(versions, key=lambda v: tuple(int(x) for x in v.split(".")))]
    suffix = "-cpu-py3" if name == "sklearn" else ""  # xgboost tags carry no processor suffix
    return f"{_FIRST_PARTY[region]}.dkr.ecr.{region}.amazonaws.com/{_REPOSITORY[name]}:{tag}{suffix}"
