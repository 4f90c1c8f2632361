"""Training a transfer-learning family: cached features, a head, optional fine-tuning.

The base is frozen, so its features are computed once (plus, for a pretrained
base, a few augmented views) and the head trains on those cached features; the
saved model is still the whole pixels-to-probabilities model. Fine-tuning then
unfreezes the top of the base and trains end to end on pixels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import keras
import numpy as np

from imgclf.models.contract import WeightsSource
from imgclf.models.inference import inference_batch_size, predict_in_batches
from imgclf.models.input_size import input_size
from imgclf.models.transfer import build_transfer
from imgclf.training.augmentation import build_augmenter
from imgclf.training.batches import feature_batches
from imgclf.training.feature_cache import cache_folder, cached_training_set, stored_features
from imgclf.training.fine_tuning import fine_tune
from imgclf.training.fit import fit
from imgclf.training.lr_finder import peak_learning_rate
from imgclf.training.recipe import compile_for_training, planned_epochs
from imgclf.training.trainer import Trainer

VARIANCE_FLOOR = 0.01  # of the median feature variance (see adapt_feature_norm)


@dataclass(frozen=True)
class TransferModel:
    """A transfer model's parts, sharing their layers (see models/transfer.py)."""

    base: keras.Model  # the pretrained base, frozen
    extractor: keras.Model  # pixels -> pooled features
    head: keras.Model  # pooled features -> probabilities
    model: keras.Model  # pixels -> probabilities: what is saved
    weights: WeightsSource


def build_frozen(trainer: Trainer) -> TransferModel:
    """The family's base with its weights (its module's `build_base`, `load_weights`), frozen,
    inside the shared extractor and a new head."""
    family, params = trainer.family, trainer.family_params
    side = input_size(family, params.image_size, trainer.info.image_size)
    with trainer.strategy.scope():
        base = family.builder.build_base(side, params)
        # Grad-CAM finds the base inside a saved model by this name, whatever the module
        # called it (TransferParts.base).
        base.name = family.transfer.base
        weights = family.builder.load_weights(base, params)
        base.trainable = False
        extractor, head, model = build_transfer(
            family, base, trainer.info.image_size, trainer.num_classes, params
        )
    if trainer.role.is_chief:
        backbone = family.transfer.backbone.format(**params.model_dump())
        print(f"{family.stage}: {backbone} at {side} px, base weights: {weights.source}")
    return TransferModel(base, extractor, head, model, weights)


def train_transfer(trainer: Trainer) -> None:
    """Train the head on cached features, fine-tune if asked, and write the stage's outputs."""
    parts, recipe = build_frozen(trainer), trainer.family_params
    train, stage = trainer.params.train, trainer.family.stage
    # Augmented views of a random base's features teach the head little and cost a
    # full pass of the base each: they are cached only for a pretrained base.
    views = recipe.augmented_views if parts.weights.pretrained else 0
    augmenter = build_augmenter(trainer.params.augment, train.seed)
    forward_batch = inference_batch_size(trainer.info.image_size)

    started = time.perf_counter()
    train_features, train_labels, reused = cached_training_set(
        parts.extractor, trainer.train_split.images, trainer.train_split.labels, forward_batch,
        augmenter, views, augmentation=f"{trainer.params.augment}|seed {train.seed}",
    )  # fmt: skip
    val_features, hit = stored_features(parts.extractor, trainer.val.images, forward_batch)
    reused += len(val_features) if hit else 0
    feature_seconds = time.perf_counter() - started
    print(
        f"{stage}: features of {len(train_features)} training ({views} augmented views) and "
        f"{len(val_features)} validation images in {feature_seconds:.0f}s "
        f"({reused} of them from {cache_folder() or 'no cache'})"
    )

    adapt_feature_norm(parts.head, train_features)
    head_batches = feature_batches(
        train_features, train_labels, trainer.num_classes, train.batch_size, train.seed
    )
    epochs = planned_epochs(train, len(head_batches))
    with trainer.strategy.scope():
        rate = peak_learning_rate(trainer, parts.head, head_batches, recipe.learning_rate)
        compile_for_training(parts.head, train, rate, len(head_batches), epochs)
    result = fit(
        parts.head, head_batches, trainer.val_data(val_features), train, trainer.live,
        len(train_labels), epochs, class_weight=trainer.class_weight,
    )  # fmt: skip
    train_seconds = feature_seconds + result.train_seconds
    images_seen = result.images_seen

    if recipe.fine_tune_layers > 0 and recipe.fine_tune_epochs > 0:
        tuned = fine_tune(
            trainer, parts.model, parts.base, recipe.fine_tune_layers, recipe.fine_tune_epochs,
            recipe.fine_tune_learning_rate,
        )  # fmt: skip
        train_seconds += tuned.train_seconds
        images_seen += tuned.images_seen
        probabilities = predict_in_batches(parts.model, trainer.val_data()[0], forward_batch)
    else:
        # The base is unchanged: its cached validation features give the whole model's
        # output without another pass of the base.
        probabilities = predict_in_batches(parts.head, val_features, forward_batch)
    trainer.finish(
        parts.model,
        probabilities,
        epochs_trained=result.epochs_trained,
        train_seconds=train_seconds,
        images_seen=images_seen,
        timings={"feature_cache_seconds": feature_seconds},
        note=f" (pretrained: {parts.weights.pretrained})",
        pretrained=parts.weights.pretrained,
        augmented_views=views,
        backbone=trainer.family.transfer.backbone.format(**recipe.model_dump()),
        input_size=parts.base.input_shape[1],
        learning_rate=rate,
    )


def adapt_feature_norm(head: keras.Model, features: np.ndarray) -> None:
    """Fit the head's feature standardization to the training features, with a variance floor.

    A feature that is (nearly) constant on the training set, such as a ReLU channel of
    a random base that never fires there, would otherwise be divided by ~0 and reach
    millions on a new image that does fire it: the head's logits, and its validation
    loss, then explode. Flooring each variance at VARIANCE_FLOOR of the median keeps
    such features on the scale of the others; informative features are unaffected.
    The mean and variance are summed a chunk at a time in float64 (Keras' own adapt
    would hold a float32 copy of all the features, and another of their deviations).
    """
    norm = head.get_layer("feature_norm")
    mean, variance = column_statistics(features)
    floor = VARIANCE_FLOOR * float(np.median(variance))
    norm.adapt_mean.assign(mean.reshape(norm.adapt_mean.shape).astype("float32"))
    norm.adapt_variance.assign(
        np.maximum(variance, floor).reshape(norm.adapt_variance.shape).astype("float32")
    )
    norm.finalize_state()


def column_statistics(rows: np.ndarray, chunk: int = 16_384) -> tuple[np.ndarray, np.ndarray]:
    """Each column's mean and (population) variance, in float64, a chunk of rows at a time."""
    total = np.zeros(rows.shape[1])
    for start in range(0, len(rows), chunk):
        total += rows[start : start + chunk].sum(axis=0, dtype=np.float64)
    mean = total / len(rows)
    squares = np.zeros(rows.shape[1])
    for start in range(0, len(rows), chunk):
        squares += np.square(rows[start : start + chunk].astype(np.float64) - mean).sum(axis=0)
    return mean, squares / len(rows)
