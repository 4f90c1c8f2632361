"""The web app: a page and a JSON API serving the model that the `export` stage wrote.

gunicorn 'webapp:create_app()'        # production (see `make serve`)
python -m webapp                      # development server
"""

from __future__ import annotations

import io
import logging
import os
import time
from typing import Any

import numpy as np
from flask import Flask, Request

from imgclf.predictor import DEFAULT_EXPORT_DIR, ModelNotExportedError, Predictor
from webapp import errors, observability
from webapp.batching import MicroBatcher
from webapp.routes import bp

log = logging.getLogger("webapp")


class InMemoryRequest(Request):
    """Keeps uploads in memory (bounded by MAX_CONTENT_LENGTH): nothing is written to disk."""

    def _get_file_stream(self, *args: Any, **kwargs: Any) -> io.BytesIO:
        return io.BytesIO()


def _config_from_environment() -> dict:
    return {
        "MODEL_DIR": os.environ.get("IMGCLF_MODEL_DIR", str(DEFAULT_EXPORT_DIR)),
        "MAX_CONTENT_LENGTH": int(float(os.environ.get("IMGCLF_MAX_UPLOAD_MB", "10")) * 2**20),
        "MAX_FILES": int(os.environ.get("IMGCLF_MAX_FILES", "16")),
        "MAX_BATCH": int(os.environ.get("IMGCLF_MAX_BATCH", "32")),
    }


def load_predictor(app: Flask) -> None:
    """Load the export once, at start-up, and warm it up with one prediction."""
    app.extensions["predictor"] = None
    app.extensions["model_error"] = None
    started = time.perf_counter()
    try:
        predictor = Predictor.load(app.config["MODEL_DIR"])
    except ModelNotExportedError as exc:
        app.extensions["model_error"] = str(exc)
        log.warning("serving without a model: %s", exc)
        return
    size = predictor.image_size
    for batch in (1, 2):  # a second batch size makes Keras trace one graph for any size, now
        predictor.probabilities(np.zeros((batch, size, size, 3), dtype=np.uint8))
    seconds = time.perf_counter() - started
    observability.MODEL_LOAD_SECONDS.set(seconds)
    app.extensions["predictor"] = predictor
    app.extensions["batcher"] = MicroBatcher(
        # Looked up at call time, so the model can be swapped (tests do) without a restart.
        lambda batch: app.extensions["predictor"].probabilities(batch),
        max_batch=app.config["MAX_BATCH"],
    )
    log.info(
        "loaded %s from %s in %.1fs",
        predictor.metadata["selected_model"],
        app.config["MODEL_DIR"],
        seconds,
    )


def create_app(config: dict | None = None) -> Flask:
    """Application factory: configuration from the environment, overridden by `config`."""
    app = Flask(__name__)
    app.request_class = InMemoryRequest
    app.json.sort_keys = False  # probabilities keep their order, most likely first
    app.config.update(_config_from_environment())
    app.config.update(config or {})
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    load_predictor(app)
    app.register_blueprint(bp)
    errors.register(app)
    observability.register(app)
    return app
