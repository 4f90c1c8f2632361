"""The model families, each registered once with what the rest of the pipeline needs of it.

A family is one module in imgclf/models/ that builds its model and registers a
`ModelFamily`, one stage script `stages/train_<name>.py` and its entry in dvc.yaml.
`compare` ranks every registered family, `export` and the model card describe the
winner from its entry, Grad-CAM finds the family's feature map through it, and the
web page names it. Nothing else is keyed on a family's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras


@dataclass(frozen=True)
class TransferParts:
    """How a transfer model is put together: pixels -> extractor(preprocess, base, pool) -> head.

    Grad-CAM needs a map from inside the pretrained base, which the extractor hides
    as one nested layer, so it runs the same steps itself (see explain/gradcam.py):
    the extractor's `resize` layer where it has one, `preprocess`, the base.
    """

    extractor: str  # layer name of the pixels-to-features model
    base: str  # layer name of the pretrained base inside the extractor
    head: str  # layer name of the classifier on the pooled features
    preprocess: Callable  # what the extractor does to raw pixels before the base


@dataclass(frozen=True)
class ModelFamily:
    """One candidate of the pipeline."""

    name: str  # params group, metrics/<name>.json, models/<name>/, dvclive/<name>/
    title: str  # what people call it: "custom CNN", "ResNet50"
    description: str  # one line for the model card
    keras_name: str  # the name its builder gives the Keras model: how a saved model is recognised
    # image_size: auto keeps the prepared size within these bounds (models/input_size.py).
    auto_input_size: tuple[int, int]
    transfer: TransferParts | None = None  # None: trained from scratch, maps in the model itself
    weights_note: str = ""  # where a pretrained base's weights come from, and their licence

    @property
    def stage(self) -> str:
        return f"train_{self.name}"


_FAMILIES: dict[str, ModelFamily] = {}


def register(family: ModelFamily) -> ModelFamily:
    """Add a family (each module in imgclf/models/ registers its own when imported)."""
    if family.name in _FAMILIES and _FAMILIES[family.name] != family:
        raise ValueError(f"model family {family.name!r} is registered twice")
    _FAMILIES[family.name] = family
    return family


def families() -> list[ModelFamily]:
    """Every registered family, in registration order (the order compare reports them in)."""
    return list(_FAMILIES.values())


def get(name: str) -> ModelFamily:
    """The family called `name`; a KeyError naming the known ones otherwise."""
    if name not in _FAMILIES:
        known = ", ".join(_FAMILIES) or "none"
        raise KeyError(f"no model family {name!r} (known: {known})")
    return _FAMILIES[name]


def family_of(model: keras.Model) -> ModelFamily | None:
    """The family whose builder made `model` (None for a model no family builds)."""
    return next((f for f in _FAMILIES.values() if f.keras_name == model.name), None)
