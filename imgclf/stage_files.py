"""The files that pass between stages, each with one typed definition, read and written here.

- prepared/classes.json: `PreparedInfo` (prepare -> the trainers, export)
- metrics/<family>.json: `TrainedMetrics` (a train stage -> compare, export)
- metrics/compare.json: `Comparison` (compare -> export)
- the export's metadata (bundle.py): `ExportMetadata` (export -> the web app, the CLI)

A file that is missing says which stage makes it; one that does not match its
definition (written by another version, edited by hand) says which key is wrong.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from imgclf import paths
from imgclf.atomic_io import write_json

Artifact = TypeVar("Artifact", bound="_File")


class StageFileError(ValueError):
    """A file between stages is unreadable or does not match its definition."""


class _File(BaseModel):
    # Unknown keys are ignored, so a newer file still reads; known keys are checked.
    model_config = ConfigDict(extra="ignore", frozen=True)
    # Keys left out of the file when None (a key that belongs to some families only).
    _omit_none = False

    def write(self, path: Path) -> None:
        write_json(path, self.model_dump(mode="json", exclude_none=self._omit_none))

    @classmethod
    def read(cls: type[Artifact], path: Path, made_by: str) -> Artifact:
        """Read `path`; a missing file names `made_by`, the command that makes it."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: run `{made_by}` first")
        try:
            return cls.model_validate(json.loads(path.read_text(encoding="utf-8")))
        except json.JSONDecodeError as exc:
            raise StageFileError(
                f"{path} is not valid JSON ({exc}): run `{made_by}` again"
            ) from None
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            raise StageFileError(
                f"{path} does not match what this version expects ({problems}): "
                f"run `{made_by}` again"
            ) from None


class PreparedInfo(_File):
    """prepared/classes.json: the class names in label order and the prepared image size."""

    class_names: list[str]
    image_size: int
    image_size_param: int | Literal["auto"]  # what params.yaml asked for

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @classmethod
    def load(cls, prepared: Path = paths.PREPARED) -> PreparedInfo:
        return cls.read(Path(prepared) / paths.PREPARED_INFO.name, "dvc repro prepare")


class ClassScores(BaseModel):
    precision: float
    recall: float
    f1: float


class TrainedMetrics(_File):
    """metrics/<family>.json: a trained candidate on the validation split, and how it trained.

    No wall times: they differ run to run and would make every re-run look like a
    change to `dvc metrics diff`; they are in timings/<stage>.json.
    """

    _omit_none = True

    val_accuracy: float
    val_loss: float
    val_macro_f1: float
    val_per_class: dict[str, ClassScores]
    epochs_trained: int
    class_weighted: bool
    params_total: int
    params_trainable: int
    workers: int
    input_size: int | None = None  # the side the model works at (None in older metrics)
    learning_rate: float | None = None  # the peak rate it trained with (auto: the range test's)
    # Transfer-learning families only.
    backbone: str | None = None  # "resnet50", "efficientnet-lite0"
    pretrained: bool | None = None
    augmented_views: int | None = None

    @classmethod
    def load(cls, family: str) -> TrainedMetrics:
        return cls.read(paths.metrics_file(family), f"dvc repro train_{family}")

    def score(self, metric: str) -> float:
        """The validation metric `compare` selects on (val_accuracy, val_loss, val_macro_f1)."""
        return float(getattr(self, metric))


class Comparison(_File):
    """metrics/compare.json: every candidate's score on the compare metric, and the winner.

    On disk each score is a key of its own (`cnn_val_accuracy`, ...), so `dvc metrics
    show` lists them side by side.
    """

    metric: str
    scores: dict[str, float]  # by family, in registry order
    margin: float  # between the winner and the runner-up, positive when the winner is better
    selected: str

    def write(self, path: Path = paths.METRICS / "compare.json") -> None:
        write_json(path, {
            "metric": self.metric,
            **{f"{family}_{self.metric}": score for family, score in self.scores.items()},
            "margin": self.margin,
            "selected": self.selected,
        })  # fmt: skip

    @classmethod
    def load(cls, path: Path = paths.METRICS / "compare.json") -> Comparison:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: run `dvc repro compare` first")
        raw = json.loads(path.read_text(encoding="utf-8"))
        suffix = f"_{raw.get('metric')}"
        scores = {key.removesuffix(suffix): v for key, v in raw.items() if key.endswith(suffix)}
        try:
            return cls.model_validate({**raw, "scores": scores})
        except ValidationError as exc:
            raise StageFileError(
                f"{path} is not a comparison ({exc}): run `dvc repro compare`"
            ) from None


class Calibration(BaseModel):
    temperature: float
    applied: bool
    reason: str
    val_ece_before: float
    val_ece_after: float
    test_ece_before: float
    test_ece_after: float


class ExportMetadata(_File):
    """The export's metadata (bundle.py): what a server needs to know about the exported model."""

    class_names: list[str]
    image_size: int
    selected_model: str  # the family's name
    compare_metric: str
    input_size: int | None = None  # the side the model works at inside (None in old exports)
    backbone: str | None = None  # a transfer family's base ("efficientnet-lite0")
    pretrained: bool | None  # None for families trained from scratch
    val_accuracy: float
    val_macro_f1: float
    test_accuracy: float
    test_macro_f1: float
    calibration: Calibration
    data_version: str | None  # the md5 of data/ in data.dvc
    top_k: int
    confidence_threshold: float = 0.0  # answers below it are "not sure" (0 in old exports)
    target_accuracy: float = 0.0
    # Images scoring above it are unlike the training images (None: never flagged, as in
    # exports made before the score; models/familiarity.py).
    unfamiliar_threshold: float | None = None
    # Each class's share of the training images: the mix serving compares its answers with.
    class_shares: list[float] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)
