"""The model card of an export: what the model is, its data, its measured quality, its limits.

The card's text is the Jinja2 template templates/model_card.md.j2.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import jinja2

from imgclf import bundle
from imgclf.evaluation.selective import Threshold
from imgclf.models.registry import ModelFamily
from imgclf.stage_files import ExportMetadata

if TYPE_CHECKING:  # the card is rendered without Keras
    from imgclf.evaluation.test_time import ViewChoice

_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    keep_trailing_newline=True,
    trim_blocks=True,  # a line holding only a block tag leaves no blank line behind
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,  # a misspelt field fails the export, not the card
    autoescape=False,  # Markdown, not HTML
)


def render(
    metadata: ExportMetadata,
    family: ModelFamily,
    test_metrics: dict,
    data_counts: dict[str, int],
    confused_pairs: list[dict],
    threshold: Threshold,
    test_answered: dict,
    formats: list | None = None,
    unfamiliar: dict | None = None,
    views: ViewChoice | None = None,
) -> str:
    """The model card as Markdown; `formats` are the deploy.parity reports of the export,
    `unfamiliar` the unfamiliarity threshold and the shares it flags (none: off), `views`
    the test-time views served (none: none)."""
    return _TEMPLATES.get_template("model_card.md.j2").render(
        metadata=metadata,
        family=family,
        size=metadata.image_size,
        calibration=metadata.calibration,
        test_metrics=test_metrics,
        counts=data_counts,
        confused_pairs=confused_pairs,
        threshold=threshold,
        test_answered=test_answered,
        formats=formats or [],
        unfamiliar=unfamiliar or {"unfamiliar_threshold": None},
        views=views,
        files={
            "keras": bundle.FORMATS["keras"].file,
            "saved_model_dir": bundle.SAVED_MODEL_DIR.as_posix(),
            "metadata": bundle.METADATA_FILE,
        },
    )
