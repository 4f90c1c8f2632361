"""The custom CNN, trained from scratch: four convolutional blocks, pooling, a small head.

It takes plain RGB pixels in [0, 255] at the prepared image size: the scaling to
[0, 1] is its first layer, so a served model needs nothing but the shared decoder
in front of it.
"""

from __future__ import annotations

import keras
from keras import layers

from imgclf.models.input_size import resize_to
from imgclf.models.registry import CnnParams, get

FAMILY = get("cnn")


def build_model(
    image_size: int,
    num_classes: int,
    params: CnnParams,
    *,
    input_size: int | None = None,
    sync_batch_norm: bool = False,
) -> keras.Model:
    """Four convolutional blocks, global average pooling, a dense layer with dropout, softmax.

    A block is cnn.convs_per_block 3x3 convolutions, each with BatchNormalization and
    ReLU, then 2x2 max pooling. Every block pools, even on the smallest (32 px) input:
    keeping the last block at 4x4 instead of 2x2 costs a quarter more compute and
    measured no better on Fashion-MNIST (docs/benchmarks.md). `sync_batch_norm` is for
    training on several workers: each BatchNormalization then uses the statistics of
    the global batch, so the moving statistics, and the model, are the same on all.
    The model takes pixels at the prepared `image_size` and works at `input_size`
    (default: the same), resizing inside when they differ (models/input_size.py).
    """
    inputs = keras.Input((image_size, image_size, 3), name="pixels")
    x = resize_to(inputs, input_size or image_size)
    x = layers.Rescaling(1.0 / 255, name="scale_to_unit")(x)
    for block, filters in enumerate(params.filters, start=1):
        for conv in range(1, params.convs_per_block + 1):
            name = f"{block}" if params.convs_per_block == 1 else f"{block}_{conv}"
            # No bias before BatchNormalization: its beta does the same job.
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{name}")(x)
            # momentum 0.9 (not 0.99): small datasets give few steps per epoch, and the
            # moving statistics used at inference must settle within a few epochs.
            x = layers.BatchNormalization(
                momentum=0.9, synchronized=sync_batch_norm, name=f"bn{name}"
            )(x)
            x = layers.Activation("relu", name=f"relu{name}")(x)
        x = layers.MaxPooling2D(name=f"pool{block}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(params.dense_units, activation="relu", name="dense")(x)
    x = layers.Dropout(params.dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=FAMILY.keras_name)
