"""Condition expressions for gate steps.

Grammar (``and`` binds tighter than ``or``; parentheses group)::

    expr       := term ("or" term)*
    term       := factor ("and" factor)*
    factor     := "not" factor | "(" expr ")" | comparison
    comparison := operand OP operand          OP: >= > <= < == !=
    operand    := STEP ".outputs." OUTPUT path* | "params." NAME | NUMBER | STRING | true | false
    path       := '["key"]' | "[0]" | ".key"

A metric operand reads a JSON value out of a step's ``metrics`` output, for example
``evaluate.outputs.metrics["auc"]``; the JSON path inside the file is ``auc``.

Example:
    >>> from cloudml.spec.conditions import parse_condition
    >>> c = parse_condition('evaluate.outputs.metrics["auc"] >= params.min_auc and evaluate.outputs.metrics.loss < 0.4')
    >>> str(c)
    'evaluate.outputs.metrics["auc"] >= params.min_auc and evaluate.outputs.metrics["loss"] < 0.4'
    >>> [m.json_path for m in c.metric_operands()]
    ['auc', 'loss']
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "And",
    "Compare",
    "ConditionSyntaxError",
    "Expr",
    "LiteralOperand",
    "MetricOperand",
    "Not",
    "Operand",
    "Or",
    "ParamOperand",
    "evaluate_condition",
    "parse_condition",
]

Op = Literal[">=", ">", "<=", "<", "==", "!="]
OPS: tuple[str, ...] = (">=", ">", "<=", "<", "==", "!=")


class ConditionSyntaxError(ValueError):
    """A condition string that does not parse; ``column`` is 1-based inside the expression."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(f"{message} (at column {column} of the condition)")
        self.column = column


@dataclass(frozen=True)
class MetricOperand:
    """A value read from the JSON file of ``step``'s ``output``, at ``path``."""

    step: str
    output: str
    path: tuple[str | int, ...]

    @property
    def json_path(self) -> str:
        """Dotted JSON path (``a.b.0``), the form SageMaker's JsonGet and the runtime use."""
        return ".".join(str(p) for p in self.path)

    def __str__(self) -> str:
        parts = "".join(f"[{json.dumps(p)}]" for p in self.path)
        return f"{self.step}.outputs.{self.output}{parts}"


@dataclass(frozen=True)
class ParamOperand:
    """A pipeline parameter."""

    name: str

    def __str__(self) -> str:
        return f"params.{self.name}"


@dataclass(frozen=True)
class LiteralOperand:
    """A literal number, string or boolean."""

    value: float | int | str | bool

    def __str__(self) -> str:
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        if isinstance(self.value, str):
            return json.dumps(self.value)
        return repr(self.value)


Operand = MetricOperand | ParamOperand | LiteralOperand


class _ExprBase:
    """Helpers shared by every expression node."""

    def comparisons(self) -> list[Compare]:
        """Every comparison in the expression, left to right.

        Example:
            >>> len(parse_condition("params.a > 1 or not params.b == true").comparisons())
            2
        """
        return list(_walk(self))  # type: ignore[arg-type]

    def metric_operands(self) -> list[MetricOperand]:
        """Every metric operand in the expression."""
        return [o for c in self.comparisons() for o in (c.left, c.right) if isinstance(o, MetricOperand)]

    def param_operands(self) -> list[ParamOperand]:
        """Every parameter operand in the expression."""
        return [o for c in self.comparisons() for o in (c.left, c.right) if isinstance(o, ParamOperand)]


@dataclass(frozen=True)
class Compare(_ExprBase):
    """``left OP right``."""

    left: Operand
    op: Op
    right: Operand

    def __str__(self) -> str:
        return f"{self.left} {self.op} {self.right}"


@dataclass(frozen=True)
class And(_ExprBase):
    """All terms hold."""

    terms: tuple[Expr, ...]

    def __str__(self) -> str:
        return " and ".join(_wrap(t, Or) for t in self.terms)


@dataclass(frozen=True)
class Or(_ExprBase):
    """Any term holds."""

    terms: tuple[Expr, ...]

    def __str__(self) -> str:
        return " or ".join(str(t) for t in self.terms)


@dataclass(frozen=True)
class Not(_ExprBase):
    """The term does not hold."""

    term: Expr

    def __str__(self) -> str:
        return f"not {_wrap(self.term, (And, Or))}"


Expr = Compare | And | Or | Not


def _wrap(e: Expr, kinds: Any) -> str:
    return f"({e})" if isinstance(e, kinds) else str(e)


def _walk(e: Expr) -> Iterator[Compare]:
    if isinstance(e, Compare):
        yield e
    elif isinstance(e, Not):
        yield from _walk(e.term)
    else:
        for t in e.terms:
            yield from _walk(t)


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
      | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op>>=|<=|==|!=|>|<)
      | (?P<punct>[()\[\].])
      | (?P<name>[A-Za-z_][A-Za-z0-9_-]*)
    )""",
    re.VERBOSE,
)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                at = len(text) - len(text[pos:].lstrip())
                raise ConditionSyntaxError(f"unexpected character {text[at]!r}", at + 1)
            kind = m.lastgroup or ""
            value = m.group(kind)
            self.tokens.append((kind, value, m.start(kind) + 1))
            pos = m.end()
        self.i = 0

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.i] if self.i < len(self.tokens) else ("end", "", len(self.text) + 1)

    def take(self) -> tuple[str, str, int]:
        tok = self.peek()
        self.i += 1
        return tok

    def expect(self, value: str) -> None:
        _, v, col = self.take()
        if v != value:
            raise ConditionSyntaxError(f"expected {value!r}, found {v or 'end of condition'!r}", col)

    def parse(self) -> Expr:
        if not self.tokens:
            raise ConditionSyntaxError("the condition is empty", 1)
        e = self.expr()
        kind, v, col = self.peek()
        if kind != "end":
            raise ConditionSyntaxError(f"unexpected {v!r}; join comparisons with 'and' / 'or'", col)
        return e

    def expr(self) -> Expr:
        terms = [self.term()]
        while self.peek()[1] == "or":
            self.take()
            terms.append(self.term())
        # "a or (b or c)" is "a or b or c": one flat form, so printing and parsing again gives an equal tree
        flat = tuple(x for t in terms for x in (t.terms if isinstance(t, Or) else (t,)))
        return flat[0] if len(flat) == 1 else Or(flat)

    def term(self) -> Expr:
        factors = [self.factor()]
        while self.peek()[1] == "and":
            self.take()
            factors.append(self.factor())
        flat = tuple(x for f in factors for x in (f.terms if isinstance(f, And) else (f,)))
        return flat[0] if len(flat) == 1 else And(flat)

    def factor(self) -> Expr:
        kind, v, col = self.peek()
        if v == "not":
            self.take()
            return Not(self.factor())
        if v == "(":
            self.take()
            e = self.expr()
            self.expect(")")
            return e
        left = self.operand()
        kind, op, col = self.take()
        if kind != "op":
            raise ConditionSyntaxError(
                f"expected a comparison operator ({', '.join(OPS)}), found {op or 'end of condition'!r}", col
            )
        right = self.operand()
        if isinstance(left, LiteralOperand) and isinstance(right, LiteralOperand):
            raise ConditionSyntaxError("a comparison of two literals is constant; compare a metric or a parameter", col)
        return Compare(left, op, right)  # type: ignore[arg-type]

    def operand(self) -> Operand:
        kind, v, col = self.take()
        if kind == "num":
            return LiteralOperand(_number(v, col))
        if kind == "str":
            return LiteralOperand(_string(v, col))
        if kind == "name":
            if v in ("true", "false"):
                return LiteralOperand(v == "true")
            if v == "params":
                self.expect(".")
                k, name, c = self.take()
                if k != "name" or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                    raise ConditionSyntaxError("expected a parameter name after 'params.'", c)
                return ParamOperand(name)
            return self.metric(v, col)
        raise ConditionSyntaxError(
            f"expected a metric (step.outputs.name[\"key\"]), params.NAME or a literal, found {v or 'end'!r}", col
        )

    def metric(self, step: str, col: int) -> MetricOperand:
        self.expect(".")
        k, word, c = self.take()
        if word != "outputs":
            raise ConditionSyntaxError(f"expected '{step}.outputs.<name>', found '{step}.{word}'", c)
        self.expect(".")
        k, output, c = self.take()
        if k != "name":
            raise ConditionSyntaxError("expected an output name after '.outputs.'", c)
        path: list[str | int] = []
        while self.peek()[1] in ("[", "."):
            _, punct, c = self.take()
            if punct == "[":
                k, key, c = self.take()
                if k == "str":
                    path.append(_string(key, c))
                elif k == "num" and re.fullmatch(r"\d+", key):
                    path.append(int(key))
                else:
                    raise ConditionSyntaxError("expected a quoted key or an index inside [ ]", c)
                self.expect("]")
            else:
                k, key, c = self.take()
                if k != "name":
                    raise ConditionSyntaxError("expected a key after '.'", c)
                path.append(key)
        if not path:
            raise ConditionSyntaxError(
                f"say which value to read from '{step}.outputs.{output}', e.g. "
                f'{step}.outputs.{output}["accuracy"]',
                col,
            )
        return MetricOperand(step, output, tuple(path))


def _number(v: str, col: int) -> int | float:
    try:
        number: int | float = int(v) if re.fullmatch(r"-?\d+", v) else float(v)
    except ValueError:
        raise ConditionSyntaxError(f"number {v[:20]}... is too long", col) from None
    if isinstance(number, float) and not math.isfinite(number):
        raise ConditionSyntaxError(f"number {v} is out of range", col)
    return number


def _string(v: str, col: int) -> str:
    if v.startswith("'"):
        return v[1:-1].replace("\\'", "'")
    try:
        text: str = json.loads(v)
    except ValueError:
        raise ConditionSyntaxError(f"string {v} has a bad escape or a raw control character", col) from None
    return text


def parse_condition(text: str) -> Expr:
    """Parse a condition string into an expression tree (nested ``and``/``or`` groups are flattened).

    Example:
        >>> str(parse_condition("not (params.a > 1 or params.b == 'x')"))
        'not (params.a > 1 or params.b == "x")'
        >>> len(parse_condition("params.a > 1 or (params.b > 2 or params.c > 3)").terms)
        3
    """
    return _Parser(text).parse()


def _lookup(data: Any, path: tuple[str | int, ...]) -> Any:
    for p in path:
        if isinstance(data, dict) and str(p) in data:
            data = data[str(p)]
        elif isinstance(data, list) and isinstance(p, int) and 0 <= p < len(data):
            data = data[p]
        else:
            raise KeyError(".".join(str(x) for x in path))
    return data


def _compare(a: Any, op: str, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        if not (isinstance(a, bool) and isinstance(b, bool)):
            raise TypeError(f"cannot compare {type(a).__name__} with {type(b).__name__}")
        if op not in ("==", "!="):
            raise TypeError("booleans can only be compared with == or !=")
        return (a == b) if op == "==" else (a != b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if any(isinstance(x, float) and math.isnan(x) for x in (a, b)):
            return op == "!="
    elif type(a) is not type(b):
        raise TypeError(f"cannot compare {type(a).__name__} with {type(b).__name__}")
    result: bool = _OPERATORS[op](a, b)  # only the one asked for: None == None holds, None >= None does not
    return result


_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq, "!=": operator.ne,
}


def evaluate_condition(e: Expr, metrics: dict[tuple[str, str], Any], params: dict[str, Any]) -> bool:
    """Evaluate against real values: ``metrics[(step, output)]`` is the parsed JSON document.

    Raises KeyError when a metric path is absent and TypeError on incomparable values (a boolean
    only compares with a boolean, a string with a string; ints and floats mix).

    Example:
        >>> e = parse_condition('ev.outputs.m["auc"] >= params.min_auc')
        >>> evaluate_condition(e, {("ev", "m"): {"auc": 0.91}}, {"min_auc": 0.9})
        True
    """

    def value(o: Operand) -> Any:
        if isinstance(o, MetricOperand):
            return _lookup(metrics[(o.step, o.output)], o.path)
        if isinstance(o, ParamOperand):
            return params[o.name]
        return o.value

    if isinstance(e, Compare):
        return _compare(value(e.left), e.op, value(e.right))
    if isinstance(e, Not):
        return not evaluate_condition(e.term, metrics, params)
    if isinstance(e, And):
        return all(evaluate_condition(t, metrics, params) for t in e.terms)
    return any(evaluate_condition(t, metrics, params) for t in e.terms)
