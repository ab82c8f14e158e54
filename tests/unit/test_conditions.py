"""Condition expressions: grammar, precedence, printing, errors with a column, and evaluation."""

from __future__ import annotations

import math
from typing import Any

import pytest

from cloudml.spec.conditions import (
    And,
    Compare,
    ConditionSyntaxError,
    LiteralOperand,
    MetricOperand,
    Not,
    Or,
    ParamOperand,
    evaluate_condition,
    parse_condition,
)

A = Compare(ParamOperand("a"), ">", LiteralOperand(1))
B = Compare(ParamOperand("b"), ">", LiteralOperand(2))
C = Compare(ParamOperand("c"), ">", LiteralOperand(3))


# --- grammar ---------------------------------------------------------------------------------------


def test_a_metric_compared_with_a_parameter() -> None:
    e = parse_condition('evaluate.outputs.metrics["auc"] >= params.min_auc')
    assert e == Compare(MetricOperand("evaluate", "metrics", ("auc",)), ">=", ParamOperand("min_auc"))


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ('ev.outputs.m["auc"]', ("auc",)), ("ev.outputs.m['auc']", ("auc",)), ("ev.outputs.m.auc", ("auc",)),
        ('ev.outputs.m["a"]["b"]', ("a", "b")), ("ev.outputs.m.scores[0]", ("scores", 0)),
        ('ev.outputs.m["with space"].x[12]', ("with space", "x", 12)), ("ev.outputs.m.f1-score", ("f1-score",)),
        ('ev.outputs.m["a.b"]', ("a.b",)),
    ],
)
def test_metric_paths(text: str, path: tuple[Any, ...]) -> None:
    e = parse_condition(f"{text} > 0")
    assert isinstance(e, Compare)
    assert e.left == MetricOperand("ev", "m", path)


def test_step_names_with_hyphens_and_underscores() -> None:
    e = parse_condition('my-step_2.outputs.metrics_out["x"] < 1')
    assert e.metric_operands() == [MetricOperand("my-step_2", "metrics_out", ("x",))]


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("1", 1), ("-3", -3), ("0.5", 0.5), ("-0.25", -0.25), ("1e3", 1000.0), ("2.5E-2", 0.025),
        ("true", True), ("false", False), ('"high"', "high"), ("'high'", "high"), ('"a\\"b"', 'a"b'),
        ("'it\\'s'", "it's"), ('"\\u00e9"', "\u00e9"), ('""', ""),
    ],
)
def test_literals(literal: str, value: Any) -> None:
    e = parse_condition(f"params.x == {literal}")
    assert isinstance(e, Compare)
    assert e.right == LiteralOperand(value)
    assert type(e.right.value) is type(value)  # type: ignore[union-attr]


def test_literal_on_the_left() -> None:
    e = parse_condition("0.9 <= params.x")
    assert e == Compare(LiteralOperand(0.9), "<=", ParamOperand("x"))


@pytest.mark.parametrize("op", [">=", ">", "<=", "<", "==", "!="])
def test_every_operator(op: str) -> None:
    e = parse_condition(f"params.x {op} 1")
    assert isinstance(e, Compare) and e.op == op


def test_and_binds_tighter_than_or() -> None:
    assert parse_condition("params.a > 1 or params.b > 2 and params.c > 3") == Or((A, And((B, C))))
    assert parse_condition("params.a > 1 and params.b > 2 or params.c > 3") == Or((And((A, B)), C))


def test_parentheses_group() -> None:
    assert parse_condition("(params.a > 1 or params.b > 2) and params.c > 3") == And((Or((A, B)), C))


def test_not_applies_to_the_next_factor() -> None:
    assert parse_condition("not params.a > 1 and params.b > 2") == And((Not(A), B))
    assert parse_condition("not (params.a > 1 and params.b > 2)") == Not(And((A, B)))
    assert parse_condition("not not params.a > 1") == Not(Not(A))


def test_nested_groups_of_the_same_operator_are_flattened() -> None:
    assert parse_condition("params.a > 1 or (params.b > 2 or params.c > 3)") == Or((A, B, C))
    assert parse_condition("(params.a > 1 and params.b > 2) and params.c > 3") == And((A, B, C))
    assert parse_condition("((params.a > 1))") == A


def test_whitespace_is_free() -> None:
    assert parse_condition("  params.a>1   and\tparams.b >2 ") == And((A, B))


@pytest.mark.parametrize(
    ("text", "printed"),
    [
        ('evaluate.outputs.metrics.auc >= params.min_auc', 'evaluate.outputs.metrics["auc"] >= params.min_auc'),
        ("params.a > 1 or params.b > 2 and params.c > 3", "params.a > 1 or params.b > 2 and params.c > 3"),
        ("(params.a > 1 or params.b > 2) and params.c > 3", "(params.a > 1 or params.b > 2) and params.c > 3"),
        ("not (params.a > 1 and params.b > 2)", "not (params.a > 1 and params.b > 2)"),
        ("params.s == 'x'", 'params.s == "x"'),
        ("params.b != false", "params.b != false"),
        ("ev.outputs.m.l[0] < 1e-7", 'ev.outputs.m["l"][0] < 1e-07'),
    ],
)
def test_printing_is_canonical_and_parses_back(text: str, printed: str) -> None:
    e = parse_condition(text)
    assert str(e) == printed
    assert parse_condition(printed) == e


def test_operand_helpers() -> None:
    e = parse_condition('ev.outputs.m["auc"] >= params.min and not ev.outputs.m.loss[1] < params.max_loss')
    assert len(e.comparisons()) == 2
    assert [m.json_path for m in e.metric_operands()] == ["auc", "loss.1"]
    assert [p.name for p in e.param_operands()] == ["min", "max_loss"]
    assert str(e.metric_operands()[1]) == 'ev.outputs.m["loss"][1]'


# --- errors with a column --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("", 1, "the condition is empty"),
        ("   ", 1, "the condition is empty"),
        ("params.a > 1 $", 14, "unexpected character '$'"),
        ("params.a >   1   @", 18, "unexpected character '@'"),
        ("params.a", 9, "expected a comparison operator"),
        ("params.a = 1", 10, "unexpected character '='"),
        ("params.a > ", 12, "expected a metric"),
        ("params.a > 1 params.b > 2", 14, "join comparisons with 'and' / 'or'"),
        ("params.a > 1 and", 17, "expected a metric"),
        ("(params.a > 1", 14, "expected ')'"),
        ("params.a > 1)", 13, "unexpected ')'"),
        ("params. > 1", 9, "expected a parameter name"),
        ("params.1a > 1", 8, "expected a parameter name"),
        ("ev.output.m['x'] > 1", 4, "expected 'ev.outputs.<name>'"),
        ("ev.outputs.m > 1", 1, "say which value to read"),
        ("ev.outputs.[0] > 1", 12, "expected an output name"),
        ("ev.outputs.m[-1] > 1", 14, "expected a quoted key or an index"),
        ("ev.outputs.m[1.5] > 1", 14, "expected a quoted key or an index"),
        ("ev.outputs.m['x' > 1", 18, "expected ']'"),
        ("ev.outputs.m. > 1", 15, "expected a key after '.'"),
        ("1 > 2", 3, "comparison of two literals"),
        ('params.a == "\\x"', 13, "bad escape"),
        ("params.a == 1e999", 13, "out of range"),
        ("params.a > " + "9" * 5000, 12, "too long"),
        ("ev > 1", 4, "expected '.'"),
    ],
)
def test_syntax_errors_name_the_column(text: str, column: int, fragment: str) -> None:
    with pytest.raises(ConditionSyntaxError) as info:
        parse_condition(text)
    assert info.value.column == column, str(info.value)
    assert fragment in str(info.value)
    assert f"(at column {column} of the condition)" in str(info.value)


def test_a_syntax_error_is_a_value_error() -> None:
    assert issubclass(ConditionSyntaxError, ValueError)


# --- evaluation ------------------------------------------------------------------------------------

METRICS: dict[tuple[str, str], Any] = {
    ("ev", "m"): {"auc": 0.91, "n": 3, "ok": True, "label": "good", "scores": [0.1, 0.7], "nested": {"x": 2},
                  "none": None, "nan": math.nan},
}


def ev(text: str, **params: Any) -> bool:
    return evaluate_condition(parse_condition(text), METRICS, params)


@pytest.mark.parametrize(
    ("text", "params", "result"),
    [
        ('ev.outputs.m["auc"] >= params.min', {"min": 0.9}, True),
        ('ev.outputs.m["auc"] >= params.min', {"min": 0.95}, False),
        ("ev.outputs.m.n == 3", {}, True),
        ("ev.outputs.m.n == 3.0", {}, True),  # ints and floats compare by value
        ("ev.outputs.m.n > 2.5", {}, True),
        ("ev.outputs.m.n != 3", {}, False),
        ("ev.outputs.m.scores[1] > 0.5", {}, True),
        ("ev.outputs.m.nested.x <= 2", {}, True),
        ("ev.outputs.m.ok == true", {}, True),
        ("ev.outputs.m.ok != true", {}, False),
        ("ev.outputs.m.ok == params.flag", {"flag": False}, False),
        ("ev.outputs.m.label == 'good'", {}, True),
        ("ev.outputs.m.label != 'bad'", {}, True),
        ("ev.outputs.m.label < 'zzz'", {}, True),  # strings order lexically
        ("ev.outputs.m.none == params.x", {"x": None}, True),
        ("ev.outputs.m.nan == 1", {}, False),
        ("ev.outputs.m.nan < 1", {}, False),
        ("ev.outputs.m.nan != 1", {}, True),
        ("params.a > 1 and params.b > 2", {"a": 2, "b": 1}, False),
        ("params.a > 1 or params.b > 2", {"a": 0, "b": 3}, True),
        ("not params.a > 1", {"a": 0}, True),
        ("not (params.a > 1 or params.b > 2) and params.c > 3", {"a": 0, "b": 0, "c": 4}, True),
    ],
)
def test_evaluate(text: str, params: dict[str, Any], result: bool) -> None:
    assert ev(text, **params) is result


@pytest.mark.parametrize(
    "text",
    [
        "ev.outputs.m.ok > false",  # booleans only == / !=
        "ev.outputs.m.ok == 1",  # a boolean is not a number
        "ev.outputs.m.n == true",
        "ev.outputs.m.label == 1",  # a string is not a number
        "ev.outputs.m.label > 0.5",
        "ev.outputs.m.none > 1",
        "ev.outputs.m.nested > 1",
    ],
)
def test_incomparable_values_raise_type_error(text: str) -> None:
    with pytest.raises(TypeError):
        ev(text)


@pytest.mark.parametrize(
    ("text", "missing"),
    [
        ("ev.outputs.m.nope > 1", "nope"),
        ("ev.outputs.m.nested.y > 1", "nested.y"),
        ("ev.outputs.m.scores[5] > 1", "scores.5"),
        ("ev.outputs.m.auc.x > 1", "auc.x"),
        ("ev.outputs.m.scores.x > 1", "scores.x"),
    ],
)
def test_a_missing_metric_path_raises_key_error_naming_it(text: str, missing: str) -> None:
    with pytest.raises(KeyError) as info:
        ev(text)
    assert info.value.args[0] == missing


def test_a_missing_metrics_document_or_parameter_raises_key_error() -> None:
    with pytest.raises(KeyError):
        ev("other.outputs.m.auc > 1")
    with pytest.raises(KeyError):
        ev("params.undefined > 1")


def test_and_or_stop_at_the_first_deciding_term() -> None:
    assert ev("params.a > 1 or ev.outputs.m.nope > 1", a=2) is True
    assert ev("params.a > 1 and ev.outputs.m.nope > 1", a=0) is False


def test_integer_index_on_a_mapping_reads_the_string_key() -> None:
    assert evaluate_condition(parse_condition("s.outputs.m[0] == 'zero'"), {("s", "m"): {"0": "zero"}}, {})
