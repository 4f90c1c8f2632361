"""imgclf.evaluation: the metrics every stage reports, on cases worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from imgclf.evaluation import classification_metrics


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
