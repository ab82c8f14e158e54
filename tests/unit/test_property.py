"""Property-based tests: whatever text comes in, cloudml.loads returns a valid spec or raises SpecError.

Valid results must also survive a dump and load unchanged. Inputs: random text, YAML token soup,
random YAML/JSON documents, and mutations of the example pipeline and deployment (keys dropped, types
changed, references renamed, junk injected, values nested).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import cloudml
from cloudml.builder import PipelineBuilder
from cloudml.errors import SpecError
from cloudml.spec.conditions import ConditionSyntaxError, parse_condition
from cloudml.spec.deployment import Deployment
from cloudml.spec.pipeline import Pipeline
from cloudml.spec.types import format_duration, format_memory, parse_duration, parse_memory
from tests.unit.test_loader import EXAMPLE_DEPLOYMENT, EXAMPLE_PIPELINE

FAST = settings(max_examples=250, deadline=None)

PIPELINE_DATA = yaml.safe_load(EXAMPLE_PIPELINE)
DEPLOYMENT_DATA = yaml.safe_load(EXAMPLE_DEPLOYMENT)


def check(text: str) -> Pipeline | Deployment | None:
    """The invariant: a valid model that round-trips, or a SpecError with usable issues. Nothing else."""
    try:
        model = cloudml.loads(text, source="fuzz.yaml")
    except SpecError as e:
        assert e.issues, "a SpecError always lists at least one issue"
        for issue in e.issues:
            assert isinstance(issue.message, str) and issue.message
            assert issue.file == "fuzz.yaml"
            assert issue.format().startswith("fuzz.yaml")
        return None
    assert isinstance(model, (Pipeline, Deployment))
    again = cloudml.loads(cloudml.dumps(model))
    assert again == model, cloudml.dumps(model)
    return model


# --- strategies ------------------------------------------------------------------------------------

FIELD_NAMES = [
    "apiVersion", "kind", "name", "steps", "parameters", "defaults", "schedule", "command", "python", "inputs",
    "outputs", "params", "type", "default", "min", "max", "allowed", "condition", "then", "else", "fail",
    "register_model", "model", "group", "metrics", "depends_on", "timeout", "retry", "attempts", "backoff",
    "cache", "resources", "cpu", "memory", "env", "secrets", "endpoint", "strategy", "canary", "percent", "bake",
    "alarms", "threshold", "metric", "instances", "count", "autoscale", "backend_options", "from", "version",
]
CONDITIONS = [
    'evaluate.outputs.metrics["auc"] >= params.min_auc',
    "evaluate.outputs.metrics.auc > 0.5 or (params.n_estimators > 10 or params.min_auc < 1)",
    "not (evaluate.outputs.metrics.loss[0] < 1e-3 and params.input_uri == 'x')",
    "train.outputs.model['x'] > 1", "params.min_auc >", "evaluate.outputs.metrics > 1",
]
INTERESTING = [
    "train", "split.outputs.train", "evaluate.outputs.metrics", "{{params.min_auc}}", "{{inputs.data}}",
    "{{input.data}}", "{{oops}}", "s3://b/k", "s4://b/k", "10m", "8Gi", "-1s", "nan", ".inf", "1e999", "0.5",
    "sklearn==1.5", "src.train:fit", "Pipeline", "Deployment", "cloudml/v1", "canary", "blue_green", "1%",
    "250ms", "latency_p99", "error_rate", "env://X", "0 3 * * 1-5", "", " ", "=", "<<", "é", *CONDITIONS,
]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(INTERESTING), st.text(max_size=12),
)
keys = st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=8))
values = st.recursive(
    scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=20,
)

YAML_TOKENS = [
    "a", "kind", ":", " ", "\n", "  ", "- ", "[", "]", "{", "}", ",", "&x ", "*x", "!!python/name:os.system ",
    "!!python/object/apply:os.system ", "<<: ", "? ", "'", '"', "#", "|\n", ">\n", "---\n", "...\n", "~", "1",
    "1.5", ".nan", "true", "\t", "%YAML 1.1\n", "@", "!!int ", "!!binary ", "=", "kind: Pipeline\n",
    "kind: Deployment\n", "name: p\n", "steps:\n", "  - name: a\n", "    command: echo\n", "endpoint: ep\n",
    "model: {group: g}\n",
]


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _rename(value: Any, how: int) -> Any:
    if not isinstance(value, str) or not value:
        return value
    options = [value + "x", value[:-1], value.upper(), value.replace(".", "_"), value.replace("outputs", "output"),
               "{{" + value + "}}", value.replace("params", "param"), value[::-1]]
    return options[how % len(options)]


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> Any:
    doc: Any = copy.deepcopy(base)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        path = draw(st.sampled_from(_paths(doc)))
        if not path:
            if draw(st.booleans()):
                doc = draw(st.sampled_from([[doc], {"spec": doc}, None, "text"]))
            continue
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        last, current = path[-1], parent[path[-1]]
        op = draw(st.sampled_from(["drop", "junk", "nest", "rename", "inject", "duplicate", "condition"]))
        if op == "drop":
            del parent[last]
        elif op == "junk":
            parent[last] = draw(values)
        elif op == "nest":
            parent[last] = draw(st.sampled_from([[current], {"value": current}, {draw(keys): current}]))
        elif op == "rename":
            if isinstance(parent, dict) and draw(st.booleans()):
                parent[draw(st.sampled_from(FIELD_NAMES))] = parent.pop(last)
            else:
                parent[last] = _rename(current, draw(st.integers(0, 7)))
        elif op == "inject" and isinstance(current, dict):
            current[draw(keys)] = draw(values)
        elif op == "inject" and isinstance(current, list):
            current.insert(draw(st.integers(0, len(current))), draw(values))
        elif op == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(current))
        elif op == "condition":
            parent[last] = draw(st.sampled_from(CONDITIONS))
    return doc


def _text_of(doc: Any, as_json: bool) -> str | None:
    try:
        return json.dumps(doc) if as_json else yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    except (ValueError, TypeError):  # NaN in strict JSON, or keys JSON cannot write
        return None


# --- loads never raises anything but SpecError -----------------------------------------------------


@FAST
@given(st.text())
def test_random_text(text: str) -> None:
    check(text)


@FAST
@given(st.lists(st.sampled_from(YAML_TOKENS), max_size=40))
def test_yaml_token_soup(tokens: list[str]) -> None:
    check("".join(tokens))


@FAST
@given(values, st.sampled_from([None, "Pipeline", "Deployment"]), st.booleans())
def test_random_documents(data: Any, kind: str | None, as_json: bool) -> None:
    if kind is not None and isinstance(data, dict):
        data = {"apiVersion": "cloudml/v1", "kind": kind, **data}
    text = _text_of(data, as_json)
    if text is not None:
        check(text)


@FAST
@given(mutated(PIPELINE_DATA), st.booleans())
def test_mutated_pipelines(doc: Any, as_json: bool) -> None:
    text = _text_of(doc, as_json)
    if text is not None:
        check(text)


@FAST
@given(mutated(DEPLOYMENT_DATA), st.booleans())
def test_mutated_deployments(doc: Any, as_json: bool) -> None:
    text = _text_of(doc, as_json)
    if text is not None:
        check(text)


def test_the_unmutated_examples_are_valid() -> None:
    assert isinstance(check(EXAMPLE_PIPELINE), Pipeline)
    assert isinstance(check(EXAMPLE_DEPLOYMENT), Deployment)


# --- value types -----------------------------------------------------------------------------------


@FAST
@given(st.floats(min_value=0, allow_nan=False, allow_infinity=False))
def test_a_duration_reads_back_exactly(seconds: float) -> None:
    text = format_duration(seconds)
    assert parse_duration(text) == seconds
    assert format_duration(parse_duration(text)) == text


@FAST
@given(st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(["ms", "s", "m", "h", "d", "w"])), min_size=1,
                max_size=4))
def test_duration_strings_parse_to_the_sum_of_their_parts(parts: list[tuple[int, str]]) -> None:
    size = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
    text = "".join(f"{n}{unit}" for n, unit in parts)
    assert math.isclose(parse_duration(text), sum(n * size[u] for n, u in parts), rel_tol=1e-12, abs_tol=1e-9)


@FAST
@given(st.integers(min_value=1, max_value=2**80))
def test_a_memory_size_reads_back_exactly(size: int) -> None:
    text = format_memory(size)
    assert parse_memory(text) == size
    assert len(text) <= len(str(size))


@FAST
@given(st.one_of(st.text(), st.integers(), st.floats(), st.booleans(), st.none()))
def test_duration_and_memory_parsers_raise_only_value_error(value: Any) -> None:
    with contextlib.suppress(ValueError):
        seconds = parse_duration(value)
        assert isinstance(seconds, float) and math.isfinite(seconds) and seconds >= 0
    with contextlib.suppress(ValueError):
        size = parse_memory(value)
        assert isinstance(size, int) and size > 0


# --- conditions ------------------------------------------------------------------------------------

_name = st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True).filter(
    lambda s: s not in ("and", "or", "not", "true", "false", "params"))
_key = st.one_of(_name.map(lambda n: f".{n}"), st.integers(0, 9).map(lambda i: f"[{i}]"),
                 st.text(max_size=6).map(lambda t: f"[{json.dumps(t)}]"))
_metric = st.builds(lambda s, o, ks: f"{s}.outputs.{o}{''.join(ks)}", _name, _name,
                    st.lists(_key, min_size=1, max_size=3))
_param = _name.map(lambda n: f"params.{n}")
_literal = st.one_of(st.integers(-(10**20), 10**20).map(str),
                     st.floats(allow_nan=False, allow_infinity=False).map(repr),
                     st.sampled_from(["true", "false"]), st.text(max_size=6).map(json.dumps))
_compare = st.builds(lambda a, op, b: f"{a} {op} {b}", st.one_of(_metric, _param),
                     st.sampled_from([">=", ">", "<=", "<", "==", "!="]), st.one_of(_metric, _param, _literal))
conditions = st.recursive(_compare, lambda inner: st.one_of(
    st.builds("{} and {}".format, inner, inner), st.builds("{} or {}".format, inner, inner),
    st.builds("not {}".format, inner), st.builds("({})".format, inner)), max_leaves=8)


@FAST
@given(conditions)
def test_a_printed_condition_parses_back_to_the_same_tree(text: str) -> None:
    expr = parse_condition(text)
    again = parse_condition(str(expr))
    assert again == expr
    assert str(again) == str(expr)


@FAST
@given(st.one_of(st.text(), st.lists(st.sampled_from(
    ["a", ".", "outputs", "m", "[", "]", '"k"', "'k'", "0", "-1", "1e3", ">=", "==", "<", "and", "or", "not",
     "(", ")", "params", "true", "$", "1e999", '"\\q"']), max_size=15).map(" ".join)))
def test_a_condition_parses_or_raises_a_syntax_error_with_a_column(text: str) -> None:
    try:
        expr = parse_condition(text)
    except ConditionSyntaxError as e:
        assert 1 <= e.column <= len(text) + 1
        return
    assert parse_condition(str(expr)) == expr


# --- builder pipelines -----------------------------------------------------------------------------


@st.composite
def built_pipelines(draw: st.DrawFn) -> Pipeline:
    b = PipelineBuilder(draw(st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True)))
    n = b.param("n", int, draw(st.integers(-1000, 1000)))
    lr = b.param("lr", float, draw(st.floats(-1e6, 1e6, allow_nan=False)))
    previous = None
    count = draw(st.integers(1, 5))
    for i in range(count):
        fields: dict[str, Any] = {"outputs": {"out": draw(st.sampled_from(["dataset", "model", "metrics"]))}}
        if previous is not None:
            fields["inputs"] = {"data": previous.outputs["out"]}
        if draw(st.booleans()):
            fields["python"] = "steps.run:main"
            fields["params"] = {"n": n, "lr": lr}
        else:
            fields["command"] = "run {{outputs.out}}" + (" {{inputs.data}}" if previous else "") + f" {n}"
        if draw(st.booleans()):
            fields["timeout"] = draw(st.floats(0, 1e7, allow_nan=False))
        if draw(st.booleans()):
            fields["resources"] = {"memory": draw(st.integers(1, 2**40)), "cpu": draw(st.sampled_from([0.5, 1, 4]))}
        previous = b.add_step(f"s{i}", **fields)
    return b.build()


@FAST
@given(built_pipelines())
def test_builder_pipelines_round_trip(p: Pipeline) -> None:
    text = cloudml.dumps(p)
    assert cloudml.loads(text) == p
    assert cloudml.dumps(cloudml.loads(text)) == text
