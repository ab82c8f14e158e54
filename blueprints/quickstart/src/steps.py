"""Step functions of the quickstart blueprint; each runs through ``python -m cloudml.runtime``.

Inputs and outputs arrive as folders (a ``metrics`` output is a JSON file path).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path


def load_data(data: Path) -> None:
    """Write scikit-learn's breast-cancer dataset as CSV into ``data``."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame.to_csv(data / "data.csv", index=False)


def split(data: Path, train: Path, test: Path, test_size: float, seed: int) -> None:
    """Stratified split of ``data`` into ``train`` and ``test``; the seed is recorded with the data."""
    import pandas as pd
    from sklearn.model_selection import train_test_split

    frame = pd.read_csv(data / "data.csv")
    tr, te = train_test_split(frame, test_size=test_size, random_state=seed, stratify=frame["target"])
    tr.to_csv(train / "data.csv", index=False)
    te.to_csv(test / "data.csv", index=False)
    (train / "split.json").write_text(json.dumps({"seed": seed, "test_size": test_size, "rows": len(tr)}))


def train(train: Path, model: Path, n_estimators: int, seed: int) -> dict[str, float]:
    """Fit a random forest on ``train`` and save it to ``model``."""
    import pandas as pd
    from sklearn.ensemble import RandomForestClassifier

    frame = pd.read_csv(train / "data.csv")
    x, y = frame.drop(columns=["target"]), frame["target"]
    clf = RandomForestClassifier(n_estimators=n_estimators, random_state=seed).fit(x, y)
    with open(model / "model.pkl", "wb") as fh:
        pickle.dump(clf, fh)
    return {"train_accuracy": float(clf.score(x, y))}


def evaluate(model: Path, test: Path) -> dict[str, float]:
    """Accuracy and ROC AUC of ``model`` on ``test`` (returned, so written to the metrics output)."""
    import pandas as pd
    from sklearn.metrics import accuracy_score, roc_auc_score

    with open(model / "model.pkl", "rb") as fh:
        clf = pickle.load(fh)
    frame = pd.read_csv(test / "data.csv")
    x, y = frame.drop(columns=["target"]), frame["target"]
    return {
        "accuracy": float(accuracy_score(y, clf.predict(x))),
        "auc": float(roc_auc_score(y, clf.predict_proba(x)[:, 1])),
    }
