"""Fashion-MNIST training images from Debian's `dataset-fashion-mnist` package.

Only the training-set files are opened, and only their first USABLE images are kept;
nothing else in the package is used here.

    sudo apt-get install dataset-fashion-mnist
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

SOURCE = Path("/usr/share/datasets/fashion-mnist")
USABLE = 50_000  # training images 50,000-59,999 are reserved
# Fashion-MNIST's label order; folder names avoid "/" and spaces.
CLASS_NAMES = [
    "T-shirt", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle-boot",
]  # fmt: skip


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (the MNIST format: big-endian header, then uint8 data)."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_usable(source: Path = SOURCE) -> tuple[np.ndarray, np.ndarray]:
    """The usable training images (n, 28, 28) and labels; exits with the apt command if absent."""
    images_file = source / "train-images-idx3-ubyte.gz"
    if not images_file.is_file():
        raise SystemExit(
            f"{images_file} not found: install it with `sudo apt-get install dataset-fashion-mnist`"
        )
    images = read_idx(images_file)[:USABLE]
    labels = read_idx(source / "train-labels-idx1-ubyte.gz")[:USABLE]
    return images, labels
