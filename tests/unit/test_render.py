"""Pipeline drawings: Mermaid, Graphviz DOT and terminal text name the right nodes and edges."""

from __future__ import annotations

import re

from cloudml.builder import PipelineBuilder
from cloudml.render import to_dot, to_mermaid, to_text
from cloudml.spec.pipeline import Pipeline


def churn() -> Pipeline:
    b = PipelineBuilder("churn-training")
    min_auc = b.param("min_auc", float, 0.8)
    prep = b.add_step("validate-data", command="x {{outputs.train}} {{outputs.test}}",
                      outputs={"train": "dataset", "test": "dataset"})
    train = b.add_step("train", kind="training", command="train {{inputs.d}} {{outputs.model}}",
                       inputs={"d": prep.outputs["train"]}, outputs={"model": "model"})
    ev = b.add_step("evaluate", python="src.ev:run",
                    inputs={"m": train.outputs["model"], "t": prep.outputs["test"]}, outputs={"metrics": "metrics"})
    b.condition("gate", ev.outputs["metrics"]["auc"] >= min_auc, then=["register"], else_=["reject"])
    b.register_model("register", model=train.outputs["model"], group="churn", metrics=ev.outputs["metrics"])
    b.fail("reject", "too low")
    b.add_step("notify", command="echo done", depends_on=["register"])
    return b.build()


# --- mermaid ---------------------------------------------------------------------------------------


def test_mermaid_nodes_have_a_shape_per_step_kind() -> None:
    lines = to_mermaid(churn()).splitlines()
    assert lines[0] == "flowchart TD"
    assert '    validate_data["validate-data"]' in lines
    assert '    train[["train"]]' in lines  # training step
    assert '    evaluate["evaluate"]' in lines
    assert '    gate{"gate: evaluate.outputs.metrics[#quot;auc#quot;] >= params.min_auc"}' in lines
    assert '    register(["register"])' in lines
    assert '    reject[/"reject"/]' in lines
    assert '    notify["notify"]' in lines


def test_mermaid_edges_carry_their_meaning() -> None:
    lines = to_mermaid(churn()).splitlines()
    assert '    validate_data -->|"train→d"| train' in lines
    assert '    train -->|"model→m"| evaluate' in lines
    assert '    validate_data -->|"test→t"| evaluate' in lines
    assert '    evaluate -->|"metrics"| gate' in lines
    assert "    gate -.->|then| register" in lines
    assert "    gate -.->|else| reject" in lines
    assert "    register -.-> notify" in lines
    assert sum("-->" in line or "-.->" in line for line in lines) == 9


def test_mermaid_marks_fail_steps() -> None:
    out = to_mermaid(churn())
    assert out.endswith("    classDef fail fill:#fdd,stroke:#c00\n    class reject fail")


def test_mermaid_ids_are_distinct_and_never_keywords() -> None:
    b = PipelineBuilder("p")
    b.add_step("a-b", command="echo")
    b.add_step("a_b", command="echo", depends_on=["a-b"])
    b.add_step("end", command="echo", depends_on=["a_b"])
    b.add_step("graph", command="echo")
    lines = to_mermaid(b.build()).splitlines()
    assert lines[1:] == [
        '    a_b["a-b"]',
        '    a_b_2["a_b"]',
        '    end_2["end"]',
        '    graph_2["graph"]',
        "    a_b -.-> a_b_2",
        "    a_b_2 -.-> end_2",
    ]


def test_mermaid_without_fail_steps_has_no_class_lines() -> None:
    b = PipelineBuilder("p")
    b.add_step("a", command="echo")
    assert "classDef" not in to_mermaid(b.build())


# --- dot -------------------------------------------------------------------------------------------


def test_dot_nodes_and_edges() -> None:
    out = to_dot(churn())
    lines = out.splitlines()
    assert lines[0] == 'digraph "churn-training" {'
    assert lines[-1] == "}"
    assert '  "validate-data" [label="validate-data"];' in lines
    assert '  "train" [shape=box3d, label="train"];' in lines
    assert '  "gate" [shape=diamond, label="gate\\nevaluate.outputs.metrics[\\"auc\\"] >= params.min_auc"];' in lines
    assert '  "register" [shape=cylinder, label="register"];' in lines
    assert '  "reject" [shape=box, color=red, fontcolor=red, label="reject"];' in lines
    assert '  "validate-data" -> "train" [label="train→d"];' in lines
    assert '  "gate" -> "register" [style=dashed, label="then"];' in lines
    assert '  "gate" -> "reject" [style=dashed, label="else"];' in lines
    assert '  "register" -> "notify" [style=dotted];' in lines
    assert len(re.findall(r" -> ", out)) == 9


def test_dot_strings_are_quoted_on_one_line() -> None:
    out = to_dot(churn())
    assert all(line.count('"') % 2 == 0 for line in out.splitlines())  # no string spills over a line


# --- text ------------------------------------------------------------------------------------------


def test_text_lists_waves_with_marks_dependencies_and_guards() -> None:
    assert to_text(churn()).splitlines() == [
        "churn-training  (7 steps, 6 waves)",
        "wave 1",
        "  ■ validate-data",
        "wave 2",
        "  ▣ train   (after validate-data)",
        "wave 3",
        "  λ evaluate   (after train, validate-data)",
        "wave 4",
        "  ◆ gate   (after evaluate)",
        "wave 5",
        "  ◉ register   (after train, evaluate; if gate.then)",
        "  ✖ reject   (if gate.else)",
        "wave 6",
        "  ■ notify   (after register)",
    ]


def test_text_of_parallel_steps() -> None:
    b = PipelineBuilder("p")
    b.add_step("a", command="echo")
    b.add_step("b", command="echo")
    assert to_text(b.build()).splitlines() == ["p  (2 steps, 1 wave)", "wave 1", "  ■ a", "  ■ b"]
