"""Step functions of the multi-model-ensemble blueprint; each runs through ``python -m cloudml.runtime``.

The data stages and the members' training are the tabular-classification blueprint's code, imported,
not copied (the pipeline's ``code_paths`` ships ``blueprints/tabular-classification/src`` with each step). This module adds:

- :func:`holdout`: splits the train rows into ``fit`` rows (the members train on them) and ``blend``
  rows (the ensemble is fitted on them: a stacking meta-model must not learn from rows its members saw);
- :func:`combine`: loads every member model it is given and combines them, soft ``voting`` (the
  average of the members' probabilities) or ``stacking`` (a logistic regression on the members'
  probabilities, fitted on the blend rows), into one scikit-learn estimator that serves raw rows;
- :func:`evaluate`: tabular-classification's evaluate of the ensemble, plus every member scored on the
  same test rows, so the gate can ask that the ensemble is not worse than its best member.

The members stay frozen inside the ensemble (``sklearn.frozen.FrozenEstimator``, scikit-learn >= 1.6):
fitting the ensemble never refits them. The saved model is plain scikit-learn, so the local endpoint's
built-in scikit-learn predictor loads it.

Example:
    >>> import contextlib, io, tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> names = ("raw", "ok", "rep", "tr", "te", "fit", "bl", "ct", "rf", "lr", "ens", "r")
    >>> raw, ok, rep, tr, te, fit, bl, ct, rf, lr, ens, r = (d / n for n in names)
    >>> for p in (raw, ok, rep, tr, te, fit, bl, ct, rf, lr, ens, r): p.mkdir()
    >>> with contextlib.redirect_stdout(io.StringIO()):
    ...     ingest(raw, "", 0); _ = validate(raw, ok, rep, "target"); split(ok, tr, te, 0.25, 1)
    ...     holdout(tr, fit, bl, 0.25, 1); features(fit, ct)
    ...     train(fit, ct, rf, "random_forest", n_estimators=20); train(fit, ct, lr, "logistic_regression")
    ...     blend = combine(bl, ens, "voting", "roc_auc", random_forest=rf, logistic_regression=lr)
    ...     out = evaluate(ens, te, d / "m.json", r, "roc_auc", 0.01, "nothing-registered", False,
    ...                    random_forest=rf, logistic_regression=lr)
    >>> sorted(blend["members"]), out["score"] > 0.9, sorted(out["members"])
    (['logistic_regression', 'random_forest'], True, ['best', 'floor', 'logistic_regression', 'random_forest'])
"""

from __future__ import annotations

import importlib
import json
import pickle
from pathlib import Path
from typing import Any

__all__ = ["combine", "evaluate", "features", "holdout", "ingest", "shared_code", "split", "train", "validate"]

HERE = Path(__file__).resolve().parent
BLUEPRINT = HERE.parent  # where pipeline.yaml is: relative paths start here
SHARED = "tabular-classification"
METHODS = ("voting", "stacking")


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


# -- the shared stages -----------------------------------------------------------------------------
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


def holdout(train: Path, fit: Path, blend: Path, blend_size: float, seed: int) -> None:
    """Split the train rows (stratified, seeded) into ``fit`` rows for the members and ``blend`` rows for the ensemble.

    Example:
        >>> import contextlib, io, tempfile
        >>> d = Path(tempfile.mkdtemp()); names = ("raw", "ok", "rep", "tr", "te", "fit", "bl")
        >>> raw, ok, rep, tr, te, fit, bl = (d / n for n in names)
        >>> for p in (raw, ok, rep, tr, te, fit, bl): p.mkdir()
        >>> with contextlib.redirect_stdout(io.StringIO()):
        ...     ingest(raw, "", 0); _ = validate(raw, ok, rep, "target"); split(ok, tr, te, 0.25, 1)
        ...     holdout(tr, fit, bl, 0.2, 1)
        >>> json.loads((bl / "split.json").read_text())["rows_test"]
        86
    """
    try:
        tabular_steps.split(train, fit, blend, "stratified", blend_size, seed)
    except StageError as e:  # the same checks, under this stage's name and parameter
        problem = str(e).split("] ", 1)[-1].split(" — fix: ")[0]
        raise StageError("holdout", problem.replace("test_size", "blend_size").replace("test split", "blend split"),
                         "change -p blend_size (0 < blend_size < 1), or use more data") from None


def features(train: Path, transformer: Path) -> None:
    """tabular-classification's ColumnTransformer, fitted on the ``fit`` rows only (shared by every member).

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


def train(fit: Path, transformer: Path, model: Path, estimator: str, n_estimators: int = 100, max_depth: int = 0,
          learning_rate: float = 0.1, reg_c: float = 1.0, seed: int = 42) -> None:
    """One member: tabular-classification's train (transformer + estimator, serves raw rows) on the ``fit`` rows.

    Example:
        >>> import contextlib, io, tempfile
        >>> d = Path(tempfile.mkdtemp()); names = ("raw", "ok", "rep", "tr", "te", "fit", "bl", "ct", "m")
        >>> raw, ok, rep, tr, te, fit, bl, ct, m = (d / n for n in names)
        >>> for p in (raw, ok, rep, tr, te, fit, bl, ct, m): p.mkdir()
        >>> with contextlib.redirect_stdout(io.StringIO()):
        ...     ingest(raw, "", 0); _ = validate(raw, ok, rep, "target"); split(ok, tr, te, 0.25, 1)
        ...     holdout(tr, fit, bl, 0.25, 1); features(fit, ct); train(fit, ct, m, "gradient_boosting", 10)
        >>> json.loads((m / "model.json").read_text())["estimator"]
        'gradient_boosting'
    """
    tabular_steps.train(fit, transformer, model, estimator, n_estimators, max_depth, learning_rate, reg_c, seed)


# -- the ensemble ----------------------------------------------------------------------------------
def _members(given: dict[str, Any], stage: str) -> dict[str, Any]:
    """Load the member models (name -> fitted Pipeline) from the model folders the step was given."""
    if len(given) < 2:
        raise StageError(stage, f"an ensemble needs at least two member models, got {len(given)}",
                         "give the step two or more member inputs (NAME: STEP.outputs.model)")
    loaded: dict[str, Any] = {}
    for name, folder in sorted(given.items()):
        path = Path(folder) / "model.pkl"
        if not path.is_file():
            raise StageError(stage, f"member input '{name}' has no model.pkl ({path})",
                             f"every other model input of {stage} must be a member's model output")
        with open(path, "rb") as fh:
            loaded[name] = pickle.load(fh)
    return loaded


def _rows(folder: Path) -> tuple[Any, Any, int]:
    import pandas as pd

    frame = pd.read_csv(folder / "data.csv")
    roles = json.loads((folder / "columns.json").read_text())
    return frame[roles["numeric"] + roles["categorical"]], frame[roles["label"]], len(frame)


def _scores(model: Any, x: Any, y: Any) -> dict[str, float]:
    result: dict[str, float] = tabular_eval.classification_metrics(y, model.predict_proba(x), list(model.classes_))
    return result


def combine(blend: Path, model: Path, method: str, metric: str, final_c: float = 1.0,
            **members: Any) -> dict[str, Any]:
    """Combine the member models (every input other than ``blend``) into one ensemble: ``voting`` or ``stacking``.

    ``voting`` averages the members' class probabilities (soft voting; nothing is learnt);
    ``stacking`` fits a logistic regression (``C = final_c``) on the members' probabilities of the
    ``blend`` rows. Writes ``model/model.pkl`` (a scikit-learn ``VotingClassifier`` or
    ``StackingClassifier`` over the frozen members), ``model/model.json`` and ``model/blend.json``:
    each member's and the ensemble's scores on the blend rows (for stacking the ensemble's are
    optimistic: it was fitted on them) and ``score`` (``metric`` of the ensemble), also returned.
    The step's only output is the model (on SageMaker it is a training job, whose one output is the
    model it registers), so the scores travel inside the model folder.

    Example:
        >>> import contextlib, io, tempfile
        >>> d = Path(tempfile.mkdtemp()); names = ("raw", "ok", "rep", "tr", "te", "fit", "bl", "ct", "a", "b", "e")
        >>> raw, ok, rep, tr, te, fit, bl, ct, a, b, e = (d / n for n in names)
        >>> for p in (raw, ok, rep, tr, te, fit, bl, ct, a, b, e): p.mkdir()
        >>> with contextlib.redirect_stdout(io.StringIO()):
        ...     ingest(raw, "", 0); _ = validate(raw, ok, rep, "target"); split(ok, tr, te, 0.25, 1)
        ...     holdout(tr, fit, bl, 0.25, 1); features(fit, ct)
        ...     train(fit, ct, a, "random_forest", 20); train(fit, ct, b, "logistic_regression")
        ...     out = combine(bl, e, "stacking", "f1", rf=a, lr=b)
        >>> out["method"], json.loads((e / "model.json").read_text())["members"], sorted(p.name for p in e.iterdir())
        ('stacking', ['lr', 'rf'], ['blend.json', 'model.json', 'model.pkl'])
    """
    import sklearn
    from sklearn.ensemble import StackingClassifier, VotingClassifier
    from sklearn.linear_model import LogisticRegression

    if method not in METHODS:
        raise StageError("combine", f"unknown method '{method}'", f"use -p method={' or -p method='.join(METHODS)}")
    if metric not in tabular_eval.SCORES:
        raise StageError("combine", f"unknown metric '{metric}'", f"use one of {', '.join(tabular_eval.SCORES)}")
    try:
        from sklearn.frozen import FrozenEstimator
    except ImportError:
        raise StageError("combine", f"scikit-learn {sklearn.__version__} has no FrozenEstimator (1.6 or newer)",
                         "pip install -U scikit-learn, or on a cloud give the step an image with scikit-learn "
                         ">= 1.6") from None
    loaded = _members(members, "combine")
    x, y, rows = _rows(blend)
    frozen = [(name, FrozenEstimator(m)) for name, m in loaded.items()]
    ensemble: Any
    if method == "voting":
        ensemble = VotingClassifier(frozen, voting="soft")
    else:
        ensemble = StackingClassifier(frozen, final_estimator=LogisticRegression(C=final_c, max_iter=2000),
                                      stack_method="predict_proba")
    ensemble.fit(x, y)  # frozen members are not refitted: voting learns the classes, stacking its meta-model
    with open(model / "model.pkl", "wb") as fh:
        pickle.dump(ensemble, fh)
    member_info = {}
    for name in loaded:
        info_file = Path(members[name]) / "model.json"
        member_info[name] = json.loads(info_file.read_text()) if info_file.is_file() else {}
    (model / "model.json").write_text(json.dumps({
        "ensemble": method, "members": list(loaded), "final_c": final_c if method == "stacking" else None,
        "member_models": member_info, "classes": [c.item() if hasattr(c, "item") else c for c in ensemble.classes_],
        "sklearn": sklearn.__version__}, indent=2))
    scores = {name: _scores(m, x, y) for name, m in loaded.items()}
    own = _scores(ensemble, x, y)
    print(f"combine: {method} of {', '.join(loaded)} on {rows} blend rows: {metric} "
          + ", ".join(f"{n} {s[metric]:.4f}" for n, s in scores.items()) + f" -> ensemble {own[metric]:.4f}")
    result = {**own, "score": own[metric], "metric": metric, "method": method, "rows_blend": rows,
              "members": {name: s[metric] for name, s in scores.items()}}
    (model / "blend.json").write_text(json.dumps(result, indent=2))
    return result


def evaluate(model: Path, test: Path, metrics: Path, report: Path, metric: str, max_regression: float,
             group: str, plots: bool = True, **members: Any) -> dict[str, Any]:
    """tabular-classification's evaluate of the ensemble, plus each member (every other model input) on the same rows.

    Adds ``members``: each member's ``metric`` on the test rows, ``best`` (the best member's) and
    ``floor`` (``best - max_regression``): the gate asks for ``score >= members.floor``, so an
    ensemble that is worse than its best member is not registered.

    Example:
        >>> import contextlib, io, tempfile
        >>> d = Path(tempfile.mkdtemp()); names = ("raw", "ok", "rep", "tr", "te", "fit", "bl", "ct", "a", "b", "e", "r")
        >>> raw, ok, rep, tr, te, fit, bl, ct, a, b, e, r = (d / n for n in names)
        >>> for p in (raw, ok, rep, tr, te, fit, bl, ct, a, b, e, r): p.mkdir()
        >>> with contextlib.redirect_stdout(io.StringIO()):
        ...     ingest(raw, "", 0); _ = validate(raw, ok, rep, "target"); split(ok, tr, te, 0.25, 1)
        ...     holdout(tr, fit, bl, 0.25, 1); features(fit, ct)
        ...     train(fit, ct, a, "random_forest", 20); train(fit, ct, b, "logistic_regression")
        ...     _ = combine(bl, e, "voting", "accuracy", rf=a, lr=b)
        ...     out = evaluate(e, te, d / "m.json", r, "accuracy", 0.01, "none", False, rf=a, lr=b)
        >>> out["members"]["floor"] == max(out["members"]["rf"], out["members"]["lr"]) - 0.01
        True
    """
    result: dict[str, Any] = tabular_steps.evaluate(model, test, metrics, report, metric, max_regression,
                                                    group, plots)
    x, y, _ = _rows(test)
    scores = {name: _scores(m, x, y)[metric] for name, m in _members(members, "evaluate").items()}
    best = max(scores.values())
    result["members"] = {**scores, "best": best, "floor": best - max_regression}
    (report / "comparison.json").write_text(json.dumps(result, indent=2, default=str))
    print(f"evaluate: members' {metric} " + ", ".join(f"{n} {s:.4f}" for n, s in scores.items())
          + f"; ensemble {result['score']:.4f}")
    return result
