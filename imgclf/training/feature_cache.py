"""Run a frozen base once per image (and per augmented view), not once per epoch or stage.

Features are also kept on disk, in FEATURE_CACHE (outside git and DVC), under a key
made of what they are computed from: the extractor's weights and what it computes
on a fixed probe batch (architecture, preprocessing, input size and this CPU's
arithmetic), the batch size, the exact image bytes, and for augmented views the
augmentation recipe. The audit and train_efficientnet compute the same
EfficientNet-Lite features of the same splits, and a train stage re-run for a head
param (learning rate, dropout) needs no pass of the base at all. Same key, same
computation: an entry holds exactly what computing again would give, so the cache
never changes a metric.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import keras
import numpy as np

from imgclf import paths
from imgclf.atomic_io import replaced_whole
from imgclf.models.inference import predict_batches

CACHE_ENV = "IMGCLF_FEATURE_CACHE"  # another folder for the cache; empty switches it off
# Entries past cache_limit() are deleted, least recently used first (never the newest).
MIN_CACHE_BYTES = 4 * 2**30
ENTRIES_KEPT = 16
PROBE_IMAGES = 2
HASH_ROWS = 1024
READ_ROWS = 8192
# The head's training features are held as float16: their rounding (a part in two
# thousand) is far below what a head learns from, and it halves the largest array a
# transfer family's stage holds. Entries in the cache stay float32.
TRAINING_DTYPE = np.float16


def cache_folder() -> Path | None:
    """Where features are kept: $IMGCLF_FEATURE_CACHE, or the project's own folder.

    None (no cache) when it is set empty, or outside a project (`imgclf audit FOLDER`
    run elsewhere must not leave a cache folder behind).
    """
    folder = os.environ.get(CACHE_ENV)
    if folder is None:
        return paths.FEATURE_CACHE if paths.PARAMS.is_file() else None
    return Path(folder) if folder else None


def extractor_digest(extractor: keras.Model, batch_size: int) -> str:
    """What the extractor is: its weights, and its outputs on a fixed probe batch."""
    digest = hashlib.sha256(f"{extractor.input_shape}|{batch_size}".encode())
    for weight in extractor.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    probe = np.random.default_rng(0).integers(
        0, 256, (PROBE_IMAGES, *extractor.input_shape[1:]), dtype=np.uint8
    )
    # Called directly, not through predict(): the same under every tf.distribute strategy.
    outputs = extractor(probe.astype("float32"), training=False)
    digest.update(keras.ops.convert_to_numpy(outputs).tobytes())
    return digest.hexdigest()


def images_digest(images: np.ndarray) -> str:
    """The digest of the image bytes, read a chunk at a time (memory maps stay on disk)."""
    digest = hashlib.sha256(f"{images.shape}|{images.dtype}".encode())
    for start in range(0, len(images), HASH_ROWS):
        digest.update(np.ascontiguousarray(images[start : start + HASH_ROWS]).tobytes())
    return digest.hexdigest()


def stored_features(
    extractor: keras.Model,
    images: np.ndarray,
    batch_size: int,
    *,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    views: int = 1,
    recipe: str = "",
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, bool]:
    """The extractor's features of `images`, from the cache or computed (and then kept).

    `views` passes over the images, each batch through `transform` first when given
    (augmented views: `recipe` then names what they do). The features land in `out`
    (preallocated, any float dtype) when given, else in a new float32 array. They
    stream to and from the cache file a chunk at a time, always as float32: nothing
    but `out` is ever held. Returns the features and whether they came from the cache.
    """
    rows, width = views * len(images), extractor.output_shape[-1]
    if out is None:
        out = np.empty((rows, width), np.float32)

    def batches() -> Iterator[np.ndarray]:
        for _ in range(views):
            yield from predict_batches(extractor, images, batch_size, transform)

    folder = cache_folder()
    if folder is None or rows == 0:
        _fill(out, batches(), None)
        return out, False
    key = hashlib.sha256(
        f"{extractor_digest(extractor, batch_size)}|{images_digest(images)}|{recipe}".encode()
    ).hexdigest()
    entry = folder / f"{key}.npy"
    with contextlib.suppress(OSError, ValueError):
        _read_entry(entry, out)
        os.utime(entry)  # recently used: kept longest
        return out, True
    filled = False
    with contextlib.suppress(OSError):  # a full or read-only disk costs speed, not the run
        folder.mkdir(parents=True, exist_ok=True)
        with replaced_whole(entry, suffix=".npy") as partial, open(partial, "wb") as file:
            header = {"descr": "<f4", "fortran_order": False, "shape": (rows, width)}
            np.lib.format.write_array_header_1_0(file, header)
            filled = True
            if not _fill(out, batches(), file):
                raise OSError(f"could not write {entry}")  # the partial file is removed
        prune(folder, keep=entry)
    if not filled:
        _fill(out, batches(), None)
    return out, False


def _fill(out: np.ndarray, batches: Iterator[np.ndarray], file) -> bool:
    """Write the batches into `out`, and as float32 rows into `file` if given; False if a
    write to the file failed (the batches are all computed all the same)."""
    start, written = 0, file is not None
    for batch in batches:
        out[start : start + len(batch)] = batch
        start += len(batch)
        if written:
            try:
                file.write(np.ascontiguousarray(batch, dtype="<f4").tobytes())
            except OSError:
                written = False
    return written


def _read_entry(entry: Path, out: np.ndarray) -> None:
    """A cache entry's rows into `out`, READ_ROWS at a time (plain reads: a memory map would
    keep every page it touched resident); ValueError if it is not what `out` expects."""
    with open(entry, "rb") as file:
        if np.lib.format.read_magic(file) != (1, 0):
            raise ValueError(f"{entry}: not a version 1.0 .npy file")
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(file)
        if shape != out.shape or fortran_order or dtype != np.dtype("<f4"):
            raise ValueError(f"{entry}: holds {shape} {dtype}, not {out.shape}")
        width = shape[1]
        for start in range(0, shape[0], READ_ROWS):
            count = min(READ_ROWS, shape[0] - start)
            rows = np.fromfile(file, dtype="<f4", count=count * width)
            if rows.size != count * width:
                raise ValueError(f"{entry}: truncated")
            out[start : start + count] = rows.reshape(count, width)


def cache_limit(folder: Path, newest_bytes: int) -> int:
    """How many bytes the cache may hold: room for this data set's entries, within the disk.

    A pipeline run keeps about a dozen entries the size of its largest (every split's
    features for the audit and each transfer family, and their augmented views):
    sixteen of the newest entry's size, at least MIN_CACHE_BYTES, and never more than
    half of what the disk has left for it.
    """
    cached = sum(entry.stat().st_size for entry in folder.glob("[!.]*.npy"))
    room = shutil.disk_usage(folder).free + cached
    return int(min(max(MIN_CACHE_BYTES, ENTRIES_KEPT * newest_bytes), room // 2))


def prune(folder: Path, keep: Path, max_bytes: int | None = None) -> None:
    """Delete the least recently used entries until the cache is within max_bytes
    (by default cache_limit for the entry just written)."""
    if max_bytes is None:
        max_bytes = cache_limit(folder, keep.stat().st_size if keep.is_file() else 0)
    # Entries only: another worker's partial file (a dot name) is not the cache's yet.
    entries = [(entry, entry.stat()) for entry in folder.glob("[!.]*.npy")]
    total = 0
    for entry, stat in sorted(entries, key=lambda item: item[1].st_mtime, reverse=True):
        total += stat.st_size
        if total > max_bytes and entry != keep:
            entry.unlink(missing_ok=True)


def cached_training_set(
    extractor: keras.Model,
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    augmenter: Callable[[np.ndarray], np.ndarray] | None,
    augmented_views: int,
    augmentation: str = "",
) -> tuple[np.ndarray, np.ndarray, int]:
    """Features of the original images plus `augmented_views` augmented copies, with labels,
    and how many of those feature vectors came from the cache.

    `augmentation` describes the augmenter (its params and seed) for the cache key.
    With augmentation switched off (no augmenter) the copies would be identical, so
    only the originals are computed. Every view is written straight into one
    preallocated TRAINING_DTYPE array: the training set is held once, at half of
    float32's bytes (2 GB for 300,000 images' ResNet50 features, not 4 GB).
    """
    copies = augmented_views if augmenter is not None else 0
    width = extractor.output_shape[-1]
    features = np.empty((len(images) * (1 + copies), width), dtype=TRAINING_DTYPE)
    originals, views = features[: len(images)], features[len(images) :]
    _, hit = stored_features(extractor, images, batch_size, out=originals)
    from_cache = len(originals) if hit else 0
    if copies:
        # Augmentation runs on each batch before the base, outside the extractor's
        # graph, so every view reuses one traced extractor. The views are kept
        # together: each one continues the augmenter's random sequence.
        _, hit = stored_features(
            extractor, images, batch_size, transform=augmenter, views=copies,
            recipe=f"{augmentation}|{copies}", out=views,
        )  # fmt: skip
        from_cache += len(views) if hit else 0
    return features, np.tile(labels, 1 + copies), from_cache
