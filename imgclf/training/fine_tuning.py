"""Fine-tuning: unfreeze the top of a pretrained base and train the whole model on pixels."""

from __future__ import annotations

import keras

from imgclf.models.augmentation import build_augmentation, with_augmentation
from imgclf.training.batches import ArrayBatches
from imgclf.training.fit import FitResult, fit
from imgclf.training.recipe import compile_for_training
from imgclf.training.run import TrainerRun


def unfreeze_top(base: keras.Model, layer_count: int) -> None:
    """Make the top `layer_count` layers of `base` trainable; BatchNormalization stays frozen."""
    base.trainable = True
    for layer in base.layers[:-layer_count]:
        layer.trainable = False
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def fine_tune(
    run: TrainerRun,
    model: keras.Model,
    base: keras.Model,
    layer_count: int,
    epochs: int,
    learning_rate: float,
) -> FitResult:
    """Train `model` end to end for `epochs` with the top `layer_count` layers of `base` unfrozen.

    Uses `learning_rate` with the same recipe (train.*) as the head, and logs to the
    same DVCLive run, so the curves continue where head training stopped.
    """
    train = run.params.train
    unfreeze_top(base, layer_count)
    batches = ArrayBatches(
        run.train_split.images, run.train_split.labels, train.batch_size, train.seed,
        shuffle=True, num_classes=run.num_classes,
    )  # fmt: skip
    with run.strategy.scope():
        trainer = with_augmentation(model, build_augmentation(run.params.augment, train.seed))
        compile_for_training(trainer, train, learning_rate, len(batches), epochs)
    return fit(
        trainer, batches, run.val_data(), train, run.live, len(run.train_split.labels),
        epochs=epochs, class_weight=run.class_weight,
    )  # fmt: skip
