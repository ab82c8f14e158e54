"""References inside a spec: placeholders, step-output references, external URIs.

Placeholders are neutral and written ``{{inputs.x}}``, ``{{outputs.y}}`` or ``{{params.z}}``; each
adapter maps them to its own mechanism. An input is one of: another step's output
(``train.outputs.model``), a pipeline parameter holding a URI (``{{params.input_uri}}``), or an
external URI / path (``s3://…``, ``gs://…``, ``azureml://…``, ``file://…``, ``./data.csv``).

Example:
    >>> from cloudml.spec.refs import find_placeholders, parse_source
    >>> [(p.namespace, p.name) for p in find_placeholders("python t.py --in {{inputs.train}} --lr {{ params.lr }}")]
    [('inputs', 'train'), ('params', 'lr')]
    >>> parse_source("split.outputs.train")
    StepOutputRef(step='split', output='train')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ExternalRef",
    "ParamSourceRef",
    "Placeholder",
    "Source",
    "StepOutputRef",
    "find_placeholders",
    "parse_source",
    "split_command",
    "substitute",
]

Namespace = Literal["inputs", "outputs", "params"]
NAMESPACES: tuple[str, ...] = ("inputs", "outputs", "params")

# Anything between double braces; what is inside is checked separately so a typo is reported.
_ANY_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}")
_GOOD_INNER = re.compile(r"^\s*([a-z]+)\.([A-Za-z_][A-Za-z0-9_]*)\s*$")
_STEP_OUTPUT = re.compile(r"^([a-z][a-z0-9_-]{0,62})\.outputs\.([A-Za-z_][A-Za-z0-9_]{0,63})$")
_WHOLE_PARAM = re.compile(r"^\{\{\s*params\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$")
URI_SCHEMES: tuple[str, ...] = ("s3", "gs", "azureml", "abfss", "wasbs", "file", "https", "http")
_URI = re.compile(r"^([a-z][a-z0-9+.-]*)://")


@dataclass(frozen=True)
class Placeholder:
    """One ``{{namespace.name}}`` occurrence; ``namespace`` is '' when the text inside is malformed."""

    raw: str
    namespace: str
    name: str
    start: int
    end: int

    @property
    def valid(self) -> bool:
        """True when the namespace is one of inputs, outputs, params."""
        return self.namespace in NAMESPACES


def find_placeholders(text: str) -> list[Placeholder]:
    """All ``{{…}}`` occurrences in ``text``, well-formed or not.

    Example:
        >>> [p.valid for p in find_placeholders("{{inputs.a}} {{input.b}} {{ oops }}")]
        [True, False, False]
    """
    found: list[Placeholder] = []
    if "{{" not in text:
        return found
    for m in _ANY_PLACEHOLDER.finditer(text):
        inner = _GOOD_INNER.match(m.group(1))
        if inner:
            found.append(Placeholder(m.group(0), inner.group(1), inner.group(2), m.start(), m.end()))
        else:
            found.append(Placeholder(m.group(0), "", m.group(1).strip(), m.start(), m.end()))
    return found


def substitute(text: str, values: dict[str, dict[str, str]]) -> str:
    """Replace placeholders with ``values[namespace][name]``; unknown ones are left as they are.

    Example:
        >>> substitute("--lr {{params.lr}} --out {{outputs.m}}", {"params": {"lr": "0.1"}, "outputs": {"m": "/o"}})
        '--lr 0.1 --out /o'
    """

    def repl(m: re.Match[str]) -> str:
        inner = _GOOD_INNER.match(m.group(1))
        if not inner:
            return m.group(0)
        return values.get(inner.group(1), {}).get(inner.group(2), m.group(0))

    return _ANY_PLACEHOLDER.sub(repl, text) if "{{" in text else text


def split_command(command: str | list[str] | None) -> list[str]:
    """A step's command as argv: a string is split like a shell would, placeholders kept whole.

    ``{{ params.lr }}`` (spaces inside the braces) stays one argument, written ``{{params.lr}}``.

    Example:
        >>> split_command("python t.py --lr {{ params.lr }} 'a b'")
        ['python', 't.py', '--lr', '{{params.lr}}', 'a b']
        >>> split_command(["echo", "{{ inputs.x }}"])
        ['echo', '{{ inputs.x }}']
    """
    if isinstance(command, list):
        return list(command)
    text = command or ""

    def tidy(m: re.Match[str]) -> str:
        inner = _GOOD_INNER.match(m.group(1))
        return f"{{{{{inner.group(1)}.{inner.group(2)}}}}}" if inner else m.group(0)

    if "{{" in text:
        text = _ANY_PLACEHOLDER.sub(tidy, text)
    import shlex

    return shlex.split(text)


@dataclass(frozen=True)
class StepOutputRef:
    """``<step>.outputs.<output>``: the output of another step."""

    step: str
    output: str

    def __str__(self) -> str:
        return f"{self.step}.outputs.{self.output}"


@dataclass(frozen=True)
class ParamSourceRef:
    """``{{params.<name>}}`` used as a whole input: the parameter holds a URI or path."""

    param: str

    def __str__(self) -> str:
        return f"{{{{params.{self.param}}}}}"


@dataclass(frozen=True)
class ExternalRef:
    """An external URI (``s3://``, ``gs://``, ``azureml://``, ``file://``…) or a local path."""

    uri: str

    @property
    def scheme(self) -> str:
        """``s3``, ``gs``, ``azureml``, … or ``file`` for a bare path."""
        m = _URI.match(self.uri)
        return m.group(1) if m else "file"

    def __str__(self) -> str:
        return self.uri


Source = StepOutputRef | ParamSourceRef | ExternalRef


def parse_source(text: str) -> Source:
    """Classify an input source string.

    A string shaped ``name.outputs.name`` is always a step reference; to name a local file that
    happens to look like one, write ``./name.outputs.x`` or ``file://…``.

    Example:
        >>> parse_source("{{params.data}}"), parse_source("s3://b/k").scheme, parse_source("data.csv").scheme
        (ParamSourceRef(param='data'), 's3', 'file')
    """
    m = _STEP_OUTPUT.match(text)
    if m:
        return StepOutputRef(m.group(1), m.group(2))
    m = _WHOLE_PARAM.match(text)
    if m:
        return ParamSourceRef(m.group(1))
    return ExternalRef(text)


def uri_scheme_error(text: str) -> str | None:
    """A message when ``text`` has a URI scheme cloudml does not know, else None.

    Example:
        >>> uri_scheme_error("s4://bucket/x")
        "unknown URI scheme 's4'"
    """
    m = _URI.match(text)
    if m and m.group(1) not in URI_SCHEMES:
        return f"unknown URI scheme '{m.group(1)}'"
    return None
