"""The temperature layers of an exported model (models/served.py puts them in).

Calibration (evaluation/calibration.py) chooses the temperature; this is only the
layers, so that whatever explains a served model (explain/gradcam.py) can reach the
uncalibrated model inside without importing the evaluation.
"""

from __future__ import annotations

import keras
from keras import layers

EPSILON = 1e-7  # probabilities are clipped away from 0 before the log


def log_probabilities(probabilities: object) -> object:
    """Log-probabilities as the calibrated model computes them (clipped away from 0)."""
    return keras.ops.log(keras.ops.clip(probabilities, EPSILON, 1.0))


def calibrated(probabilities: object, temperature: float) -> object:
    """Probabilities (a symbolic tensor) temperature-scaled by the served model's layers."""
    scaled = layers.Rescaling(1.0 / temperature, name="temperature")(
        log_probabilities(probabilities)
    )
    return layers.Softmax(name="calibrated_probabilities")(scaled)


def with_temperature(model: keras.Model, temperature: float) -> keras.Model:
    """The same model with its output probabilities temperature-scaled."""
    inputs = keras.Input(model.input_shape[1:], name="pixels")
    outputs = calibrated(model(inputs), temperature)
    return keras.Model(inputs, outputs, name=f"{model.name}_calibrated")
