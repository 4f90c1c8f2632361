"""Load an exported model once and predict images with it: the one call users need.

from imgclf.serving import Predictor
predictor = Predictor.load("models/best")  # runtime="onnx", "tflite" or "keras"; default auto
predictor.predict("photo.jpg")  # {"prediction": "Cat", "confidence": 0.94, "uncertain": false,
                               #  "unfamiliar": false, "unfamiliarity": 0.8, "answer": "Cat",
                               #  "probabilities": {...}}
answer, heatmap = predictor.explain("photo.jpg")  # the same answer, and a PIL image of
                                                   # Grad-CAM laid over the photo

Below the export's confidence threshold (metadata `confidence_threshold`, see
evaluation/selective.py) the answer is marked uncertain: "prediction" stays the best
guess, "answer" reads "not sure — maybe Cat". An image unlike the training images
(its "unfamiliarity" above the metadata's `unfamiliar_threshold`, models/familiarity.py)
is marked "unfamiliar"; when the export abstains at all (export.target_accuracy > 0)
it is "not sure" too, whatever its confidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgclf import paths
from imgclf.bundle import Bundle
from imgclf.evaluation.selective import is_uncertain, is_unfamiliar
from imgclf.explain.heatmap import overlay
from imgclf.images import DEFAULT_MAX_DECODED_BYTES, DEFAULT_MAX_PIXELS, load_image
from imgclf.serving import runtimes
from imgclf.serving.runtimes import Runtime, Scores
from imgclf.stage_files import ExportMetadata, StageFileError

DEFAULT_EXPORT_DIR = paths.EXPORT


class ModelNotExportedError(FileNotFoundError):
    """There is no complete, usable export in the model directory."""


@dataclass
class Predictor:
    """An exported model, in one of its runtimes, with its class names and input size."""

    runtime: Runtime  # onnxruntime, LiteRT or Keras (serving/runtimes.py)
    metadata: ExportMetadata
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES  # memory one decode may take

    @classmethod
    def load(
        cls,
        export_dir: Path | str = DEFAULT_EXPORT_DIR,
        runtime: str = "auto",
        threads: int | None = None,
    ) -> Predictor:
        """Load models/best (or another export directory) in `runtime` (auto: the fastest
        installed runtime whose file the export has; runtimes.RUNTIMES), its calls using
        `threads` threads (default: the runtime's own)."""
        bundle = Bundle(export_dir)
        if not bundle.is_export():
            raise ModelNotExportedError(
                f"no exported model in {export_dir}/ (needs {bundle.metadata_file.name} and a "
                "model file): run `dvc repro` (or `make repro`) to train and export one"
            )
        try:
            metadata = bundle.read_metadata()
            opened = runtimes.open_runtime(bundle, runtimes.choose(bundle, runtime), threads)
        except (StageFileError, runtimes.RuntimeUnavailable) as exc:
            raise ModelNotExportedError(
                f"no usable export in {export_dir}/: {exc}; run `dvc repro export` again"
            ) from None
        expected = (
            (None, metadata.image_size, metadata.image_size, 3),
            (None, metadata.num_classes),
        )
        found = opened.io_shapes()
        if found != expected:
            raise ModelNotExportedError(
                f"{export_dir}/ does not hang together: its {opened.name} model takes "
                f"{found[0]} and gives {found[1]}, its metadata says {metadata.image_size} px "
                f"and {metadata.num_classes} classes: run `dvc repro export` again"
            )
        return cls(opened, metadata)

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
        return load_image(image, self.image_size, self.max_pixels, self.max_decoded_bytes)

    @property
    def unfamiliar_threshold(self) -> float | None:
        """Images scoring above this are unfamiliar (None: the export has no score)."""
        return self.metadata.unfamiliar_threshold

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """Class probabilities for a batch of model inputs."""
        return self.runtime.probabilities(batch)

    def scores(self, batch: np.ndarray) -> Scores:
        """Class probabilities and unfamiliarity scores for a batch of model inputs."""
        return self.runtime.scores(batch)

    def describe(self, scores: Scores, top_k: int | None = None) -> dict:
        """The answer users see for one image's scores: label, its confidence, whether the
        image is unfamiliar, and the (top-k) probabilities."""
        return self.describe_batch(scores, top_k)[0]

    def describe_batch(self, scores: Scores, top_k: int | None = None) -> list[dict]:
        """`describe` for each row of a batch's scores (one sort for the batch)."""
        names, probabilities = self.class_names, np.atleast_2d(scores.probabilities)
        orders = np.argsort(-probabilities, axis=1, kind="stable")[:, : top_k or len(names)]
        measured = scores.unfamiliarity is not None and self.unfamiliar_threshold is not None
        unfamiliarity = (
            np.atleast_1d(scores.unfamiliarity).tolist() if measured else [None] * len(orders)
        )
        # Abstaining at all (a target accuracy) means abstaining on what the model never saw.
        abstains = self.metadata.target_accuracy > 0
        answers = []
        for row, order, score in zip(probabilities.tolist(), orders.tolist(), unfamiliarity,
                                     strict=True):  # fmt: skip
            label, confidence = names[order[0]], row[order[0]]
            unfamiliar = bool(score is not None and is_unfamiliar(score, self.unfamiliar_threshold))
            uncertain = is_uncertain(confidence, self.confidence_threshold) or (
                unfamiliar and abstains
            )
            if unfamiliar and abstains:
                answer = f"not sure — unlike the training images (maybe {label})"
            else:
                answer = f"not sure — maybe {label}" if uncertain else label
            answers.append({
                "prediction": label,
                "confidence": confidence,
                "uncertain": uncertain,
                "unfamiliar": unfamiliar,
                "unfamiliarity": score,
                "answer": answer,
                "probabilities": {names[i]: row[i] for i in order},
            })  # fmt: skip
        return answers

    def predict(self, image: bytes | str | Path, top_k: int | None = None) -> dict:
        """Predict one image file or its bytes."""
        return self.describe(self.scores(self.pixels(image)[None]), top_k)

    def explain_pixels(self, pixels: np.ndarray, top_k: int | None = None) -> tuple[dict, object]:
        """The answer for one model input, and Grad-CAM of its predicted class over it.

        The answer is the model's own, as predict() gives it (with test-time views, their
        mean); the heatmap's graph explains the image itself (one more forward pass, a
        small part of the gradient pass's cost)."""
        _, heatmap = self.runtime.explain(pixels)
        return self.describe(self.runtime.scores(pixels[None]), top_k), overlay(pixels, heatmap)

    def explain(self, image: bytes | str | Path, top_k: int | None = None) -> tuple[dict, object]:
        """predict(), plus a PIL image of the heatmap of what drove it, laid over the image."""
        return self.explain_pixels(self.pixels(image), top_k)
