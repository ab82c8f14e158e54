"""The SageMaker client: boto3 calls for runs, the model registry and endpoints. Needs ``cloudml[aws]``.

Every AWS error is translated to a cloudml error at this boundary (see ``translate``); calls use
botocore's ``standard`` retry mode so throttling and 5xx answers are retried before they surface.

Example:
    >>> translate_code("ThrottlingException", 400).__name__
    'ThrottlingError'
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cloudml.adapter import ModelVersion, RolloutOutcome, RolloutResult
from cloudml.errors import (
    BackendError,
    BackendValidationError,
    ConflictError,
    DeploymentError,
    NotFoundError,
    PermissionDeniedError,
    RunError,
    ServiceUnavailableError,
    ThrottlingError,
)

__all__ = ["API_CALLS", "ERROR_CODES", "RUN_STATES", "SageMakerClient", "SageMakerRun", "iam_policy", "translate",
           "translate_code"]

# Every call this client makes (service, operation). The IAM policy is generated from it, and a test
# checks the source makes no call that is missing here.
API_CALLS: tuple[tuple[str, str], ...] = (
    ("sagemaker", "create_pipeline"), ("sagemaker", "update_pipeline"), ("sagemaker", "start_pipeline_execution"),
    ("sagemaker", "describe_pipeline_execution"), ("sagemaker", "list_pipeline_execution_steps"),
    ("sagemaker", "stop_pipeline_execution"), ("sagemaker", "describe_model_package_group"),
    ("sagemaker", "create_model_package_group"), ("sagemaker", "create_model_package"),
    ("sagemaker", "describe_model_package"), ("sagemaker", "list_model_packages"),
    ("sagemaker", "update_model_package"), ("sagemaker", "create_model"), ("sagemaker", "create_endpoint_config"),
    ("sagemaker", "create_endpoint"), ("sagemaker", "update_endpoint"), ("sagemaker", "describe_endpoint"),
    ("sagemaker-runtime", "invoke_endpoint"), ("cloudwatch", "put_metric_alarm"), ("cloudwatch", "describe_alarms"),
    ("s3", "upload_file"), ("scheduler", "create_schedule"), ("scheduler", "update_schedule"),
    # rollouts driven by cloudml's controller over production and shadow variants (variants.py)
    ("sagemaker", "describe_endpoint_config"), ("sagemaker", "update_endpoint_weights_and_capacities"),
    ("sagemaker", "delete_endpoint"), ("cloudwatch", "get_metric_data"),
    # reading captured requests back for drift (capture.py)
    ("s3", "list_objects_v2"), ("s3", "get_object"),
    # instances.autoscale (autoscale.py)
    ("application-autoscaling", "register_scalable_target"), ("application-autoscaling", "put_scaling_policy"),
    ("application-autoscaling", "describe_scalable_targets"), ("application-autoscaling", "describe_scaling_policies"),
    ("application-autoscaling", "delete_scaling_policy"), ("application-autoscaling", "deregister_scalable_target"),
)
_IAM_PREFIX = {"sagemaker": "sagemaker", "sagemaker-runtime": "sagemaker", "cloudwatch": "cloudwatch", "s3": "s3",
               "scheduler": "scheduler", "application-autoscaling": "application-autoscaling"}
_IAM_ACTION = {("s3", "upload_file"): ("PutObject", "AbortMultipartUpload"), ("s3", "list_objects_v2"): ("ListBucket",)}


def iam_policy(calls: tuple[tuple[str, str], ...] = API_CALLS) -> dict[str, Any]:
    """The least-privilege IAM policy for the calls this client makes, plus passing the execution role.

    Example:
        >>> "sagemaker:UpdateEndpoint" in iam_policy()["Statement"][0]["Action"]
        True
    """
    actions = sorted({f"{_IAM_PREFIX[svc]}:{action}" for svc, op in calls
                      for action in _IAM_ACTION.get((svc, op), (op.title().replace("_", ""),))})
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "CloudmlSageMaker", "Effect": "Allow", "Action": actions, "Resource": "*"},
        {"Sid": "CloudmlPassExecutionRole", "Effect": "Allow", "Action": "iam:PassRole", "Resource": "*",
         "Condition": {"StringEquals": {"iam:PassedToService": ["sagemaker.amazonaws.com",
                                                                 "scheduler.amazonaws.com"]}}},
        # the first RegisterScalableTarget creates Application Auto Scaling's role for SageMaker endpoints
        {"Sid": "CloudmlAutoScalingServiceRole", "Effect": "Allow", "Action": "iam:CreateServiceLinkedRole",
         "Resource": "arn:aws:iam::*:role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
                     "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint",
         "Condition": {"StringLike": {"iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"}}},
    ]}

RUN_STATES = {"Executing": "running", "Stopping": "running", "Stopped": "cancelled", "Failed": "failed",
              "Succeeded": "succeeded", "CompletedWithFailures": "failed"}
STEP_STATES = {"Starting": "pending", "Executing": "running", "Stopping": "running", "Stopped": "cancelled",
               "Failed": "failed", "Succeeded": "succeeded"}
ERROR_CODES: dict[str, type[BackendError]] = {
    "ThrottlingException": ThrottlingError, "Throttling": ThrottlingError, "TooManyRequestsException": ThrottlingError,
    "RequestLimitExceeded": ThrottlingError, "ProvisionedThroughputExceededException": ThrottlingError,
    "ResourceNotFound": NotFoundError, "ResourceNotFoundException": NotFoundError, "NoSuchKey": NotFoundError,
    "NoSuchBucket": NotFoundError, "404": NotFoundError,
    "ResourceInUse": ConflictError, "ResourceLimitExceeded": ConflictError, "ConflictException": ConflictError,
    "ServiceQuotaExceededException": ConflictError,
    "AccessDenied": PermissionDeniedError, "AccessDeniedException": PermissionDeniedError,
    "UnrecognizedClientException": PermissionDeniedError, "InvalidClientTokenId": PermissionDeniedError,
    "ExpiredTokenException": PermissionDeniedError, "403": PermissionDeniedError,
    "ValidationException": BackendValidationError, "ValidationError": BackendValidationError,
    "InvalidParameterValue": BackendValidationError, "400": BackendValidationError,
    "ExpiredToken": PermissionDeniedError, "LimitExceeded": ConflictError, "InvalidNextToken": BackendValidationError,
    "InvalidRequest": BackendValidationError, "InvalidWriteOffset": BackendValidationError,
    "TooManyParts": BackendValidationError, "EncryptionTypeMismatch": BackendValidationError,
    "NoSuchUpload": NotFoundError, "ModelError": ServiceUnavailableError,
    "InvalidObjectState": ConflictError,  # GetObject of an archived (Glacier) capture file: restore it first
    "ConcurrentUpdateException": ConflictError, "LimitExceededException": ConflictError,  # Application Auto Scaling
    "InternalServiceException": ServiceUnavailableError, "FailedResourceAccessException": PermissionDeniedError,
    "InvalidNextTokenException": BackendValidationError,
    "InternalFailure": ServiceUnavailableError, "InternalServerError": ServiceUnavailableError,
    "ServiceUnavailable": ServiceUnavailableError, "InternalError": ServiceUnavailableError,
    "500": ServiceUnavailableError, "503": ServiceUnavailableError,
}
_APPROVAL_IN = {"PendingManualApproval": "pending", "Approved": "approved", "Rejected": "rejected"}
_APPROVAL_OUT = {v: k for k, v in _APPROVAL_IN.items()}


def translate_code(code: str, status: int) -> type[BackendError]:
    """The cloudml error class for an AWS error code (and HTTP status as a fallback).

    Example:
        >>> translate_code("ResourceInUse", 400).__name__, translate_code("Weird", 503).__name__
        ('ConflictError', 'ServiceUnavailableError')
    """
    if code in ERROR_CODES:
        return ERROR_CODES[code]
    if code.endswith("NotFound") or code.endswith("NotFoundException") or "DoesNotExist" in code:
        return NotFoundError
    if status >= 500:
        return ServiceUnavailableError
    if status == 429:
        return ThrottlingError
    return BackendError


def translate(exc: Exception, action: str) -> BackendError:
    """A botocore exception as a cloudml error (raise it ``from exc``).

    moto answers operations it does not implement with HTTP 500 and an HTML page; that arrives as a
    ``500`` error code and is reported as "not available on this endpoint".

    Example:
        >>> from botocore.exceptions import ClientError
        >>> e = ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"},
        ...                  "ResponseMetadata": {"HTTPStatusCode": 400}}, "CreatePipeline")
        >>> err = translate(e, "sagemaker.create_pipeline"); type(err).__name__, err.vendor_code
        ('ThrottlingError', 'ThrottlingException')
    """
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
    )

    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", "Unknown"))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        message = str(err.get("Message") or code)
        if code == "500" and "html" in message.lower():
            message = "the endpoint does not implement this operation"
        cls = translate_code(code, status)
        hint = "check the IAM permissions: cloudml iam-policy --target sagemaker" if cls is PermissionDeniedError else None
        return cls(f"{action}: {message}", backend="sagemaker", vendor_code=code, hint=hint)
    if isinstance(exc, NoCredentialsError):
        return PermissionDeniedError(f"{action}: no AWS credentials", backend="sagemaker",
                                     hint="configure credentials (AWS_PROFILE, environment or an instance role)")
    if isinstance(exc, NoRegionError):
        return BackendValidationError(f"{action}: no AWS region", backend="sagemaker",
                                      hint="set sagemaker.region in cloudml.yaml or CLOUDML_SAGEMAKER_REGION")
    if isinstance(exc, EndpointConnectionError):
        return ServiceUnavailableError(f"{action}: {exc}", backend="sagemaker")
    if isinstance(exc, BotoCoreError):
        return BackendError(f"{action}: {exc}", backend="sagemaker")
    raise exc


@dataclass
class SageMakerRun:
    """A pipeline execution: status, steps, wait, cancel, and where its logs are."""

    client: SageMakerClient
    arn: str

    @property
    def id(self) -> str:
        """The execution ARN."""
        return self.arn

    @property
    def status(self) -> str:
        """Neutral status: running, succeeded, failed or cancelled."""
        desc = self.client.call("sagemaker", "describe_pipeline_execution", PipelineExecutionArn=self.arn)
        return RUN_STATES.get(desc["PipelineExecutionStatus"], "running")

    @property
    def error(self) -> str | None:
        """The failure reason, if the execution failed."""
        desc = self.client.call("sagemaker", "describe_pipeline_execution", PipelineExecutionArn=self.arn)
        status = desc["PipelineExecutionStatus"]
        if status not in ("Failed", "CompletedWithFailures"):
            return desc.get("FailureReason") or None
        failed = [s for s in self.steps if s["status"] == "failed"]
        if failed:  # name the step, as every backend does
            return "; ".join(f"step '{s['name']}' failed: {s['error'] or 'no reason given'}" for s in failed)
        return desc.get("FailureReason") or f"execution {status}"

    @property
    def steps(self) -> list[dict[str, Any]]:
        """One entry per executed step: name, neutral status, cache hit, attempts, failure reason, job ARN."""
        out = []
        for page in self.client.pages("list_pipeline_execution_steps", "PipelineExecutionSteps",
                                      PipelineExecutionArn=self.arn):
            status = STEP_STATES.get(page.get("StepStatus", ""), "pending")
            cached = bool(page.get("CacheHitResult"))
            out.append({"name": page["StepName"], "status": "cached" if cached and status == "succeeded" else status,
                        "cache_hit": int(cached), "attempts": page.get("AttemptCount", 1),
                        "error": page.get("FailureReason"), "job": _job_arn(page.get("Metadata", {}))})
        return out

    def logs(self, step: str, attempt: int | None = None, stream: str = "stdout") -> str:
        """Where the step's logs are: the CloudWatch log group and stream prefix of its job (every attempt
        and both streams of a job land there, so ``attempt`` and ``stream`` do not narrow it)."""
        groups = {"training-job": "TrainingJobs", "processing-job": "ProcessingJobs", "transform-job": "TransformJobs"}
        for s in self.steps:
            if s["name"] == step and s["job"]:
                kind, _, name = s["job"].rpartition("/")
                group = next((g for k, g in groups.items() if kind.endswith(k)), None)
                if group is None:
                    return ""  # models, packages, conditions: no job, no logs
                return f"CloudWatch Logs: log group /aws/sagemaker/{group}, streams {name}/*"
        return ""

    def wait(self, timeout: float | None = None, poll: float = 10.0) -> str:
        """Poll until the execution ends (botocore has no waiter for executions)."""
        deadline = None if timeout is None else time.time() + timeout
        while True:
            status = self.status
            if status in ("succeeded", "failed", "cancelled"):
                return status
            if deadline is not None and time.time() >= deadline:
                return status
            time.sleep(poll)

    def cancel(self) -> None:
        """Stop the execution."""
        self.client.call("sagemaker", "stop_pipeline_execution", PipelineExecutionArn=self.arn,
                         ClientRequestToken=uuid.uuid4().hex)


def _job_arn(metadata: dict[str, Any]) -> str | None:
    for key in ("ProcessingJob", "TrainingJob", "TransformJob", "Model", "RegisterModel"):
        if key in metadata and "Arn" in metadata[key]:
            return str(metadata[key]["Arn"])
    return None


class SageMakerClient:
    """boto3 clients (sagemaker, cloudwatch, s3) with standard retries and translated errors."""

    def __init__(self, settings: Any, session: Any = None, *, max_attempts: int = 8) -> None:
        import boto3
        from botocore.config import Config

        self.settings = settings
        self.session = session or boto3.Session(region_name=settings.region)
        self.config = Config(retries={"mode": "standard", "max_attempts": max_attempts})
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        """A boto3 client (cached), pointed at ``settings.endpoint_url`` when set."""
        if service not in self._clients:
            self._clients[service] = self.session.client(service, endpoint_url=self.settings.endpoint_url,
                                                         config=self.config)
        return self._clients[service]

    def call(self, service: str, operation: str, **kwargs: Any) -> Any:
        """One API call; AWS errors come back as cloudml errors."""
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client(service), operation)(**kwargs)
        except (ClientError, BotoCoreError) as e:
            raise translate(e, f"{service}.{operation}") from e
        except Boto3Error as e:  # S3 transfers wrap the ClientError in S3UploadFailedError
            cause = e.__cause__ or e.__context__
            if isinstance(cause, (ClientError, BotoCoreError)):
                raise translate(cause, f"{service}.{operation}") from e
            raise BackendError(f"{service}.{operation}: {e}", backend="sagemaker") from e

    def pages(self, operation: str, key: str, **kwargs: Any) -> list[dict[str, Any]]:
        """Every item of a paginated SageMaker list call."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            resp = self.call("sagemaker", operation, **kwargs, **({"NextToken": token} if token else {}))
            items += resp.get(key, [])
            token = resp.get("NextToken")
            if not token:
                return items

    # -- pipelines -------------------------------------------------------------------------------
    def upload_code(self, definition: dict[str, Any], pipeline: Any, base_dir: Path) -> list[str]:
        """Upload every code bundle the definition names (folder + cloudml's runtime); returns their URIs.

        Bundles are content-addressed, so an unchanged folder is uploaded to the same place again
        (S3 keeps the bytes; the definition, and with it SageMaker's cache key, stays the same).
        """
        import cloudml.runtime
        from cloudml.adapters.sagemaker.compiler import code_digest
        from cloudml.codebundle import NO_CODE, CodeBundle, step_bundle

        text = json.dumps(definition)
        bundles = {code_digest(b): b for b in (step_bundle(base_dir, pipeline.effective(s))
                                               for s in pipeline.task_steps())}
        bundles.setdefault(code_digest(NO_CODE), CodeBundle(NO_CODE))
        bucket, prefix = self._bucket_prefix(pipeline.name)
        uploaded = []
        for digest, bundle in bundles.items():
            if f"/code/{digest}/" not in text:
                continue
            key_root = f"{prefix}/code/{digest}/"
            for name, source in bundle.files():
                self.call("s3", "upload_file", Filename=str(source or cloudml.runtime.__file__), Bucket=bucket,
                          Key=key_root + name)
            uploaded.append(f"s3://{bucket}/{key_root}")
        return uploaded

    def _bucket_prefix(self, pipeline: str) -> tuple[str, str]:
        if not self.settings.bucket:
            raise BackendValidationError("uploading code needs an S3 bucket", backend="sagemaker",
                                         hint="set sagemaker.bucket in cloudml.yaml or CLOUDML_SAGEMAKER_BUCKET")
        prefix = self.settings.prefix.strip("/")
        return self.settings.bucket, f"{prefix}/{pipeline}" if prefix else pipeline

    def upsert_pipeline(self, name: str, definition: dict[str, Any], role_arn: str,
                        max_parallel_steps: int | None = None, tags: dict[str, str] | None = None) -> str:
        """Create the pipeline, or update it when it exists; returns its ARN."""
        body = json.dumps(definition)
        extra: dict[str, Any] = {}
        if max_parallel_steps:
            extra["ParallelismConfiguration"] = {"MaxParallelExecutionSteps": max_parallel_steps}
        try:
            resp = self.call("sagemaker", "create_pipeline", PipelineName=name, PipelineDefinition=body,
                             RoleArn=role_arn, ClientRequestToken=uuid.uuid4().hex,
                             **({"Tags": [{"Key": k, "Value": v} for k, v in tags.items()]} if tags else {}), **extra)
        except (ConflictError, BackendValidationError) as e:
            if "exist" not in str(e).lower():
                raise
            resp = self.call("sagemaker", "update_pipeline", PipelineName=name, PipelineDefinition=body,
                             RoleArn=role_arn, **extra)
        return str(resp["PipelineArn"])

    def upsert_schedule(self, request: dict[str, Any]) -> str:
        """Create the EventBridge schedule, or update it when it exists; returns its ARN.

        Example:
            >>> from cloudml.config import SageMakerSettings
            >>> client = SageMakerClient(SageMakerSettings(region="eu-west-1"))  # doctest: +SKIP
            >>> from cloudml.adapters.sagemaker.schedule import schedule_request
            >>> client.upsert_schedule(schedule_request(pipeline, pipeline_arn, role_arn))  # doctest: +SKIP
            'arn:aws:scheduler:eu-west-1:123456789012:schedule/default/cloudml-churn'
        """
        try:
            resp = self.call("scheduler", "create_schedule", ClientToken=uuid.uuid4().hex, **request)
        except ConflictError as e:
            if "exist" not in str(e).lower():
                raise
            resp = self.call("scheduler", "update_schedule", ClientToken=uuid.uuid4().hex, **request)
        return str(resp["ScheduleArn"])

    def start(self, name: str, parameters: dict[str, Any]) -> SageMakerRun:
        """Start an execution; parameter values travel as strings."""
        params = [{"Name": k, "Value": _param_text(v)} for k, v in parameters.items()]
        resp = self.call("sagemaker", "start_pipeline_execution", PipelineName=name, PipelineParameters=params,
                         ClientRequestToken=uuid.uuid4().hex)
        return SageMakerRun(self, str(resp["PipelineExecutionArn"]))

    # -- model registry ----------------------------------------------------------------------------
    def ensure_group(self, group: str) -> None:
        """Create the model package group if it does not exist."""
        try:
            self.call("sagemaker", "describe_model_package_group", ModelPackageGroupName=group)
        except (NotFoundError, BackendValidationError):
            self.call("sagemaker", "create_model_package_group", ModelPackageGroupName=group,
                      ModelPackageGroupDescription=f"cloudml model group {group}")

    def register(self, group: str, model_data_url: str, image: str, approval: str = "pending",
                 metrics: dict[str, Any] | None = None, tags: dict[str, str] | None = None) -> ModelVersion:
        """A new model package version in ``group``."""
        self.ensure_group(group)
        kwargs: dict[str, Any] = {
            "ModelPackageGroupName": group, "ModelApprovalStatus": _APPROVAL_OUT[approval],
            "InferenceSpecification": {"Containers": [{"Image": image, "ModelDataUrl": model_data_url}],
                                       "SupportedContentTypes": ["application/json"],
                                       "SupportedResponseMIMETypes": ["application/json"]}}
        if tags or metrics:
            props = dict(tags or {})
            props.update({f"metric.{k}": str(v) for k, v in (metrics or {}).items()})
            kwargs["CustomerMetadataProperties"] = props
        arn = self.call("sagemaker", "create_model_package", **kwargs)["ModelPackageArn"]
        return self._version(self.call("sagemaker", "describe_model_package", ModelPackageName=arn))

    def _version(self, d: dict[str, Any]) -> ModelVersion:
        props = d.get("CustomerMetadataProperties") or {}
        containers = d.get("InferenceSpecification", {}).get("Containers", [{}])
        created = d.get("CreationTime")
        return ModelVersion(
            group=d["ModelPackageGroupName"], version=int(d.get("ModelPackageVersion", 1)),
            uri=str(containers[0].get("ModelDataUrl", "")),
            approval=_APPROVAL_IN.get(d.get("ModelApprovalStatus", "PendingManualApproval"), "pending"),  # type: ignore[arg-type]
            metrics={k[7:]: float(v) for k, v in props.items() if k.startswith("metric.")},
            tags={k: v for k, v in props.items() if not k.startswith("metric.")},
            created_at=created if isinstance(created, datetime) else None,
            run_id=d.get("ModelPackageArn"))

    def versions(self, group: str, approval: str | None = None) -> list[ModelVersion]:
        """Versions of a group, newest first."""
        kwargs: dict[str, Any] = {"ModelPackageGroupName": group, "SortBy": "CreationTime", "SortOrder": "Descending"}
        if approval:
            kwargs["ModelApprovalStatus"] = _APPROVAL_OUT[approval]
        rows = self.pages("list_model_packages", "ModelPackageSummaryList", **kwargs)
        out = [self._version(self.call("sagemaker", "describe_model_package", ModelPackageName=r["ModelPackageArn"]))
               for r in rows]
        return sorted(out, key=lambda m: m.version, reverse=True)

    def package_arn(self, group: str, version: int) -> str:
        """The ARN of version ``version`` of ``group``."""
        for r in self.pages("list_model_packages", "ModelPackageSummaryList", ModelPackageGroupName=group):
            if int(r.get("ModelPackageVersion", 0)) == version:
                return str(r["ModelPackageArn"])
        raise NotFoundError(f"model {group} v{version} does not exist", backend="sagemaker")

    def set_approval(self, group: str, version: int, approval: str) -> ModelVersion:
        """Approve, reject or reset a version."""
        arn = self.package_arn(group, version)
        self.call("sagemaker", "update_model_package", ModelPackageArn=arn, ModelApprovalStatus=_APPROVAL_OUT[approval])
        return self._version(self.call("sagemaker", "describe_model_package", ModelPackageName=arn))

    # -- endpoints ------------------------------------------------------------------------------------
    def deploy(self, plan: dict[str, Any], model: ModelVersion, role_arn: str, *, poll: float = 15.0,
               timeout: float = 3600.0) -> RolloutResult:
        """Create or update the endpoint with native guardrails; detect a silent rollback."""
        endpoint = plan["EndpointName"]
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
        name = f"{endpoint}-v{model.version}-{stamp}"[:63]
        from cloudml.adapters.sagemaker.deploy import model_container

        container = model_container(plan.get("Serving") or {}, self.package_arn(model.group, model.version), model.uri)
        self.call("sagemaker", "create_model", ModelName=name, ExecutionRoleArn=role_arn, PrimaryContainer=container)
        try:
            current = self.call("sagemaker", "describe_endpoint", EndpointName=endpoint)
        except (NotFoundError, BackendValidationError):
            current = None
        variant = {**plan["ProductionVariant"], "ModelName": name}
        alarms = plan["PutMetricAlarm"]
        live = [v["VariantName"] for v in (current or {}).get("ProductionVariants", [])]
        if len(live) == 1 and live[0] != variant["VariantName"]:
            # guardrails keep variant names: a variant from cloudml's controller (churn-v2) keeps its name
            variant["VariantName"] = live[0]
            alarms = [_renamed_variant(r, live[0]) for r in alarms]
        from cloudml.adapters.sagemaker.capture import complete_capture

        capture = complete_capture(plan.get("DataCaptureConfig"), endpoint, self.settings)
        self.call("sagemaker", "create_endpoint_config", EndpointConfigName=name, ProductionVariants=[variant],
                  **({"DataCaptureConfig": capture} if capture else {}))
        for request in alarms:
            self.call("cloudwatch", "put_metric_alarm", **request)
        from cloudml.adapters.sagemaker import autoscale

        history: list[dict[str, Any]] = [{"at": _now(), "event": "requested", "config": name}]
        saved = None
        if current is None:
            self.call("sagemaker", "create_endpoint", EndpointName=endpoint, EndpointConfigName=name)
        else:
            # SageMaker refuses to update a variant registered for scaling: take it off, put it back afterwards
            try:
                saved = autoscale.remove(self, endpoint, variant["VariantName"])
            except PermissionDeniedError:
                if plan.get("Autoscaling"):
                    raise
                history.append({"at": _now(), "event": "autoscaling not checked (no application-autoscaling "
                                "permissions)"})  # an older policy: updates without autoscale keep working
            self.call("sagemaker", "update_endpoint", EndpointName=endpoint, EndpointConfigName=name,
                      DeploymentConfig=plan["DeploymentConfig"])
        result = self._outcome(endpoint, name, plan, history, poll, timeout)
        if result.outcome is RolloutOutcome.SUCCEEDED and plan.get("Autoscaling"):
            autoscale.apply(self, endpoint, variant["VariantName"], plan["Autoscaling"])
            history.append({"at": _now(), "event": "autoscaling", "variant": variant["VariantName"],
                            "min": plan["Autoscaling"]["ScalableTarget"]["MinCapacity"],
                            "max": plan["Autoscaling"]["ScalableTarget"]["MaxCapacity"]})
        elif result.outcome is not RolloutOutcome.SUCCEEDED and saved is not None:
            autoscale.restore(self, endpoint, variant["VariantName"], saved)  # the old config serves: as it was
        return result

    def _outcome(self, endpoint: str, requested: str, plan: dict[str, Any], history: list[dict[str, Any]],
                 poll: float, timeout: float) -> RolloutResult:
        deadline = time.time() + timeout
        while True:
            desc = self.call("sagemaker", "describe_endpoint", EndpointName=endpoint)
            status = desc["EndpointStatus"]
            if status not in ("Creating", "Updating", "RollingBack", "SystemUpdating"):
                break
            if time.time() > deadline:
                raise DeploymentError(f"endpoint {endpoint} still {status} after {timeout:g}s",
                                      hint=f"aws sagemaker describe-endpoint --endpoint-name {endpoint}")
            time.sleep(poll)
        history.append({"at": _now(), "event": status, "config": desc.get("EndpointConfigName")})
        if status == "InService" and desc.get("EndpointConfigName") == requested:
            return RolloutResult(endpoint, RolloutOutcome.SUCCEEDED, history=history)
        if status == "InService":
            alarm, value = self._fired_alarm(plan)
            reason = desc.get("FailureReason") or "SageMaker rolled back to the previous endpoint config"
            return RolloutResult(endpoint, RolloutOutcome.ROLLED_BACK, alarm=alarm, metric_value=value,
                                 at=datetime.now(timezone.utc), reason=reason, history=history)
        return RolloutResult(endpoint, RolloutOutcome.FAILED, reason=desc.get("FailureReason") or status,
                             at=datetime.now(timezone.utc), history=history)

    def _fired_alarm(self, plan: dict[str, Any]) -> tuple[str | None, float | None]:
        names = [a["AlarmName"] for a in plan["DeploymentConfig"].get("AutoRollbackConfiguration", {}).get("Alarms", [])]
        if not names:
            return None, None
        resp = self.call("cloudwatch", "describe_alarms", AlarmNames=names)
        for alarm in resp.get("MetricAlarms", []):
            if alarm.get("StateValue") == "ALARM":
                return str(alarm["AlarmName"]), None
        return None, None

    def invoke(self, endpoint: str, instances: list[Any]) -> dict[str, Any]:
        """POST ``{"instances": [...]}`` to the endpoint through sagemaker-runtime."""
        resp = self.call("sagemaker-runtime", "invoke_endpoint", EndpointName=endpoint,
                         ContentType="application/json", Body=json.dumps({"instances": instances}))
        body = resp["Body"].read()
        try:
            return dict(json.loads(body))
        except (ValueError, TypeError):
            raise RunError(f"endpoint {endpoint} answered something that is not a JSON object") from None


def _renamed_variant(request: Any, variant: str) -> Any:
    """An alarm request with every ``VariantName`` dimension set to ``variant``."""
    if isinstance(request, dict):
        if request.get("Name") == "VariantName" and "Value" in request:
            return {**request, "Value": variant}
        return {k: _renamed_variant(v, variant) for k, v in request.items()}
    if isinstance(request, list):
        return [_renamed_variant(v, variant) for v in request]
    return request


def _param_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
