"""Benchmark the int8 files: agreement with the float model, accuracy lost, size, latency.

    make bench-data && python -m bench.bench_int8 [--keep /tmp/unfamiliar] [--docs]

For the fashion case (custom CNN) and the photos case (EfficientNet-Lite0 and ResNet50)
of bench/datasets.py, built and run through the whole pipeline as bench_unfamiliar
builds them (`--keep DIR` shares its projects), each trained family is exported here the
way the export stage exports it (served model with its unfamiliarity score, every format
written and checked on the case's untouched test split by deploy/parity.py). Per family
and int8 file: the share of test images whose top class is the float model's, the test
accuracy lost, the file's size against its float file's, and the median batch-1 latency
against the float file's in the same runtime, the two timed in alternation. The
baseline, in the same run: onnxruntime's quantizer with its defaults on the same file
(every convolution and the head in int8, signed activations), and the LiteRT int8 file.

`--docs` writes the table into docs/benchmarks.md between its `int8` markers.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from bench.bench_unfamiliar import build_project
from bench.cli import bench_arguments
from support.markers import markdown_table, replace_between, stamp

FAMILIES = {"fashion": ("cnn",), "photos": ("efficientnet", "resnet")}
ROUNDS, CALLS = 10, 100
DOCS = Path("docs/benchmarks.md")


def _export(project: Path, family: str, folder: Path) -> dict:
    """`family`'s model of `project`, exported into `folder` with every format; its figures."""
    import keras

    from imgclf.bundle import CONVERTED, Bundle
    from imgclf.data.prepared import read_split
    from imgclf.deploy import parity
    from imgclf.models.familiarity import fit_to_training
    from imgclf.models.saving import export_saved_model, save_model
    from imgclf.models.served import served_model

    trained = keras.models.load_model(project / "models" / family / "model.keras")
    split = {name: read_split(name, project / "prepared") for name in ("train", "val", "test")}
    train = split["train"]
    familiarity = fit_to_training(trained, train.images, train.labels, trained.output_shape[-1])
    model = served_model(trained, None, familiarity)
    bundle = Bundle(folder)
    save_model(model, bundle.file("keras"))
    export_saved_model(model, bundle.saved_model)
    # As the export stage chooses them (stages/export.py quantization_images).
    order = np.random.default_rng(0).permutation(len(train.labels))
    calibration = train.images[np.sort(order[:200])]
    val = np.asarray(split["val"].images[:1000])
    check = np.concatenate([val, train.images[np.sort(order[200 : 200 + 1000 - len(val)])]])
    test = (split["test"].images, split["test"].labels)
    reports, _ = parity.write_formats(bundle, model, list(CONVERTED), (calibration, check), test)
    return {"reports": {r.format: r.metrics() for r in reports}, "test_images": len(test[1])}


def _plain_int8(float_onnx: Path, path: Path, calibration: np.ndarray) -> None:
    """The baseline: onnxruntime's static quantizer with its defaults (QDQ, every node)."""
    from onnxruntime.quantization import CalibrationDataReader, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Images(CalibrationDataReader):
        def __init__(self) -> None:
            self._images = iter(calibration[i : i + 32] for i in range(0, len(calibration), 32))

        def get_next(self):
            batch = next(self._images, None)
            return None if batch is None else {"pixels": batch.astype(np.float32)}

    with tempfile.TemporaryDirectory() as folder:
        prepared = Path(folder) / "prepared.onnx"
        quant_pre_process(str(float_onnx), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(path), Images(), per_channel=True)


def _probabilities(runtime, images: np.ndarray) -> np.ndarray:
    return np.concatenate([
        runtime.probabilities(images[start : start + 64].astype(np.float32))
        for start in range(0, len(images), 64)
    ])  # fmt: skip


def _alternating_latency(runtimes: dict, image: np.ndarray) -> dict[str, float]:
    """Median batch-1 seconds of each runtime, timed in turns so load hits all alike."""
    import time

    times = {name: [] for name in runtimes}
    for runtime in runtimes.values():
        runtime.probabilities(image)
    for _ in range(ROUNDS):
        for name, runtime in runtimes.items():
            for _ in range(CALLS):
                started = time.perf_counter()
                runtime.probabilities(image)
                times[name].append(time.perf_counter() - started)
    return {name: float(np.median(values)) for name, values in times.items()}


def measure(project: Path, family: str) -> dict:
    from imgclf.bundle import Bundle
    from imgclf.data.prepared import read_split
    from imgclf.serving.runtimes import open_file

    with tempfile.TemporaryDirectory() as scratch:
        bundle = Bundle(Path(scratch) / "best")
        exported = _export(project, family, bundle.root)
        train = read_split("train", project / "prepared")
        test = read_split("test", project / "prepared")
        order = np.random.default_rng(0).permutation(len(train.labels))
        float_onnx = bundle.file("onnx")
        if not float_onnx.is_file():  # refused (the reports say why): converted again to compare
            from imgclf.deploy.formats import write_onnx

            float_onnx = Path(scratch) / "float.onnx"
            write_onnx(bundle.saved_model, float_onnx)
        plain = Path(scratch) / "plain_int8.onnx"
        _plain_int8(float_onnx, plain, train.images[np.sort(order[:200])])
        files = {
            "onnx": ("onnx", float_onnx), "onnx_int8": ("onnx", bundle.file("onnx_int8")),
            "onnx_int8_defaults": ("onnx", plain),
            "tflite": ("tflite", bundle.file("tflite")),
            "tflite_int8": ("tflite", bundle.file("tflite_int8")),
        }  # fmt: skip
        # A refused file is removed by the export; the bench writes it again to time it.
        present = {name: spec for name, spec in files.items() if spec[1].is_file()}
        runtimes = {name: open_file(kind, path) for name, (kind, path) in present.items()}
        probabilities = {name: _probabilities(rt, test.images) for name, rt in runtimes.items()}
        latency = _alternating_latency(runtimes, test.images[:1].astype(np.float32))
        sizes = {name: path.stat().st_size for name, (_, path) in present.items()}
    reference = probabilities["onnx"].argmax(1)
    reports = exported["reports"]
    rows = {
        name: {  # refused by the export: its own figures, against the Keras model
            "agreement": report["agreement"], "passed": False,
            "accuracy_loss": float((reference == test.labels).mean()) - report["test_accuracy"],
            "reason": report["reason"],
            **{k: v for k, v in report.items() if k in ("float_convolutions", "check_agreement")},
        }
        for name, report in reports.items()
        if name not in present and name != "explain_onnx"
    }  # fmt: skip
    for name in present:
        float_name = "tflite" if name.startswith("tflite") else "onnx"
        top = probabilities[name].argmax(1)
        rows[name] = {
            "agreement": float((top == reference).mean()),
            "accuracy_loss": float((reference == test.labels).mean() - (top == test.labels).mean()),
            "size_ratio": sizes[name] / sizes[float_name],
            "latency_ratio": latency[name] / latency[float_name],
            "batch1_ms": 1e3 * latency[name],
            **{k: v for k, v in exported["reports"].get(name, {}).items()
               if k in ("passed", "float_convolutions", "check_agreement")},
        }  # fmt: skip
    return {"test_images": exported["test_images"], "files": rows}


def write_docs(results: dict) -> None:
    header = ["case", "family", "file", "same top class", "accuracy lost", "size",
              "batch-1 latency", "shipped"]  # fmt: skip
    rows = []
    for (case, family), result in results.items():
        for name, row in result["files"].items():
            if name in ("onnx", "tflite") and row.get("passed", True):
                continue
            label = {"onnx_int8_defaults": "onnx int8, quantizer defaults (baseline)"}.get(
                name, name.replace("_", " ")
            )
            if name == "onnx_int8":
                label += f" ({row.get('float_convolutions')} convolutions float)"
            converted = row["agreement"] > 0  # a file that failed to convert has no figures
            rows.append([
                case, f"{family} ({result['test_images']} test)", label,
                f"{row['agreement']:.1%}" if converted else "not converted",
                f"{round(100 * row['accuracy_loss'], 1) + 0.0:+.1f} pt" if converted else "—",
                f"{row['size_ratio']:.1%}" if "size_ratio" in row else "—",
            f"{row['latency_ratio']:.2f}x" if "latency_ratio" in row else "—",
                {True: "yes", False: "refused"}.get(row.get("passed"), "—"),
            ])  # fmt: skip
    text = (
        f"{stamp('python -m bench.bench_int8 --keep /tmp/unfamiliar --docs')}. "
        "Size and latency against the float file of "
        "the same runtime (onnxruntime or LiteRT), batch 1, timed in alternation; the bounds "
        "the export holds an int8 file to: the same top class on ≥ 98% of test images, at "
        "most 1 point of test accuracy lost.\n\n" + markdown_table(header, rows)
    )
    replace_between(DOCS, "int8", text)


def main() -> None:
    args, root = bench_arguments(__doc__, "bench-int8")
    results = {}
    for case, families in FAMILIES.items():
        project = build_project(root, case)
        for family in families:
            result = measure(project, family)
            results[(case, family)] = result
            print(json.dumps({"case": case, "family": family, **result}, indent=1), flush=True)
    if args.docs:
        write_docs(results)


if __name__ == "__main__":
    main()
