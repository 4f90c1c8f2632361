"""The two model families, built layer by layer.

Both models take plain RGB pixels in [0, 255] at the prepared image size: the
pixel scaling (CNN) and ResNet's own preprocess_input live inside the model, so
a served model needs nothing but the shared decoder in front of it. Augmentation
is put in front of a model only for fitting (see with_augmentation).
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
from keras import layers

from imgclf.params import AugmentParams, CnnParams, ResnetParams

FEATURES = 2048  # ResNet50's last block has 2048 channels
VARIANCE_FLOOR = 0.01  # of the median feature variance (see adapt_feature_norm)


def build_augmentation(augment: AugmentParams, seed: int) -> keras.Sequential:
    """Random flips, shifts, rotations and zooms as Keras layers (empty when all are off)."""
    steps: list[layers.Layer] = []
    if augment.horizontal_flip:
        steps.append(layers.RandomFlip("horizontal", seed=seed))
    if augment.translate > 0:
        steps.append(
            layers.RandomTranslation(
                augment.translate, augment.translate, fill_mode="nearest", seed=seed + 3
            )
        )
    if augment.rotation > 0:
        steps.append(layers.RandomRotation(augment.rotation, fill_mode="nearest", seed=seed + 1))
    if augment.zoom > 0:
        steps.append(layers.RandomZoom(augment.zoom, fill_mode="nearest", seed=seed + 2))
    return keras.Sequential(steps, name="augmentation")


def with_augmentation(model: keras.Model, augmentation: keras.Sequential) -> keras.Model:
    """The model to fit: augmentation in front of `model`, sharing all its layers.

    Fit this one and save `model`: the saved and exported models then hold no random
    layers at all, so nothing random can run at inference (Keras 3.15's SavedModel
    export runs random layers as if training).
    """
    if not augmentation.layers:
        return model
    return keras.Sequential([keras.Input(model.input_shape[1:]), augmentation, model])


def build_augmenter(augment: AugmentParams, seed: int) -> Callable[[np.ndarray], np.ndarray] | None:
    """A function that randomly augments a batch of uint8 images (for cached augmented views).

    None when every augmentation is switched off.
    """
    augmentation = build_augmentation(augment, seed)
    if not augmentation.layers:
        return None

    def augment_batch(images: np.ndarray) -> np.ndarray:
        augmented = keras.ops.convert_to_numpy(augmentation(images, training=True))
        # Back to 8-bit pixels, like every other batch: the model then sees one input
        # type and is traced once.
        return np.clip(np.rint(augmented), 0, 255).astype(np.uint8)

    return augment_batch


def build_cnn(
    image_size: int, num_classes: int, cnn: CnnParams, sync_batch_norm: bool = False
) -> keras.Model:
    """Four convolutional blocks, global average pooling, a dense layer with dropout, softmax.

    A block is cnn.convs_per_block 3x3 convolutions, each with BatchNormalization and
    ReLU, then 2x2 max pooling. Every block pools, even on the smallest (32 px) input:
    keeping the last block at 4x4 instead of 2x2 costs a quarter more compute and
    measured no better on Fashion-MNIST (bench_quality). `sync_batch_norm` is for
    training on several workers: each BatchNormalization then uses the statistics of
    the global batch, so the moving statistics, and the model, are the same on all.
    """
    inputs = keras.Input((image_size, image_size, 3), name="pixels")
    x = layers.Rescaling(1.0 / 255, name="scale_to_unit")(inputs)
    for block, filters in enumerate(cnn.filters, start=1):
        for conv in range(1, cnn.convs_per_block + 1):
            name = f"{block}" if cnn.convs_per_block == 1 else f"{block}_{conv}"
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
    x = layers.Dense(cnn.dense_units, activation="relu", name="dense")(x)
    x = layers.Dropout(cnn.dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="cnn")


def build_resnet_base(image_size: int) -> keras.Model:
    """ResNet50 without its ImageNet classifier; weights are loaded separately."""
    return keras.applications.ResNet50(
        include_top=False, weights=None, input_shape=(image_size, image_size, 3)
    )


def build_resnet_head(num_classes: int, resnet: ResnetParams) -> keras.Sequential:
    """The new classifier, trained on pooled ResNet features.

    Call adapt_feature_norm(head, train_features) before training.
    """
    return keras.Sequential(
        [
            keras.Input((FEATURES,), name="features"),
            # Standardizing each feature (statistics from the training features) lets a
            # small head learn quickly whatever the base: ImageNet features are
            # non-negative with very different scales, a random base's are nearly constant.
            layers.Normalization(name="feature_norm"),
            layers.Dense(resnet.dense_units, activation="relu", name="head_dense"),
            layers.Dropout(resnet.dropout, name="head_dropout"),
            layers.Dense(num_classes, activation="softmax", name="probabilities"),
        ],
        name="head",
    )


def adapt_feature_norm(head: keras.Model, features: np.ndarray) -> None:
    """Fit the head's feature standardization to the training features, with a variance floor.

    A feature that is (nearly) constant on the training set, such as a ReLU channel of
    a random base that never fires there, would otherwise be divided by ~0 and reach
    millions on a new image that does fire it: the head's logits, and its validation
    loss, then explode. Flooring each variance at VARIANCE_FLOOR of the median keeps
    such features on the scale of the others; informative features are unaffected.
    """
    norm = head.get_layer("feature_norm")
    norm.adapt(features)
    variance = keras.ops.convert_to_numpy(norm.adapt_variance)
    floor = VARIANCE_FLOOR * float(np.median(variance))
    norm.adapt_variance.assign(np.maximum(variance, floor))
    norm.finalize_state()


def build_feature_extractor(base: keras.Model, image_size: int) -> keras.Model:
    """Raw pixels to pooled features: preprocess_input, the frozen base, global average pooling."""
    inputs = keras.Input((image_size, image_size, 3), name="pixels")
    x = keras.applications.resnet50.preprocess_input(inputs)
    # training=False keeps BatchNorm in inference mode even if the base is later
    # unfrozen for fine-tuning: its ImageNet statistics must not drift on small data.
    x = base(x, training=False)
    outputs = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, outputs, name="resnet50_features")


def build_resnet(features: keras.Model, head: keras.Model, image_size: int) -> keras.Model:
    """The full image-to-probabilities model, sharing its layers with `features` and `head`."""
    inputs = keras.Input((image_size, image_size, 3), name="pixels")
    outputs = head(features(inputs))
    return keras.Model(inputs, outputs, name="resnet50_transfer")
