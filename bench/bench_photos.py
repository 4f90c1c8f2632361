"""Benchmark decoding camera photos: what `imgclf predict` costs on a folder of them.

    make bench-data && make repro && python -m bench.bench_photos [--count 240]

Builds a folder of camera-sized JPEGs (4032x3024, 4000x3000, 4624x3468, 3264x2448
and 1600x1200; every other one stored on its side with the EXIF tag that turns it
upright) from the desktop's nature photographs (Debian's `mate-backgrounds`), then:

1. one photo at a time, at 32, 64 and 224 px: the project's decoder (imgclf/images.py,
   which decodes a large JPEG at a reduced scale) against the same policy decoding
   every pixel (support/decoding.py), its time and how far the model inputs differ;
2. `imgclf predict` on the folder, in-process (walk, decode, predict, table) with one
   decoding thread and with `batch_predict.DECODE_THREADS`.

The photos are enlarged wallpapers: smoother than a camera's, so they decode somewhat
faster than real photos of the same size; the ratios are what to read.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from bench.datasets import nature_photos  # noqa: E402
from imgclf.images import load_image  # noqa: E402
from imgclf.serving import batch_predict  # noqa: E402
from imgclf.serving.predictor import Predictor  # noqa: E402
from support.decoding import fitted_from_full_decode  # noqa: E402

CAMERA_SIZES = ((4032, 3024), (4000, 3000), (4624, 3468), (3264, 2448), (1600, 1200))


def write_camera_photos(folder: Path, count: int) -> list[Path]:
    """`count` JPEGs of camera sizes, quality 90, half of them stored turned."""
    sources = list(nature_photos().values())
    paths = []
    for number in range(count):
        size = CAMERA_SIZES[number % len(CAMERA_SIZES)]
        photo = sources[number % len(sources)].resize(size, Image.Resampling.BICUBIC)
        exif = Image.Exif()
        if number % 2:
            exif[0x0112] = 6  # "rotate 90 CW to display": a portrait shot
            photo = photo.transpose(Image.Transpose.ROTATE_90)
        paths.append(folder / f"IMG_{number:04d}.jpg")
        photo.save(paths[-1], quality=90, exif=exif)
    return paths


def compare_decoders(paths: list[Path]) -> None:
    print("  one photo at a time: median ms, full decode vs imgclf.images; input difference")
    for image_size in (32, 64, 224):
        full_ms, ours_ms, differences = [], [], []
        for path in paths[: len(CAMERA_SIZES) * 4]:
            data = path.read_bytes()
            started = time.perf_counter()
            expected = fitted_from_full_decode(data, image_size).astype(np.int16)
            full_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            ours = load_image(data, image_size)
            ours_ms.append((time.perf_counter() - started) * 1000)
            differences.append(np.abs(ours.astype(np.int16) - expected))
        full, fast = statistics.median(full_ms), statistics.median(ours_ms)
        worst = max(int(d.max()) for d in differences)
        mean = statistics.mean(float(d.mean()) for d in differences)
        print(f"  {image_size:3d} px  {full:6.1f} ms vs {fast:5.1f} ms  "
              f"{full / fast:4.1f}x faster; max {worst} levels, mean {mean:.2f}")  # fmt: skip


def time_cli(predictor: Predictor, files: list[str], threads: int, rounds: int) -> float:
    """Best images/s of `rounds` runs of the CLI's pipeline with `threads` decoders."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        answers = batch_predict.predict_files(predictor, files, None, decode_threads=threads)
        batch_predict.write_csv(answers, Path(tempfile.mkdtemp()) / "table.csv")
        best = min(best, time.perf_counter() - started)
    return len(files) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=240)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model-dir", type=Path, default=ROOT / "models" / "best")
    args = parser.parse_args()
    predictor = Predictor.load(args.model_dir)
    with tempfile.TemporaryDirectory() as scratch:
        paths = write_camera_photos(Path(scratch), args.count)
        megabytes = sum(path.stat().st_size for path in paths) / 2**20
        print(f"{len(paths)} camera-sized JPEGs ({megabytes:.0f} MB)")
        compare_decoders(paths)
        files = [str(path) for path in paths]
        one = time_cli(predictor, files, 1, args.rounds)
        many = time_cli(predictor, files, batch_predict.DECODE_THREADS, args.rounds)
    print(f"  imgclf predict on the folder at {predictor.image_size} px, best of {args.rounds}: "
          f"{one:.1f} images/s with one decoding thread, {many:.1f} with "
          f"{batch_predict.DECODE_THREADS}: {many / one:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
