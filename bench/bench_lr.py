"""Benchmark `learning_rate: auto` (the range test) against a sweep of hand-set rates.

    make bench-data && python -m bench.bench_lr [--keep /tmp/unfamiliar] [--docs]

For the fashion case (the custom CNN, trained from scratch) and the photos case (the
EfficientNet-Lite0 head on its cached features) of bench/datasets.py, built as
bench_unfamiliar builds them (`--keep DIR` shares the projects; the runs happen in a
copy, with this checkout's code), the family's train stage runs once per rate of
RATES and once with `learning_rate: auto`, everything else as params.yaml sets it. The
sweep's best rate is the one with the best validation accuracy (as a sweep chooses);
the test split only reports. Printed per case: each rate's validation and test
accuracy and training time, the range test's suggestion, its ratio to the sweep's best
rate, and the test accuracy it reached against the sweep's best.

`--docs` writes the table into docs/benchmarks.md between its `lr` markers.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.bench_unfamiliar import build_project
from bench.cli import bench_arguments
from support.markers import markdown_table, replace_between, stamp
from support.project import copy_tracked_files, project_env, set_params

FAMILIES = {"fashion": "cnn", "photos": "efficientnet"}
RATES = {
    "cnn": (0.0003, 0.001, 0.003, 0.01, 0.03),
    "efficientnet": (0.0001, 0.0003, 0.001, 0.003, 0.01),
}
DOCS = Path("docs/benchmarks.md")


def train_once(project: Path, family: str, rate: float | str) -> dict:
    """The family's train stage at `rate`; its validation and test accuracy and time."""
    import keras

    from imgclf.data.prepared import read_split
    from imgclf.models.inference import predict_in_batches

    set_params(project, {family: {"learning_rate": rate}})
    subprocess.run(
        ["python", "stages/train.py", family], cwd=project, env=project_env(project),
        check=True, capture_output=True,
    )  # fmt: skip
    metrics = json.loads((project / "metrics" / f"{family}.json").read_text())
    timings = json.loads((project / "timings" / f"train_{family}.json").read_text())
    model = keras.models.load_model(project / "models" / family / "model.keras")
    test = read_split("test", project / "prepared")
    predicted = predict_in_batches(model, test.images, 64).argmax(axis=1)
    return {
        "learning_rate": metrics["learning_rate"],
        "val_accuracy": metrics["val_accuracy"],
        "test_accuracy": float((predicted == test.labels).mean()),
        "train_seconds": timings["train_seconds"],
    }


def measure(case_project: Path, family: str, scratch: Path) -> dict:
    """The sweep and auto, in a copy of the case's project (which stays as it was)."""
    project = scratch / case_project.name
    shutil.copytree(case_project, project, symlinks=True)
    copy_tracked_files(project)  # this checkout's trainer, in the case's project
    sweep = {rate: train_once(project, family, rate) for rate in RATES[family]}
    found = train_once(project, family, "auto")
    best = max(sweep, key=lambda rate: sweep[rate]["val_accuracy"])
    return {
        "family": family, "sweep": {str(rate): run for rate, run in sweep.items()},
        "auto": found, "best_rate": best,
        "ratio": found["learning_rate"] / best,
        "test_change": found["test_accuracy"] - sweep[best]["test_accuracy"],
    }  # fmt: skip


def write_docs(results: dict) -> None:
    header = ["case", "learning rate", "validation accuracy", "test accuracy", "training"]
    rows = []
    for case, result in results.items():
        label = f"{case} ({result['family']})"
        for rate, run in result["sweep"].items():
            mark = " (sweep's best)" if float(rate) == result["best_rate"] else ""
            rows.append([
                label, f"{float(rate):g}{mark}", f"{run['val_accuracy']:.4f}",
                f"{run['test_accuracy']:.4f}", f"{run['train_seconds']:.0f} s",
            ])  # fmt: skip
        run = result["auto"]
        rows.append([
            label, f"**auto: {run['learning_rate']:.3g}** ({result['ratio']:.2f}x the best)",
            f"{run['val_accuracy']:.4f}",
            f"{run['test_accuracy']:.4f} ({100 * result['test_change']:+.2f} pt)",
            f"{run['train_seconds']:.0f} s",
        ])  # fmt: skip
    text = (
        f"{stamp('python -m bench.bench_lr --keep /tmp/unfamiliar --docs')}. "
        "Every row is one run of the family's train "
        "stage; the training time of auto includes its range test.\n\n"
        + markdown_table(header, rows)
    )
    replace_between(DOCS, "lr", text)


def main() -> None:
    args, root = bench_arguments(__doc__, "bench-lr", list(FAMILIES))
    results = {}
    for case in args.cases:
        with tempfile.TemporaryDirectory() as scratch:
            results[case] = measure(build_project(root, case), FAMILIES[case], Path(scratch))
        print(json.dumps({"case": case, **results[case]}, indent=1), flush=True)
    if args.docs:
        write_docs(results)


if __name__ == "__main__":
    main()
