"""Which test-time views the export serves (export.tta), chosen on validation, never on test."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from imgclf.data.prepared import PreparedSplit
from imgclf.models.inference import inference_batch_size, predict_in_batches
from imgclf.models.tta import KINDS, averaged

if TYPE_CHECKING:
    import keras


@dataclass(frozen=True)
class ViewChoice:
    """The views served, and the validation accuracy of each kind measured (none's always,
    the baseline)."""

    kind: str
    setting: str  # export.tta as written
    val_accuracy: dict[str, float]

    @property
    def views(self) -> int:
        return KINDS[self.kind]

    def metrics(self) -> dict:
        """For metrics/export.json."""
        return {
            "tta": self.kind,
            "tta_views": self.views,
            **{f"tta_val_accuracy_{kind}": value for kind, value in self.val_accuracy.items()},
        }


def choose_views(model: keras.Model, val: PreparedSplit, setting: str) -> ViewChoice:
    """`setting`'s views ("auto": the kind with the best validation accuracy, fewer views
    on a tie, so none unless views do better), with what validation measured."""
    kinds = list(KINDS) if setting == "auto" else list(dict.fromkeys(["none", setting]))
    batch = max(1, inference_batch_size(val.images.shape[1]) // max(KINDS[k] for k in kinds))
    accuracy = {}
    for kind in kinds:
        probabilities = predict_in_batches(averaged(model, kind), val.images, batch)
        accuracy[kind] = round(float((probabilities.argmax(axis=1) == val.labels).mean()), 6)
    if setting != "auto":
        return ViewChoice(setting, setting, accuracy)
    best = max(kinds, key=lambda kind: (accuracy[kind], -KINDS[kind]))
    return ViewChoice(best, setting, accuracy)
