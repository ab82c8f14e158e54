"""The safe YAML/JSON loader: positions, tag and alias safety, syntax errors, round trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import cloudml
from cloudml import loader
from cloudml.errors import Issue, SpecError
from cloudml.loader import dump, dumps, load, loads, parse_yaml, to_data
from cloudml.spec.deployment import Deployment
from cloudml.spec.pipeline import Pipeline

# Copies of the user-facing examples (shared/examples), kept here so the tests stand alone.
EXAMPLE_PIPELINE = """\
apiVersion: cloudml/v1
kind: Pipeline
name: churn-training
description: Train and gate a churn classifier.

parameters:
  input_uri:    {type: string, default: "file://data/churn.csv"}
  n_estimators: {type: int, default: 200, min: 10, max: 2000}
  min_auc:      {type: float, default: 0.85}

defaults:
  framework: sklearn==1.5
  resources: {cpu: 2, memory: 8Gi}
  retry: {attempts: 3, backoff: 10s}
  cache: true

steps:
  - name: validate-data
    kind: processing
    code: ./src
    command: python validate.py --data {{params.input_uri}} --report {{outputs.report}} --clean {{outputs.clean}}
    outputs: {clean: dataset, report: generic}

  - name: split
    kind: processing
    code: ./src
    command: python split.py --data {{inputs.data}} --train {{outputs.train}} --test {{outputs.test}}
    inputs: {data: validate-data.outputs.clean}
    outputs: {train: dataset, test: dataset}

  - name: train
    kind: training
    python: src.train:fit
    inputs: {train: split.outputs.train}
    params: {n_estimators: "{{params.n_estimators}}"}
    outputs: {model: model}
    resources: {cpu: 4, memory: 16Gi, instance_type: {sagemaker: ml.m5.xlarge, vertex: n1-standard-4}}
    timeout: 2h

  - name: evaluate
    kind: processing
    code: ./src
    command: python evaluate.py --model {{inputs.model}} --test {{inputs.test}} --metrics {{outputs.metrics}}
    inputs: {model: train.outputs.model, test: split.outputs.test}
    outputs: {metrics: metrics}

  - name: gate
    condition: evaluate.outputs.metrics["auc"] >= params.min_auc
    then: [register]
    else: [reject]

  - name: register
    register_model:
      model: train.outputs.model
      group: churn
      metrics: evaluate.outputs.metrics
      approval: pending

  - name: reject
    fail: "AUC below {{params.min_auc}}"
"""

EXAMPLE_DEPLOYMENT = """\
apiVersion: cloudml/v1
kind: Deployment
endpoint: churn
model: {group: churn, version: latest-approved}
instances: {type: cpu-small, count: 2, autoscale: {min: 2, max: 6}}

strategy:
  canary: {percent: 10, bake: 10m}

alarms:
  - name: errors
    metric: error_rate
    threshold: 0.01
    period: 60s
    evaluation_periods: 3
    datapoints_to_alarm: 2
  - name: slow
    metric: latency_p99
    threshold: 250ms
    period: 60s
    evaluation_periods: 3

rollback: {automatic: true, termination_wait: 5m}
"""

HEAD = "apiVersion: cloudml/v1\nkind: Pipeline\nname: p\n"
ONE_STEP = HEAD + "steps:\n  - name: a\n    command: echo\n"


def spec_error(text: str, source: str = "p.yaml") -> SpecError:
    with pytest.raises(SpecError) as info:
        loads(text, source=source)
    return info.value


def only_issue(text: str) -> Issue:
    err = spec_error(text)
    assert len(err.issues) == 1, err
    return err.issues[0]


# --- parse_yaml: plain data with positions -------------------------------------------------------


def test_parse_yaml_keeps_value_and_key_positions() -> None:
    doc = parse_yaml("top:\n  inner: [1, two]\n  other: x\n", source="f.yaml")
    assert doc.data == {"top": {"inner": [1, "two"], "other": "x"}}
    assert doc.source == "f.yaml"
    assert doc.marks[("top", "inner")] == (2, 10)
    assert doc.marks[("top", "inner", 1)] == (2, 14)
    assert doc.key_marks[("top", "other")] == (3, 3)


def test_document_position_falls_back_to_the_nearest_ancestor() -> None:
    doc = parse_yaml("a:\n  b: 1\n")
    assert doc.position(("a", "b", "missing", 3)) == (2, 6)
    assert doc.position(("a", "b"), key=True) == (2, 3)
    assert doc.position(("nothing",)) == (1, 1)


def test_scalars_become_plain_python_values() -> None:
    doc = parse_yaml("i: 3\nf: 1.5\nb: yes\nn: ~\ns: '3'\nd: 2024-01-02\nhex: 0x1f\n")
    assert doc.data == {"i": 3, "f": 1.5, "b": True, "n": None, "s": "3", "d": "2024-01-02", "hex": 31}


def test_plain_equals_and_merge_signs_are_strings_as_values() -> None:
    p = loads(HEAD + "steps:\n  - name: a\n    command: [echo, =, <<]\n")
    assert isinstance(p, Pipeline)
    assert p.steps[0].command == ["echo", "=", "<<"]  # type: ignore[union-attr]
    assert loads(dumps(p)) == p


# --- YAML safety ----------------------------------------------------------------------------------


def test_python_object_apply_tag_is_rejected_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = f"!!python/object/apply:os.system ['touch {marker}']\n"
    issue = only_issue(text)
    assert "YAML tag '!!python/object/apply:os.system' is not allowed" in issue.message
    assert (issue.file, issue.line, issue.column) == ("p.yaml", 1, 1)
    assert issue.fix is not None and "remove the tag" in issue.fix
    assert not marker.exists()


def test_python_tag_deep_inside_a_step_is_reported_at_its_position(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = ONE_STEP + f"    env: {{A: !!python/object/apply:os.system ['touch {marker}']}}\n"
    issue = only_issue(text)
    assert issue.path == "steps[0].env.A"
    assert (issue.line, issue.column) == (7, 14)
    assert "!!python/object/apply:os.system" in issue.message
    assert not marker.exists()


@pytest.mark.parametrize(
    ("value", "tag"),
    [
        ("!!python/name:os.system ''", "!!python/name:os.system"),
        ("!!python/object/new:dict {}", "!!python/object/new:dict"),
        ("!!python/module:os ''", "!!python/module:os"),
        ("!!binary aGVsbG8=", "!!binary"),
        ("!!set {a, b}", "!!set"),
        ("!!omap [{a: 1}]", "!!omap"),
        ("!custom 1", "!custom"),
        ("!!python/tuple [1, 2]", "!!python/tuple"),
    ],
)
def test_every_non_plain_tag_is_rejected(value: str, tag: str) -> None:
    issue = only_issue(ONE_STEP + f"    description: {value}\n")
    assert issue.message == f"YAML tag '{tag}' is not allowed"
    assert issue.path == "steps[0].description"
    assert (issue.line, issue.column) == (7, 18)
    assert issue.code == "yaml"


def test_a_tagged_mapping_key_is_rejected() -> None:
    issue = only_issue("!!python/name:os.system : 1\n")
    assert issue.message == "YAML tag '!!python/name:os.system' is not allowed"
    assert (issue.line, issue.column) == (1, 1)


def test_a_complex_mapping_key_is_rejected() -> None:
    issue = only_issue("? [a, b]\n: 1\n")
    assert issue.message == "mapping keys must be plain strings"


@pytest.mark.parametrize(
    ("value", "kind"),
    [("!!int abc", "int"), ("!!float abc", "float"), ("!!bool maybe", "bool"), ('!!int ""', "int")],
)
def test_an_explicit_type_tag_on_a_bad_value_is_a_spec_error(value: str, kind: str) -> None:
    issue = only_issue(f"a: {value}\n")
    assert issue.message.endswith(f"is not a valid {kind}")
    assert (issue.line, issue.column) == (1, 4)


def test_an_integer_with_too_many_digits_is_a_spec_error() -> None:
    issue = only_issue("a: " + "9" * 5000 + "\n")
    assert "is not a valid int" in issue.message


BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_billion_laughs_alias_bomb_fails_with_a_spec_error() -> None:
    issue = only_issue(BILLION_LAUGHS)
    assert "alias bomb" in issue.message
    assert str(loader.MAX_ALIAS_NODES) in issue.message
    assert issue.line is not None and issue.column is not None
    assert issue.fix is not None


def test_modest_alias_use_is_fine() -> None:
    text = HEAD + "steps:\n  - name: a\n    command: &cmd [echo, hi]\n  - name: b\n    command: *cmd\n"
    p = loads(text)
    assert isinstance(p, Pipeline)
    assert p.steps[1].command == ["echo", "hi"]  # type: ignore[union-attr]


@pytest.mark.parametrize("text", ["a: &x [*x]\n", "a: &x {b: *x}\n"])
def test_a_recursive_alias_is_a_spec_error(text: str) -> None:
    issue = only_issue(text)
    assert "recursive YAML alias" in issue.message
    assert (issue.line, issue.column) == (1, 4)


def test_duplicate_keys_are_reported_at_the_second_key() -> None:
    issue = only_issue(ONE_STEP + "    command: again\n")
    assert issue.message == "duplicate key 'command'"
    assert issue.path == "steps[0].command"
    assert (issue.file, issue.line, issue.column) == ("p.yaml", 7, 5)
    assert issue.fix == "keep one of them"


def test_every_duplicate_key_is_reported() -> None:
    err = spec_error("a: 1\na: 2\nb: 1\nb: 2\n")
    assert [(i.message, i.line) for i in err.issues] == [("duplicate key 'a'", 2), ("duplicate key 'b'", 4)]


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("a: [1, 2\nb: 3\n", 2, 2),
        ("a: b: c\n", 1, 5),
        ("a:\n  - x\n y: 1\n", 3, 2),
        ('a: "unterminated\n', 2, 1),
    ],
)
def test_yaml_syntax_errors_give_line_and_column(text: str, line: int, column: int) -> None:
    issue = only_issue(text)
    assert issue.message.startswith("YAML syntax:")
    assert (issue.file, issue.line, issue.column) == ("p.yaml", line, column)
    assert issue.fix is not None


def test_a_control_character_is_reported_with_its_position() -> None:
    issue = only_issue("a: 1\nb: x\x00y\n")
    assert "U+0000" in issue.message
    assert (issue.line, issue.column) == (2, 5)


def test_a_lone_surrogate_is_a_spec_error() -> None:
    issue = only_issue("a: \ud800\n")
    assert "not valid Unicode" in issue.message


def test_multiple_documents_are_rejected() -> None:
    issue = only_issue(ONE_STEP + "---\n" + ONE_STEP)
    assert issue.message == "expected one YAML document, found 2"
    assert issue.fix == "put each pipeline or deployment in its own file"


def test_an_empty_text_is_rejected() -> None:
    assert only_issue("").message == "expected one YAML document, found 0"


def test_a_document_that_is_not_a_mapping_is_rejected() -> None:
    issue = only_issue("- a\n- b\n")
    assert "a spec is a mapping" in issue.message
    assert (issue.line, issue.column) == (1, 1)


def test_very_deep_nesting_is_a_spec_error() -> None:
    assert "nest" in only_issue("[" * 20000 + "]" * 20000).message


def test_an_oversized_document_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "MAX_BYTES", 64)
    issue = only_issue(ONE_STEP + "# " + "x" * 100 + "\n")
    assert "larger than" in issue.message


def test_json_input_works() -> None:
    data = {"apiVersion": "cloudml/v1", "kind": "Pipeline", "name": "p",
            "steps": [{"name": "a", "command": ["echo", "{{params.x}}"]}],
            "parameters": {"x": {"type": "int", "default": 3}}}
    p = loads(json.dumps(data, indent=2))
    assert isinstance(p, Pipeline)
    assert p.parameters["x"].default == 3
    assert p.steps[0].command == ["echo", "{{params.x}}"]  # type: ignore[union-attr]


def test_json_duplicate_keys_are_reported() -> None:
    issue = only_issue('{"kind": "Pipeline", "kind": "Deployment"}')
    assert issue.message == "duplicate key 'kind'"
    assert (issue.line, issue.column) == (1, 22)


def test_json_errors_are_located() -> None:
    issue = only_issue(json.dumps({"kind": "Pipeline", "name": "p", "steps": [{"name": "a", "command": "x"}],
                                   "bogus": 1}, indent=1))
    assert issue.message == "unknown field 'bogus'"
    assert (issue.line, issue.column) == (10, 2)  # the key "bogus" on the tenth line


def test_merge_keys_work_and_local_keys_win() -> None:
    text = HEAD + (
        "steps:\n"
        "  - &base {name: a, command: echo, timeout: 5m, env: {A: '1'}}\n"
        "  - <<: *base\n"
        "    name: b\n"
        "    command: [cat, x]\n"
    )
    p = loads(text)
    assert isinstance(p, Pipeline)
    b = p.step("b")
    assert b.command == ["cat", "x"]  # type: ignore[union-attr]
    assert b.timeout == 300.0  # type: ignore[union-attr]
    assert b.env == {"A": "1"}  # type: ignore[union-attr]


def test_merge_of_several_mappings_prefers_the_first() -> None:
    doc = parse_yaml("x: &x {a: 1, b: 1}\ny: &y {b: 2, c: 2}\nz:\n  <<: [*x, *y]\n  c: 3\n")
    assert doc.data["z"] == {"a": 1, "b": 1, "c": 3}


def test_merged_mapping_keeps_its_own_position_for_errors() -> None:
    text = HEAD + "steps:\n  - &base {name: a, command: echo}\n  - <<: *base\n    name: b\n    bogus: 1\n"
    issue = only_issue(text)
    assert issue.path == "steps[1].bogus"
    assert (issue.line, issue.column) == (8, 5)


def test_merging_a_non_mapping_is_an_error() -> None:
    issue = only_issue("a: &a [1]\nb:\n  <<: *a\n")
    assert issue.message == "'<<' merges only mappings"
    assert issue.line == 1


# --- load / loads / dump / dumps ------------------------------------------------------------------


def test_load_reads_yaml_and_json_files(tmp_path: Path) -> None:
    y = tmp_path / "p.yaml"
    y.write_text(EXAMPLE_PIPELINE, encoding="utf-8")
    j = tmp_path / "p.json"
    j.write_text(json.dumps(to_data(loads(EXAMPLE_PIPELINE))), encoding="utf-8")
    assert load(y) == load(j) == loads(EXAMPLE_PIPELINE)


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(ONE_STEP + "    timout: 1h\n", encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load(f)
    issue = info.value.issues[0]
    assert issue.file == str(f)
    assert issue.location() == f"{f}:7:5"
    assert str(f) in str(info.value)


def test_load_of_a_missing_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load(tmp_path / "nope.yaml")
    assert info.value.issues[0].code == "io"
    assert "no such file" in info.value.issues[0].message


def test_load_of_a_non_utf8_file_is_a_spec_error(tmp_path: Path) -> None:
    f = tmp_path / "latin1.yaml"
    f.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(SpecError) as info:
        load(f)
    assert info.value.issues[0].code == "io"
    assert "cannot read" in info.value.issues[0].message


def test_loads_returns_the_right_kind() -> None:
    assert isinstance(loads(EXAMPLE_PIPELINE), Pipeline)
    assert isinstance(loads(EXAMPLE_DEPLOYMENT), Deployment)


def test_the_public_names_are_the_loader_functions() -> None:
    assert cloudml.loads is loads and cloudml.load is load
    assert cloudml.dumps is dumps and cloudml.dump is dump


@pytest.mark.parametrize("text", [EXAMPLE_PIPELINE, EXAMPLE_DEPLOYMENT], ids=["pipeline", "deployment"])
def test_round_trip_of_the_examples(text: str) -> None:
    model = loads(text)
    out = dumps(model)
    again = loads(out)
    assert again == model
    assert dumps(again) == out  # dumping is stable


def test_dump_writes_a_file_that_loads_back(tmp_path: Path) -> None:
    model = loads(EXAMPLE_DEPLOYMENT)
    f = tmp_path / "d.yaml"
    dump(model, f)
    assert load(f) == model


def test_dumps_writes_head_first_and_short_forms() -> None:
    out = dumps(loads(EXAMPLE_PIPELINE))
    assert out.startswith("apiVersion: cloudml/v1\nkind: Pipeline\nname: churn-training\n")
    assert "memory: 16Gi" in out
    assert "timeout: 2h" in out
    assert "data: validate-data.outputs.clean" in out
    assert "metrics: metrics" in out
    assert "condition: evaluate.outputs.metrics[\"auc\"] >= params.min_auc" in out


def test_to_data_keeps_only_fields_that_were_set() -> None:
    data = to_data(loads(ONE_STEP))
    assert data == {"apiVersion": "cloudml/v1", "kind": "Pipeline", "name": "p",
                    "steps": [{"name": "a", "command": "echo"}]}


def test_deployment_dump_writes_durations_and_latency_thresholds_with_units() -> None:
    data = to_data(loads(EXAMPLE_DEPLOYMENT))
    assert data["strategy"] == {"canary": {"percent": 10.0, "bake": "10m"}}
    assert data["alarms"][1]["threshold"] == "250ms"
    assert data["alarms"][0]["period"] == "1m"
    assert data["rollback"] == {"automatic": True, "termination_wait": "5m"}
