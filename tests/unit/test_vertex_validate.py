"""validate_ir: the strict protobuf parses plus the reference checks ParseDict does not make.

Each negative case mutates a valid compiled IR in one place and checks that the validator names the
problem. Where strict ParseDict alone misses a mutation, the test shows that too, so the reason for
each reference check is written down next to it. Known bugs are strict expected failures.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

import cloudml
from cloudml.adapters.vertex import VertexAdapter
from cloudml.adapters.vertex.compiler import compile_ir
from cloudml.adapters.vertex.validate import validate_ir
from cloudml.spec.pipeline import Pipeline
from cloudml.spec.validate import validate_data
from tests.conformance.cases import gcs_reference_pipeline
from tests.conftest import REPO

Doc = dict[str, Any]


def nested_pipeline() -> Pipeline:
    """A condition inside a then-branch, with artifacts and metrics crossing both sub-DAG boundaries."""
    p = validate_data({
        "apiVersion": "cloudml/v1", "kind": "Pipeline", "name": "nested", "defaults": {"image": "python:3.11-slim"},
        "parameters": {"f": {"type": "float", "default": 0.5}},
        "steps": [
            {"name": "prep", "command": "prep {{outputs.d}}", "outputs": {"d": "dataset"}},
            {"name": "ev", "command": "ev {{outputs.m}}", "outputs": {"m": "metrics"}},
            {"name": "g1", "condition": 'ev.outputs.m["auc"] > 0.5', "then": ["g2"]},
            {"name": "g2", "condition": 'ev.outputs.m["f1"] >= params.f', "then": ["use"]},
            {"name": "use", "command": "use {{inputs.d}}", "inputs": {"d": "prep.outputs.d"}},
        ]})
    assert isinstance(p, Pipeline)
    return p


@pytest.fixture(scope="module")
def reference() -> Doc:
    return compile_ir(gcs_reference_pipeline(), None)


@pytest.fixture(scope="module")
def nested() -> Doc:
    return compile_ir(nested_pipeline(), None)


def mutated(doc: Doc, change: Callable[[Doc], Any]) -> Doc:
    d = copy.deepcopy(doc)
    change(d)
    return d


def strict_spec_accepts(doc: Doc) -> bool:
    try:
        json_format.ParseDict(doc, pipeline_spec_pb2.PipelineSpec())
    except json_format.ParseError:
        return False
    return True


def root_tasks(d: Doc) -> Doc:
    out: Doc = d["root"]["dag"]["tasks"]
    return out


def prep_container(d: Doc) -> Doc:
    out: Doc = d["deploymentSpec"]["executors"]["exec-prep"]["container"]
    return out


# -- valid documents ---------------------------------------------------------------------------------

def test_compiled_documents_are_valid(reference: Doc, nested: Doc) -> None:
    assert validate_ir(reference) == []
    assert validate_ir(nested) == []


def test_the_docstring_minimal_document_is_valid() -> None:
    assert validate_ir({"pipelineInfo": {"name": "p"}, "schemaVersion": "2.1.0", "root": {"dag": {"tasks": {}}}}) == []


def test_validate_compiled_runs_the_validator_on_pipelines_only(reference: Doc) -> None:
    adapter = VertexAdapter()
    compiled = cloudml.compile(gcs_reference_pipeline(), "vertex")
    assert adapter.validate_compiled(compiled) == []
    compiled.document["bogus"] = 1
    assert any("bogus" in p for p in adapter.validate_compiled(compiled))
    plan = cloudml.compile(validate_data({"apiVersion": "cloudml/v1", "kind": "Deployment", "endpoint": "churn",
                                          "model": {"group": "g"}, "strategy": "all_at_once"}), "vertex")
    assert adapter.validate_compiled(plan) == []  # a rollout plan is not an IR


# -- 2. strict parses --------------------------------------------------------------------------------

STRICT: dict[str, tuple[Callable[[Doc], Any], str]] = {
    "unknown top-level key": (lambda d: d.__setitem__("pipelineSpecVersion", "2"), "pipelineSpecVersion"),
    "unknown key in a task": (lambda d: root_tasks(d)["prep"].__setitem__("timeout", "60s"), "timeout"),
    "unknown key in a component": (lambda d: d["components"]["comp-prep"].__setitem__("image", "x"), "image"),
    "schemaVersion as a number": (lambda d: d.__setitem__("schemaVersion", 2), "schemaVersion"),
    "dependentTasks as a string": (lambda d: root_tasks(d)["train"].__setitem__("dependentTasks", "prep"),
                                   "dependentTasks"),
    "maxRetryCount not an integer": (lambda d: root_tasks(d)["prep"]["retryPolicy"].__setitem__("maxRetryCount", 2.5),
                                     "maxRetryCount"),
    "backoffDuration not a duration": (
        lambda d: root_tasks(d)["prep"]["retryPolicy"].__setitem__("backoffDuration", "abc"), "backoffDuration"),
    "enableCache as a string": (lambda d: root_tasks(d)["prep"]["cachingOptions"].__setitem__("enableCache", "yes"),
                                "enableCache"),
    "bad parameterType enum": (
        lambda d: d["root"]["inputDefinitions"]["parameters"]["min_auc"].__setitem__("parameterType", "FOO"),
        "FOO"),
    "bad parameterType in a component": (
        lambda d: d["components"]["comp-train"]["inputDefinitions"]["parameters"]["n_estimators"].__setitem__(
            "parameterType", "INT"), "INT"),
}


@pytest.mark.parametrize("case", sorted(STRICT))
def test_the_strict_pipeline_spec_parse_rejects(reference: Doc, case: str) -> None:
    change, word = STRICT[case]
    doc = mutated(reference, change)
    assert not strict_spec_accepts(doc)
    problems = validate_ir(doc)
    assert any(p.startswith("PipelineSpec:") and word in p for p in problems), problems


def test_lenient_parsing_would_hide_unknown_keys_and_bad_enums(reference: Doc) -> None:
    """Why the validator never passes ignore_unknown_fields=True: it accepts both silently."""
    for case in ("unknown top-level key", "unknown key in a task", "bad parameterType enum"):
        doc = mutated(reference, STRICT[case][0])
        json_format.ParseDict(doc, pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=True)
        assert validate_ir(doc) != []


def test_a_quoted_integer_is_accepted_as_proto3_json_allows(reference: Doc) -> None:
    doc = mutated(reference, lambda d: root_tasks(d)["prep"]["retryPolicy"].__setitem__("maxRetryCount", "2"))
    assert validate_ir(doc) == []


DEPLOYMENT: dict[str, tuple[Callable[[Doc], Any], str]] = {
    "unknown key in a container": (lambda d: prep_container(d).__setitem__("timeoutSeconds", 60), "timeoutSeconds"),
    "unknown key in an executor": (lambda d: d["deploymentSpec"]["executors"]["exec-prep"].__setitem__("retries", 2),
                                   "retries"),
    "unknown key in resources": (
        lambda d: d["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"].__setitem__("gpu", 1),
        "gpu"),
    "image as a list": (lambda d: prep_container(d).__setitem__("image", ["python"]), "image"),
    "accelerator count not an integer": (
        lambda d: d["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]["accelerator"].__setitem__(
            "count", "one"), "count"),
    "env as a mapping": (lambda d: prep_container(d).__setitem__("env", [{"name": "A", "val": "1"}]), "val"),
}


@pytest.mark.parametrize("case", sorted(DEPLOYMENT))
def test_only_the_second_parse_sees_inside_deployment_spec(reference: Doc, case: str) -> None:
    change, word = DEPLOYMENT[case]
    doc = mutated(reference, change)
    assert strict_spec_accepts(doc), "deploymentSpec is a Struct to the first parse"
    problems = validate_ir(doc)
    assert problems and all(p.startswith("deploymentSpec:") for p in problems), problems
    assert word in problems[0]


# -- 2. reference checks (all of these pass the strict parse) -------------------------------------------

REFERENCES: dict[str, tuple[str, Callable[[Doc], Any], str]] = {
    "dangling componentRef": (
        "reference", lambda d: root_tasks(d)["prep"].__setitem__("componentRef", {"name": "comp-nope"}),
        "root/prep: componentRef comp-nope does not exist"),
    "dangling componentRef inside a sub-DAG": (
        "nested", lambda d: d["components"]["comp-condition-g2-then"]["dag"]["tasks"]["use"].__setitem__(
            "componentRef", {"name": "comp-gone"}), "comp-condition-g2-then/use: componentRef comp-gone"),
    "dangling dependentTasks": (
        "reference", lambda d: root_tasks(d)["train"].__setitem__("dependentTasks", ["prep", "ghost"]),
        "root/train: dependentTasks names ghost"),
    "dependentTasks naming a task of another DAG": (
        "reference", lambda d: root_tasks(d)["train"].__setitem__("dependentTasks", ["publish"]),
        "dependentTasks names publish, not a task of this DAG"),
    "dangling producerTask": (
        "reference", lambda d: root_tasks(d)["train"]["inputs"]["artifacts"]["train"]["taskOutputArtifact"].__setitem__(
            "producerTask", "nobody"), "root/train: producerTask nobody is not a task of this DAG"),
    "producer without that output": (
        "reference", lambda d: root_tasks(d)["train"]["inputs"]["artifacts"]["train"]["taskOutputArtifact"].__setitem__(
            "outputArtifactKey", "validation"), "prep declares no output validation"),
    "producer without that output parameter": (
        "reference", lambda d: root_tasks(d)["condition-gate-then"]["inputs"]["parameters"][
            "pipelinechannel--evaluate-metrics__auc"]["taskOutputParameter"].__setitem__("outputParameterKey", "auc"),
        "evaluate declares no output auc"),
    "dangling executorLabel": (
        "reference", lambda d: d["components"]["comp-prep"].__setitem__("executorLabel", "exec-missing"),
        "comp-prep: executorLabel exec-missing does not exist"),
    "executor removed": (
        "reference", lambda d: d["deploymentSpec"]["executors"].pop("exec-train"),
        "comp-train: executorLabel exec-train does not exist"),
    "condition reads a key that is not an input": (
        "reference", lambda d: root_tasks(d)["condition-gate-then"]["triggerPolicy"].__setitem__(
            "condition", "inputs.parameter_values['pipelinechannel--evaluate-metrics__f1'] > 0.5"),
        "condition reads pipelinechannel--evaluate-metrics__f1, not an input of the task"),
    "condition input removed": (
        "reference", lambda d: root_tasks(d)["condition-gate-else"]["inputs"]["parameters"].pop(
            "pipelinechannel--min_auc"),
        "root/condition-gate-else: condition reads pipelinechannel--min_auc"),
    "placeholder naming an undeclared input parameter": (
        "reference", lambda d: prep_container(d)["args"].append("{{$.inputs.parameters['seed']}}"),
        "comp-prep: placeholder inputs.parameters['seed'] is not declared"),
    "placeholder naming an undeclared input artifact": (
        "reference", lambda d: prep_container(d)["args"].append("--x={{$.inputs.artifacts['raw'].path}}"),
        "comp-prep: placeholder inputs.artifacts['raw'] is not declared"),
    "placeholder naming an undeclared output": (
        "reference", lambda d: prep_container(d)["args"].append("{{$.outputs.parameters['rows'].output_file}}"),
        "comp-prep: placeholder outputs.parameters['rows'] is not declared"),
    "placeholder in the fail message": (
        "reference", lambda d: d["deploymentSpec"]["executors"]["exec-too-low"]["container"].__setitem__(
            "args", ["below {{$.inputs.parameters['max_auc']}}"]),
        "comp-too-low: placeholder inputs.parameters['max_auc'] is not declared"),
    "componentInputArtifact not declared by the sub-DAG": (
        "reference", lambda d: d["components"]["comp-condition-gate-then"]["inputDefinitions"].pop("artifacts"),
        "comp-condition-gate-then/publish: componentInputArtifact pipelinechannel--train-model is not an input "
        "of the enclosing component"),
    "componentInputArtifact in a nested sub-DAG": (
        "nested", lambda d: d["components"]["comp-condition-g2-then"]["dag"]["tasks"]["use"]["inputs"]["artifacts"][
            "d"].__setitem__("componentInputArtifact", "pipelinechannel--prep-other"),
        "componentInputArtifact pipelinechannel--prep-other is not an input of the enclosing component"),
    "componentInputParameter not declared by the root": (
        "reference", lambda d: root_tasks(d)["train"]["inputs"]["parameters"]["n_estimators"].__setitem__(
            "componentInputParameter", "trees"),
        "root/train: componentInputParameter trees is not an input of the enclosing component"),
    "task input not declared by its component": (
        "reference", lambda d: d["components"]["comp-train"]["inputDefinitions"].pop("parameters"),
        "root/train: input n_estimators is not declared by comp-train"),
    "sub-DAG input not declared": (
        "nested", lambda d: d["components"]["comp-condition-g1-then"]["inputDefinitions"]["parameters"].pop(
            "pipelinechannel--f"),
        "root/condition-g1-then: input pipelinechannel--f is not declared by comp-condition-g1-then"),
}


@pytest.mark.parametrize("case", sorted(REFERENCES))
def test_reference_checks(reference: Doc, nested: Doc, case: str) -> None:
    which, change, expected = REFERENCES[case]
    doc = mutated(reference if which == "reference" else nested, change)
    assert strict_spec_accepts(doc), "the strict parse alone misses this"
    json_format.ParseDict(doc["deploymentSpec"], pipeline_spec_pb2.PipelineDeploymentConfig())
    problems = validate_ir(doc)
    assert any(expected in p for p in problems), problems


def test_missing_root(reference: Doc) -> None:
    doc = mutated(reference, lambda d: d.pop("root"))
    assert strict_spec_accepts(doc)
    assert validate_ir(doc) == ["root is missing"]


def test_problems_add_up(reference: Doc) -> None:
    def several(d: Doc) -> None:
        d["bogus"] = True
        prep_container(d)["bogus"] = True
        root_tasks(d)["train"]["dependentTasks"] = ["ghost"]

    problems = validate_ir(mutated(reference, several))
    assert [p.split(":")[0] for p in problems] == ["PipelineSpec", "deploymentSpec", "root/train"]


# -- known bugs ----------------------------------------------------------------------------------------

CRASHES: dict[str, Callable[[Doc], Any]] = {
    "root as a string": lambda d: d.__setitem__("root", "root"),
    "components as a list": lambda d: d.__setitem__("components", []),
    "tasks as a list": lambda d: d["root"]["dag"].__setitem__("tasks", []),
    "a task that is null": lambda d: root_tasks(d).__setitem__("train", None),
    "componentRef as a string": lambda d: root_tasks(d)["train"].__setitem__("componentRef", "comp-train"),
    "command as a string": lambda d: prep_container(d).__setitem__("command", "python"),
    "an argument that is a number": lambda d: prep_container(d)["args"].append(1),
    "a condition that is a number": lambda d: root_tasks(d)["condition-gate-then"]["triggerPolicy"].__setitem__(
        "condition", 1),
    "deploymentSpec as a list": lambda d: d.__setitem__("deploymentSpec", []),
    # valid for ParseDict (every field is optional), then read with [] by validate.py:81
    "a producer task without componentRef": lambda d: root_tasks(d)["prep"].pop("componentRef"),
}


@pytest.mark.parametrize("case", sorted(CRASHES))
def test_fixed_wrong_json_types_crash_the_validator(reference: Doc, case: str) -> None:
    problems = validate_ir(mutated(reference, CRASHES[case]))
    assert problems


_WITHOUT_KFP_PIPELINE_SPEC = """
import sys
sys.path.insert(0, {repo!r})
sys.modules["kfp"] = None  # as if kfp-pipeline-spec were not installed
sys.modules["kfp.pipeline_spec"] = None
from cloudml.adapters.vertex.validate import validate_ir
from cloudml.errors import AdapterNotInstalledError
try:
    validate_ir({{"pipelineInfo": {{"name": "p"}}, "root": {{"dag": {{"tasks": {{}}}}}}}})
except AdapterNotInstalledError as e:
    print(e.pip_command)
"""


def test_fixed_validating_without_kfp_pipeline_spec_is_not_an_install_hint() -> None:
    proc = subprocess.run([sys.executable, "-c", _WITHOUT_KFP_PIPELINE_SPEC.format(repo=str(REPO))],
                          capture_output=True, text=True, check=False, timeout=60)
    assert proc.stdout.strip() == "pip install 'cloudml[gcp]'", proc.stderr[-300:]
