"""Data and prediction drift: PSI and the two-sample Kolmogorov-Smirnov test per feature.

A drift report compares current data (for example requests captured at an endpoint) with the
reference data the model was trained on. Numeric features get the population stability index over
the reference's quantile bins and a two-sample KS test; categorical features get PSI over their
categories (a category unseen in training counts as its own bin). A prediction column, when named,
is compared the same way (prediction drift). Pure Python: no numpy needed, pandas DataFrames and
plain ``{column: values}`` mappings are both accepted.

Thresholds, the usual reading of PSI: below 0.1 stable, 0.1 to 0.25 moderate, above 0.25 a major
shift. A feature is flagged when its PSI reaches ``psi_threshold`` (default 0.2), or when the KS test
rejects at ``ks_alpha`` *and* the KS statistic is at least ``ks_min_statistic`` (large samples make
tiny, harmless differences significant, so significance alone does not flag).

Example:
    >>> ref = {"age": [20 + i % 40 for i in range(400)], "plan": ["a", "b"] * 200}
    >>> cur = {"age": [45 + i % 40 for i in range(400)], "plan": ["a", "b"] * 200}
    >>> report = drift_report(ref, cur)
    >>> report.drifted, [f.name for f in report.features if f.drifted]
    (True, ['age'])
    >>> report.metrics()["drifted_features"]
    1.0
"""

from __future__ import annotations

import bisect
import json
import math
import numbers
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cloudml.errors import DataError

__all__ = ["DriftReport", "FeatureDrift", "capture_columns", "capture_format", "capture_records", "drift_report", "ks_2samp", "load_capture", "psi",
           "psi_categorical"]

_EPS = 1e-4


def _missing(v: Any) -> bool:
    if v is None:
        return True
    try:
        return bool(v != v)  # NaN (and NaT) is the one value unequal to itself
    except TypeError:
        return True  # pandas.NA: "unknown" compares to neither true nor false, and is missing


def _is_number(v: Any) -> bool:
    t = type(v)
    if t is float or t is int:  # the common case, without the ABC machinery
        return True
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and t.__name__ not in ("bool_", "bool")


def _psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, _EPS), max(a, _EPS)
        total += (a - e) * math.log(a / e)
    return total


def _quantile_edges(values: list[float], bins: int, presorted: bool = False) -> list[float]:
    ordered = values if presorted else sorted(values)
    n = len(ordered)
    edges = []
    for k in range(1, bins):
        pos = k * (n - 1) / bins
        lo = math.floor(pos)
        hi = min(lo + 1, n - 1)
        edges.append(ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo))
    return sorted(set(edges))


def _shares(values: list[float], edges: list[float]) -> list[float]:
    counts = [0] * (len(edges) + 1)
    for v in values:
        counts[bisect.bisect_left(edges, v)] += 1
    n = len(values)
    return [c / n for c in counts]


def psi(expected: Iterable[Any], actual: Iterable[Any], bins: int = 10) -> float:
    """Population stability index of numeric values over the expected sample's quantile bins.

    Missing values are ignored. Empty bins are floored at 1e-4 so the index stays finite.

    Example:
        >>> round(psi(range(1000), range(1000)), 6)
        0.0
        >>> psi(range(1000), range(500, 1500)) > 0.25
        True
    """
    exp = [float(v) for v in expected if not _missing(v)]
    act = [float(v) for v in actual if not _missing(v)]
    if not exp or not act:
        raise DataError("drift", "PSI needs values in both samples", hint="check that the columns are not all empty")
    return _psi_sorted(sorted(exp), act, bins)


def _psi_sorted(exp_sorted: list[float], act: list[float], bins: int) -> float:
    edges = _quantile_edges(exp_sorted, bins, presorted=True)
    return _psi(_shares(exp_sorted, edges), _shares(act, edges))


def psi_categorical(expected: Iterable[Any], actual: Iterable[Any]) -> float:
    """PSI over categories; a category missing from one sample counts with share 1e-4.

    Example:
        >>> psi_categorical(["a", "b"] * 50, ["a", "b"] * 50)
        0.0
        >>> round(psi_categorical(["a"] * 90 + ["b"] * 10, ["a"] * 50 + ["b"] * 50), 3)
        0.879
    """
    exp = Counter(str(v) for v in expected if not _missing(v))
    act = Counter(str(v) for v in actual if not _missing(v))
    ne, na = sum(exp.values()), sum(act.values())
    if not ne or not na:
        raise DataError("drift", "PSI needs values in both samples", hint="check that the columns are not all empty")
    cats = sorted(set(exp) | set(act))
    return _psi([exp[c] / ne for c in cats], [act[c] / na for c in cats])


def _kolmogorov_q(lam: float) -> float:
    """P(K > lam) for the Kolmogorov distribution (alternating series)."""
    if lam < 0.2:
        return 1.0
    total, sign = 0.0, 1.0
    for j in range(1, 101):
        term = sign * 2.0 * math.exp(-2.0 * j * j * lam * lam)
        total += term
        if abs(term) < 1e-12:
            break
        sign = -sign
    return min(1.0, max(0.0, total))


def ks_2samp(a: Iterable[Any], b: Iterable[Any]) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov: the statistic D and an asymptotic two-sided p-value.

    The p-value uses Stephens' small-sample correction of the Kolmogorov distribution, which is
    close to exact from a few dozen values per sample.

    Example:
        >>> d, p = ks_2samp(range(100), range(100))
        >>> d, p > 0.99
        (0.0, True)
        >>> d, p = ks_2samp(range(100), range(60, 160))
        >>> round(d, 2), p < 1e-6
        (0.6, True)
    """
    return _ks_sorted(sorted(float(v) for v in a if not _missing(v)), sorted(float(v) for v in b if not _missing(v)))


def _ks_sorted(xs: list[float], ys: list[float]) -> tuple[float, float]:
    n, m = len(xs), len(ys)
    if not n or not m:
        raise DataError("drift", "the KS test needs values in both samples",
                        hint="check that the columns are not all empty")
    i = j = 0
    d = 0.0
    while i < n and j < m:
        v = min(xs[i], ys[j])
        while i < n and xs[i] == v:
            i += 1
        while j < m and ys[j] == v:
            j += 1
        d = max(d, abs(i / n - j / m))
    en = math.sqrt(n * m / (n + m))
    return d, _kolmogorov_q((en + 0.12 + 0.11 / en) * d)


@dataclass
class FeatureDrift:
    """Drift of one column: its kind, PSI, KS (numeric only), missing-value shares and the verdict.

    Example:
        >>> FeatureDrift("age", "numeric", 0.31, True).drifted
        True
    """

    name: str
    kind: str
    psi: float
    drifted: bool
    ks_statistic: float | None = None
    ks_pvalue: float | None = None
    missing_reference: float = 0.0
    missing_current: float = 0.0
    reference_mean: float | None = None
    current_mean: float | None = None
    unseen_categories: list[str] = field(default_factory=list)


@dataclass
class DriftReport:
    """Per-feature drift plus prediction drift, with the thresholds used and the overall verdict.

    Example:
        >>> r = drift_report({"x": [1.0, 2.0] * 50}, {"x": [1.0, 2.0] * 50})
        >>> r.drifted, r.max_psi
        (False, 0.0)
    """

    features: list[FeatureDrift]
    prediction: FeatureDrift | None
    psi_threshold: float
    ks_alpha: float
    ks_min_statistic: float
    reference_rows: int
    current_rows: int

    @property
    def drifted(self) -> bool:
        """True when any feature, or the prediction, drifted."""
        return any(f.drifted for f in self.features) or bool(self.prediction and self.prediction.drifted)

    @property
    def max_psi(self) -> float:
        """The largest PSI over features and prediction."""
        values = [f.psi for f in self.features] + ([self.prediction.psi] if self.prediction else [])
        return max(values, default=0.0)

    def metrics(self) -> dict[str, float]:
        """Flat numbers for a metrics output (a pipeline condition can gate retraining on them).

        Example:
            >>> sorted(drift_report({"x": [1, 2] * 50}, {"x": [1, 2] * 50}).metrics())
            ['drift_share', 'drifted', 'drifted_features', 'max_psi', 'prediction_psi']
        """
        n = len(self.features)
        k = sum(f.drifted for f in self.features)
        return {"drifted": float(self.drifted), "drifted_features": float(k), "drift_share": k / n if n else 0.0,
                "max_psi": round(self.max_psi, 6), "prediction_psi": round(self.prediction.psi, 6) if self.prediction else 0.0}

    def to_dict(self) -> dict[str, Any]:
        """The whole report as JSON-ready data.

        Example:
            >>> drift_report({"x": [1, 2] * 50}, {"x": [1, 2] * 50}).to_dict()["features"][0]["name"]
            'x'
        """
        return {"drifted": self.drifted, "metrics": self.metrics(),
                "thresholds": {"psi": self.psi_threshold, "ks_alpha": self.ks_alpha,
                               "ks_min_statistic": self.ks_min_statistic},
                "rows": {"reference": self.reference_rows, "current": self.current_rows},
                "features": [asdict(f) for f in self.features],
                "prediction": asdict(self.prediction) if self.prediction else None}

    def to_markdown(self) -> str:
        """A readable table: one line per feature, drifted ones marked.

        Example:
            >>> print(drift_report({"x": [1, 2] * 50}, {"x": [1, 2] * 50}).to_markdown().splitlines()[0])
            # Drift report: no drift
        """
        head = "drift detected" if self.drifted else "no drift"
        lines = [f"# Drift report: {head}", "",
                 f"{self.current_rows} current rows against {self.reference_rows} reference rows; "
                 f"PSI threshold {self.psi_threshold}, KS alpha {self.ks_alpha} with D >= {self.ks_min_statistic}.",
                 "", "| feature | kind | PSI | KS D | KS p | drifted |", "|---|---|---|---|---|---|"]
        rows = self.features + ([self.prediction] if self.prediction else [])
        for f in rows:
            d = "" if f.ks_statistic is None else f"{f.ks_statistic:.3f}"
            p = "" if f.ks_pvalue is None else f"{f.ks_pvalue:.3g}"
            name = f"{f.name} (prediction)" if f is self.prediction else f.name
            lines.append(f"| {name} | {f.kind} | {f.psi:.3f} | {d} | {p} | {'**yes**' if f.drifted else 'no'} |")
        return "\n".join(lines) + "\n"


def _columns(table: Any, what: str) -> dict[str, list[Any]]:
    if hasattr(table, "columns") and hasattr(table, "__getitem__"):
        return {str(c): list(table[c]) for c in table.columns}
    if isinstance(table, Mapping):
        return {str(k): list(v) for k, v in table.items()}
    raise DataError("drift", f"the {what} data is a {type(table).__name__}, not a table",
                    hint="pass a pandas DataFrame or a {column: values} mapping")


USE_NUMPY = True  # the same numbers either way (the tests compare both); numpy is only faster


def _numeric_numpy(ref: list[Any], cur: list[Any], bins: int) -> tuple[float, float, float, float, float] | None:
    """PSI, KS D and p, and both means with numpy when it is installed (about 3x faster), else None."""
    if not USE_NUMPY:
        return None
    try:
        import numpy as np
    except ImportError:
        return None
    xs = np.sort(np.asarray(ref, dtype=float))
    ys = np.sort(np.asarray(cur, dtype=float))
    n, m = len(xs), len(ys)
    edges = np.unique(np.quantile(xs, np.arange(1, bins) / bins))  # linear interpolation, as the pure path
    share_x = np.bincount(np.searchsorted(edges, xs, side="left"), minlength=len(edges) + 1) / n
    share_y = np.bincount(np.searchsorted(edges, ys, side="left"), minlength=len(edges) + 1) / m
    value = _psi(share_x.tolist(), share_y.tolist())
    both = np.concatenate([xs, ys])
    d = float(np.max(np.abs(np.searchsorted(xs, both, side="right") / n - np.searchsorted(ys, both, side="right") / m)))
    en = math.sqrt(n * m / (n + m))
    return value, d, _kolmogorov_q((en + 0.12 + 0.11 / en) * d), float(xs.mean()), float(ys.mean())


def _compare(name: str, ref: list[Any], cur: list[Any], psi_threshold: float, ks_alpha: float,
             ks_min: float, bins: int) -> FeatureDrift:
    ref_ok = [v for v in ref if not _missing(v)]
    cur_ok = [v for v in cur if not _missing(v)]
    miss_r = 1 - len(ref_ok) / len(ref) if ref else 0.0
    miss_c = 1 - len(cur_ok) / len(cur) if cur else 0.0
    if not ref_ok or not cur_ok:
        raise DataError("drift", f"column '{name}' has no values in the {'reference' if not ref_ok else 'current'} data",
                        hint="drop the column from the check or fix the data")
    if all(map(_is_number, ref_ok)) and all(map(_is_number, cur_ok)):
        fast = _numeric_numpy(ref_ok, cur_ok, bins)
        if fast is not None:
            value, d, p, mean_r, mean_c = fast
        else:
            xs, ys = sorted(map(float, ref_ok)), sorted(map(float, cur_ok))  # sorted once, for PSI and KS
            value = _psi_sorted(xs, ys, bins)
            d, p = _ks_sorted(xs, ys)
            mean_r, mean_c = math.fsum(xs) / len(xs), math.fsum(ys) / len(ys)
        drifted = value >= psi_threshold or (p < ks_alpha and d >= ks_min)
        return FeatureDrift(name, "numeric", round(value, 6), drifted, round(d, 6), p, round(miss_r, 6), round(miss_c, 6),
                            mean_r, mean_c)
    value = psi_categorical(ref_ok, cur_ok)
    unseen = sorted({str(v) for v in cur_ok} - {str(v) for v in ref_ok})
    return FeatureDrift(name, "categorical", round(value, 6), value >= psi_threshold, None, None,
                        round(miss_r, 6), round(miss_c, 6), unseen_categories=unseen)


def drift_report(reference: Any, current: Any, *, features: Sequence[str] | None = None,
                 prediction: str | None = None, psi_threshold: float = 0.2, ks_alpha: float = 0.01,
                 ks_min_statistic: float = 0.1, bins: int = 10) -> DriftReport:
    """Compare ``current`` with ``reference`` feature by feature (and the ``prediction`` column, if named).

    ``features`` defaults to the reference's columns other than ``prediction``. A feature missing
    from the current data is an error naming it: drift cannot be judged on other features.

    Example:
        >>> drift_report({"x": [1, 2, 3]}, {"y": [1, 2, 3]})
        Traceback (most recent call last):
        ...
        cloudml.errors.DataError: drift: the current data lacks the training feature(s) x (it has: y)
    """
    ref, cur = _columns(reference, "reference"), _columns(current, "current")
    names = list(features) if features is not None else [c for c in ref if c != prediction]
    if not names:
        raise DataError("drift", "no features to compare", hint="name the training features with features=[...]")
    for which, cols in (("reference", ref), ("current", cur)):
        lacking = [n for n in names if n not in cols]
        if lacking:
            raise DataError("drift", f"the {which} data lacks the training feature(s) {', '.join(lacking)} "
                            f"(it has: {', '.join(cols) or 'no columns'})",
                            hint="capture the same features the model was trained on, or pass features=[...]")
    rows_r = len(ref[names[0]])
    rows_c = len(cur[names[0]])
    if not rows_r or not rows_c:
        raise DataError("drift", f"the {'reference' if not rows_r else 'current'} data has no rows",
                        hint="capture some traffic first (deployment capture: {enabled: true})")
    result = [_compare(n, ref[n], cur[n], psi_threshold, ks_alpha, ks_min_statistic, bins) for n in names]
    pred = None
    if prediction is not None:
        if prediction not in ref or prediction not in cur:
            where = "reference" if prediction not in ref else "current"
            raise DataError("drift", f"the {where} data has no prediction column '{prediction}'",
                            hint="score the reference data with the model, or leave prediction out")
        pred = _compare(prediction, ref[prediction], cur[prediction], psi_threshold, ks_alpha, ks_min_statistic, bins)
    return DriftReport(result, pred, psi_threshold, ks_alpha, ks_min_statistic, rows_r, rows_c)


# capture files a cloud wrote, by format: the module whose load_capture(path, feature_names, prediction) reads them
CAPTURE_READERS = {"sagemaker": "cloudml.adapters.sagemaker.capture", "azureml": "cloudml.adapters.azureml.capture"}


def capture_format(path: str | Path) -> str:
    """Who wrote the capture files at ``path``: ``local``, ``sagemaker`` or ``azureml`` (from the first record).

    A folder's own ``*.jsonl`` files are looked at first, then its subfolders (the clouds nest theirs by
    endpoint, deployment and hour). An ``s3://`` URI is SageMaker's, an ``azureml://`` one Azure ML's.
    What is not recognised is ``local``, whose reader names the problem.

    Example:
        >>> import tempfile, pathlib, json
        >>> d = pathlib.Path(tempfile.mkdtemp()) / "churn" / "churn-v2" / "request" / "2026" / "01" / "01" / "10"
        >>> d.mkdir(parents=True)
        >>> _ = (d / "a.jsonl").write_text(json.dumps({"specversion": "1.0", "type": "azureml.inference.request"}))
        >>> capture_format(d.parents[6]), capture_format(d.parents[6] / "nowhere")
        ('azureml', 'local')
        >>> capture_format("s3://bucket/capture/churn"), capture_format("azureml://datastores/d/paths/c")
        ('sagemaker', 'azureml')
    """
    if str(path).startswith("s3://"):  # SageMaker's capture destination: read in place with boto3
        return "sagemaker"
    if str(path).startswith("azureml://"):  # Azure ML's datastore paths: read through azureml-fsspec
        return "azureml"
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.jsonl")) or sorted(path.rglob("*.jsonl"))
    else:
        files = [path] if path.is_file() else []
    for file in files[:1]:
        with open(file, encoding="utf-8", errors="replace") as fh:
            line = next((ln for ln in fh if ln.strip()), "")
        try:
            record = json.loads(line)
        except ValueError:
            return "local"
        if isinstance(record, Mapping) and "captureData" in record:
            return "sagemaker"
        if isinstance(record, Mapping) and "specversion" in record and \
                str(record.get("type", "")).startswith("azureml.inference."):
            return "azureml"
    return "local"


def load_capture(path: str | Path, feature_names: Sequence[str] | None = None,
                 prediction: str = "prediction") -> dict[str, list[Any]]:
    """Columns from captured requests (JSON lines of ``{"request": {"instances": ...}, "response": ...}``).

    ``path`` is a capture file or a folder of them (a local endpoint writes
    ``<root>/endpoints/<name>/capture/*.jsonl``). Instances given as lists need ``feature_names``;
    instances given as objects keep their keys. Predictions go to the ``prediction`` column.
    Files a cloud wrote (SageMaker data capture, Azure ML data collection; see :func:`capture_format`)
    are read by that adapter's ``capture.load_capture`` into the same columns.

    Example:
        >>> import tempfile, pathlib, json
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> rec = {"request": {"instances": [[1, 2]]}, "response": {"predictions": [0]}}
        >>> _ = (d / "20260101.jsonl").write_text(json.dumps(rec) + "\\n")
        >>> load_capture(d, ["a", "b"])
        {'a': [1], 'b': [2], 'prediction': [0]}
    """
    fmt = capture_format(path)
    if fmt != "local":
        import importlib

        reader = importlib.import_module(CAPTURE_READERS[fmt])  # no cloud SDK: the readers parse files only
        return dict(reader.load_capture(path, feature_names, prediction))
    return capture_columns(_local_records(Path(path)), feature_names, prediction, path, require_rows=False)


def _local_records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise DataError("drift", f"no captured requests at {path}",
                        hint="enable capture on the deployment (capture: {enabled: true}) and send traffic")
    for file in files:
        for lineno, line in enumerate(file.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                rec["request"]["instances"]
            except (ValueError, KeyError, TypeError):
                raise DataError("drift", f"{file}:{lineno} is not a captured request",
                                hint="capture files hold one JSON object per line with request.instances") from None
            yield f"{file}:{lineno}", rec


def capture_records(path: str | Path) -> Iterator[dict[str, Any]]:
    """Captured requests as local capture records, whichever backend wrote them: each
    ``{"at", "deployment", "request": {"instances"}, "response": {"predictions"}}`` (``at`` in epoch
    seconds, ``deployment`` the deployment or production variant that answered; None where the files
    do not say). For per-variant analyses such as an A/B test.

    Example:
        >>> import tempfile, pathlib, json
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> rec = {"at": 1.0, "deployment": "m-v2", "request": {"instances": [[1]]}, "response": {"predictions": [0]}}
        >>> _ = (d / "c.jsonl").write_text(json.dumps(rec) + "\\n")
        >>> [r["deployment"] for r in capture_records(d)]
        ['m-v2']
    """
    fmt = capture_format(path)
    if fmt != "local":
        import importlib

        yield from importlib.import_module(CAPTURE_READERS[fmt]).records(path)
        return
    for _, rec in _local_records(Path(path)):
        yield rec


def capture_columns(records: Iterable[tuple[str, Mapping[str, Any]]], feature_names: Sequence[str] | None,
                    prediction: str, path: str | Path, *, require_rows: bool = True) -> dict[str, list[Any]]:
    """Columns from neutral capture records: ``(where, {"request": {"instances": [...]}, "response":
    {"predictions": [...]}})`` pairs, as every backend's capture reader produces them.

    Instances given as objects keep their keys; lists (or single values) need ``feature_names``;
    predictions go to the ``prediction`` column, None where the response is missing or does not match
    the instances one to one. ``where`` names the record in errors; ``path`` names the capture.

    Example:
        >>> capture_columns([("f:1", {"request": {"instances": [[1, 2], [3, 4]]}, "response": {"predictions": [0, 1]}}),
        ...                  ("f:2", {"request": {"instances": [{"a": 5}]}, "response": None})], ["a", "b"], "y", "f")
        {'a': [1, 3, 5], 'b': [2, 4, None], 'y': [0, 1, None]}
    """
    cols: dict[str, list[Any]] = {}
    rows = 0
    for where, rec in records:
        instances = rec["request"]["instances"]
        preds = (rec.get("response") or {}).get("predictions")
        if not isinstance(preds, list) or len(preds) != len(instances):
            preds = [None] * len(instances)
        for inst, pred in zip(instances, preds, strict=True):
            if isinstance(inst, Mapping):
                item = {str(k): v for k, v in inst.items()}
            else:
                values = inst if isinstance(inst, list) else [inst]
                if feature_names is None:
                    raise DataError("drift", "captured instances are lists, so the feature names are needed",
                                    hint="pass feature_names=[...] in training column order")
                if len(values) != len(feature_names):
                    raise DataError("drift", f"{where}: an instance has {len(values)} values, not "
                                    f"{len(feature_names)} features", hint="pass the feature names the model was "
                                    "trained on")
                item = dict(zip(feature_names, values, strict=True))
            item[prediction] = pred
            for k in [*cols, *(k for k in item if k not in cols)]:
                cols.setdefault(k, [None] * rows).append(item.get(k))
            rows += 1
    if rows == 0 and require_rows:
        raise DataError("drift", f"no captured requests at {path}", hint="send traffic to the endpoint first")
    return cols
