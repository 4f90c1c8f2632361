"""model.fit as every trainer runs it: DVCLive curves, early stopping, several workers."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from dvclive.keras import DVCLiveCallback

from dvclive import Live
from imgclf import paths
from imgclf.param_groups import TrainParams
from imgclf.training import multi_worker_fixes
from imgclf.training.batches import training_pipelines
from imgclf.training.distribute import in_multi_worker_mode, with_data_sharding
from imgclf.training.malloc_tuning import KeepFreedMemory


def open_live(family: str, root: Path = Path(".")) -> Live:
    """A DVCLive logger for one family; its plots are declared in the project's dvc.yaml.

    `root` is where the stage writes its outputs (see distribute.output_root).
    """
    # dvcyaml=None: DVCLive must not rewrite the project's dvc.yaml.
    return Live(str(paths.live_dir(family, root)), dvcyaml=None, save_dvc_exp=False, report=None)


@dataclass
class FitResult:
    epochs_trained: int
    train_seconds: float
    images_seen: int


def fit(
    model: keras.Model,
    train_data: keras.utils.PyDataset | tf.data.Dataset,
    val_data: tuple[np.ndarray, np.ndarray],
    train: TrainParams,
    live: Live,
    images_per_epoch: int,
    epochs: int,
    class_weight: dict[int, float] | None = None,
) -> FitResult:
    """model.fit with DVCLive per-epoch logging and early stopping on validation accuracy.

    Early stopping (train.early_stopping_patience > 0) restores the weights of the
    epoch with the best validation accuracy, the metric `compare` selects on. Under
    the cosine schedule it watches only the second half of the run: stopping while the
    learning rate is still high would keep a model the schedule had not yet refined.
    """
    callbacks: list[keras.callbacks.Callback] = [DVCLiveCallback(live=live), KeepFreedMemory()]
    if train.early_stopping_patience > 0:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_accuracy",
                mode="max",
                patience=train.early_stopping_patience,
                restore_best_weights=True,
                start_from_epoch=epochs // 2 if train.lr_schedule == "cosine" else 0,
            )
        )
    train_data, val_batches = training_pipelines(train_data, val_data, train.batch_size)
    if in_multi_worker_mode(model.distribute_strategy):
        multi_worker_fixes.adapt_keras(model)
        train_data, val_batches = with_data_sharding(train_data), with_data_sharding(val_batches)
    started = time.perf_counter()
    history = model.fit(
        train_data,
        validation_data=val_batches,
        epochs=epochs,
        callbacks=callbacks,
        class_weight=class_weight,
        shuffle=False,  # the batches shuffle themselves (ArrayBatches, tf.data), seeded
        # A progress bar on a terminal, one line per epoch in logs and CI.
        verbose=1 if sys.stdout.isatty() else 2,
    )
    seconds = time.perf_counter() - started
    epochs_trained = len(history.history["loss"])
    return FitResult(epochs_trained, seconds, epochs_trained * images_per_epoch)
