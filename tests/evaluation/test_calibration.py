"""imgclf.evaluation.calibration: temperature scaling and expected calibration error."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from imgclf.evaluation import calibration
from imgclf.models.temperature import with_temperature


def softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def overconfident():
    """Labels drawn from softmax(logits), but a model reporting softmax(3 * logits)."""
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 1.5, (4000, 5))
    true_probabilities = softmax(logits)
    labels = np.array([rng.choice(5, p=p) for p in true_probabilities])
    return softmax(3 * logits), labels


def test_fitted_temperature_undoes_overconfidence(overconfident):
    probabilities, labels = overconfident
    assert calibration.fit_temperature(probabilities, labels) == pytest.approx(3.0, rel=0.1)


def test_scaling_lowers_ece_and_never_changes_the_prediction(overconfident):
    probabilities, labels = overconfident
    temperature = calibration.fit_temperature(probabilities, labels)
    scaled = calibration.apply_temperature(probabilities, temperature)
    before = calibration.expected_calibration_error(probabilities, labels)
    after = calibration.expected_calibration_error(scaled, labels)
    assert before > 0.1 and after < before / 3
    assert np.array_equal(scaled.argmax(1), probabilities.argmax(1))
    np.testing.assert_allclose(scaled.sum(1), 1.0, rtol=1e-6)


def test_ece_of_a_known_case():
    # Two bins: confidence 0.9 with accuracy 0.5 (4 samples), confidence 0.6 with accuracy 0.5.
    probabilities = np.array([[0.9, 0.1]] * 4 + [[0.6, 0.4]] * 4)
    labels = np.array([0, 0, 1, 1, 0, 0, 1, 1])
    assert calibration.expected_calibration_error(probabilities, labels) == pytest.approx(
        (4 * 0.4 + 4 * 0.1) / 8
    )
    rows = calibration.reliability(probabilities, labels)
    assert [r["count"] for r in rows] == [4, 4]


def test_keras_wrapper_matches_the_numpy_scaling():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))
    x = np.random.default_rng(1).normal(size=(6, 4)).astype("float32")
    wrapped = with_temperature(model, 2.5)
    expected = calibration.apply_temperature(model.predict(x, verbose=0), 2.5)
    np.testing.assert_allclose(wrapped.predict(x, verbose=0), expected, atol=1e-5)


def test_no_validation_errors_means_no_calibration():
    # Every validation image right: the likelihood would keep rising as T falls.
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 60)
    probabilities = np.where(np.eye(2)[labels] == 1, 0.8, 0.2)
    decision = calibration.decide(probabilities, labels, enabled=True)
    assert not decision.applied and decision.temperature == 1.0
    assert "only 0 of 60 validation images are misclassified" in decision.reason
    assert decision.val_ece_after == decision.val_ece_before


def test_fitted_temperature_stays_within_its_bounds():
    # 30% errors, all made with near-certainty: the best T (about 8) is above the range.
    labels = np.zeros(200, dtype=int)
    probabilities = np.tile([0.999, 0.001], (200, 1))
    probabilities[:60] = [0.001, 0.999]
    low, high = calibration.TEMPERATURE_RANGE
    assert calibration.fit_temperature(probabilities, labels) == high
    decision = calibration.decide(probabilities, labels, enabled=True)
    assert low <= decision.temperature <= high
    assert "at the bound" in decision.reason


def test_an_underconfident_model_is_sharpened_at_most_to_the_lower_bound():
    # Always right, and never more than 60% sure: the best T is far below the range.
    labels = np.zeros(200, dtype=int)
    probabilities = np.tile([0.6, 0.4], (200, 1))
    assert calibration.fit_temperature(probabilities, labels) == calibration.TEMPERATURE_RANGE[0]


def test_the_fitted_temperature_is_the_exact_minimum():
    # Every image answered [0.9, 0.1], 70% of them rightly: the calibrated confidence is
    # 0.7, so T solves 0.9^(1/T) / (0.9^(1/T) + 0.1^(1/T)) = 0.7: T = ln 9 / ln(7/3).
    probabilities = np.tile([0.9, 0.1], (1000, 1))
    labels = np.r_[np.zeros(700, dtype=int), np.ones(300, dtype=int)]
    exact = np.log(9) / np.log(7 / 3)
    assert calibration.fit_temperature(probabilities, labels) == pytest.approx(exact, abs=1e-6)


def test_a_true_class_given_no_probability_costs_a_finite_loss():
    probabilities = np.array([[1.0, 0.0], [0.5, 0.5]])
    loss = calibration.negative_log_likelihood(probabilities, np.array([1, 0]))
    floor = -np.log(calibration.EPSILON)  # not infinity
    assert loss == pytest.approx((floor - np.log(0.5)) / 2)


def test_decide_applies_a_temperature_that_helps_and_respects_the_switch(overconfident):
    probabilities, labels = overconfident
    decision = calibration.decide(probabilities, labels, enabled=True)
    assert decision.applied and decision.temperature == pytest.approx(3.0, rel=0.1)
    assert decision.val_ece_after < decision.val_ece_before
    assert decision.reason.startswith("applied: T = ")
    off = calibration.decide(probabilities, labels, enabled=False)
    assert not off.applied and "export.calibrate: false" in off.reason


def test_served_probabilities_are_scaled_only_when_the_temperature_is_applied(overconfident):
    probabilities, _ = overconfident
    kept = calibration.Decision(2.0, False, "kept: no lower ECE", 0.1, 0.1)
    assert kept.served(probabilities) is probabilities  # fitted, not applied: served as they are
    applied = calibration.Decision(2.0, True, "applied", 0.1, 0.05)
    np.testing.assert_allclose(
        applied.served(probabilities), calibration.apply_temperature(probabilities, 2.0)
    )
