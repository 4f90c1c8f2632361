"""Benchmark `imgclf predict` on a folder against the model's own batched prediction rate.

    make repro && python -m bench.bench_cli [--folder data]

1. The model's own rate: every image of the folder decoded beforehand (not timed),
   then `model.predict(images, batch_size=batch_predict.BATCH)`; also the model called batch
   by batch (`predict_on_batch`, as the CLI calls it), which skips Keras' data
   pipeline and is the stricter reference.
2. The CLI's rate on the same folder, in-process: walking it, decoding (a thread,
   ahead of the model) and predicting in batches, writing the CSV table, and its
   ratio to (1) (target: at least 0.8).
3. The whole `imgclf predict FOLDER --csv` command as a user runs it, start-up included.

Rounds alternate; each figure is the best round (the fastest run shows what the code
costs; on this shared 2-core machine `model.predict` alone runs in either about
0.33 s or 0.65 s for the sample, in stretches, which would make a median of it a
coin toss). Medians are printed beside them.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from imgclf.serving import batch_predict  # noqa: E402
from imgclf.serving.predictor import Predictor  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=ROOT / "data")
    parser.add_argument("--model-dir", type=Path, default=ROOT / "models" / "best")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    files = batch_predict.expand([str(args.folder)])
    if not files:
        sys.exit(f"no images in {args.folder}: run `make repro` (or `dvc pull data.dvc`) first")
    # Keras itself, beside the CLI on the same runtime (bench_deploy compares runtimes).
    predictor = Predictor.load(args.model_dir, "keras")

    pixels = np.stack([predictor.pixels(Path(name)) for name in files])
    batches = [
        pixels[start : start + batch_predict.BATCH]
        for start in range(0, len(pixels), batch_predict.BATCH)
    ]
    runs = {
        "model.predict": lambda: predictor.runtime.model.predict(
            pixels, batch_size=batch_predict.BATCH, verbose=0
        ),
        "predict_on_batch": lambda: [predictor.runtime.model.predict_on_batch(b) for b in batches],
        "cli": lambda: batch_predict.write_csv(
            batch_predict.predict_files(predictor, files, None), Path(tempfile.mkdtemp()) / "t.csv"
        ),
    }
    failures = {name: run() for name, run in runs.items()}["cli"]  # warm-up
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - started)
    best = {name: len(files) / min(times) for name, times in seconds.items()}
    median = {name: len(files) / statistics.median(times) for name, times in seconds.items()}

    with tempfile.TemporaryDirectory() as scratch:
        command = [sys.executable, "-m", "imgclf", "predict", str(args.folder),
                   "--model-dir", str(args.model_dir), "--csv", f"{scratch}/out.csv"]  # fmt: skip
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True)
        command_seconds = time.perf_counter() - started
        rows = len(Path(f"{scratch}/out.csv").read_text().splitlines()) - 1

    print(f"imgclf predict on {args.folder}: {len(files)} images at "
          f"{predictor.image_size} px, model {predictor.metadata.selected_model}")  # fmt: skip
    print(f"  images/s, best of {args.rounds} rounds (median)")
    for name, label in (("model.predict", "model.predict on decoded images"),
                        ("predict_on_batch", "predict_on_batch, batch by batch"),
                        ("cli", "CLI: walk, decode, predict, table")):  # fmt: skip
        print(f"  {label:34s} {best[name]:6.0f} ({median[name]:5.0f})")
    print(f"  ratio CLI / model.predict {best['cli'] / best['model.predict']:.2f} (target >= 0.8); "
          f"CLI / predict_on_batch {best['cli'] / best['predict_on_batch']:.2f}; "
          f"{failures} errors")  # fmt: skip
    print(f"  `imgclf predict {args.folder} --csv` {command_seconds:6.1f} s wall, start-up "
          f"included; {rows} rows; stderr {len(result.stderr)} characters")  # fmt: skip


if __name__ == "__main__":
    main()
