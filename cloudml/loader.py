"""Load pipeline and deployment documents from YAML or JSON, safely, keeping every value's position.

* Safe: only plain YAML types; a ``!!python/...`` or any other explicit tag is an error.
* Bounded: aliases may expand to at most ``MAX_ALIAS_NODES`` nodes, so a "billion laughs" file
  fails fast instead of eating memory.
* Precise: duplicate keys are errors, and each error carries ``file:line:column``.

Example:
    >>> import cloudml
    >>> p = cloudml.loads('''
    ... apiVersion: cloudml/v1
    ... kind: Pipeline
    ... name: hello
    ... steps:
    ...   - name: say
    ...     command: echo hello
    ... ''')
    >>> p.name, p.steps[0].command
    ('hello', 'echo hello')
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from cloudml.errors import Issue, SpecError

if TYPE_CHECKING:
    from cloudml.spec.deployment import Deployment
    from cloudml.spec.pipeline import Pipeline

__all__ = ["MAX_ALIAS_NODES", "MAX_BYTES", "Document", "dump", "dumps", "load", "loads", "parse_yaml"]

MAX_ALIAS_NODES = 10_000
MAX_NODES = 2_000_000
MAX_BYTES = 16 * 1024 * 1024

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_ctor = yaml.constructor.SafeConstructor()
_T = "tag:yaml.org,2002:"
_SCALARS: dict[str, Callable[[Any], Any]] = {
    _T + "null": lambda n: None,
    _T + "bool": _ctor.construct_yaml_bool,
    _T + "int": _ctor.construct_yaml_int,
    _T + "float": _ctor.construct_yaml_float,
    _T + "str": lambda n: n.value,
    _T + "timestamp": lambda n: n.value,  # dates stay strings: the spec has no date fields
    # YAML 1.1 gives a plain '=' and a '<<' outside a key their own tags; as values they are strings
    _T + "value": lambda n: _plain_only(n, "="),
    _T + "merge": lambda n: _plain_only(n, "<<"),
}
Loc = tuple[str | int, ...]


def _plain_only(node: Any, text: str) -> str:
    if node.value != text:
        raise ValueError(node.value)
    return text


@dataclass
class Document:
    """Plain data parsed from text, with the (line, column) of each value and each mapping key (1-based)."""

    data: Any
    source: str
    marks: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[Loc, tuple[int, int]] = field(default_factory=dict)

    def position(self, loc: Loc, *, key: bool = False) -> tuple[int | None, int | None]:
        """Best known position of ``loc``: the exact node, else its nearest ancestor."""
        if key and loc in self.key_marks:
            return self.key_marks[loc]
        while True:
            if loc in self.marks:
                return self.marks[loc]
            if not loc:
                return (None, None)
            loc = loc[:-1]


class _Builder:
    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.nodes = 0
        self.alias_nodes = 0
        self.issues: list[Issue] = []
        self.repeated: set[int] = set()
        self.open: set[int] = set()  # collections being built: meeting one again means a recursive alias

    def issue(self, message: str, node: Any, loc: Loc, fix: str | None = None) -> None:
        self.issues.append(
            Issue(message, path=_fmt(loc), file=self.doc.source, line=node.start_mark.line + 1,
                  column=node.start_mark.column + 1, fix=fix, code="yaml", loc=loc)
        )

    def build(self, node: Any, loc: Loc, in_alias: bool = False) -> Any:
        self.nodes += 1
        if id(node) in self.repeated:
            in_alias = True
        if in_alias:
            self.alias_nodes += 1
            if self.alias_nodes > MAX_ALIAS_NODES:
                raise _Abort(self._bomb(node, loc))
        elif self.nodes > MAX_NODES:
            raise _Abort(Issue(f"document has more than {MAX_NODES} values", file=self.doc.source, code="yaml"))
        self.doc.marks[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, loc)
        if id(node) in self.open:
            self.issue("recursive YAML alias: a value contains itself", node, loc, "write the values out")
            return None
        want = _T + ("seq" if isinstance(node, yaml.SequenceNode) else "map")
        if node.tag != want:
            self.issue(f"YAML tag '{_tag(node.tag)}' is not allowed", node, loc, _NO_TAG)
            return None
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.build(child, (*loc, i), in_alias) for i, child in enumerate(node.value)]
            return self.mapping(node, loc, in_alias)
        finally:
            self.open.discard(id(node))

    def scalar(self, node: Any, loc: Loc) -> Any:
        maker = _SCALARS.get(node.tag)
        if maker is None:
            self.issue(f"YAML tag '{_tag(node.tag)}' is not allowed", node, loc, _NO_TAG)
            return None
        try:
            return maker(node)
        except (ValueError, KeyError, IndexError, OverflowError):
            kind = node.tag[len(_T):]
            if kind in ("value", "merge"):
                self.issue(f"YAML tag '{_tag(node.tag)}' is not allowed", node, loc, _NO_TAG)
                return None
            self.issue(f"'{node.value[:40]}' is not a valid {kind}", node, loc,
                       f"write a plain {kind} or quote the value to make it a string")
            return None

    def mapping(self, node: Any, loc: Loc, in_alias: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        merged: dict[str, Any] = {}
        own_mark = self.doc.marks[loc]
        for knode, vnode in node.value:  # merges first, so the mapping's own keys keep their own positions
            if knode.tag == _T + "merge":
                for src in vnode.value if isinstance(vnode, yaml.SequenceNode) else [vnode]:
                    value = self.build(src, loc, True)
                    if isinstance(value, dict):
                        merged = {**value, **merged}
                    else:
                        self.issue("'<<' merges only mappings", src, loc)
        self.doc.marks[loc] = own_mark
        for knode, vnode in node.value:
            if knode.tag == _T + "merge":
                continue
            if not isinstance(knode, yaml.ScalarNode):
                self.issue("mapping keys must be plain strings", knode, loc)
                continue
            if knode.tag not in _SCALARS:
                self.issue(f"YAML tag '{_tag(knode.tag)}' is not allowed", knode, loc, _NO_TAG)
                continue
            key = str(knode.value)
            if key in out:
                self.issue(f"duplicate key '{key}'", knode, (*loc, key), "keep one of them")
                continue
            key_loc: Loc = (*loc, key)
            self.doc.key_marks[key_loc] = (knode.start_mark.line + 1, knode.start_mark.column + 1)
            out[key] = self.build(vnode, key_loc, in_alias)
        return {**merged, **out} if merged else out

    def _bomb(self, node: Any, loc: Loc) -> Issue:
        return Issue(
            f"YAML aliases expand to more than {MAX_ALIAS_NODES} values (an alias bomb?)",
            path=_fmt(loc), file=self.doc.source, line=node.start_mark.line + 1,
            column=node.start_mark.column + 1, fix="write the values out or use fewer nested aliases", code="yaml",
            loc=loc,
        )


_NO_TAG = "remove the tag: specs hold plain strings, numbers, booleans, lists and mappings"


def _tag(tag: str) -> str:
    """``!!python/object`` rather than ``tag:yaml.org,2002:python/object``."""
    return "!!" + tag[len(_T):] if tag.startswith(_T) else tag


class _Abort(Exception):
    def __init__(self, issue: Issue) -> None:
        self.issue = issue


def _mark_aliases(root: Any) -> set[int]:
    """Ids of nodes reached more than once (i.e. through an alias)."""
    seen: set[int] = set()
    repeated: set[int] = set()
    stack = [root]
    while stack:
        n = stack.pop()
        if id(n) in seen:
            repeated.add(id(n))
            continue
        seen.add(id(n))
        if isinstance(n, yaml.SequenceNode):
            stack.extend(n.value)
        elif isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                stack.append(k)
                stack.append(v)
    return repeated


def _line_col(text: str, position: int) -> tuple[int, int]:
    before = text[:position]
    return before.count("\n") + 1, position - (before.rfind("\n") + 1) + 1


def _fmt(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def parse_yaml(text: str, source: str = "<string>") -> Document:
    """Parse one YAML/JSON document into plain data with positions. Raises :class:`SpecError`.

    Example:
        >>> doc = parse_yaml("a:\\n  b: 1\\n")
        >>> doc.data, doc.marks[("a", "b")]
        ({'a': {'b': 1}}, (2, 6))
    """
    if len(text) > MAX_BYTES:
        raise SpecError([Issue(f"document is larger than {MAX_BYTES // (1024 * 1024)} MiB", file=source)],
                        source=source)
    try:
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise SpecError(
            [Issue(f"YAML syntax: {e.problem or e.context}", file=source,
                   line=mark.line + 1 if mark else None, column=mark.column + 1 if mark else None,
                   fix="check indentation, colons and quotes around this position", code="yaml")],
            source=source,
        ) from None
    except yaml.reader.ReaderError as e:
        line, col = _line_col(text, e.position)
        code = ord(e.character) if isinstance(e.character, str) else int(e.character)
        raise SpecError([Issue(f"YAML: character U+{code:04X} is not allowed ({e.reason})", file=source,
                               line=line, column=col, fix="remove the control character", code="yaml")],
                        source=source) from None
    except yaml.YAMLError as e:
        raise SpecError([Issue(f"YAML: {e}", file=source, code="yaml")], source=source) from None
    except UnicodeError as e:
        line, col = _line_col(text, getattr(e, "start", 0))
        raise SpecError([Issue("text is not valid Unicode (a lone surrogate?)", file=source, line=line,
                               column=col, code="yaml")], source=source) from None
    except RecursionError:
        raise SpecError([Issue("document is nested too deeply", file=source, code="yaml")], source=source) from None
    if len(nodes) != 1:
        raise SpecError(
            [Issue(f"expected one YAML document, found {len(nodes)}", file=source,
                   fix="put each pipeline or deployment in its own file", code="yaml")],
            source=source,
        )
    doc = Document(None, source)
    builder = _Builder(doc)
    repeated = _mark_aliases(nodes[0])
    builder.repeated = repeated
    try:
        doc.data = builder.build(nodes[0], ())
    except _Abort as a:
        raise SpecError([a.issue], source=source) from None
    except RecursionError:
        raise SpecError([Issue("document is nested too deeply", file=source, code="yaml")], source=source) from None
    if builder.issues:
        raise SpecError(builder.issues, source=source)
    return doc


def loads(text: str, source: str = "<string>") -> Pipeline | Deployment:
    """Load a Pipeline or Deployment from YAML/JSON text, fully validated.

    Example:
        >>> import cloudml
        >>> d = cloudml.loads("apiVersion: cloudml/v1\\nkind: Deployment\\nendpoint: churn\\nmodel: {group: churn}\\n")
        >>> d.kind, d.strategy.name
        ('Deployment', 'blue_green')
    """
    from cloudml.spec.validate import validate_document

    return validate_document(parse_yaml(text, source))


def load(path: str | os.PathLike[str]) -> Pipeline | Deployment:
    """Load a Pipeline or Deployment from a ``.yaml``/``.yml``/``.json`` file, fully validated.

    Every problem in the file is reported at once in one :class:`cloudml.SpecError`, each with
    file:line:column, the path inside the document, the step, what was expected and a fix.

    Example:
        >>> import cloudml, tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "p.yaml"
        >>> _ = f.write_text("apiVersion: cloudml/v1\\nkind: Pipeline\\nname: p\\nsteps: [{name: a, command: echo}]\\n")
        >>> cloudml.load(f).steps[0].name
        'a'
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([Issue(f"no such file: {p}", file=str(p), fix="check the path", code="io")],
                        source=str(p)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError([Issue(f"cannot read {p}: {e}", file=str(p), code="io")], source=str(p)) from None
    return loads(text, source=str(p))


def to_data(model: Pipeline | Deployment) -> dict[str, Any]:
    """The plain-data form of a spec (what YAML holds), with only the fields that were set.

    Example:
        >>> import cloudml
        >>> b = cloudml.PipelineBuilder("p"); _ = b.add_step("a", command="echo")
        >>> to_data(b.build())["steps"]
        [{'name': 'a', 'command': 'echo'}]
    """
    data: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude_unset=True)
    head = {"apiVersion": model.api_version, "kind": model.kind}
    return {**head, **{k: v for k, v in data.items() if k not in head}}


def dumps(model: Pipeline | Deployment) -> str:
    """YAML text for a spec; ``loads(dumps(x)) == x``.

    Example:
        >>> import cloudml
        >>> b = cloudml.PipelineBuilder("p"); _ = b.add_step("a", command="echo")
        >>> print(dumps(b.build()), end="")
        apiVersion: cloudml/v1
        kind: Pipeline
        name: p
        steps:
        - name: a
          command: echo
    """
    return str(yaml.safe_dump(to_data(model), sort_keys=False, allow_unicode=True, width=100))


def dump(model: Pipeline | Deployment, path: str | os.PathLike[str]) -> None:
    """Write a spec to a YAML file.

    Example:
        >>> import cloudml, tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "p.yaml"
        >>> b = cloudml.PipelineBuilder("p"); _ = b.add_step("a", command="echo")
        >>> p = b.build()
        >>> dump(p, f); cloudml.load(f) == p
        True
    """
    Path(path).write_text(dumps(model), encoding="utf-8")
