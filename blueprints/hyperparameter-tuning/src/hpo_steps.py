"""Step functions of the hyperparameter-tuning blueprint; each runs through ``python -m cloudml.runtime``.

The data stages are the tabular-classification blueprint's code, imported, not copied
(the pipeline's ``code_paths`` ships ``blueprints/tabular-classification/src`` with each step): ingest, validate, split,
features and evaluate are that blueprint's functions, with paths relative to *this* blueprint.
This module adds what tuning needs:

- :func:`holdout`: splits the train rows again into ``fit`` rows (trials train on them) and
  ``valid`` rows (trials are scored on them), so the test split stays unseen until ``evaluate``;
- :func:`fit_trial`: one trial: trains the estimator with the trial's hyperparameters and returns the
  validation scores the tuning objective reads (``metrics.score``).

Example:
    >>> import contextlib, io, tempfile
    >>> d = Path(tempfile.mkdtemp()); names = ("raw", "ok", "rep", "tr", "te", "fit", "val", "ct", "m")
    >>> raw, ok, rep, tr, te, fit, val, ct, m = (d / n for n in names)
    >>> for p in (raw, ok, rep, tr, te, fit, val, ct, m): p.mkdir()
    >>> with contextlib.redirect_stdout(io.StringIO()):
    ...     ingest(raw, "", 0); _ = validate(raw, ok, rep, "target"); split(ok, tr, te, 0.25, 1)
    ...     holdout(tr, fit, val, 0.25, 1); features(fit, ct)
    ...     out = fit_trial(fit, val, ct, m, "random_forest", 20, 4, 0.1, 1.0, "roc_auc", 1)
    >>> out["score"] == out["roc_auc"] > 0.9, out["rows_valid"]
    (True, 107)
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
import time
from pathlib import Path
from typing import Any

__all__ = ["evaluate", "features", "fit_trial", "holdout", "ingest", "shared_code", "split", "validate"]

HERE = Path(__file__).resolve().parent
BLUEPRINT = HERE.parent  # where pipeline.yaml is: relative paths start here
SHARED = "tabular-classification"


def shared_code() -> Path:
    """The folder of tabular-classification's step code, whose modules this one imports.

    In a pipeline step it is on ``sys.path`` already: the pipeline's ``code_paths`` lists it, after this
    ``src/`` (every backend ships it with the step), so ``tabular_*.py`` copied here win. Imported anywhere
    else (doctests, a notebook), it is looked up next to this blueprint, then in the installed cloudml.

    Example:
        >>> (shared_code() / "tabular_steps.py").is_file()
        True
    """
    import importlib.util

    found = importlib.util.find_spec("tabular_steps")
    if found is not None and found.origin:
        return Path(found.origin).resolve().parent
    from cloudml.blueprints import shared_code as find

    return find(SHARED, HERE, "tabular_steps.py")


_SHARED_DIR = shared_code()
tabular_steps: Any = importlib.import_module("tabular_steps")
tabular_eval: Any = importlib.import_module("tabular_eval")
StageError: type[Exception] = tabular_steps.StageError


def _here(path: str, base: Path) -> str:
    """A relative local path, made absolute against ``base``; URIs and absolute paths as they are."""
    if not path or "://" in path or Path(path).is_absolute():
        return path
    return str((base / path).absolute())


def ingest(data: Path, input_uri: str, max_rows: int = 0) -> None:
    """tabular-classification's ingest; a relative ``input_uri`` starts at this blueprint's folder.

    Example:
        >>> import contextlib, io, tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> with contextlib.redirect_stdout(io.StringIO()):
        ...     ingest(d, "sklearn://breast_cancer", 50)
        >>> json.loads((d / "source.json").read_text())["rows"]
        50
    """
    tabular_steps.ingest(data, _here(input_uri, BLUEPRINT), max_rows)


def validate(data: Path, valid: Path, report: Path, label: str, schema: str = "schema.yaml") -> dict[str, Any]:
    """tabular-classification's data checks against ``schema``: a file in this ``src/``, else the shared one.

    Example:
        >>> import contextlib, io, tempfile
        >>> d = Path(tempfile.mkdtemp()); raw, ok, rep = d / "raw", d / "ok", d / "rep"
        >>> for p in (raw, ok, rep): p.mkdir()
        >>> with contextlib.redirect_stdout(io.StringIO()):
        ...     ingest(raw, "", 0); result = validate(raw, ok, rep, "target")
        >>> result["passed"]
        True
    """
    own = _here(schema, HERE)
    located = own if not schema or Path(own).is_file() or Path(schema).is_absolute() else _here(schema, _SHARED_DIR)
    result: dict[str, Any] = tabular_steps.validate(data, valid, report, label, located)
    return result


def split(data: Path, train: Path, test: Path, test_size: float, seed: int) -> None:
    """tabular-classification's split, stratified and seeded: ``test`` rows stay unseen until evaluate.

    Example:
        >>> import contextlib, io, tempfile
        >>> d = Path(tempfile.mkdtemp()); raw, ok, rep, tr, te = (d / n for n in ("raw", "ok", "rep", "tr", "te"))
        >>> for p in (raw, ok, rep, tr, te): p.mkdir()
        >>> with contextlib.redirect_stdout(io.StringIO()):
        ...     ingest(raw, "", 0); _ = validate(raw, ok, rep, "target"); split(ok, tr, te, 0.25, 1)
        >>> json.loads((te / "split.json").read_text())["rows_test"]
        143
    """
    tabular_steps.split(data, train, test, "stratified", test_size, seed)


def holdout(train: Path, fit: Path, valid: Path, valid_size: float, seed: int) -> None:
    """Split the train rows (stratified, seeded) into ``fit`` rows and ``valid`` rows the trials are scored on.

    Example:
        >>> import contextlib, io, tempfile
        >>> d = Path(tempfile.mkdtemp()); names = ("raw", "ok", "rep", "tr", "te", "fit", "val")
        >>> raw, ok, rep, tr, te, fit, val = (d / n for n in names)
        >>> for p in (raw, ok, rep, tr, te, fit, val): p.mkdir()
        >>> with contextlib.redirect_stdout(io.StringIO()):
        ...     ingest(raw, "", 0); _ = validate(raw, ok, rep, "target"); split(ok, tr, te, 0.25, 1)
        ...     holdout(tr, fit, val, 0.2, 1)
        >>> json.loads((val / "split.json").read_text())["rows_test"]
        86
    """
    try:
        tabular_steps.split(train, fit, valid, "stratified", valid_size, seed)
    except StageError as e:  # the same checks, under this stage's name and parameter
        problem = str(e).split("] ", 1)[-1].split(" — fix: ")[0]
        raise StageError("holdout", problem.replace("test_size", "valid_size").replace("test split", "valid split"),
                         "change -p valid_size (0 < valid_size < 1), or use more data") from None


def features(train: Path, transformer: Path) -> None:
    """tabular-classification's ColumnTransformer, fitted on the ``fit`` rows only.

    Example:
        >>> import tempfile, pandas as pd
        >>> d = Path(tempfile.mkdtemp()); tr, out = d / "tr", d / "out"; tr.mkdir(); out.mkdir()
        >>> pd.DataFrame({"a": [1.0, 2.0], "y": [0, 1]}).to_csv(tr / "data.csv", index=False)
        >>> _ = (tr / "columns.json").write_text('{"numeric": ["a"], "categorical": [], "label": "y"}')
        >>> features(tr, out)
        >>> json.loads((out / "features.json").read_text())["output"]
        ['num__a']
    """
    tabular_steps.features(train, transformer)


def fit_trial(fit: Path, valid: Path, transformer: Path, model: Path, estimator: str, n_estimators: int,
              max_depth: int, learning_rate: float, reg_c: float, metric: str, seed: int) -> dict[str, Any]:
    """One tuning trial: train on ``fit`` with this trial's hyperparameters, score on ``valid``.

    The model is tabular-classification's (transformer + estimator in one scikit-learn Pipeline that
    serves raw rows). Returns the validation scores (the runtime writes them to the step's metrics
    output): every score and ``score`` (the one ``metric`` names; the tuning objective is
    ``metrics.score``). cloudml records the trial's hyperparameters as the step's params;
    ``model/trial.json`` records when and in which process the trial ran.

    Example:
        >>> import contextlib, io, tempfile
        >>> d = Path(tempfile.mkdtemp()); names = ("raw", "ok", "rep", "tr", "te", "fit", "val", "ct", "m")
        >>> raw, ok, rep, tr, te, fit, val, ct, m = (d / n for n in names)
        >>> for p in (raw, ok, rep, tr, te, fit, val, ct, m): p.mkdir()
        >>> with contextlib.redirect_stdout(io.StringIO()):
        ...     ingest(raw, "", 0); _ = validate(raw, ok, rep, "target"); split(ok, tr, te, 0.25, 1)
        ...     holdout(tr, fit, val, 0.25, 1); features(fit, ct)
        ...     out = fit_trial(fit, val, ct, m, "logistic_regression", 10, 0, 0.1, 1.0, "f1", 1)
        >>> out["metric"], out["score"] == out["f1"], sorted(p.name for p in m.iterdir())
        ('f1', True, ['model.json', 'model.pkl', 'trial.json'])
    """
    import pandas as pd

    if metric not in tabular_eval.SCORES:
        raise StageError("tune", f"unknown metric '{metric}'", f"use one of {', '.join(tabular_eval.SCORES)}")
    started = time.time()
    tabular_steps.train(fit, transformer, model, estimator, n_estimators, max_depth, learning_rate, reg_c, seed)
    with open(model / "model.pkl", "rb") as fh:
        clf = pickle.load(fh)
    frame = pd.read_csv(valid / "data.csv")
    roles = json.loads((valid / "columns.json").read_text())
    x, y = frame[roles["numeric"] + roles["categorical"]], frame[roles["label"]]
    scores: dict[str, float] = tabular_eval.classification_metrics(y, clf.predict_proba(x), list(clf.classes_))
    (model / "trial.json").write_text(json.dumps({"started": started, "finished": time.time(), "pid": os.getpid()}))
    print(f"trial: {estimator} n_estimators={n_estimators} max_depth={max_depth} learning_rate={learning_rate:.4g} "
          f"reg_c={reg_c:.4g} -> validation {metric} {scores[metric]:.4f}")
    return {**scores, "score": scores[metric], "metric": metric, "rows_valid": len(frame), "estimator": estimator}


def evaluate(model: Path, test: Path, metrics: Path, report: Path, metric: str, max_regression: float,
             group: str, plots: bool = True) -> dict[str, Any]:
    """tabular-classification's evaluate: test scores, plots and the comparison with the approved model.

    Example:
        >>> import contextlib, io, tempfile
        >>> d = Path(tempfile.mkdtemp()); names = ("raw", "ok", "rep", "tr", "te", "fit", "val", "ct", "m", "r")
        >>> raw, ok, rep, tr, te, fit, val, ct, m, r = (d / n for n in names)
        >>> for p in (raw, ok, rep, tr, te, fit, val, ct, m, r): p.mkdir()
        >>> with contextlib.redirect_stdout(io.StringIO()):
        ...     ingest(raw, "", 0); _ = validate(raw, ok, rep, "target"); split(ok, tr, te, 0.25, 1)
        ...     holdout(tr, fit, val, 0.25, 1); features(fit, ct)
        ...     _ = fit_trial(fit, val, ct, m, "logistic_regression", 10, 0, 0.1, 1.0, "roc_auc", 1)
        ...     out = evaluate(m, te, d / "metrics.json", r, "roc_auc", 0.01, "nothing-registered", plots=False)
        >>> out["score"] > 0.9, out["rows_test"]
        (True, 143)
    """
    result: dict[str, Any] = tabular_steps.evaluate(model, test, metrics, report, metric, max_regression,
                                                    group, plots)
    return result
