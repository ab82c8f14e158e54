"""Validation: every mistake is reported, at once, with file:line:column, path, step and a fix."""

from __future__ import annotations

import pytest

import cloudml
from cloudml.errors import Issue, SpecError
from cloudml.loader import loads
from cloudml.spec.pipeline import Pipeline
from cloudml.spec.validate import validate_data, validate_model

HEAD = "apiVersion: cloudml/v1\nkind: Pipeline\nname: p\n"


def issues_of(text: str, source: str = "p.yaml") -> list[Issue]:
    with pytest.raises(SpecError) as info:
        loads(text, source=source)
    assert info.value.source == source
    return info.value.issues


def one(text: str) -> Issue:
    found = issues_of(text)
    assert len(found) == 1, "\n".join(i.format() for i in found)
    return found[0]


def where(i: Issue) -> tuple[str | None, int | None, int | None]:
    return (i.file, i.line, i.column)


# --- unknown fields, wrong types, missing fields -------------------------------------------------


def test_unknown_step_field_with_suggestion() -> None:
    i = one(HEAD + "steps:\n  - name: split\n    command: echo\n    timout: 1h\n")
    assert i.message == "unknown field 'timout'"
    assert where(i) == ("p.yaml", 7, 5)  # the key itself
    assert i.path == "steps[0].timout"
    assert i.step == "split"
    assert i.fix == "did you mean 'timeout'?"
    assert i.code == "unknown_field"


def test_unknown_top_level_field() -> None:
    i = one(HEAD + "stepz: []\nsteps: [{name: a, command: echo}]\n")
    assert (i.message, i.path, where(i), i.fix) == (
        "unknown field 'stepz'", "stepz", ("p.yaml", 4, 1), "did you mean 'steps'?")
    assert i.step is None


def test_unknown_field_without_a_close_name_says_remove_it() -> None:
    assert one(HEAD + "zzzzqqq: 1\nsteps: [{name: a, command: echo}]\n").fix == "remove it"


def test_wrong_types_each_reported_at_the_value() -> None:
    text = HEAD + (
        "steps:\n"
        "  - name: a\n"
        "    command: echo\n"
        "    timeout: banana\n"
        "    resources: {cpu: many, memory: lots}\n"
        "    retry: {attempts: 0}\n"
    )
    found = {i.path: i for i in issues_of(text)}
    assert set(found) == {"steps[0].timeout", "steps[0].resources.cpu", "steps[0].resources.memory",
                          "steps[0].retry.attempts"}
    assert where(found["steps[0].timeout"]) == ("p.yaml", 7, 14)
    assert "'banana' is not a duration" in found["steps[0].timeout"].message
    assert where(found["steps[0].resources.cpu"]) == ("p.yaml", 8, 22)
    assert "valid number" in found["steps[0].resources.cpu"].message
    assert "'lots' is not a memory size" in found["steps[0].resources.memory"].message
    assert "greater than or equal to 1" in found["steps[0].retry.attempts"].message
    assert all(i.step == "a" for i in found.values())


def test_a_list_where_a_mapping_belongs() -> None:
    i = one(HEAD + "steps: [{name: a, command: echo, outputs: [model]}]\n")
    assert i.path == "steps[0].outputs"
    assert "dictionary" in i.message
    assert where(i) == ("p.yaml", 4, 43)


def test_missing_required_field() -> None:
    i = one(HEAD + "steps:\n  - command: echo\n")
    assert (i.message, i.path, i.fix) == ("missing required field 'name'", "steps[0].name", "add it")
    assert where(i) == ("p.yaml", 5, 5)  # the step that lacks it


def test_invalid_step_name() -> None:
    i = one(HEAD + "steps:\n  - name: Bad Name\n    command: echo\n")
    assert i.path == "steps[0].name"
    assert "pattern" in i.message
    assert where(i) == ("p.yaml", 5, 11)


def test_step_that_runs_both_command_and_python() -> None:
    i = one(HEAD + "steps:\n  - {name: a, command: echo, python: 'm:f'}\n")
    assert i.message == "a step runs exactly one of 'command' or 'python' (module:function)"
    assert (i.path, i.step) == ("steps[0]", "a")


@pytest.mark.parametrize(
    ("kind_line", "message", "fix"),
    [
        ("kind: Pipelin\n", "unknown kind 'Pipelin'", "did you mean 'Pipeline'?"),
        ("", "missing 'kind'", "write 'kind: Pipeline' or 'kind: Deployment'"),
        ("kind: [a]\n", "unknown kind ['a']", "write 'kind: Pipeline' or 'kind: Deployment'"),
    ],
)
def test_kind_problems(kind_line: str, message: str, fix: str) -> None:
    i = one("name: p\n" + kind_line)
    assert (i.message, i.fix, i.expected) == (message, fix, "Pipeline or Deployment")
    assert i.file == "p.yaml" and i.line is not None


# --- references ------------------------------------------------------------------------------------


def test_duplicate_step_names() -> None:
    i = one(HEAD + "steps:\n  - name: a\n    command: echo\n  - name: a\n    command: echo\n")
    assert i.message == "duplicate step name 'a'"
    assert (i.path, i.step, where(i)) == ("steps[1].name", "a", ("p.yaml", 7, 11))
    assert i.fix == "step names must be unique; rename one"


def test_unknown_step_in_an_input() -> None:
    text = HEAD + (
        "steps:\n"
        "  - {name: validate-data, command: 'x {{outputs.clean}}', outputs: {clean: dataset}}\n"
        "  - name: split\n"
        "    command: cat {{inputs.data}}\n"
        "    inputs: {data: validate-dat.outputs.clean}\n"
    )
    i = one(text)
    assert i.message == "unknown step 'validate-dat'"
    assert (i.path, i.step, where(i)) == ("steps[1].inputs.data", "split", ("p.yaml", 8, 20))
    assert i.fix == "did you mean 'validate-data'?"
    assert i.code == "unknown_step"


def test_unknown_artifact_of_a_known_step() -> None:
    text = HEAD + (
        "steps:\n"
        "  - {name: a, command: 'x {{outputs.train}}', outputs: {train: dataset}}\n"
        "  - {name: b, command: 'cat {{inputs.i}}', inputs: {i: a.outputs.trian}}\n"
    )
    i = one(text)
    assert i.message == "step 'a' has no output 'trian'"
    assert (i.path, i.step, i.fix) == ("steps[1].inputs.i", "b", "did you mean 'train'?")
    assert where(i) == ("p.yaml", 6, 56)


def test_an_input_that_declares_a_type_must_read_an_output_of_that_type() -> None:
    text = HEAD + (
        "steps:\n"
        "  - {name: a, command: 'x {{outputs.m}} {{outputs.g}}', outputs: {m: model, g: generic}}\n"
        "  - name: b\n"
        "    command: x {{inputs.i}} {{inputs.j}} {{inputs.k}}\n"
        "    inputs:\n"
        "      i: {from: a.outputs.m, type: dataset}\n"
        "      j: {from: a.outputs.g, type: dataset}\n"
        "      k: {from: a.outputs.m, type: model}\n"
    )
    i = one(text)
    assert i.message == "input is declared dataset but 'a.outputs.m' is a model output"
    assert (i.path, i.step, where(i)) == ("steps[1].inputs.i", "b", ("p.yaml", 9, 10))
    assert (i.expected, i.code) == ("a dataset output", "output_type")


def test_reading_an_output_of_a_step_that_has_none() -> None:
    text = HEAD + (
        "steps:\n"
        "  - {name: f, fail: stop}\n"
        "  - {name: b, command: 'cat {{inputs.i}}', inputs: {i: f.outputs.x}}\n"
    )
    assert one(text).message == "step 'f' produces no outputs"


def test_unknown_depends_on_and_branch_targets() -> None:
    text = HEAD + (
        "parameters: {x: {type: int, default: 1}}\n"
        "steps:\n"
        "  - {name: train, command: echo, depends_on: [prep]}\n"
        "  - {name: gate, condition: 'params.x > 0', then: [trian], else: [nowhere]}\n"
    )
    found = issues_of(text)
    assert [(i.message, i.path, i.step, i.fix) for i in found] == [
        ("unknown step 'prep'", "steps[0].depends_on[0]", "train", "declared: gate, train"),
        ("unknown step 'trian'", "steps[1].then[0]", "gate", "did you mean 'train'?"),
        ("unknown step 'nowhere'", "steps[1].else[0]", "gate", "declared: gate, train"),
    ]
    assert [(i.line, i.column) for i in found] == [(6, 47), (7, 52), (7, 67)]


def test_unknown_parameter_as_an_input() -> None:
    text = HEAD + (
        "parameters: {input_uri: {type: string, default: 's3://b/k'}}\n"
        "steps:\n  - {name: a, command: 'cat {{inputs.d}}', inputs: {d: '{{params.input_ur}}'}}\n"
    )
    i = one(text)
    assert (i.message, i.path, i.step, i.fix) == (
        "unknown parameter 'input_ur'", "steps[0].inputs.d", "a", "did you mean 'input_uri'?")
    assert i.code == "unknown_parameter"


def test_an_input_parameter_must_be_a_string() -> None:
    text = HEAD + (
        "parameters: {n: {type: int, default: 1}}\n"
        "steps:\n  - {name: a, command: 'cat {{inputs.d}}', inputs: {d: '{{params.n}}'}}\n"
    )
    assert one(text).message == "parameter 'n' is int; an input URI needs a string parameter"


def test_unknown_uri_scheme() -> None:
    i = one(HEAD + "steps:\n  - {name: a, command: 'cat {{inputs.d}}', inputs: {d: 's4://bucket/k'}}\n")
    assert i.message == "unknown URI scheme 's4'"
    assert i.expected == "s3://, gs://, azureml://, file:// or a path"


def test_register_model_references_are_typed() -> None:
    text = HEAD + (
        "steps:\n"
        "  - name: train\n"
        "    command: x {{outputs.model}} {{outputs.m}}\n"
        "    outputs: {model: model, m: metrics}\n"
        "  - name: register\n"
        "    register_model: {model: train.outputs.m, group: churn, metrics: train.outputs.model}\n"
        "  - name: register2\n"
        "    register_model: {model: ./model.pkl, group: churn}\n"
    )
    found = issues_of(text)
    assert [(i.message, i.path, i.step) for i in found] == [
        ("'train.outputs.m' is a metrics output; expected a model output", "steps[1].register_model.model",
         "register"),
        ("'train.outputs.model' is a model output; expected a metrics output", "steps[1].register_model.metrics",
         "register"),
        ("'./model.pkl' is not a step output", "steps[2].register_model.model", "register2"),
    ]
    assert found[2].expected == "STEP.outputs.NAME of a model output"


def test_a_step_guarded_by_two_conditions() -> None:
    text = HEAD + (
        "parameters: {x: {type: int, default: 1}}\n"
        "steps:\n"
        "  - {name: a, command: echo}\n"
        "  - {name: g1, condition: 'params.x > 0', then: [a]}\n"
        "  - {name: g2, condition: 'params.x > 1', else: [a]}\n"
    )
    i = one(text)
    assert i.message == "step 'a' is already guarded by 'g1.then'"
    assert (i.path, i.step, i.code) == ("steps[2].else[0]", "g2", "double_branch")


# --- cycles ----------------------------------------------------------------------------------------


def test_a_two_step_cycle_is_named_along_its_path() -> None:
    text = HEAD + (
        "steps:\n"
        "  - {name: a, command: 'echo {{inputs.x}}', inputs: {x: b.outputs.y}, outputs: {y: generic}}\n"
        "  - {name: b, command: 'echo {{inputs.x}}', inputs: {x: a.outputs.y}, outputs: {y: generic}}\n"
    )
    i = one(text)
    assert i.message == "cycle: a -> b -> a"
    assert (i.path, i.step, where(i)) == ("steps[0]", "a", ("p.yaml", 5, 5))
    assert i.fix == "remove one of these references so the steps can run in order"
    assert i.code == "cycle"


def test_a_three_step_cycle_through_depends_on() -> None:
    text = HEAD + (
        "steps:\n"
        "  - {name: a, command: echo, depends_on: [c]}\n"
        "  - {name: b, command: echo, depends_on: [a]}\n"
        "  - {name: c, command: echo, depends_on: [b]}\n"
        "  - {name: d, command: echo, depends_on: [c]}\n"
    )
    assert one(text).message == "cycle: a -> b -> c -> a"


def test_every_separate_cycle_is_reported() -> None:
    text = HEAD + (
        "steps:\n"
        "  - {name: a, command: echo, depends_on: [b]}\n"
        "  - {name: b, command: echo, depends_on: [a]}\n"
        "  - {name: c, command: echo, depends_on: [d]}\n"
        "  - {name: d, command: echo, depends_on: [c]}\n"
    )
    found = issues_of(text)
    assert [(i.message, i.step, i.line) for i in found] == [
        ("cycle: a -> b -> a", "a", 5), ("cycle: c -> d -> c", "c", 7)]


def test_a_cycle_through_a_condition_branch() -> None:
    text = HEAD + (
        "steps:\n"
        "  - {name: ev, command: 'x {{outputs.m}}', outputs: {m: metrics}, depends_on: [ok]}\n"
        "  - {name: gate, condition: 'ev.outputs.m[\"auc\"] > 0.5', then: [ok]}\n"
        "  - {name: ok, command: echo}\n"
    )
    assert one(text).message == "cycle: ev -> gate -> ok -> ev"


@pytest.mark.parametrize(
    ("step", "message", "path"),
    [
        ("{name: a, command: echo, depends_on: [a]}", "a step cannot depend on itself", "steps[0].depends_on[0]"),
        ("{name: a, command: 'x {{inputs.i}}', inputs: {i: a.outputs.o}, outputs: {o: dataset}}",
         "a step cannot read its own output", "steps[0].inputs.i"),
        ("{name: a, condition: 'params.x > 1', then: [a]}", "a condition cannot guard itself", "steps[0].then[0]"),
    ],
)
def test_a_self_reference_is_reported_once_with_a_specific_message(step: str, message: str, path: str) -> None:
    i = one(HEAD + "parameters: {x: {type: int, default: 1}}\nsteps:\n  - " + step + "\n")
    assert (i.message, i.path, i.step) == (message, path, "a")


# --- conditions ------------------------------------------------------------------------------------

GATE_HEAD = HEAD + (
    "parameters: {min_auc: {type: float, default: 0.8}, label: {type: string, default: x}}\n"
    "steps:\n"
    "  - name: train\n"
    "    command: x {{outputs.model}}\n"
    "    outputs: {model: model}\n"
    "  - name: evaluate\n"
    "    command: x {{outputs.metrics}}\n"
    "    outputs: {metrics: metrics}\n"
    "  - {name: ok, command: echo}\n"
)


def gate(condition: str) -> list[Issue]:
    return issues_of(GATE_HEAD + f"  - name: gate\n    condition: '{condition}'\n    then: [ok]\n")


def test_condition_on_a_metric_no_step_produces() -> None:
    (i,) = gate('nope.outputs.metrics["auc"] >= params.min_auc')
    assert i.message == "unknown step 'nope'"
    assert (i.path, i.step, where(i)) == ("steps[3].condition", "gate", ("p.yaml", 14, 16))
    assert i.fix == "declared: evaluate, gate, ok, train"


def test_condition_on_an_output_the_step_does_not_declare() -> None:
    (i,) = gate('evaluate.outputs.metric["auc"] >= params.min_auc')
    assert i.message == "step 'evaluate' has no output 'metric'"
    assert i.fix == "did you mean 'metrics'?"


def test_condition_on_a_non_metrics_output() -> None:
    (i,) = gate('train.outputs.model["auc"] >= params.min_auc')
    assert i.message == "'train.outputs.model' is a model output; expected a metrics output"
    assert i.expected == "an output declared as 'metrics'"
    assert (i.step, i.code) == ("gate", "output_type")


def test_condition_on_an_unknown_parameter() -> None:
    (i,) = gate('evaluate.outputs.metrics["auc"] >= params.min_acu')
    assert (i.message, i.fix) == ("unknown parameter 'min_acu'", "did you mean 'min_auc'?")


def test_condition_comparing_a_parameter_with_the_wrong_literal() -> None:
    (i,) = gate('params.min_auc == "high"')
    assert i.message == "compares float parameter 'min_auc' with \"high\""
    assert i.expected == "a float value"


def test_condition_ordering_a_metric_against_a_string_parameter() -> None:
    (i,) = gate('evaluate.outputs.metrics["auc"] > params.label')
    assert i.message == "orders a metric against string parameter 'label'"


def test_condition_syntax_error_names_the_column() -> None:
    (i,) = gate('evaluate.outputs.metrics["auc"] >= ')
    assert i.path == "steps[3].condition"
    assert "column" in i.message
    assert i.step == "gate"


# --- placeholders ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("placeholder", "message", "fix"),
    [
        ("{{inputs.nope}}", "placeholder {{inputs.nope}}: no input 'nope'", "declared: data"),
        ("{{inputs.dta}}", "placeholder {{inputs.dta}}: no input 'dta'", "did you mean 'data'?"),
        ("{{outputs.modle}}", "placeholder {{outputs.modle}}: no output 'modle'", "did you mean 'model'?"),
        ("{{params.lrr}}", "placeholder {{params.lrr}}: no parameter 'lrr'", "did you mean 'lr'?"),
        ("{{input.data}}", "placeholder {{input.data}} names nothing", "did you mean {{inputs.data}}?"),
        ("{{oops}}", "placeholder {{oops}} names nothing",
         "write one of {{inputs.NAME}}, {{outputs.NAME}}, {{params.NAME}}"),
        ("{{ }}", "placeholder {{ }} names nothing",
         "write one of {{inputs.NAME}}, {{outputs.NAME}}, {{params.NAME}}"),
    ],
)
def test_placeholders_that_name_nothing(placeholder: str, message: str, fix: str) -> None:
    text = HEAD + (
        "parameters: {lr: {type: float, default: 0.1}}\n"
        "steps:\n"
        "  - {name: prep, command: 'x {{outputs.d}}', outputs: {d: dataset}}\n"
        "  - name: train\n"
        f"    command: python t.py {placeholder}\n"
        "    inputs: {data: prep.outputs.d}\n"
        "    outputs: {model: model}\n"
    )
    i = one(text)
    assert (i.message, i.fix) == (message, fix)
    assert (i.path, i.step, where(i)) == ("steps[1].command", "train", ("p.yaml", 8, 14))
    assert i.code == "bad_placeholder"


def test_placeholders_are_checked_in_args_env_params_and_command_lists() -> None:
    text = HEAD + (
        "steps:\n"
        "  - {name: a, command: [run, '{{params.a}}'], args: ['{{params.b}}'], env: {E: '{{params.c}}'}}\n"
        "  - {name: b, python: 'm:f', params: {x: '{{params.d}}'}}\n"
    )
    found = issues_of(text)
    assert [i.path for i in found] == ["steps[0].command[1]", "steps[0].args[0]", "steps[0].env.E",
                                       "steps[1].params.x"]
    assert all("no parameter" in i.message for i in found)


def test_fail_messages_take_only_parameters() -> None:
    i = one(HEAD + "steps:\n  - {name: stop, fail: 'bad {{inputs.x}}'}\n")
    assert i.message == "placeholder {{inputs.x}} names nothing"
    assert i.expected == "{{params.NAME}}"


# --- parameters ------------------------------------------------------------------------------------


def test_a_default_outside_its_range_points_at_the_default() -> None:
    text = HEAD + (
        "parameters:\n"
        "  n_estimators: {type: int, default: 5000, min: 10, max: 2000}\n"
        "steps: [{name: a, command: 'echo {{params.n_estimators}}'}]\n"
    )
    i = one(text)
    assert i.message == "default 5000 is above the maximum 2000"
    assert (i.path, where(i)) == ("parameters.n_estimators.default", ("p.yaml", 5, 38))
    assert i.code == "parameter_default"


def test_a_default_of_the_wrong_type_and_a_bad_allowed_list() -> None:
    text = HEAD + (
        "parameters:\n"
        "  n: {type: int, default: many}\n"
        "  mode: {type: int, allowed: [fast, slow]}\n"
        "steps: [{name: a, command: 'echo {{params.n}} {{params.mode}}'}]\n"
    )
    found = issues_of(text)
    assert [(i.message, i.path) for i in found] == [
        ("default 'many' is not an int", "parameters.n.default"),
        ("allowed value 'fast' is not an int", "parameters.mode.allowed"),
    ]


def test_a_default_outside_the_allowed_values() -> None:
    i = one(HEAD + "parameters: {m: {type: string, default: c, allowed: [a, b]}}\nsteps: [{name: a, command: echo}]\n")
    assert i.message == "default 'c' is not one of ['a', 'b']"


def test_min_greater_than_max_and_range_on_a_string() -> None:
    text = HEAD + (
        "parameters:\n"
        "  a: {type: int, min: 5, max: 1}\n"
        "  b: {type: string, min: 1}\n"
        "steps: [{name: a, command: echo}]\n"
    )
    found = issues_of(text)
    assert [(i.path, i.message) for i in found] == [
        ("parameters.a", "min 5.0 is greater than max 1.0"),
        ("parameters.b", "min/max only apply to int and float parameters, not string"),
    ]


def test_schedule_parameters_are_checked() -> None:
    text = HEAD + (
        "parameters: {n: {type: int, default: 1, max: 3}}\n"
        "schedule: {cron: '0 3 * * *', parameters: {n: 7, nn: 1}}\n"
        "steps: [{name: a, command: 'echo {{params.n}}'}]\n"
    )
    found = issues_of(text)
    assert [(i.path, i.message) for i in found] == [
        ("schedule.parameters.n", "parameter 'n': 7 is above the maximum 3"),
        ("schedule.parameters.nn", "unknown parameter 'nn'"),
    ]
    assert found[1].fix == "did you mean 'n'?"


def resolve_pipeline() -> Pipeline:
    p = loads(HEAD + (
        "parameters:\n"
        "  n: {type: int, default: 200, min: 10, max: 2000}\n"
        "  lr: {type: float, min: 0, max: 1}\n"
        "  mode: {type: string, default: fast, allowed: [fast, slow]}\n"
        "  debug: {type: bool, default: false}\n"
        "steps: [{name: a, command: 'echo {{params.n}} {{params.lr}} {{params.mode}} {{params.debug}}'}]\n"
    ))
    assert isinstance(p, Pipeline)
    return p


def test_resolve_parameters_coerces_cli_strings() -> None:
    values = resolve_pipeline().resolve_parameters({"n": "300", "lr": "0.5", "mode": "slow", "debug": "yes"})
    assert values == {"n": 300, "lr": 0.5, "mode": "slow", "debug": True}
    assert type(values["lr"]) is float


def test_resolve_parameters_uses_defaults() -> None:
    assert resolve_pipeline().resolve_parameters({"lr": "1"}) == {"n": 200, "lr": 1.0, "mode": "fast",
                                                                   "debug": False}


@pytest.mark.parametrize(
    ("values", "path", "message", "code"),
    [
        ({"n": "5000", "lr": "0.1"}, "parameters.n", "parameter 'n': 5000 is above the maximum 2000",
         "parameter_range"),
        ({"n": "5", "lr": "0.1"}, "parameters.n", "parameter 'n': 5 is below the minimum 10", "parameter_range"),
        ({"n": "ten", "lr": "0.1"}, "parameters.n", "parameter 'n': 'ten' is not an int", "parameter_range"),
        ({"n": "1.5", "lr": "0.1"}, "parameters.n", "parameter 'n': '1.5' is not an int", "parameter_range"),
        ({"lr": "nan"}, "parameters.lr", "parameter 'lr': 'nan' is not a finite float", "parameter_range"),
        ({"lr": "0.1", "mode": "medium"}, "parameters.mode",
         "parameter 'mode': 'medium' is not one of ['fast', 'slow']", "parameter_range"),
        ({"lr": "0.1", "debug": "maybe"}, "parameters.debug", "parameter 'debug': 'maybe' is not a bool (true/false)",
         "parameter_range"),
        ({}, "parameters.lr", "parameter 'lr' has no default and no value", "missing_parameter"),
        ({"lr": "0.1", "epochs": "3"}, "parameters.epochs", "unknown parameter 'epochs'", "unknown_parameter"),
    ],
)
def test_resolve_parameters_rejects_bad_values(values: dict[str, str], path: str, message: str,
                                               code: str) -> None:
    with pytest.raises(SpecError) as info:
        resolve_pipeline().resolve_parameters(values)
    (i,) = info.value.issues
    assert (i.path, i.message, i.code) == (path, message, code)
    assert "pipeline 'p'" in (info.value.source or "")


def test_resolve_parameters_reports_every_problem_with_what_was_expected() -> None:
    with pytest.raises(SpecError) as info:
        resolve_pipeline().resolve_parameters({"n": "1", "mode": "x", "bogus": "1"})
    found = {i.path: i for i in info.value.issues}
    assert set(found) == {"parameters.n", "parameters.lr", "parameters.mode", "parameters.bogus"}
    assert found["parameters.n"].expected == "int >= 10 <= 2000"
    assert found["parameters.mode"].expected == "string one of ['fast', 'slow']"
    assert found["parameters.lr"].fix == "pass --param lr=VALUE"
    assert found["parameters.bogus"].fix == "declared parameters: n, lr, mode, debug"


# --- all at once -----------------------------------------------------------------------------------

MANY_MISTAKES = """\
apiVersion: cloudml/v1
kind: Pipeline
name: churn-training
parameters:
  input_uri:    {type: string, default: "file://data/churn.csv"}
  n_estimators: {type: int, default: 5000, min: 10, max: 2000}
  min_auc:      {type: float, default: 0.85}
steps:
  - name: validate-data
    command: python validate.py --data {{params.input_uri}} --report {{outputs.reprot}}
    outputs: {clean: dataset, report: generic}
  - name: split
    command: python split.py --data {{inputs.data}}
    inputs: {data: validate-dat.outputs.clean}
    outputs: {train: dataset, test: dataset}
    timout: 1h
  - name: train
    python: src.train:fit
    inputs: {train: split.outputs.train}
    params: {n_estimators: "{{params.n_estimators}}"}
    outputs: {model: model}
  - name: evaluate
    command: python evaluate.py --model {{inputs.model}} --metrics {{outputs.metrics}}
    inputs: {model: train.outputs.model}
    outputs: {metrics: metrics}
  - name: gate
    condition: evaluate.outputs.metrics["auc"] >= params.min_auc and train.outputs.model["x"] > 1
    then: [register]
    else: [reject]
  - name: register
    register_model: {model: train.outputs.model, group: churn, metrics: evaluate.outputs.metrics}
  - name: reject
    fail: "AUC below {{params.min_auc}} {{oops}}"
  - name: train
    command: echo
  - name: a
    command: echo {{inputs.x}}
    inputs: {x: b.outputs.y}
    outputs: {y: generic}
  - name: b
    command: echo
    inputs: {x: a.outputs.y}
    outputs: {y: generic}
"""


def test_every_mistake_in_a_file_is_reported_at_once() -> None:
    found = issues_of(MANY_MISTAKES, source="bad.yaml")
    summary = [(i.line, i.column, i.path, i.step, i.message) for i in found]
    assert summary == [
        (6, 38, "parameters.n_estimators.default", None, "default 5000 is above the maximum 2000"),
        (10, 14, "steps[0].command", "validate-data", "placeholder {{outputs.reprot}}: no output 'reprot'"),
        (14, 20, "steps[1].inputs.data", "split", "unknown step 'validate-dat'"),
        (16, 5, "steps[1].timout", "split", "unknown field 'timout'"),
        (27, 16, "steps[4].condition", "gate",
         "'train.outputs.model' is a model output; expected a metrics output"),
        (33, 11, "steps[6].fail", "reject", "placeholder {{oops}} names nothing"),
        (34, 11, "steps[7].name", "train", "duplicate step name 'train'"),
        (36, 5, "steps[8]", "a", "cycle: a -> b -> a"),
    ]
    assert all(i.file == "bad.yaml" for i in found)
    text = "\n".join(i.format() for i in found)
    assert "bad.yaml:14:20: steps[1].inputs.data (step 'split'): unknown step 'validate-dat'" in text
    assert "fix: did you mean 'validate-data'?" in text


def test_the_error_message_lists_every_issue() -> None:
    with pytest.raises(SpecError) as info:
        loads(MANY_MISTAKES, source="bad.yaml")
    msg = str(info.value)
    assert msg.startswith("8 problems in bad.yaml:\n")
    assert msg.count("bad.yaml:") == 9


def test_a_deployment_with_several_mistakes() -> None:
    text = (
        "apiVersion: cloudml/v1\nkind: Deployment\nendpoint: X\n"
        "model: {group: churn, version: 0}\n"
        "instances: {type: huge, count: 2}\n"
        "strategy: {canary: {percent: 150}, linear: {step_percent: 10}}\n"
        "alarms:\n"
        "  - {name: e, metric: error_rate, threshold: 2}\n"
        "  - {name: slow, metric: latency_p99, threshold: 250}\n"
    )
    found = issues_of(text)
    assert [(i.path, i.line, i.column) for i in found] == [
        ("endpoint", 3, 11), ("model.version", 4, 32), ("instances.type", 5, 19),
        ("strategy.canary.percent", 6, 30), ("alarms[0]", 8, 5), ("alarms[1]", 9, 5)]
    by_path = {i.path: i for i in found}
    assert by_path["model.version"].message == "model versions start at 1"
    assert "not a neutral size" in by_path["instances.type"].message
    assert "fraction between 0 and 1" in by_path["alarms[0]"].message
    assert "latency threshold needs a unit" in by_path["alarms[1]"].message


def test_a_backend_options_block_for_an_unknown_adapter() -> None:
    i = one(HEAD + "steps: [{name: a, command: echo, backend_options: {sagemkr: {}}}]\n")
    assert i.message == "no adapter named 'sagemkr'"
    assert (i.path, i.step, i.fix) == ("steps[0].backend_options.sagemkr", "a", "did you mean 'sagemaker'?")


def test_validation_of_data_from_python_has_paths_but_no_positions() -> None:
    with pytest.raises(SpecError) as info:
        validate_data({"kind": "Pipeline", "name": "p", "steps": [{"name": "a", "command": "x", "bogus": 1}]})
    (i,) = info.value.issues
    assert (i.path, i.step, i.line, i.column, i.file) == ("steps[0].bogus", "a", None, None, None)
    assert i.format().startswith("<spec>: steps[0].bogus (step 'a'): unknown field 'bogus'")


def test_validate_model_accepts_a_good_model_and_catches_a_bad_one() -> None:
    good = loads(HEAD + "steps: [{name: a, command: echo}]\n")
    assert validate_model(good) is good
    bad = Pipeline.model_validate({"name": "p", "steps": [{"name": "a", "command": "x", "depends_on": ["zz"]}]})
    with pytest.raises(SpecError) as info:
        validate_model(bad)
    assert [i.message for i in info.value.issues] == ["unknown step 'zz'"]
    assert info.value.source == "Pipeline built in Python"


def test_valid_documents_pass() -> None:
    p = loads(GATE_HEAD + "  - {name: gate, condition: 'evaluate.outputs.metrics.auc >= params.min_auc', then: [ok]}\n")
    assert isinstance(p, cloudml.Pipeline)
    assert p.step_names == ["train", "evaluate", "ok", "gate"]
