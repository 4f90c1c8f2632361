"""Drawing a Grad-CAM map (see explain/gradcam.py) over the image it explains."""

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


_LEVELS = np.linspace(0, 1, 256)
_COLOUR_LEVELS = colorize(_LEVELS)  # (256, 3): the ramp's colour at each attention level
_OPACITY_LEVELS = np.rint(255 * OVERLAY_OPACITY * (0.3 + 0.7 * _LEVELS)).astype(int).tolist()


def overlay(pixels: np.ndarray, heatmap: np.ndarray, size: int | None = None) -> Image.Image:
    """The model input (as the decoder fitted it) with the heatmap laid over it, `size` wide.

    The colour is more opaque where attention is high, so the image stays readable
    where the model did not look. Attention is drawn in 256 levels, through Pillow's
    own lookup and compositing (a tenth of the time of the same arithmetic in numpy).
    """
    size = size or max(OVERLAY_SIZE, pixels.shape[0])
    image = Image.fromarray(np.asarray(pixels, dtype=np.uint8)).resize(
        (size, size), Image.Resampling.BICUBIC
    )
    smooth = Image.fromarray(heatmap.astype(np.float32), mode="F").resize(
        (size, size), Image.Resampling.BILINEAR
    )
    level = Image.fromarray(np.rint(np.clip(np.asarray(smooth), 0, 1) * 255).astype(np.uint8))
    colour = level.copy()
    colour.putpalette(_COLOUR_LEVELS.tobytes())
    opacity = level.point(_OPACITY_LEVELS)
    return Image.composite(colour.convert("RGB"), image, opacity)


def png_bytes(image: Image.Image) -> bytes:
    """The image as PNG file bytes."""
    buffer = io.BytesIO()
    # zlib level 1: a few times faster than the default 6, for a slightly larger file
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
