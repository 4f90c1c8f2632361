"""The web page: choose or drop images, see each one's label, confidence and heatmap."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

from imgclf import models
from webapp.model_service import model_service

bp = Blueprint("page", __name__)


@bp.get("/")
def index():
    service = model_service()
    current = service.current
    metadata = current.predictor.metadata if current else None
    return render_template(
        "index.html",
        metadata=metadata,
        model_title=model_title(metadata.selected_model) if metadata else None,
        model_error=service.error,
        loading=service.loading,
        max_files=current_app.config["MAX_FILES"],
        token_required=bool(current_app.config["API_TOKEN"]),
    )


def model_title(family: str) -> str:
    """What people call the served family ("custom CNN"), or its name for an unknown one."""
    try:
        return models.get(family).title
    except KeyError:
        return family
