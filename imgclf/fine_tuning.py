"""Fine-tuning: unfreeze the top of a pretrained base and train the whole model on pixels."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from dvclive import Live
from imgclf.arrays import PreparedSplit
from imgclf.models import build_augmentation, with_augmentation
from imgclf.params import Params
from imgclf.training import ArrayBatches, FitResult, compile_for_training, fit, one_hot


def unfreeze_top(base: keras.Model, layer_count: int) -> None:
    """Make the top `layer_count` layers of `base` trainable; BatchNormalization stays frozen."""
    base.trainable = True
    for layer in base.layers[:-layer_count]:
        layer.trainable = False
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def fine_tune(
    model: keras.Model,
    base: keras.Model,
    train_split: PreparedSplit,
    val: PreparedSplit,
    params: Params,
    strategy: tf.distribute.Strategy,
    live: Live,
    class_weight: dict[int, float] | None,
) -> FitResult:
    """Train `model` end to end for resnet.fine_tune_epochs with the top of `base` unfrozen.

    Uses resnet.fine_tune_learning_rate with the same recipe (train.*) as the head, and
    logs to the same DVCLive run, so the curves continue where head training stopped.
    """
    train, resnet = params.train, params.resnet
    num_classes = model.output_shape[-1]
    unfreeze_top(base, resnet.fine_tune_layers)
    batches = ArrayBatches(
        train_split.images, train_split.labels, train.batch_size, train.seed, shuffle=True,
        num_classes=num_classes,
    )  # fmt: skip
    with strategy.scope():
        trainer = with_augmentation(model, build_augmentation(params.augment, train.seed))
        compile_for_training(
            trainer, train, resnet.fine_tune_learning_rate, len(batches), resnet.fine_tune_epochs
        )
    val_data = (val.images.astype(np.float32), one_hot(val.labels, num_classes))
    return fit(
        trainer, batches, val_data, train, live, len(train_split.labels),
        epochs=resnet.fine_tune_epochs, class_weight=class_weight,
    )  # fmt: skip
