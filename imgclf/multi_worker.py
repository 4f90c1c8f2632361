"""Training under tf.distribute.MultiWorkerMirroredStrategy with Keras 3's model.fit.

Keras 3.15's fit() does not run under MultiWorkerMirroredStrategy as it ships
(keras-team/keras#20585, open): it averages the first batch across workers to
build the model (uint8 images cannot be averaged, and the values are per-worker
structures), and averages each scalar metric along an axis it does not have.
`adapt_keras` mends both for one model, narrowly: the build uses this worker's
own first batch, and scalar metrics are averaged across workers (so every worker
logs the same values and early stopping stops them all at the same epoch).

Only the chief writes a stage's declared outputs (see `WorkerRole`): the other
workers train alongside it, write their copies into a temporary directory and
remove it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras.src.backend.tensorflow import trainer as tf_trainer


def in_multi_worker_mode(strategy: tf.distribute.Strategy) -> bool:
    """True under MultiWorkerMirroredStrategy with more than one worker."""
    return (
        isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        and strategy.extended._in_multi_worker_mode()
    )


@dataclass(frozen=True)
class WorkerRole:
    index: int  # this worker's task index
    workers: int

    @property
    def is_chief(self) -> bool:
        return self.index == 0

    def bystander_note(self, stage: str, done: str) -> str:
        """The one line a worker other than the chief prints at the end of a stage."""
        return (
            f"{stage}: worker {self.index} of {self.workers} trained with the chief ({done}); "
            "the chief writes the outputs, this worker wrote none"
        )


def worker_role() -> WorkerRole:
    """This process's place in the TF_CONFIG cluster (a lone process is the chief)."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    cluster, task = config.get("cluster", {}), config.get("task", {})
    workers = len(cluster.get("chief", [])) + len(cluster.get("worker", []))
    if not workers:
        return WorkerRole(0, 1)
    chiefs = len(cluster.get("chief", []))
    index = task.get("index", 0) + (chiefs if task.get("type") == "worker" else 0)
    return WorkerRole(index, workers)


@contextlib.contextmanager
def output_root(role: WorkerRole) -> Iterator[Path]:
    """Where a stage writes its outputs: the project for the chief, a removed temp dir otherwise."""
    if role.is_chief:
        yield Path(".")
        return
    scratch = Path(tempfile.mkdtemp(prefix=f"imgclf-worker{role.index}-"))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# Keras' own, kept before adapt_keras replaces it in the trainer module.
_keras_reduce_per_replica = tf_trainer.reduce_per_replica


def _average_scalars_across_workers(values, strategy, reduction):
    if in_multi_worker_mode(strategy) and reduction in ("auto", "mean"):
        return tf.nest.map_structure(
            lambda v: strategy.reduce("MEAN", v, axis=None if v.shape.rank == 0 else 0), values
        )
    return _keras_reduce_per_replica(values, strategy, reduction)


def adapt_keras(model: keras.Model) -> None:
    """Let `model.fit` run under MultiWorkerMirroredStrategy (see the module docstring)."""
    tf_trainer.reduce_per_replica = _average_scalars_across_workers

    def build_on_own_batch(iterator=None, data_batch=None) -> None:
        strategy = model.distribute_strategy
        if iterator is not None:
            for _, _, batches in iterator:
                first = next(batches)
                data_batch = tf.nest.map_structure(
                    lambda v: (
                        strategy.experimental_local_results(v)[0]
                        if isinstance(v, tf.distribute.DistributedValues)
                        else v
                    ),
                    first,
                )
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = build_on_own_batch


def sharded_batches(batches: keras.utils.PyDataset) -> tf.data.Dataset:
    """The same global batches as `batches`, as a tf.data pipeline the strategy shards.

    Every worker reads the same seeded sequence of global batches (train.batch_size
    images each) and keeps its share of each (DATA sharding), so the global batch is
    split across the workers and shuffling stays deterministic for a given seed.
    """
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
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(len(batches)))
    return with_data_sharding(dataset)


def with_data_sharding(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` with DATA auto-sharding: each worker takes its share of each batch."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def predict_locally(model: keras.Model, batches: keras.utils.PyDataset) -> np.ndarray:
    """`model` on every batch, on this worker alone (no collectives: nothing to keep in step)."""
    call = tf.function(lambda images: model(images, training=False), reduce_retracing=True)
    return np.concatenate(
        [call(tf.cast(batches[index][0], tf.float32)).numpy() for index in range(len(batches))]
    )
