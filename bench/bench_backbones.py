"""What a pretrained base costs on this CPU: forward images/s of ResNet50 and EfficientNet-Lite.

    python -m bench.bench_backbones [--sizes 64 128 224] [--images 256]

Each base (no top, frozen, inference mode, as the feature cache runs it) predicts
the same random images in batches as the pipeline does (batches.inference_batch_size),
after one warm-up call; the best of three timed rounds is reported, with the ratio to
ResNet50 at the same size.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from imgclf.models import efficientnet, resnet
from imgclf.training.batches import inference_batch_size


def images_per_second(base, size: int, count: int, rounds: int = 3) -> float:
    images = np.random.default_rng(0).integers(0, 256, (count, size, size, 3)).astype("float32")
    batch = inference_batch_size(size)
    base.predict(images[:batch], batch_size=batch, verbose=0)  # traces the graph
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        base.predict(images, batch_size=batch, verbose=0)
        best = min(best, time.perf_counter() - started)
    return count / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 224])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--variants", nargs="+", default=["lite0"], choices=efficientnet.VARIANTS)
    args = parser.parse_args()
    print(f"forward pass of each base, {args.images} images, best of 3 rounds, "
          f"{len(os.sched_getaffinity(0))} cores")  # fmt: skip
    for size in args.sizes:
        reference = images_per_second(resnet.build_resnet_base(size), size, args.images)
        print(f"  {size:>3} px  ResNet50          {reference:7.1f} images/s")
        for variant in args.variants:
            base = efficientnet.build_base(variant, size)
            speed = images_per_second(base, size, args.images)
            print(f"  {size:>3} px  EfficientNet-{variant:<5}{speed:8.1f} images/s   "
                  f"{speed / reference:4.1f}x ResNet50")  # fmt: skip


if __name__ == "__main__":
    main()
