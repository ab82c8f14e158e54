"""Compiled output for fixed specs matches the reviewed golden files byte for byte (after normalising)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import cloudml
from tests.conformance.cases import (
    azure_reference_pipeline,
    gcs_reference_pipeline,
    reference_pipeline,
    tuning_pipeline,
)
from tests.conformance.conftest import CLOUD_SETTINGS
from tests.conftest import REPO

HERE = Path(__file__).parent
CASES = {"reference": reference_pipeline, "gcs-reference": gcs_reference_pipeline,
         "azure-reference": azure_reference_pipeline, "tuning": tuning_pipeline}
TARGETS = {"reference": ["local", "sagemaker"], "gcs-reference": ["local", "vertex"],
           "azure-reference": ["local", "azureml"], "tuning": ["local", "sagemaker"]}


def _blueprint(file: str) -> Callable[[], Path]:
    """A shipped blueprint's pipeline file, compiled from its folder (so its code folder is found)."""
    return lambda: REPO / "blueprints" / file


# Every shipped blueprint's pipelines on every cloud. tests/unit/test_blueprint_ensemble.py runs each adapter's
# validator on them. Azure ML compiles conditions to runtime guards (the default); the "-preview" case pins the
# if_else route of azureml.enable_preview_conditions, with continuous-training's nested gate as a guard inside it.
ALL = ["sagemaker", "vertex", "azureml"]
BLUEPRINTS = {"quickstart": ("quickstart/pipeline.yaml", ALL),
              "tabular-classification": ("tabular-classification/pipeline.yaml", ALL),
              "hyperparameter-tuning": ("hyperparameter-tuning/pipeline.yaml", ALL),
              "multi-model-ensemble": ("multi-model-ensemble/pipeline.yaml", ALL),
              "continuous-training": ("continuous-training/pipeline.yaml", ALL),
              "ab-test": ("ab-test/pipeline.yaml", ALL),
              "ab-test-analysis": ("ab-test/analysis.yaml", ALL)}
PREVIEW = {"blueprint-continuous-training-preview"}
CASES.update({f"blueprint-{name}": _blueprint(file) for name, (file, _) in BLUEPRINTS.items()})
TARGETS.update({f"blueprint-{name}": targets for name, (_, targets) in BLUEPRINTS.items()})
CASES["blueprint-continuous-training-preview"] = _blueprint("continuous-training/pipeline.yaml")
TARGETS["blueprint-continuous-training-preview"] = ["azureml"]
PAIRS = [(case, target) for case, targets in TARGETS.items() for target in targets]


def normalise(target: str, document: Any) -> Any:
    """The one place volatile fields are normalised: content digests of code bundles and runtime files."""
    text = json.dumps(document, indent=2, sort_keys=False)
    if target == "sagemaker":
        import re

        text = re.sub(r"/code/[0-9a-f]{64}/", "/code/<sha256>/", text)
    if target == "vertex":  # a code bundle is named by its content (the step's code folder + cloudml's runtime)
        import re

        text = re.sub(r"/cloudml/code/[0-9a-f]{64}\.tar\.gz", "/cloudml/code/<sha256>.tar.gz", text)
    if target == "azureml":  # a step with code_paths names its staged bundle, by content
        import re

        text = re.sub(r"\.cloudml/build/azureml/code/[0-9a-f]{16}", ".cloudml/build/azureml/code/<digest>", text)
    return json.loads(text)


@pytest.fixture(autouse=True)
def _settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key, value in CLOUD_SETTINGS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("CLOUDML_AZUREML_ENABLE_PREVIEW_CONDITIONS", raising=False)


@pytest.mark.parametrize(("case", "target"), PAIRS)
def test_compiled_output_matches_golden(case: str, target: str, request: pytest.FixtureRequest,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    if case in PREVIEW:
        monkeypatch.setenv("CLOUDML_AZUREML_ENABLE_PREVIEW_CONDITIONS", "true")
    compiled = cloudml.compile(CASES[case](), target)
    actual = normalise(target, compiled.document)
    path = HERE / case / f"{target}.json"  # YAML targets are stored as JSON too: the same data, diffable
    if request.config.getoption("--update-golden"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(actual, indent=2) + "\n")
    assert path.exists(), f"no golden file {path}: run python -m pytest tests/golden --update-golden"
    assert actual == json.loads(path.read_text()), f"{target} output changed: review, then --update-golden"
