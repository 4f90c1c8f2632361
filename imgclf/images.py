"""The one place that turns image bytes into a model input, for training and serving alike.

Policy, applied in this order to the first frame of any file Pillow can decode:
1. refuse files that declare more than `max_pixels` pixels (decompression bombs), or
   whose decoding would take more than `max_decoded_bytes` of memory (estimated from
   the header: size, mode, bit depth, after any JPEG scaling; a small 16-bit or RGBA
   PNG can declare a huge image),
2. decode the whole file (a truncated file is an error, never half an image); a
   large JPEG is decoded at 1/2, 1/4 or 1/8 scale where that scale divides both its
   sides and leaves at least twice the model's side,
3. apply the EXIF orientation,
4. convert to 8-bit RGB: 16-bit images are scaled (not clipped), CMYK and palette
   images are converted, and transparency is composited on a white background,
5. fit the whole image inside an `image_size` square, keeping its aspect ratio, and
   pad the rest with the same white (nothing is cropped, nothing is stretched).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps
from pillow_heif import register_heif_opener

# HEIC/HEIF, the format phones save photos in, opens like any other Pillow format
# (libheif turns the image upright as it decodes).
register_heif_opener()

BACKGROUND = (255, 255, 255)
DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_MAX_DECODED_BYTES = 2**30  # a 50-megapixel RGB file decodes in about 300 MB
# Bytes a pixel of each mode takes at the peak of decoding and converting it to RGB, an
# upper bound of what bench/bench_decode_memory.py measures for every format and mode
# Pillow opens here (tests/test_images.py fails if one decodes above its estimate): the
# decoded image (Pillow keeps RGB and CMYK in 4 bytes a pixel), the copies its conversion
# makes (an alpha composite makes three RGBA images), and the RGB result.
_PEAK_BYTES_PER_PIXEL = {
    "1": 6, "L": 4, "P": 6, "RGB": 6, "YCbCr": 6, "LAB": 6, "HSV": 6, "RGBX": 9, "CMYK": 10,
    "LA": 22, "La": 22, "PA": 22, "RGBA": 22, "RGBa": 22,
    "I;16": 15, "I;16B": 15, "I;16L": 15, "I;16N": 15, "I": 20,
}  # fmt: skip
_TRANSPARENT_PALETTE_PEAK = 19  # converted to RGBA and composited: as RGBA, less its own copy
# Decoders that hold a whole image of their own beside Pillow's: WebP (through an RGBA
# buffer, animated or not) and HEIC (libheif's planes).
_FORMAT_PEAK_BYTES_PER_PIXEL = {"WEBP": {"RGB": 18, "RGBA": 31}, "HEIF": {"RGB": 9, "RGBA": 24}}
_UNKNOWN_MODE_PEAK = 32
_DECODER_OVERHEAD = 4 * 2**20  # tables and buffers a decoder needs whatever the image's size
RESAMPLE = Image.Resampling.BICUBIC

# Modes Pillow decodes that have a well-defined RGB meaning; anything else (float
# images, for example) is refused rather than guessed at.
_SUPPORTED_MODES = {
    "1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV",
    "I", "I;16", "I;16B", "I;16L", "I;16N",
}  # fmt: skip


class ImageDecodeError(ValueError):
    """The bytes are not an image this project can use; the message says why."""


@dataclass(frozen=True)
class DecodedImage:
    """A model input plus the fingerprint of the decoded source pixels."""

    pixels: np.ndarray  # uint8, (image_size, image_size, 3)
    source_digest: str  # sha256 of the decoded RGB pixels and their shape, before fitting


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode not in _SUPPORTED_MODES:
        raise ImageDecodeError(f"unsupported image mode {image.mode}")
    if image.mode.startswith("I"):
        # 16/32-bit greyscale: Pillow's own convert would clip at 255, so scale instead,
        # in place in one 32-bit copy (no value lands exactly halfway between two levels,
        # so rounding half up is rounding to nearest).
        values = np.asarray(image)
        top = 65535 if values.max(initial=0) > 255 or image.mode.startswith("I;16") else 255
        scaled = np.clip(values, 0, top).astype(np.uint32)
        scaled *= 255
        scaled += top // 2
        scaled //= top
        image = Image.fromarray(scaled.astype(np.uint8))
    has_alpha = image.mode in ("LA", "La", "PA", "RGBA", "RGBa") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")  # no copy of an RGB image


# Formats recognised by their first bytes, so Pillow opens them without trying each
# of its plugins in turn; anything else goes through Pillow's full identification.
_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"))


# Where Pillow's getexif() finds an orientation: EXIF bytes (JPEG, PNG, WebP), a PNG
# text chunk of hex EXIF, TIFF tags, or XMP. An image with none of them is upright.
_ORIENTATION_SOURCES = ("exif", "Raw profile type exif", "XML:com.adobe.xmp", "xmp")


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation (1 = upright) without parsing EXIF for images that have none."""
    # Parsing costs a sixth of a small PNG's whole decode; most files carry no metadata.
    if not hasattr(image, "tag_v2") and not any(key in image.info for key in _ORIENTATION_SOURCES):
        return 1
    return image.getexif().get(ExifTags.Base.Orientation, 1)


def _draft_scale(width: int, height: int, image_size: int) -> int:
    """The JPEG decoding scale (8, 4, 2 or 1) for an image fitted into `image_size`."""
    # libjpeg's DCT scaling skips most of a full decode (docs/benchmarks.md, bench_photos;
    # progressive JPEGs gain less, their entropy decoding stays whole). A
    # scale that divides both sides keeps the geometry exact (a partial last pixel
    # would stretch the image by a fraction of a pixel), and twice the fitted side is
    # left for the bicubic fit, as Pillow's thumbnail() leaves: the fitted pixels then
    # differ from a full decode's by less than one level on average.
    for scale in (8, 4, 2):
        if (
            width % scale == 0
            and height % scale == 0
            and max(width, height) >= 2 * scale * image_size
        ):
            return scale
    return 1


def decoding_bytes(image: Image.Image) -> int:
    """Memory that decoding `image` (opened, not yet loaded) to RGB takes at its peak."""
    width, height = image.size  # of the first frame, the only one decoded
    by_mode = _FORMAT_PEAK_BYTES_PER_PIXEL.get(image.format, _PEAK_BYTES_PER_PIXEL)
    per_pixel = by_mode.get(image.mode, _PEAK_BYTES_PER_PIXEL.get(image.mode, _UNKNOWN_MODE_PEAK))
    if image.mode == "P" and "transparency" in image.info:
        per_pixel = _TRANSPARENT_PALETTE_PEAK
    return width * height * per_pixel + _DECODER_OVERHEAD


def _open_upright(
    data: bytes,
    image_size: int,
    max_pixels: int,
    max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
) -> Image.Image:
    """Steps 1-4 of the policy: the whole first frame, upright, in "L" (grey) or "RGB"."""
    if not data:
        raise ImageDecodeError("empty file (0 bytes)")
    formats = next(([name] for magic, name in _SIGNATURES if data.startswith(magic)), None)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=formats)
        width, height = image.size
        if width * height > max_pixels:
            raise ImageDecodeError(
                f"declares {width}x{height} = {width * height:,} pixels, above the limit of "
                f"{max_pixels:,} (prepare.max_pixels); possible decompression bomb"
            )
        if width < 1 or height < 1:
            raise ImageDecodeError(f"has no pixels ({width}x{height})")
        if (scale := _draft_scale(width, height, image_size)) > 1:
            image.draft(None, (width // scale, height // scale))  # other formats ignore it
        if (needed := decoding_bytes(image)) > max_decoded_bytes:
            raise ImageDecodeError(
                f"a {width}x{height} {image.mode} image would take about "
                f"{needed / 2**20:,.0f} MiB to decode, above the limit of "
                f"{max_decoded_bytes / 2**20:,.0f} MiB; send a smaller image"
            )
        image.load()  # decodes everything: truncated data fails here, not later
        if _orientation(image) != 1:
            image = ImageOps.exif_transpose(image)
        # Grey stays grey until after resizing: the same pixels as resizing its RGB
        # conversion (each band is resampled alike), for a third of the work.
        return image if image.mode == "L" else _to_rgb(image)
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(f"decompression bomb: {exc}") from None
    except Image.UnidentifiedImageError:
        raise ImageDecodeError("not an image Pillow can identify") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageDecodeError(f"cannot be decoded: {exc}") from None


def _fit(image: Image.Image, image_size: int) -> np.ndarray:
    """Step 5: fit inside the square, pad with the background, as RGB uint8."""
    grey = image.mode == "L"
    fitted = ImageOps.pad(
        image, (image_size, image_size), method=RESAMPLE, color=255 if grey else BACKGROUND
    )
    pixels = np.asarray(fitted, dtype=np.uint8)
    return np.repeat(pixels[..., None], 3, axis=2) if grey else pixels


def decode(data: bytes, image_size: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode image bytes into a normalized (image_size, image_size, 3) uint8 array."""
    image = _open_upright(data, image_size, max_pixels)
    source = np.asarray(image.convert("RGB") if image.mode == "L" else image)
    digest = hashlib.sha256(repr(source.shape).encode() + source.tobytes()).hexdigest()
    return DecodedImage(pixels=_fit(image, image_size), source_digest=digest)


def decode_pixels(
    data: bytes,
    image_size: int,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
) -> np.ndarray:
    """The model input only: `decode` without the fingerprint (serving needs none)."""
    return _fit(_open_upright(data, image_size, max_pixels, max_decoded_bytes), image_size)


def load_image(
    source: bytes | str | Path,
    image_size: int,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
) -> np.ndarray:
    """Read a file path or bytes and return the model input for it."""
    if isinstance(source, bytes):
        return decode_pixels(source, image_size, max_pixels, max_decoded_bytes)
    with open(source, "rb") as file:  # not Path.read_bytes: its parsing costs a tenth of a decode
        return decode_pixels(file.read(), image_size, max_pixels, max_decoded_bytes)
