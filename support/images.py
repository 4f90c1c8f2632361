"""Images the tests and benchmarks make for themselves (none needs the network)."""

from __future__ import annotations

import functools
import io
from pathlib import Path

import numpy as np
from PIL import Image

from imgclf.images import load_image


def image_bytes(image: Image.Image, fmt: str = "PNG", **save_args: object) -> bytes:
    """Encode a Pillow image to bytes in the given format."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save_args)
    return buffer.getvalue()


def random_rgb(seed: int, size: tuple[int, int] = (40, 30)) -> Image.Image:
    """A reproducible noisy RGB image (width, height)."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def class_image(class_index: int, seed: int, size: int = 40) -> Image.Image:
    """An easily learnable image: a class-specific colour plus noise."""
    rng = np.random.default_rng(seed)
    base = np.zeros((size, size, 3), dtype=np.float64)
    base[..., class_index % 3] = 200
    if class_index >= 3:
        base[: size // 2] = 255 - base[: size // 2]
    noisy = base + rng.normal(0, 20, base.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def write_class_folders(
    root: Path, class_names: list[str], per_class: int, seed: int = 0, fmt: str = "PNG"
) -> None:
    """Write per_class distinct images into root/<class>/ for each class."""
    for c, name in enumerate(class_names):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            suffix = "png" if fmt == "PNG" else "jpg"
            data = image_bytes(class_image(c, seed * 100_000 + c * 1000 + i), fmt)
            (folder / f"{i:03d}.{suffix}").write_bytes(data)


@functools.cache
def small_but_huge() -> dict[str, bytes]:
    """PNGs of a few hundred kilobytes that declare images too large to decode within the
    server's default IMGCLF_MAX_DECODE_MB (256): 16-bit grey and RGBA, under 50 megapixels."""
    return {
        "small but huge 16-bit png": image_bytes(Image.new("I;16", (5300, 5300))),
        "small but huge rgba png": image_bytes(Image.new("RGBA", (4400, 4400))),
    }


def upload_cases(
    max_pixels_bomb: tuple[int, int] = (12_000, 12_000),
) -> dict[str, tuple[bytes, int]]:
    """Uploads a server must survive: name -> (bytes, expected HTTP status)."""
    rgb = random_rgb(11, (60, 40))
    landscape = Image.new("RGB", (40, 20), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6
    palette = Image.new("P", (20, 20), 0)
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    sixteen = Image.fromarray((np.arange(400, dtype=np.uint16) * 150).reshape(20, 20))
    return {
        "empty": (b"", 400),
        "text named .jpg": (b"just some text, not a picture\n" * 20, 400),
        "html": (b"<!doctype html><html><body><script>alert(1)</script></body></html>", 400),
        "pdf": (b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n", 400),
        "truncated jpeg": (image_bytes(random_rgb(12, (80, 80)), "JPEG")[:500], 400),
        "truncated png": (image_bytes(random_rgb(13, (80, 80)))[:-400], 400),
        "decompression bomb": (image_bytes(Image.new("1", max_pixels_bomb)), 400),
        "grayscale": (image_bytes(rgb.convert("L")), 200),
        "palette with transparency": (image_bytes(palette, transparency=0), 200),
        "rgba": (image_bytes(rgb.convert("RGBA")), 200),
        "cmyk jpeg": (image_bytes(rgb.convert("CMYK"), "JPEG"), 200),
        "16-bit png": (image_bytes(sixteen), 200),
        "animated gif": (
            image_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:]),
            200,
        ),
        "exif rotated jpeg": (image_bytes(landscape, "JPEG", exif=exif.tobytes()), 200),
        "1x1": (image_bytes(Image.new("RGB", (1, 1), (9, 9, 9))), 200),
        "panorama": (image_bytes(random_rgb(14, (3000, 60)), "JPEG"), 200),
        **{name: (data, 400) for name, data in small_but_huge().items()},
    }


def imagenet_photo(name: str, size: int) -> np.ndarray:
    """scikit-image's bundled photo, centre-cropped to a square, as the decoder fits it."""
    import skimage.data

    image = Image.fromarray(getattr(skimage.data, name)())
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    square = image.crop((left, top, left + side, top + side))
    buffer = io.BytesIO()
    square.save(buffer, "PNG")
    return load_image(buffer.getvalue(), size)


def imagenet_photos(names: tuple[str, ...], size: int) -> np.ndarray:
    """A float32 batch of imagenet_photo(name, size) for each name, in order."""
    return np.stack([imagenet_photo(name, size) for name in names]).astype("float32")
