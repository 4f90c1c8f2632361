"""Fine-tuning: unfreeze the top of a pretrained base and train the whole model on pixels."""

from __future__ import annotations

import keras

from imgclf.training.fit import FitResult
from imgclf.training.scratch import fit_on_pixels
from imgclf.training.trainer import Trainer


def unfreeze_top(base: keras.Model, layer_count: int) -> None:
    """Make the top `layer_count` layers of `base` trainable; BatchNormalization stays frozen."""
    base.trainable = True
    for layer in base.layers[:-layer_count]:
        layer.trainable = False
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def fine_tune(
    trainer: Trainer,
    model: keras.Model,
    base: keras.Model,
    layer_count: int,
    epochs: int,
    learning_rate: float,
) -> FitResult:
    """Train `model` end to end for `epochs` with the top `layer_count` layers of `base` unfrozen.

    Uses `learning_rate` with the same recipe (train.*) as the head, and logs to the
    same DVCLive run, so the curves continue where head training stopped.
    """
    unfreeze_top(base, layer_count)
    return fit_on_pixels(trainer, model, learning_rate, epochs)[0]
