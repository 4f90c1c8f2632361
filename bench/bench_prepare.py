"""Benchmark the prepare stage: N generated JPEGs, images/s and peak memory of the whole stage.

    python -m bench.bench_prepare                 # 25,000 JPEGs at 224 px, prepared at 224 px
    python -m bench.bench_prepare --count 2000    # a quick run

The stage runs as a subprocess in a scratch project (bench/out/ by default); its
memory is the sum of the resident memory of the stage and its decoder workers,
sampled every 0.5 s.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from ruamel.yaml import YAML

from bench.measure import run_measured

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ("cats", "dogs")


def make_jpeg(job: tuple[int, int, Path]) -> None:
    """A photo-like JPEG: a smooth gradient, a shape and some noise (about 10 kB at 224 px)."""
    index, size, path = job
    rng = np.random.default_rng(index)
    ramp = np.linspace(0, 1, size)
    colour = rng.uniform(0, 255, 3)
    pixels = np.outer(ramp, ramp)[..., None] * colour + rng.normal(0, 8, (size, size, 3))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    box = sorted(rng.integers(0, size, 2).tolist()) + sorted(rng.integers(0, size, 2).tolist())
    ImageDraw.Draw(image).ellipse(
        (box[0], box[2], box[1], box[3]), fill=tuple(rng.integers(0, 255, 3).tolist())
    )
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    path.write_bytes(buffer.getvalue())


def generate(data: Path, count: int, size: int) -> None:
    jobs = []
    for index in range(count):
        folder = data / CLASSES[index % len(CLASSES)]
        jobs.append((index, size, folder / f"{index:06d}.jpg"))
    for name in CLASSES:
        (data / name).mkdir(parents=True, exist_ok=True)
    with multiprocessing.Pool() as pool:
        pool.map(make_jpeg, jobs, chunksize=256)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=25_000)
    parser.add_argument("--size", type=int, default=224, help="pixel size of the generated JPEGs")
    parser.add_argument("--image-size", type=int, default=224, help="prepare.image_size")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "prepare")
    args = parser.parse_args()

    project = args.out
    data = project / "data"
    marker = data / f".generated-{args.count}-{args.size}"
    if not marker.exists():
        shutil.rmtree(data, ignore_errors=True)
        started = time.perf_counter()
        generate(data, args.count, args.size)
        marker.touch()
        print(
            f"generated {args.count} JPEGs at {args.size} px "
            f"in {time.perf_counter() - started:.0f}s"
        )
    yaml = YAML(typ="safe", pure=True)
    params = yaml.load((ROOT / "params.yaml").read_text())
    params["prepare"]["image_size"] = args.image_size
    with open(project / "params.yaml", "w") as f:
        yaml.dump(params, f)

    run = run_measured([sys.executable, str(ROOT / "stages" / "prepare.py")], project)
    seconds, peak_tree, peak_single = run.seconds, run.peak_tree_bytes, run.peak_process_bytes
    cores = len(os.sched_getaffinity(0))
    print(f"prepare: {args.count} JPEGs ({args.size} px) -> {args.image_size} px on {cores} cores")
    print(f"  wall time      {seconds:8.1f} s")
    print(f"  throughput     {args.count / seconds:8.0f} images/s")
    print(f"  peak memory    {peak_tree / 2**20:8.0f} MiB (stage + decoder workers, summed)")
    print(f"  largest process{peak_single / 2**20:8.0f} MiB")
    print(f"  limit          {2048:8d} MiB -> {'OK' if peak_tree <= 2 * 2**30 else 'OVER'}")


if __name__ == "__main__":
    main()
