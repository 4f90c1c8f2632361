"""Benchmark `imgclf predict` on a folder against the model's own batched prediction rate.

    make repro && python -m bench.bench_cli [--folder data]

1. The model's own rate: every image of the folder decoded beforehand (not timed),
   then `model.predict(images, batch_size=256)`: images per second (median of
   --rounds runs, alternating with the CLI's).
2. The CLI's rate on the same folder, in-process: walking it, decoding (a
   thread, ahead of the model) and predicting in batches, writing the CSV
   table: images per second, and its ratio to (1) (target: at least 0.8).
3. The whole `imgclf predict FOLDER --csv` command as a user runs it, start-up included.
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from imgclf import bulk  # noqa: E402
from imgclf.predictor import Predictor  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=ROOT / "data")
    parser.add_argument("--model-dir", type=Path, default=ROOT / "models" / "best")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    files = bulk.expand([str(args.folder)])
    if not files:
        sys.exit(f"no images in {args.folder}: run `make repro` (or `dvc pull data.dvc`) first")
    predictor = Predictor.load(args.model_dir)

    pixels = np.stack([predictor.pixels(Path(name)) for name in files])
    predictor.model.predict(pixels[: bulk.BATCH], batch_size=bulk.BATCH, verbose=0)  # warm-up
    list(bulk.predict_files(predictor, files[: bulk.BATCH], None))  # warm-up
    # Alternating rounds, medians: single epochs on this shared machine vary up to 2x.
    model_seconds, cli_seconds = [], []
    for _ in range(args.rounds):
        started = time.perf_counter()
        predictor.model.predict(pixels, batch_size=bulk.BATCH, verbose=0)
        model_seconds.append(time.perf_counter() - started)
        started = time.perf_counter()
        failures = bulk.write_csv(bulk.predict_files(predictor, files, None), io.StringIO())
        cli_seconds.append(time.perf_counter() - started)
    model_rate = len(files) / statistics.median(model_seconds)
    cli_rate = len(files) / statistics.median(cli_seconds)

    with tempfile.TemporaryDirectory() as scratch:
        command = [sys.executable, "-m", "imgclf", "predict", str(args.folder),
                   "--model-dir", str(args.model_dir), "--csv", f"{scratch}/out.csv"]  # fmt: skip
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True)
        command_seconds = time.perf_counter() - started
        rows = len(Path(f"{scratch}/out.csv").read_text().splitlines()) - 1

    print(f"imgclf predict on {args.folder}: {len(files)} images at "
          f"{predictor.image_size} px, model {predictor.metadata['selected_model']}")  # fmt: skip
    print(
        f"  model.predict on decoded images    {model_rate:8.0f} images/s (median of {args.rounds})"
    )
    print(f"  CLI: walk, decode, predict, table  {cli_rate:8.0f} images/s   "
          f"ratio {cli_rate / model_rate:.2f} (target >= 0.8); {failures} errors")  # fmt: skip
    print(f"  `imgclf predict {args.folder} --csv` {command_seconds:6.1f} s wall, start-up "
          f"included; {rows} rows; stderr {len(result.stderr)} characters")  # fmt: skip


if __name__ == "__main__":
    main()
