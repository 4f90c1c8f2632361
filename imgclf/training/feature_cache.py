"""Run a frozen base once per image (and per augmented view), not once per epoch."""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np

from imgclf.training.batches import predict_in_batches


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
