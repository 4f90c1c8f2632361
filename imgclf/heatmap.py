"""Drawing a Grad-CAM map (see imgclf/explain.py) over the image it explains."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

OVERLAY_SIZE = 224  # pixels: the overlay is drawn at least this large to be seen
OVERLAY_OPACITY = 0.6  # where attention is highest
# A blue-cyan-green-yellow-red ramp ("jet"), low to high attention.
_RAMP = np.array(
    [[0, 0, 128], [0, 64, 255], [0, 220, 255], [80, 255, 120], [255, 230, 0], [255, 60, 0],
     [160, 0, 0]], dtype=np.float64,
)  # fmt: skip


def colorize(heatmap: np.ndarray) -> np.ndarray:
    """A [0, 1] map as uint8 RGB on the blue-to-red ramp."""
    position = np.clip(heatmap, 0, 1) * (len(_RAMP) - 1)
    low = np.floor(position).astype(int).clip(0, len(_RAMP) - 2)
    fraction = (position - low)[..., None]
    return np.rint(_RAMP[low] * (1 - fraction) + _RAMP[low + 1] * fraction).astype(np.uint8)


def overlay(pixels: np.ndarray, heatmap: np.ndarray, size: int | None = None) -> Image.Image:
    """The model input (as the decoder fitted it) with the heatmap laid over it, `size` wide.

    The colour is more opaque where attention is high, so the image stays readable
    where the model did not look.
    """
    size = size or max(OVERLAY_SIZE, pixels.shape[0])
    image = Image.fromarray(np.asarray(pixels, dtype=np.uint8)).resize(
        (size, size), Image.Resampling.BICUBIC
    )
    smooth = Image.fromarray(heatmap.astype(np.float32), mode="F").resize(
        (size, size), Image.Resampling.BILINEAR
    )
    attention = np.clip(np.asarray(smooth), 0, 1)[..., None]
    opacity = OVERLAY_OPACITY * (0.3 + 0.7 * attention)
    blended = np.asarray(image) * (1 - opacity) + colorize(attention[..., 0]) * opacity
    return Image.fromarray(np.rint(blended).astype(np.uint8))


def png_bytes(image: Image.Image) -> bytes:
    """The image as PNG file bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
