"""Feeding models: shuffled batches from (memory-mapped) arrays, and predicting batch by batch."""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from imgclf.training.distribute import in_multi_worker_mode, predict_locally
from imgclf.training.recipe import one_hot


class ArrayBatches(keras.utils.PyDataset):
    """Shuffled batches read from (possibly memory-mapped) arrays, reshuffled every epoch.

    Reading batch by batch keeps memory flat for prepared data larger than RAM. Labels
    come out one-hot when `num_classes` is given, as class indices otherwise.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        batch_size: int,
        seed: int,
        shuffle: bool,
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.num_classes = num_classes
        self.transform = transform
        self.rng = np.random.default_rng(seed)
        self.shuffle = shuffle
        self.order = np.arange(len(labels))
        self.on_epoch_end()

    def __len__(self) -> int:
        return -(-len(self.labels) // self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        # Sorted indices read a memory map front to back; the batch's order does not matter.
        rows = np.sort(self.order[index * self.batch_size : (index + 1) * self.batch_size])
        images = self.images[rows]  # uint8: a quarter of the bytes to hand over; cast in-graph
        if self.transform is not None:
            images = self.transform(images)
        labels = self.labels[rows]
        if self.num_classes is not None:
            labels = one_hot(labels, self.num_classes)
        return images, labels

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self.order = self.rng.permutation(len(self.labels))


def feature_batches(
    features: np.ndarray, labels: np.ndarray, num_classes: int, batch_size: int, seed: int
) -> tf.data.Dataset:
    """Shuffled batches of cached features and one-hot labels, for training a head.

    The features are small and already in memory: tf.data serves them without the
    per-batch Python call of ArrayBatches, which would dominate a head's step time.
    """
    dataset = tf.data.Dataset.from_tensor_slices((features, one_hot(labels, num_classes)))
    return dataset.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True).batch(batch_size)


def inference_batch_size(image_size: int) -> int:
    """Images per forward pass at inference: large batches for small images.

    At 32-64 px a batch of 64 leaves a deep base's many small ops dominated by per-op
    overhead (256 runs about twice as fast); at 224 px 32 images already fill the
    cores and keep activation memory under a gigabyte.
    """
    return max(32, min(256, 256 * 64 * 64 // image_size**2))


def predict_in_batches(
    model: keras.Model,
    images: np.ndarray,
    batch_size: int,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """model.predict over images read batch by batch (memory-mapped data stays on disk).

    `transform` (random augmentation) runs on each batch outside the model's graph, so
    every call reuses one traced model. Under multi-worker training each worker
    predicts everything itself: the results are the same on all of them.
    """
    labels = np.zeros(len(images), dtype=np.int32)  # predict() reads only the images
    batches = ArrayBatches(images, labels, batch_size, seed=0, shuffle=False, transform=transform)
    if in_multi_worker_mode(model.distribute_strategy):
        return predict_locally(model, batches)
    return model.predict(batches, verbose=0)
