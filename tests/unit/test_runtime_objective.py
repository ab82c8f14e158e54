"""cloudml.runtime --log-objective --report hypertune: the line Vertex AI's tuning service reads."""

from __future__ import annotations

import json
from pathlib import Path

from cloudml.runtime import log_objective_entry


def test_hypertune_line_is_appended_in_cloudml_hypertune_format(tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text(json.dumps({"score": 0.91, "nested": {"auc": 0.5}}))
    target = tmp_path / "hp" / "output.metrics"
    env = {"CLOUD_ML_HP_METRIC_FILE": str(target), "CLOUD_ML_TRIAL_ID": "7"}
    assert log_objective_entry(["--log-objective", "metrics.score", "--metrics", str(tmp_path),
                                "--report", "hypertune"], env) == 0
    assert log_objective_entry(["--log-objective", "metrics.nested.auc", "--metrics", str(tmp_path),
                                "--report", "hypertune"], env) == 0
    lines = [json.loads(x) for x in target.read_text().splitlines()]
    assert [(x["trial"], x["global_step"]) for x in lines] == [("7", "1"), ("7", "1")]
    assert lines[0]["metrics.score"] == "0.91" and lines[1]["metrics.nested.auc"] == "0.5"
    assert isinstance(lines[0]["timestamp"], float)


def test_report_target_is_checked(tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text(json.dumps({"score": 1}))
    assert log_objective_entry(["--log-objective", "metrics.score", "--metrics", str(tmp_path),
                                "--report", "tensorboard"], {}) == 2
    # a missing objective still fails before anything is written
    target = tmp_path / "out.metrics"
    assert log_objective_entry(["--log-objective", "metrics.nope", "--metrics", str(tmp_path), "--report",
                                "hypertune"], {"CLOUD_ML_HP_METRIC_FILE": str(target)}) == 1
    assert not target.exists()
