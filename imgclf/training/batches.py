"""Feeding models: shuffled batches from (memory-mapped) arrays, and predicting batch by batch."""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from imgclf.data.prepared import release_pages
from imgclf.training.recipe import one_hot

PREFETCH = 2  # batches made ahead of the step that takes them


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
        release_pages(self.images)  # a memory map's pages read this epoch
        if self.shuffle:
            self.order = self.rng.permutation(len(self.labels))


def without_autotuning(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` with a fixed prefetch and tf.data's autotuning off.

    With autotuning on (tf.data's default, and what Keras builds from arrays or a
    PyDataset), every iterator runs a thread that re-plans the pipeline and sleeps
    longer and longer in between; destroying the iterator waits for that thread to
    wake. Keras makes a new iterator for every epoch and every evaluation, so one epoch
    in three started with both cores idle for 1-10 s (TensorFlow 2.21): up to 40% of a
    CNN's training time (docs/benchmarks.md). These pipelines have nothing to tune: one
    generator, or slices of arrays in memory.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(PREFETCH).with_options(options)


def dataset_of(batches: keras.utils.PyDataset) -> tf.data.Dataset:
    """The batches of `batches`, in order, as a tf.data pipeline; on_epoch_end after each pass."""
    images, labels = batches[0]

    def generate():
        for index in range(len(batches)):
            yield batches[index]
        batches.on_epoch_end()

    dataset = tf.data.Dataset.from_generator(
        generate,
        output_signature=(
            tf.TensorSpec((None, *images.shape[1:]), tf.as_dtype(images.dtype)),
            tf.TensorSpec((None, *labels.shape[1:]), tf.as_dtype(labels.dtype)),
        ),
    )
    # A known length: Keras then counts the steps of an epoch instead of running dry.
    return dataset.apply(tf.data.experimental.assert_cardinality(len(batches)))


def array_batches(images: np.ndarray, labels: np.ndarray, batch_size: int) -> tf.data.Dataset:
    """In-memory arrays in order, `batch_size` at a time (validation during training)."""
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch_size)


def training_pipelines(
    train_data: keras.utils.PyDataset | tf.data.Dataset,
    val_data: tuple[np.ndarray, np.ndarray],
    batch_size: int,
) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """What fit() gives model.fit: training and validation batches, both `without_autotuning`.

    Keras would build autotuned pipelines from a PyDataset or arrays, which stall at
    the start of an epoch (see `without_autotuning`).
    """
    if isinstance(train_data, keras.utils.PyDataset):
        train_data = dataset_of(train_data)
    return without_autotuning(train_data), without_autotuning(array_batches(*val_data, batch_size))


def feature_batches(
    features: np.ndarray, labels: np.ndarray, num_classes: int, batch_size: int, seed: int
) -> ArrayBatches:
    """Shuffled batches of cached features and one-hot labels, for training a head.

    The order is shuffled, not the features: a shuffle buffer (or a tensor made of the
    array) would hold the training set twice more, gigabytes at 300,000 images.
    """
    return ArrayBatches(features, labels, batch_size, seed, shuffle=True, num_classes=num_classes)
