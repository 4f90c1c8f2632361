"""The training recipe every family shares: seeding, epochs, schedule, optimizer, loss, weights.

AdamW with decoupled weight decay, a linear warm-up then cosine decay to 0, label
smoothing, and class weights when the classes are unbalanced; `train.*` in
params.yaml sets each of them.
"""

from __future__ import annotations

import functools

import keras
import numpy as np
import tensorflow as tf
from sklearn.utils.class_weight import compute_class_weight

from imgclf.param_groups import TrainParams
from imgclf.training.distribute import in_multi_worker_mode

IMBALANCE_RATIO = 1.5  # train.class_weight auto: weigh classes above this size ratio
# train.epochs auto: enough epochs for AUTO_STEPS optimizer steps, within AUTO_EPOCHS.
AUTO_STEPS = 1000
AUTO_EPOCHS = (10, 30)
# Optimizer steps per call into TensorFlow: amortizes Keras' per-step Python work, which
# dominates small steps (a head on cached features); the updates are the same.
STEPS_PER_EXECUTION = 16


def planned_epochs(train: TrainParams, steps_per_epoch: int) -> int:
    """train.epochs, or for "auto" the epochs that give about AUTO_STEPS optimizer steps.

    A fixed epoch count under-trains small datasets (few steps per epoch) and
    over-spends on large ones; "auto" keeps the number of updates roughly constant,
    within AUTO_EPOCHS (6,000 images in batches of 64 train for 11 epochs, 2,100 for 30).
    """
    if train.epochs != "auto":
        return train.epochs
    low, high = AUTO_EPOCHS
    return min(high, max(low, -(-AUTO_STEPS // max(1, steps_per_epoch))))


def learning_rate_schedule(
    train: TrainParams, peak: float, steps_per_epoch: int, epochs: int
) -> keras.optimizers.schedules.LearningRateSchedule:
    """Linear warm-up to `peak` over train.warmup_epochs, then cosine decay to 0 (or constant).

    Step-based, so it spans exactly the `epochs` asked for; early stopping may end sooner.
    """
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
    train: TrainParams, learning_rate: float, steps_per_epoch: int, epochs: int
) -> keras.optimizers.Optimizer:
    """The Keras optimizer named by train.optimizer, with train.weight_decay and the schedule.

    `epochs` is what fit() will run (see planned_epochs): the schedule spans exactly it.
    """
    return build_optimizer(
        train, learning_rate_schedule(train, learning_rate, steps_per_epoch, epochs)
    )


def build_optimizer(
    train: TrainParams, learning_rate: float | keras.optimizers.schedules.LearningRateSchedule
) -> keras.optimizers.Optimizer:
    """The Keras optimizer named by train.optimizer, with train.weight_decay."""
    optimizers = {
        "adam": keras.optimizers.Adam,
        "adamw": keras.optimizers.AdamW,
        "sgd": functools.partial(keras.optimizers.SGD, momentum=0.9),
        "rmsprop": keras.optimizers.RMSprop,
    }
    return optimizers[train.optimizer](learning_rate=learning_rate, weight_decay=train.weight_decay)


def compile_for_training(
    model: keras.Model,
    train: TrainParams,
    learning_rate: float,
    steps_per_epoch: int,
    epochs: int,
) -> None:
    """Compile `model` with the recipe in train.*: optimizer, schedule, label smoothing.

    Labels are one-hot (see batches.ArrayBatches and one_hot): label smoothing needs them.
    """
    # Several steps per execution cannot run under MultiWorkerMirroredStrategy in Keras 3.
    several = not in_multi_worker_mode(tf.distribute.get_strategy())
    model.compile(
        optimizer=make_optimizer(train, learning_rate, steps_per_epoch, epochs),
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
