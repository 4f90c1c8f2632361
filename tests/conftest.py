"""Shared test helpers: every test makes its own images; none needs the network."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from ruamel.yaml import YAML

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


TINY = {
    "prepare": {"image_size": 32, "val_fraction": 0.25, "test_fraction": 0.25},
    "train": {"epochs": 2, "batch_size": 8, "early_stopping_patience": 0},
    "cnn": {"filters": [4, 8, 8, 8], "dense_units": 8},
    "resnet": {"dense_units": 8, "augmented_views": 1},
}


def write_params(project: Path, **changes: dict) -> None:
    yaml = YAML(typ="safe", pure=True)
    params = yaml.load((ROOT / "params.yaml").read_text())
    for group, values in {**TINY, **changes}.items():
        params[group].update(values)
    with open(project / "params.yaml", "w") as f:
        yaml.dump(params, f)


class InProject:
    """Run stage code with the project folder as the working directory."""

    def __init__(self, project: Path) -> None:
        self.project = project

    def __enter__(self) -> Path:
        self.previous = Path.cwd()
        os.chdir(self.project)
        return self.project

    def __exit__(self, *exc_info: object) -> None:
        os.chdir(self.previous)


def same(weights: list, others: list) -> bool:
    """Whether two lists of weight arrays are identical."""
    return all(np.array_equal(a, b) for a, b in zip(weights, others, strict=True))


def model_metrics(project: Path, name: str) -> dict:
    return json.loads((project / "metrics" / f"{name}.json").read_text())


@pytest.fixture(scope="session")
def trained_project(tmp_path_factory) -> Path:
    """The whole pipeline run in-process on tiny data; ResNet loads a weights file made here."""
    root = tmp_path_factory.mktemp("project")
    write_class_folders(root / "data", ["circle", "square", "star"], per_class=8)
    import keras

    from imgclf.models import build_resnet_base

    keras.utils.set_random_seed(7)
    weights = root / "base.weights.h5"
    build_resnet_base(32).save_weights(weights)
    write_params(root, resnet={**TINY["resnet"], "weights": str(weights)})
    from stages import compare, export, prepare, train_cnn, train_resnet

    with InProject(root):
        for stage in (prepare, train_cnn, train_resnet, compare, export):
            stage.main()
    return root
