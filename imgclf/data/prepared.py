"""The prepared dataset on disk: per split, one .npy of uint8 images and one of labels.

Plain .npy files stream well: training memory-maps them and reads batches, and
they are byte-identical for the same inputs (no timestamps, fixed order).
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgclf import paths

CHUNK_ROWS = 256


@dataclass(frozen=True)
class PreparedSplit:
    """One split of the prepared data (images may be memory-mapped)."""

    images: np.ndarray  # uint8, (n, size, size, 3)
    labels: np.ndarray  # int32, (n,)
    files: list[str]  # source paths, relative to the data folder, in row order


def write_split(
    out_dir: Path,
    rows_file: Path,
    rows: list[int],
    labels: list[int],
    files: list[str],
    image_size: int,
) -> None:
    """Copy `rows` of the row file into out_dir/images.npy, a chunk at a time."""
    out_dir.mkdir(parents=True, exist_ok=True)
    shape = (image_size, image_size, 3)
    count = _row_count(rows_file, shape)
    source = np.memmap(rows_file, dtype=np.uint8, mode="r", shape=(count, *shape))
    images_file = out_dir / "images.npy"
    target = np.lib.format.open_memmap(
        images_file, mode="w+", dtype=np.uint8, shape=(len(rows), *shape)
    )
    _reserve(images_file)
    for start in range(0, len(rows), CHUNK_ROWS):
        chosen = rows[start : start + CHUNK_ROWS]
        target[start : start + len(chosen)] = source[chosen]
    target.flush()
    del target, source  # close the maps before the row file is removed
    np.save(out_dir / "labels.npy", np.asarray(labels, dtype=np.int32))
    (out_dir / "files.txt").write_text("".join(f"{f}\n" for f in files), encoding="utf-8")


def _reserve(path: Path) -> None:
    """Allocate a memory-mapped file's blocks now: on a full disk, writing into the map
    would kill the process with SIGBUS; this raises a clear OSError naming the file."""
    if not hasattr(os, "posix_fallocate"):  # macOS: the map is written as it is
        return
    with open(path, "r+b") as file:
        try:
            os.posix_fallocate(file.fileno(), 0, os.fstat(file.fileno()).st_size)
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):  # a file system that cannot
                return
            raise OSError(exc.errno, exc.strerror, str(path)) from None


def _row_count(rows_file: Path, shape: tuple[int, int, int]) -> int:
    return Path(rows_file).stat().st_size // int(np.prod(shape))


def read_split(split: str, prepared: Path = paths.PREPARED, mmap: bool = True) -> PreparedSplit:
    """Open one prepared split; raise FileNotFoundError saying how to make it."""
    folder = Path(prepared) / split
    if not (folder / "images.npy").is_file():
        raise FileNotFoundError(
            f"{folder}/images.npy not found: run `dvc repro prepare` to prepare the data"
        )
    images = np.load(folder / "images.npy", mmap_mode="r" if mmap else None)
    labels = np.load(folder / "labels.npy")
    files = (folder / "files.txt").read_text(encoding="utf-8").splitlines()
    return PreparedSplit(images, labels, files)
