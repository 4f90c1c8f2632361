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
MIN_TILE_WIDTH = 176
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


def draw_sheet(
    captions: list[list[tuple[str, str | None]]],
    pictures: list[list[Image.Image | np.ndarray]],
    title: str,
    empty: str,
) -> Image.Image:
    """A grid of tiles: each one or two pictures side by side, and caption lines under them.

    A caption line is (text, colour); colour "wrong" draws it in red, None in the text colour.
    """
    font = ImageFont.load_default(size=12)
    bold = ImageFont.load_default(size=15)
    per_tile = max((len(p) for p in pictures), default=1)
    lines = max((len(c) for c in captions), default=1)
    # One picture still gets a tile wide enough for its caption.
    tile_w = max(per_tile * THUMB + (per_tile - 1) * PADDING, MIN_TILE_WIDTH)
    tile_h = THUMB + 6 + 16 * lines
    columns = max(1, min(COLUMNS, len(captions)))
    rows = max(1, -(-len(captions) // columns))
    width = max(PADDING + columns * (tile_w + PADDING), 2 * THUMB + 2 * PADDING)
    sheet = Image.new("RGB", (width, TITLE + rows * (tile_h + PADDING) + PADDING), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    draw.text((PADDING, 8), _fit(title, draw, bold, width - 2 * PADDING), fill=TEXT, font=bold)
    if not captions:
        draw.text((PADDING, TITLE + 8), empty, fill=TEXT, font=font)
    for index, (caption, images) in enumerate(zip(captions, pictures, strict=True)):
        left = PADDING + (index % columns) * (tile_w + PADDING)
        top = TITLE + (index // columns) * (tile_h + PADDING)
        for slot, image in enumerate(images):
            if isinstance(image, np.ndarray):
                image = Image.fromarray(image).resize((THUMB, THUMB), Image.Resampling.BICUBIC)
            sheet.paste(image, (left + slot * (THUMB + PADDING), top))  # left-aligned
        for line, (text, color) in enumerate(caption):
            fill = WRONG if color == "wrong" else TEXT
            draw.text((left, top + THUMB + 3 + 16 * line), _fit(text, draw, font, tile_w),
                      fill=fill, font=font)  # fmt: skip
    return sheet


def draw_gallery(
    mistakes: list[dict], pixels: np.ndarray, heatmaps: np.ndarray, title: str
) -> Image.Image:
    """A grid of tiles, one per mistake (see metrics.confident_mistakes), in order."""
    captions = [
        [
            (mistake["file"], None),
            (f"true: {mistake['actual']}", None),
            (f"predicted: {mistake['predicted']} ({mistake['confidence']:.2f})", "wrong"),
        ]
        for mistake in mistakes
    ]
    pictures = [
        [image, overlay(image, heatmap, THUMB)]
        for image, heatmap in zip(pixels, heatmaps, strict=True)
    ]
    return draw_sheet(captions, pictures, title, "No mistakes on this split.")


def save_gallery(sheet: Image.Image, path: Path) -> None:
    """Save as a 256-colour PNG: the gallery lives in git, and this is a third of the bytes."""
    palette = sheet.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    palette.save(path, optimize=True)
