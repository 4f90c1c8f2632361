"""Benchmark the CNN's input pipeline against Keras' own pipelines for the same data.

    dvc repro prepare && python -m bench.bench_cnn_input [--epochs 10] [--rounds 2]

Same model (augmentation layers in front of the CNN, as train_cnn fits it), same
data, same batch size, validation after every epoch: (a) model.fit(x, y) on NumPy
arrays held in memory, (b) model.fit on ArrayBatches over the memory-mapped
prepared/train/images.npy, through Keras' PyDataset adapter, (c) what train_cnn
runs (batches.training_pipelines, as fit() calls it): the same ArrayBatches as a
tf.data pipeline without autotuning. (a) and (b) are autotuned tf.data pipelines, which can
stall at the start of an epoch. Throughput counts epochs after the first (which
traces the graph); the median and slowest of those epochs show the stalls. The
variants alternate so machine noise hits them alike.
"""

from __future__ import annotations

import argparse
import statistics
import time

import keras
import numpy as np

from imgclf import params as params_file
from imgclf.data.prepared import read_split
from imgclf.models.cnn import build_model
from imgclf.seeding import make_deterministic
from imgclf.stage_files import PreparedInfo
from imgclf.training.augmentation import build_augmentation, with_augmentation
from imgclf.training.batches import ArrayBatches, training_pipelines
from imgclf.training.malloc_tuning import KeepFreedMemory
from imgclf.training.recipe import compile_for_training, one_hot

VARIANTS = {
    "arrays": "model.fit on in-memory arrays (Keras' autotuned pipeline)",
    "pydataset": "model.fit on ArrayBatches (Keras' PyDataset adapter)    ",
    "steady": "ArrayBatches, tf.data without autotuning (train_cnn)   ",
}


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.started)


def epoch_seconds(params, classes, train, val, epochs: int, variant: str) -> list[float]:
    """Each epoch's wall time (training and validation) after the first."""
    make_deterministic(params.train.seed)
    size, count = classes.image_size, classes.num_classes
    model = with_augmentation(
        build_model(size, count, params.cnn),
        build_augmentation(params.augment, params.train.seed),
    )
    batch = params.train.batch_size
    data = ArrayBatches(
        train.images, train.labels, batch, params.train.seed, shuffle=True, num_classes=count
    )
    compile_for_training(model, params.train, params.cnn.learning_rate, len(data), epochs)
    timer = EpochTimer()
    callbacks = [timer, KeepFreedMemory()]  # as train_cnn fits (imgclf/training/malloc_tuning.py)
    val_data = (np.asarray(val.images, dtype="float32"), one_hot(val.labels, count))
    run = dict(epochs=epochs, callbacks=callbacks, verbose=0)
    if variant == "arrays":
        x, y = np.asarray(train.images, dtype="float32"), one_hot(train.labels, count)
        model.fit(x, y, batch_size=batch, validation_data=val_data, **run)
    elif variant == "pydataset":
        model.fit(data, validation_data=val_data, shuffle=False, **run)
    else:
        pipelines, validation = training_pipelines(data, val_data, batch)
        model.fit(pipelines, validation_data=validation, shuffle=False, **run)
    return timer.seconds[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    params = params_file.load()
    classes = PreparedInfo.load()
    train, val = read_split("train"), read_split("val")
    seconds: dict[str, list[list[float]]] = {variant: [] for variant in VARIANTS}
    for _ in range(args.rounds):
        for variant in VARIANTS:
            seconds[variant].append(
                epoch_seconds(params, classes, train, val, args.epochs, variant)
            )
    print(
        f"CNN training, {len(train.labels)} images at {classes.image_size} px, batch "
        f"{params.train.batch_size}, {args.epochs} epochs, best of {args.rounds} rounds"
    )
    throughput = {}
    for variant, title in VARIANTS.items():
        best = min(seconds[variant], key=sum)
        throughput[variant] = len(train.labels) * len(best) / sum(best)
        print(
            f"  {title}: {throughput[variant]:6.0f} images/s; epoch median "
            f"{statistics.median(best):.2f} s, slowest {max(best):.2f} s"
        )
    print(
        f"  ratio to arrays {throughput['steady'] / throughput['arrays']:.2f} (target >= 0.95), "
        f"to the PyDataset adapter {throughput['steady'] / throughput['pydataset']:.2f}"
    )


if __name__ == "__main__":
    main()
