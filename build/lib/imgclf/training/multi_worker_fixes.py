"""Mends to Keras' private API that let `model.fit` run under MultiWorkerMirroredStrategy.

Keras 3.15's fit() does not run under MultiWorkerMirroredStrategy as it ships
(keras-team/keras#20585, open): it averages the first batch across workers to
build the model (uint8 images cannot be averaged, and the values are per-worker
structures), and averages each scalar metric along an axis it does not have.
`adapt_keras` mends both for one model, narrowly: the build uses this worker's
own first batch, and scalar metrics are averaged across workers (so every worker
logs the same values and early stopping stops them all at the same epoch).

Both reach into Keras internals (`keras.src.backend.tensorflow.trainer`,
`Model._maybe_symbolic_build`), so they are checked against the Keras versions
they were written for and refuse to run on others: a newer Keras may have fixed
the bug, or moved what they replace.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras.src.backend.tensorflow import trainer as tf_trainer

from imgclf.training.distribute import in_multi_worker_mode

WRITTEN_FOR = ("3.15.",)  # Keras versions whose internals these mends match


class UnsupportedKerasError(RuntimeError):
    """The installed Keras is not one the mends were written for."""


def check_keras_version(version: str = keras.__version__) -> None:
    """Raise UnsupportedKerasError unless `version` is one the mends were written for."""
    if not version.startswith(WRITTEN_FOR):
        raise UnsupportedKerasError(
            f"multi-worker training mends Keras {', '.join(v + 'x' for v in WRITTEN_FOR)} "
            f"internals (keras-team/keras#20585), but Keras {version} is installed: install the "
            "pinned version (constraints.txt), or check whether the bug is fixed in this one "
            "and update imgclf/training/multi_worker_fixes.py"
        )


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
    check_keras_version()
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
