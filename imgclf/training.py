"""What both trainers share: determinism, distribution, batching, fitting, evaluating, logging."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from dvclive.keras import DVCLiveCallback

from dvclive import Live
from imgclf.params import TrainParams


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

    Reading batch by batch keeps memory flat for prepared data larger than RAM.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        batch_size: int,
        seed: int,
        shuffle: bool,
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        super().__init__()
        self.images, self.labels, self.batch_size = images, labels, batch_size
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
        return images, self.labels[rows]

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self.order = self.rng.permutation(len(self.labels))


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """The Keras optimizer named by train.optimizer."""
    optimizers = {
        "adam": keras.optimizers.Adam,
        "adamw": keras.optimizers.AdamW,
        "sgd": lambda learning_rate: keras.optimizers.SGD(learning_rate, momentum=0.9),
        "rmsprop": keras.optimizers.RMSprop,
    }
    return optimizers[name](learning_rate=learning_rate)


def open_live(model_name: str) -> Live:
    """A DVCLive logger for one model; its plots are declared in the project's dvc.yaml."""
    # dvcyaml=None: DVCLive must not rewrite the project's dvc.yaml.
    return Live(f"dvclive/{model_name}", dvcyaml=None, save_dvc_exp=False, report=None)


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
    epochs: int | None = None,
) -> FitResult:
    """model.fit with early stopping (best weights restored) and DVCLive per-epoch logging."""
    callbacks: list[keras.callbacks.Callback] = [DVCLiveCallback(live=live)]
    if train.early_stopping_patience > 0:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss",
                patience=train.early_stopping_patience,
                restore_best_weights=True,
            )
        )
    started = time.perf_counter()
    history = model.fit(
        train_data,
        validation_data=val_data,
        epochs=epochs or train.epochs,
        callbacks=callbacks,
        # A progress bar on a terminal, one line per epoch in logs and CI.
        verbose=1 if sys.stdout.isatty() else 2,
    )
    seconds = time.perf_counter() - started
    epochs_trained = len(history.history["loss"])
    return FitResult(epochs_trained, seconds, epochs_trained * images_per_epoch)


def classification_metrics(
    probabilities: np.ndarray, labels: np.ndarray, class_names: list[str], prefix: str
) -> dict:
    """Accuracy, loss, macro F1 and per-class precision/recall/F1 from predicted probabilities."""
    predicted = probabilities.argmax(axis=1)
    confusion = np.zeros((len(class_names), len(class_names)), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    true_positives = np.diag(confusion).astype(np.float64)
    precision = np.divide(
        true_positives,
        confusion.sum(0),
        out=np.zeros_like(true_positives),
        where=confusion.sum(0) > 0,
    )
    recall = np.divide(
        true_positives,
        confusion.sum(1),
        out=np.zeros_like(true_positives),
        where=confusion.sum(1) > 0,
    )
    f1 = np.divide(
        2 * precision * recall,
        precision + recall,
        out=np.zeros_like(precision),
        where=precision + recall > 0,
    )
    picked = probabilities[np.arange(len(labels)), labels]
    loss = float(-np.log(np.clip(picked, 1e-7, 1.0)).mean())
    return {
        f"{prefix}_accuracy": float((predicted == labels).mean()),
        f"{prefix}_loss": loss,
        f"{prefix}_macro_f1": float(f1.mean()),
        f"{prefix}_per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f)}
            for name, p, r, f in zip(class_names, precision, recall, f1, strict=True)
        },
    }


def log_confusion(
    live: Live, labels: np.ndarray, probabilities: np.ndarray, class_names: list[str]
) -> None:
    """Write the validation confusion matrix for DVC's `confusion` template."""
    names = np.asarray(class_names)
    live.log_sklearn_plot(
        "confusion_matrix",
        names[labels],
        names[probabilities.argmax(axis=1)],
        name="confusion_matrix.json",
    )


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
