"""Step models: container/Python tasks, condition gates, fail steps and model registration.

A step's type follows from its keys: ``condition:`` makes a :class:`ConditionStep`, ``fail:`` a
:class:`FailStep`, ``register_model:`` a :class:`RegisterModelStep`; anything else is a
:class:`TaskStep` that runs a ``command`` or a ``python`` function.

Example:
    >>> from cloudml.spec.steps import TaskStep
    >>> s = TaskStep(name="train", python="src.train:fit", inputs={"train": "split.outputs.train"},
    ...              outputs={"model": "model"}, timeout="2h")
    >>> s.timeout, s.outputs["model"].type, str(s.inputs["train"].ref)
    (7200.0, 'model', 'split.outputs.train')
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    Discriminator,
    Field,
    PlainSerializer,
    PlainValidator,
    Tag,
    WithJsonSchema,
    field_validator,
    model_serializer,
    model_validator,
)

from cloudml.spec.conditions import ConditionSyntaxError, Expr, parse_condition
from cloudml.spec.refs import Source, parse_source
from cloudml.spec.tuning import Objective, SearchParam, Tuning
from cloudml.spec.types import Duration, Identifier, Memory, SpecModel, StepName

__all__ = [
    "Cache",
    "ConditionStep",
    "FailStep",
    "InputSpec",
    "OutputSpec",
    "RegisterModel",
    "RegisterModelStep",
    "Resources",
    "Retry",
    "Step",
    "TaskStep",
    "Tuning",
]
_TUNING_MODELS = (Objective, SearchParam)  # re-exported for did-you-mean on their field names

OutputType = Literal["dataset", "model", "metrics", "generic"]
Scalar = str | int | float | bool
FRAMEWORKS = ("sklearn", "xgboost", "pytorch", "tensorflow", "lightgbm", "huggingface")
_FRAMEWORK_RE = re.compile(r"^([a-z]+)(?:==(\d+(?:\.\d+){0,2}))?$")
SECRET_SCHEMES = ("aws-secretsmanager", "aws-ssm", "gcp-secretmanager", "azure-keyvault", "env")
_SECRET_RE = re.compile(r"^([a-z-]+)://\S+$")
_ENV_NAME_RE = r"^[A-Za-z_][A-Za-z0-9_]*$"
_PY_TARGET_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def check_framework(value: str) -> str:
    """Validate ``name`` or ``name==version`` against the known framework shortcuts.

    Example:
        >>> check_framework("sklearn==1.5")
        'sklearn==1.5'
    """
    m = _FRAMEWORK_RE.match(value)
    if not m:
        raise ValueError(f"'{value}' is not a framework; write e.g. 'sklearn==1.5' or 'xgboost'")
    if m.group(1) not in FRAMEWORKS:
        raise ValueError(f"unknown framework '{m.group(1)}'; known: {', '.join(FRAMEWORKS)}")
    return value


CodePath = Annotated[str, Field(min_length=1)]


def check_code_paths(value: list[str] | None) -> list[str] | None:
    """Validate a ``code_paths`` list: relative folders, each once (where they exist is checked when compiling).

    Example:
        >>> check_code_paths(["../shared/src", "lib"])
        ['../shared/src', 'lib']
    """
    if value is None:
        return None
    seen: set[str] = set()
    for v in value:
        norm = v.replace("\\", "/").rstrip("/") or "/"
        if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm) or "://" in norm:
            raise ValueError(f"'{v}' is not a relative folder; code_paths are relative to the spec file, like code")
        if norm in seen:
            raise ValueError(f"'{v}' is listed twice")
        seen.add(norm)
    return value


class Resources(SpecModel):
    """Neutral compute resources, with per-cloud instance-type overrides.

    Example:
        >>> Resources(cpu=4, memory="16Gi", instance_type={"sagemaker": "ml.m5.xlarge"}).memory
        17179869184
    """

    cpu: float | None = Field(None, gt=0, description="vCPUs")
    memory: Memory | None = None
    gpu: int = Field(0, ge=0, description="number of GPUs")
    gpu_type: str | None = Field(None, description="e.g. nvidia-t4, nvidia-a100")
    instance_count: int = Field(1, ge=1, le=1000)
    disk: Memory | None = None
    instance_type: dict[str, str] = Field(
        default_factory=dict, description="per-adapter instance type, e.g. {sagemaker: ml.m5.xlarge}"
    )


class Retry(SpecModel):
    """Retry a failed step: ``attempts`` counts the first try; waits grow ``backoff * 2**n`` with jitter.

    Example:
        >>> Retry(attempts=3, backoff="10s").backoff
        10.0
    """

    attempts: int = Field(1, ge=1, le=20)
    backoff: Duration = 10.0
    max_backoff: Duration | None = None


class Cache(SpecModel):
    """Step caching; ``expire`` bounds how old a reusable result may be. ``cache: false`` disables it.

    Example:
        >>> Cache.model_validate(False).enabled, Cache(expire="7d").expire
        (False, 604800.0)
    """

    enabled: bool = True
    expire: Duration | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_bool(cls, v: Any) -> Any:
        return {"enabled": v} if isinstance(v, bool) else v


class OutputSpec(SpecModel):
    """A typed output. Shorthand: ``model: model``.

    ``dataset``, ``model`` and ``generic`` outputs are directories; ``metrics`` is one JSON file.
    """

    type: OutputType = "generic"
    description: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_str(cls, v: Any) -> Any:
        return {"type": v} if isinstance(v, str) else v

    @model_serializer(mode="wrap")
    def _short(self, handler: Any) -> Any:
        return self.type if self.description is None else handler(self)


class InputSpec(SpecModel):
    """An input: another step's output, ``{{params.x}}`` holding a URI, or an external URI/path.

    Shorthand: ``data: split.outputs.train``. Long form: ``{from: ..., type: dataset}``.
    """

    from_: str = Field(alias="from", min_length=1)
    type: OutputType | None = None
    description: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_str(cls, v: Any) -> Any:
        return {"from": v} if isinstance(v, str) else v

    @model_serializer(mode="wrap")
    def _short(self, handler: Any) -> Any:
        if self.type is None and self.description is None:
            return self.from_
        out: dict[str, Any] = handler(self)
        out.pop("from_", None)
        return {"from": self.from_, **{k: v for k, v in out.items() if k != "from" and v is not None}}

    @property
    def ref(self) -> Source:
        """The parsed source: StepOutputRef, ParamSourceRef or ExternalRef."""
        return parse_source(self.from_)


class _StepBase(SpecModel):
    name: StepName
    description: str | None = None
    depends_on: list[StepName] = Field(default_factory=list, description="explicit ordering edges")


class TaskStep(_StepBase):
    """A step that runs a container command or a Python function (``module:function``)."""

    kind: Literal["processing", "training"] = "processing"
    image: str | None = None
    framework: str | None = Field(None, description="e.g. sklearn==1.5; resolved per cloud to a prebuilt image")
    command: str | list[str] | None = None
    args: list[str] = Field(default_factory=list)
    python: str | None = Field(None, description="module:function, run through `python -m cloudml.runtime`")
    code: str | None = Field(None, description="directory with the step's code, shipped with the step")
    code_paths: list[CodePath] | None = Field(
        None, description="more directories whose modules the step imports (after `code` on sys.path), shipped "
        "with the step; relative to the spec file, like `code`")
    env: dict[Annotated[str, Field(pattern=_ENV_NAME_RE)], str] = Field(default_factory=dict)
    secrets: dict[Annotated[str, Field(pattern=_ENV_NAME_RE)], str] = Field(
        default_factory=dict, description="ENV_NAME: scheme://reference (never a value)"
    )
    inputs: dict[Identifier, InputSpec] = Field(default_factory=dict)
    outputs: dict[Identifier, OutputSpec] = Field(default_factory=dict)
    params: dict[Identifier, Scalar] = Field(default_factory=dict, description="arguments for a python step")
    resources: Resources | None = None
    retry: Retry | None = None
    timeout: Duration | None = None
    cache: Cache | None = None
    tuning: Tuning | None = Field(None, description="run as hyperparameter-tuning trials; see docs/spec.md")
    backend_options: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("framework")
    @classmethod
    def _framework(cls, v: str | None) -> str | None:
        return None if v is None else check_framework(v)

    @field_validator("code_paths")
    @classmethod
    def _code_paths(cls, v: list[str] | None) -> list[str] | None:
        return check_code_paths(v)

    @field_validator("python")
    @classmethod
    def _python(cls, v: str | None) -> str | None:
        if v is not None and not _PY_TARGET_RE.match(v):
            raise ValueError(f"'{v}' is not module:function (e.g. 'src.train:fit')")
        return v

    @field_validator("secrets")
    @classmethod
    def _secrets(cls, v: dict[str, str]) -> dict[str, str]:
        for name, ref in v.items():
            m = _SECRET_RE.match(ref)
            if not m or m.group(1) not in SECRET_SCHEMES:
                raise ValueError(
                    f"secret {name} must be a reference like aws-secretsmanager://NAME, gcp-secretmanager://..., "
                    f"azure-keyvault://VAULT/NAME or env://VAR; secret values never go in a spec"
                )
        return v

    @model_validator(mode="after")
    def _what_runs(self) -> TaskStep:
        if (self.command is None) == (self.python is None):
            raise ValueError("a step runs exactly one of 'command' or 'python' (module:function)")
        if self.python is not None and self.args:
            raise ValueError("'args' go with 'command'; a python step takes 'params'")
        if self.command is not None and self.params:
            raise ValueError("'params' go with a 'python' step; put values in the command with {{params.x}}")
        if isinstance(self.command, list) and not self.command:
            raise ValueError("'command' is empty")
        return self


def _parse_cond(v: Any) -> Expr:
    if not isinstance(v, str) and hasattr(v, "comparisons"):
        v = str(v)  # an expression built in Python: keep the canonical tree its text form gives
    if isinstance(v, str):
        try:
            return parse_condition(v)
        except ConditionSyntaxError as e:
            raise ValueError(str(e)) from None
    raise ValueError('a condition string, e.g. evaluate.outputs.metrics["auc"] >= params.min_auc')


Condition = Annotated[
    Expr,
    PlainValidator(_parse_cond),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "description": 'e.g. evaluate.outputs.metrics["auc"] >= params.min_auc; join with and/or/not',
        }
    ),
]


class ConditionStep(_StepBase):
    """Run ``then`` steps when the condition holds, ``else`` steps when it does not."""

    condition: Condition
    then: list[StepName] = Field(default_factory=list)
    else_: list[StepName] = Field(default_factory=list, alias="else")

    @model_validator(mode="after")
    def _branches(self) -> ConditionStep:
        if not self.then and not self.else_:
            raise ValueError("a condition needs steps under 'then' or 'else'")
        return self


class FailStep(_StepBase):
    """End the run as failed with a message (placeholders ``{{params.x}}`` allowed)."""

    fail: str = Field(min_length=1)


class RegisterModel(SpecModel):
    """What to register: the model artifact, its group, metrics and approval status."""

    model: str = Field(description="step.outputs.name of a model output")
    group: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}$")]
    metrics: str | None = Field(None, description="step.outputs.name of a metrics output")
    approval: Literal["pending", "approved", "rejected"] = "pending"
    description: str | None = None
    framework: str | None = None
    image: str | None = Field(None, description="serving image; defaults from the framework")
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("framework")
    @classmethod
    def _framework(cls, v: str | None) -> str | None:
        return None if v is None else check_framework(v)


class RegisterModelStep(_StepBase):
    """Register a model version in the model registry."""

    register_model: RegisterModel
    backend_options: dict[str, dict[str, Any]] = Field(default_factory=dict)


def _step_tag(v: Any) -> str:
    if isinstance(v, dict):
        for key, tag in (("condition", "condition"), ("fail", "fail"), ("register_model", "register")):
            if key in v:
                return tag
        return "task"
    if isinstance(v, ConditionStep):
        return "condition"
    if isinstance(v, FailStep):
        return "fail"
    if isinstance(v, RegisterModelStep):
        return "register"
    return "task"


Step = Annotated[
    Annotated[TaskStep, Tag("task")]
    | Annotated[ConditionStep, Tag("condition")]
    | Annotated[FailStep, Tag("fail")]
    | Annotated[RegisterModelStep, Tag("register")],
    Discriminator(_step_tag),
]
"""Any step; its type follows from its keys (condition / fail / register_model / else a task)."""

STEP_TAGS = ("task", "condition", "fail", "register")
