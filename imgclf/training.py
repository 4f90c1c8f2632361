"""What both trainers share: determinism, distribution, batching, fitting, evaluating, logging."""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from dvclive.keras import DVCLiveCallback
from sklearn.utils.class_weight import compute_class_weight

from dvclive import Live
from imgclf import multi_worker
from imgclf.evaluation import classification_metrics, log_confusion
from imgclf.files import write_json
from imgclf.native_memory import KeepFreedMemory
from imgclf.params import TrainParams

IMBALANCE_RATIO = 1.5  # train.class_weight auto: weigh classes above this size ratio
# train.epochs auto: enough epochs for AUTO_STEPS optimizer steps, within AUTO_EPOCHS.
AUTO_STEPS = 1000
AUTO_EPOCHS = (10, 30)
# Optimizer steps per call into TensorFlow: amortizes Keras' per-step Python work, which
# dominates small steps (the ResNet head on cached features); the updates are the same.
STEPS_PER_EXECUTION = 16


def make_deterministic(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow, and make TensorFlow's ops deterministic."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def choose_strategy(distribute: str) -> tf.distribute.Strategy:
    """The tf.distribute strategy named by train.distribute ("auto" picks one for this machine)."""
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
    schedule = learning_rate_schedule(train, learning_rate, steps_per_epoch, epochs)
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
) -> None:
    """Compile `model` with the recipe in train.*: optimizer, schedule, label smoothing.

    Labels are one-hot (see ArrayBatches and one_hot): label smoothing needs them.
    """
    # Several steps per execution cannot run under MultiWorkerMirroredStrategy in Keras 3.
    several = not multi_worker.in_multi_worker_mode(tf.distribute.get_strategy())
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


def open_live(model_name: str, root: Path = Path(".")) -> Live:
    """A DVCLive logger for one model; its plots are declared in the project's dvc.yaml.

    `root` is where the stage writes its outputs (see multi_worker.output_root).
    """
    # dvcyaml=None: DVCLive must not rewrite the project's dvc.yaml.
    return Live(str(root / "dvclive" / model_name), dvcyaml=None, save_dvc_exp=False, report=None)


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
    if multi_worker.in_multi_worker_mode(model.distribute_strategy):
        multi_worker.adapt_keras(model)
        if isinstance(train_data, keras.utils.PyDataset):
            train_data = multi_worker.sharded_batches(train_data)
        else:
            train_data = multi_worker.with_data_sharding(train_data)
    started = time.perf_counter()
    history = model.fit(
        train_data,
        validation_data=val_data,
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
    if multi_worker.in_multi_worker_mode(model.distribute_strategy):
        return multi_worker.predict_locally(model, batches)
    return model.predict(batches, verbose=0)


def write_trained_model(
    out: Path,
    model_name: str,
    model: keras.Model,
    live: Live,
    val: tuple[np.ndarray, np.ndarray],
    class_names: list[str],
    details: dict,
) -> dict:
    """A trainer's declared outputs under `out`; returns the metrics written.

    `val` is (validation labels, predicted probabilities). Writes the validation
    confusion matrix and ends the DVCLive run, saves models/<name>/model.keras, and
    writes metrics/<name>.json: validation metrics, parameter counts and `details`.
    """
    labels, probabilities = val
    log_confusion(live, labels, probabilities, class_names)
    live.end()
    model_file = out / "models" / model_name / "model.keras"
    model_file.parent.mkdir(parents=True, exist_ok=True)
    model.save(model_file)
    metrics = {
        **classification_metrics(probabilities, labels, class_names, "val"),
        **parameter_counts(model),
        **details,
    }
    write_json(out / "metrics" / f"{model_name}.json", metrics)
    return metrics


def parameter_counts(model: keras.Model) -> dict:
    """Total and trainable parameter counts."""
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return {"params_total": int(model.count_params()), "params_trainable": trainable}


def load_trained_model(model_name: str) -> keras.Model:
    """models/<name>/model.keras, or a FileNotFoundError saying which stage makes it."""
    path = f"models/{model_name}/model.keras"
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: run `dvc repro train_{model_name}` first")
    return keras.models.load_model(path)
