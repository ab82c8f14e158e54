"""The one exception tree of cloudml.

Every error cloudml raises on purpose is a :class:`CloudMLError`. Vendor exceptions (botocore,
google.api_core, azure.core) are translated at the adapter boundary and chained with
``raise ... from exc``, so ``except cloudml.errors.CloudMLError`` catches everything that is ours.

Tree::

    CloudMLError
    ├── SpecError                 invalid pipeline/deployment document (all issues at once)
    ├── ConfigError               invalid cloudml.yaml / environment settings
    │   └── AdapterNotFoundError  no adapter of that name is registered
    ├── AdapterNotInstalledError  the adapter's extra is missing; the message is the pip command
    ├── CompileError              the spec is valid but cannot be translated
    │   └── UnsupportedFeatureError   adapter + step + feature that the target cannot express
    ├── BackendError              an API call failed (translated vendor error)
    │   ├── ThrottlingError, NotFoundError, ConflictError, PermissionDeniedError,
    │   │   ServiceUnavailableError, BackendValidationError
    ├── RunError                  a pipeline run failed or could not start
    │   └── StepFailedError
    ├── ArtifactError             a missing or corrupt artifact
    └── DeploymentError           an endpoint deployment failed
        └── RollbackError         a rollback could not complete

Example:
    >>> from cloudml.errors import CloudMLError, UnsupportedFeatureError
    >>> err = UnsupportedFeatureError("vertex", "train", "timeout", "Vertex has no per-task timeout")
    >>> isinstance(err, CloudMLError)
    True
    >>> print(err)
    vertex cannot express 'timeout' on step 'train': Vertex has no per-task timeout
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "AdapterNotFoundError",
    "AdapterNotInstalledError",
    "ArtifactError",
    "BackendError",
    "BackendValidationError",
    "CloudMLError",
    "CompileError",
    "ConfigError",
    "ConflictError",
    "DataError",
    "DeploymentError",
    "Issue",
    "NotFoundError",
    "PermissionDeniedError",
    "RollbackError",
    "RunError",
    "ServiceUnavailableError",
    "SpecError",
    "StepFailedError",
    "ThrottlingError",
    "UnsupportedFeatureError",
]


class CloudMLError(Exception):
    """Root of every error cloudml raises on purpose.

    Example:
        >>> try:
        ...     raise CloudMLError("something went wrong", hint="try again")
        ... except CloudMLError as e:
        ...     print(e.hint)
        try again
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Issue:
    """One problem found in a document, with where it is and how to fix it.

    ``path`` is the location inside the document (``steps[2].inputs.data``); ``line`` and
    ``column`` are 1-based and ``None`` when the document did not come from text.

    Example:
        >>> i = Issue("unknown step 'trian'", path="steps[1].inputs.data", file="p.yaml",
        ...           line=9, column=13, step="evaluate", fix="did you mean 'train'?")
        >>> print(i.format())
        p.yaml:9:13: steps[1].inputs.data (step 'evaluate'): unknown step 'trian'
            fix: did you mean 'train'?
    """

    message: str
    path: str = ""
    file: str | None = None
    line: int | None = None
    column: int | None = None
    step: str | None = None
    expected: str | None = None
    fix: str | None = None
    code: str = "invalid"
    loc: tuple[str | int, ...] = field(default=(), compare=False, repr=False)

    def location(self) -> str:
        """``file:line:col`` (as much of it as is known)."""
        parts = [self.file or "<spec>"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    def format(self) -> str:
        """Human-readable, one issue, possibly over several lines."""
        where = self.location()
        head = f"{where}: "
        if self.path:
            head += self.path
            if self.step:
                head += f" (step '{self.step}')"
            head += ": "
        elif self.step:
            head += f"step '{self.step}': "
        lines = [head + self.message]
        if self.expected:
            lines.append(f"    expected: {self.expected}")
        if self.fix:
            lines.append(f"    fix: {self.fix}")
        return "\n".join(lines)


class SpecError(CloudMLError):
    """A pipeline or deployment document is invalid. Carries *every* issue found, not just the first.

    Example:
        >>> import cloudml
        >>> try:
        ...     cloudml.loads("kind: Pipeline\\nname: p\\nsteps: [{name: a, command: echo}]\\nbogus: 1\\n")
        ... except cloudml.SpecError as e:
        ...     print(len(e.issues), e.issues[0].path)
        1 bogus
    """

    def __init__(self, issues: list[Issue], *, source: str | None = None) -> None:
        self.issues = list(issues)
        self.source = source
        n = len(self.issues)
        head = f"{n} problem{'s' if n != 1 else ''} in {source or 'the spec'}"
        body = "\n".join(i.format() for i in self.issues)
        super().__init__(f"{head}:\n{body}" if body else head)


class ConfigError(CloudMLError):
    """cloudml.yaml or a CLOUDML_* variable is invalid.

    Example:
        >>> raise ConfigError("bad backend", hint="set CLOUDML_BACKEND=local")
        Traceback (most recent call last):
        ...
        cloudml.errors.ConfigError: bad backend
    """


class AdapterNotFoundError(ConfigError):
    """No adapter is registered under that name.

    Example:
        >>> str(AdapterNotFoundError("sagemkr", ["local", "sagemaker"]))
        "no adapter named 'sagemkr'; registered: local, sagemaker (did you mean 'sagemaker'?)"
    """

    def __init__(self, name: str, known: list[str]) -> None:
        import difflib

        close = difflib.get_close_matches(name, known, n=1)
        msg = f"no adapter named '{name}'; registered: {', '.join(sorted(known)) or 'none'}"
        if close:
            msg += f" (did you mean '{close[0]}'?)"
        super().__init__(msg, hint="run `cloudml backends` to list adapters")
        self.name = name
        self.known = known


class AdapterNotInstalledError(CloudMLError):
    """An adapter needs an extra that is not installed. The message is the exact pip command.

    Example:
        >>> str(AdapterNotInstalledError("sagemaker", "aws", ["boto3"]))
        "pip install 'cloudml[aws]'  # the sagemaker adapter needs: boto3"
    """

    def __init__(self, adapter: str, extra: str, missing: list[str]) -> None:
        self.adapter = adapter
        self.extra = extra
        self.missing = missing
        self.pip_command = f"pip install 'cloudml[{extra}]'"
        super().__init__(
            f"{self.pip_command}  # the {adapter} adapter needs: {', '.join(missing)}",
            hint=self.pip_command,
        )


class CompileError(CloudMLError):
    """A valid spec could not be translated for a target.

    Example:
        >>> CompileError("pipeline too large for sagemaker").message
        'pipeline too large for sagemaker'
    """


class UnsupportedFeatureError(CompileError):
    """The target adapter cannot express a spec feature. Raised at compile time, never dropped silently.

    Example:
        >>> e = UnsupportedFeatureError("azureml", "train", "retry", "command steps have no retries")
        >>> (e.adapter, e.step, e.feature)
        ('azureml', 'train', 'retry')
    """

    def __init__(
        self,
        adapter: str,
        step: str | None,
        feature: str,
        reason: str,
        *,
        hint: str | None = None,
    ) -> None:
        self.adapter = adapter
        self.step = step
        self.feature = feature
        self.reason = reason
        where = f" on step '{step}'" if step else ""
        super().__init__(f"{adapter} cannot express '{feature}'{where}: {reason}", hint=hint)


class BackendError(CloudMLError):
    """A backend API call failed. ``vendor_code`` keeps the cloud's own error code.

    Example:
        >>> e = ThrottlingError("rate exceeded", backend="sagemaker", vendor_code="ThrottlingException")
        >>> isinstance(e, BackendError), e.retryable
        (True, True)
    """

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        backend: str | None = None,
        vendor_code: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.backend = backend
        self.vendor_code = vendor_code


class ThrottlingError(BackendError):
    """The API throttled us (HTTP 429 / ThrottlingException). Retryable."""

    retryable = True


class ServiceUnavailableError(BackendError):
    """The service failed or is unavailable (HTTP 5xx). Retryable."""

    retryable = True


class NotFoundError(BackendError):
    """A resource (run, model, endpoint, deployment) does not exist."""


class ConflictError(BackendError):
    """A resource already exists or is in a state that forbids the call."""


class PermissionDeniedError(BackendError):
    """Credentials are missing or lack a permission."""


class BackendValidationError(BackendError):
    """The backend rejected a request as invalid."""


class RunError(CloudMLError):
    """A pipeline run failed or could not be started.

    Example:
        >>> RunError("run r-1 failed", hint="cloudml runs logs r-1").hint
        'cloudml runs logs r-1'
    """


class StepFailedError(RunError):
    """One step of a run failed; names the step and the cause.

    Example:
        >>> str(StepFailedError("train", "exit code 2"))
        "step 'train' failed: exit code 2"
    """

    def __init__(self, step: str, cause: str, *, hint: str | None = None) -> None:
        self.step = step
        self.cause = cause
        super().__init__(f"step '{step}' failed: {cause}", hint=hint)


class ArtifactError(CloudMLError):
    """An artifact is missing, unreadable, or its digest does not match.

    Example:
        >>> ArtifactError("missing output 'model' of step 'train'").message
        "missing output 'model' of step 'train'"
    """


class DataError(CloudMLError):
    """Data does not fit what a stage expects (schema, missing columns, an empty split, ...).

    ``stage`` names where it was found, so a step can report it and a person knows where to look.

    Example:
        >>> e = DataError("split", "the test split is empty", hint="lower test_size or add rows")
        >>> str(e), e.stage
        ('split: the test split is empty', 'split')
    """

    def __init__(self, stage: str, message: str, *, hint: str | None = None) -> None:
        self.stage = stage
        super().__init__(f"{stage}: {message}", hint=hint)


class DeploymentError(CloudMLError):
    """An endpoint deployment failed.

    Example:
        >>> DeploymentError("endpoint churn: green never became ready").message
        'endpoint churn: green never became ready'
    """


class RollbackError(DeploymentError):
    """A rollback could not complete; the endpoint may need manual attention."""
