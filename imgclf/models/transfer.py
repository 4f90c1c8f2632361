"""What every transfer-learning family shares: a frozen pretrained base, a new head.

The model is pixels -> extractor -> head. The extractor runs the family's own
preprocessing, the frozen base and global average pooling; because the base is
frozen, its features can be computed once and cached (training/feature_cache.py)
and only the head trains on them. The saved model is still the whole
pixels-to-probabilities model, so a served model takes plain RGB pixels.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import layers

from imgclf.models.input_size import resize_to
from imgclf.models.registry import ModelFamily
from imgclf.param_groups import ParamsError, TransferParams


def build_transfer(
    family: ModelFamily,
    base: keras.Model,
    image_size: int,
    num_classes: int,
    params: TransferParams,
) -> tuple[keras.Model, keras.Model, keras.Model]:
    """(feature extractor, head, whole model) around a family's base, sharing their layers.

    The model takes pixels at the prepared `image_size`; the base's own input size may
    differ (the family's image_size), and the extractor resizes to it.
    """
    parts = family.transfer
    extractor = build_feature_extractor(base, image_size, family.preprocess, parts.extractor)
    features = extractor.output_shape[-1]
    head = build_head(features, num_classes, params.dense_units, params.dropout)
    return extractor, head, build_transfer_model(extractor, head, image_size, family.keras_name)


def build_feature_extractor(
    base: keras.Model, image_size: int, preprocess: Callable, name: str
) -> keras.Model:
    """Raw pixels to pooled features: resizing to the base's input size, the family's
    preprocessing, the frozen base, global average pooling of each of its outputs
    (concatenated when the base has several, see pooled_features)."""
    inputs = keras.Input((image_size, image_size, 3), name="pixels")
    x = preprocess(resize_to(inputs, base.input_shape[1]))
    # training=False keeps BatchNorm in inference mode even if the base is later
    # unfrozen for fine-tuning: its ImageNet statistics must not drift on small data.
    maps = base(x, training=False)
    return keras.Model(inputs, pooled_features(maps), name=name)


def pooled_features(maps):
    """The base's output maps, each averaged over its positions, side by side."""
    if not isinstance(maps, list | tuple):
        return layers.GlobalAveragePooling2D(name="gap")(maps)
    pooled = [layers.GlobalAveragePooling2D(name=f"gap{i}")(m) for i, m in enumerate(maps)]
    return layers.Concatenate(name="features")(pooled)


def build_head(
    features: int, num_classes: int, dense_units: int, dropout: float
) -> keras.Sequential:
    """The new classifier, trained on pooled features: one hidden layer, or none (0 units).

    Its standardization is fitted to the training features before the head trains
    (training/pretrained.adapt_feature_norm).
    """
    # Standardizing each feature (statistics from the training features) lets a small
    # head learn quickly whatever the base: ImageNet features are non-negative with
    # very different scales, a random base's are nearly constant.
    steps = [keras.Input((features,), name="features"), layers.Normalization(name="feature_norm")]
    if dense_units:
        steps.append(layers.Dense(dense_units, activation="relu", name="head_dense"))
    steps += [
        layers.Dropout(dropout, name="head_dropout"),
        layers.Dense(num_classes, activation="softmax", name="probabilities"),
    ]
    return keras.Sequential(steps, name="head")


def build_transfer_model(
    extractor: keras.Model, head: keras.Model, image_size: int, name: str
) -> keras.Model:
    """The full image-to-probabilities model, sharing its layers with `extractor` and `head`."""
    inputs = keras.Input((image_size, image_size, 3), name="pixels")
    outputs = head(extractor(inputs))
    return keras.Model(inputs, outputs, name=name)


class PretrainedWeightsError(ParamsError):
    """Pretrained weights were required or named but could not be loaded."""
