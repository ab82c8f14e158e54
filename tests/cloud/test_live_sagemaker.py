"""Live SageMaker: the whole lifecycle in a real AWS account, through the adapter's public API.

compile + validate -> run a two-step pipeline to completion (``prepare``: a command on the public
SageMaker scikit-learn image; ``summarise``: a python step) -> register a model version -> approve ->
deploy it ``all_at_once`` -> invoke -> deploy a second version as a ``canary`` with a CloudWatch alarm
-> **trip the alarm** (``cloudwatch:SetAlarmState`` to ALARM, repeated while the canary bakes) so that
SageMaker's own guardrails roll back -> check the endpoint is back on the first config and still
answers -> delete everything (endpoint, endpoint configs, models, alarms, model packages and their
group, the pipeline, the S3 objects) in ``finally``.

Run: ``CLOUDML_LIVE=1 CLOUDML_SAGEMAKER_REGION=eu-west-1 CLOUDML_SAGEMAKER_ROLE_ARN=arn:... \
CLOUDML_SAGEMAKER_BUCKET=my-bucket python -m pytest tests/cloud/test_live_sagemaker.py -v`` with AWS
credentials botocore can resolve (environment, profile, SSO). Names: ``cloudml-live-<6 hex>``.

Cost and time (on-demand list prices, us-east-1, late 2026; check yours): two processing jobs on
``ml.m5.large`` (~3 min each, billed per second: < $0.02); the endpoint runs 2 x ``ml.m5.large``
(~$0.115/h each) for ~35 min, plus 2 more during the canary's blue/green fleet: **about $0.30 in all**,
plus pennies of S3 and CloudWatch. Wall time 35-60 min (endpoint creation ~8 min, the canary's
new fleet ~8 min, its 5 min bake, the rollback). Hard timeout: 90 min for the scenario, then 20 min
for the cleanup.

Assumptions not verified against AWS (this was built and checked against the fakes only):

* the serving container is the AWS Deep Learning Container ``pytorch-inference`` (account
  763104351884, the one most commercial regions use; override with
  ``CLOUDML_LIVE_SAGEMAKER_SERVING_IMAGE``), which loads ``code/inference.py`` from ``model.tar.gz``
  without any environment variable: cloudml's ``deploy`` sets none, and its ``invoke`` sends
  ``{"instances": [...]}`` as JSON, which the script answers;
* ``SetAlarmState`` holds ALARM until the alarm's next evaluation (60 s here, no datapoints); the
  watcher re-sets it every 10 s while the canary bakes, and SageMaker polls alarms during the bake.

Fake mode (``CLOUDML_LIVE_TARGET=fake``): the same body against ``tests/fakes/sagemaker.py`` (moto
behind it), with durations scaled by 0.01. Differences, each confined to :class:`SageMakerTarget`:
the fake never runs a job, so the execution is walked through Executing -> Succeeded with
``set_execution_status`` as tests/unit/test_sagemaker_client.py does (the steps are listed from the
definition); moto's ``InvokeEndpoint`` answers only what the test queued for it, so one answer is
queued before each invoke; and moto has neither ``DeleteModelPackage`` nor ``DeleteModelPackageGroup``,
so those two deletions are listed as unserved instead of sent.
"""

from __future__ import annotations

import io
import json
import tarfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cloudml.adapter import RolloutOutcome
from cloudml.config import SageMakerSettings
from cloudml.spec.deployment import Deployment
from tests.cloud import _live

CLOUD = "sagemaker"
pytestmark = pytest.mark.cloud

FAKE_REGION, FAKE_BUCKET = "us-east-1", "cloudml-live-fake"
FAKE_ROLE = "arn:aws:iam::123456789012:role/cloudml-live"
INSTANCES = {"count": 2, "instance_type": {"sagemaker": "ml.m5.large"}}  # a 50% canary needs 2 instances

INFERENCE_PY = '''\
import json
import os


def model_fn(model_dir):
    with open(os.path.join(model_dir, "VERSION")) as fh:
        return {"version": fh.read().strip()}


def input_fn(body, content_type):
    return json.loads(body)["instances"]


def predict_fn(rows, model):
    return {"predictions": [sum(float(x) for x in row) for row in rows], "model": model["version"]}


def output_fn(prediction, accept):
    return json.dumps(prediction)
'''


def model_tarball(version: str) -> bytes:
    """``model.tar.gz``: ``VERSION`` and ``code/inference.py`` (the DLC's default script location)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in (("VERSION", version), ("code/inference.py", INFERENCE_PY)):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@dataclass
class SageMakerTarget:
    """What differs between a real account and the fake; the scenario itself never asks which."""

    mode: str
    adapter: Any
    prefix: str
    workdir: Path
    settings: SageMakerSettings
    serving_image: str
    poll: float
    limit: float
    cleanup_limit: float
    pipeline_timeout: float
    fake: Any = None

    @property
    def is_fake(self) -> bool:
        return self.mode == "fake"

    def new_adapter(self) -> Any:
        from cloudml.adapters.sagemaker import SageMakerAdapter

        a = SageMakerAdapter(self.settings)
        a.base_dir = self.workdir
        return a

    def advance(self, run: Any) -> None:
        """Fake only: no job runs, so walk the execution through Executing to Succeeded (as the unit tests do)."""
        if self.is_fake:
            self.fake.set_execution_status(run.arn, ["Executing", "Executing", "Succeeded"])

    def remaining(self) -> list[str]:
        """Endpoints named after this run that still exist and are not being deleted (after the cleanup)."""
        rows = self.adapter.client().call("sagemaker", "list_endpoints", NameContains=self.prefix)["Endpoints"]
        return [r["EndpointName"] for r in rows if r.get("EndpointStatus") != "Deleting"]

    def queue_answer(self) -> None:
        """Fake only: moto's InvokeEndpoint returns queued answers; queue what the script would say."""
        if not self.is_fake:
            return
        body = json.dumps({"region": FAKE_REGION, "results": [
            {"Body": json.dumps({"predictions": [3.0], "model": "fake"}), "ContentType": "application/json"}]})
        request = urllib.request.Request(f"{self.fake.moto.url}/moto-api/static/sagemaker/endpoint-results",
                                         data=body.encode(), headers={"Content-Type": "application/json"},
                                         method="POST")
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 201


@contextmanager
def sagemaker_target(mode: str, workdir: Path) -> Iterator[SageMakerTarget]:
    """A live target from ``CLOUDML_SAGEMAKER_*``, or the fake (moto_server + tests/fakes/sagemaker.py)."""
    prefix = _live.resource_prefix()
    with ExitStack() as stack:
        if mode == "fake":
            from tests.fakes.sagemaker import sagemaker_fake

            fake = stack.enter_context(sagemaker_fake(time_scale=0.01))
            fake.client("s3").create_bucket(Bucket=FAKE_BUCKET)
            settings = SageMakerSettings(region=FAKE_REGION, role_arn=FAKE_ROLE, bucket=FAKE_BUCKET,
                                         endpoint_url=fake.url, state_dir=str(workdir / "state"))
            timing = {"poll": 0.05, "limit": 60.0, "cleanup_limit": 30.0, "pipeline_timeout": 30.0}
        else:
            fake = None
            env = _live.ENV
            settings = SageMakerSettings(region=env["CLOUDML_SAGEMAKER_REGION"],
                                         role_arn=env["CLOUDML_SAGEMAKER_ROLE_ARN"],
                                         bucket=env["CLOUDML_SAGEMAKER_BUCKET"],
                                         prefix=env.get("CLOUDML_SAGEMAKER_PREFIX", "cloudml"),
                                         state_dir=str(workdir / "state"))
            timing = {"poll": 15.0, "limit": 90 * 60.0, "cleanup_limit": 20 * 60.0, "pipeline_timeout": 40 * 60.0}
        image = _live.ENV.get("CLOUDML_LIVE_SAGEMAKER_SERVING_IMAGE") or (
            f"763104351884.dkr.ecr.{settings.region}.amazonaws.com/"
            "pytorch-inference:2.1.0-cpu-py310-ubuntu20.04-sagemaker")
        target = SageMakerTarget(mode, None, prefix, workdir, settings, image, fake=fake, **timing)
        target.adapter = target.new_adapter()
        yield target


def _deployment(endpoint: str, group: str, version: int, strategy: Any, alarms: list[dict[str, Any]] | None = None
                ) -> Deployment:
    return Deployment.model_validate({"endpoint": endpoint, "model": {"group": group, "version": version},
                                      "instances": INSTANCES, "strategy": strategy, "alarms": alarms or [],
                                      "max_duration": "1h"})


def _register_cleanup(t: SageMakerTarget, cleanup: _live.Cleanup, name: str) -> None:
    """Every deletion the scenario may need, registered before anything exists (each tolerates absence)."""
    client = t.adapter.client()
    s = t.settings
    prefix = "/".join(p for p in (s.prefix.strip("/"), name) if p) + "/"

    def s3_objects() -> None:
        keys = [o["Key"] for page in _pages(client, "s3", "list_objects_v2", "Contents", Bucket=s.bucket,
                                            Prefix=prefix) for o in page]
        for i in range(0, len(keys), 1000):
            client.call("s3", "delete_objects", Bucket=s.bucket,
                        Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]], "Quiet": True})

    def pipeline() -> None:
        client.call("sagemaker", "delete_pipeline", PipelineName=name, ClientRequestToken=uuid.uuid4().hex)

    def packages() -> None:
        for row in client.pages("list_model_packages", "ModelPackageSummaryList", ModelPackageGroupName=name):
            client.call("sagemaker", "delete_model_package", ModelPackageName=row["ModelPackageArn"])

    def group() -> None:
        client.call("sagemaker", "delete_model_package_group", ModelPackageGroupName=name)

    def endpoint() -> None:
        client.call("sagemaker", "delete_endpoint", EndpointName=name)

    def configs_and_models() -> None:
        for row in client.pages("list_endpoint_configs", "EndpointConfigs", NameContains=name):
            client.call("sagemaker", "delete_endpoint_config", EndpointConfigName=row["EndpointConfigName"])
        for row in client.pages("list_models", "Models", NameContains=name):
            client.call("sagemaker", "delete_model", ModelName=row["ModelName"])

    def alarms() -> None:
        found = client.call("cloudwatch", "describe_alarms", AlarmNamePrefix=f"cloudml-{name}-")
        names = [a["AlarmName"] for a in found.get("MetricAlarms", []) + found.get("CompositeAlarms", [])]
        if names:
            client.call("cloudwatch", "delete_alarms", AlarmNames=names)

    # run newest first: endpoint, then what it used; registry; pipeline; objects last
    cleanup.add(f"S3 objects s3://{s.bucket}/{prefix}", s3_objects)
    cleanup.add(f"pipeline {name}", pipeline)
    cleanup.add(f"model package group {name} (moto has no DeleteModelPackageGroup)", group, fake_unserved=True)
    cleanup.add(f"model packages of {name} (moto has no DeleteModelPackage)", packages, fake_unserved=True)
    cleanup.add(f"CloudWatch alarms cloudml-{name}-*", alarms)
    cleanup.add(f"endpoint configs and models named {name}*", configs_and_models)
    cleanup.add(f"endpoint {name}", endpoint)


def _pages(client: Any, service: str, operation: str, key: str, **kwargs: Any) -> Iterator[list[dict[str, Any]]]:
    token: str | None = None
    while True:
        extra = {"ContinuationToken": token} if token else {}
        resp = client.call(service, operation, **kwargs, **extra)
        yield resp.get(key, [])
        token = resp.get("NextContinuationToken")
        if not token:
            return


def _trip_alarm_while_baking(t: SageMakerTarget, endpoint: str, alarm: str, stop: threading.Event,
                             tripped: list[str]) -> None:
    """Once the new fleet bakes, set ``alarm`` to ALARM (again every 10 s live: an evaluation resets it)."""
    client = t.new_adapter().client()
    last = 0.0
    while not stop.is_set():
        desc = client.call("sagemaker", "describe_endpoint", EndpointName=endpoint)
        variants = desc.get("ProductionVariants", []) + desc.get("PendingDeploymentSummary", {}).get(
            "ProductionVariants", [])
        baking = any(s.get("Status") == "Baking" for v in variants for s in v.get("VariantStatus", []))
        if (baking or tripped) and time.monotonic() - last > (0 if t.is_fake else 10):
            client.call("cloudwatch", "set_alarm_state", AlarmName=alarm, StateValue="ALARM",
                        StateReason="cloudml live test: simulated 5xx burst during the canary bake")
            tripped.append(desc.get("EndpointStatus", ""))
            last = time.monotonic()
        stop.wait(t.poll)


def scenario(t: SageMakerTarget) -> _live.Cleanup:
    """The lifecycle; returns the cleanup record (what was deleted, what the fake could not serve)."""

    def body(cleanup: _live.Cleanup) -> None:
        a, name = t.adapter, t.prefix
        client = a.client()
        _register_cleanup(t, cleanup, name)

        # 1. compile + validate, then run to completion
        _live.write_code(t.workdir, name)
        pipeline = _live.tiny_pipeline(name, processing={"framework": "sklearn==1.2"},
                                       python={"framework": "sklearn==1.2"})
        compiled = a.compile(pipeline)
        assert compiled.document["Version"] == "2020-12-01"
        assert a.validate_compiled(compiled) == []
        run = a.run(pipeline)
        t.advance(run)
        assert run.wait(timeout=t.pipeline_timeout, poll=t.poll) == "succeeded", run.error
        steps = {s["name"]: s["status"] for s in run.steps}
        assert steps == {"prepare": "succeeded", "summarise": "succeeded"}, steps

        # 2. register two versions (artifacts the test builds), approve the first
        root = "/".join(p for p in (t.settings.prefix.strip("/"), name) if p)
        uris = []
        for version in ("1", "2"):
            key = f"{root}/models/v{version}/model.tar.gz"
            client.call("s3", "put_object", Bucket=t.settings.bucket, Key=key, Body=model_tarball(version))
            uris.append(f"s3://{t.settings.bucket}/{key}")
        v1 = a.register_model(name, uris[0], image=t.serving_image, metrics={"rows": 3.0})
        assert (v1.version, v1.approval) == (1, "pending")
        assert a.set_approval(name, 1, "approved").approval == "approved"
        assert a.latest_approved(name).version == 1

        # 3. v1 all at once (creates the endpoint), then invoke
        first = a.deploy(_deployment(name, name, 1, {"all_at_once": {}}), poll=t.poll)
        assert first.outcome is RolloutOutcome.SUCCEEDED, first
        first_config = first.history[0]["config"]
        t.queue_answer()
        answer = a.invoke(name, [[1.0, 2.0]])
        assert isinstance(answer.get("predictions"), list) and len(answer["predictions"]) == 1, answer

        # 4. v2 as a canary with an error-rate alarm; the alarm fires during the bake -> SageMaker rolls back
        a.register_model(name, uris[1], image=t.serving_image, approval="approved")
        alarm = f"cloudml-{name}-errors"
        canary = _deployment(name, name, 2, {"canary": {"percent": 50, "bake": "5m"}},
                             alarms=[{"name": "errors", "metric": "error_rate", "threshold": "1%", "period": "60s"}])
        stop, tripped = threading.Event(), []
        watcher = threading.Thread(target=_trip_alarm_while_baking, args=(t, name, alarm, stop, tripped),
                                   daemon=True)
        watcher.start()
        try:
            second = a.deploy(canary, poll=t.poll)
        finally:
            stop.set()
            watcher.join(60)
        assert tripped, "the canary never showed a Baking variant, so the alarm was never set"
        assert second.outcome is RolloutOutcome.ROLLED_BACK, second
        assert second.alarm == alarm, second
        status = a.endpoint_status(name)
        assert (status["EndpointStatus"], status["EndpointConfigName"]) == ("InService", first_config)
        t.queue_answer()
        assert isinstance(a.invoke(name, [[1.0, 2.0]]).get("predictions"), list)

    return _live.run_scenario(body, fake=t.is_fake, limit=t.limit, cleanup_limit=t.cleanup_limit,
                              what="live sagemaker scenario")


def test_live_sagemaker_lifecycle(live_env: str, tmp_path: Path) -> None:
    with sagemaker_target(live_env, tmp_path) as target:
        record = scenario(target)
        assert target.remaining() == []
    assert not record.failures
