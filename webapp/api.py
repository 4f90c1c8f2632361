"""The JSON API: predict, and what an operator asks of a server (health, readiness, metrics)."""

from __future__ import annotations

import base64

import numpy as np
from flask import Blueprint, current_app, g, jsonify, request

from imgclf.explain.heatmap import png_bytes
from imgclf.images import ImageDecodeError
from imgclf.serving.predictor import Predictor
from imgclf.serving.runtimes import RuntimeUnavailable
from webapp.errors import ApiError
from webapp.model_service import model_service
from webapp.observability import metrics_response

bp = Blueprint("api", __name__)


def _top_k(predictor: Predictor) -> int:
    raw = request.args.get("top_k")
    if raw is None:
        return len(predictor.class_names)
    # ASCII digits only: str.isdigit() also takes "²" and "٣", which int() refuses or reads.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9 or int(raw) < 1:
        raise ApiError(400, f"top_k = {raw!r}: give a whole number of at least 1")
    return int(raw)


def _explain() -> bool:
    raw = request.args.get("explain", "0")
    if raw not in ("0", "1", "true", "false"):
        raise ApiError(400, f"explain = {raw!r}: give 1 (add a Grad-CAM heatmap) or 0")
    return raw in ("1", "true")


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
    service = model_service()
    # A place among the requests this worker lets wait, taken before any work: beyond
    # them a request is refused at once (503), never decoded.
    with service.admitted():
        loaded = service.acquire()  # this request's export, to the end, even if a new one arrives
        predictor = loaded.predictor
        top_k, explain = _top_k(predictor), _explain()
        inputs = []
        for upload in uploads:
            name = upload.filename or "upload"
            try:
                # The bytes decide what the file is; its name and declared type are not
                # trusted. A few decodes at once per worker, each bounded in memory.
                with service.decoding():
                    inputs.append(predictor.pixels(upload.read()))
            except ImageDecodeError as exc:
                raise ApiError(400, f"{name} is not a usable image: {exc}") from None
        if explain:
            # A gradient pass per image, outside the batcher: plain predictions never wait.
            answers = []
            for pixels in inputs:
                try:
                    with service.explaining(g.deadline):
                        answer, heatmap = predictor.explain_pixels(pixels, top_k)
                except RuntimeUnavailable as exc:
                    raise ApiError(501, f"explain: {exc}") from None
                answer["heatmap_png"] = base64.b64encode(png_bytes(heatmap)).decode("ascii")
                answers.append(answer)
        else:
            scores = service.scores(loaded, np.stack(inputs), g.deadline)
            answers = predictor.describe_batch(scores, top_k)
    loaded.recent.record(answers, loaded.class_shares)
    return jsonify(answers if len(answers) > 1 else answers[0])


@bp.get("/health")
def health():
    return jsonify(status="ok")


@bp.get("/ready")
def ready():
    """200 once the model is loaded and warmed up; 503 while it loads, or with the reason."""
    service = model_service()
    if service.ready:
        return jsonify(status="ready", export_id=service.current.export_id)
    if service.loading:
        return jsonify(status="loading"), 503, {"Retry-After": "1"}
    return jsonify(status="not ready", error=service.error), 503


@bp.get("/model")
def model():
    return jsonify(model_service().describe())


@bp.get("/metrics")
def metrics():
    return metrics_response()
