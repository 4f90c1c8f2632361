"""Training-time augmentation as Keras layers, kept out of every saved model.

Augmentation is put in front of a model only for fitting (`with_augmentation`),
or run on batches of pixels before a frozen base (`build_augmenter`, for cached
augmented views); the model that is saved and served holds no random layers.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
from keras import layers

from imgclf.param_groups import AugmentParams


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
