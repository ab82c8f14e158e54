"""Built-in data checks of the tabular-classification blueprint: a data contract read from YAML.

Why not pandera or Great Expectations: neither is a dependency of cloudml, and a blueprint that
only works after an extra install would break the offline, one-line demo. The checks below are
plain pandas, run everywhere the step runs, and write a report a person can read (JSON + text).
Swap them for a library in your copy if you prefer one; keep the report and the error message.

The contract (``schema.yaml``) names every column with its type and, optionally, its range,
allowed values and whether it may hold nulls, plus table-wide checks::

    columns:
      mean radius: {type: float, min: 0, max: 60}
      size_band:   {type: category, allowed: [small, medium, large]}
      visit_date:  {type: datetime, role: time}
      target:      {type: int, allowed: [0, 1]}
    checks: {min_rows: 50, max_duplicate_fraction: 0.0, min_class_share: 0.1, allow_extra_columns: false}

Example:
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": [0, 1, 0, 1]})
    >>> schema = {"columns": {"x": {"type": "float", "min": 0}, "y": {"type": "int", "allowed": [0, 1]}},
    ...           "checks": {"min_rows": 2}}
    >>> report = run_checks(frame, schema, label="y")
    >>> report["passed"], [c["check"] for c in report["checks"] if not c["passed"]]
    (True, [])
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_CHECKS", "column_roles", "infer_schema", "render_text", "run_checks"]

TYPES = ("int", "float", "category", "string", "bool", "datetime")
DEFAULT_CHECKS: dict[str, Any] = {
    "min_rows": 20,
    "max_null_fraction": 0.0,
    "max_duplicate_fraction": 0.0,
    "min_class_share": 0.05,
    "allow_extra_columns": False,
}


def _result(check: str, column: str | None, passed: bool, detail: str, fix: str = "") -> dict[str, Any]:
    return {"check": check, "column": column, "passed": passed, "detail": detail, "fix": "" if passed else fix}


def _short(items: list[Any], limit: int = 6) -> str:
    shown = ", ".join(repr(i) for i in items[:limit])
    return shown + (f", … ({len(items) - limit} more)" if len(items) > limit else "")


def _type_ok(series: Any, kind: str) -> tuple[bool, str]:
    """Whether the non-null values of ``series`` fit ``kind``; the second item says what was found."""
    import pandas as pd
    from pandas.api import types as pt

    values = series.dropna()
    found = str(series.dtype)
    if kind == "float":
        return pt.is_numeric_dtype(series) and not pt.is_bool_dtype(series), found
    if kind == "int":
        if pt.is_integer_dtype(series):
            return True, found
        if pt.is_float_dtype(series):  # a CSV column with nulls reads as float
            return bool((values == values.round()).all()), found
        return False, found
    if kind == "bool":
        return pt.is_bool_dtype(series) or set(values.unique()) <= {0, 1}, found  # True == 1, False == 0
    if kind == "datetime":
        if pt.is_datetime64_any_dtype(series):
            return True, found
        parsed = pd.to_datetime(values, errors="coerce", format="mixed")
        bad = values[parsed.isna()]
        return bad.empty, found if bad.empty else f"{found} with unparseable values {_short(list(bad.unique()))}"
    # category / string: anything stored as text
    return pt.is_string_dtype(series) or pt.is_object_dtype(series) or isinstance(series.dtype, pd.CategoricalDtype), found


def _column_checks(frame: Any, name: str, spec: dict[str, Any], defaults: dict[str, Any]) -> list[dict[str, Any]]:
    series = frame[name]
    kind = spec.get("type", "float")
    results: list[dict[str, Any]] = []
    ok, found = _type_ok(series, kind)
    results.append(_result("type", name, ok, f"expected {kind}, found {found}",
                           f"fix the data, or set the type of '{name}' in the schema"))
    nulls = float(series.isna().mean()) if len(series) else 0.0
    limit = 1.0 if spec.get("nullable") is True else float(spec.get("max_null_fraction", defaults["max_null_fraction"]))
    results.append(_result("nulls", name, nulls <= limit, f"{nulls:.1%} null (at most {limit:.1%} allowed)",
                           f"fill or drop the nulls, or set max_null_fraction / nullable: true for '{name}'"))
    values = series.dropna()
    if ok and kind in ("int", "float") and ("min" in spec or "max" in spec) and len(values):
        lo, hi = spec.get("min", float("-inf")), spec.get("max", float("inf"))
        outside = values[(values < lo) | (values > hi)]
        results.append(_result("range", name, outside.empty,
                               f"{len(outside)} value(s) outside [{lo}, {hi}]"
                               + (f", e.g. {_short(list(outside.unique()), 3)}" if len(outside) else ""),
                               f"correct those rows, or widen min/max of '{name}' in the schema"))
    if "allowed" in spec and len(values):
        allowed = list(spec["allowed"])
        unknown = sorted({v for v in values.unique() if v not in allowed and str(v) not in map(str, allowed)}, key=str)
        results.append(_result("allowed", name, not unknown,
                               f"unexpected value(s) {_short(unknown)}; allowed: {_short(allowed)}",
                               f"correct those rows, or add the values to allowed of '{name}' in the schema"))
    return results


def run_checks(frame: Any, schema: dict[str, Any], label: str) -> dict[str, Any]:
    """Run every check of ``schema`` on ``frame``; returns the report (``passed``, ``checks``, ``summary``).

    Example:
        >>> import pandas as pd
        >>> frame = pd.DataFrame({"x": [1.0, -5.0, 1.0], "y": [0, 1, 0]})
        >>> r = run_checks(frame, {"columns": {"x": {"type": "float", "min": 0}, "y": {"type": "int"}}}, "y")
        >>> r["passed"], sorted(c["check"] for c in r["checks"] if not c["passed"])
        (False, ['duplicates', 'min_rows', 'range'])
    """
    checks = {**DEFAULT_CHECKS, **(schema.get("checks") or {})}
    columns: dict[str, dict[str, Any]] = schema.get("columns") or {}
    results: list[dict[str, Any]] = []
    present = list(frame.columns)
    if label not in present:
        results.append(_result("label", label, False, f"label column '{label}' is not in the data "
                               f"({len(present)} columns: {_short(present, 2)})",
                               f"pass -p label=COLUMN with one of the data's columns, or rename the column to '{label}'"))
    missing = [c for c in columns if c not in present]
    extra = [c for c in present if c not in columns]
    if columns:
        results.append(_result("schema", None, not missing,
                               f"{len(missing)} of {len(columns)} schema column(s) missing: {_short(missing, 2)}"
                               if missing else "every schema column is present",
                               "describe your data in src/schema.yaml (start from inferred_schema.yaml in the "
                               "report), or point input_uri at data with these columns"))
        if not checks["allow_extra_columns"]:
            results.append(_result("extra_columns", None, not extra,
                                   f"{len(extra)} column(s) not in the schema: {_short(extra, 3)}" if extra else "no extra columns",
                                   "add them to the schema, drop them, or set checks.allow_extra_columns: true"))
    for name, spec in columns.items():
        if name in present:
            results.extend(_column_checks(frame, name, spec, checks))
    rows = len(frame)
    results.append(_result("min_rows", None, rows >= checks["min_rows"], f"{rows} rows (at least {checks['min_rows']})",
                           "use more data, or lower checks.min_rows"))
    dup = float(frame.duplicated().mean()) if rows else 0.0
    results.append(_result("duplicates", None, dup <= checks["max_duplicate_fraction"],
                           f"{int(frame.duplicated().sum())} duplicate row(s), {dup:.1%} "
                           f"(at most {checks['max_duplicate_fraction']:.1%})",
                           "drop duplicates upstream, or raise checks.max_duplicate_fraction"))
    if label in present and rows:
        shares = frame[label].value_counts(normalize=True, dropna=False)
        smallest = float(shares.min())
        balance = ", ".join(f"{k}: {v:.1%}" for k, v in shares.items())
        ok = len(shares) >= 2 and smallest >= checks["min_class_share"]
        results.append(_result("label_balance", label, ok,
                               f"classes {balance} (each at least {checks['min_class_share']:.1%}, two or more)",
                               "rebalance or collect more of the rare class, or lower checks.min_class_share"))
    failed = [r for r in results if not r["passed"]]
    return {"passed": not failed, "rows": rows, "columns": len(present), "label": label,
            "checks": results, "summary": {"total": len(results), "failed": len(failed)}}


def render_text(report: dict[str, Any]) -> str:
    """The report as text a person reads first: failures with their fix, then what passed.

    Example:
        >>> print(render_text({"passed": True, "rows": 3, "columns": 2, "label": "y", "checks": [],
        ...                    "summary": {"total": 0, "failed": 0}}).splitlines()[0])
        data validation PASSED: 0 checks on 3 rows x 2 columns (label 'y')
    """
    s = report["summary"]
    head = "PASSED" if report["passed"] else f"FAILED ({s['failed']} of {s['total']} checks)"
    lines = [f"data validation {head}: {s['total']} checks on {report['rows']} rows x {report['columns']} columns "
             f"(label '{report['label']}')"]
    for r in report["checks"]:
        if not r["passed"]:
            where = f" [{r['column']}]" if r["column"] else ""
            lines += [f"  ✗ {r['check']}{where}: {r['detail']}", f"      fix: {r['fix']}"]
    passed = [r for r in report["checks"] if r["passed"]]
    if passed:
        lines.append(f"  ✓ {len(passed)} passed: " + ", ".join(sorted({r['check'] for r in passed})))
    return "\n".join(lines) + "\n"


def infer_schema(frame: Any, label: str) -> dict[str, Any]:
    """A schema that describes ``frame`` as it is: a starting point for your own data.

    Example:
        >>> import pandas as pd
        >>> infer_schema(pd.DataFrame({"a": [1.5, 2.0], "b": ["x", "y"], "y": [0, 1]}), "y")["columns"]["b"]
        {'type': 'category', 'allowed': ['x', 'y']}
    """
    from pandas.api import types as pt

    columns: dict[str, Any] = {}
    for name in frame.columns:
        s = frame[name]
        if pt.is_bool_dtype(s):
            columns[name] = {"type": "bool"}
        elif pt.is_integer_dtype(s):
            spec: dict[str, Any] = {"type": "int"}
            if name == label or s.nunique() <= 20:
                spec["allowed"] = sorted(int(v) for v in s.dropna().unique())
            else:
                spec.update(min=int(s.min()), max=int(s.max()))
            columns[name] = spec
        elif pt.is_numeric_dtype(s):
            columns[name] = {"type": "float", "min": float(s.min()), "max": float(s.max())}
        elif pt.is_datetime64_any_dtype(s) or _looks_like_dates(s):
            columns[name] = {"type": "datetime", "role": "time"}
        else:
            values = sorted(str(v) for v in s.dropna().unique())
            columns[name] = {"type": "category", "allowed": values} if len(values) <= 50 else {"type": "string"}
        if s.isna().any():
            columns[name]["nullable"] = True
    return {"columns": columns, "checks": dict(DEFAULT_CHECKS)}


def _looks_like_dates(series: Any) -> bool:
    import pandas as pd

    sample = series.dropna().astype(str).head(50)
    if sample.empty or not sample.str.match(r"^\d{4}-\d{2}-\d{2}").all():
        return False
    return bool(pd.to_datetime(sample, errors="coerce", format="mixed").notna().all())


def column_roles(schema: dict[str, Any], frame: Any, label: str, time_column: str = "") -> dict[str, Any]:
    """Which columns are numeric features, categorical features, the label and the time column.

    ``role: ignore`` in the schema keeps a column out of the features (ids, free text).

    Example:
        >>> import pandas as pd
        >>> f = pd.DataFrame({"a": [1.0], "b": ["x"], "d": ["2024-01-01"], "y": [1]})
        >>> s = {"columns": {"a": {"type": "float"}, "b": {"type": "category"}, "d": {"type": "datetime"},
        ...                  "y": {"type": "int"}}}
        >>> column_roles(s, f, "y")
        {'numeric': ['a'], 'categorical': ['b'], 'label': 'y', 'time': 'd'}
    """
    inferred = infer_schema(frame, label)["columns"]
    specs = {**inferred, **(schema.get("columns") or {})}  # columns the schema leaves out: as they look
    numeric: list[str] = []
    categorical: list[str] = []
    time = time_column or next((c for c, s in specs.items() if s.get("type") == "datetime"), "")
    for name in frame.columns:
        spec = specs.get(name, {})
        if name in (label, time) or spec.get("role") in ("ignore", "time") or spec.get("type") in ("datetime", "string"):
            continue
        (numeric if spec.get("type") in ("int", "float") else categorical).append(name)
    return {"numeric": numeric, "categorical": categorical, "label": label, "time": time}
