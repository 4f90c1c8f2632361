"""The groups of params.yaml that every project has, and the pieces every group is made of.

Each model family declares its own group in its registry entry (models/registry.py)
from these pieces; imgclf/params.py puts the groups together and reads the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator

from imgclf.bundle import CONVERTED

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


def auto_or_int(low: int, high: int, unit: str, low_note: str = "") -> object:
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


class Group(BaseModel):
    # strict: a string "15" is not an int, a float 15.0 is not an epoch count.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def each_once(what: str) -> AfterValidator:
    """A list key that names each of its items at most once."""

    def check(value: list) -> list:
        if len(set(value)) != len(value):
            raise ValueError(f"should name each {what} at most once")
        return value

    return AfterValidator(check)


def key(annotation: object, description: str) -> object:
    """A params key: its type and constraints, with the description docs/parameters.md shows."""
    return Annotated[annotation, Field(description=description)]


PositiveRate = Annotated[float, Field(gt=0, le=1)]
# A peak learning rate, or "auto": the range test's suggestion (training/lr_finder.py).
LearningRate = PositiveRate | Literal["auto"]
Units = Annotated[int, Field(ge=1, le=8192)]


class PrepareParams(Group):
    """`prepare`: how images are validated, sized and split."""

    image_size: key(
        auto_or_int(MIN_IMAGE_SIZE, MAX_IMAGE_SIZE, "pixels", " (ResNet50's minimum)"),
        "model input side in pixels; auto: the images' median longer side, rounded up to "
        "16, kept within 32-128",
    )
    val_fraction: key(Fraction, "flat class folders: share of each class for validation")
    test_fraction: key(Fraction, "flat class folders: share of each class held out for test")
    seed: key(Seed, "makes the split reproducible")
    max_pixels: key(
        Annotated[int, Field(ge=1, le=1_000_000_000)],
        "files declaring more pixels are skipped (decompression bombs)",
    )


class TrainParams(Group):
    """`train`: the recipe every candidate trains with."""

    epochs: key(
        auto_or_int(1, 10_000, "epochs"),
        "auto: enough for about 1,000 optimizer steps, 10 to 30 epochs",
    )
    batch_size: key(Annotated[int, Field(ge=1, le=4096)], "images per optimizer step")
    optimizer: key(Literal["adam", "adamw", "sgd", "rmsprop"], "the Keras optimizer")
    weight_decay: key(
        Annotated[float, Field(ge=0, le=1)], "decoupled weight decay (all optimizers); 0: off"
    )
    lr_schedule: key(
        Literal["cosine", "constant"], "cosine: decay to 0 by the last epoch; constant: none"
    )
    warmup_epochs: key(Annotated[int, Field(ge=0, le=1000)], "linear learning-rate warm-up from 0")
    label_smoothing: key(Annotated[float, Field(ge=0, lt=1)], "of the one-hot targets")
    class_weight: key(
        Literal["auto", "balanced", "none"],
        "auto: balanced loss weights when class sizes differ more than 1.5x",
    )
    early_stopping_patience: key(
        Annotated[int, Field(ge=0, le=1000)],
        "epochs without a better validation accuracy before stopping (best epoch restored); 0: off",
    )
    seed: key(Seed, "seeds weights, shuffling and augmentation")
    distribute: key(
        Literal["auto", "none", "mirrored", "multi_worker"],
        "tf.distribute strategy; auto: multi_worker when TF_CONFIG is set, mirrored on "
        "several GPUs, else none",
    )


class AugmentParams(Group):
    """`augment`: random changes to training images (never at inference)."""

    horizontal_flip: key(bool, "random left-right flips")
    translate: key(
        Annotated[float, Field(ge=0, le=0.5)], "random shift, fraction of the image size; 0: off"
    )
    rotation: key(Annotated[float, Field(ge=0, le=0.5)], "fraction of a full turn; 0: off")
    zoom: key(Annotated[float, Field(ge=0, lt=1)], "fraction of the image size; 0: off")


def input_size_key(low: int, high: int) -> object:
    """A family's `image_size` key; auto keeps the prepared size within [low, high]."""
    return key(
        auto_or_int(MIN_IMAGE_SIZE, MAX_IMAGE_SIZE, "pixels"),
        "side the model works at, resized inside from the prepared size; auto: the prepared "
        f"size, kept within {low}-{high}",
    )


class TransferParams(Group):
    """What every transfer-learning family's group holds: its head and how it trains."""

    image_size: input_size_key(MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)  # each family sets its bounds
    dense_units: key(Units, "units of the head's dense layer")
    dropout: key(Probability, "dropout in the head")
    learning_rate: key(LearningRate, "peak learning rate of the head; auto: found by a range test")
    augmented_views: key(
        Annotated[int, Field(ge=0, le=50)],
        "augmented copies of the training set cached as features (pretrained base only)",
    )
    fine_tune_layers: key(
        Annotated[int, Field(ge=0, le=1000)],
        "> 0 unfreezes the top N layers of the base after head training",
    )
    fine_tune_epochs: key(Annotated[int, Field(ge=0, le=10_000)], "epochs of fine-tuning")
    fine_tune_learning_rate: key(PositiveRate, "peak learning rate of fine-tuning")


AuditFinding = Literal["label_issues", "near_duplicates", "outliers"]


class AuditParams(Group):
    """`audit`: likely label errors, near-duplicates and outliers, on pretrained features."""

    variant: key(
        Literal["lite0", "lite1", "lite2"],
        "the EfficientNet-Lite whose ImageNet features it compares",
    )
    image_size: input_size_key(64, 128)
    folds: key(
        Annotated[int, Field(ge=2, le=20)],
        "k-fold cross-validation: each label is judged by a classifier that did not see it",
    )
    duplicate_distance: key(
        Annotated[float, Field(gt=0, le=1)],
        "pairs closer than this share of the typical nearest-neighbour distance, in pixels "
        "and in features, are near-duplicates",
    )
    outlier_z: key(
        Annotated[float, Field(gt=0)],
        "images farther from their nearest class than the data set's typical image by more "
        "than this many robust standard deviations (MAD) are outliers",
    )
    gallery: key(
        Annotated[int, Field(ge=0, le=256)],
        "likeliest label errors drawn in audit/label_issues.png",
    )
    exclude: key(
        Annotated[
            list[AuditFinding],
            each_once("finding"),
            Allowed("a list of label_issues, near_duplicates, outliers (each once); []"),
        ],
        "findings whose training and validation images are left out of training "
        "(listed in audit/excluded.csv); []: report only",
    )


class CompareParams(Group):
    """`compare`: how the winner is chosen."""

    metric: key(
        Literal["val_accuracy", "val_loss", "val_macro_f1"],
        "validation metric the candidates are ranked on",
    )


ExportFormat = Literal[CONVERTED]  # the bundle's converted formats (bundle.py)


class ExportParams(Group):
    """`export`: calibration, "not sure", and what the export shows."""

    calibrate: key(bool, "temperature scaling on the validation split")
    top_k: key(Annotated[int, Field(ge=1, le=1000)], "probabilities an answer lists by default")
    target_accuracy: key(
        Annotated[float, Field(ge=0, lt=1)],
        "answers below the confidence that reaches this accuracy on validation are marked "
        '"not sure"; 0 answers everything',
    )
    mistakes: key(
        Annotated[int, Field(ge=0, le=256)], "most confidently wrong test images in the gallery"
    )
    tta: key(
        Literal["none", "flips", "flips_crops", "auto"],
        "test-time augmentation inside the exported model: the mean answer over the image "
        "and its mirror image (flips), and their centre crops (flips_crops); auto keeps the "
        "one with the best validation accuracy, none on a tie (docs/deploying.md)",
    )
    formats: key(
        Annotated[
            list[ExportFormat],
            each_once("format"),
            Allowed(f"a list of {', '.join(CONVERTED)} (each once); [] for Keras only"),
        ],
        "formats written beside the Keras model and the SavedModel, each checked against it on "
        "the test split (docs/deploying.md)",
    )
    quantization_images: key(
        Annotated[int, Field(ge=1, le=10_000)],
        "training images that calibrate the int8 files' ranges",
    )
    unfamiliar_share: key(
        Annotated[float, Field(ge=0, le=0.5)],
        "share of validation images scored above the unfamiliarity threshold, which it sets "
        "(docs/serving.md); 0 flags nothing",
    )
