"""How EfficientNet-Lite0's frozen features do on photos, by input size and by which features.

    python -m bench.bench_probe [--sizes 64 96 128 160]

A linear probe (scikit-learn's logistic regression on standardized features) on
the benchmark's nature photos (bench/datasets.py, photos case: 1,800 crops of 12
photographs, 70% to fit, 30% to score, stratified), for the features of the head
alone and for the pooled stage outputs beside it (what the pipeline uses), with
all training images and with 20 per class. It is what `efficientnet.image_size:
auto` and the multi-stage features were chosen by; the cost per image of each
size is bench_backbones'.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from bench import datasets
from imgclf.images import load_image
from imgclf.models.efficientnet import build_lite, load_base_weights, preprocess

FEW = 20


def probe(features: np.ndarray, labels: np.ndarray, fit: np.ndarray, score: np.ndarray) -> float:
    mean, std = features[fit].mean(axis=0), features[fit].std(axis=0) + 1e-3
    model = LogisticRegression(max_iter=3000).fit((features[fit] - mean) / std, labels[fit])
    return float(model.score((features[score] - mean) / std, labels[score]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 96, 128, 160])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-probe-") as scratch:
        datasets.write_photos(Path(scratch))
        files = sorted(p for p in Path(scratch).rglob("*.*") if p.is_file())
        labels = np.array([p.parent.name for p in files])
        fit, score = train_test_split(
            np.arange(len(files)), test_size=0.3, stratify=labels, random_state=0
        )
        rng = np.random.default_rng(0)
        few = np.concatenate(
            [rng.choice(fit[labels[fit] == c], FEW, replace=False) for c in np.unique(labels)]
        )
        print(f"linear probe on EfficientNet-Lite0 features, {len(files)} photos, "
              f"{len(np.unique(labels))} classes")  # fmt: skip
        for size in args.sizes:
            base = build_lite("lite0", size)
            load_base_weights(base, "lite0", "imagenet")
            inputs = keras.Input((size, size, 3))
            pooled = [keras.layers.GlobalAveragePooling2D()(m) for m in base(preprocess(inputs))]
            extractor = keras.Model(inputs, pooled)
            pixels = np.stack([load_image(f, size) for f in files]).astype("float32")
            started = time.perf_counter()
            maps = extractor.predict(pixels, batch_size=64, verbose=0)
            seconds = time.perf_counter() - started
            head, stages = maps[-1], np.concatenate(maps, axis=1)
            print(
                f"  {size:>3} px  head only {probe(head, labels, fit, score):.4f} "
                f"(20/class {probe(head, labels, few, score):.4f})   stages + head "
                f"{probe(stages, labels, fit, score):.4f} "
                f"(20/class {probe(stages, labels, few, score):.4f})   "
                f"{len(files) / seconds:.0f} images/s"
            )


if __name__ == "__main__":
    main()
