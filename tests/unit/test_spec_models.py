"""Spec models and small value types: durations, memory, references, steps, pipeline, deployment."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from cloudml.loader import dumps, loads, to_data
from cloudml.spec.conditions import Compare, LiteralOperand, Or, ParamOperand
from cloudml.spec.deployment import Alarm, Autoscale, Deployment, Instances, ModelRef, Strategy
from cloudml.spec.pipeline import Parameter, Pipeline, Schedule, StepDefaults, coerce_param
from cloudml.spec.refs import (
    ExternalRef,
    ParamSourceRef,
    StepOutputRef,
    find_placeholders,
    parse_source,
    substitute,
    uri_scheme_error,
)
from cloudml.spec.steps import (
    Cache,
    ConditionStep,
    FailStep,
    InputSpec,
    OutputSpec,
    RegisterModelStep,
    Resources,
    Retry,
    TaskStep,
    check_framework,
)
from cloudml.spec.types import format_duration, format_memory, parse_duration, parse_memory

# --- durations -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0), ("10m", 600.0), ("2h", 7200.0), ("1d", 86400.0), ("1w", 604800.0), ("250ms", 0.25),
        ("1h30m", 5400.0), ("1h 30m", 5400.0), ("1.5h", 5400.0), (" 10M ", 600.0), ("PT5M", 300.0),
        ("PT1M30S", 90.0), ("P1D", 86400.0), ("P1DT2H", 93600.0), ("pt0.5s", 0.5), ("30", 30.0),
        ("2.5", 2.5), ("1e3", 1000.0), (0, 0.0), (45, 45.0), (1.25, 1.25),
    ],
)
def test_parse_duration(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("banana", "is not a duration"), ("10 minutes", "is not a duration"), ("-5s", "is not a duration"),
        ("-5", "cannot be negative"), (-1, "cannot be negative"), (True, "not a boolean"),
        ([10], "a duration"), (None, "a duration"), ("P", "is not a duration"), ("PT", "is not a duration"),
        ("nan", "is not a duration"), ("inf", "is not a duration"), (math.inf, "finite"), (math.nan, "finite"),
        (10**400, "finite"), ("1" * 400 + "s", "finite"), ("", "is not a duration"), ("1_000", "is not a duration"),
    ],
)
def test_parse_duration_rejects(value: Any, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(value)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0s"), (1.0, "1s"), (59.0, "59s"), (60.0, "1m"), (90.0, "90s"), (600.0, "10m"), (3600.0, "1h"),
        (5400.0, "90m"), (86400.0, "1d"), (604800.0, "1w"), (1209600.0, "2w"), (0.25, "250ms"), (1.5, "1500ms"),
        (0.0015, "0.0015s"), (1e-7, "0.0000001s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("seconds", [1e-10, 0.1 + 0.2, 3600.1, 1e20, 123456.789, 7e-3, 5e-324])
def test_format_duration_reads_back_exactly(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


# --- memory ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512Mi", 512 * 1024**2), ("8Gi", 8 * 1024**3), ("1Ti", 1024**4), ("4Ki", 4096), ("16G", 16 * 10**9),
        ("2M", 2 * 10**6), ("3k", 3000), ("1.5Ki", 1536), ("1.5Gi", 3 * 512 * 1024**2), ("100", 100),
        ("8GiB", 8 * 1024**3), ("8 gi", 8 * 1024**3), (1, 1), (10**30, 10**30),
    ],
)
def test_parse_memory(text: Any, size: int) -> None:
    assert parse_memory(text) == size


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("lots", "is not a memory size"), ("8Xi", "is not a memory size"), ("-1Gi", "is not a memory size"),
        ("0", "must be positive"), (0, "must be positive"), (-5, "must be positive"), (True, "not a boolean"),
        (1.5, "whole number of bytes"), ("0.5", "not a whole number of bytes"), ("0.1Ki", "not a whole number"),
        (None, "a memory size"), ("", "is not a memory size"),
    ],
)
def test_parse_memory_rejects(value: Any, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_memory(value)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (1, "1"), (1500, "1500"), (1024, "1Ki"), (1536, "1536"), (8 * 1024**3, "8Gi"), (2 * 10**9, "2G"),
        (1024000, "1024K"), (3 * 1024**4, "3Ti"), (10**12, "1T"), (5 * 1024**2, "5Mi"),
    ],
)
def test_format_memory_is_the_shortest_exact_form(size: int, text: str) -> None:
    assert format_memory(size) == text
    assert parse_memory(text) == size


# --- refs ------------------------------------------------------------------------------------------


def test_find_placeholders_reports_good_and_bad_ones_with_positions() -> None:
    found = find_placeholders("a {{inputs.x}} b {{ params.lr }} {{input.y}} {{oops}} {{}}")
    assert [(p.namespace, p.name, p.valid) for p in found] == [
        ("inputs", "x", True), ("params", "lr", True), ("input", "y", False), ("", "oops", False), ("", "", False)]
    assert found[0].raw == "{{inputs.x}}"
    assert (found[0].start, found[0].end) == (2, 14)
    assert find_placeholders("no braces here") == []


def test_substitute_replaces_known_placeholders_only() -> None:
    values = {"params": {"lr": "0.1"}, "inputs": {"d": "/data"}}
    assert substitute("--lr {{ params.lr }} --in {{inputs.d}} {{outputs.x}} {{bad}}", values) == (
        "--lr 0.1 --in /data {{outputs.x}} {{bad}}")
    assert substitute("plain", values) == "plain"


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("split.outputs.train", StepOutputRef("split", "train")),
        ("validate-data.outputs.clean", StepOutputRef("validate-data", "clean")),
        ("{{params.data}}", ParamSourceRef("data")),
        ("{{ params.data }}", ParamSourceRef("data")),
        ("s3://bucket/key", ExternalRef("s3://bucket/key")),
        ("./split.outputs.train", ExternalRef("./split.outputs.train")),
        ("data.csv", ExternalRef("data.csv")),
        ("gs://b/{{params.x}}", ExternalRef("gs://b/{{params.x}}")),
    ],
)
def test_parse_source(text: str, ref: object) -> None:
    assert parse_source(text) == ref
    assert str(parse_source(text)) == text.replace("{{ params.data }}", "{{params.data}}")


def test_external_ref_scheme_and_unknown_schemes() -> None:
    assert ExternalRef("azureml://x").scheme == "azureml"
    assert ExternalRef("relative/path").scheme == "file"
    assert uri_scheme_error("s4://b") == "unknown URI scheme 's4'"
    assert uri_scheme_error("s3://b") is None
    assert uri_scheme_error("no/scheme") is None


# --- steps -----------------------------------------------------------------------------------------


def test_task_step_shorthands() -> None:
    s = TaskStep(name="train", python="src.train:fit", inputs={"d": "split.outputs.train"},
                 outputs={"model": "model", "m": {"type": "metrics", "description": "scores"}},
                 timeout="2h", cache=False, resources={"memory": "16Gi", "cpu": 4})
    assert s.inputs["d"].ref == StepOutputRef("split", "train")
    assert s.outputs["model"].type == "model"
    assert s.outputs["m"].description == "scores"
    assert s.timeout == 7200.0
    assert s.cache == Cache(enabled=False)
    assert s.resources is not None and s.resources.memory == 16 * 1024**3
    dumped = s.model_dump(mode="json", by_alias=True, exclude_unset=True)
    assert dumped["inputs"] == {"d": "split.outputs.train"}
    assert dumped["outputs"] == {"model": "model", "m": {"type": "metrics", "description": "scores"}}
    assert dumped["timeout"] == "2h"
    assert dumped["resources"] == {"memory": "16Gi", "cpu": 4.0}


def test_input_long_form_dumps_with_from() -> None:
    spec = InputSpec.model_validate({"from": "s3://b/k", "type": "dataset"})
    assert spec.model_dump(by_alias=True) == {"from": "s3://b/k", "type": "dataset"}
    assert spec.model_dump() == {"from": "s3://b/k", "type": "dataset"}
    assert OutputSpec.model_validate("dataset").model_dump() == "dataset"


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({}, "exactly one of 'command' or 'python'"),
        ({"command": "x", "python": "m:f"}, "exactly one of 'command' or 'python'"),
        ({"python": "m:f", "args": ["x"]}, "'args' go with 'command'"),
        ({"command": "x", "params": {"a": 1}}, "'params' go with a 'python' step"),
        ({"command": []}, "'command' is empty"),
        ({"python": "not a target"}, "is not module:function"),
        ({"command": "x", "framework": "sklern"}, "unknown framework 'sklern'"),
        ({"command": "x", "framework": "sklearn=1"}, "is not a framework"),
        ({"command": "x", "secrets": {"TOKEN": "hunter2"}}, "secret values never go in a spec"),
        ({"command": "x", "secrets": {"TOKEN": "vault://x"}}, "must be a reference"),
        ({"command": "x", "env": {"1BAD": "x"}}, "pattern"),
        ({"command": "x", "outputs": {"m": "pickle"}}, "Input should be"),
        ({"command": "x", "kind": "serving"}, "Input should be"),
        ({"command": "x", "resources": {"gpu": -1}}, "greater than or equal to 0"),
        ({"command": "x", "retry": {"attempts": 21}}, "less than or equal to 20"),
        ({"command": "x", "timeout": float("nan")}, "finite"),
    ],
)
def test_task_step_rejects(fields: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        TaskStep(name="s", **fields)
    assert fragment in str(info.value)


def test_secrets_and_frameworks_that_are_fine() -> None:
    s = TaskStep(name="s", command="x", framework="xgboost", secrets={"TOKEN": "aws-secretsmanager://prod/token",
                                                                      "K": "env://K"})
    assert s.secrets["TOKEN"].startswith("aws-secretsmanager://")
    assert check_framework("pytorch==2.1.0") == "pytorch==2.1.0"


def test_step_type_follows_from_its_keys() -> None:
    p = Pipeline.model_validate({"name": "p", "steps": [
        {"name": "t", "command": "x {{outputs.m}}", "outputs": {"m": "metrics"}},
        {"name": "g", "condition": 't.outputs.m["a"] > 1', "then": ["r"], "else": ["f"]},
        {"name": "r", "register_model": {"model": "t.outputs.m", "group": "g1"}},
        {"name": "f", "fail": "no"},
    ]})
    assert [type(s) for s in p.steps] == [TaskStep, ConditionStep, RegisterModelStep, FailStep]
    assert p.task_steps() == [p.steps[0]]
    with pytest.raises(KeyError):
        p.step("zz")


def test_condition_step_needs_a_branch_and_a_valid_condition() -> None:
    with pytest.raises(ValidationError, match="needs steps under 'then' or 'else'"):
        ConditionStep(name="g", condition="params.a > 1")
    with pytest.raises(ValidationError, match="column"):
        ConditionStep(name="g", condition="params.a >", then=["x"])
    with pytest.raises(ValidationError, match="a condition string"):
        ConditionStep.model_validate({"name": "g", "condition": 5, "then": ["x"]})


def test_condition_step_built_from_an_expression_keeps_the_canonical_tree() -> None:
    a = Compare(ParamOperand("a"), ">", LiteralOperand(1))
    b = Compare(ParamOperand("b"), ">", LiteralOperand(2))
    nested = Or((Or((a, b)), a))
    s = ConditionStep(name="g", condition=nested, then=["x"])
    assert s.condition == Or((a, b, a))
    assert ConditionStep(name="g", condition=str(nested), then=["x"]) == s


def test_fail_step_needs_a_message() -> None:
    with pytest.raises(ValidationError):
        FailStep(name="f", fail="")


def test_cache_retry_and_resources_small_models() -> None:
    assert Cache.model_validate(True) == Cache(enabled=True)
    assert Cache(expire="7d").expire == 604800.0
    assert Retry(attempts=3, backoff="30s", max_backoff="5m").max_backoff == 300.0
    r = Resources(cpu=0.5, memory=1024, disk="100Gi", instance_count=2)
    assert (r.cpu, r.memory, r.disk, r.gpu) == (0.5, 1024, 100 * 1024**3, 0)
    with pytest.raises(ValidationError):
        Resources(cpu=0)
    with pytest.raises(ValidationError):
        Resources(cpu=math.inf)


def test_spec_models_forbid_extra_fields_and_check_assignment() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Retry(attempts=2, tries=3)  # type: ignore[call-arg]
    r = Retry(attempts=2)
    with pytest.raises(ValidationError):
        r.attempts = 0


# --- pipeline --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ptype", "value", "result"),
    [
        ("int", "200", 200), ("int", " -3 ", -3), ("int", 5.0, 5), ("int", 7, 7),
        ("float", "0.5", 0.5), ("float", 1, 1.0), ("float", "1e3", 1000.0),
        ("bool", "true", True), ("bool", "No", False), ("bool", "1", True), ("bool", False, False),
        ("string", "x", "x"), ("string", 5, "5"), ("string", 1.5, "1.5"),
    ],
)
def test_coerce_param(ptype: str, value: Any, result: Any) -> None:
    out = coerce_param(ptype, value)
    assert out == result
    assert type(out) is type(result)


@pytest.mark.parametrize(
    ("ptype", "value", "fragment"),
    [
        ("int", "1.5", "is not an int"), ("int", 1.5, "is not an int"), ("int", True, "is a bool"),
        ("int", "x", "is not an int"), ("float", "x", "is not a float"), ("float", "nan", "not a finite float"),
        ("float", "inf", "not a finite float"), ("float", 10**400, "is not a float"), ("float", None, "not a float"),
        ("bool", "maybe", "is not a bool"), ("bool", 1, "is not a bool"), ("string", True, "is a bool"),
        ("string", [1], "is not a string"),
    ],
)
def test_coerce_param_rejects(ptype: str, value: Any, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        coerce_param(ptype, value)
    assert fragment in str(info.value)


def test_parameter_checks_range_and_allowed_values() -> None:
    p = Parameter(type="int", default="20", min=10, max=100)
    assert p.default == 20
    assert p.check("50") == 50
    with pytest.raises(ValueError, match="below the minimum 10"):
        p.check(5)
    with pytest.raises(ValueError, match="above the maximum 100"):
        p.check(101)
    f = Parameter(type="float", allowed=[1, 2.5])
    assert f.allowed == [1.0, 2.5]
    with pytest.raises(ValueError, match="is not one of"):
        f.check(3)


def test_parameter_rejects_non_finite_numbers() -> None:
    with pytest.raises(ValidationError):
        Parameter(type="float", default=math.nan)
    with pytest.raises(ValidationError):
        Parameter(type="float", max=math.inf)


@pytest.mark.parametrize(
    ("cron", "fragment"),
    [
        ("0 3 * *", "has 4 fields"), ("61 * * * *", "outside 0-59"), ("0 24 * * *", "outside 0-23"),
        ("0 0 0 * *", "outside 1-31"), ("0 0 1 13 *", "outside 1-12"), ("0 0 * * 8", "outside 0-7"),
        ("0 0 * * x?", "is not valid"),
    ],
)
def test_schedule_rejects_bad_cron(cron: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        Schedule(cron=cron)
    assert fragment in str(info.value)


@pytest.mark.parametrize("cron", ["0 3 * * 1-5", "*/15 * * * *", "0 0 1,15 * *", "30 2 * * MON-FRI", "0 0 * * 7"])
def test_schedule_accepts_good_cron(cron: str) -> None:
    assert Schedule(cron=cron).cron == cron


def test_effective_fills_defaults_the_step_does_not_set() -> None:
    p = loads(
        "kind: Pipeline\nname: p\n"
        "defaults: {kind: training, image: img:1, timeout: 1h, retry: {attempts: 3}, env: {A: '1', B: '1'}}\n"
        "steps:\n"
        "  - {name: a, command: echo}\n"
        "  - {name: b, command: echo, kind: processing, timeout: 5m, env: {B: '2'}}\n"
    )
    assert isinstance(p, Pipeline)
    a, b = (p.effective(s) for s in p.task_steps())
    assert (a.kind, a.image, a.timeout, a.env) == ("training", "img:1", 3600.0, {"A": "1", "B": "1"})
    assert a.retry is not None and a.retry.attempts == 3
    assert (b.kind, b.timeout, b.env) == ("processing", 300.0, {"A": "1", "B": "2"})
    assert p.step("a").timeout is None  # type: ignore[union-attr]  # the model itself is unchanged


def test_effective_without_defaults_returns_the_step_itself() -> None:
    p = loads("kind: Pipeline\nname: p\nsteps: [{name: a, command: echo}]\n")
    assert isinstance(p, Pipeline)
    step = p.task_steps()[0]
    assert p.effective(step) is step


def test_step_defaults_check_the_framework() -> None:
    with pytest.raises(ValidationError, match="unknown framework"):
        StepDefaults(framework="scikit")


def test_pipeline_name_api_version_and_steps_are_required_and_checked() -> None:
    with pytest.raises(ValidationError) as info:
        Pipeline.model_validate({"apiVersion": "cloudml/v2", "name": "Bad_Name", "steps": []})
    locs = {e["loc"][0] for e in info.value.errors()}
    assert locs == {"apiVersion", "name", "steps"}


# --- deployment ------------------------------------------------------------------------------------


def test_deployment_defaults() -> None:
    d = Deployment(endpoint="churn", model={"group": "churn"})  # type: ignore[arg-type]
    assert d.strategy.name == "blue_green"
    assert d.strategy.config.bake == 300.0  # type: ignore[union-attr]
    assert d.model.version == "latest-approved"
    assert (d.instances.type, d.instances.count) == ("cpu-small", 1)
    assert d.rollback.automatic is True
    assert d.max_duration == 3600.0


def test_model_ref_versions() -> None:
    assert ModelRef(group="g", version=3).version == 3
    assert ModelRef(group="g", version="latest").version == "latest"
    with pytest.raises(ValidationError, match="versions start at 1"):
        ModelRef(group="g", version=0)
    with pytest.raises(ValidationError):
        ModelRef(group="g", version="newest")  # type: ignore[arg-type]


def test_instances_and_autoscale_bounds() -> None:
    with pytest.raises(ValidationError, match="min 5 is greater than max 2"):
        Autoscale(min=5, max=2)
    with pytest.raises(ValidationError, match=r"outside autoscale bounds 2\.\.6"):
        Instances(count=1, autoscale={"min": 2, "max": 6})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="not a neutral size"):
        Instances(type="ml.m5.large")
    assert Instances(type="gpu-small", count=2, autoscale={"min": 1, "max": 4}).count == 2  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("blue_green", "blue_green"), ("all_at_once", "all_at_once"), ({"canary": {"percent": 5}}, "canary"),
        ({"linear": {"step_percent": 20, "interval": "2m"}}, "linear"), ({"shadow": {"percent": 100}}, "shadow"),
    ],
)
def test_strategy_shorthand_and_long_forms(value: Any, name: str) -> None:
    s = Strategy.model_validate(value)
    assert s.name == name
    assert s.config is getattr(s, name)
    assert list(s.model_dump()) == [name]


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("canary_fast", "unknown strategy"), ({}, "found 0"),
        ({"canary": {"percent": 5}, "linear": {"step_percent": 5}}, "found 2"),
        ({"canary": {"percent": 0}}, "greater than 0"), ({"canary": {}}, "Field required"),
    ],
)
def test_strategy_rejects(value: Any, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        Strategy.model_validate(value)
    assert fragment in str(info.value)


def test_alarm_thresholds_take_units() -> None:
    assert Alarm(name="e", metric="error_rate", threshold="2.5%").threshold == 0.025  # type: ignore[arg-type]
    assert Alarm(name="l", metric="latency_p50", threshold="1.5s").threshold == 1.5  # type: ignore[arg-type]
    a = Alarm(name="l", metric="latency_p99", threshold="250ms")  # type: ignore[arg-type]
    assert a.model_dump()["threshold"] == "250ms"
    assert Alarm(name="i", metric="invocations", threshold=1000).threshold == 1000.0
    assert Alarm(name="x", existing={"sagemaker": "my-alarm"}).required_datapoints == 1


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"metric": "latency_p99", "threshold": 250}, "needs a unit"),
        ({"metric": "latency_p99", "threshold": "fast"}, "is not a duration"),
        ({"metric": "error_rate", "threshold": 2}, "fraction between 0 and 1"),
        ({"metric": "error_rate", "threshold": True}, "not a boolean"),
        ({"metric": "invocations", "threshold": -1}, "cannot be negative"),
        ({"metric": "error_rate"}, "needs 'metric' and 'threshold'"),
        ({"metric": "error_rate", "threshold": 0.1, "existing": {"sagemaker": "x"}}, "not both"),
        ({"metric": "error_rate", "threshold": 0.1, "evaluation_periods": 2, "datapoints_to_alarm": 3},
         "cannot exceed evaluation_periods"),
    ],
)
def test_alarm_rejects(fields: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        Alarm(name="a", **fields)
    assert fragment in str(info.value)


def test_duplicate_alarm_names_are_rejected() -> None:
    with pytest.raises(ValidationError, match="duplicate alarm names: e"):
        Deployment.model_validate({"endpoint": "ep", "model": {"group": "g"}, "alarms": [
            {"name": "e", "metric": "error_rate", "threshold": 0.1},
            {"name": "e", "metric": "invocations", "threshold": 5}]})


@pytest.mark.parametrize(
    "strategy",
    ["all_at_once", "blue_green", "{canary: {percent: 5, bake: 90s, final_bake: 1h}}",
     "{linear: {step_percent: 25, interval: 250ms}}", "{shadow: {percent: 50, duration: 2h, promote: true}}"],
)
def test_deployment_round_trip_for_every_strategy(strategy: str) -> None:
    d = loads(
        "kind: Deployment\nendpoint: ep-1\nmodel: {group: g, version: 4}\n"
        f"strategy: {strategy}\n"
        "capture: {percent: 20, destination: s3://b/capture}\n"
        "serving: {predictor: 'app.serve:Predictor', env: {A: b}}\n"
        "alarms: [{name: p50, metric: latency_p50, threshold: 0.25s, treat_missing_data: breaching}]\n"
    )
    assert isinstance(d, Deployment)
    assert loads(dumps(d)) == d
    assert to_data(d)["alarms"][0]["threshold"] == "250ms"
