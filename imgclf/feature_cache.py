"""Run the frozen ResNet50 base once per image (and per augmented view), not once per epoch."""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from imgclf.training import one_hot, predict_in_batches


def inference_batch_size(image_size: int) -> int:
    """Images per forward pass of the frozen base: large batches for small images.

    At 32-64 px a batch of 64 leaves ResNet50's many small ops dominated by per-op
    overhead (256 runs about twice as fast); at 224 px 32 images already fill the
    cores and keep activation memory under a gigabyte.
    """
    return max(32, min(256, 256 * 64 * 64 // image_size**2))


def cached_training_set(
    extractor: keras.Model,
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    augmenter: Callable[[np.ndarray], np.ndarray] | None,
    augmented_views: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Features of the original images plus `augmented_views` augmented copies, with labels.

    With augmentation switched off (no augmenter) the copies would be identical, so
    only the originals are computed.
    """
    # Augmentation runs on each batch before the base, outside the extractor's graph,
    # so every view reuses one traced extractor.
    views = [predict_in_batches(extractor, images, batch_size)]
    if augmenter is not None:
        views += [
            predict_in_batches(extractor, images, batch_size, augmenter)
            for _ in range(augmented_views)
        ]
    return np.concatenate(views), np.tile(labels, len(views))


def feature_batches(
    features: np.ndarray, labels: np.ndarray, num_classes: int, batch_size: int, seed: int
) -> tf.data.Dataset:
    """Shuffled batches of cached features and one-hot labels, for training the head.

    The features are small and already in memory: tf.data serves them without the
    per-batch Python call of ArrayBatches, which would dominate a head's step time.
    """
    dataset = tf.data.Dataset.from_tensor_slices((features, one_hot(labels, num_classes)))
    return dataset.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
