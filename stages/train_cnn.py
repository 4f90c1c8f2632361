"""Stage `train_cnn`: train the custom CNN from scratch on the prepared images.

Reads params `train.*`, `augment.*`, `cnn.*`; writes models/cnn/model.keras,
metrics/cnn.json and DVCLive's per-epoch curves and confusion matrix in dvclive/cnn/.
Under multi-worker training (TF_CONFIG, see docs/scaling.md) only the chief writes them.
"""

from __future__ import annotations

from imgclf.models.augmentation import build_augmentation, with_augmentation
from imgclf.models.cnn import FAMILY, build_cnn
from imgclf.models.input_size import input_size
from imgclf.stage import run
from imgclf.training.batches import ArrayBatches, predict_in_batches
from imgclf.training.distribute import in_multi_worker_mode
from imgclf.training.fit import fit
from imgclf.training.recipe import compile_for_training, planned_epochs
from imgclf.training.run import trainer_run


def main() -> None:
    with trainer_run(FAMILY) as run:
        params, train = run.params, run.params.train
        val_images, val_labels = run.val_data()
        batches = ArrayBatches(
            run.train_split.images, run.train_split.labels, train.batch_size, train.seed,
            shuffle=True, num_classes=run.num_classes,
        )  # fmt: skip
        epochs = planned_epochs(train, len(batches))

        with run.strategy.scope():
            # Synchronized BatchNorm across workers keeps their moving statistics equal.
            sync = in_multi_worker_mode(run.strategy)
            side = input_size(FAMILY, params.cnn.image_size, run.info.image_size)
            model = build_cnn(run.info.image_size, run.num_classes, params.cnn, sync, side)
            trainer = with_augmentation(model, build_augmentation(params.augment, train.seed))
            compile_for_training(trainer, train, params.cnn.learning_rate, len(batches), epochs)
        model.summary(print_fn=lambda line, **_: print(line))

        result = fit(
            trainer, batches, (val_images, val_labels), train, run.live,
            len(run.train_split.labels), epochs, class_weight=run.class_weight,
        )  # fmt: skip
        run.finish(
            model,
            predict_in_batches(model, val_images, train.batch_size),
            epochs_trained=result.epochs_trained,
            train_seconds=result.train_seconds,
            images_seen=result.images_seen,
            input_size=side,
        )


if __name__ == "__main__":
    run(main, "train_cnn")
