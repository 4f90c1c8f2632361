"""Benchmark ResNet50 head training: cached features against the naive way, same data, same epochs.

    dvc repro prepare && python -m bench.bench_resnet_cache [--epochs 10]

Naive: the Keras-examples way, the frozen base runs over every (augmented) image
every epoch, validation included. Cached: the base runs once over the training set
plus `resnet.augmented_views` augmented copies and once over validation; the head
trains on the cached features. Both use params.yaml and the prepared sample data.
"""

from __future__ import annotations

import argparse
import os
import time

from imgclf import models
from imgclf import params as params_file
from imgclf.data.prepared import read_split
from imgclf.models.inference import predict_in_batches
from imgclf.models.resnet import resnet50
from imgclf.models.transfer import build_transfer
from imgclf.seeding import make_deterministic
from imgclf.stage_files import PreparedInfo
from imgclf.training.augmentation import build_augmentation, build_augmenter, with_augmentation
from imgclf.training.batches import ArrayBatches
from imgclf.training.feature_cache import CACHE_ENV, cached_training_set
from imgclf.training.pretrained import adapt_feature_norm
from imgclf.training.recipe import compile_for_training, one_hot


def build(params, image_size: int, num_classes: int):
    make_deterministic(params.train.seed)
    base = resnet50(image_size)
    base.trainable = False
    return build_transfer(models.get("resnet"), base, image_size, num_classes, params.resnet)


def val_accuracy(model, val) -> float:
    predicted = model.predict(val.images.astype("float32"), verbose=0).argmax(1)
    return float((predicted == val.labels).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    os.environ[CACHE_ENV] = ""  # time the base's pass, not a read of features kept on disk
    params = params_file.load()
    classes = PreparedInfo.load()
    size, count = classes.image_size, classes.num_classes
    train, val = read_split("train"), read_split("val", mmap=False)
    batch = params.train.batch_size
    val_data = (val.images.astype("float32"), one_hot(val.labels, count))
    lr, seed = params.resnet.learning_rate, params.train.seed

    extractor, head, model = build(params, size, count)
    # The Keras-examples way: augmentation layers in front of the whole model.
    trainer = with_augmentation(model, build_augmentation(params.augment, params.train.seed))
    images = ArrayBatches(train.images, train.labels, batch, seed, shuffle=True, num_classes=count)
    compile_for_training(trainer, params.train, lr, len(images), args.epochs)
    started = time.perf_counter()
    # The naive way has no feature cache to take statistics from: it adapts on one
    # pass of the base over the training images, counted in its time.
    adapt_feature_norm(head, predict_in_batches(extractor, train.images, batch))
    trainer.fit(images, validation_data=val_data, epochs=args.epochs, verbose=0)
    naive_seconds = time.perf_counter() - started
    naive_accuracy = val_accuracy(model, val)

    extractor, head, model = build(params, size, count)
    augmenter = build_augmenter(params.augment, params.train.seed)
    started = time.perf_counter()
    features, labels, _ = cached_training_set(
        extractor, train.images, train.labels, batch, augmenter, params.resnet.augmented_views
    )
    val_features = predict_in_batches(extractor, val.images, batch)
    adapt_feature_norm(head, features)
    cached = ArrayBatches(features, labels, batch, seed, shuffle=True, num_classes=count)
    compile_for_training(head, params.train, lr, len(cached), args.epochs)
    head.fit(
        cached, validation_data=(val_features, one_hot(val.labels, count)),
        epochs=args.epochs, verbose=0,
    )  # fmt: skip
    cached_seconds = time.perf_counter() - started
    cached_accuracy = val_accuracy(model, val)

    print(
        f"ResNet50 head, {args.epochs} epochs, {len(train.labels)} train / {len(val.labels)} "
        f"val images at {size} px, augmented_views={params.resnet.augmented_views}"
    )
    print(
        f"  naive  (base every epoch): {naive_seconds:7.1f} s   val_accuracy {naive_accuracy:.4f}"
    )
    print(
        f"  cached (features once)   : {cached_seconds:7.1f} s   val_accuracy {cached_accuracy:.4f}"
    )
    print(
        f"  speed-up {naive_seconds / cached_seconds:.1f}x   "
        f"accuracy difference {100 * (cached_accuracy - naive_accuracy):+.1f} points"
    )


if __name__ == "__main__":
    main()
