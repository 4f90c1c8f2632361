"""Stage `train_resnet`: ResNet50 transfer learning with a frozen base and a new head.

The base is frozen, so its features are computed once (plus a few augmented views)
and the head trains on those cached features; the saved model is still the whole
pixels-to-probabilities model. An optional fine-tuning phase unfreezes the top of
the base. Reads params `train.*`, `augment.*`, `resnet.*`; writes
models/resnet/model.keras, metrics/resnet.json and dvclive/resnet/ (under
multi-worker training, only the chief writes them).
"""

from __future__ import annotations

import time
from pathlib import Path

from imgclf import params as params_file
from imgclf.arrays import read_classes, read_split
from imgclf.feature_cache import cached_training_set, feature_batches, inference_batch_size
from imgclf.fine_tuning import fine_tune
from imgclf.models import (
    adapt_feature_norm,
    build_augmenter,
    build_feature_extractor,
    build_resnet,
    build_resnet_base,
    build_resnet_head,
)
from imgclf.multi_worker import output_root, worker_role
from imgclf.pretrained import load_base_weights
from imgclf.stage import run
from imgclf.training import (
    choose_strategy,
    class_weights,
    compile_for_training,
    fit,
    make_deterministic,
    one_hot,
    open_live,
    planned_epochs,
    predict_in_batches,
    write_trained_model,
)

PREPARED = Path("prepared")
MODEL_FILE = Path("models/resnet/model.keras")


def main() -> None:
    params = params_file.load()
    train, resnet = params.train, params.resnet
    make_deterministic(train.seed)
    classes = read_classes(PREPARED)
    class_names, image_size = classes["class_names"], classes["image_size"]
    train_split = read_split(PREPARED, "train")
    val = read_split(PREPARED, "val", mmap=False)

    num_classes = len(class_names)
    strategy = choose_strategy(train.distribute)
    with strategy.scope():
        base = build_resnet_base(image_size)
        weights = load_base_weights(base, resnet.weights, resnet.require_pretrained)
        base.trainable = False
        extractor = build_feature_extractor(base, image_size)
        head = build_resnet_head(num_classes, resnet)
        model = build_resnet(extractor, head, image_size)
    # Augmented views of a random base's features teach the head little and cost a
    # full pass of ResNet50 each: they are cached only for a pretrained base.
    views = resnet.augmented_views if weights.pretrained else 0
    augmenter = build_augmenter(params.augment, train.seed)

    forward_batch = inference_batch_size(image_size)
    started = time.perf_counter()
    train_features, train_labels = cached_training_set(
        extractor, train_split.images, train_split.labels, forward_batch, augmenter, views
    )
    val_features = predict_in_batches(extractor, val.images, forward_batch)
    feature_seconds = time.perf_counter() - started
    print(
        f"train_resnet: cached {len(train_features)} training ({views} augmented views) and "
        f"{len(val_features)} validation feature vectors in {feature_seconds:.0f}s"
    )

    adapt_feature_norm(head, train_features)
    head_batches = feature_batches(
        train_features, train_labels, num_classes, train.batch_size, train.seed
    )
    epochs = planned_epochs(train, len(head_batches))
    with strategy.scope():
        compile_for_training(head, train, resnet.learning_rate, len(head_batches), epochs)
    class_weight = class_weights(train_split.labels, num_classes, train.class_weight)
    role = worker_role()
    with output_root(role) as out:
        live = open_live("resnet", out)
        result = fit(
            head, head_batches, (val_features, one_hot(val.labels, num_classes)), train, live,
            len(train_labels), epochs, class_weight=class_weight,
        )  # fmt: skip
        train_seconds = feature_seconds + result.train_seconds
        images_seen = result.images_seen

        if resnet.fine_tune_layers > 0 and resnet.fine_tune_epochs > 0:
            tuned = fine_tune(model, base, train_split, val, params, strategy, live, class_weight)
            train_seconds += tuned.train_seconds
            images_seen += tuned.images_seen
            val_images = val.images.astype("float32")
            probabilities = predict_in_batches(model, val_images, forward_batch)
        else:
            # The base is unchanged: its cached validation features give the whole model's
            # output without another pass of ResNet50.
            probabilities = predict_in_batches(head, val_features, forward_batch)
        metrics = write_trained_model(
            out, "resnet", model, live, (val.labels, probabilities), class_names, {
                "pretrained": weights.pretrained,
                "epochs_trained": result.epochs_trained,
                "augmented_views": views,
                "class_weighted": class_weight is not None,
                "feature_cache_seconds": feature_seconds,
                "train_seconds": train_seconds,
                "train_images_per_second": images_seen / train_seconds,
                "workers": role.workers,
            },
        )  # fmt: skip
    done = f"val_accuracy {metrics['val_accuracy']:.4f} (pretrained: {weights.pretrained}) " \
        f"after {result.epochs_trained} epochs"  # fmt: skip
    if not role.is_chief:
        print(role.bystander_note("train_resnet", done))
        return
    print(f"train_resnet: base weights: {weights.source}")
    print(f"train_resnet: {done} in {train_seconds:.0f}s; saved {MODEL_FILE}")


if __name__ == "__main__":
    run(main, "train_resnet")
