"""The step graph: edges from every kind of reference, waves, cycles, descendants."""

from __future__ import annotations

from itertools import pairwise

import pytest

from cloudml.builder import PipelineBuilder
from cloudml.dag import Edge, StepGraph, step_edges
from cloudml.spec.pipeline import Pipeline
from cloudml.spec.steps import ConditionStep, FailStep, RegisterModelStep, TaskStep


def graph(*edges: str, nodes: str = "") -> StepGraph:
    """``graph("a>b", "b>c")``: nodes in first-seen order unless given."""
    pairs = [tuple(e.split(">")) for e in edges]
    names = nodes.split() or list(dict.fromkeys(n for p in pairs for n in p))
    return StepGraph(names, [Edge(u, d, "depends_on") for u, d in pairs])


def churn() -> Pipeline:
    b = PipelineBuilder("churn")
    min_auc = b.param("min_auc", float, 0.8)
    prep = b.add_step("prep", command="x {{outputs.train}} {{outputs.test}}",
                      outputs={"train": "dataset", "test": "dataset"})
    train = b.add_step("train", command="x {{inputs.d}} {{outputs.model}}", inputs={"d": prep.outputs["train"]},
                       outputs={"model": "model"})
    ev = b.add_step("evaluate", command="x {{inputs.m}} {{inputs.t}} {{outputs.metrics}}",
                    inputs={"m": train.outputs["model"], "t": prep.outputs["test"]}, outputs={"metrics": "metrics"})
    b.condition("gate", ev.outputs["metrics"]["auc"] >= min_auc, then=["register"], else_=["reject"])
    b.register_model("register", model=train.outputs["model"], group="churn", metrics=ev.outputs["metrics"])
    b.fail("reject", "too low")
    b.add_step("notify", command="echo done", depends_on=["register"])
    return b.build()


# --- edges -----------------------------------------------------------------------------------------


def test_task_step_edges_come_from_step_output_inputs_and_depends_on() -> None:
    s = TaskStep(name="b", command="x", depends_on=["z"],
                 inputs={"i": "a.outputs.o", "p": "{{params.uri}}", "e": "s3://b/k"})
    assert step_edges(s) == [Edge("a", "b", "data", "o→i"), Edge("z", "b", "depends_on")]


def test_condition_step_edges() -> None:
    s = ConditionStep(name="g", condition='ev.outputs.m["auc"] > 0.5 and ev.outputs.m.x < 1', then=["r"],
                      else_=["f"])
    assert step_edges(s) == [Edge("ev", "g", "condition", "m"),  # one edge, however often the output is read
                             Edge("g", "r", "branch", "then"), Edge("g", "f", "branch", "else")]


def test_register_and_fail_step_edges() -> None:
    r = RegisterModelStep.model_validate({"name": "r", "register_model": {
        "model": "train.outputs.model", "metrics": "ev.outputs.m", "group": "g"}})
    assert step_edges(r) == [Edge("train", "r", "data", "model"), Edge("ev", "r", "data", "m")]
    assert step_edges(FailStep(name="f", fail="x", depends_on=["a"])) == [Edge("a", "f", "depends_on")]


def test_from_steps_drops_edges_to_unknown_steps() -> None:
    g = StepGraph.from_steps([TaskStep(name="b", command="x", inputs={"i": "ghost.outputs.o"}, depends_on=["a"]),
                              TaskStep(name="a", command="x")])
    assert g.nodes == ["b", "a"]
    assert g.edges == [Edge("a", "b", "depends_on")]


def test_upstream_and_downstream_are_deduplicated() -> None:
    g = StepGraph.from_pipeline(churn())
    up, down = g.upstream(), g.downstream()
    assert up["evaluate"] == ["train", "prep"]
    assert up["register"] == ["gate", "train", "evaluate"]  # edges come in document order of their source step
    assert down["prep"] == ["train", "evaluate"]
    assert down["gate"] == ["register", "reject"]
    assert up["prep"] == [] and down["notify"] == []


# --- waves -----------------------------------------------------------------------------------------


def test_levels_of_a_real_pipeline() -> None:
    g = StepGraph.from_pipeline(churn())
    assert g.levels() == [["prep"], ["train"], ["evaluate"], ["gate"], ["register", "reject"], ["notify"]]
    order = g.topological_order()
    assert order == ["prep", "train", "evaluate", "gate", "register", "reject", "notify"]


def test_levels_of_a_diamond_keep_document_order_inside_a_wave() -> None:
    g = graph("a>c", "a>b", "b>d", "c>d", nodes="a b c d")
    assert g.levels() == [["a"], ["b", "c"], ["d"]]


def test_independent_steps_share_the_first_wave() -> None:
    assert graph(nodes="z y x").levels() == [["z", "y", "x"]]


def test_duplicate_edges_do_not_block_a_step() -> None:
    g = StepGraph(["a", "b"], [Edge("a", "b", "data", "x"), Edge("a", "b", "data", "y"), Edge("a", "b", "depends_on")])
    assert g.levels() == [["a"], ["b"]]


def test_topological_order_respects_every_edge() -> None:
    g = graph("e>a", "d>e", "c>d", "b>c", "b>a", nodes="a b c d e")
    order = g.topological_order()
    for e in g.edges:
        assert order.index(e.upstream) < order.index(e.downstream)


# --- cycles ----------------------------------------------------------------------------------------


def test_no_cycles() -> None:
    assert StepGraph.from_pipeline(churn()).find_cycles() == []


def test_a_two_step_cycle() -> None:
    assert graph("a>b", "b>a").find_cycles() == [["a", "b", "a"]]


def test_a_longer_cycle_is_named_along_its_path() -> None:
    assert graph("a>b", "b>c", "c>d", "d>a", "x>a").find_cycles() == [["a", "b", "c", "d", "a"]]


def test_a_self_loop() -> None:
    g = graph("a>a", "a>b")
    assert g.find_cycles() == [["a", "a"]]
    with pytest.raises(ValueError, match=r"cycle: a -> a"):
        g.levels()


def test_a_self_loop_inside_a_bigger_cycle_names_the_real_cycle() -> None:
    g = StepGraph(["a", "b"], [Edge("a", "a", "depends_on"), Edge("b", "a", "data"), Edge("a", "b", "data")])
    assert g.find_cycles() == [["a", "b", "a"]]


def test_several_cycles_are_each_reported() -> None:
    g = graph("a>b", "b>a", "b>c", "c>d", "d>e", "e>c", "f>f", nodes="a b c d e f")
    assert g.find_cycles() == [["a", "b", "a"], ["c", "d", "e", "c"], ["f", "f"]]


def test_every_reported_cycle_is_a_real_closed_path() -> None:
    g = graph("a>b", "b>c", "c>b", "c>d", "d>a", "b>e", "e>a")
    down = g.downstream()
    for cycle in g.find_cycles():
        assert cycle[0] == cycle[-1]
        assert all(v in down[u] for u, v in pairwise(cycle))


def test_levels_name_the_cycle() -> None:
    with pytest.raises(ValueError, match=r"^cycle: b -> c -> b$"):
        graph("a>b", "b>c", "c>b").levels()


def test_a_deep_chain_does_not_hit_the_recursion_limit() -> None:
    names = [f"s{i}" for i in range(3000)]
    edges = [Edge(u, d, "data") for u, d in pairwise(names)] + [Edge(names[-1], names[0], "data")]
    (cycle,) = StepGraph(names, edges).find_cycles()
    assert len(cycle) == 3001
    assert cycle[0] == cycle[-1] == "s0"


# --- descendants -----------------------------------------------------------------------------------


def test_descendants() -> None:
    g = StepGraph.from_pipeline(churn())
    assert g.descendants(["gate"]) == {"register", "reject", "notify"}
    assert g.descendants(["train"]) == {"evaluate", "gate", "register", "reject", "notify"}
    assert g.descendants(["notify"]) == set()
    assert g.descendants(["reject", "register"]) == {"notify"}  # a root is left out unless reachable
    assert g.descendants(["ghost"]) == set()


def test_descendants_in_a_cycle_include_the_root() -> None:
    assert graph("a>b", "b>a", "b>c").descendants(["a"]) == {"a", "b", "c"}

