"""Load an exported model once and predict images with it: the one call users need.

from imgclf.predictor import Predictor
predictor = Predictor.load("models/best")
predictor.predict("photo.jpg")  # {"prediction": "Cat", "confidence": 0.94, "probabilities": {...}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgclf.images import DEFAULT_MAX_PIXELS, decode

DEFAULT_EXPORT_DIR = Path("models/best")


class ModelNotExportedError(FileNotFoundError):
    """There is no complete export in the model directory."""


@dataclass
class Predictor:
    """An exported model with its class names and input size."""

    model: object  # keras.Model; typed loosely so importing this module stays light
    metadata: dict
    max_pixels: int = DEFAULT_MAX_PIXELS

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

        metadata = json.loads(metadata_file.read_text(encoding="utf-8"))
        return cls(keras.models.load_model(model_file), metadata)

    @property
    def class_names(self) -> list[str]:
        return self.metadata["class_names"]

    @property
    def image_size(self) -> int:
        return self.metadata["image_size"]

    def pixels(self, image: bytes | str | Path) -> np.ndarray:
        """The model input for one image file or its bytes (raises ImageDecodeError)."""
        data = image if isinstance(image, bytes) else Path(image).read_bytes()
        return decode(data, self.image_size, self.max_pixels).pixels

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """Class probabilities for a batch of model inputs."""
        return np.asarray(self.model(batch.astype("float32"), training=False))

    def describe(self, probabilities: np.ndarray, top_k: int | None = None) -> dict:
        """The answer users see: label, its confidence and the (top-k) probabilities."""
        order = np.argsort(-probabilities, kind="stable")[: top_k or len(self.class_names)]
        best = int(order[0])
        return {
            "prediction": self.class_names[best],
            "confidence": float(probabilities[best]),
            "probabilities": {self.class_names[i]: float(probabilities[i]) for i in order},
        }

    def predict(self, image: bytes | str | Path, top_k: int | None = None) -> dict:
        """Predict one image file or its bytes."""
        batch = self.pixels(image)[None]
        return self.describe(self.probabilities(batch)[0], top_k)
