"""Stage `train_<family>`: train one model family on the prepared images.

    python stages/train.py cnn        # dvc.yaml's train_cnn; likewise resnet, efficientnet

Reads params `train.*`, `augment.*` and the family's own group; writes
models/<family>/model.keras, metrics/<family>.json and DVCLive's per-epoch curves
and validation confusion matrix in dvclive/<family>/. A family trained from scratch
(the custom CNN) trains end to end on augmented pixels; a transfer family trains a
new head on its frozen base's cached features, then fine-tunes if asked. Under
multi-worker training (TF_CONFIG, see docs/scaling.md) only the chief writes.
"""

from __future__ import annotations

import sys

from imgclf import models
from imgclf.stage_errors import run_stage
from imgclf.training.pretrained import train_transfer
from imgclf.training.scratch import train_scratch
from imgclf.training.trainer import open_trainer


def main(family_name: str) -> None:
    family = models.get(family_name)
    with open_trainer(family) as trainer:
        if family.transfer is None:
            train_scratch(trainer)
        else:
            train_transfer(trainer)


if __name__ == "__main__":
    known = [family.name for family in models.families()]
    if len(sys.argv) != 2 or sys.argv[1] not in known:
        print(f"usage: python stages/train.py FAMILY (one of: {', '.join(known)})", file=sys.stderr)
        sys.exit(2)
    run_stage(lambda: main(sys.argv[1]), f"train_{sys.argv[1]}")
