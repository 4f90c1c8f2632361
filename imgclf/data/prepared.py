"""The prepared dataset on disk: per split, one .npy of uint8 images and one of labels.

Plain .npy files stream well: training memory-maps them and reads batches, and
they are byte-identical for the same inputs (no timestamps, fixed order).
"""

from __future__ import annotations

import csv
import mmap
from dataclasses import dataclass, replace
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
    """Copy `rows` of the row file into out_dir/images.npy, a chunk at a time.

    Plain reads and writes, not a memory map: every page written through a map stays
    in the process's resident memory until the kernel writes it back (gigabytes on
    25,000 photos), and on a full disk a write into a map kills the process with
    SIGBUS where a write() raises a clear error.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    row_bytes = image_size * image_size * 3
    header = {
        "descr": "|u1",
        "fortran_order": False,
        "shape": (len(rows), image_size, image_size, 3),
    }
    with open(rows_file, "rb") as source, open(out_dir / "images.npy", "wb") as target:
        np.lib.format.write_array_header_1_0(target, header)
        for start in range(0, len(rows), CHUNK_ROWS):
            chunk = bytearray()
            for row in rows[start : start + CHUNK_ROWS]:
                source.seek(row * row_bytes)
                chunk += source.read(row_bytes)
            target.write(chunk)
    np.save(out_dir / "labels.npy", np.asarray(labels, dtype=np.int32))
    (out_dir / "files.txt").write_text("".join(f"{f}\n" for f in files), encoding="utf-8")


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


def release_pages(images) -> None:
    """Let go of the pages of a memory-mapped array read so far.

    Pages read through a memory map count in the process's resident memory for as
    long as the map lives: a pass over 300,000 prepared images would keep the
    whole file (a gigabyte at 32 px) on the process's account. Afterwards they stay
    in the kernel's page cache, so reading them again is cheap. Anything else
    (an array in memory) is left as it is.
    """
    mapped = getattr(getattr(images, "array", images), "_mmap", None)  # KeptRows, np.memmap
    if mapped is not None:
        mapped.madvise(mmap.MADV_DONTNEED)


class KeptRows:
    """The rows of a (memory-mapped) array not left out, indexed like the array itself.

    Training reads batches as `images[sorted rows]`; this maps them to the kept rows
    of the file, so leaving images out copies nothing into memory.
    """

    def __init__(self, array: np.ndarray, kept: np.ndarray) -> None:
        self.array, self.kept = array, kept
        self.shape = (len(kept), *array.shape[1:])
        self.dtype = array.dtype

    def __len__(self) -> int:
        return len(self.kept)

    def __getitem__(self, rows):
        return self.array[self.kept[rows]]

    def __array__(self, dtype=None, copy=None):
        rows = self.array[self.kept]
        return rows if dtype is None else rows.astype(dtype)

    def astype(self, dtype) -> np.ndarray:
        return np.asarray(self, dtype=dtype)


def read_excluded(path: Path = paths.AUDIT_EXCLUDED) -> dict[str, set[str]]:
    """audit/excluded.csv as {split: files left out}; empty when there is no such file."""
    if not Path(path).is_file():
        return {}
    excluded: dict[str, set[str]] = {}
    with open(path, newline="", encoding="utf-8") as table:
        for row in csv.DictReader(table):
            excluded.setdefault(row["split"], set()).add(row["file"])
    return excluded


def without(split: PreparedSplit, files: set[str]) -> PreparedSplit:
    """`split` with the rows of `files` left out (the same split when there are none)."""
    if not files:
        return split
    kept = np.array([i for i, f in enumerate(split.files) if f not in files], dtype=np.int64)
    images = (
        KeptRows(split.images, kept) if isinstance(split.images, np.memmap) else split.images[kept]
    )
    return replace(
        split, images=images, labels=split.labels[kept], files=[split.files[i] for i in kept]
    )


def read_used_split(
    split: str,
    prepared: Path = paths.PREPARED,
    mmap: bool = True,
    excluded: Path = paths.AUDIT_EXCLUDED,
) -> PreparedSplit:
    """A split as training uses it: prepared, less what `audit.exclude` leaves out."""
    return without(read_split(split, prepared, mmap), read_excluded(excluded).get(split, set()))
