"""Live Azure ML: the whole lifecycle in a real workspace, through the adapter's public API.

compile + validate -> run a two-step pipeline job to completion (``prepare``: a command on the public
``mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04`` image; ``summarise``: a python step whose code
folder azure-ai-ml uploads) -> register a model version (an MLflow scikit-learn model, which managed
online endpoints serve without scoring code) -> approve -> deploy it ``all_at_once`` -> invoke ->
deploy a second version as a ``canary`` -> **manual rollback** (``AzureMLAdapter.rollback`` from a
second adapter, as ``cloudml rollback`` from another shell would, while the first one's controller
bakes the canary) -> check all traffic is back on v1 and it answers -> clean up in ``finally``: the
endpoint with its deployments is deleted; the model versions and the pipeline job are **archived**
(azure-ai-ml has no delete for either; archived assets cost nothing and are hidden from lists); the
uploaded code assets stay in the workspace's storage (content-addressed, a few KB; no SDK delete).

Why a manual rollback and not an alarm: Azure Monitor's online-endpoint metrics have a one-minute
grain and minutes of ingestion delay, so an alarm needs real failing traffic over several minutes,
and a metric alert rule cannot be put into a fired state on demand. The canary carries an
``error_rate`` alarm anyway, so the controller reads Azure Monitor during the bake.

Run: ``CLOUDML_LIVE=1 CLOUDML_AZUREML_SUBSCRIPTION_ID=... CLOUDML_AZUREML_RESOURCE_GROUP=... \
CLOUDML_AZUREML_WORKSPACE=... python -m pytest tests/cloud/test_live_azureml.py -v`` with credentials
``DefaultAzureCredential`` can use (``az login``, environment, managed identity). Optional:
``CLOUDML_AZUREML_COMPUTE`` (a compute cluster for the pipeline; default ``serverless``). Names:
``cloudml-live-<6 hex>``.

Cost and time (list prices, East US, late 2026; check yours): the pipeline's two serverless jobs
(minutes of a small VM: < $0.05); each online deployment runs one ``Standard_DS3_v2`` (~$0.29/h), two
of them for ~20 min during the canary, one for ~30 min before: **about $0.30 in all**. Wall time
40-70 min (each deployment takes 8-15 min). Hard timeout: 100 min, then 30 min for the cleanup.

Assumptions not verified against Azure (built and checked against the fakes only): that serverless
compute runs the pipeline (set ``CLOUDML_AZUREML_COMPUTE`` otherwise); that the MLflow model written
by this machine's mlflow and scikit-learn is served by the curated MLflow inference environment;
that ``rollback`` finishes within the 60 s ``AzureMLAdapter.rollback`` waits for the running
controller (if not, the test waits for the controller's own result instead, and says so).

Fake mode (``CLOUDML_LIVE_TARGET=fake``): the same body against ``tests/fakes/azureml.py`` (ARM,
online endpoints, metrics, code uploads). Differences, confined to :class:`AzureMLTarget`: no job
runs; the fake advances a job one state per GET (NotStarted -> Queued -> Running -> Completed), which
``run.wait`` does by polling, as tests/unit/test_azureml_client.py relies on; the compute is the
fake's ``cpu-cluster``; the model versions point at ``azureml://datastores/...`` paths instead of an
uploaded local MLflow folder (the fake serves no model blob upload); scoring answers zeros; and the
fake refuses the job PUT that ``jobs.archive`` sends (it wants the ``x-azureml-token`` header a job
submit carries), so archiving the job is listed as unserved (archiving the model versions is sent).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cloudml.adapter import RolloutOutcome
from cloudml.config import AzureMLSettings
from cloudml.errors import DeploymentError
from cloudml.spec.deployment import Deployment
from tests.cloud import _live

CLOUD = "azureml"
pytestmark = pytest.mark.cloud

IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04"


def mlflow_model(folder: Path, slope: float) -> Path:
    """A local MLflow scikit-learn model folder (live mode: azure-ai-ml uploads it at registration)."""
    import mlflow.sklearn
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit([[1.0, 0.0], [2.0, 0.0], [3.0, 1.0]], [slope, 2 * slope, 3 * slope + 1])
    mlflow.sklearn.save_model(model, str(folder))
    return folder


@dataclass
class AzureMLTarget:
    """What differs between a real workspace and the fake; the scenario itself never asks which."""

    mode: str
    adapter: Any
    prefix: str
    workdir: Path
    settings: AzureMLSettings
    compute: str
    poll: float
    limit: float
    cleanup_limit: float
    pipeline_timeout: float
    fake: Any = None
    client_args: dict[str, Any] = field(default_factory=dict)

    @property
    def is_fake(self) -> bool:
        return self.mode == "fake"

    def remaining(self) -> list[str]:
        """Endpoints named after this run that still exist (after the cleanup)."""
        return [e for e in self.new_adapter().endpoints.list() if self.prefix in e]

    def new_adapter(self) -> Any:
        from cloudml.adapters.azureml import AzureMLAdapter

        a = AzureMLAdapter(self.settings)
        a.base_dir = self.workdir
        if self.client_args:
            from tests.fakes.azureml import FakeCredential

            a.client(FakeCredential(), **self.client_args)
        return a

    def model_uri(self, name: str, version: int) -> str:
        """Live: a local MLflow folder azure-ai-ml uploads. Fake: a datastore path (no blob upload there)."""
        if self.is_fake:
            return f"azureml://datastores/workspaceblobstore/paths/{name}/models/v{version}/"
        return str(mlflow_model(self.workdir / "models" / f"v{version}", float(version)))


@contextmanager
def azureml_target(mode: str, workdir: Path) -> Iterator[AzureMLTarget]:
    """A live target from ``CLOUDML_AZUREML_*``, or the Azure ML fake (with its outbound tripwire)."""
    prefix = _live.resource_prefix()
    with ExitStack() as stack:
        client_args: dict[str, Any] = {}
        if mode == "fake":
            from tests.fakes.azureml import (
                RESOURCE_GROUP,
                SUBSCRIPTION,
                WORKSPACE,
                azure_test_env,
                azureml_fake,
                cloud_kwargs,
            )

            fake = stack.enter_context(azureml_fake())
            stack.enter_context(azure_test_env(fake))
            fake.add_compute("cpu-cluster")
            settings = AzureMLSettings(subscription_id=SUBSCRIPTION, resource_group=RESOURCE_GROUP,
                                       workspace=WORKSPACE, state_dir=str(workdir / "state"))
            compute, client_args = "cpu-cluster", cloud_kwargs(fake)
            timing = {"poll": 0.02, "limit": 60.0, "cleanup_limit": 30.0, "pipeline_timeout": 30.0}
        else:
            fake = None
            env = _live.ENV
            settings = AzureMLSettings(subscription_id=env["CLOUDML_AZUREML_SUBSCRIPTION_ID"],
                                       resource_group=env["CLOUDML_AZUREML_RESOURCE_GROUP"],
                                       workspace=env["CLOUDML_AZUREML_WORKSPACE"], state_dir=str(workdir / "state"))
            compute = env.get("CLOUDML_AZUREML_COMPUTE") or "serverless"
            timing = {"poll": 15.0, "limit": 100 * 60.0, "cleanup_limit": 30 * 60.0,
                      "pipeline_timeout": 40 * 60.0}
        target = AzureMLTarget(mode, None, prefix, workdir, settings, compute, fake=fake, client_args=client_args,
                               **timing)
        target.adapter = target.new_adapter()
        yield target
        if fake is not None:
            assert fake.outbound == [], f"a request tried to leave 127.0.0.1: {fake.outbound}"


def _deployment(endpoint: str, group: str, version: int, strategy: Any, alarms: list[dict[str, Any]] | None = None
                ) -> Deployment:
    return Deployment.model_validate({"endpoint": endpoint, "model": {"group": group, "version": version},
                                      "instances": {"count": 1}, "strategy": strategy, "alarms": alarms or [],
                                      "max_duration": "90m"})


def _weights(a: Any, endpoint: str) -> dict[str, int]:
    return {k: v for k, v in a.endpoint_status(endpoint)["traffic"]["weights"].items() if v}


def scenario(t: AzureMLTarget) -> _live.Cleanup:
    """The lifecycle; returns the cleanup record (what was deleted, what the fake could not serve)."""

    def body(cleanup: _live.Cleanup) -> None:
        a, name = t.adapter, t.prefix
        ml = a.client()

        # 1. compile + validate, then run to completion
        _live.write_code(t.workdir, name)
        pipeline = _live.tiny_pipeline(name, processing={"image": IMAGE}, python={"image": IMAGE},
                                       backend_options={"azureml": {"compute": t.compute}})
        compiled = a.compile(pipeline)
        assert compiled.document["type"] == "pipeline"
        assert a.validate_compiled(compiled) == []
        run = a.run(pipeline)
        cleanup.add(f"pipeline job {run.id} of {name} (archived; the fake refuses a job PUT without x-azureml-token, "
                    "which jobs.archive does not send)", lambda: ml.call("jobs.archive", lambda c: c.jobs.archive(run.id)),
                    fake_unserved=True)
        assert run.wait(timeout=t.pipeline_timeout, poll=t.poll) == "succeeded", run.error
        steps = {s["name"]: s["status"] for s in run.steps}
        assert steps == {"prepare": "succeeded", "summarise": "succeeded"}, steps

        # 2. register two versions, approve the first
        def archive_versions() -> None:
            for m in a.list_models(name):
                ml.call("models.archive", lambda c, v=m.version: c.models.archive(name=name, version=str(v)))

        cleanup.add(f"model {name} versions (archived)", archive_versions)
        v1 = a.register_model(name, t.model_uri(name, 1), type="mlflow_model", metrics={"rows": 3.0})
        assert (v1.version, v1.approval) == (1, "pending")
        assert a.set_approval(name, 1, "approved").approval == "approved"
        assert a.latest_approved(name).version == 1

        # 3. v1 all at once (creates the endpoint), then invoke
        cleanup.add(f"online endpoint {name} with its deployments", lambda: t.new_adapter().endpoints.delete(name))
        first = a.deploy(_deployment(name, name, 1, {"all_at_once": {}}), poll=t.poll)
        assert first.outcome is RolloutOutcome.SUCCEEDED, first.reason
        assert _weights(a, name) == {f"{name}-v1": 100}
        answer = a.invoke(name, [[1.0, 0.0]])
        assert answer, answer

        # 4. v2 as a canary; while it bakes, a second adapter (another shell) asks for a rollback
        a.register_model(name, t.model_uri(name, 2), type="mlflow_model", approval="approved")
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
        assert a.invoke(name, [[2.0, 0.0]])

    return _live.run_scenario(body, fake=t.is_fake, limit=t.limit, cleanup_limit=t.cleanup_limit,
                              what="live azureml scenario")


def test_live_azureml_lifecycle(live_env: str, tmp_path: Path) -> None:
    with azureml_target(live_env, tmp_path) as target:
        record = scenario(target)
        assert target.remaining() == []
    assert not record.failures
