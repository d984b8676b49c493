"""Optional classifier on the embeddings: scores on held-out cells only, never on the training cells."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from helical_runner.errors import DatasetError

LOG = logging.getLogger(__name__)

MIN_CELLS_PER_CLASS = 5  # below this a class cannot appear in both the training and held-out split reliably
TEST_FRACTION = 0.25
SEED = 0


def skipped(reason: str, name: str) -> dict[str, Any]:
    LOG.info("%s: classifier skipped: %s", name, reason)
    return {"status": "skipped", "reason": reason}


def classify(embeddings: np.ndarray, labels: pd.Series | None, mode: str, name: str, label_key: str | None
             ) -> dict[str, Any]:
    """Logistic regression with a stratified held-out split; accuracy, macro-F1 and per-class scores."""
    def unusable(reason: str) -> dict[str, Any]:
        if mode == "on":
            raise DatasetError(f"{name}: CLASSIFIER=on but {reason}; set LABEL_KEY to a column with >= 2 labelled "
                               f"classes of >= {MIN_CELLS_PER_CLASS} cells, or CLASSIFIER=auto|off")
        return skipped(reason, name)

    if mode == "off":
        return skipped("CLASSIFIER=off", name)
    if labels is None:
        return unusable("no label column (set LABEL_KEY)")
    values = labels.astype(object).to_numpy()
    labelled = pd.notna(values) & np.isfinite(embeddings).all(axis=1)
    classes, counts = np.unique(values[labelled].astype(str), return_counts=True)
    kept = set(classes[counts >= MIN_CELLS_PER_CLASS])
    dropped = {c: int(n) for c, n in zip(classes, counts, strict=True) if c not in kept}
    if dropped:
        LOG.info("%s: classifier leaves out classes with < %d cells: %s", name, MIN_CELLS_PER_CLASS, dropped)
    if len(kept) < 2:
        return unusable(f"{len(kept)} class(es) of '{label_key}' with >= {MIN_CELLS_PER_CLASS} cells (need 2)")
    # Only now: scikit-learn is ~0.4 s of imports a run without a usable classifier never needs.
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support
    from sklearn.model_selection import train_test_split

    use = labelled & np.isin(values.astype(str), list(kept))
    x, y = embeddings[use], values[use].astype(str)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_FRACTION, stratify=y, random_state=SEED)
    clf = LogisticRegression(max_iter=2000)
    clf.fit(x_train, y_train)
    predicted = clf.predict(x_test)
    names = sorted(kept)
    precision, recall, f1, support = precision_recall_fscore_support(y_test, predicted, labels=names, zero_division=0)
    result = {
        "status": "ok",
        "model": "LogisticRegression",
        "label_key": label_key,
        "evaluated_on": "held_out",
        "n_train": len(y_train),
        "n_test": len(y_test),
        "test_fraction": TEST_FRACTION,
        "accuracy": float(accuracy_score(y_test, predicted)),
        "macro_f1": float(f1_score(y_test, predicted, average="macro", zero_division=0)),
        "per_class": {c: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                      for c, p, r, f, s in zip(names, precision, recall, f1, support, strict=True)},
        "classes_left_out": dropped,
    }
    LOG.info("%s: classifier on %d held-out cells: accuracy %.3f, macro-F1 %.3f", name, result["n_test"],
             result["accuracy"], result["macro_f1"])
    return result
