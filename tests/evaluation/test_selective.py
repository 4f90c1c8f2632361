"""imgclf.evaluation.selective: the risk-coverage curve and the "not sure" threshold."""

from __future__ import annotations

import numpy as np
import pytest

from imgclf.evaluation.selective import (
    MIN_COVERAGE,
    answered,
    choose_threshold,
    is_unfamiliar,
    risk_coverage,
    unfamiliar_threshold,
)


def two_class(confidences: list[float], correct: list[bool]) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities whose top class is 0 with the given confidence; labels right or wrong."""
    top = np.asarray(confidences)
    probabilities = np.stack([top, 1 - top], axis=1)
    labels = np.where(np.asarray(correct), 0, 1)
    return probabilities, labels


# Confidence falls and mistakes gather at the bottom, as a useful model's do.
PROBABILITIES, LABELS = two_class(
    [0.99, 0.97, 0.95, 0.9, 0.85, 0.8, 0.7, 0.65, 0.6, 0.55],
    [True, True, True, True, True, False, True, False, False, True],
)


def test_curve_runs_from_the_most_confident_image_to_all():
    curve = risk_coverage(PROBABILITIES, LABELS)
    assert [p["coverage"] for p in curve] == pytest.approx(np.arange(1, 11) / 10)
    assert curve[0] == {"threshold": 0.99, "coverage": 0.1, "accuracy": 1.0}
    assert curve[4]["accuracy"] == 1.0 and curve[5]["accuracy"] == pytest.approx(5 / 6)
    assert curve[-1]["accuracy"] == pytest.approx(0.7)


def test_thinned_curve_keeps_its_ends():
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(3), 1000)
    labels = rng.integers(0, 3, 1000)
    full = risk_coverage(probabilities, labels)
    thinned = risk_coverage(probabilities, labels, max_points=99)
    assert len(thinned) <= 100 and thinned[0] == full[0] and thinned[-1] == full[-1]


def test_ties_are_answered_together():
    probabilities, labels = two_class([0.9, 0.8, 0.8, 0.6], [True, True, False, True])
    curve = risk_coverage(probabilities, labels)
    assert [p["threshold"] for p in curve] == [0.9, 0.8, 0.6]
    assert curve[1] == {"threshold": 0.8, "coverage": 0.75, "accuracy": pytest.approx(2 / 3)}


def test_threshold_answers_as_many_as_reach_the_target():
    threshold = choose_threshold(PROBABILITIES, LABELS, 0.95)
    assert threshold.confidence == 0.85 and threshold.target_reached
    assert threshold.val_coverage == 0.5 and threshold.val_accuracy == 1.0
    # Lower targets answer more: 6/7 = 0.857 at 0.7.
    assert choose_threshold(PROBABILITIES, LABELS, 0.85).confidence == 0.7


def test_zero_target_answers_everything():
    threshold = choose_threshold(PROBABILITIES, LABELS, 0.0)
    assert threshold.confidence == 0.0 and threshold.val_coverage == 1.0


def test_unreachable_target_keeps_the_best_accuracy_with_enough_answered():
    probabilities, labels = two_class([0.9, 0.8, 0.7, 0.6, 0.5], [False, True, True, False, False])
    threshold = choose_threshold(probabilities, labels, 0.99)
    assert not threshold.target_reached
    assert threshold.val_coverage >= MIN_COVERAGE
    assert threshold.confidence == 0.7 and threshold.val_accuracy == pytest.approx(2 / 3)


def test_answered_measures_accuracy_and_coverage_at_a_threshold():
    assert answered(PROBABILITIES, LABELS, 0.85) == {"coverage": 0.5, "accuracy": 1.0}
    assert answered(PROBABILITIES, LABELS, 0.0) == {"coverage": 1.0, "accuracy": 0.7}
    assert answered(PROBABILITIES, LABELS, 1.0) == {"coverage": 0.0, "accuracy": 0.0}
    nothing = answered(np.zeros((0, 3)), np.zeros(0, dtype=int), 0.5)
    assert nothing == {"coverage": 0.0, "accuracy": 0.0}  # an empty split answers nothing


def test_answered_accuracy_is_the_top_class_against_each_label():
    probabilities = np.array([[0.9, 0.1, 0.0], [0.2, 0.1, 0.7], [0.1, 0.8, 0.1]])
    assert answered(probabilities, np.array([0, 2, 0]), 0.0)["accuracy"] == pytest.approx(2 / 3)
    assert answered(probabilities, np.array([0, 2, 1]), 0.75)["accuracy"] == 1.0


@pytest.mark.parametrize("share", [0.01, 0.02, 0.05, 0.2])
def test_the_unfamiliar_threshold_flags_at_most_its_share_of_validation(share):
    scores = np.random.default_rng(0).gamma(2.0, 0.5, 1000)
    threshold = unfamiliar_threshold(scores, share)
    flagged = is_unfamiliar(scores, threshold)
    assert flagged.mean() <= share
    # The lowest such threshold: the next lower validation score would flag more.
    lower = scores[scores < threshold].max()
    assert is_unfamiliar(scores, lower).mean() > share
    assert threshold in scores  # a validation score, not one between them


def test_no_threshold_flags_nothing():
    assert unfamiliar_threshold(np.array([1.0, 50.0]), 0.0) is None
    assert not is_unfamiliar(np.array([1.0, 1e9]), None).any()
    assert is_unfamiliar(9.0, None) is False
    assert is_unfamiliar(9.0, 2.0) and not is_unfamiliar(2.0, 2.0)
