"""Benchmark `train.epochs: auto` against a sweep of fixed epoch counts.

    python -m bench.bench_epochs --keep /tmp/unfamiliar [--docs]

For the fashion case (the custom CNN, 6,000 training images) and the photos case
(EfficientNet-Lite0's head on cached features, 1,260 crops) of bench/datasets.py, it
trains the family the case selects with `train.epochs` 10, 20 and 30 and with `auto`
(until validation accuracy stops improving, within `train.max_epochs`), each in the
case's project (built as bench_unfamiliar builds it, and kept with `--keep`), by the
stage script itself with only `train.epochs` changed. It prints each run's validation
accuracy, epochs trained, training seconds (timings/train_<family>.json) and why it
stopped. *Target*: auto within 0.3 point of the best fixed count's validation
accuracy, in no more training time than that count took. `--docs` writes the table
into docs/benchmarks.md between its `epochs` markers.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_scale import machine
from bench.bench_unfamiliar import build_project
from support.markers import markdown_table, replace_between
from support.project import copy_tracked_files, project_env, set_params

CASES = {"fashion": "cnn", "photos": "efficientnet"}
FIXED = (10, 20, 30)
DOCS = Path("docs/benchmarks.md")


def train(project: Path, family: str, epochs: int | str) -> dict:
    """The stage `train_<family>` run with train.epochs = `epochs`: its figures."""
    set_params(project, {"train": {"epochs": epochs}})
    done = subprocess.run(
        [sys.executable, "stages/train.py", family], cwd=project, env=project_env(project),
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"train_{family} failed:\n{done.stderr[-3000:]}")
    metrics = json.loads((project / "metrics" / f"{family}.json").read_text())
    timings = json.loads((project / "timings" / f"train_{family}.json").read_text())
    seconds = timings["train_seconds"] - timings.get("feature_cache_seconds", 0.0)
    return {
        "epochs": epochs,
        "val_accuracy": metrics["val_accuracy"],
        "epochs_trained": metrics["epochs_trained"],
        "seconds": seconds,
        "stopped": metrics.get("stopped", ""),
    }


def run_case(root: Path, case: str) -> dict:
    project = build_project(root, case)
    copy_tracked_files(project)  # this checkout's code, whatever the project was built with
    family = CASES[case]
    runs = []
    for epochs in (*FIXED, "auto"):
        started = time.perf_counter()
        runs.append(train(project, family, epochs))
        wall = time.perf_counter() - started
        print(f"  {case} {family} epochs={epochs}: {runs[-1]} ({wall:.0f} s with start-up)",
              flush=True)  # fmt: skip
    set_params(project, {"train": {"epochs": "auto"}})
    fixed = [run for run in runs if run["epochs"] != "auto"]
    best = max(fixed, key=lambda run: run["val_accuracy"])
    auto = runs[-1]
    return {
        "family": family, "runs": runs, "best_fixed": best["epochs"],
        "gap_points": 100 * (best["val_accuracy"] - auto["val_accuracy"]),
        "time_ratio": auto["seconds"] / best["seconds"],
    }  # fmt: skip


def write_docs(results: dict) -> None:
    rows = []
    for case, result in results.items():
        for run in result["runs"]:
            rows.append([
                f"{case} ({result['family']})", str(run["epochs"]), f"{run['val_accuracy']:.4f}",
                str(run["epochs_trained"]), f"{run['seconds']:.0f}", run["stopped"],
            ])  # fmt: skip
    table = markdown_table(
        ["case", "train.epochs", "val accuracy", "epochs trained", "training s", "stopped"], rows
    )
    summary = " ".join(
        f"{case}: auto is {r['gap_points']:+.2f} points below the best fixed count "
        f"({r['best_fixed']} epochs) in {r['time_ratio']:.2f}x its training time."
        for case, r in results.items()
    )
    stamp = f"Measured {time.strftime('%Y-%m-%d')} on {machine()} (`python -m bench.bench_epochs`)."
    replace_between(DOCS, "epochs", f"{table}\n\n{summary}\n\n{stamp}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build (or reuse) the projects here")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--docs", action="store_true", help=f"write the table into {DOCS}")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch)
        for case in args.cases:
            results[case] = result = run_case(root, case)
            print(f"{case}: best fixed {result['best_fixed']} epochs; auto "
                  f"{result['gap_points']:+.2f} points below it, "
                  f"{result['time_ratio']:.2f}x its training time", flush=True)  # fmt: skip
    Path("bench/out").mkdir(parents=True, exist_ok=True)
    Path("bench/out/epochs.json").write_text(json.dumps(results, indent=2) + "\n")
    if args.docs:
        write_docs(results)


if __name__ == "__main__":
    main()
