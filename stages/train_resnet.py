"""Stage `train_resnet`: ResNet50 transfer learning with a frozen base and a new head.

The base is frozen, so its features are computed once (plus a few augmented views)
and the head trains on those cached features; the saved model is still the whole
pixels-to-probabilities model. An optional fine-tuning phase unfreezes the top of
the base. Reads params `train.*`, `augment.*`, `resnet.*`; writes
models/resnet/model.keras, metrics/resnet.json and dvclive/resnet/.
"""

from __future__ import annotations

import time
from pathlib import Path

from imgclf import params as params_file
from imgclf.arrays import read_classes, read_split
from imgclf.feature_cache import cached_training_set, extract_features
from imgclf.files import write_json
from imgclf.models import (
    build_augmentation,
    build_augmenter,
    build_feature_extractor,
    build_resnet,
    build_resnet_base,
    build_resnet_head,
    with_augmentation,
)
from imgclf.pretrained import load_base_weights
from imgclf.stage import run
from imgclf.training import (
    ArrayBatches,
    choose_strategy,
    classification_metrics,
    fit,
    log_confusion,
    make_deterministic,
    make_optimizer,
    open_live,
    parameter_counts,
)

PREPARED = Path("prepared")
MODEL_FILE = Path("models/resnet/model.keras")
METRICS_FILE = Path("metrics/resnet.json")
LOSS = "sparse_categorical_crossentropy"


def main() -> None:
    params = params_file.load()
    train, resnet = params.train, params.resnet
    make_deterministic(train.seed)
    classes = read_classes(PREPARED)
    class_names, image_size = classes["class_names"], classes["image_size"]
    train_split = read_split(PREPARED, "train")
    val = read_split(PREPARED, "val", mmap=False)

    strategy = choose_strategy(train.distribute)
    with strategy.scope():
        base = build_resnet_base(image_size)
        weights = load_base_weights(base, resnet.weights, resnet.require_pretrained)
        base.trainable = False
        extractor = build_feature_extractor(base, image_size)
        head = build_resnet_head(len(class_names), resnet)
        head.compile(
            optimizer=make_optimizer(train.optimizer, resnet.learning_rate),
            loss=LOSS,
            metrics=["accuracy"],
        )
        model = build_resnet(extractor, head, image_size)
    augmenter = build_augmenter(params.augment, train.seed)

    started = time.perf_counter()
    train_features, train_labels = cached_training_set(
        extractor, train_split.images, train_split.labels, train.batch_size,
        augmenter, resnet.augmented_views,
    )  # fmt: skip
    val_features = extract_features(extractor, val.images, train.batch_size)
    feature_seconds = time.perf_counter() - started
    print(
        f"train_resnet: cached {len(train_features)} training and {len(val_features)} "
        f"validation feature vectors in {feature_seconds:.0f}s"
    )

    head.get_layer("feature_norm").adapt(train_features)
    live = open_live("resnet")
    head_batches = ArrayBatches(
        train_features, train_labels, train.batch_size, train.seed, shuffle=True
    )
    result = fit(head, head_batches, (val_features, val.labels), train, live, len(train_labels))
    train_seconds = feature_seconds + result.train_seconds
    images_seen = result.images_seen

    if resnet.fine_tune_layers > 0 and resnet.fine_tune_epochs > 0:
        # Unfreeze the top of the base; BatchNorm stays frozen and in inference mode.
        base.trainable = True
        for layer in base.layers[: -resnet.fine_tune_layers]:
            layer.trainable = False
        for layer in base.layers:
            if layer.__class__.__name__ == "BatchNormalization":
                layer.trainable = False
        with strategy.scope():
            trainer = with_augmentation(model, build_augmentation(params.augment, train.seed))
            trainer.compile(
                optimizer=make_optimizer(train.optimizer, resnet.fine_tune_learning_rate),
                loss=LOSS,
                metrics=["accuracy"],
            )
        image_batches = ArrayBatches(
            train_split.images, train_split.labels, train.batch_size, train.seed, shuffle=True
        )
        tuned = fit(
            trainer, image_batches, (val.images.astype("float32"), val.labels), train, live,
            len(train_split.labels), epochs=resnet.fine_tune_epochs,
        )  # fmt: skip
        train_seconds += tuned.train_seconds
        images_seen += tuned.images_seen

    probabilities = model.predict(
        val.images.astype("float32"), batch_size=train.batch_size, verbose=0
    )
    log_confusion(live, val.labels, probabilities, class_names)
    live.end()
    MODEL_FILE.parent.mkdir(parents=True, exist_ok=True)
    model.save(MODEL_FILE)
    metrics = {
        **classification_metrics(probabilities, val.labels, class_names, "val"),
        **parameter_counts(model),
        "pretrained": weights.pretrained,
        "epochs_trained": result.epochs_trained,
        "feature_cache_seconds": feature_seconds,
        "train_seconds": train_seconds,
        "train_images_per_second": images_seen / train_seconds,
    }
    write_json(METRICS_FILE, metrics)
    print(f"train_resnet: base weights: {weights.source}")
    print(
        f"train_resnet: val_accuracy {metrics['val_accuracy']:.4f} (pretrained: "
        f"{weights.pretrained}) after {result.epochs_trained} epochs in {train_seconds:.0f}s; "
        f"saved {MODEL_FILE}"
    )


if __name__ == "__main__":
    run(main, "train_resnet")
