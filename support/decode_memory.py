"""What decoding an image really takes, against what imgclf/images.py estimates from its header.

Each measurement runs in a fresh interpreter: its peak resident memory (VmHWM) after
the codecs are loaded and the file is read, and again after `decode_pixels`; the
difference is the decode's peak. The estimate must be at least that, for every format and
mode Pillow and pillow-heif open here (tests/test_images.py, bench/bench_decode_memory.py).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

import imgclf.images  # noqa: F401 (registers HEIF for saving the HEIC case)

SIDE = 2400  # 5.8 megapixels: large against the allocator's own noise, quick to make
IMAGE_SIZE = 224

_CHILD = """
import io, json, sys
import numpy as np
from PIL import Image
from imgclf.images import decode_pixels, decoding_bytes, _draft_scale
data = open(sys.argv[1], "rb").read()
with Image.open(io.BytesIO(data)) as image:  # opened, not decoded
    fmt = image.format
warm = io.BytesIO()
Image.new("RGB", (16, 16)).save(warm, fmt)
decode_pixels(warm.getvalue(), 8)  # the decoder's own code and tables, loaded
with Image.open(io.BytesIO(data)) as image:
    scale = _draft_scale(*image.size, int(sys.argv[2]))
    if scale > 1:
        image.draft(None, (image.size[0] // scale, image.size[1] // scale))
    estimate = decoding_bytes(image)
    mode, size = image.mode, image.size
def peak():  # VmHWM, this process's own (ru_maxrss keeps the parent's peak across exec)
    status = open("/proc/self/status").read()
    return int(status.split("VmHWM:")[1].split()[0])
before = peak()
decode_pixels(data, int(sys.argv[2]), max_decoded_bytes=2**40)
after = peak()
print(json.dumps({"peak": (after - before) * 1024, "estimate": estimate, "mode": mode,
                  "size": list(size)}))
"""


def _gradient(mode: str) -> Image.Image:
    """A SIDE x SIDE image in `mode` with varied pixels (noise would make huge files)."""
    ramp = np.linspace(0, 255, SIDE, dtype=np.float32)
    red, green = np.meshgrid(ramp, ramp)
    rgb = np.stack([red, green, (red + green) / 2], axis=-1).astype(np.uint8)
    image = Image.fromarray(rgb)
    if mode == "P":
        return image.quantize(64)
    if mode == "I;16":
        return Image.fromarray((red * 257).astype(np.uint16))
    if mode in ("RGBA", "LA"):
        alpha = Image.fromarray(green.astype(np.uint8))
        converted = image.convert(mode[:-1])
        converted.putalpha(alpha)
        return converted
    return image.convert(mode)


def _encoded(mode: str, fmt: str, **options) -> Callable[[], bytes]:
    def make() -> bytes:
        out = io.BytesIO()
        _gradient(mode).save(out, fmt, **options)
        return out.getvalue()

    return make


def _animated(fmt: str) -> bytes:
    first = _gradient("RGB")
    second = first.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    out = io.BytesIO()
    if fmt == "GIF":
        first, second = first.quantize(64), second.quantize(64)
    first.save(out, fmt, save_all=True, append_images=[second], duration=100, loop=0)
    return out.getvalue()


# name -> a function making the file: every mode of PNG, GIF and animated GIF/WebP,
# WebP, TIFF, HEIC, JPEG (CMYK too), BMP.
CASES: dict[str, Callable[[], bytes]] = {
    "png 1": _encoded("1", "PNG"),
    "png L": _encoded("L", "PNG"),
    "png LA": _encoded("LA", "PNG"),
    "png P": _encoded("P", "PNG"),
    "png P transparent": _encoded("P", "PNG", transparency=0),
    "png RGB": _encoded("RGB", "PNG"),
    "png RGBA": _encoded("RGBA", "PNG"),
    "png I;16": _encoded("I;16", "PNG"),
    "gif P": _encoded("P", "GIF"),
    "gif P transparent": _encoded("P", "GIF", transparency=0),
    "gif animated": lambda: _animated("GIF"),
    "webp RGB": _encoded("RGB", "WEBP", quality=80),
    "webp RGBA": _encoded("RGBA", "WEBP", quality=80),
    "webp lossless": _encoded("RGB", "WEBP", lossless=True),
    "webp animated": lambda: _animated("WEBP"),
    "tiff RGB": _encoded("RGB", "TIFF"),
    "tiff RGBA": _encoded("RGBA", "TIFF"),
    "tiff CMYK": _encoded("CMYK", "TIFF"),
    "heic RGB": _encoded("RGB", "HEIF", quality=80),
    "jpeg RGB": _encoded("RGB", "JPEG", quality=85),
    "jpeg L": _encoded("L", "JPEG", quality=85),
    "jpeg CMYK": _encoded("CMYK", "JPEG", quality=85),
    "jpeg RGB odd size": lambda: _odd_jpeg(),
    "bmp RGB": _encoded("RGB", "BMP"),
    "bmp P": _encoded("P", "BMP"),
}


def _odd_jpeg() -> bytes:
    """A JPEG whose sides no scale divides: decoded in full, no draft."""
    out = io.BytesIO()
    _gradient("RGB").crop((0, 0, SIDE - 1, SIDE - 3)).save(out, "JPEG", quality=85)
    return out.getvalue()


def measure(data: bytes, image_size: int = IMAGE_SIZE) -> dict:
    """{"peak", "estimate" (bytes), "mode", "size"} of decoding `data` in a fresh process."""
    root = Path(__file__).resolve().parents[1]
    with tempfile.NamedTemporaryFile(suffix=".img") as file:
        file.write(data)
        file.flush()
        found = subprocess.run(
            [sys.executable, "-c", _CHILD, file.name, str(image_size)],
            cwd=root, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    return json.loads(found.strip().splitlines()[-1])
