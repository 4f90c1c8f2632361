"""Build the embedded sample dataset from Debian's `dataset-fashion-mnist` package.

Writes data/<class>/<index>.png: the first `--per-class` images of each of the 10
Fashion-MNIST classes from the package's training set (real 28x28 greyscale photos
of Zalando products, MIT/Expat licence). Run once by a maintainer; users get the
result with `dvc pull data.dvc`.

    apt-get install dataset-fashion-mnist
    python scripts/make_sample_data.py --per-class 300
    dvc add data && dvc push data.dvc
"""

from __future__ import annotations

import argparse
import gzip
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

SOURCE = Path("/usr/share/datasets/fashion-mnist")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=300)
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--out", type=Path, default=Path("data"))
    args = parser.parse_args()
    images = read_idx(args.source / "train-images-idx3-ubyte.gz")
    labels = read_idx(args.source / "train-labels-idx1-ubyte.gz")
    shutil.rmtree(args.out, ignore_errors=True)
    for label, name in enumerate(CLASS_NAMES):
        folder = args.out / name
        folder.mkdir(parents=True)
        for index in np.flatnonzero(labels == label)[: args.per_class]:
            Image.fromarray(images[index], mode="L").save(
                folder / f"{index:05d}.png", optimize=True
            )
    print(f"wrote {args.per_class * len(CLASS_NAMES)} images to {args.out}/")


if __name__ == "__main__":
    main()
