"""Evaluation helpers of the tabular-classification blueprint: metrics, plots, and the registry baseline.

Regression detection: the newest *approved* version of the model group is loaded from the registry
and scored on the same test rows as the new model, so the two numbers are comparable. When it cannot
score them (its features differ), the metric it was registered with is used instead, and the report
says so. The first run has no approved version: there is nothing to compare, only the threshold applies.

Example:
    >>> import numpy as np
    >>> m = classification_metrics(np.array([0, 1, 1, 0]), np.array([[.9, .1], [.2, .8], [.4, .6], [.3, .7]]), [0, 1])
    >>> m["accuracy"], m["roc_auc"]
    (0.75, 0.75)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["classification_metrics", "find_baseline", "local_root", "save_plots", "score_model"]

SCORES = ("roc_auc", "accuracy", "f1", "precision", "recall", "average_precision")


def classification_metrics(y: Any, proba: Any, classes: list[Any]) -> dict[str, float]:
    """Accuracy, precision, recall, F1, ROC AUC and average precision (macro one-vs-rest when multiclass).

    Example:
        >>> import numpy as np
        >>> classification_metrics(np.array([0, 1]), np.array([[.8, .2], [.1, .9]]), [0, 1])["f1"]
        1.0
    """
    import numpy as np
    from sklearn.metrics import (
        accuracy_score,
        average_precision_score,
        f1_score,
        precision_score,
        recall_score,
        roc_auc_score,
    )
    from sklearn.preprocessing import label_binarize

    predicted = np.asarray(classes)[np.argmax(proba, axis=1)]
    binary = len(classes) == 2
    avg = "binary" if binary else "macro"
    pos = {"pos_label": classes[1]} if binary else {}
    onehot = label_binarize(y, classes=classes)
    out = {
        "accuracy": float(accuracy_score(y, predicted)),
        "precision": float(precision_score(y, predicted, average=avg, zero_division=0, **pos)),
        "recall": float(recall_score(y, predicted, average=avg, zero_division=0, **pos)),
        "f1": float(f1_score(y, predicted, average=avg, zero_division=0, **pos)),
    }
    if binary:
        out["roc_auc"] = float(roc_auc_score(onehot.ravel(), proba[:, 1]))
        out["average_precision"] = float(average_precision_score(onehot.ravel(), proba[:, 1]))
    else:
        out["roc_auc"] = float(roc_auc_score(y, proba, multi_class="ovr", labels=classes))
        out["average_precision"] = float(average_precision_score(onehot, proba, average="macro"))
    return out


def score_model(model: Any, x: Any, y: Any, metric: str) -> float:
    """``metric`` of a fitted classifier on ``x``/``y`` (how the baseline is scored on today's test rows).

    Example:
        >>> from sklearn.linear_model import LogisticRegression
        >>> import numpy as np
        >>> x = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([0, 0, 1, 1])
        >>> score_model(LogisticRegression().fit(x, y), x, y, "accuracy")
        1.0
    """
    classes = list(model.classes_)
    return classification_metrics(y, model.predict_proba(x), classes)[metric]


def save_plots(folder: Path, y: Any, proba: Any, classes: list[Any]) -> list[str]:
    """Write confusion_matrix.png, roc_curve.png and pr_curve.png (matplotlib, Agg); returns the file names.

    Example:
        >>> import tempfile, numpy as np
        >>> d = Path(tempfile.mkdtemp())
        >>> save_plots(d, np.array([0, 1, 1, 0]), np.array([[.9, .1], [.2, .8], [.4, .6], [.3, .7]]), [0, 1])
        ['confusion_matrix.png', 'roc_curve.png', 'pr_curve.png']
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from sklearn.metrics import ConfusionMatrixDisplay, precision_recall_curve, roc_curve
    from sklearn.preprocessing import label_binarize

    predicted = np.asarray(classes)[np.argmax(proba, axis=1)]
    onehot = label_binarize(y, classes=classes)
    if len(classes) == 2:
        onehot = np.hstack([1 - onehot, onehot])
    shown = [1] if len(classes) == 2 else range(len(classes))

    fig, ax = plt.subplots(figsize=(4.5, 4))
    ConfusionMatrixDisplay.from_predictions(y, predicted, labels=classes, ax=ax, colorbar=False)
    ax.set_title("confusion matrix (test split)")
    fig.tight_layout()
    fig.savefig(folder / "confusion_matrix.png", dpi=100)
    plt.close(fig)

    for name, curve, axes in (("roc_curve.png", roc_curve, ("false positive rate", "true positive rate")),
                              ("pr_curve.png", precision_recall_curve, ("recall", "precision"))):
        fig, ax = plt.subplots(figsize=(4.5, 4))
        for i in shown:
            a, b, _ = curve(onehot[:, i], proba[:, i])
            xs, ys = (a, b) if curve is roc_curve else (b, a)
            ax.plot(xs, ys, label=f"class {classes[i]}")
        if curve is roc_curve:
            ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
        ax.set_xlabel(axes[0])
        ax.set_ylabel(axes[1])
        ax.set_title("ROC curve (test split)" if curve is roc_curve else "precision-recall curve (test split)")
        ax.legend(loc="lower right" if curve is roc_curve else "lower left")
        fig.tight_layout()
        fig.savefig(folder / name, dpi=100)
        plt.close(fig)
    return ["confusion_matrix.png", "roc_curve.png", "pr_curve.png"]


def local_root(near: Path | None = None) -> Path | None:
    """The local backend's root folder, seen from inside a step: ``$CLOUDML_RUN_DIR/../..``.

    Steps run in-process (fast tests) get no environment of their own, so the folder is also found
    by walking up from one of the step's own output paths to the folder that holds ``meta.db``.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp()); _ = (root / "meta.db").write_bytes(b"")
        >>> out = root / "runs" / "r1" / "steps" / "evaluate" / "outputs" / "report"
        >>> local_root(out) == root.resolve() and local_root(Path("/nonexistent/x")) is None
        True
    """
    run_dir = os.environ.get("CLOUDML_RUN_DIR")
    candidates = [Path(run_dir).resolve().parents[1]] if run_dir else []
    if near is not None:
        candidates += list(Path(near).resolve().parents)
    return next((c for c in candidates if (c / "meta.db").is_file()), None)


def find_baseline(group: str, near: Path | None = None) -> tuple[Any, str]:
    """The newest approved version of ``group`` in the registry this step's backend uses, and why (not).

    Returns ``(model_version, message)``; ``model_version`` is None when there is no baseline.

    Example:
        >>> find_baseline("nothing-here", Path("/nonexistent"))[0] is None
        True
    """
    backend = os.environ.get("CLOUDML_BACKEND", "local")
    try:
        import cloudml
        from cloudml.errors import NotFoundError
    except ImportError:
        return None, "cloudml is not installed in this step's environment: no registry to compare with"
    try:
        if backend == "local":
            root = local_root(near)
            if root is None:
                return None, "no local registry found (not running under a cloudml local backend)"
            adapter = cloudml.get_adapter("local", root=str(root))
        else:
            adapter = cloudml.get_adapter(backend)
        version = adapter.latest_approved(group)
    except NotFoundError:
        return None, f"no approved model in group '{group}' yet (first run): nothing to compare, only the threshold applies"
    except Exception as e:  # a registry we cannot read must be visible, not a silent pass
        return None, f"registry of backend '{backend}' could not be read ({type(e).__name__}: {e}); not compared"
    return version, f"compared with {group} v{version.version}, the newest approved version"
