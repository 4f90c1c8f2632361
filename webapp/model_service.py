"""The model a worker serves: loaded once at start-up, warmed up, shared by its requests."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from flask import Flask, current_app

from imgclf.serving.predictor import ModelNotExportedError, Predictor
from webapp import observability
from webapp.batching import MicroBatcher
from webapp.errors import ApiError

log = logging.getLogger("webapp")


class ModelService:
    """The export in `model_dir`, or why there is none, and the micro-batcher in front of it."""

    def __init__(self, model_dir: Path | str, max_batch: int) -> None:
        self.model_dir = Path(model_dir)
        self.predictor: Predictor | None = None
        self.error: str | None = None
        # The predictor is looked up at call time, so a new one takes over without a restart.
        self.batcher = MicroBatcher(lambda batch: self.require().probabilities(batch), max_batch)

    def load(self) -> None:
        """Load the export and warm it up with a prediction; without one, record why."""
        started = time.perf_counter()
        try:
            predictor = Predictor.load(self.model_dir)
        except ModelNotExportedError as exc:
            self.predictor, self.error = None, str(exc)
            log.warning("serving without a model: %s", exc)
            return
        size = predictor.image_size
        for batch in (1, 2):  # a second batch size makes Keras trace one graph for any size, now
            predictor.probabilities(np.zeros((batch, size, size, 3), dtype=np.uint8))
        seconds = time.perf_counter() - started
        observability.MODEL_LOAD_SECONDS.set(seconds)
        self.predictor, self.error = predictor, None
        log.info(
            "loaded %s from %s in %.1fs", predictor.metadata.selected_model, self.model_dir, seconds
        )

    @property
    def ready(self) -> bool:
        return self.predictor is not None

    def require(self) -> Predictor:
        """The predictor, or a 503 saying why there is none."""
        if self.predictor is None:
            raise ApiError(503, self.error or "no model loaded")
        return self.predictor

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """Class probabilities for model inputs, in a model call shared with concurrent requests."""
        return np.asarray(self.batcher.submit(batch))


def install(app: Flask) -> ModelService:
    """Make the app's model service and load its export (once per process)."""
    service = ModelService(str(app.config["MODEL_DIR"]), app.config["MAX_BATCH"])
    service.load()
    app.extensions["imgclf"] = service
    return service


def model_service(app: Flask | None = None) -> ModelService:
    """The model service of `app` (default: the app handling the current request)."""
    return (app or current_app).extensions["imgclf"]
