"""imgclf.evaluation.metrics: the metrics every stage reports, on cases worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from imgclf.evaluation.metrics import classification_metrics, confident_mistakes, most_confused


def test_metrics_of_a_known_case():
    # True: a a b b c; predicted: a b b b a. Class c is never predicted.
    probabilities = np.array(
        [[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.2, 0.7, 0.1], [0.1, 0.5, 0.4], [0.5, 0.2, 0.3]]
    )
    labels = np.array([0, 0, 1, 1, 2])
    metrics = classification_metrics(probabilities, labels, ["a", "b", "c"], "val")
    assert metrics["val_accuracy"] == pytest.approx(3 / 5)
    per_class = metrics["val_per_class"]
    assert per_class["a"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5})
    assert per_class["b"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8})
    assert per_class["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0}  # not NaN
    assert metrics["val_macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    expected_loss = -np.mean(np.log([0.8, 0.3, 0.7, 0.5, 0.3]))
    assert metrics["val_loss"] == pytest.approx(expected_loss)
    assert all(math.isfinite(v) for v in (metrics["val_loss"], metrics["val_macro_f1"]))


def test_a_class_absent_from_the_labels_still_gets_a_row():
    probabilities = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0]])
    metrics = classification_metrics(probabilities, np.array([0, 1]), ["a", "b", "c"], "test")
    assert set(metrics["test_per_class"]) == {"a", "b", "c"}
    assert metrics["test_accuracy"] == 1.0


def test_confident_mistakes_are_the_wrong_answers_most_sure_first():
    # True: a a b b c; predicted: a b(0.6) b b a(0.5).
    probabilities = np.array(
        [[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.2, 0.7, 0.1], [0.1, 0.5, 0.4], [0.5, 0.2, 0.3]]
    )
    labels = np.array([0, 0, 1, 1, 2])
    files = ["a/1.png", "a/2.png", "b/1.png", "b/2.png", "c/1.png"]
    mistakes = confident_mistakes(probabilities, labels, files, ["a", "b", "c"], count=5)
    assert mistakes == [
        {"row": 1, "file": "a/2.png", "actual": "a", "predicted": "b", "confidence": 0.6},
        {"row": 4, "file": "c/1.png", "actual": "c", "predicted": "a", "confidence": 0.5},
    ]
    assert len(confident_mistakes(probabilities, labels, files, ["a", "b", "c"], count=1)) == 1


def test_most_confused_counts_pairs_most_first():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    predicted = np.array([1, 1, 0, 0, 1, 1, 0, 1])
    pairs = most_confused(labels, predicted, ["a", "b", "c"], count=2)
    assert pairs == [
        {"actual": "a", "predicted": "b", "count": 2},
        {"actual": "c", "predicted": "b", "count": 2},
    ]
    assert most_confused(labels, labels, ["a", "b", "c"], count=3) == []
