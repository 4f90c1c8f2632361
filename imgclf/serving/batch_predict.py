"""Classify many files: folders walked, images decoded ahead, predicted in batches.

Used by `imgclf predict DIR_OR_FILE...`. Threads decode batches ahead of the model,
one per core, and two threads call the model, each on its own batch; answers come
back in file order. On 2 cores decoding and the model compete for the same CPU:
with one thread calling the model, each batch waited for the other core while
decoding held it; with two, TensorFlow always has a batch to put on a free core.
Pillow lets go of the GIL while it decodes and resizes, so several decoding threads
help large photos and cost small images nothing; decoding in processes was measured
slower (docs/benchmarks.md, bench_cli and bench_photos).
"""

from __future__ import annotations

import itertools
import json
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TextIO

import numpy as np
from PIL import Image

from imgclf.atomic_io import csv_table
from imgclf.images import ImageDecodeError, load_image
from imgclf.serving.predictor import Predictor

BATCH = 128
MODEL_THREADS = 2
DECODE_THREADS = min(8, os.cpu_count() or 1)
CSV_COLUMNS = [
    "file", "prediction", "confidence", "uncertain", "unfamiliar", "unfamiliarity",
    "top_classes", "error",
]  # fmt: skip


def image_suffixes() -> set[str]:
    """File name endings of the formats Pillow can open (".jpg", ".png", ...)."""
    return {suffix.lower() for suffix in Image.registered_extensions()}


def expand(paths: Iterable[str]) -> list[str]:
    """Files as given; folders walked recursively (sorted), their image files only.

    Hidden files and folders are skipped, and so are files a folder holds that are
    not images by their name (notes, thumbnails databases); a file named on the
    command line is always tried.
    """
    suffixes = image_suffixes()
    files: list[str] = []
    for name in paths:
        path = Path(name)
        if not path.is_dir():
            files.append(name)
            continue
        for found in sorted(path.rglob("*")):
            relative = found.relative_to(path).parts
            if any(part.startswith(".") for part in relative):
                continue
            if found.is_file() and found.suffix.lower() in suffixes:
                files.append(str(found))
    return files


def decode_files(
    names: list[str], image_size: int, max_pixels: int, read: Callable[[str], bytes] | None = None
) -> list[np.ndarray | str]:
    """The model input for each file, or the error message for it (runs in a worker).

    `read` gives a file's bytes (a remote file's, say); by default local files are read.
    """
    decoded: list[np.ndarray | str] = []
    for name in names:
        try:
            decoded.append(load_image(read(name) if read else name, image_size, max_pixels))
        except OSError as exc:
            decoded.append(f"cannot read {name}: {exc.strerror or exc}")
        except ImageDecodeError as exc:
            decoded.append(f"{name} is not a usable image: {exc}")
    return decoded


def predict_files(
    predictor: Predictor,
    files: list[str],
    top_k: int | None,
    batch_size: int = BATCH,
    decode_threads: int = DECODE_THREADS,
) -> Iterator[dict]:
    """One answer per file, in order: the prediction, or {"file", "error"}."""
    size, max_pixels = predictor.image_size, predictor.max_pixels
    chunks = (files[start : start + batch_size] for start in range(0, len(files), batch_size))

    def predict(decoding: Future) -> tuple[list[np.ndarray | str], dict[int, dict]]:
        """The decoded batch, and the answer for each of its images that decoded."""
        decoded = decoding.result()
        good = [i for i, item in enumerate(decoded) if not isinstance(item, str)]
        if not good:
            return decoded, {}
        scores = predictor.scores(np.stack([decoded[i] for i in good]))
        answers = predictor.describe_batch(scores, top_k)
        return decoded, dict(zip(good, answers, strict=True))

    with ThreadPoolExecutor(decode_threads) as decoder, ThreadPoolExecutor(MODEL_THREADS) as model:

        def start(chunk: list[str]) -> tuple[list[str], Future]:
            decoding = decoder.submit(decode_files, chunk, size, max_pixels)
            return chunk, model.submit(predict, decoding)

        # Enough batches in flight that every thread has one, in file order.
        ahead = decode_threads + MODEL_THREADS
        pending = deque(start(chunk) for chunk in itertools.islice(chunks, ahead))
        while pending:
            chunk, answering = pending.popleft()
            decoded, answers = answering.result()
            if (following := next(chunks, None)) is not None:
                pending.append(start(following))
            for i, name in enumerate(chunk):
                if i in answers:
                    yield {"file": name, **answers[i]}
                else:
                    yield {"file": name, "error": decoded[i]}


def write_json_lines(answers: Iterable[dict], out: TextIO) -> int:
    """Print one JSON object per answer; return how many were errors."""
    errors = 0
    for answer in answers:
        out.write(json.dumps(answer) + "\n")
        errors += "error" in answer
    return errors


def write_csv(answers: Iterable[dict], path: Path) -> int:
    """Write a table (CSV_COLUMNS: file, prediction, confidence, uncertain, unfamiliar and its
    score, top classes, error) to `path`,
    whole or not at all, its text cells spreadsheet-safe; the number of failed files."""
    errors = 0
    with csv_table(path, CSV_COLUMNS) as writer:
        for answer in answers:
            writer.writerow(csv_row(record(answer)))
            errors += "error" in answer
    return errors


def record(answer: dict) -> dict:
    """One answer as a typed row of CSV_COLUMNS (None where the file failed, or for its error)."""
    top = answer.get("probabilities", {})
    return {
        "file": answer["file"],
        "prediction": answer.get("prediction"),
        "confidence": answer.get("confidence"),
        "uncertain": answer.get("uncertain"),
        "unfamiliar": answer.get("unfamiliar"),
        "unfamiliarity": answer.get("unfamiliarity"),
        "top_classes": "; ".join(f"{name} {p:.4f}" for name, p in top.items()),
        "error": answer.get("error"),
    }


def csv_row(row: dict) -> dict:
    """A `record` as the CSV's text cells (empty where there is nothing)."""
    confidence, uncertain = row["confidence"], row["uncertain"]
    unfamiliar, unfamiliarity = row["unfamiliar"], row["unfamiliarity"]
    return {
        "file": row["file"],
        "prediction": row["prediction"] or "",
        "confidence": "" if confidence is None else f"{confidence:.4f}",
        "uncertain": "" if uncertain is None else uncertain,
        "unfamiliar": "" if unfamiliar is None else unfamiliar,
        "unfamiliarity": "" if unfamiliarity is None else f"{unfamiliarity:.4f}",
        "top_classes": row["top_classes"],
        "error": row["error"] or "",
    }
