"""Benchmark the CNN's input pipeline against a plain model.fit on in-memory arrays.

    dvc repro prepare && python -m bench.bench_cnn_input [--epochs 4]

Same model (augmentation layers in front of the CNN, as train_cnn fits it), same
data, same batch size: (a) model.fit(x, y) on NumPy arrays held in memory, (b) the
pipeline train_cnn uses, ArrayBatches over the memory-mapped
prepared/train/images.npy. Throughput counts
epochs after the first (which traces the graph), and the runs alternate so machine
noise hits both alike.
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np

from imgclf import params as params_file
from imgclf.artifacts import PreparedInfo
from imgclf.data.prepared import read_split
from imgclf.models.augmentation import build_augmentation, with_augmentation
from imgclf.models.cnn import build_cnn
from imgclf.training.batches import ArrayBatches
from imgclf.training.native_memory import KeepFreedMemory
from imgclf.training.recipe import compile_for_training, make_deterministic, one_hot


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.started)


def images_per_second(params, classes, train, epochs: int, pipeline: bool) -> float:
    make_deterministic(params.train.seed)
    size, count = classes.image_size, classes.num_classes
    model = with_augmentation(
        build_cnn(size, count, params.cnn),
        build_augmentation(params.augment, params.train.seed),
    )
    batch = params.train.batch_size
    data = ArrayBatches(
        train.images, train.labels, batch, params.train.seed, shuffle=True, num_classes=count
    )
    compile_for_training(model, params.train, params.cnn.learning_rate, len(data), epochs)
    timer = EpochTimer()
    callbacks = [timer, KeepFreedMemory()]  # as train_cnn fits (imgclf/training/native_memory.py)
    if pipeline:
        model.fit(data, epochs=epochs, callbacks=callbacks, verbose=0)
    else:
        x, y = np.asarray(train.images, dtype="float32"), one_hot(train.labels, count)
        model.fit(x, y, batch_size=batch, epochs=epochs, callbacks=callbacks, verbose=0)
    return len(train.labels) * (epochs - 1) / sum(timer.seconds[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    params = params_file.load()
    classes = PreparedInfo.load()
    train = read_split("train")
    plain, ours = [], []
    for _ in range(args.rounds):
        plain.append(images_per_second(params, classes, train, args.epochs, pipeline=False))
        ours.append(images_per_second(params, classes, train, args.epochs, pipeline=True))
    plain_best, ours_best = max(plain), max(ours)
    print(
        f"CNN training throughput, {len(train.labels)} images at {classes.image_size} px, "
        f"batch {params.train.batch_size}, best of {args.rounds} rounds"
    )
    print(f"  plain model.fit on in-memory arrays : {plain_best:7.0f} images/s")
    print(f"  ArrayBatches over the memory map    : {ours_best:7.0f} images/s")
    print(f"  ratio {ours_best / plain_best:.2f} (target >= 0.95)")


if __name__ == "__main__":
    main()
