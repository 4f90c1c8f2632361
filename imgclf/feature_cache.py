"""Run the frozen ResNet50 base once per image (and per augmented view), not once per epoch."""

from __future__ import annotations

import keras
import numpy as np
from tqdm import tqdm


def extract_features(
    extractor: keras.Model,
    images: np.ndarray,
    batch_size: int,
    augmentation: keras.Sequential | None = None,
    description: str = "features",
) -> np.ndarray:
    """Pooled features for every image, read batch by batch so memory-mapped data stays on disk.

    With `augmentation`, each batch is first randomly augmented (training=True), giving
    one augmented view of the set per call.
    """
    batches = range(0, len(images), batch_size)
    features = []
    for start in tqdm(batches, desc=description, unit="batch", disable=None):
        batch = images[start : start + batch_size].astype("float32")
        if augmentation is not None:
            batch = augmentation(batch, training=True)
        features.append(keras.ops.convert_to_numpy(extractor(batch, training=False)))
    return np.concatenate(features) if features else np.zeros((0, extractor.output_shape[-1]))


def cached_training_set(
    extractor: keras.Model,
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    augmentation: keras.Sequential,
    augmented_views: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Features of the original images plus `augmented_views` augmented copies, with labels."""
    views = [extract_features(extractor, images, batch_size, description="features (original)")]
    for view in range(1, augmented_views + 1):
        views.append(
            extract_features(
                extractor, images, batch_size, augmentation, f"features (augmented {view})"
            )
        )
    return np.concatenate(views), np.tile(labels, len(views))
