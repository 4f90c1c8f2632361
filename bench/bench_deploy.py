"""Benchmark the export in every runtime: size, accuracy, agreement, latency, cold start, server.

    make repro && python -m bench.bench_deploy [--serve-python /path/to/serve-venv/bin/python]

Two exports, both made here the way the export stage makes them (deploy/parity.py,
on the sample's untouched test split): the sample's selected model (models/best) and
the sample's pretrained EfficientNet-Lite (models/efficientnet, uncalibrated). For
each format and runtime: file size, test accuracy, top-1 agreement with Keras, the
largest probability difference, median latency of a batch of 1 and of 32; each
runtime's cold start, process start to the first answer; `imgclf predict` on three
images, cold, per runtime (and, with --serve-python, from a venv that has only
`imgclf[serve]`: no TensorFlow at all); and requests/s and p99 of one gunicorn worker
on each runtime, with micro-batching on and off (8 clients, 400 one-image requests).
Every figure of a run comes from the same machine in the same minutes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench.bench_webapp import load, timed_request  # noqa: E402
from imgclf import paths  # noqa: E402
from imgclf.bundle import CONVERTED, EXPLAIN, FORMATS, Bundle  # noqa: E402
from imgclf.data.prepared import read_split  # noqa: E402
from imgclf.serving import runtimes  # noqa: E402
from support.server import Gunicorn, multipart  # noqa: E402

REPEATS = 100


def make_export(model_file: Path, folder: Path) -> list:
    """An export of `model_file` in `folder`, every format written and checked as export does."""
    import keras

    from imgclf.deploy import parity
    from imgclf.models.saving import export_saved_model, save_model

    model = keras.models.load_model(model_file)
    folder.mkdir(parents=True)
    bundle = Bundle(folder)
    save_model(model, bundle.file("keras"))
    export_saved_model(model, bundle.saved_model)
    shutil.copy(Bundle(ROOT / paths.EXPORT).metadata_file, bundle.metadata_file)
    test, train = read_split("test", ROOT / "prepared"), read_split("train", ROOT / "prepared")
    order = np.random.default_rng(0).permutation(len(train.labels))
    images = (train.images[np.sort(order[:200])], train.images[np.sort(order[200:1200])])
    reports, _ = parity.write_formats(
        bundle, model, list(CONVERTED), images, (test.images, test.labels)
    )
    return reports


def latency(runtime, images: np.ndarray, batch: int) -> float:
    from imgclf.deploy.parity import median_latency

    return median_latency(runtime, images[:batch], REPEATS)


def cold_start(python: str, folder: Path, runtime: str, image: Path) -> float:
    """Seconds from starting a process to its first answer (the median of three)."""
    code = (
        "from imgclf.serving import Predictor; "
        f"Predictor.load({str(folder)!r}, {runtime!r}).predict({str(image)!r})"
    )
    times = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([python, "-c", code], cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def cli_seconds(command: list[str]) -> float:
    """Wall seconds of `imgclf predict` on three images (the median of three cold runs)."""
    times = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def formats_table(name: str, folder: Path, reports: list, images: np.ndarray) -> None:
    print(f"\n{name}: {folder}")
    print(f"  {'format':12} {'runtime':8} {'bytes':>10} {'test acc':>8} {'agree':>7} "
          f"{'max diff':>9} {'batch 1':>9} {'batch 32':>9}")  # fmt: skip
    by_format = {r.format: r for r in reports}
    bundle = Bundle(folder)
    keras_runtime = runtimes.open_runtime(bundle, "keras")
    test = read_split("test", ROOT / "prepared")
    reference = keras_runtime.probabilities(test.images.astype(np.float32))
    for fmt in ("keras", *CONVERTED):
        runtime_name, path, report = FORMATS[fmt].runtime, bundle.file(fmt), by_format.get(fmt)
        if report is not None and not report.passed:
            print(f"  {fmt:12} {runtime_name:8} not shipped: {report.reason}")
            continue
        runtime = keras_runtime if fmt == "keras" else runtimes.open_file(runtime_name, path)
        accuracy = float((reference.argmax(1) == test.labels).mean()) if report is None else (
            report.test_accuracy)  # fmt: skip
        agreement = 1.0 if report is None else report.agreement
        difference = 0.0 if report is None else report.max_probability_difference
        print(
            f"  {fmt:12} {runtime_name:8} {path.stat().st_size:>10,} {accuracy:8.4f} "
            f"{agreement:7.4f} {difference:9.1e} {latency(runtime, images, 1) * 1e3:7.2f}ms "
            f"{latency(runtime, images, 32) * 1e3:7.2f}ms"
        )
    explain = by_format.get(EXPLAIN.name)
    if explain is not None:
        print(f"  {EXPLAIN.file}: Grad-CAM vs Keras, lowest heatmap correlation "
              f"{explain.heatmap_correlation:.6f}, same class {explain.agreement:.0%}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve-python", help="python of a venv with only 'imgclf[serve]'")
    args = parser.parse_args()
    if not Bundle(ROOT / paths.EXPORT).is_export():
        sys.exit(f"no export in {paths.EXPORT}: run `make repro` first")
    images = read_split("test", ROOT / "prepared").images
    photos = sorted((ROOT / "data").rglob("*.png"))[:3]
    with tempfile.TemporaryDirectory() as scratch:
        exports = {}
        for name, model_file in (
            (
                "sample export (selected model, calibrated)",
                Bundle(ROOT / paths.EXPORT).file("keras"),
            ),
            ("pretrained EfficientNet-Lite (sample)", ROOT / paths.trained_model("efficientnet")),
        ):
            folder = Path(scratch) / model_file.parent.name
            exports[name] = folder
            formats_table(name, folder, make_export(model_file, folder), images)

        sample = exports["sample export (selected model, calibrated)"]
        print("\ncold start, process start to the first answer (median of 3):")
        for runtime in ("onnx", "tflite", "keras"):
            print(f"  {runtime:7} {cold_start(sys.executable, sample, runtime, photos[0]):6.2f} s")
        print("\n`imgclf predict` on 3 images, cold (median of 3):")
        cli = [sys.executable, "-m", "imgclf", "predict", "--model-dir", str(sample)]
        seconds = {rt: cli_seconds([*cli, "--runtime", rt, *map(str, photos)])
                   for rt in ("onnx", "keras")}  # fmt: skip
        for runtime, value in seconds.items():
            print(f"  {runtime:7} {value:6.2f} s")
        print(f"  keras / onnx: {seconds['keras'] / seconds['onnx']:.1f}x")
        if args.serve_python:
            serve_cli = [args.serve_python, "-m", "imgclf", "predict", "--model-dir", str(sample)]
            found = subprocess.run(
                [args.serve_python, "-c", "import importlib.util as u; "
                 "print(u.find_spec('tensorflow') is None)"],
                capture_output=True, text=True, check=True,
            ).stdout.strip()  # fmt: skip
            print(f"  onnx from a serve-only venv (no TensorFlow installed: {found}): "
                  f"{cli_seconds([*serve_cli, *map(str, photos)]):.2f} s")  # fmt: skip

        body, content_type = multipart([("sample.png", photos[0].read_bytes())])
        print("\none gunicorn worker, 8 clients x 50 one-image requests:")
        results = {}
        for runtime in ("onnx", "keras"):
            for batching, env in (("on", {}), ("off", {"IMGCLF_MAX_BATCH": "1"})):
                extra = {"IMGCLF_RUNTIME": runtime, **env}
                with Gunicorn(sample, workers=1, extra_env=extra) as server:
                    url = f"{server.url}/predict"
                    for _ in range(10):
                        timed_request(url, body, content_type)
                    result = load(url, body, content_type, 8, 400)
                results[(runtime, batching)] = result
                print(
                    f"  {runtime:5} batching {batching:3}: {result['errors']} errors, "
                    f"{result['throughput']:6.1f} req/s, p50 {result['p50'] * 1e3:6.1f} ms, "
                    f"p99 {result['p99'] * 1e3:6.1f} ms"
                )
        for batching in ("on", "off"):
            ratio = results[("onnx", batching)]["throughput"] / results[("keras", batching)][
                "throughput"]  # fmt: skip
            print(f"  onnx / keras requests/s, batching {batching}: {ratio:.2f}x")
    print(json.dumps({"cpu": _cpu()}))


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    main()
