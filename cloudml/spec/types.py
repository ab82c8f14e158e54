"""Small value types shared by the spec: durations, memory sizes, names, the strict base model.

Durations are stored as seconds (float) and written back in the shortest exact unit
(``"10m"``, ``"250ms"``). Memory sizes are stored as bytes and written back as ``"8Gi"``.

Example:
    >>> from cloudml.spec.types import parse_duration, format_duration, parse_memory, format_memory
    >>> parse_duration("1h30m"), format_duration(5400.0)
    (5400.0, '90m')
    >>> parse_memory("8Gi"), format_memory(8 * 1024**3)
    (8589934592, '8Gi')
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Annotated, Any, Final

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
)

__all__ = [
    "API_VERSION",
    "Duration",
    "Identifier",
    "Memory",
    "SpecModel",
    "StepName",
    "format_duration",
    "format_memory",
    "parse_duration",
    "parse_memory",
]

API_VERSION: Final = "cloudml/v1"

STEP_NAME_RE = r"^[a-z][a-z0-9_-]{0,62}$"
IDENT_RE = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"

StepName = Annotated[str, StringConstraints(pattern=STEP_NAME_RE)]
"""Lower-case letters, digits, ``-`` and ``_``, starting with a letter, at most 63 characters."""

Identifier = Annotated[str, StringConstraints(pattern=IDENT_RE)]
"""A Python-style identifier: used for parameter, input and output names."""


class SpecModel(BaseModel):
    """Base of every spec model: unknown fields are errors, values are checked on assignment.

    Numbers must be finite: ``.nan`` and ``.inf`` are rejected everywhere.

    Example:
        >>> class M(SpecModel):
        ...     x: int = 1
        >>> M(x=2).x
        2
    """

    model_config = ConfigDict(
        extra="forbid",
        validate_assignment=True,
        populate_by_name=True,
        validate_default=False,
        use_enum_values=True,
        allow_inf_nan=False,
    )


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DUR_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_DUR_FULL = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+$")
_NUMBER = re.compile(r"^[-+]?\d+(?:\.\d*)?(?:e[-+]?\d+)?$|^[-+]?\.\d+(?:e[-+]?\d+)?$")
_ISO_DUR = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def parse_duration(value: Any) -> float:
    """Parse ``"90s"``, ``"10m"``, ``"1h30m"``, ``"250ms"``, ``"PT5M"`` or a number of seconds.

    Example:
        >>> parse_duration("2h"), parse_duration(30), parse_duration("PT1M30S")
        (7200.0, 30.0, 90.0)
    """
    if isinstance(value, bool):
        raise ValueError("a duration, like '30s', '10m' or '2h', not a boolean")
    if isinstance(value, (int, float)):
        return _finite_seconds(value)
    if not isinstance(value, str):
        raise ValueError("a duration, like '30s', '10m' or '2h'")
    text = value.strip().lower().replace(" ", "")
    if _DUR_FULL.match(text):
        return _finite_seconds(sum(float(n) * _UNITS[u] for n, u in _DUR_PART.findall(text)))
    iso = _ISO_DUR.match(value.strip().upper())
    if iso and value.strip().upper() not in ("P", "PT"):
        d, h, m, s = (float(x) if x else 0.0 for x in iso.groups())
        return _finite_seconds(d * 86400 + h * 3600 + m * 60 + s)
    if not _NUMBER.match(text):
        raise ValueError(f"'{value}' is not a duration; write e.g. '30s', '10m', '2h' or '1h30m'")
    return _finite_seconds(float(text))


def _finite_seconds(value: float) -> float:
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds):
        raise ValueError("a duration must be a finite number of seconds")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact unit string for a number of seconds; ``parse_duration`` reads it back exactly.

    Example:
        >>> format_duration(600.0), format_duration(0.25), format_duration(90.0), format_duration(1e-7)
        ('10m', '250ms', '90s', '0.0000001s')
    """
    if seconds == 0:
        return "0s"
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNITS[unit]
        count = seconds / size
        if seconds >= size and count.is_integer() and int(count) * size == seconds:
            return f"{int(count)}{unit}"
    ms = seconds * 1000
    if abs(ms - round(ms)) < 1e-9 and round(ms) * _UNITS["ms"] == seconds:
        return f"{round(ms)}ms"
    return f"{format(Decimal(repr(float(seconds))), 'f')}s"


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^((\d+(\.\d+)?)(ms|s|m|h|d|w))+$"},
                {"type": "number", "minimum": 0},
            ],
            "description": "A duration: '250ms', '30s', '10m', '2h', '1d', '1h30m', or seconds as a number.",
        }
    ),
]

_MEM_UNITS = {
    "": 1,
    "k": 1000,
    "m": 1000**2,
    "g": 1000**3,
    "t": 1000**4,
    "ki": 1024,
    "mi": 1024**2,
    "gi": 1024**3,
    "ti": 1024**4,
}
_MEM_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]i?)?b?$", re.IGNORECASE)


def parse_memory(value: Any) -> int:
    """Parse ``"8Gi"``, ``"512Mi"``, ``"16G"`` or a number of bytes into a whole number of bytes.

    Example:
        >>> parse_memory("512Mi"), parse_memory("2G"), parse_memory("1.5Ki")
        (536870912, 2000000000, 1536)
    """
    if isinstance(value, bool):
        raise ValueError("a memory size like '8Gi', not a boolean")
    if isinstance(value, int):
        if value <= 0:
            raise ValueError("a memory size must be positive")
        return value
    if isinstance(value, float):
        raise ValueError("a memory size like '8Gi' or '512Mi', or a whole number of bytes")
    if not isinstance(value, str):
        raise ValueError("a memory size like '8Gi' or '512Mi'")
    m = _MEM_RE.match(value.strip())
    if not m:
        raise ValueError(f"'{value}' is not a memory size; write e.g. '512Mi', '8Gi' or '16G'")
    amount = Decimal(m.group(1)) * _MEM_UNITS[(m.group(2) or "").lower()]
    if amount <= 0:
        raise ValueError("a memory size must be positive")
    if amount != amount.to_integral_value():
        raise ValueError(f"'{value}' is not a whole number of bytes; use a smaller unit")
    return int(amount)


def format_memory(size: int) -> str:
    """The shortest exact unit string for a number of bytes (binary units win a tie).

    Example:
        >>> format_memory(8 * 1024**3), format_memory(2_000_000_000), format_memory(1500)
        ('8Gi', '2G', '1500')
    """
    best = str(size)
    for unit in ("Ti", "Gi", "Mi", "Ki", "T", "G", "M", "K"):
        base = _MEM_UNITS[unit.lower()]
        if size >= base and size % base == 0 and len(f"{size // base}{unit}") < len(best):
            best = f"{size // base}{unit}"
    return best


Memory = Annotated[
    int,
    BeforeValidator(parse_memory),
    PlainSerializer(format_memory, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^\d+(\.\d+)?\s*([KMGTkmgt]i?)?[bB]?$"},
                {"type": "integer", "minimum": 1},
            ],
            "description": "A memory size: '512Mi', '8Gi', '16G', or bytes as an integer.",
        }
    ),
]
