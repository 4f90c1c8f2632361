"""The decoding policy of imgclf/images.py spelt out step by step with Pillow, decoding
every pixel: the reference its shortcuts (JPEG scaling, skipped EXIF parsing) are held
to by tests/test_images.py and bench/bench_photos.py."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps

from imgclf.images import BACKGROUND, RESAMPLE


def fitted_from_full_decode(data: bytes, image_size: int) -> np.ndarray:
    """An RGB image file's model input: full decode, EXIF orientation, fit and pad."""
    with Image.open(io.BytesIO(data)) as image:
        upright = ImageOps.exif_transpose(image).convert("RGB")
    fitted = ImageOps.pad(upright, (image_size, image_size), method=RESAMPLE, color=BACKGROUND)
    return np.asarray(fitted)
