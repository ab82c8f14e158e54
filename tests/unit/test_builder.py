"""PipelineBuilder: handles, conditions, and the same validated model YAML gives."""

from __future__ import annotations

import pytest

import cloudml
from cloudml.builder import ConditionHandle, MetricHandle, OutputHandle, ParamHandle, PipelineBuilder
from cloudml.errors import SpecError
from cloudml.loader import dumps, loads, to_data
from cloudml.spec.conditions import And, Compare, LiteralOperand, MetricOperand, Not, Or, ParamOperand
from cloudml.spec.pipeline import Pipeline
from cloudml.spec.steps import ConditionStep, FailStep, RegisterModelStep, TaskStep

CHURN_YAML = """\
apiVersion: cloudml/v1
kind: Pipeline
name: churn-training
description: Train and gate a churn classifier.
parameters:
  input_uri: {type: string, default: "file://data/churn.csv"}
  n_estimators: {type: int, default: 200, min: 10, max: 2000}
  min_auc: {type: float, default: 0.85}
defaults:
  framework: sklearn==1.5
  retry: {attempts: 3, backoff: 10s}
schedule: {cron: "0 3 * * 1-5"}
steps:
  - name: split
    command: python split.py --data {{params.input_uri}} --train {{outputs.train}} --test {{outputs.test}}
    outputs: {train: dataset, test: dataset}
  - name: train
    kind: training
    python: src.train:fit
    inputs: {train: split.outputs.train}
    params: {n_estimators: "{{params.n_estimators}}"}
    outputs: {model: model}
    timeout: 2h
  - name: evaluate
    command: python evaluate.py --model {{inputs.model}} --test {{inputs.test}} --metrics {{outputs.metrics}}
    inputs: {model: train.outputs.model, test: split.outputs.test}
    outputs: {metrics: metrics}
  - name: gate
    condition: evaluate.outputs.metrics["auc"] >= params.min_auc
    then: [register]
    else: [reject]
  - name: register
    register_model: {model: train.outputs.model, group: churn, metrics: evaluate.outputs.metrics, approval: pending}
  - name: reject
    fail: "AUC below {{params.min_auc}}"
"""


def churn_builder() -> PipelineBuilder:
    b = PipelineBuilder("churn-training", description="Train and gate a churn classifier.",
                        defaults={"framework": "sklearn==1.5", "retry": {"attempts": 3, "backoff": "10s"}},
                        schedule="0 3 * * 1-5")
    input_uri = b.param("input_uri", str, "file://data/churn.csv")
    n_estimators = b.param("n_estimators", int, 200, min=10, max=2000)
    min_auc = b.param("min_auc", "float", default=0.85)
    split = b.add_step(
        "split",
        command=f"python split.py --data {input_uri} --train {{{{outputs.train}}}} --test {{{{outputs.test}}}}",
        outputs={"train": "dataset", "test": "dataset"},
    )
    train = b.add_step("train", kind="training", python="src.train:fit", inputs={"train": split.outputs["train"]},
                       params={"n_estimators": n_estimators}, outputs={"model": "model"}, timeout="2h")
    evaluate = b.add_step(
        "evaluate",
        command="python evaluate.py --model {{inputs.model}} --test {{inputs.test}} --metrics {{outputs.metrics}}",
        inputs={"model": train.outputs.model, "test": split.outputs.test},
        outputs={"metrics": "metrics"},
    )
    b.condition("gate", evaluate.outputs["metrics"]["auc"] >= min_auc, then=["register"], else_=["reject"])
    b.register_model("register", model=train.outputs["model"], group="churn", metrics=evaluate.outputs["metrics"])
    b.fail("reject", f"AUC below {min_auc}")
    return b


def test_builder_and_yaml_give_equal_models() -> None:
    built = churn_builder().build()
    from_yaml = loads(CHURN_YAML)
    assert built == from_yaml
    assert to_data(built) == to_data(from_yaml)
    assert [type(s) for s in built.steps] == [TaskStep, TaskStep, TaskStep, ConditionStep, RegisterModelStep,
                                              FailStep]


def test_builder_pipeline_round_trips_through_yaml() -> None:
    built = churn_builder().build()
    assert loads(dumps(built)) == built
    assert dumps(loads(dumps(built))) == dumps(built)


def test_to_dict_is_the_plain_document() -> None:
    doc = churn_builder().to_dict()
    assert doc["apiVersion"] == "cloudml/v1" and doc["kind"] == "Pipeline"
    assert doc["schedule"] == {"cron": "0 3 * * 1-5"}
    assert doc["parameters"]["n_estimators"] == {"type": "int", "default": 200, "min": 10, "max": 2000}
    train = doc["steps"][1]
    assert train["inputs"] == {"train": "split.outputs.train"}
    assert train["params"] == {"n_estimators": "{{params.n_estimators}}"}
    assert doc["steps"][3] == {"name": "gate", "condition": 'evaluate.outputs.metrics["auc"] >= params.min_auc',
                               "then": ["register"], "else": ["reject"]}


def test_handles_render_as_spec_strings() -> None:
    b = PipelineBuilder("p")
    lr = b.param("lr", float, 0.1)
    assert str(lr) == "{{params.lr}}"
    assert f"--lr {lr}" == "--lr {{params.lr}}"
    step = b.add_step("prep", command="x {{outputs.d}}", outputs={"d": "dataset"})
    assert str(step) == "prep"
    assert str(step.outputs["d"]) == str(step.outputs.d) == "prep.outputs.d"
    with pytest.raises(AttributeError):
        step.outputs._private  # noqa: B018


def test_metric_handles_go_deeper() -> None:
    out = OutputHandle("ev", "m")
    deep = out["scores"][0]["x"]
    assert isinstance(deep, MetricHandle)
    assert deep.operand == MetricOperand("ev", "m", ("scores", 0, "x"))


def test_comparisons_build_conditions() -> None:
    m = OutputHandle("ev", "m")["auc"]
    p = ParamHandle("min")
    metric = MetricOperand("ev", "m", ("auc",))
    assert (m >= p).expr == Compare(metric, ">=", ParamOperand("min"))
    assert (m > 0.5).expr == Compare(metric, ">", LiteralOperand(0.5))
    assert (m <= 1).expr == Compare(metric, "<=", LiteralOperand(1))
    assert (m < p).expr == Compare(metric, "<", ParamOperand("min"))
    assert m.eq("good").expr == Compare(metric, "==", LiteralOperand("good"))
    assert p.ne(True).expr == Compare(ParamOperand("min"), "!=", LiteralOperand(True))
    reflected = 0.5 <= m  # noqa: SIM300  # Python turns this into m >= 0.5
    assert reflected.expr == Compare(metric, ">=", LiteralOperand(0.5))


def test_conditions_combine_with_and_or_not() -> None:
    a = ParamHandle("a") > 1
    b = ParamHandle("b") > 2
    assert isinstance(a & b, ConditionHandle)
    assert (a & b).expr == And((a.expr, b.expr))
    assert (a | b).expr == Or((a.expr, b.expr))
    assert (~a).expr == Not(a.expr)
    assert str(~(a | b) & a) == "not (params.a > 1 or params.b > 2) and params.a > 1"


def test_a_condition_has_no_truth_value() -> None:
    with pytest.raises(TypeError, match="evaluated when the pipeline runs"):
        bool(ParamHandle("a") > 1)
    with pytest.raises(TypeError, match="cannot compare"):
        ParamHandle("a") > [1]  # noqa: B015


def test_combined_conditions_survive_build_and_round_trip() -> None:
    b = PipelineBuilder("p")
    lo, hi = b.param("lo", float, 0.1), b.param("hi", float, 0.9)
    ev = b.add_step("ev", command="x {{outputs.m}}", outputs={"m": "metrics"})
    b.add_step("ok", command="echo")
    auc = ev.outputs["m"]["auc"]
    b.condition("gate", ((auc >= lo) | (auc > hi)) | ~(auc.eq(0.5)), then=["ok"])
    p = b.build()
    gate = p.step("gate")
    assert isinstance(gate, ConditionStep)
    assert isinstance(gate.condition, Or) and len(gate.condition.terms) == 3  # flattened
    assert loads(dumps(p)) == p


def test_param_declarations() -> None:
    b = PipelineBuilder("p")
    b.param("mode", str, "fast", allowed=["fast", "slow"], description="speed")
    b.param("debug", bool, False)
    b.add_step("a", command="echo {{params.mode}} {{params.debug}}")
    p = b.build()
    assert p.parameters["mode"].allowed == ["fast", "slow"]
    assert p.parameters["mode"].description == "speed"
    assert p.parameters["debug"].type == "bool" and p.parameters["debug"].default is False


def test_build_reports_every_mistake_at_once() -> None:
    b = PipelineBuilder("p")
    b.param("n", int, 5000, max=10)
    b.add_step("a", command="echo {{params.m}}", inputs={"x": "missing.outputs.y"})
    b.add_step("a", command="echo")
    b.add_step("b", command="echo", timeout="forever")
    with pytest.raises(SpecError) as info:
        b.build()
    found = [(i.path, i.step, i.message) for i in info.value.issues]
    assert ("parameters.n.default", None, "default 5000 is above the maximum 10") in found
    assert ("steps[0].inputs.x", "a", "unknown step 'missing'") in found
    assert ("steps[0].command", "a", "placeholder {{params.m}}: no parameter 'm'") in found
    assert ("steps[1].name", "a", "duplicate step name 'a'") in found
    assert any(p == "steps[2].timeout" and "'forever' is not a duration" in m for p, _, m in found)
    assert all(i.line is None for i in info.value.issues)


def test_else_belongs_to_condition() -> None:
    with pytest.raises(TypeError, match=r"builder\.condition"):
        PipelineBuilder("p").add_step("a", command="x", else_=["b"])


def test_builder_extras_defaults_backend_options_and_dependencies() -> None:
    b = PipelineBuilder("p", schedule={"cron": "0 * * * *", "timezone": "Europe/Paris"},
                        backend_options={"local": {}})
    first = b.add_step("first", command="echo")
    b.add_step("second", command="echo", depends_on=[first])
    b.fail("stop", "stopped", depends_on=["second"])
    p = b.build()
    assert p.schedule is not None and p.schedule.timezone == "Europe/Paris"
    assert p.backend_options == {"local": {}}
    assert p.step("second").depends_on == ["first"]
    assert p.step("stop").depends_on == ["second"]


def test_the_public_builder_builds_a_pipeline() -> None:
    assert cloudml.PipelineBuilder is PipelineBuilder
    assert isinstance(churn_builder().build(), Pipeline)
