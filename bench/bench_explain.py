"""Benchmark Grad-CAM explanations against plain predictions on the same images.

    make repro && python -m bench.bench_explain [--repeats 100]

1. In-process, for each model family trained by the last `dvc repro` (the exported,
   selected model and the other one): the median time of Predictor.predict and of
   Predictor.explain (answer + Grad-CAM + the overlay image) on the same images,
   and their ratio (target: at most 3).
2. Over HTTP (gunicorn, one worker, one client): the median POST /predict and
   POST /predict?explain=1 (the overlay as base64 PNG in the JSON), and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imgclf import paths  # noqa: E402
from imgclf.bundle import Bundle  # noqa: E402
from imgclf.serving import runtimes  # noqa: E402
from imgclf.serving.predictor import Predictor  # noqa: E402
from support.server import Gunicorn, http, multipart  # noqa: E402

IMAGES = 20


def sample_images() -> list[bytes]:
    files = sorted((ROOT / "data").rglob("*.png"))[::97][:IMAGES]
    if not files:
        sys.exit("no sample images in data/: run `make repro` (or `dvc pull data.dvc`) first")
    return [path.read_bytes() for path in files]


def median_seconds(call: Callable[[bytes], object], images: list[bytes], repeats: int) -> float:
    for image in images[:3]:
        call(image)  # warm-up: tracing, first allocations
    seconds = []
    for number in range(repeats):
        image = images[number % len(images)]
        started = time.perf_counter()
        call(image)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def family_predictors(export_dir: Path) -> dict[str, Predictor]:
    """The exported model, and every other family's trained model with the same metadata."""
    from imgclf import models

    served = Predictor.load(export_dir)
    metadata = served.metadata
    predictors = {f"{metadata.selected_model} (exported)": served}
    for family in models.families():
        path = ROOT / paths.trained_model(family.name)
        if family.name != metadata.selected_model and path.is_file():
            predictors[family.name] = Predictor(runtimes.open_file("keras", path), metadata)
    return predictors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=ROOT / paths.EXPORT)
    parser.add_argument("--repeats", type=int, default=100)
    args = parser.parse_args()
    images = sample_images()
    metadata = Bundle(args.model_dir).read_metadata().model_dump()

    lines = []
    for name, predictor in family_predictors(args.model_dir).items():
        predict = median_seconds(predictor.predict, images, args.repeats)
        explain = median_seconds(predictor.explain, images, args.repeats)
        lines.append(
            f"  {name:<16} predict {predict * 1000:7.2f} ms   explain {explain * 1000:7.2f} ms"
            f"   ratio {explain / predict:.2f} (target <= 3)"
        )

    bodies = [multipart([("sample.png", image)]) for image in images]
    with Gunicorn(args.model_dir, workers=1) as server:

        def post(query: str) -> Callable[[bytes], object]:
            def send(image: bytes) -> None:
                body, content_type = bodies[images.index(image)]
                status, _ = http(f"{server.url}/predict{query}", body, content_type)
                if status != 200:
                    raise SystemExit(f"/predict{query} answered {status}")

            return send

        plain = median_seconds(post(""), images, args.repeats)
        explained = median_seconds(post("?explain=1"), images, args.repeats)

    print(
        f"explanations, {metadata['image_size']} px model input, {len(images)} sample images, "
        f"{args.repeats} repeats (median)"
    )
    print("\n".join(lines))
    print(
        f"  over HTTP        /predict {plain * 1000:7.2f} ms   /predict?explain=1 "
        f"{explained * 1000:7.2f} ms   ratio {explained / plain:.2f}"
    )


if __name__ == "__main__":
    main()
