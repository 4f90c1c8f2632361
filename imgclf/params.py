"""The schema of params.yaml, and its validation with one clear message per bad key."""

from __future__ import annotations

import re
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

PARAMS_FILE = Path("params.yaml")

Fraction = Annotated[float, Field(gt=0, lt=0.5)]
Probability = Annotated[float, Field(ge=0, le=0.9)]
Seed = Annotated[int, Field(ge=0, le=2**31 - 1)]


class ParamsError(ValueError):
    """params.yaml is missing, unreadable, or holds a bad key or value."""


MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 32, 1024  # ResNet50 needs at least 32 px


def _auto_or_int(low: int, high: int, unit: str, low_note: str = "") -> PlainValidator:
    """A validator for a key that is "auto" or a whole number in [low, high]."""

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

    return PlainValidator(check)


class _Group(BaseModel):
    # strict: a string "15" is not an int, a float 15.0 is not an epoch count.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class PrepareParams(_Group):
    image_size: Annotated[
        int | Literal["auto"],
        _auto_or_int(MIN_IMAGE_SIZE, MAX_IMAGE_SIZE, "pixels", " (ResNet50's minimum)"),
    ]
    val_fraction: Fraction
    test_fraction: Fraction
    seed: Seed
    max_pixels: Annotated[int, Field(ge=1, le=1_000_000_000)]


class TrainParams(_Group):
    epochs: Annotated[int | Literal["auto"], _auto_or_int(1, 10_000, "epochs")]
    batch_size: Annotated[int, Field(ge=1, le=4096)]
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop"]
    weight_decay: Annotated[float, Field(ge=0, le=1)]
    lr_schedule: Literal["cosine", "constant"]
    warmup_epochs: Annotated[int, Field(ge=0, le=1000)]
    label_smoothing: Annotated[float, Field(ge=0, lt=1)]
    class_weight: Literal["auto", "balanced", "none"]
    early_stopping_patience: Annotated[int, Field(ge=0, le=1000, description="0 switches it off")]
    seed: Seed
    distribute: Literal["auto", "none", "mirrored", "multi_worker"]


class AugmentParams(_Group):
    horizontal_flip: bool
    translate: Annotated[float, Field(ge=0, le=0.5)]
    rotation: Annotated[float, Field(ge=0, le=0.5)]
    zoom: Annotated[float, Field(ge=0, lt=1)]


class CnnParams(_Group):
    filters: Annotated[
        list[Annotated[int, Field(ge=1, le=2048)]], Field(min_length=4, max_length=4)
    ]
    convs_per_block: Annotated[int, Field(ge=1, le=4)]
    dense_units: Annotated[int, Field(ge=1, le=8192)]
    dropout: Probability
    learning_rate: Annotated[float, Field(gt=0, le=1)]


class ResnetParams(_Group):
    weights: Annotated[
        str, Field(min_length=1, description="imagenet, none, or a path to a .h5 file")
    ]
    require_pretrained: bool
    dense_units: Annotated[int, Field(ge=1, le=8192)]
    dropout: Probability
    learning_rate: Annotated[float, Field(gt=0, le=1)]
    augmented_views: Annotated[int, Field(ge=0, le=50)]
    fine_tune_layers: Annotated[int, Field(ge=0, le=175)]
    fine_tune_epochs: Annotated[int, Field(ge=0, le=10_000)]
    fine_tune_learning_rate: Annotated[float, Field(gt=0, le=1)]

    @field_validator("weights")
    @classmethod
    def _weights_is_known(cls, weights: str) -> str:
        if weights not in ("imagenet", "none") and not weights.endswith(".h5"):
            raise ValueError("should be imagenet, none, or the path of a Keras .h5 weights file")
        return weights


class CompareParams(_Group):
    metric: Literal["val_accuracy", "val_loss", "val_macro_f1"]


class ExportParams(_Group):
    calibrate: bool
    top_k: Annotated[int, Field(ge=1, le=1000)]
    target_accuracy: Annotated[float, Field(ge=0, lt=1)]
    mistakes: Annotated[int, Field(ge=0, le=256)]


class Params(_Group):
    prepare: PrepareParams
    train: TrainParams
    augment: AugmentParams
    cnn: CnnParams
    resnet: ResnetParams
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
        return f"{key}: missing key; add it (see the README's params table)"
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
