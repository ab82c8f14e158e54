"""The pytest plugin users get with cloudml: registered by entry point, and its harness works end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudml.spec.deployment import Deployment
from cloudml.testing import LocalHarness

PREDICTOR = """
class Good:
    def load(self, model_dir):
        pass
    def predict(self, instances):
        return [sum(x) for x in instances]
"""


def test_plugin_is_registered_through_the_entry_point(request: pytest.FixtureRequest) -> None:
    assert request.config.pluginmanager.has_plugin("cloudml")


def test_harness_runs_a_pipeline(cloudml_local: LocalHarness, tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("kind: Pipeline\nname: p\nparameters: {n: {type: int, default: 1}}\n"
                 "steps: [{name: a, command: 'echo n={{params.n}}'}]\n")
    run = cloudml_local.run(f, {"n": 5})
    assert run.logs("a").strip() == "n=5"
    f.write_text("kind: Pipeline\nname: p\nsteps: [{name: a, command: 'false'}]\n")
    with pytest.raises(AssertionError, match="failed"):
        cloudml_local.run(f)


def test_harness_deploys_and_sends_traffic(cloudml_local: LocalHarness, tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "pred.py").write_text(PREDICTOR)
    cloudml_local.register("toy", model)
    d = Deployment(endpoint="toy", model={"group": "toy", "version": 1}, strategy="all_at_once",
                   serving={"predictor": "pred:Good"})
    cloudml_local.assert_rollout(cloudml_local.deploy(d), "succeeded")
    assert cloudml_local.invoke("toy", [[1, 2]])["predictions"] == [3]
    report = cloudml_local.send_traffic("toy", [[1, 2]], seconds=0.5, concurrency=2)
    assert report.ok > 0 and report.connection_errors == 0
    assert report.by_deployment == {"toy-v1": report.ok}
