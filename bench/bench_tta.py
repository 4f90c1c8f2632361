"""Benchmark test-time augmentation: accuracy gained or lost, what it costs, parity kept.

    make bench-data && python -m bench.bench_tta [--keep /tmp/unfamiliar] [--docs]

For the fashion (custom CNN), photos (EfficientNet-Lite0) and drawings cases of
bench/datasets.py, built and run through the whole pipeline (`--keep DIR` shares the
projects of bench_unfamiliar and bench_int8), the selected model is served with each
kind of views (models/tta.py): its validation and test accuracy (the change against no
views), the views `export.tta: auto` keeps (chosen on validation: it must never keep
views that lower validation accuracy), and each served model converted to ONNX as the
export converts it, checked against Keras on the test split (parity) and timed at
batch 1 against the model without views, in alternation.

`--docs` writes the table into docs/benchmarks.md between its `tta` markers.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import datasets
from bench.bench_unfamiliar import build_project
from bench.cli import bench_arguments
from support.markers import markdown_table, replace_between, stamp

CASES = {
    "fashion": datasets.write_fashion,
    "photos": datasets.write_photos,
    "drawings": datasets.write_drawings,
}
ROUNDS, CALLS = 10, 50
DOCS = Path("docs/benchmarks.md")


def _accuracy(model, split) -> float:
    from imgclf.models.inference import predict_in_batches

    probabilities = predict_in_batches(model, split.images, 32)
    return float((probabilities.argmax(axis=1) == split.labels).mean())


def measure(project: Path) -> dict:
    import keras

    from imgclf.bundle import Bundle
    from imgclf.data.prepared import read_split
    from imgclf.deploy import parity
    from imgclf.evaluation.test_time import choose_views
    from imgclf.models.familiarity import fit_to_training
    from imgclf.models.saving import export_saved_model
    from imgclf.models.served import served_model
    from imgclf.models.tta import KINDS, averaged
    from imgclf.serving.runtimes import OnnxRuntime

    family = json.loads((project / "metrics" / "compare.json").read_text())["selected"]
    model = keras.models.load_model(project / "models" / family / "model.keras")
    val, test = (read_split(name, project / "prepared") for name in ("val", "test"))
    train = read_split("train", project / "prepared")
    familiarity = fit_to_training(model, train.images, train.labels, model.output_shape[-1])
    kinds = {}
    runtimes = {}
    with tempfile.TemporaryDirectory() as scratch:
        for kind in KINDS:
            viewed = averaged(model, kind)
            bundle = Bundle(Path(scratch) / kind)
            served = served_model(model, None, familiarity, kind)  # as the export serves
            export_saved_model(served, bundle.saved_model)
            (report, *_explain), _ = parity.write_formats(
                bundle, served, ["onnx"], (test.images[:1], test.images[:1]),
                (test.images, test.labels),
            )  # fmt: skip
            kinds[kind] = {
                "val_accuracy": _accuracy(viewed, val),
                "test_accuracy": _accuracy(viewed, test),
                "onnx_parity": report.passed,
                "onnx_agreement": report.agreement,
            }
            runtimes[kind] = OnnxRuntime(bundle.file("onnx"))
        times = {kind: [] for kind in KINDS}
        image = test.images[:1].astype(np.float32)
        for runtime in runtimes.values():
            runtime.probabilities(image)
        for _ in range(ROUNDS):
            for kind, runtime in runtimes.items():
                for _ in range(CALLS):
                    started = time.perf_counter()
                    runtime.probabilities(image)
                    times[kind].append(time.perf_counter() - started)
    base = float(np.median(times["none"]))
    for kind in KINDS:
        kinds[kind]["latency_factor"] = float(np.median(times[kind])) / base
        kinds[kind]["batch1_ms"] = 1e3 * float(np.median(times[kind]))
    auto = choose_views(model, val, "auto")
    return {
        "family": family, "val_images": len(val.labels), "test_images": len(test.labels),
        "kinds": kinds, "auto": auto.kind,
        "auto_lowers_validation": auto.val_accuracy[auto.kind] < auto.val_accuracy["none"],
    }  # fmt: skip


def write_docs(results: dict) -> None:
    header = ["case", "views", "validation accuracy", "test accuracy", "test change",
              "batch-1 latency (onnx)", "ONNX = Keras", "auto keeps"]  # fmt: skip
    rows = []
    for case, result in results.items():
        none = result["kinds"]["none"]
        for kind, row in result["kinds"].items():
            rows.append([
                f"{case} ({result['family']}, {result['test_images']} test)", kind,
                f"{row['val_accuracy']:.4f}", f"{row['test_accuracy']:.4f}",
                f"{100 * (row['test_accuracy'] - none['test_accuracy']):+.2f} pt",
                f"{row['latency_factor']:.2f}x ({row['batch1_ms']:.2f} ms)",
                f"{row['onnx_agreement']:.1%}" + ("" if row["onnx_parity"] else " (refused)"),
                "yes" if result["auto"] == kind else "",
            ])  # fmt: skip
    text = (
        f"{stamp('python -m bench.bench_tta --keep /tmp/unfamiliar --docs')}. "
        "Latency: the served ONNX file with the views "
        "inside, batch 1, against the same model without views, timed in alternation; "
        "ONNX = Keras: the share of test images with the same top class (the export's "
        "parity bound, probabilities within 1e-4, holds for every row not marked "
        "refused).\n\n" + markdown_table(header, rows)
    )
    replace_between(DOCS, "tta", text)


def main() -> None:
    args, root = bench_arguments(__doc__, "bench-tta", list(CASES))
    results = {}
    for case in args.cases:
        project = build_project(root, case, CASES[case])
        results[case] = measure(project)
        print(json.dumps({"case": case, **results[case]}, indent=1), flush=True)
    if args.docs:
        write_docs(results)


if __name__ == "__main__":
    main()
