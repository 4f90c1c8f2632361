"""One model's predictions on one split, and what can be read from them.

After fastai's `ClassificationInterpretation`: made once from a model and a split
(`Interpretation.of`), it holds the probabilities and gives the metrics, the
confusion rows DVC draws, the most confused pairs, the top losses (the most
confidently wrong images), reliability, the risk-coverage curve, and the gallery of
top losses with Grad-CAM. `with_probabilities` gives the same split under other
probabilities (calibrated ones, say) without running the model again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import keras
import numpy as np
from PIL import Image

from imgclf.data.prepared import PreparedSplit
from imgclf.evaluation import calibration, selective
from imgclf.evaluation.metrics import classification_metrics, confident_mistakes, most_confused
from imgclf.models.inference import inference_batch_size, predict_in_batches

SPLIT_WORDS = {"train": "training", "val": "validation", "test": "test"}


@dataclass(frozen=True)
class Interpretation:
    """Predicted probabilities for every image of a split, with their labels and files."""

    split_name: str  # "val" or "test": the prefix of the metrics' names
    split: PreparedSplit
    class_names: list[str]
    probabilities: np.ndarray  # (images, classes)

    @classmethod
    def of(
        cls, model: keras.Model, split: PreparedSplit, split_name: str, class_names: list[str]
    ) -> Interpretation:
        """Run `model` over every image of `split` (read batch by batch)."""
        batch = inference_batch_size(split.images.shape[1])
        return cls(split_name, split, class_names, predict_in_batches(model, split.images, batch))

    def with_probabilities(self, probabilities: np.ndarray) -> Interpretation:
        return replace(self, probabilities=probabilities)

    @property
    def labels(self) -> np.ndarray:
        return self.split.labels

    @property
    def predicted(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    def metrics(self) -> dict:
        """Accuracy, loss, macro F1 and per-class scores, named `<split>_...`."""
        return classification_metrics(
            self.probabilities, self.labels, self.class_names, self.split_name
        )

    def confusion_rows(self) -> list[dict]:
        """One {"actual", "predicted"} row per image, for DVC's confusion template."""
        names = self.class_names
        return [
            {"actual": names[a], "predicted": names[p]}
            for a, p in zip(self.labels, self.predicted, strict=True)
        ]

    def most_confused(self, count: int) -> list[dict]:
        """The `count` (actual, predicted) pairs mistaken most often, with their counts."""
        return most_confused(self.labels, self.predicted, self.class_names, count)

    def top_losses(self, count: int) -> list[dict]:
        """The `count` wrong predictions made with the highest confidence, most confident first."""
        return confident_mistakes(
            self.probabilities, self.labels, self.split.files, self.class_names, count
        )

    def reliability(self) -> list[dict]:
        """Accuracy against mean confidence per confidence bin."""
        return calibration.reliability(self.probabilities, self.labels)

    def calibration_error(self) -> float:
        """Expected calibration error over the same bins."""
        return calibration.expected_calibration_error(self.probabilities, self.labels)

    def risk_coverage(self, max_points: int | None = None) -> list[dict]:
        """Accuracy of the answered images against the share answered, per threshold."""
        return selective.risk_coverage(self.probabilities, self.labels, max_points)

    def answered(self, threshold: float) -> dict:
        """Accuracy and share of the images answered at a confidence threshold."""
        return selective.answered(self.probabilities, self.labels, threshold)

    def plot_top_losses(
        self, model: keras.Model, count: int, model_name: str
    ) -> tuple[list[dict], Image.Image]:
        """The top losses and their gallery: each image beside Grad-CAM of its wrong class."""
        from imgclf.evaluation.gallery import draw_gallery
        from imgclf.explain.gradcam import GradCam  # TensorFlow: only when a gallery is drawn

        mistakes = self.top_losses(count)
        rows = [mistake["row"] for mistake in mistakes]
        pixels = self.split.images[rows]
        heatmaps = GradCam(model).heatmaps(pixels, self.predicted[rows]) if rows else []
        title = (
            f"The {len(mistakes)} most confidently wrong {SPLIT_WORDS[self.split_name]} images "
            f"({model_name}): the image, and Grad-CAM of the class it was wrongly given"
        )
        return mistakes, draw_gallery(mistakes, pixels, heatmaps, title)


def mistakes_to_review(splits: list[Interpretation], count: int) -> list[dict]:
    """The `count` most confident wrong predictions over `splits`, most confident first,
    as rows for labels review: split, file, given, predicted, confidence."""
    rows = [
        {"split": split.split_name, "file": mistake["file"], "given": mistake["actual"],
         "predicted": mistake["predicted"], "confidence": mistake["confidence"]}
        for split in splits
        for mistake in split.top_losses(count)
    ]  # fmt: skip
    return sorted(rows, key=lambda row: (-row["confidence"], row["split"], row["file"]))[:count]
