"""Temperature scaling: make a model's confidence mean what it says.

A single temperature T divides the model's log-probabilities before the softmax;
T is chosen to minimise the negative log-likelihood on the validation split
(Guo et al., "On Calibration of Modern Neural Networks", 2017). It never changes
which class is predicted, only how confident the prediction is.

The fit needs mistakes to learn from: on a validation split the model gets (nearly)
all right, the likelihood keeps rising as T falls, and an unbounded fit would make
every confidence 1.0. So T is bounded to TEMPERATURE_RANGE and calibration is skipped
when validation has fewer than MIN_ERRORS misclassified images (see decide()).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import minimize_scalar

from imgclf.models.temperature import EPSILON

BINS = 15
TEMPERATURE_RANGE = (0.25, 4.0)  # sharpen or soften at most 4-fold
MIN_ERRORS = 10


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities after dividing the log-probabilities by `temperature`."""
    logits = np.log(np.clip(probabilities, EPSILON, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean cross-entropy of the true labels."""
    picked = probabilities[np.arange(len(labels)), labels]
    return float(-np.log(np.maximum(picked, EPSILON)).mean())


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The temperature in TEMPERATURE_RANGE that minimises the negative log-likelihood of `labels`.

    The likelihood is convex in the inverse temperature, so a bounded scalar search
    on 1/T finds the one minimum (scipy's bounded Brent method).
    """
    low, high = TEMPERATURE_RANGE

    def loss(inverse: float) -> float:
        return negative_log_likelihood(apply_temperature(probabilities, 1.0 / inverse), labels)

    found = minimize_scalar(loss, bounds=(1.0 / high, 1.0 / low), method="bounded",
                            options={"xatol": 1e-7})  # fmt: skip
    # The search never evaluates the bounds themselves: a minimum there is snapped to them.
    inverse = min((1.0 / high, float(found.x), 1.0 / low), key=loss)
    return 1.0 / inverse


def reliability(probabilities: np.ndarray, labels: np.ndarray, bins: int = BINS) -> list[dict]:
    """Per confidence bin: mean confidence, accuracy and count (empty bins left out)."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows = []
    for b in range(bins):
        members = which == b
        if members.any():
            rows.append({
                "confidence": float(confidence[members].mean()),
                "accuracy": float(correct[members].mean()),
                "count": int(members.sum()),
            })  # fmt: skip
    return rows


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = BINS
) -> float:
    """ECE: the count-weighted mean gap between confidence and accuracy over confidence bins."""
    rows = reliability(probabilities, labels, bins)
    total = sum(row["count"] for row in rows)
    return float(
        sum(row["count"] * abs(row["accuracy"] - row["confidence"]) for row in rows) / total
    )


@dataclass(frozen=True)
class Decision:
    """Whether the export is temperature-scaled, with what T, and why."""

    temperature: float  # 1.0 (no change) when no temperature was fitted
    applied: bool
    reason: str
    val_ece_before: float
    val_ece_after: float

    def as_dict(self) -> dict:
        return asdict(self)

    def served(self, probabilities: np.ndarray) -> np.ndarray:
        """What the exported model outputs for these uncalibrated probabilities."""
        return apply_temperature(probabilities, self.temperature) if self.applied else probabilities


def decide(probabilities: np.ndarray, labels: np.ndarray, enabled: bool) -> Decision:
    """Fit a temperature on validation predictions and decide whether to apply it.

    Applied only when switched on (export.calibrate), when validation has at least
    MIN_ERRORS misclassified images, and when it lowers the validation ECE.
    """
    before = expected_calibration_error(probabilities, labels)
    if not enabled:
        return Decision(1.0, False, "switched off (export.calibrate: false)", before, before)
    errors = int((probabilities.argmax(axis=1) != labels).sum())
    if errors < MIN_ERRORS:
        reason = (
            f"skipped: only {errors} of {len(labels)} validation images are misclassified, "
            f"too few to fit a temperature (at least {MIN_ERRORS} are needed)"
        )
        return Decision(1.0, False, reason, before, before)
    temperature = fit_temperature(probabilities, labels)
    after = expected_calibration_error(apply_temperature(probabilities, temperature), labels)
    low, high = TEMPERATURE_RANGE
    bound = " (at the bound of the allowed range)" if temperature in (low, high) else ""
    if after >= before:
        reason = f"not applied: T = {temperature:.3f}{bound} did not lower validation ECE"
        return Decision(temperature, False, reason, before, after)
    reason = (
        f"applied: T = {temperature:.3f}{bound} lowered validation ECE "
        f"from {before:.4f} to {after:.4f}"
    )
    return Decision(temperature, True, reason, before, after)
