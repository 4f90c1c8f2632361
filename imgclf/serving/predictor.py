"""Load an exported model once and predict images with it: the one call users need.

from imgclf.serving import Predictor
predictor = Predictor.load("models/best")
predictor.predict("photo.jpg")  # {"prediction": "Cat", "confidence": 0.94, "uncertain": false,
                               #  "answer": "Cat", "probabilities": {...}}
answer, heatmap = predictor.explain("photo.jpg")  # the same answer, and a PIL image of
                                                   # Grad-CAM laid over the photo

Below the export's confidence threshold (metadata `confidence_threshold`, see
evaluation/selective.py) the answer is marked uncertain: "prediction" stays the best
guess, "answer" reads "not sure — maybe Cat".
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from imgclf import paths
from imgclf.evaluation.selective import is_uncertain
from imgclf.explain.heatmap import overlay
from imgclf.images import DEFAULT_MAX_PIXELS, load_image
from imgclf.stage_files import ExportMetadata, StageFileError

DEFAULT_EXPORT_DIR = paths.EXPORT


class ModelNotExportedError(FileNotFoundError):
    """There is no complete, usable export in the model directory."""


@dataclass
class Predictor:
    """An exported model with its class names and input size."""

    model: object  # keras.Model; typed loosely so importing this module stays light
    metadata: ExportMetadata
    max_pixels: int = DEFAULT_MAX_PIXELS
    _gradcam: object = field(default=None, repr=False)  # built on the first explain()
    _gradcam_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        # Keras makes its compiled predict step on first use; made here, once, threads
        # (the web app's, the CLI's) never race to make it.
        self.model.make_predict_function()

    @classmethod
    def load(cls, export_dir: Path | str = DEFAULT_EXPORT_DIR) -> Predictor:
        """Load models/best (or another export directory)."""
        export_dir = Path(export_dir)
        metadata_file, model_file = export_dir / "metadata.json", export_dir / "model.keras"
        if not (metadata_file.is_file() and model_file.is_file()):
            raise ModelNotExportedError(
                f"no exported model in {export_dir}/ (needs model.keras and metadata.json): "
                "run `dvc repro` (or `make repro`) to train and export one"
            )
        import keras

        try:
            metadata = ExportMetadata.read(metadata_file, "dvc repro export")
        except StageFileError as exc:
            raise ModelNotExportedError(f"no usable export in {export_dir}/: {exc}") from None
        try:
            model = keras.models.load_model(model_file)
        except Exception as exc:  # a truncated or foreign file fails in many ways inside Keras
            raise ModelNotExportedError(
                f"{model_file} cannot be loaded ({type(exc).__name__}: {exc}): run `dvc repro "
                "export` again"
            ) from None
        expected = (
            (None, metadata.image_size, metadata.image_size, 3),
            (None, metadata.num_classes),
        )
        if (tuple(model.input_shape), tuple(model.output_shape)) != expected:
            raise ModelNotExportedError(
                f"{export_dir}/ does not hang together: the model takes {model.input_shape} and "
                f"gives {model.output_shape}, metadata.json says {metadata.image_size} px and "
                f"{metadata.num_classes} classes: run `dvc repro export` again"
            )
        return cls(model, metadata)

    @property
    def class_names(self) -> list[str]:
        return self.metadata.class_names

    @property
    def image_size(self) -> int:
        return self.metadata.image_size

    @property
    def confidence_threshold(self) -> float:
        """Answers below this confidence are marked uncertain (0 for older exports)."""
        return self.metadata.confidence_threshold

    def pixels(self, image: bytes | str | Path) -> np.ndarray:
        """The model input for one image file or its bytes (raises ImageDecodeError)."""
        return load_image(image, self.image_size, self.max_pixels)

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """Class probabilities for a batch of model inputs."""
        # Keras' compiled predict step: about a tenth of the time of an eager call for a
        # lone image (docs/benchmarks.md), with the same numbers.
        return np.asarray(self.model.predict_on_batch(batch.astype("float32")))

    def describe(self, probabilities: np.ndarray, top_k: int | None = None) -> dict:
        """The answer users see: label, its confidence and the (top-k) probabilities."""
        return self.describe_batch(np.asarray(probabilities)[None], top_k)[0]

    def describe_batch(self, probabilities: np.ndarray, top_k: int | None = None) -> list[dict]:
        """`describe` for each row of a batch of probabilities (one sort for the batch)."""
        names = self.class_names
        orders = np.argsort(-probabilities, axis=1, kind="stable")[:, : top_k or len(names)]
        answers = []
        for row, order in zip(probabilities.tolist(), orders.tolist(), strict=True):
            label, confidence = names[order[0]], row[order[0]]
            uncertain = is_uncertain(confidence, self.confidence_threshold)
            answers.append({
                "prediction": label,
                "confidence": confidence,
                "uncertain": uncertain,
                "answer": f"not sure — maybe {label}" if uncertain else label,
                "probabilities": {names[i]: row[i] for i in order},
            })  # fmt: skip
        return answers

    def predict(self, image: bytes | str | Path, top_k: int | None = None) -> dict:
        """Predict one image file or its bytes."""
        batch = self.pixels(image)[None]
        return self.describe(self.probabilities(batch)[0], top_k)

    def _explainer(self) -> object:
        with self._gradcam_lock:
            if self._gradcam is None:
                from imgclf.explain.gradcam import GradCam

                self._gradcam = GradCam(self.model)
        return self._gradcam

    def explain_pixels(self, pixels: np.ndarray, top_k: int | None = None) -> tuple[dict, object]:
        """The answer for one model input, and Grad-CAM of its predicted class over it."""
        probabilities, heatmaps = self._explainer().explain(pixels[None])
        return self.describe(probabilities[0], top_k), overlay(pixels, heatmaps[0])

    def explain(self, image: bytes | str | Path, top_k: int | None = None) -> tuple[dict, object]:
        """predict(), plus a PIL image of the heatmap of what drove it, laid over the image."""
        return self.explain_pixels(self.pixels(image), top_k)
