"""Step functions of the tabular-classification blueprint; each runs through ``python -m cloudml.runtime``.

Inputs and outputs arrive as folders (a ``metrics`` output is a JSON file path); params arrive
converted to their annotated types. A step that cannot go on raises :class:`StageError`, whose one
line names the stage, what is wrong and the fix: that line is what ``cloudml run`` shows.

Stages: ingest -> validate -> split -> features -> train -> evaluate (then the pipeline's gate,
register and fail steps, which need no code).

Example:
    >>> import contextlib, io, tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> with contextlib.redirect_stdout(io.StringIO()):  # steps log to stdout
    ...     ingest(d, "sklearn://breast_cancer", 0)
    >>> json.loads((d / "source.json").read_text())["rows"]
    569
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path
from typing import Any

__all__ = ["StageError", "evaluate", "features", "ingest", "load_default_dataset", "split", "train", "validate"]

BLUEPRINT = Path(__file__).resolve().parent.parent  # where pipeline.yaml is: relative paths start here


class StageError(Exception):
    """A stage cannot go on; the message names the stage, the problem and the fix (one line)."""

    LIMIT = 270  # cloudml shows the last 300 characters of a failed step's last stderr line

    def __init__(self, stage: str, problem: str, fix: str) -> None:
        room = self.LIMIT - len(f"[{stage}]  — fix: {fix}")
        if len(problem) > room:
            problem = problem[: max(room - 1, 20)] + "…"
        super().__init__(f"[{stage}] {problem} — fix: {fix}")


# -- ingest ---------------------------------------------------------------------------------------
def load_default_dataset() -> Any:
    """scikit-learn's breast-cancer data, plus a categorical and a date column derived deterministically.

    ``size_band`` (small/medium/large, from ``mean area``) gives the ColumnTransformer a categorical
    column, and ``visit_date`` (one row a day) lets the split be time-based. Works offline.

    Example:
        >>> f = load_default_dataset()
        >>> f.shape, sorted(f["size_band"].unique())
        ((569, 33), ['large', 'medium', 'small'])
    """
    import pandas as pd
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    target = frame.pop("target")
    frame["size_band"] = pd.cut(frame["mean area"], [0, 500, 900, float("inf")],
                                labels=["small", "medium", "large"]).astype(str)
    frame["visit_date"] = pd.date_range("2023-01-01", periods=len(frame), freq="D").strftime("%Y-%m-%d")
    frame["target"] = target
    return frame


def _read_table(uri: str) -> Any:
    import pandas as pd

    location = uri.removeprefix("file://")
    remote = "://" in location
    path = location if remote else str(BLUEPRINT / location) if not Path(location).is_absolute() else location
    if not remote and not Path(path).is_file():
        raise StageError("ingest", f"input_uri '{uri}' does not exist (looked at {path})",
                         "pass -p input_uri=PATH to a CSV or Parquet file (relative paths start at the blueprint "
                         "folder), or sklearn://breast_cancer for the bundled data")
    try:
        if path.endswith((".parquet", ".pq")):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except ImportError as e:
        raise StageError("ingest", f"cannot read {uri}: {e}",
                         "pip install pyarrow (Parquet) or the filesystem package the URI scheme needs") from e
    except (OSError, ValueError) as e:
        raise StageError("ingest", f"cannot read {uri}: {type(e).__name__}: {e}",
                         "check that the file is a CSV with a header row, or a Parquet file") from e


def ingest(data: Path, input_uri: str, max_rows: int = 0) -> None:
    """Read ``input_uri`` (CSV or Parquet; ``sklearn://breast_cancer`` is the offline default) into ``data``.

    Writes ``data.csv`` and ``source.json`` (the URI, the source's SHA-256, rows and columns).
    ``max_rows`` > 0 keeps the first rows only (quick runs on big files).

    Example:
        >>> import contextlib, io, tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> with contextlib.redirect_stdout(io.StringIO()):
        ...     ingest(d, "sklearn://breast_cancer", 100)
        >>> sorted(p.name for p in d.iterdir())
        ['data.csv', 'source.json']
    """
    if input_uri in ("", "sklearn://breast_cancer"):
        frame, digest = load_default_dataset(), "sklearn:breast_cancer"
    elif input_uri.startswith("sklearn://"):
        raise StageError("ingest", f"unknown bundled dataset '{input_uri}'",
                         "use sklearn://breast_cancer, or a path to a CSV or Parquet file")
    else:
        frame = _read_table(input_uri)
        local = input_uri.removeprefix("file://")
        local_path = Path(local) if Path(local).is_absolute() else BLUEPRINT / local
        digest = hashlib.sha256(local_path.read_bytes()).hexdigest() if local_path.is_file() else "remote"
    if max_rows > 0:
        frame = frame.head(max_rows)
    if frame.empty:
        raise StageError("ingest", f"input_uri '{input_uri}' holds no rows", "point input_uri at a file with data")
    frame.to_csv(data / "data.csv", index=False)
    (data / "source.json").write_text(json.dumps(
        {"uri": input_uri, "sha256": digest, "rows": len(frame), "columns": list(frame.columns)}, indent=2))
    print(f"ingest: {len(frame)} rows x {frame.shape[1]} columns from {input_uri}")


# -- validate -------------------------------------------------------------------------------------
def _load_schema(schema: str, frame: Any, label: str) -> tuple[dict[str, Any], str]:
    import yaml
    from tabular_checks import infer_schema

    if not schema:
        return {"columns": {}, "checks": infer_schema(frame, label)["checks"]}, "none (inferred types only)"
    path = Path(schema) if Path(schema).is_absolute() else Path(__file__).resolve().parent / schema
    if not path.is_file():
        raise StageError("validate", f"schema file '{schema}' does not exist (looked at {path})",
                         "pass -p schema=FILE (relative to src/), or -p schema= to check without one")
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise StageError("validate", f"schema file {path.name} is not valid YAML: {e}".replace("\n", " "),
                         "fix the YAML") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("columns", {}), dict):
        raise StageError("validate", f"schema file {path.name} must be a mapping with 'columns' and 'checks'",
                         "see the docstring of tabular_checks.py for the format")
    return doc, str(path.name)


def validate(data: Path, valid: Path, report: Path, label: str, schema: str = "schema.yaml") -> dict[str, Any]:
    """Check ``data`` against the schema; write the report (JSON + text) and, when it passes, ``valid``.

    Checks: label present, schema columns present, no extra columns, types, nulls, ranges, allowed
    categories, minimum rows, duplicates, label balance. A failure raises :class:`StageError` after
    the report is written. ``valid`` gets the data and ``columns.json`` (each column's role).

    Example:
        >>> import contextlib, io, tempfile
        >>> d = Path(tempfile.mkdtemp()); raw, ok, rep = d / "raw", d / "ok", d / "rep"
        >>> for p in (raw, ok, rep): p.mkdir()
        >>> with contextlib.redirect_stdout(io.StringIO()):
        ...     ingest(raw, "sklearn://breast_cancer", 0); result = validate(raw, ok, rep, "target")
        >>> result["passed"], (rep / "report.txt").read_text().split(":")[0]
        (True, 'data validation PASSED')
    """
    import pandas as pd
    import yaml
    from tabular_checks import column_roles, infer_schema, render_text, run_checks

    frame = pd.read_csv(data / "data.csv")
    spec, source = _load_schema(schema, frame, label)
    result = run_checks(frame, spec, label)
    result["schema"] = source
    text = render_text(result)
    (report / "report.json").write_text(json.dumps(result, indent=2, default=str))
    (report / "report.txt").write_text(text)
    (report / "inferred_schema.yaml").write_text(
        "# What the data looks like: copy into src/schema.yaml and tighten it.\n"
        + yaml.safe_dump(infer_schema(frame, label), sort_keys=False, allow_unicode=True))
    print(text, end="")
    if not result["passed"]:
        first = next(c for c in result["checks"] if not c["passed"])
        where = f" [{first['column']}]" if first["column"] and first["check"] != "label" else ""
        detail = first["detail"] if len(first["detail"]) <= 140 else first["detail"][:137] + "..."
        n = result["summary"]["failed"]
        more = f"; +{n - 1} more in report.txt" if n > 1 else ""
        raise StageError("validate", f"{first['check']}{where}: {detail}{more}", first["fix"])
    frame.to_csv(valid / "data.csv", index=False)
    roles = column_roles(spec, frame, label)
    (valid / "columns.json").write_text(json.dumps(roles, indent=2))
    return {"passed": True, "rows": result["rows"], "failed_checks": 0}


# -- split ----------------------------------------------------------------------------------------
def split(data: Path, train: Path, test: Path, method: str, test_size: float, seed: int) -> None:
    """Split ``data`` into ``train`` and ``test``: ``stratified``, ``random`` or ``time`` (newest rows to test).

    The method, seed, sizes, class counts (and the time cutoff) go to ``split.json`` in both folders.

    Example:
        >>> import contextlib, io, tempfile
        >>> d = Path(tempfile.mkdtemp()); names = ("raw", "ok", "rep", "tr", "te")
        >>> raw, ok, rep, tr, te = (d / n for n in names)
        >>> for p in (raw, ok, rep, tr, te): p.mkdir()
        >>> with contextlib.redirect_stdout(io.StringIO()):
        ...     ingest(raw, "", 0); _ = validate(raw, ok, rep, "target"); split(ok, tr, te, "time", 0.25, 7)
        >>> info = json.loads((te / "split.json").read_text())
        >>> info["rows_test"], info["cutoff"], info["seed"]
        (142, '2024-03-03', 7)
    """
    import pandas as pd
    from sklearn.model_selection import train_test_split

    frame = pd.read_csv(data / "data.csv")
    roles = json.loads((data / "columns.json").read_text())
    label, time = roles["label"], roles.get("time")
    info: dict[str, Any] = {"method": method, "seed": seed, "test_size": test_size}
    if method == "time":
        if not time:
            raise StageError("split", "method=time needs a datetime column, and the schema has none",
                             "add a column with type: datetime to the schema, or use -p split=stratified")
        order = pd.to_datetime(frame[time], format="mixed").sort_values(kind="stable").index
        cut = len(frame) - round(len(frame) * test_size)
        tr, te = frame.loc[order[:cut]], frame.loc[order[cut:]]
        info["time_column"] = time
        info["cutoff"] = str(te[time].min()) if len(te) else None
    elif method in ("stratified", "random"):
        if round(len(frame) * test_size) == 0 or round(len(frame) * (1 - test_size)) == 0:
            side = "test" if round(len(frame) * test_size) == 0 else "train"
            raise StageError("split", f"test_size={test_size} of {len(frame)} rows leaves the {side} split empty",
                             f"{'raise' if side == 'test' else 'lower'} test_size, or use more data")
        try:
            tr, te = train_test_split(frame, test_size=test_size, random_state=seed,
                                      stratify=frame[label] if method == "stratified" else None)
        except ValueError as e:
            raise StageError("split", f"cannot split {len(frame)} rows {method}ly: {e}",
                             "use more data, raise test_size, or -p split=random") from e
    else:
        raise StageError("split", f"unknown split method '{method}'", "use stratified, random or time")
    for name, part, other in (("train", tr, te), ("test", te, tr)):
        if part.empty:
            raise StageError("split", f"the {name} split is empty ({len(other)} rows went to the other one)",
                             "change test_size (0 < test_size < 1 leaving rows on both sides), or use more data")
        if part[label].nunique() < 2:
            raise StageError("split", f"the {name} split holds one class only ({part[label].iloc[0]})",
                             "use -p split=stratified, change test_size, or use more data")
    info.update(rows_train=len(tr), rows_test=len(te),
                classes_train={str(k): int(v) for k, v in tr[label].value_counts().sort_index().items()},
                classes_test={str(k): int(v) for k, v in te[label].value_counts().sort_index().items()})
    for folder, part in ((train, tr), (test, te)):
        part.to_csv(folder / "data.csv", index=False)
        (folder / "columns.json").write_text((data / "columns.json").read_text())
        (folder / "split.json").write_text(json.dumps(info, indent=2))
    print(f"split ({method}, seed {seed}): {len(tr)} train rows, {len(te)} test rows")


# -- features -------------------------------------------------------------------------------------
def features(train: Path, transformer: Path) -> None:
    """Fit a ColumnTransformer on ``train`` only (impute + scale numbers, impute + one-hot categories).

    Saves ``transformer.pkl`` and ``features.json`` (input columns and the output feature names).

    Example:
        >>> import tempfile, pandas as pd
        >>> d = Path(tempfile.mkdtemp()); tr, out = d / "tr", d / "out"; tr.mkdir(); out.mkdir()
        >>> pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"], "y": [0, 1]}).to_csv(tr / "data.csv", index=False)
        >>> _ = (tr / "columns.json").write_text('{"numeric": ["a"], "categorical": ["b"], "label": "y"}')
        >>> features(tr, out)
        >>> json.loads((out / "features.json").read_text())["output"]
        ['num__a', 'cat__b_x', 'cat__b_y']
    """
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = pd.read_csv(train / "data.csv")
    roles = json.loads((train / "columns.json").read_text())
    if not roles["numeric"] and not roles["categorical"]:
        raise StageError("features", "the schema leaves no feature columns",
                         "give columns a type int, float or category in src/schema.yaml")
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categorical = Pipeline([("impute", SimpleImputer(strategy="most_frequent")),
                            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False))])
    ct = ColumnTransformer([("num", numeric, roles["numeric"]), ("cat", categorical, roles["categorical"])])
    ct.fit(frame[roles["numeric"] + roles["categorical"]])
    with open(transformer / "transformer.pkl", "wb") as fh:
        pickle.dump(ct, fh)
    (transformer / "features.json").write_text(json.dumps(
        {"numeric": roles["numeric"], "categorical": roles["categorical"],
         "output": [str(n) for n in ct.get_feature_names_out()]}, indent=2))


# -- train ----------------------------------------------------------------------------------------
def _estimator(name: str, n_estimators: int, max_depth: int, learning_rate: float, reg_c: float, seed: int) -> Any:
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    depth = max_depth or None
    if name == "random_forest":
        return RandomForestClassifier(n_estimators=n_estimators, max_depth=depth, random_state=seed, n_jobs=1)
    if name == "gradient_boosting":
        return GradientBoostingClassifier(n_estimators=n_estimators, max_depth=max_depth or 3,
                                          learning_rate=learning_rate, random_state=seed)
    if name == "logistic_regression":
        return LogisticRegression(C=reg_c, max_iter=2000)
    raise StageError("train", f"unknown estimator '{name}'",
                     "use random_forest, gradient_boosting or logistic_regression")


def train(train: Path, transformer: Path, model: Path, estimator: str, n_estimators: int, max_depth: int,
          learning_rate: float, reg_c: float, seed: int) -> None:
    """Fit the estimator on the transformed train split; save transformer + estimator as one model.

    ``model/model.pkl`` is a scikit-learn Pipeline (the fitted ColumnTransformer, then the estimator)
    that takes raw rows, so the endpoint serves it as is; ``model/model.json`` records how it was made.

    Example:
        >>> import contextlib, io, tempfile
        >>> d = Path(tempfile.mkdtemp()); names = ("raw", "ok", "rep", "tr", "te", "ct", "m")
        >>> raw, ok, rep, tr, te, ct, m = (d / n for n in names)
        >>> for p in (raw, ok, rep, tr, te, ct, m): p.mkdir()
        >>> with contextlib.redirect_stdout(io.StringIO()):
        ...     ingest(raw, "", 0); _ = validate(raw, ok, rep, "target"); split(ok, tr, te, "stratified", 0.25, 1)
        ...     features(tr, ct); train(tr, ct, m, "logistic_regression", 10, 0, 0.1, 1.0, 1)
        >>> json.loads((m / "model.json").read_text())["estimator"]
        'logistic_regression'
    """
    import pandas as pd
    import sklearn
    from sklearn.pipeline import Pipeline

    frame = pd.read_csv(train / "data.csv")
    roles = json.loads((train / "columns.json").read_text())
    with open(transformer / "transformer.pkl", "rb") as fh:
        ct = pickle.load(fh)
    x = frame[roles["numeric"] + roles["categorical"]]
    clf = _estimator(estimator, n_estimators, max_depth, learning_rate, reg_c, seed)
    clf.fit(ct.transform(x), frame[roles["label"]])
    full = Pipeline([("features", ct), ("model", clf)])  # both fitted: the transformer saw train rows only
    with open(model / "model.pkl", "wb") as fh:
        pickle.dump(full, fh)
    (model / "model.json").write_text(json.dumps({
        "estimator": estimator, "hyperparameters": {"n_estimators": n_estimators, "max_depth": max_depth,
                                                    "learning_rate": learning_rate, "reg_c": reg_c, "seed": seed},
        "features": roles["numeric"] + roles["categorical"], "label": roles["label"],
        "classes": [c.item() if hasattr(c, "item") else c for c in clf.classes_],
        "sklearn": sklearn.__version__}, indent=2))
    print(f"train: {estimator} on {len(frame)} rows, {len(x.columns)} input columns")


# -- evaluate -------------------------------------------------------------------------------------
def evaluate(model: Path, test: Path, metrics: Path, report: Path, metric: str, max_regression: float,
             group: str, plots: bool = True) -> dict[str, Any]:
    """Score ``model`` on ``test``: metrics JSON, plots, and the comparison with the approved baseline.

    ``metrics`` holds every score, ``score`` (the one the gate reads, chosen by ``metric``) and
    ``baseline``: ``{status, version, score, floor, delta, message}`` where ``floor`` is the baseline's
    score minus ``max_regression`` (0 when there is no baseline). ``report`` gets the PNGs
    (confusion matrix, ROC and PR curves) and ``comparison.json``.

    Example:
        >>> import contextlib, io, tempfile
        >>> d = Path(tempfile.mkdtemp()); names = ("raw", "ok", "rep", "tr", "te", "ct", "m", "r")
        >>> raw, ok, rep, tr, te, ct, m, r = (d / n for n in names)
        >>> for p in (raw, ok, rep, tr, te, ct, m, r): p.mkdir()
        >>> with contextlib.redirect_stdout(io.StringIO()):
        ...     ingest(raw, "", 0); _ = validate(raw, ok, rep, "target"); split(ok, tr, te, "stratified", 0.25, 1)
        ...     features(tr, ct); train(tr, ct, m, "logistic_regression", 10, 0, 0.1, 1.0, 1)
        ...     out = evaluate(m, te, d / "metrics.json", r, "roc_auc", 0.01, "nothing-registered", plots=False)
        >>> out["score"] > 0.9, out["baseline"]["status"]  # no local backend around this example
        (True, 'unavailable')
    """
    import pandas as pd
    from tabular_eval import SCORES, classification_metrics, find_baseline, save_plots, score_model

    if metric not in SCORES:
        raise StageError("evaluate", f"unknown metric '{metric}'", f"use one of {', '.join(SCORES)}")
    with open(model / "model.pkl", "rb") as fh:
        clf = pickle.load(fh)
    frame = pd.read_csv(test / "data.csv")
    roles = json.loads((test / "columns.json").read_text())
    x, y = frame[roles["numeric"] + roles["categorical"]], frame[roles["label"]]
    classes = list(clf.classes_)
    proba = clf.predict_proba(x)
    scores = classification_metrics(y, proba, classes)
    baseline = _compare(find_baseline(group, report), x, y, metric, scores[metric], max_regression, score_model)
    result: dict[str, Any] = {**scores, "score": scores[metric], "metric": metric, "rows_test": len(frame),
                              "baseline": baseline}
    if plots:
        try:
            result["plots"] = save_plots(report, y.to_numpy(), proba, classes)
        except ImportError as e:
            raise StageError("evaluate", f"the plots need matplotlib ({e})",
                             "pip install 'cloudml[plot]' (or matplotlib), or run with -p plots=false") from e
    (report / "comparison.json").write_text(json.dumps(result, indent=2, default=str))
    print(f"evaluate: {metric} {scores[metric]:.4f}; baseline: {baseline['message']}")
    return result


def _compare(found: tuple[Any, str], x: Any, y: Any, metric: str, score: float, tolerance: float,
             scorer: Any) -> dict[str, Any]:
    version, message = found
    if version is None:
        status = "unavailable" if "could not be read" in message or "no local registry" in message else "none"
        return {"status": status, "version": None, "score": None, "floor": 0.0, "delta": None, "message": message}
    base: float | None = None
    how = "scored on this test split"
    try:
        with open(Path(version.uri) / "model.pkl", "rb") as fh:
            base = float(scorer(pickle.load(fh), x, y, metric))
    except Exception as e:  # a baseline with other features: fall back to what it was registered with
        recorded = (version.metrics or {}).get(metric)
        how = f"its registered {metric} (it cannot score this test split: {type(e).__name__})"
        base = None if recorded is None else float(recorded)
    if base is None:
        return {"status": "unavailable", "version": version.version, "score": None, "floor": 0.0, "delta": None,
                "message": f"{message}, but it has no {metric} to compare with"}
    floor = base - tolerance
    regressed = score < floor
    verdict = (f"REGRESSION: {metric} {score:.4f} is more than {tolerance} below v{version.version}'s {base:.4f}"
               if regressed else f"{metric} {score:.4f} vs v{version.version}'s {base:.4f} ({how})")
    return {"status": "regressed" if regressed else "ok", "version": version.version, "score": base,
            "floor": floor, "delta": score - base, "message": f"{message}: {verdict}"}
