"""Draw a pipeline: Mermaid (renders on GitHub and in most docs), Graphviz DOT, or terminal text.

Shapes: tasks are boxes (``[[training]]`` for training steps), conditions are diamonds, fail steps
are red, register steps are rounded. Data edges are labelled ``output→input``; branch edges
``then``/``else``; ``depends_on`` edges are dotted.

Example:
    >>> import cloudml
    >>> from cloudml.render import to_mermaid
    >>> b = cloudml.PipelineBuilder("p")
    >>> a = b.add_step("prep", command="x {{outputs.d}}", outputs={"d": "dataset"})
    >>> _ = b.add_step("train", command="y {{inputs.d}}", inputs={"d": a.outputs["d"]})
    >>> print(to_mermaid(b.build()))
    flowchart TD
        prep["prep"]
        train["train"]
        prep -->|"d→d"| train
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cloudml.dag import StepGraph

if TYPE_CHECKING:
    from cloudml.spec.pipeline import Pipeline

__all__ = ["to_dot", "to_mermaid", "to_text"]


def _kind(step: object) -> str:
    from cloudml.spec.steps import ConditionStep, FailStep, RegisterModelStep, TaskStep

    if isinstance(step, ConditionStep):
        return "condition"
    if isinstance(step, FailStep):
        return "fail"
    if isinstance(step, RegisterModelStep):
        return "register"
    assert isinstance(step, TaskStep)
    return "python" if step.python else ("training" if step.kind == "training" else "task")


# words Mermaid reads as syntax; a node id equal to one of them breaks the chart
_MERMAID_WORDS = {"end", "graph", "flowchart", "subgraph", "style", "class", "classdef", "click", "linkstyle",
                  "direction", "default"}


def _mermaid_ids(names: list[str]) -> dict[str, str]:
    """A distinct, safe Mermaid id per step: ``-`` becomes ``_``; clashes and keywords get a suffix."""
    ids: dict[str, str] = {}
    used: set[str] = set()
    for name in names:
        base = candidate = name.replace("-", "_")
        n = 1
        while candidate in used or candidate.lower() in _MERMAID_WORDS:
            n += 1
            candidate = f"{base}_{n}"
        ids[name] = candidate
        used.add(candidate)
    return ids


def _esc(text: str) -> str:
    return text.replace('"', "#quot;")


def to_mermaid(p: Pipeline) -> str:
    """A Mermaid ``flowchart`` of the pipeline; every step gets a distinct id that Mermaid accepts.

    Example:
        >>> import cloudml
        >>> b = cloudml.PipelineBuilder("p"); _ = b.add_step("end", command="echo")
        >>> print(to_mermaid(b.build()))
        flowchart TD
            end_2["end"]
    """
    from cloudml.spec.steps import ConditionStep

    lines = ["flowchart TD"]
    mid = _mermaid_ids(p.step_names)
    for s in p.steps:
        k, n = _kind(s), mid[s.name]
        label = s.name
        if isinstance(s, ConditionStep):
            label = f"{s.name}: {s.condition}"
        shape = {
            "condition": f'{n}{{"{_esc(label)}"}}',
            "fail": f'{n}[/"{_esc(label)}"/]',
            "register": f'{n}(["{_esc(label)}"])',
            "training": f'{n}[["{_esc(label)}"]]',
        }.get(k, f'{n}["{_esc(label)}"]')
        lines.append(f"    {shape}")
    for e in StepGraph.from_pipeline(p).edges:
        u, d = mid[e.upstream], mid[e.downstream]
        if e.why == "branch":
            lines.append(f"    {u} -.->|{e.label}| {d}")
        elif e.why == "depends_on":
            lines.append(f"    {u} -.-> {d}")
        elif e.label:
            lines.append(f'    {u} -->|"{_esc(e.label)}"| {d}')
        else:
            lines.append(f"    {u} --> {d}")
    fails = [mid[s.name] for s in p.steps if _kind(s) == "fail"]
    if fails:
        lines.append("    classDef fail fill:#fdd,stroke:#c00")
        lines.append(f"    class {','.join(fails)} fail")
    return "\n".join(lines)


def to_dot(p: Pipeline) -> str:
    """A Graphviz DOT digraph of the pipeline (``dot -Tsvg`` turns it into a picture).

    Example:
        >>> import cloudml
        >>> b = cloudml.PipelineBuilder("p"); _ = b.add_step("a", command="echo")
        >>> _ = b.add_step("b", command="echo", depends_on=["a"])
        >>> print(to_dot(b.build()))
        digraph "p" {
          rankdir=TB;
          node [fontname="Helvetica", shape=box, style=rounded];
          "a" [label="a"];
          "b" [label="b"];
          "a" -> "b" [style=dotted];
        }
    """
    from cloudml.spec.steps import ConditionStep

    def q(text: str) -> str:
        # \n is DOT's documented line break inside a label; a raw newline is not portable
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

    lines = [f"digraph {q(p.name)} {{", "  rankdir=TB;", '  node [fontname="Helvetica", shape=box, style=rounded];']
    for s in p.steps:
        k = _kind(s)
        attrs = {
            "condition": 'shape=diamond, label=' + q(f"{s.name}\n{s.condition}" if isinstance(s, ConditionStep) else s.name),
            "fail": f"shape=box, color=red, fontcolor=red, label={q(s.name)}",
            "register": f"shape=cylinder, label={q(s.name)}",
            "training": f"shape=box3d, label={q(s.name)}",
        }.get(k, f"label={q(s.name)}")
        lines.append(f"  {q(s.name)} [{attrs}];")
    for e in StepGraph.from_pipeline(p).edges:
        style = {"branch": "style=dashed", "depends_on": "style=dotted"}.get(e.why, "")
        label = f"label={q(e.label)}" if e.label else ""
        attrs = ", ".join(a for a in (style, label) if a)
        lines.append(f"  {q(e.upstream)} -> {q(e.downstream)}" + (f" [{attrs}]" if attrs else "") + ";")
    lines.append("}")
    return "\n".join(lines)


def to_text(p: Pipeline) -> str:
    """Waves of steps that can run in parallel, each with what it waits for (for terminals).

    Example:
        >>> import cloudml
        >>> b = cloudml.PipelineBuilder("p"); _ = b.add_step("a", command="echo")
        >>> print(to_text(b.build()))
        p  (1 step, 1 wave)
        wave 1
          ■ a
    """
    g = StepGraph.from_pipeline(p)
    waves = g.levels()
    up = g.upstream()
    marks = {"task": "■", "python": "λ", "training": "▣", "condition": "◆", "fail": "✖", "register": "◉"}
    guards: dict[str, str] = {e.downstream: f"{e.upstream}.{e.label}" for e in g.edges if e.why == "branch"}
    n = len(p.steps)
    by_name = {s.name: s for s in p.steps}
    lines = [f"{p.name}  ({n} step{'s' if n != 1 else ''}, {len(waves)} wave{'s' if len(waves) != 1 else ''})"]
    for i, wave in enumerate(waves, 1):
        lines.append(f"wave {i}")
        for name in wave:
            s = by_name[name]
            extra = []
            deps = [u for u in up[name] if guards.get(name, "").split(".")[0] != u]
            if deps:
                extra.append("after " + ", ".join(deps))
            if name in guards:
                extra.append("if " + guards[name])
            lines.append(f"  {marks[_kind(s)]} {name}" + (f"   ({'; '.join(extra)})" if extra else ""))
    return "\n".join(lines)
