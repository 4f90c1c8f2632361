"""Training a family from scratch: the whole model on augmented pixels, end to end.

Fine-tuning a pretrained base (fine_tuning.py) trains the same way, after its head.
"""

from __future__ import annotations

import keras

from imgclf.models.inference import predict_in_batches
from imgclf.models.input_size import input_size
from imgclf.training.augmentation import build_augmentation, with_augmentation
from imgclf.training.batches import ArrayBatches
from imgclf.training.distribute import in_multi_worker_mode
from imgclf.training.fit import FitResult, fit
from imgclf.training.lr_finder import peak_learning_rate
from imgclf.training.recipe import compile_for_training, planned_epochs
from imgclf.training.trainer import Trainer


def fit_on_pixels(
    trainer: Trainer, model: keras.Model, learning_rate: float | str, epochs: int | None = None
) -> tuple[FitResult, float]:
    """Train `model` on the augmented training images with the shared recipe (train.*);
    the result and the peak learning rate used.

    `epochs` None: train.epochs (auto: about 1,000 optimizer steps); `learning_rate` auto:
    the range test's (lr_finder.py). Augmentation wraps the model only while it trains,
    so the saved model holds none of it.
    """
    train = trainer.params.train
    batches = ArrayBatches(
        trainer.train_split.images, trainer.train_split.labels, train.batch_size, train.seed,
        shuffle=True, num_classes=trainer.num_classes,
    )  # fmt: skip
    epochs = epochs or planned_epochs(train, len(batches))
    with trainer.strategy.scope():
        augment = build_augmentation(trainer.params.augment, train.seed)
        augmented = with_augmentation(model, augment)
        learning_rate = peak_learning_rate(trainer, augmented, batches, learning_rate)
        compile_for_training(augmented, train, learning_rate, len(batches), epochs)
    result = fit(
        augmented, batches, trainer.val_data(), train, trainer.live,
        len(trainer.train_split.labels), epochs, class_weight=trainer.class_weight,
    )  # fmt: skip
    return result, learning_rate


def train_scratch(trainer: Trainer) -> None:
    """Build the family's model (its module's `build_model`), train it, write the outputs."""
    family, params = trainer.family, trainer.family_params
    side = input_size(family, params.image_size, trainer.info.image_size)
    with trainer.strategy.scope():
        # Synchronized BatchNorm across workers keeps their moving statistics equal.
        model = family.builder.build_model(
            trainer.info.image_size, trainer.num_classes, params, input_size=side,
            sync_batch_norm=in_multi_worker_mode(trainer.strategy),
        )  # fmt: skip
    model.summary(print_fn=lambda line, **_: print(line))
    result, learning_rate = fit_on_pixels(trainer, model, params.learning_rate)
    val_images = trainer.val_data()[0]
    trainer.finish(
        model,
        predict_in_batches(model, val_images, trainer.params.train.batch_size),
        epochs_trained=result.epochs_trained,
        train_seconds=result.train_seconds,
        images_seen=result.images_seen,
        input_size=side,
        learning_rate=learning_rate,
    )
