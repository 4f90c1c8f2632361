"""The training recipe every family shares: seeding, epochs, schedule, optimizer, loss, weights.

AdamW with decoupled weight decay, a linear warm-up then cosine decay to 0, label
smoothing, and class weights when the classes are unbalanced; `train.*` in
params.yaml sets each of them.
"""

from __future__ import annotations

import functools
import time

import keras
import numpy as np
import tensorflow as tf
from sklearn.utils.class_weight import compute_class_weight

from imgclf.param_groups import TrainParams
from imgclf.training.distribute import in_multi_worker_mode

IMBALANCE_RATIO = 1.5  # train.class_weight auto: weigh classes above this size ratio
# train.epochs auto: the learning rate is cut by PLATEAU_FACTOR after PLATEAU_PATIENCE
# epochs without a better validation accuracy, and training stops after
# train.early_stopping_patience (AUTO_PATIENCE when that is 0) such epochs.
PLATEAU_FACTOR, PLATEAU_PATIENCE, AUTO_PATIENCE = 0.3, 2, 5
# Optimizer steps per call into TensorFlow: amortizes Keras' per-step Python work, which
# dominates small steps (a head on cached features); the updates are the same.
STEPS_PER_EXECUTION = 16


def planned_epochs(train: TrainParams, steps_per_epoch: int) -> int:
    """The epochs fit() is given: train.epochs, or for "auto" train.max_epochs, of which
    the validation curve decides how many run (auto_callbacks)."""
    return train.max_epochs if train.epochs == "auto" else train.epochs


def learning_rate_schedule(
    train: TrainParams, peak: float, steps_per_epoch: int, epochs: int, auto: bool = False
) -> keras.optimizers.schedules.LearningRateSchedule | float:
    """Linear warm-up to `peak` over train.warmup_epochs, then cosine decay to 0 (or constant).

    Step-based, so it spans exactly the `epochs` asked for; early stopping may end sooner.
    `auto` (train.epochs auto): nobody knows the end in advance, so the rate is a plain
    number that auto_callbacks warm up and cut on each plateau.
    """
    if auto:
        return peak
    warmup_steps = min(train.warmup_epochs, epochs - 1) * steps_per_epoch
    decay_steps = max(1, epochs * steps_per_epoch - warmup_steps)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup_steps else peak,
        decay_steps=decay_steps,
        alpha=0.0 if train.lr_schedule == "cosine" else 1.0,  # 1.0: no decay at all
        warmup_target=peak if warmup_steps else None,
        warmup_steps=warmup_steps,
    )


def make_optimizer(
    train: TrainParams, learning_rate: float, steps_per_epoch: int, epochs: int,
    auto: bool = False,
) -> keras.optimizers.Optimizer:  # fmt: skip
    """The Keras optimizer named by train.optimizer, with train.weight_decay and the schedule.

    `epochs` is what fit() will run (see planned_epochs): the schedule spans exactly it.
    """
    schedule = learning_rate_schedule(train, learning_rate, steps_per_epoch, epochs, auto)
    optimizers = {
        "adam": keras.optimizers.Adam,
        "adamw": keras.optimizers.AdamW,
        "sgd": functools.partial(keras.optimizers.SGD, momentum=0.9),
        "rmsprop": keras.optimizers.RMSprop,
    }
    return optimizers[train.optimizer](learning_rate=schedule, weight_decay=train.weight_decay)


def compile_for_training(
    model: keras.Model,
    train: TrainParams,
    learning_rate: float,
    steps_per_epoch: int,
    epochs: int,
    auto: bool = False,
) -> None:
    """Compile `model` with the recipe in train.*: optimizer, schedule, label smoothing
    (`auto`: the plain learning rate train.epochs auto adjusts as it goes).

    Labels are one-hot (see batches.ArrayBatches and one_hot): label smoothing needs them.
    """
    # Several steps per execution cannot run under MultiWorkerMirroredStrategy in Keras 3.
    several = not in_multi_worker_mode(tf.distribute.get_strategy())
    model.compile(
        optimizer=make_optimizer(train, learning_rate, steps_per_epoch, epochs, auto),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=train.label_smoothing),
        metrics=["accuracy"],
        steps_per_execution=STEPS_PER_EXECUTION if several else 1,
    )


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Class indices as float32 one-hot rows."""
    return np.eye(num_classes, dtype=np.float32)[labels]


def class_weights(labels: np.ndarray, num_classes: int, mode: str) -> dict[int, float] | None:
    """Per-class loss weights for train.class_weight, or None for unweighted training.

    "balanced" weighs each class by n_samples / (n_classes * its count) (scikit-learn's
    definition); "auto" does so only when the largest class has more than
    IMBALANCE_RATIO times the images of the smallest.
    """
    counts = np.bincount(labels, minlength=num_classes)
    if mode == "none" or counts.min() == 0:
        return None
    if mode == "auto" and counts.max() <= IMBALANCE_RATIO * counts.min():
        return None
    weights = compute_class_weight("balanced", classes=np.arange(num_classes), y=labels)
    return {i: float(w) for i, w in enumerate(weights)}


class WarmUp(keras.callbacks.Callback):
    """A linear warm-up of a plain learning rate to `peak` over `steps` optimizer steps."""

    def __init__(self, peak: float, steps: int) -> None:
        super().__init__()
        self.peak, self.steps, self.done = peak, steps, steps == 0

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        if self.done:
            return
        step = int(self.model.optimizer.iterations)
        self.done = step >= self.steps
        self.model.optimizer.learning_rate = self.peak * min(1.0, (step + 1) / self.steps)


class TimeBudget(keras.callbacks.Callback):
    """Stops training at the end of the first epoch past `minutes` (0: never)."""

    def __init__(self, minutes: float) -> None:
        super().__init__()
        self.minutes, self.spent = minutes, False

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.started = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.minutes and time.monotonic() - self.started >= 60 * self.minutes:
            self.spent = self.model.stop_training = True


def auto_callbacks(
    train: TrainParams, peak: float, steps_per_epoch: int
) -> list[keras.callbacks.Callback]:
    """What runs train.epochs auto: the warm-up, a cut of the learning rate on each
    validation plateau (Keras' ReduceLROnPlateau), and the time budget. Early stopping,
    which ends it, is fit()'s."""
    return [
        WarmUp(peak, train.warmup_epochs * steps_per_epoch),
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_accuracy",
            mode="max",
            factor=PLATEAU_FACTOR,
            patience=PLATEAU_PATIENCE,
            min_lr=peak / 1000,
            verbose=0,
        ),
        TimeBudget(train.max_minutes),
    ]
