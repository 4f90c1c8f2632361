"""The temperature layer of an exported model: wrapping a model in it, finding the one inside.

Calibration (evaluation/calibration.py) chooses the temperature; this is only the
layer, so that whatever explains a served model (explain/gradcam.py) can reach the
uncalibrated model inside without importing the evaluation.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import layers

EPSILON = 1e-7  # probabilities are clipped away from 0 before the log


def _log(probabilities: object) -> object:
    """Log-probabilities as the calibrated model computes them (clipped away from 0)."""
    return keras.ops.log(keras.ops.clip(probabilities, EPSILON, 1.0))


def with_temperature(model: keras.Model, temperature: float) -> keras.Model:
    """The same model with its output probabilities temperature-scaled."""
    inputs = keras.Input(model.input_shape[1:], name="pixels")
    scaled = layers.Rescaling(1.0 / temperature, name="temperature")(_log(model(inputs)))
    outputs = layers.Softmax(name="calibrated_probabilities")(scaled)
    return keras.Model(inputs, outputs, name=f"{model.name}_calibrated")


def unwrap(model: keras.Model) -> tuple[keras.Model, Callable]:
    """The uncalibrated model inside `model`, and the step from its output to `model`'s.

    For a model made by `with_temperature`, the step is the wrapper's own layers (the
    same operations the served model runs); for any other model it is the identity.
    """
    if not any(layer.name == "temperature" for layer in model.layers):
        return model, lambda probabilities: probabilities
    inner = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    scale, softmax = model.get_layer("temperature"), model.get_layer("calibrated_probabilities")
    return inner, lambda probabilities: softmax(scale(_log(probabilities)))
