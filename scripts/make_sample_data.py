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
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.fashion_mnist import CLASS_NAMES, SOURCE, load_usable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=300)
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--out", type=Path, default=Path("data"))
    args = parser.parse_args()
    images, labels = load_usable(args.source)
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
