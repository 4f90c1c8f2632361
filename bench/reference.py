"""The reference network: the two-convolution CNN of TensorFlow's layers tutorial.

conv 5x5 32 -> max-pool -> conv 5x5 64 -> max-pool -> dense 1024 -> dropout 0.4 ->
softmax, Adam at its default learning rate, batch 64, early stopping with patience 3 on
validation loss (best weights restored), at most 15 epochs. It reads exactly the images
the project's `prepare` put in each split, decoded by the project's own decoder, and
is fed as the project's trainers are: tf.data pipelines without autotuning
(imgclf.training.batches.without_autotuning), so neither side loses time to tf.data's stalls
between epochs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from imgclf.data.prepared import read_split
from imgclf.images import load_image
from imgclf.training.batches import array_batches, without_autotuning


@dataclass(frozen=True)
class ReferenceResult:
    train_seconds: float
    epochs: int
    test_labels: np.ndarray
    test_predictions: np.ndarray


def build_reference(image_size: int, num_classes: int) -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((image_size, image_size, 3)),
            layers.Rescaling(1.0 / 255),
            layers.Conv2D(32, 5, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 5, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(1024, activation="relu"),
            layers.Dropout(0.4),
            layers.Dense(num_classes, activation="softmax"),
        ],
        name="tutorial_reference",
    )


def _split(project: Path, split: str, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    prepared = read_split(split, project / "prepared")
    images = np.stack([load_image(project / "data" / f, image_size) for f in prepared.files])
    return images.astype(np.float32), prepared.labels


def train_reference(project: Path, image_size: int, num_classes: int) -> ReferenceResult:
    """Train on `project`'s prepared train/val files at `image_size` and predict its test files."""
    keras.utils.set_random_seed(42)
    train, val, test = (_split(project, s, image_size) for s in ("train", "val", "test"))
    model = build_reference(image_size, num_classes)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping(patience=3, restore_best_weights=True)
    started = time.perf_counter()
    # Reshuffled every epoch, as model.fit(x, y) does by default.
    shuffled = tf.data.Dataset.from_tensor_slices(train).shuffle(len(train[1]), seed=42)
    history = model.fit(
        without_autotuning(shuffled.batch(64)), epochs=15,
        validation_data=without_autotuning(array_batches(*val, 64)),
        callbacks=[stop], verbose=0,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    predictions = model.predict(test[0], batch_size=256, verbose=0).argmax(axis=1)
    return ReferenceResult(seconds, len(history.history["loss"]), test[1], predictions)


def main() -> None:
    """python -m bench.reference PROJECT IMAGE_SIZE RESULT_JSON (run by bench_quality)."""
    import json
    import sys

    from sklearn.metrics import accuracy_score, f1_score, recall_score

    from imgclf.stage_files import PreparedInfo

    project, image_size, out = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    class_names = PreparedInfo.load(project / "prepared").class_names
    result = train_reference(project, image_size, len(class_names))
    every = list(range(len(class_names)))
    labels, predicted = result.test_labels, result.test_predictions
    recall = recall_score(labels, predicted, labels=every, average=None, zero_division=0)
    summary = {
        "image_size": image_size,
        "train_seconds": result.train_seconds,
        "epochs": result.epochs,
        "test_accuracy": float(accuracy_score(labels, predicted)),
        "test_macro_f1": float(
            f1_score(labels, predicted, labels=every, average="macro", zero_division=0)
        ),
        "test_recall": dict(zip(class_names, map(float, recall), strict=True)),
    }
    out.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
