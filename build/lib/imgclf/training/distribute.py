"""Training on several devices or workers with tf.distribute.

`choose_strategy` reads train.distribute. Under MultiWorkerMirroredStrategy every
worker runs the same stage script (TF_CONFIG names the cluster and this worker):
only the chief writes the stage's declared outputs (`WorkerRole`, `output_root`),
the others write their copies into a temporary directory and remove it. The Keras
mends that let `model.fit` run under that strategy are in multi_worker_fixes.py; starting
several local workers is launcher.py.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf


def choose_strategy(distribute: str) -> tf.distribute.Strategy:
    """The tf.distribute strategy named by train.distribute ("auto" picks one for this host)."""
    if distribute == "auto":
        if "TF_CONFIG" in os.environ:
            distribute = "multi_worker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            distribute = "mirrored"
        else:
            distribute = "none"
    if distribute == "mirrored":
        return tf.distribute.MirroredStrategy()
    if distribute == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def in_multi_worker_mode(strategy: tf.distribute.Strategy) -> bool:
    """True under MultiWorkerMirroredStrategy with more than one worker."""
    return (
        isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        and strategy.extended._in_multi_worker_mode()
    )


@dataclass(frozen=True)
class WorkerRole:
    index: int  # this worker's place in the cluster (0 is the chief)
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
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    cluster = resolver.cluster_spec().as_dict()
    chiefs, workers = len(cluster.get("chief", [])), len(cluster.get("worker", []))
    if not chiefs + workers:
        return WorkerRole(0, 1)
    index = (resolver.task_id or 0) + (chiefs if resolver.task_type == "worker" else 0)
    return WorkerRole(index, chiefs + workers)


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


def with_data_sharding(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` with DATA auto-sharding: each worker takes its share of each batch."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)
