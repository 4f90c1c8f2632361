"""Shared test helpers: every test makes its own images; none needs the network."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


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


@pytest.fixture
def flat_data(tmp_path: Path) -> Path:
    """A flat layout: 3 classes of 12 distinct images each."""
    data = tmp_path / "data"
    write_class_folders(data, ["bird", "cat", "dog"], per_class=12)
    return data
