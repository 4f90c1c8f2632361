"""Scoring predicted probabilities against true labels (scikit-learn does the counting)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
)

from dvclive import Live


def classification_metrics(
    probabilities: np.ndarray, labels: np.ndarray, class_names: list[str], prefix: str
) -> dict:
    """Accuracy, loss, macro F1 and per-class precision/recall/F1 from predicted probabilities.

    A class that is never predicted (or never present) scores 0, not NaN.
    """
    predicted = probabilities.argmax(axis=1)
    every_class = np.arange(len(class_names))
    precision, recall, f1, _ = precision_recall_fscore_support(
        labels, predicted, labels=every_class, zero_division=0
    )
    return {
        f"{prefix}_accuracy": float(accuracy_score(labels, predicted)),
        f"{prefix}_loss": float(log_loss(labels, probabilities, labels=every_class)),
        f"{prefix}_macro_f1": float(f1.mean()),
        f"{prefix}_per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f)}
            for name, p, r, f in zip(class_names, precision, recall, f1, strict=True)
        },
    }


def log_confusion(
    live: Live, labels: np.ndarray, probabilities: np.ndarray, class_names: list[str]
) -> None:
    """Write the validation confusion matrix for DVC's `confusion` template."""
    names = np.asarray(class_names)
    live.log_sklearn_plot(
        "confusion_matrix",
        names[labels],
        names[probabilities.argmax(axis=1)],
        name="confusion_matrix.json",
    )


def confident_mistakes(
    probabilities: np.ndarray, labels: np.ndarray, files: list[str], class_names: list[str],
    count: int,
) -> list[dict]:  # fmt: skip
    """The `count` wrong predictions made with the highest confidence, most confident first."""
    predicted = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    wrong = wrong[np.argsort(-confidence[wrong], kind="stable")][:count]
    return [
        {
            "row": int(i),
            "file": files[i],
            "actual": class_names[labels[i]],
            "predicted": class_names[predicted[i]],
            "confidence": float(confidence[i]),
        }
        for i in wrong
    ]


def most_confused(
    labels: np.ndarray, predicted: np.ndarray, class_names: list[str], count: int
) -> list[dict]:
    """The `count` (actual, predicted) class pairs mistaken most often, with their counts."""
    matrix = confusion_matrix(labels, predicted, labels=np.arange(len(class_names)))
    np.fill_diagonal(matrix, 0)
    pairs = sorted(
        ((int(n), a, p) for (a, p), n in np.ndenumerate(matrix) if n > 0),
        key=lambda pair: (-pair[0], pair[1], pair[2]),
    )[:count]
    return [
        {"actual": class_names[a], "predicted": class_names[p], "count": n} for n, a, p in pairs
    ]
