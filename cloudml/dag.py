"""The step graph: edges from artifact references, ``depends_on``, conditions and register steps.

Example:
    >>> import cloudml
    >>> from cloudml.dag import StepGraph
    >>> b = cloudml.PipelineBuilder("p")
    >>> a = b.add_step("a", command="echo > {{outputs.o}}", outputs={"o": "dataset"})
    >>> _ = b.add_step("b", command="cat {{inputs.i}}", inputs={"i": a.outputs["o"]})
    >>> g = StepGraph.from_pipeline(b.build())
    >>> g.levels()
    [['a'], ['b']]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cloudml.spec.refs import StepOutputRef, parse_source

if TYPE_CHECKING:
    from cloudml.spec.pipeline import Pipeline

__all__ = ["BranchConflict", "Edge", "StepGraph", "branch_owners", "step_edges"]


@dataclass(frozen=True)
class Edge:
    """``upstream`` must finish before ``downstream``; ``why`` is data, depends_on, condition or branch."""

    upstream: str
    downstream: str
    why: str
    label: str = ""


def step_edges(step: Any) -> list[Edge]:
    """The edges a single step implies, from its own fields.

    Example:
        >>> from cloudml.spec.steps import TaskStep
        >>> [e.upstream for e in step_edges(TaskStep(name="b", command="x", inputs={"i": "a.outputs.o"}))]
        ['a']
    """
    from cloudml.spec.steps import ConditionStep, RegisterModelStep, TaskStep

    edges: list[Edge] = []
    name = step.name
    if isinstance(step, TaskStep):
        for iname, spec in step.inputs.items():
            ref = parse_source(spec.from_)
            if isinstance(ref, StepOutputRef):
                edges.append(Edge(ref.step, name, "data", f"{ref.output}→{iname}"))
    elif isinstance(step, ConditionStep):
        for op in step.condition.metric_operands():
            edges.append(Edge(op.step, name, "condition", op.output))
        for t in step.then:
            edges.append(Edge(name, t, "branch", "then"))
        for e in step.else_:
            edges.append(Edge(name, e, "branch", "else"))
    elif isinstance(step, RegisterModelStep):
        for what in (step.register_model.model, step.register_model.metrics):
            if what:
                ref = parse_source(what)
                if isinstance(ref, StepOutputRef):
                    edges.append(Edge(ref.step, name, "data", ref.output))
    for dep in step.depends_on:
        edges.append(Edge(dep, name, "depends_on"))
    return list(dict.fromkeys(edges))  # a condition reading one output twice is still one edge


@dataclass
class StepGraph:
    """Steps and the edges between them, with ordering and cycle detection.

    Edges whose endpoints are not steps are kept out (validation reports them separately).
    """

    nodes: list[str]
    edges: list[Edge] = field(default_factory=list)

    @classmethod
    def from_steps(cls, steps: Sequence[Any]) -> StepGraph:
        """Graph of a list of step models (document order is kept for stable output)."""
        names = [s.name for s in steps]
        known = set(names)
        edges = [e for s in steps for e in step_edges(s) if e.upstream in known and e.downstream in known]
        return cls(list(dict.fromkeys(names)), edges)

    @classmethod
    def from_pipeline(cls, pipeline: Pipeline) -> StepGraph:
        """Graph of a validated pipeline."""
        return cls.from_steps(pipeline.steps)

    def upstream(self) -> dict[str, list[str]]:
        """For each step, the steps it waits for (deduplicated, in edge order)."""
        up: dict[str, list[str]] = {n: [] for n in self.nodes}
        for e in self.edges:
            if e.upstream not in up[e.downstream]:
                up[e.downstream].append(e.upstream)
        return up

    def downstream(self) -> dict[str, list[str]]:
        """For each step, the steps that wait for it."""
        down: dict[str, list[str]] = {n: [] for n in self.nodes}
        for e in self.edges:
            if e.downstream not in down[e.upstream]:
                down[e.upstream].append(e.downstream)
        return down

    def find_cycles(self) -> list[list[str]]:
        """One cycle per strongly connected component, as a closed path ``[a, b, a]``, in document order.

        Example:
            >>> StepGraph(["a", "b"], [Edge("a", "b", "data"), Edge("b", "a", "data")]).find_cycles()
            [['a', 'b', 'a']]
        """
        down = self.downstream()
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        on_stack: set[str] = set()
        stack: list[str] = []
        sccs: list[list[str]] = []
        counter = 0
        for root in self.nodes:
            if root in index:
                continue
            work: list[tuple[str, int]] = [(root, 0)]
            while work:
                node, i = work.pop()
                if i == 0:
                    index[node] = low[node] = counter
                    counter += 1
                    stack.append(node)
                    on_stack.add(node)
                succ = down[node]
                if i < len(succ):
                    work.append((node, i + 1))
                    nxt = succ[i]
                    if nxt not in index:
                        work.append((nxt, 0))
                    elif nxt in on_stack:
                        low[node] = min(low[node], index[nxt])
                    continue
                if low[node] == index[node]:
                    comp: list[str] = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == node:
                            break
                    if len(comp) > 1 or node in down[node]:
                        sccs.append(comp)
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
        order = {n: i for i, n in enumerate(self.nodes)}
        sccs.sort(key=lambda comp: min(order[n] for n in comp))  # report in document order
        return [self._cycle_path(set(c), down) for c in sccs]

    def _cycle_path(self, comp: set[str], down: dict[str, list[str]]) -> list[str]:
        start = next(n for n in self.nodes if n in comp)
        path = [start]
        seen = {start}
        node = start
        while True:
            # a self-edge is only the cycle when the component is that one step
            nxt = next((n for n in down[node] if n in comp and n != node), node)
            if nxt == start or nxt in seen:
                path.append(nxt)
                if nxt != start:
                    path = path[path.index(nxt) :]
                return path
            path.append(nxt)
            seen.add(nxt)
            # prefer closing the loop as soon as possible
            if start in down[nxt]:
                path.append(start)
                return path
            node = nxt

    def levels(self) -> list[list[str]]:
        """Steps grouped in waves: every step's upstream is in an earlier wave (raises on a cycle).

        Example:
            >>> StepGraph(["a", "b", "c"], [Edge("a", "c", "data"), Edge("b", "c", "data")]).levels()
            [['a', 'b'], ['c']]
        """
        up = self.upstream()
        remaining = {n: len(set(up[n])) for n in self.nodes}
        down = self.downstream()
        order = {n: i for i, n in enumerate(self.nodes)}
        wave = [n for n in self.nodes if remaining[n] == 0]
        out: list[list[str]] = []
        done = 0
        while wave:
            out.append(wave)
            done += len(wave)
            nxt: list[str] = []
            for n in wave:
                for d in down[n]:
                    remaining[d] -= 1
                    if remaining[d] == 0:
                        nxt.append(d)
            wave = sorted(nxt, key=order.__getitem__)
        if done != len(self.nodes):
            cycle = self.find_cycles()[0]
            raise ValueError("cycle: " + " -> ".join(cycle))
        return out

    def topological_order(self) -> list[str]:
        """A flat order consistent with every edge."""
        return [n for wave in self.levels() for n in wave]

    def descendants(self, roots: Iterable[str]) -> set[str]:
        """Every step reachable from ``roots`` (excluding the roots unless reachable)."""
        down = self.downstream()
        seen: set[str] = set()
        todo = list(roots)
        while todo:
            n = todo.pop()
            for d in down.get(n, []):
                if d not in seen:
                    seen.add(d)
                    todo.append(d)
        return seen


Branch = tuple[str, str]


class BranchConflict(ValueError):
    """A step cannot be placed inside one condition branch (clouds that nest guarded steps need that)."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(message)
        self.step = step


def branch_owners(pipeline: Pipeline) -> dict[str, Branch | None]:
    """Which condition branch ``(condition, "then"|"else")`` each step is nested in (None: top level).

    Steps named in ``then``/``else`` belong to that branch; a step that depends on guarded steps
    follows them into the innermost branch. Clouds that nest guarded steps inside the condition
    (SageMaker's IfSteps, KFP's sub-DAGs) compile from this. Raises :class:`BranchConflict` for a
    step that would need two branches at once.

    Example:
        >>> import cloudml
        >>> p = cloudml.loads('''
        ... kind: Pipeline
        ... name: p
        ... steps:
        ...   - {name: ev, command: "e {{outputs.m}}", outputs: {m: metrics}}
        ...   - {name: gate, condition: 'ev.outputs.m["auc"] > 0.5', then: [a]}
        ...   - {name: a, command: "a {{outputs.o}}", outputs: {o: dataset}}
        ...   - {name: b, command: "b {{inputs.i}}", inputs: {i: a.outputs.o}}
        ... ''')
        >>> branch_owners(p)
        {'ev': None, 'gate': None, 'a': ('gate', 'then'), 'b': ('gate', 'then')}
    """
    from cloudml.spec.steps import ConditionStep

    graph = StepGraph.from_pipeline(pipeline)
    up = graph.upstream()
    owner: dict[str, Branch | None] = {}
    direct: dict[str, Branch] = {}
    for s in pipeline.steps:
        if isinstance(s, ConditionStep):
            direct.update({t: (s.name, "then") for t in s.then})
            direct.update({t: (s.name, "else") for t in s.else_})

    def chain(o: Branch | None) -> list[Branch]:
        out = []
        while o is not None:
            out.append(o)
            o = owner.get(o[0])
        return out

    for name in graph.topological_order():
        inherited = {o for u in up[name] if (o := owner.get(u)) is not None}
        if name in direct:
            # upstream steps may sit in this branch or in a branch around it, never in another one
            if any(o not in chain(direct[name]) for o in inherited):
                raise BranchConflict(name, f"the step sits in '{direct[name][0]}.{direct[name][1]}' but depends on "
                                     "a step in another branch, so it could never run")
            owner[name] = direct[name]
            continue
        innermost = [o for o in inherited if all(other in chain(o) for other in inherited)]
        if inherited and not innermost:
            raise BranchConflict(name, "the step depends on steps in different condition branches")
        owner[name] = innermost[0] if innermost else None
    return owner
