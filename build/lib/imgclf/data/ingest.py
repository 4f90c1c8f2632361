"""Decode many image files in parallel into a row file, with bounded memory."""

from __future__ import annotations

import math
import multiprocessing
import os
import statistics
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from imgclf.images import ImageDecodeError, decode
from imgclf.param_groups import MIN_IMAGE_SIZE

# prepare.image_size: auto picks the data's typical size within these bounds: never
# below what ResNet50 accepts, and up to the largest size a family's `image_size: auto`
# asks for (each family resizes inside its model to its own size, models/input_size.py).
AUTO_SIZE_MAX = 128
AUTO_SIZE_STEP = 16  # a multiple of 16 pools evenly through the CNN's blocks


def longer_sides(paths: list[Path]) -> list[int]:
    """The longer side of every image whose header Pillow can read (pixels are not decoded)."""
    sides = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        for path in paths:
            try:
                with Image.open(path) as image:
                    sides.append(max(image.size))
            except (OSError, ValueError, Image.DecompressionBombError):
                continue  # decoding reports the file properly later
    return sides


def auto_image_size(sides: list[int]) -> int:
    """The model input size for images whose longer sides are `sides`.

    The median longer side, rounded up to a multiple of 16 and kept within
    [MIN_IMAGE_SIZE, AUTO_SIZE_MAX]: 28 px images train at 32 px, not upsampled further;
    large photos are shrunk to AUTO_SIZE_MAX.
    """
    if not sides:
        return MIN_IMAGE_SIZE
    typical = math.ceil(statistics.median(sides) / AUTO_SIZE_STEP) * AUTO_SIZE_STEP
    return min(AUTO_SIZE_MAX, max(MIN_IMAGE_SIZE, typical))


@dataclass(frozen=True)
class Decoded:
    """What decoding one file gave: its row in the row file, or why it was skipped."""

    row: int | None
    digest: str | None
    error: str | None


def _decode_file(job: tuple[str, int, int]) -> tuple[bytes | None, str]:
    path, image_size, max_pixels = job
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return None, f"cannot be read: {exc.strerror or exc}"
    try:
        decoded = decode(data, image_size, max_pixels)
    except ImageDecodeError as exc:
        return None, str(exc)
    return decoded.pixels.tobytes(), decoded.source_digest


def default_workers(file_count: int) -> int:
    """All cores for big jobs; in-process for tiny ones, where starting workers costs more."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cores or 1, file_count // 256))


def decode_to_rows(
    paths: list[Path], rows_file: Path, image_size: int, max_pixels: int, workers: int
) -> list[Decoded]:
    """Decode `paths`, appending each usable image's pixels to `rows_file` in input order."""
    jobs = [(str(p), image_size, max_pixels) for p in paths]
    results: list[Decoded] = []
    row_count = 0
    with open(rows_file, "wb") as rows, _outcomes(jobs, workers) as outcomes:
        progress = tqdm(outcomes, total=len(jobs), desc="decoding", unit="img", disable=None)
        for pixels, digest_or_error in progress:
            if pixels is None:
                results.append(Decoded(None, None, digest_or_error))
            else:
                rows.write(pixels)
                results.append(Decoded(row_count, digest_or_error, None))
                row_count += 1
    return results


@contextmanager
def _outcomes(jobs: list[tuple[str, int, int]], workers: int) -> Iterator[Iterator]:
    """Outcomes in input order, from a process pool or, for one worker, in-process."""
    if workers <= 1:
        yield map(_decode_file, jobs)
        return
    # spawn, not fork: the caller may hold TensorFlow's threads, which fork cannot copy.
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        yield pool.imap(_decode_file, jobs, chunksize=16)
