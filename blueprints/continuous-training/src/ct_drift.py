"""The drift check of the continuous-training blueprint: captured traffic against the model's training data.

The reference is ``reference.csv`` of the newest *approved* model of the group (written by the train
step: training rows and the model's predictions on them). The current data is what the endpoint
captured (``<root>/endpoints/<endpoint>/capture/*.jsonl``, the last ``window_hours``), or a file
given with ``current_uri`` (capture JSON lines, a folder of them, or a CSV/Parquet table). The
statistics are :func:`cloudml.drift.drift_report`: PSI and KS per feature, PSI of the predictions.

What the step writes:

- ``report/drift.json`` and ``report/drift.md``: the whole report, the decision and where the data came from;
- ``metrics``: ``has_model``, ``rows_current``, ``drifted_features``, ``drift_share``, ``max_psi``,
  ``prediction_psi``, ``drifted``, plus ``verdict`` (text) for people. The pipeline's condition
  reads them against its own threshold parameters.

Data the check cannot judge stops the step with one line naming the stage and the fix (the
:class:`cloudml.errors.DataError` of cloudml.drift, turned into the blueprint's ``StageError``).

Example:
    >>> decide({"has_model": 1.0, "drift_share": 0.5, "prediction_psi": 0.0}, 0.25, 0.2)
    (True, 'drift_share 0.5 >= max_drift_share 0.25')
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from ct_steps import BLUEPRINT, REFERENCE, StageError

__all__ = ["check_drift", "decide", "read_current"]

STAGE = "drift"


def decide(metrics: dict[str, Any], max_drift_share: float, psi_threshold: float) -> tuple[bool, str]:
    """The pipeline condition's rule, for the report: retrain, and why (or why not).

    Example:
        >>> decide({"has_model": 0.0}, 0.25, 0.2)
        (True, 'no approved model yet: train the first one')
        >>> decide({"has_model": 1.0, "drift_share": 0.0, "prediction_psi": 0.01}, 0.25, 0.2)[0]
        False
    """
    if not metrics.get("has_model"):
        return True, "no approved model yet: train the first one"
    share, pred = float(metrics.get("drift_share", 0.0)), float(metrics.get("prediction_psi", 0.0))
    if share >= max_drift_share:
        return True, f"drift_share {share:.3g} >= max_drift_share {max_drift_share:g}"
    if pred >= psi_threshold:
        return True, f"prediction_psi {pred:.3g} >= psi_threshold {psi_threshold:g}"
    return False, (f"drift_share {share:.3g} < max_drift_share {max_drift_share:g} and "
                   f"prediction_psi {pred:.3g} < psi_threshold {psi_threshold:g}")


def _root(near: Path) -> Path | None:
    from cloudml.runtime import step_env

    root = step_env("CLOUDML_ROOT")
    if root:
        return Path(root)
    from tabular_eval import local_root  # the flagship's fallback: walk up to meta.db

    return local_root(near)


def _window(folder: Path, hours: float, into: Path) -> tuple[Path, Counter[str]]:
    """Copy the capture records of the last ``hours`` (all when 0) into one local-format file; count them by
    deployment. Any backend's capture reads the same (:func:`cloudml.drift.capture_records`: a local endpoint's,
    or SageMaker's / Azure ML's files downloaded to a folder); a record without a time is kept."""
    from cloudml.drift import capture_records
    from cloudml.errors import DataError

    since = time.time() - hours * 3600 if hours > 0 else float("-inf")
    by_deployment: Counter[str] = Counter()
    kept = into / "current.jsonl"
    try:
        with open(kept, "w") as out:
            for rec in capture_records(folder):
                at = rec.get("at")
                if at is None or float(at) >= since:
                    by_deployment[str(rec.get("deployment") or "?")] += len(rec["request"]["instances"])
                    out.write(json.dumps(rec) + "\n")
    except DataError as e:
        raise StageError(STAGE, e.message.removeprefix(f"{e.stage}: "),
                         e.hint or "point current_uri at capture files (local, SageMaker or Azure ML)") from None
    return kept, by_deployment


def read_current(current_uri: str, capture: Path | None, features: list[str], window_hours: float,
                 scratch: Path) -> tuple[Any, dict[str, Any]]:
    """The current data as columns, and where it came from.

    ``current_uri`` wins (a ``.jsonl`` file or folder of captures, else a CSV/Parquet table); otherwise
    the endpoint's ``capture`` folder, limited to the last ``window_hours``.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp()); _ = (d / "now.csv").write_text("a,b\\n1,2\\n3,4\\n")
        >>> cols, source = read_current(str(d / "now.csv"), None, ["a", "b"], 0, d)
        >>> list(cols["a"]), source["kind"]
        ([1, 3], 'table')
    """
    import pandas as pd

    from cloudml.drift import load_capture

    if current_uri:
        location = current_uri.removeprefix("file://")
        path = Path(location) if Path(location).is_absolute() or "://" in location else BLUEPRINT / location
        if "://" not in location and not path.exists():
            raise StageError(STAGE, f"current_uri '{current_uri}' does not exist (looked at {path})",
                             "pass -p current_uri=PATH to captured requests (.jsonl or a folder) or a CSV/Parquet "
                             "table, or leave it empty to read the endpoint's capture")
        if path.is_dir() or path.suffix == ".jsonl":
            kept, counts = _window(path, window_hours, scratch)
            return load_capture(kept, features), {"kind": "capture", "path": str(path), "by_deployment": dict(counts)}
        try:
            frame = pd.read_parquet(location) if path.suffix in (".parquet", ".pq") else pd.read_csv(location)
        except (OSError, ValueError, ImportError) as e:
            raise StageError(STAGE, f"cannot read current_uri '{current_uri}': {type(e).__name__}: {e}",
                             "point current_uri at a CSV with a header row, a Parquet file or capture .jsonl") from e
        return frame, {"kind": "table", "path": current_uri}
    if capture is None or not capture.is_dir() or not any(capture.glob("*.jsonl")):
        raise StageError(STAGE, f"no captured requests at {capture}",
                         "enable capture on the deployment (capture: {enabled: true}) and send it traffic, "
                         "or pass -p current_uri=PATH")
    kept, counts = _window(capture, window_hours, scratch)
    return load_capture(kept, features), {"kind": "capture", "path": str(capture), "window_hours": window_hours,
                                          "by_deployment": dict(counts)}


def _some(names: list[str], limit: int = 3) -> str:
    """The first names and how many more (one error line has room for a few).

    Example:
        >>> _some(["a", "b", "c", "d", "e"])
        'a, b, c … (+2 more)'
    """
    return ", ".join(names[:limit]) + (f" … (+{len(names) - limit} more)" if len(names) > limit else "")


def _readable(error: Any, features: list[str], columns: list[str], version: int) -> tuple[str, str]:
    """cloudml.drift's DataError as one short problem and fix (a long list of lacking features is shortened).

    Example:
        >>> from cloudml.errors import DataError
        >>> e = DataError("drift", "the current data lacks the training feature(s) a, b, c, d (it has: x)")
        >>> problem, fix = _readable(e, ["a", "b", "c", "d"], ["x"], 1)
        >>> print(problem)
        the current data lacks 4 of the model's 4 training features (it has: x)
        >>> print(fix)
        capture requests with the features v1 was trained on (a, b, c … (+1 more)), or point -p current_uri at such data
    """
    message = str(error.message).removeprefix(f"{error.stage}: ")
    lacking = [f for f in features if f not in columns]
    if "lacks the training feature" in message and columns and lacking:
        return (f"the current data lacks {len(lacking)} of the model's {len(features)} training features "
                f"(it has: {_some(columns, 4)})",
                f"capture requests with the features v{version} was trained on ({_some(lacking)}), "
                "or point -p current_uri at such data")
    return message, error.hint or "check the current data (-p current_uri) against the model's training data"


def _write(report: Path, doc: dict[str, Any], markdown: str) -> None:
    (report / "drift.json").write_text(json.dumps(doc, indent=2, default=str))
    (report / "drift.md").write_text(markdown)
    print(markdown, end="")


def check_drift(metrics: Path, report: Path, group: str, endpoint: str, current_uri: str = "",
                window_hours: float = 24.0, min_rows: int = 50, psi_threshold: float = 0.2,
                max_drift_share: float = 0.25) -> dict[str, Any]:
    """Compare the current data with the approved model's training data; write the report and the metrics.

    Example:
        >>> import contextlib, io, tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> with contextlib.redirect_stdout(io.StringIO()):  # no registry around this example: no model yet
        ...     m = check_drift(d / "m.json", d, "nothing-registered", "nowhere")
        >>> m["has_model"], m["verdict"], (d / "drift.md").read_text().splitlines()[0]
        (0.0, 'no_model', '# Drift check: retrain (no approved model yet: train the first one)')
    """
    import pandas as pd
    from tabular_eval import find_baseline

    from cloudml.drift import drift_report
    from cloudml.errors import DataError

    version, message = find_baseline(group, report)
    context: dict[str, Any] = {"group": group, "endpoint": endpoint, "registry": message,
                               "thresholds": {"psi_threshold": psi_threshold, "max_drift_share": max_drift_share,
                                              "min_rows": min_rows}}
    if version is None:
        if "could not be read" in message:
            raise StageError(STAGE, message, "check the backend's registry settings (cloudml config)")
        result = {"has_model": 0.0, "rows_current": 0.0, "drifted": 0.0, "drifted_features": 0.0,
                  "drift_share": 0.0, "max_psi": 0.0, "prediction_psi": 0.0, "verdict": "no_model"}
        retrain, why = decide(result, max_drift_share, psi_threshold)
        _write(report, {**context, "metrics": result, "retrain": retrain, "reason": why},
               f"# Drift check: retrain ({why})\n\n{message}.\n")
        return result
    model_dir = Path(version.uri)
    ref_file = model_dir / REFERENCE
    if not ref_file.is_file():
        raise StageError(STAGE, f"{group} v{version.version} has no {REFERENCE}, the training data the check "
                         "compares with", "register models through this pipeline (its train step saves it)")
    reference = pd.read_csv(ref_file)
    features = [c for c in reference.columns if c != "prediction"]
    context.update(model_version=version.version, reference_rows=len(reference), features=features)
    root = _root(report)
    capture = root / "endpoints" / endpoint / "capture" if root is not None else None
    with tempfile.TemporaryDirectory() as scratch:
        try:
            current, source = read_current(current_uri, capture, features, window_hours, Path(scratch))
            columns = list(current.columns) if hasattr(current, "columns") else list(current)
            rows = len(current[columns[0]]) if columns else 0
            context["current"] = {**source, "rows": rows}
            if rows < min_rows:
                result = {"has_model": 1.0, "rows_current": float(rows), "drifted": 0.0, "drifted_features": 0.0,
                          "drift_share": 0.0, "max_psi": 0.0, "prediction_psi": 0.0, "verdict": "too_few_rows"}
                _write(report, {**context, "metrics": result, "retrain": False, "reason": "too few rows"},
                       f"# Drift check: no verdict\n\n{rows} current rows, fewer than min_rows={min_rows}: "
                       "nothing is judged and nothing retrained. Send more traffic or lower -p min_rows.\n")
                return result
            prediction = "prediction" if "prediction" in columns and any(
                v is not None for v in list(current["prediction"])) else None
            drift = drift_report(reference, current, features=features, prediction=prediction,
                                 psi_threshold=psi_threshold)
        except DataError as e:
            raise StageError(STAGE, *_readable(e, features, columns if "columns" in locals() else [],
                                               version.version)) from e
    result = {**drift.metrics(), "has_model": 1.0, "rows_current": float(drift.current_rows),
              "verdict": "drift" if drift.drifted else "no_drift"}
    retrain, why = decide(result, max_drift_share, psi_threshold)
    head = f"# Drift check: {'retrain' if retrain else 'no retraining'} ({why})"
    where = context["current"]
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(where.get("by_deployment", {}).items()))
    body = (f"{head}\n\nModel {group} v{version.version} (its {len(reference)} training rows) against "
            f"{drift.current_rows} current rows from {where['path']}{f' ({counts})' if counts else ''}.\n\n"
            + drift.to_markdown().replace("# Drift report", "## Drift report", 1))
    _write(report, {**context, "metrics": result, "retrain": retrain, "reason": why, "report": drift.to_dict()}, body)
    return result
