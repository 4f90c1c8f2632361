"""Classify many files: folders walked, images decoded ahead, predicted in batches.

Used by `imgclf predict DIR_OR_FILES...`. A thread decodes the next batch while the
model runs on the current one. On 2 cores this gains little over decoding in turn
(Pillow's per-file work is mostly Python, and the model keeps both cores busy); a
second decoding thread and worker processes were measured no faster (bench_cli).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TextIO

import numpy as np
from PIL import Image

from imgclf.images import ImageDecodeError, load_image
from imgclf.predictor import Predictor

BATCH = 256
DECODE_THREADS = 1
CSV_COLUMNS = ["file", "prediction", "confidence", "uncertain", "top_classes", "error"]


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


def decode_files(names: list[str], image_size: int, max_pixels: int) -> list[np.ndarray | str]:
    """The model input for each file, or the error message for it (runs in a worker)."""
    decoded: list[np.ndarray | str] = []
    for name in names:
        try:
            decoded.append(load_image(Path(name), image_size, max_pixels))
        except OSError as exc:
            decoded.append(f"cannot read {name}: {exc.strerror or exc}")
        except ImageDecodeError as exc:
            decoded.append(f"{name} is not a usable image: {exc}")
    return decoded


def predict_files(
    predictor: Predictor, files: list[str], top_k: int | None, batch_size: int = BATCH
) -> Iterator[dict]:
    """One answer per file, in order: the prediction, or {"file", "error"}."""
    chunks = [files[start : start + batch_size] for start in range(0, len(files), batch_size)]
    size, max_pixels = predictor.image_size, predictor.max_pixels
    with ThreadPoolExecutor(DECODE_THREADS) as pool:

        def decode(chunk: list[str]) -> list[Future]:
            halves = [chunk[half::DECODE_THREADS] for half in range(DECODE_THREADS)]
            return [pool.submit(decode_files, part, size, max_pixels) for part in halves]

        pending = decode(chunks[0]) if chunks else []
        for index, chunk in enumerate(chunks):
            parts = [future.result() for future in pending]
            decoded = [parts[i % DECODE_THREADS][i // DECODE_THREADS] for i in range(len(chunk))]
            # The next batch decodes while the model runs on this one.
            pending = decode(chunks[index + 1]) if index + 1 < len(chunks) else []
            good = [i for i, item in enumerate(decoded) if not isinstance(item, str)]
            probabilities = (
                predictor.model.predict_on_batch(np.stack([decoded[i] for i in good]))
                if good
                else []
            )
            answers = dict(zip(good, np.asarray(probabilities), strict=True))
            for i, name in enumerate(chunk):
                if i in answers:
                    yield {"file": name, **predictor.describe(answers[i], top_k)}
                else:
                    yield {"file": name, "error": decoded[i]}


def write_json_lines(answers: Iterable[dict], out: TextIO) -> int:
    """Print one JSON object per answer; return how many were errors."""
    errors = 0
    for answer in answers:
        out.write(json.dumps(answer) + "\n")
        errors += "error" in answer
    return errors


def write_csv(answers: Iterable[dict], out: TextIO) -> int:
    """Write a table (file, prediction, confidence, uncertain, top classes, error)."""
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    errors = 0
    for answer in answers:
        top = answer.get("probabilities", {})
        writer.writerow({
            "file": answer["file"],
            "prediction": answer.get("prediction", ""),
            "confidence": f"{answer['confidence']:.4f}" if "confidence" in answer else "",
            "uncertain": answer.get("uncertain", ""),
            "top_classes": "; ".join(f"{name} {p:.4f}" for name, p in top.items()),
            "error": answer.get("error", ""),
        })  # fmt: skip
        errors += "error" in answer
    return errors
