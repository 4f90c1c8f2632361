"""Run the frozen ResNet50 base once per image (and per augmented view), not once per epoch."""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np

from imgclf.training import ArrayBatches


def extract_features(
    extractor: keras.Model,
    images: np.ndarray,
    batch_size: int,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Pooled features for every image, read batch by batch so memory-mapped data stays on disk.

    `transform` (random augmentation) runs on each batch before the base, outside the
    extractor's graph, so every view reuses one traced extractor.
    """
    labels = np.zeros(len(images), dtype=np.int32)  # predict() reads only the images
    batches = ArrayBatches(images, labels, batch_size, seed=0, shuffle=False, transform=transform)
    return extractor.predict(batches, verbose=0)


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
    views = [extract_features(extractor, images, batch_size)]
    if augmenter is not None:
        views += [
            extract_features(extractor, images, batch_size, augmenter)
            for _ in range(augmented_views)
        ]
    return np.concatenate(views), np.tile(labels, len(views))
