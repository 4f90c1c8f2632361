"""What a pretrained base costs on this CPU: forward images/s of ResNet50 and EfficientNet-Lite.

    python -m bench.bench_backbones [--sizes 64 128 224] [--images 256]

Each base (no top, frozen, inference mode, as the feature cache runs it) predicts
the same random images in batches as the pipeline does (models.inference.inference_batch_size),
after one warm-up call; the best of three timed rounds is reported, with the ratio to
ResNet50 at the same size. Then the converted ImageNet classifier of each
EfficientNet-Lite variant names its top three classes for two of scikit-image's photos
(`chelsea`, a tabby cat, and `coffee`, a cup of espresso), as the conversion tests see
them: a check that the weights were ported right.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from imgclf.models import efficientnet, resnet
from imgclf.models.inference import inference_batch_size
from support.images import imagenet_photos


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


def print_imagenet_classes(variant: str, size: int = 224) -> None:
    names = ("chelsea", "coffee")
    images = imagenet_photos(names, size)
    probabilities = efficientnet.imagenet_classifier(variant, size).predict(images, verbose=0)
    for name, row in zip(names, probabilities, strict=True):
        top = np.argsort(-row)[:3]
        classes = ", ".join(f"{index} {row[index]:.4f}" for index in top)
        print(f"  EfficientNet-{variant} at {size} px: {name:<8} -> {classes}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 224])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--variants", nargs="+", default=["lite0"], choices=efficientnet.VARIANTS)
    args = parser.parse_args()
    print(f"forward pass of each base, {args.images} images, best of 3 rounds, "
          f"{len(os.sched_getaffinity(0))} cores")  # fmt: skip
    for size in args.sizes:
        reference = images_per_second(resnet.resnet50(size), size, args.images)
        print(f"  {size:>3} px  ResNet50          {reference:7.1f} images/s")
        for variant in args.variants:
            base = efficientnet.build_lite(variant, size)
            speed = images_per_second(base, size, args.images)
            print(f"  {size:>3} px  EfficientNet-{variant:<5}{speed:8.1f} images/s   "
                  f"{speed / reference:4.1f}x ResNet50")  # fmt: skip
    print("ImageNet classes of the converted weights (top three: class index, probability)")
    for variant in args.variants:
        print_imagenet_classes(variant)


if __name__ == "__main__":
    main()
