"""Stage `train_cnn`: train the custom CNN from scratch on the prepared images.

Reads params `train.*`, `augment.*`, `cnn.*`; writes models/cnn/model.keras,
metrics/cnn.json and DVCLive's per-epoch curves and confusion matrix in dvclive/cnn/.
Under multi-worker training (TF_CONFIG, see imgclf/distributed.py) only the chief
writes them.
"""

from __future__ import annotations

from pathlib import Path

from imgclf import params as params_file
from imgclf.arrays import read_classes, read_split
from imgclf.models import build_augmentation, build_cnn, with_augmentation
from imgclf.multi_worker import in_multi_worker_mode, output_root, worker_role
from imgclf.stage import run
from imgclf.training import (
    ArrayBatches,
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
MODEL_FILE = Path("models/cnn/model.keras")


def main() -> None:
    params = params_file.load()
    train = params.train
    make_deterministic(train.seed)
    classes = read_classes(PREPARED)
    class_names, image_size = classes["class_names"], classes["image_size"]
    train_split = read_split(PREPARED, "train")
    val = read_split(PREPARED, "val", mmap=False)
    val_images = val.images.astype("float32")
    num_classes = len(class_names)
    batches = ArrayBatches(
        train_split.images, train_split.labels, train.batch_size, train.seed, shuffle=True,
        num_classes=num_classes,
    )  # fmt: skip
    epochs = planned_epochs(train, len(batches))

    strategy = choose_strategy(train.distribute)
    with strategy.scope():
        model = build_cnn(image_size, num_classes, params.cnn, in_multi_worker_mode(strategy))
        trainer = with_augmentation(model, build_augmentation(params.augment, train.seed))
        compile_for_training(trainer, train, params.cnn.learning_rate, len(batches), epochs)
    model.summary(print_fn=lambda line, **_: print(line))

    weights = class_weights(train_split.labels, num_classes, train.class_weight)
    role = worker_role()
    with output_root(role) as out:
        live = open_live("cnn", out)
        result = fit(
            trainer, batches, (val_images, one_hot(val.labels, num_classes)), train, live,
            len(train_split.labels), epochs, class_weight=weights,
        )  # fmt: skip

        probabilities = predict_in_batches(model, val_images, train.batch_size)
        metrics = write_trained_model(
            out, "cnn", model, live, (val.labels, probabilities), class_names, {
                "epochs_trained": result.epochs_trained,
                "class_weighted": weights is not None,
                "train_seconds": result.train_seconds,
                "train_images_per_second": result.images_seen / result.train_seconds,
                "workers": role.workers,
            },
        )  # fmt: skip
    done = f"val_accuracy {metrics['val_accuracy']:.4f} after {result.epochs_trained} epochs"
    if not role.is_chief:
        print(role.bystander_note("train_cnn", done))
        return
    print(f"train_cnn: {done} in {result.train_seconds:.0f}s; saved {MODEL_FILE}")


if __name__ == "__main__":
    run(main, "train_cnn")
