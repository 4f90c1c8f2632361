"""The page and the JSON API."""

from __future__ import annotations

import base64

import numpy as np
from flask import Blueprint, current_app, jsonify, render_template, request

from imgclf.heatmap import png_bytes
from imgclf.images import ImageDecodeError
from imgclf.predictor import Predictor
from webapp.errors import ApiError
from webapp.observability import PREDICTIONS, metrics_response

bp = Blueprint("api", __name__)


def _predictor() -> Predictor:
    predictor = current_app.extensions["predictor"]
    if predictor is None:
        raise ApiError(503, current_app.extensions["model_error"])
    return predictor


def _top_k(predictor: Predictor) -> int:
    raw = request.args.get("top_k")
    if raw is None:
        return len(predictor.class_names)
    if not raw.isdigit() or int(raw) < 1:
        raise ApiError(400, f"top_k = {raw!r}: give a whole number of at least 1")
    return int(raw)


def _explain() -> bool:
    raw = request.args.get("explain", "0")
    if raw not in ("0", "1", "true", "false"):
        raise ApiError(400, f"explain = {raw!r}: give 1 (add a Grad-CAM heatmap) or 0")
    return raw in ("1", "true")


@bp.get("/")
def index():
    predictor = current_app.extensions["predictor"]
    metadata = predictor.metadata if predictor else None
    return render_template(
        "index.html", metadata=metadata, model_error=current_app.extensions["model_error"],
        max_files=current_app.config["MAX_FILES"],
    )  # fmt: skip


@bp.post("/predict")
def predict():
    if request.mimetype != "multipart/form-data":
        raise ApiError(
            415, "send the image as multipart/form-data in a field named 'file' "
            "(curl -F file=@photo.jpg .../predict)",
        )  # fmt: skip
    uploads = request.files.getlist("file")
    if not uploads:
        raise ApiError(400, "no file: send the image in a multipart form field named 'file'")
    if len(uploads) > current_app.config["MAX_FILES"]:
        raise ApiError(
            400, f"too many files: send at most {current_app.config['MAX_FILES']} per request"
        )
    predictor = _predictor()
    top_k, explain = _top_k(predictor), _explain()
    inputs = []
    for upload in uploads:
        name = upload.filename or "upload"
        try:
            # The bytes decide what the file is; its name and declared type are not trusted.
            inputs.append(predictor.pixels(upload.read()))
        except ImageDecodeError as exc:
            raise ApiError(400, f"{name} is not a usable image: {exc}") from None
    if explain:
        # A gradient pass per image, outside the batcher: plain predictions never wait on it.
        answers = []
        for pixels in inputs:
            answer, heatmap = predictor.explain_pixels(pixels, top_k)
            answer["heatmap_png"] = base64.b64encode(png_bytes(heatmap)).decode("ascii")
            answers.append(answer)
    else:
        probabilities = current_app.extensions["batcher"].submit(np.stack(inputs))
        answers = predictor.describe_batch(np.asarray(probabilities), top_k)
    for answer in answers:
        PREDICTIONS.labels(answer["prediction"]).inc()
    return jsonify(answers if len(answers) > 1 else answers[0])


@bp.get("/health")
def health():
    return jsonify(status="ok")


@bp.get("/ready")
def ready():
    if current_app.extensions["predictor"] is None:
        return jsonify(status="not ready", error=current_app.extensions["model_error"]), 503
    return jsonify(status="ready")


@bp.get("/model")
def model():
    return jsonify(_predictor().metadata)


@bp.get("/metrics")
def metrics():
    return metrics_response()
