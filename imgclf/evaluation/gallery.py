"""The mistakes gallery: the most confidently wrong test images, drawn as one PNG.

Each tile shows the image as the model saw it and, beside it, the Grad-CAM heatmap
of the class the model wrongly chose (what it took for evidence), with the file
name, the true and the predicted label and the confidence underneath.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from imgclf.explain.heatmap import overlay

THUMB = 112  # pixels per picture (two per tile)
COLUMNS = 4
CAPTION = 54
TITLE = 30
PADDING = 8
TEXT, WRONG, BACKGROUND = (30, 30, 30), (180, 20, 20), (255, 255, 255)


def _fit(text: str, draw: ImageDraw.ImageDraw, font: ImageFont.ImageFont, width: int) -> str:
    """`text`, shortened from the left with an ellipsis until it fits `width` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength("…" + text, font=font) > width:
        text = text[1:]
    return "…" + text


def draw_gallery(
    mistakes: list[dict], pixels: np.ndarray, heatmaps: np.ndarray, title: str
) -> Image.Image:
    """A grid of tiles, one per mistake (see metrics.confident_mistakes), in order."""
    font = ImageFont.load_default(size=12)
    bold = ImageFont.load_default(size=15)
    tile_w, tile_h = 2 * THUMB + PADDING, THUMB + CAPTION
    columns = max(1, min(COLUMNS, len(mistakes)))
    rows = max(1, -(-len(mistakes) // columns))
    width = PADDING + columns * (tile_w + PADDING)
    sheet = Image.new("RGB", (width, TITLE + rows * (tile_h + PADDING) + PADDING), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    draw.text((PADDING, 8), _fit(title, draw, bold, width - 2 * PADDING), fill=TEXT, font=bold)
    if not mistakes:
        draw.text((PADDING, TITLE + 8), "No mistakes on this split.", fill=TEXT, font=font)
    for index, (mistake, image, heatmap) in enumerate(zip(mistakes, pixels, heatmaps, strict=True)):
        left = PADDING + (index % columns) * (tile_w + PADDING)
        top = TITLE + (index // columns) * (tile_h + PADDING)
        picture = Image.fromarray(image).resize((THUMB, THUMB), Image.Resampling.BICUBIC)
        sheet.paste(picture, (left, top))
        sheet.paste(overlay(image, heatmap, THUMB), (left + THUMB + PADDING, top))
        lines = [
            (_fit(mistake["file"], draw, font, tile_w), TEXT),
            (_fit(f"true: {mistake['actual']}", draw, font, tile_w), TEXT),
            (
                _fit(f"predicted: {mistake['predicted']} ({mistake['confidence']:.2f})",
                     draw, font, tile_w),
                WRONG,
            ),
        ]  # fmt: skip
        for line, (text, color) in enumerate(lines):
            draw.text((left, top + THUMB + 3 + 16 * line), text, fill=color, font=font)
    return sheet


def save_gallery(sheet: Image.Image, path: Path) -> None:
    """Save as a 256-colour PNG: the gallery lives in git, and this is a third of the bytes."""
    palette = sheet.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    palette.save(path, optimize=True)
