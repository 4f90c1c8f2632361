"""Temperature scaling: make a model's confidence mean what it says.

A single temperature T divides the model's log-probabilities before the softmax;
T is chosen to minimise the negative log-likelihood on the validation split
(Guo et al., "On Calibration of Modern Neural Networks", 2017). It never changes
which class is predicted, only how confident the prediction is.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

BINS = 15
TEMPERATURES = np.geomspace(0.05, 20.0, 2001)  # a fine grid: the fit is deterministic
EPSILON = 1e-7


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities after dividing the log-probabilities by `temperature`."""
    logits = np.log(np.clip(probabilities, EPSILON, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean cross-entropy of the true labels."""
    picked = probabilities[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(picked, EPSILON, 1.0)).mean())


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of `labels`."""
    losses = [
        negative_log_likelihood(apply_temperature(probabilities, t), labels) for t in TEMPERATURES
    ]
    return float(TEMPERATURES[int(np.argmin(losses))])


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


def with_temperature(model: keras.Model, temperature: float) -> keras.Model:
    """The same model with its output probabilities temperature-scaled."""
    inputs = keras.Input(model.input_shape[1:], name="pixels")
    log_probabilities = keras.ops.log(keras.ops.clip(model(inputs), EPSILON, 1.0))
    scaled = layers.Rescaling(1.0 / temperature, name="temperature")(log_probabilities)
    outputs = layers.Softmax(name="calibrated_probabilities")(scaled)
    return keras.Model(inputs, outputs, name=f"{model.name}_calibrated")
