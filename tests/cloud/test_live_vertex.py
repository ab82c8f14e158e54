"""Live Vertex AI: the whole lifecycle in a real Google Cloud project, through the adapter's public API.

compile + validate -> run a two-step pipeline job to completion (``prepare``: a command on the public
``python:3.11-slim`` image; ``summarise``: a python step from a code bundle) -> register a model version
(a scikit-learn ``model.joblib`` the test writes under the pipeline root) -> approve -> deploy it
``all_at_once`` -> invoke -> deploy a second version as a ``canary`` -> **manual rollback**
(``VertexAdapter.rollback`` from a second adapter, as ``cloudml rollback`` from another shell would,
while the first one's controller bakes the canary) -> check all traffic is back on v1 and it answers
-> delete everything (endpoint and its deployed models, the model with its versions, the pipeline job,
the objects written under the pipeline root, this run's code bundle) in ``finally``.

Why a manual rollback and not an alarm: Vertex online-prediction metrics reach Cloud Monitoring with
a 60 s sampling period and minutes of delay, so an alarm needs real failing traffic over several
minutes, and Cloud Monitoring's API cannot put a policy into a firing state on demand. The canary
carries an ``error_rate`` alarm anyway, so the controller reads Cloud Monitoring during the bake.

Run: ``CLOUDML_LIVE=1 CLOUDML_VERTEX_PROJECT=my-project CLOUDML_VERTEX_PIPELINE_ROOT=gs://my-bucket/root \
python -m pytest tests/cloud/test_live_vertex.py -v`` with Application Default Credentials
(``gcloud auth application-default login`` or a service-account key). Optional:
``CLOUDML_VERTEX_LOCATION`` (default us-central1), ``CLOUDML_VERTEX_SERVICE_ACCOUNT`` (the pipeline's
service account), ``CLOUDML_LIVE_VERTEX_SERVING_IMAGE``. Names: ``cloudml-live-<6 hex>``.

Cost and time (list prices, us-central1, late 2026; check yours): the pipeline job ($0.03 per run plus
two short e2-standard-4 tasks: < $0.05); the endpoint serves on ``n1-standard-2`` (~$0.11/h per node),
one node for v1 and one for the canary, ~40 min: **about $0.20 in all**. Wall time 40-70 min
(each deployModel takes 10-20 min). Hard timeout: 100 min for the scenario, then 30 min for cleanup.

Assumptions not verified against Google Cloud (built and checked against the fakes only): that the
prebuilt ``sklearn-cpu.1-6`` prediction image loads a ``model.joblib`` pickled by this machine's
scikit-learn (a linear regression; override the image when versions drift too far); that
``rollback`` finishes within the 60 s ``VertexAdapter.rollback`` waits for the running controller
(it undeploys the canary after moving traffic: if that takes longer, the test waits for the
controller's own result instead, and says so).

Fake mode (``CLOUDML_LIVE_TARGET=fake``): the same body against ``tests/fakes/vertex.py`` (REST, with
Cloud Storage) and ``tests/fakes/vertex_monitoring.py`` (gRPC). Differences, confined to
:class:`VertexTarget`: no task runs; the fake advances a pipeline job one state per GET (PENDING ->
RUNNING -> SUCCEEDED), which ``run.wait`` does by polling, as tests/unit/test_vertex_client.py relies
on; predictions echo the instances; and the fake serves no model, pipeline-job or object deletion, so
those three cleanups are listed as unserved (the endpoint deletion is sent).
"""

from __future__ import annotations

import io
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cloudml.adapter import RolloutOutcome
from cloudml.config import VertexSettings
from cloudml.errors import DeploymentError
from cloudml.spec.deployment import Deployment
from tests.cloud import _live

CLOUD = "vertex"
pytestmark = pytest.mark.cloud

FAKE_PROJECT, FAKE_LOCATION, FAKE_ROOT = "cloudml-live-fake", "us-central1", "gs://cloudml-live-fake/root"
SERVING_IMAGE = "us-docker.pkg.dev/vertex-ai/prediction/sklearn-cpu.1-6:latest"


def model_joblib(slope: float) -> bytes:
    """A fitted scikit-learn linear regression, ``joblib`` bytes (what the prebuilt image loads)."""
    import joblib
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit([[1.0, 0.0], [2.0, 0.0], [3.0, 1.0]], [slope, 2 * slope, 3 * slope + 1])
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getvalue()


@contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@dataclass
class VertexTarget:
    """What differs between a real project and the fakes; the scenario itself never asks which."""

    mode: str
    adapter: Any
    prefix: str
    workdir: Path
    settings: VertexSettings
    serving_image: str
    poll: float
    limit: float
    cleanup_limit: float
    pipeline_timeout: float
    fake: Any = None

    @property
    def is_fake(self) -> bool:
        return self.mode == "fake"

    def remaining(self) -> list[str]:
        """Endpoints named after this run that still exist (after the cleanup)."""
        return [e for e in self.new_adapter().endpoints.list() if self.prefix in e]

    def new_adapter(self) -> Any:
        from cloudml.adapters.vertex import VertexAdapter

        a = VertexAdapter(self.settings)
        a.base_dir = self.workdir
        return a

    def upload(self, uri: str, data: bytes) -> None:
        bucket, _, key = uri.removeprefix("gs://").partition("/")
        storage = self.adapter.client()._storage()  # the client's own storage client (fake: the same server)
        storage.bucket(bucket).blob(key).upload_from_string(data)

    def sdk(self) -> Any:
        """google-cloud-aiplatform initialised for this project (live cleanups only)."""
        from google.cloud import aiplatform

        aiplatform.init(project=self.settings.project, location=self.settings.location)
        return aiplatform


@contextmanager
def vertex_target(mode: str, workdir: Path) -> Iterator[VertexTarget]:
    """A live target from ``CLOUDML_VERTEX_*``, or the Vertex and Cloud Monitoring fakes."""
    prefix = _live.resource_prefix()
    with ExitStack() as stack:
        if mode == "fake":
            from tests.fakes.vertex import VertexFake
            from tests.fakes.vertex_monitoring import MonitoringFake

            fake = stack.enter_context(VertexFake(FAKE_PROJECT, FAKE_LOCATION))
            mon = stack.enter_context(MonitoringFake(FAKE_PROJECT, FAKE_LOCATION))
            mon.attach(fake)
            stack.enter_context(_environ({"STORAGE_EMULATOR_HOST": fake.url, "GCE_METADATA_HOST": "127.0.0.1:9",
                                          "GCE_METADATA_IP": "127.0.0.1:9", "GOOGLE_CLOUD_PROJECT": FAKE_PROJECT}))
            settings = VertexSettings(project=FAKE_PROJECT, location=FAKE_LOCATION, pipeline_root=FAKE_ROOT,
                                      service_account=f"runner@{FAKE_PROJECT}.iam.gserviceaccount.com",
                                      api_endpoint=fake.url, monitoring_endpoint=f"127.0.0.1:{mon.port}",
                                      state_dir=str(workdir / "state"))
            timing = {"poll": 0.05, "limit": 60.0, "cleanup_limit": 30.0, "pipeline_timeout": 30.0}
        else:
            fake = None
            env = _live.ENV
            settings = VertexSettings(project=env["CLOUDML_VERTEX_PROJECT"],
                                      location=env.get("CLOUDML_VERTEX_LOCATION", "us-central1"),
                                      pipeline_root=env["CLOUDML_VERTEX_PIPELINE_ROOT"].rstrip("/"),
                                      service_account=env.get("CLOUDML_VERTEX_SERVICE_ACCOUNT"),
                                      state_dir=str(workdir / "state"))
            timing = {"poll": 15.0, "limit": 100 * 60.0, "cleanup_limit": 30 * 60.0,
                      "pipeline_timeout": 40 * 60.0}
        image = _live.ENV.get("CLOUDML_LIVE_VERTEX_SERVING_IMAGE") or SERVING_IMAGE
        target = VertexTarget(mode, None, prefix, workdir, settings, image, fake=fake, **timing)
        target.adapter = target.new_adapter()
        yield target


def _deployment(endpoint: str, group: str, version: int, strategy: Any, alarms: list[dict[str, Any]] | None = None
                ) -> Deployment:
    return Deployment.model_validate({"endpoint": endpoint, "model": {"group": group, "version": version},
                                      "instances": {"count": 1}, "strategy": strategy, "alarms": alarms or [],
                                      "max_duration": "90m"})


def _weights(a: Any, endpoint: str) -> dict[str, int]:
    return {k: v for k, v in a.endpoint_status(endpoint)["traffic"]["weights"].items() if v}


def scenario(t: VertexTarget) -> _live.Cleanup:
    """The lifecycle; returns the cleanup record (what was deleted, what the fake could not serve)."""

    def body(cleanup: _live.Cleanup) -> None:
        a, name = t.adapter, t.prefix
        root = str(t.settings.pipeline_root)
        cleanup.add(f"objects under {root}/{name}/", lambda: _delete_objects(t, [f"{root}/{name}/"]),
                    fake_unserved=True)

        # 1. compile + validate, then run to completion
        _live.write_code(t.workdir, name)
        pipeline = _live.tiny_pipeline(name, processing={"image": "python:3.11-slim"},
                                       python={"image": "python:3.11-slim"})
        compiled = a.compile(pipeline)
        assert compiled.document["schemaVersion"] == "2.1.0"
        assert a.validate_compiled(compiled) == []
        bundles = sorted(set(re.findall(r"gs://[^\s\"']+/cloudml/code/[0-9a-f]+\.tar\.gz", json.dumps(compiled.document))))
        assert bundles, "the python step should run from a code bundle"
        cleanup.add(f"code bundles of {name}: {bundles}", lambda: _delete_objects(t, bundles), fake_unserved=True)
        run = a.run(pipeline, spec_dir=str(t.workdir))
        cleanup.add(f"pipeline job {run.id}", lambda: t.sdk().PipelineJob.get(run.id).delete(), fake_unserved=True)
        assert run.wait(timeout=t.pipeline_timeout, poll=t.poll) == "succeeded", run.error
        steps = {s["name"]: s["status"] for s in run.steps}
        assert steps == {"prepare": "succeeded", "summarise": "succeeded"}, steps

        # 2. register two versions, approve the first
        uris = []
        for version, slope in ((1, 1.0), (2, 2.0)):
            uri = f"{root}/{name}/models/v{version}/"
            t.upload(uri + "model.joblib", model_joblib(slope))
            uris.append(uri)
        v1 = a.register_model(name, uris[0], image=t.serving_image, metrics={"rows": 3.0})
        cleanup.add(f"model {name} and its versions", lambda: _delete_model(t, v1.tags["vertex_model"]),
                    fake_unserved=True)
        assert (v1.version, v1.approval) == (1, "pending")
        assert a.set_approval(name, 1, "approved").approval == "approved"
        assert a.latest_approved(name).version == 1

        # 3. v1 all at once (creates the endpoint), then invoke
        cleanup.add(f"endpoint {name} (every deployed model undeployed first)", lambda: t.new_adapter().endpoints
                    .delete(name))
        first = a.deploy(_deployment(name, name, 1, {"all_at_once": {}}), poll=t.poll)
        assert first.outcome is RolloutOutcome.SUCCEEDED, first.reason
        assert _weights(a, name) == {f"{name}-v1": 100}
        answer = a.invoke(name, [[1.0, 0.0]])
        assert len(answer["predictions"]) == 1, answer

        # 4. v2 as a canary; while it bakes, a second adapter (another shell) asks for a rollback
        a.register_model(name, uris[1], image=t.serving_image, approval="approved")
        canary = _deployment(name, name, 2, {"canary": {"percent": 10, "bake": "30m"}},
                             alarms=[{"name": "errors", "metric": "error_rate", "threshold": "5%", "period": "5m"}])
        box: dict[str, Any] = {}

        def drive() -> None:
            try:
                box["result"] = a.deploy(canary, poll=t.poll)
            except BaseException as e:
                box["error"] = e

        driver = threading.Thread(target=drive, daemon=True)
        driver.start()
        _live.wait_until(lambda: _weights(a, name).get(f"{name}-v2") or "error" in box, t.limit, t.poll,
                         "the canary to take traffic")
        assert "error" not in box, box.get("error")
        try:
            manual = t.new_adapter().rollback(name)
        except DeploymentError as e:  # the controller took the request but its rollback outlasted the wait
            if "did not act" not in str(e):
                raise
            manual = None
        deadline = time.monotonic() + t.limit
        while driver.is_alive() and time.monotonic() < deadline:
            driver.join(t.poll)
        assert "error" not in box, box.get("error")
        result = box["result"]
        assert result.outcome is RolloutOutcome.ROLLED_BACK, result
        assert manual is None or manual.outcome is RolloutOutcome.ROLLED_BACK, manual
        assert _weights(a, name) == {f"{name}-v1": 100}
        assert len(a.invoke(name, [[2.0, 0.0]])["predictions"]) == 1

    return _live.run_scenario(body, fake=t.is_fake, limit=t.limit, cleanup_limit=t.cleanup_limit,
                              what="live vertex scenario")


def _delete_model(t: VertexTarget, resource: str) -> None:
    """The versions that are not the default one first, then the model (which takes the default with it)."""
    sdk = t.sdk()
    model = resource.split("@")[0]
    registry = sdk.models.ModelRegistry(model=model)
    for info in registry.list_versions():
        if "default" not in list(info.version_aliases):
            registry.delete_version(info.version_id)
    sdk.Model(model).delete()


def _delete_objects(t: VertexTarget, prefixes: list[str]) -> None:
    storage = t.adapter.client()._storage()
    for uri in prefixes:
        bucket, _, key = uri.removeprefix("gs://").partition("/")
        for blob in storage.list_blobs(bucket, prefix=key):
            blob.delete()


def test_live_vertex_lifecycle(live_env: str, tmp_path: Path) -> None:
    with vertex_target(live_env, tmp_path) as target:
        record = scenario(target)
        assert target.remaining() == []
    assert not record.failures
