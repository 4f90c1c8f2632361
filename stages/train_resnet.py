"""Stage `train_resnet`: ResNet50 transfer learning with a frozen base and a new head.

The base's features are computed once (plus a few augmented views), the head trains
on them, and optional fine-tuning unfreezes the top of the base (see
imgclf/training/transfer.py). Reads params `train.*`, `augment.*`, `resnet.*`;
writes models/resnet/model.keras, metrics/resnet.json and dvclive/resnet/ (under
multi-worker training, only the chief writes them).
"""

from __future__ import annotations

from imgclf.models.input_size import input_size
from imgclf.models.resnet import FAMILY, build_resnet, build_resnet_base, load_base_weights
from imgclf.stage import run
from imgclf.training.run import trainer_run
from imgclf.training.transfer import TransferModel, train_transfer


def main() -> None:
    with trainer_run(FAMILY) as run:
        resnet, size = run.params.resnet, run.info.image_size
        with run.strategy.scope():
            base = build_resnet_base(input_size(FAMILY, resnet.image_size, size))
            weights = load_base_weights(base, resnet.weights, resnet.require_pretrained)
            base.trainable = False
            extractor, head, model = build_resnet(base, size, run.num_classes, resnet)
        if run.role.is_chief:
            print(f"train_resnet: base weights: {weights.source}")
        parts = TransferModel(base, extractor, head, model, weights)
        train_transfer(run, parts, resnet, backbone="resnet50")


if __name__ == "__main__":
    run(main, "train_resnet")
