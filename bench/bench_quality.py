"""Model quality and time-to-accuracy of the default recipe against a tutorial reference.

    python -m bench.bench_quality                 # all cases (about 15 minutes on 2 cores)
    python -m bench.bench_quality --cases photos  # one case
    python -m bench.bench_quality --set train.epochs=15 --set cnn.learning_rate=0.002

Needs Debian's `dataset-fashion-mnist` and `mate-backgrounds` packages (`make
bench-data` installs them). For each case (see bench/datasets.py) it writes the
data into a temporary git copy of this checkout's tracked files, runs the whole
default pipeline there (`dvc repro`: prepare, every candidate, compare, export),
timed with the peak memory of the process tree, and trains the reference network
of bench/reference.py on exactly the same train/val/test files twice: after
`prepare` and after the rest of the pipeline. The time ratio is taken against the
mean of the two, and a case whose two reference times differ by more than DRIFT
is flagged: the machine's speed moved during it. It prints, per
case: the selected model's and the reference's test accuracy and macro F1, every
candidate's validation and test accuracy (the benchmark scores the candidates
compare did not select on test too, which the pipeline never does), the rare
class's recall where there is one, each stage's time, the project's `dvc repro`
wall time, the reference's training time and their ratio, and how much of the CPU
other processes took during each (bench/measure.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from ruamel.yaml import YAML

from bench import datasets
from bench.measure import Measured, run_measured, stage_script
from imgclf import models
from imgclf import params as params_file
from imgclf.data.ingest import longer_sides
from imgclf.models.input_size import input_size
from support.project import (
    commit_copy,
    copy_tracked_files,
    model_metrics,
    project_env,
    read_timings,
    set_params,
)

CASES: dict[str, Callable[[Path], object]] = {
    "fashion": datasets.write_fashion,
    "photos": datasets.write_photos,
    "fewshot": datasets.write_few_photos,
    "drawings": datasets.write_drawings,
    "unbalanced": lambda data: datasets.write_fashion(data, rare_class=datasets.RARE_CLASS),
}
# The reference's runs before and after the pipeline further apart than this: the
# machine's speed moved, and a ratio against it is not a measurement.
DRIFT = 1.25
RARE = {"unbalanced": datasets.RARE_CLASS}
# Images from another domain, given to a case's model: how many does it call "not sure"?
FOREIGN = {"fashion": ("RGB nature photos", lambda folder: datasets.write_photos(folder, 50, 1))}


def uncertain_share(project: Path, env: dict[str, str], folder: Path) -> float:
    """The share of the images in `folder` that the project's exported model is not sure of."""
    files = sorted(str(path) for path in folder.rglob("*.*"))
    command = [sys.executable, "-m", "imgclf", "predict", *files]
    result = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    answered = [answer["uncertain"] for answer in answers if "error" not in answer]
    if not answered:
        raise SystemExit(f"imgclf predict answered nothing: {result.stderr[-2000:]}")
    return statistics.mean(answered)


def parse_sets(pairs: list[str]) -> dict[str, dict]:
    """--set group.key=value (value parsed as YAML) into params changes."""
    changes: dict[str, dict] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        group, _, name = key.partition(".")
        if not (group and name and value):
            raise SystemExit(f"--set {pair!r}: expected group.key=value, e.g. train.epochs=15")
        changes.setdefault(group, {})[name] = YAML(typ="safe", pure=True).load(value)
    return changes


def candidate_test_accuracy(project: Path, env: dict[str, str]) -> dict[str, float]:
    """Every trained candidate's accuracy on the prepared test split (a separate process)."""
    out = project / "candidates.json"
    command = [sys.executable, "-m", "bench.candidates", str(project), str(out)]
    subprocess.run(command, cwd=Path.cwd(), env=env, check=True, capture_output=True)
    return json.loads(out.read_text())


def cnn_input_size(project: Path) -> int:
    """The side the project's CNN will work at, from its params and the prepared size."""
    prepared_size = model_metrics(project, "prepare")["image_size"]
    cnn = params_file.load(project / "params.yaml").cnn
    return input_size(models.get("cnn"), cnn.image_size, prepared_size)


def train_reference(
    name: str, project: Path, size: int, env: dict[str, str], when: str
) -> tuple[dict, Measured]:
    """The reference network trained (in its own process) on the project's prepared splits.

    It inherits this process's environment, with the TensorFlow settings importing imgclf
    set (oneDNN kernels on): both sides run on the same kernels.
    """
    out = project / f"reference-{when}.json"
    print(f"== {name}: reference network at {size} px ({when} the pipeline)", flush=True)
    command = [sys.executable, "-m", "bench.reference", str(project), str(size), str(out)]
    measured = run_measured(command, Path.cwd(), env)
    return json.loads(out.read_text()), measured


def run_case(name: str, root: Path, changes: dict[str, dict]) -> dict:
    project = root / name
    project.mkdir()
    copy_tracked_files(project)
    CASES[name](project / "data")
    set_params(project, changes)
    env = project_env(project)
    commit_copy(project, env)

    # The reference trains twice, right before and right after the rest of the
    # pipeline, so the ratio is taken against the machine's speed on both sides of it:
    # a shared machine's speed drifts by up to 2x over minutes, unseen by others_share.
    print(f"\n== {name}: dvc repro prepare in {project}", flush=True)
    prepare_run = run_measured(["dvc", "repro", "prepare"], project, env, stage_script)
    native = statistics.median(longer_sides(sorted((project / "data").rglob("*.*"))))
    # The reference sees the images at their own size (28 px for Fashion-MNIST), or at
    # the size the project's CNN works at when that is smaller (large photos at 64).
    size = int(min(native, cnn_input_size(project)))
    before = train_reference(name, project, size, env, "before")
    print(f"== {name}: dvc repro (the rest of the pipeline)", flush=True)
    repro = prepare_run.then(run_measured(["dvc", "repro"], project, env, stage_script))
    after = train_reference(name, project, size, env, "after")
    exported, prepared = model_metrics(project, "export"), model_metrics(project, "prepare")
    families = [family.name for family in models.families()]
    trained = {name: model_metrics(project, name) for name in families}
    tested = candidate_test_accuracy(project, env)
    reference = before[0]  # the same network and seed: both runs score alike

    foreign = None
    if name in FOREIGN:
        description, write = FOREIGN[name]
        write(root / f"{name}-foreign")
        foreign = (description, uncertain_share(project, env, root / f"{name}-foreign"))

    rare = RARE.get(name)
    return {
        "case": name,
        "images": prepared["used"],
        "image_size": prepared["image_size"],
        "selected": exported["selected"],
        "project_test_accuracy": exported["test_accuracy"],
        "project_test_macro_f1": exported["test_macro_f1"],
        "project_rare_recall": exported["test_per_class"][rare]["recall"] if rare else None,
        "candidates": {
            name: {
                "val_accuracy": trained[name]["val_accuracy"],
                "test_accuracy": tested[name],
                "input_size": trained[name]["input_size"],
                "epochs": trained[name]["epochs_trained"],
                "pretrained": trained[name].get("pretrained"),
            }
            for name in families
        },
        "stage_seconds": read_timings(project),
        "stage_wall_seconds": repro.labelled_seconds,
        "calibration": exported["calibration_reason"],
        "confidence_threshold": exported["confidence_threshold"],
        "test_coverage": exported["test_coverage"],
        "test_answered_accuracy": exported["test_answered_accuracy"],
        "foreign": foreign[0] if foreign else None,
        "foreign_not_sure": foreign[1] if foreign else None,
        "repro_seconds": repro.seconds,
        "repro_peak_mib": repro.peak_tree_bytes / 2**20,
        "repro_others_share": repro.others_share,
        "reference_image_size": size,
        "reference_test_accuracy": reference["test_accuracy"],
        "reference_test_macro_f1": reference["test_macro_f1"],
        "reference_rare_recall": reference["test_recall"][rare] if rare else None,
        "reference_epochs": reference["epochs"],
        "reference_train_seconds_before_after": [
            before[0]["train_seconds"],
            after[0]["train_seconds"],
        ],
        "reference_same_result": before[0]["test_accuracy"] == after[0]["test_accuracy"],
        "reference_peak_mib": max(before[1].peak_tree_bytes, after[1].peak_tree_bytes) / 2**20,
        "reference_others_share": max(before[1].others_share, after[1].others_share),
    }


def report(r: dict) -> str:
    before, after = r["reference_train_seconds_before_after"]
    reference_seconds = (before + after) / 2
    ratio = r["repro_seconds"] / reference_seconds
    lines = [
        f"{r['case']}: {r['images']} images at {r['image_size']} px, selected {r['selected']}",
        f"  test accuracy   project {r['project_test_accuracy']:.4f}   reference "
        f"{r['reference_test_accuracy']:.4f}   "
        f"({100 * (r['project_test_accuracy'] - r['reference_test_accuracy']):+.1f} points)",
        f"  test macro F1   project {r['project_test_macro_f1']:.4f}   reference "
        f"{r['reference_test_macro_f1']:.4f}",
    ]
    if r["project_rare_recall"] is not None:
        lines.append(
            f"  rare class ({RARE[r['case']]}) recall  project {r['project_rare_recall']:.4f}"
            f"   reference {r['reference_rare_recall']:.4f}"
        )
    for name, c in r["candidates"].items():
        pretrained = "" if c["pretrained"] is None else f", pretrained {c['pretrained']}"
        lines.append(
            f"  {name:<14}  val {c['val_accuracy']:.4f}   test {c['test_accuracy']:.4f}   "
            f"({c['input_size']} px, {c['epochs']} epochs{pretrained})"
            + ("   <- selected" if name == r["selected"] else "")
        )
    stages = ", ".join(f"{stage} {seconds:.0f} s" for stage, seconds in r["stage_seconds"].items())
    walls = r["stage_wall_seconds"]
    lines += [
        f"  time            project dvc repro {r['repro_seconds']:.0f} s ({stages})   "
        f"reference training {reference_seconds:.0f} s, the mean of "
        f"{before:.0f} s before and {after:.0f} s after the pipeline "
        f"({r['reference_epochs']} epochs, {r['reference_image_size']} px)   ratio {ratio:.2f}x "
        f"(against each: {r['repro_seconds'] / before:.2f}x, {r['repro_seconds'] / after:.2f}x)",
        "  stage processes "
        + ", ".join(f"{stage} {seconds:.0f} s" for stage, seconds in walls.items())
        + f"   (each from its start to its end, imports included; DVC and the hand-overs "
        f"{r['repro_seconds'] - sum(walls.values()):.0f} s)",
        f"  peak memory     project {r['repro_peak_mib']:.0f} MiB   reference "
        f"{r['reference_peak_mib']:.0f} MiB",
        f"  other load      {100 * r['repro_others_share']:.0f}% of the CPU went to other "
        f"processes or the hypervisor during dvc repro, "
        f"{100 * r['reference_others_share']:.0f}% during the reference (above a few %, the "
        "ratio is unreliable)",
    ]
    if max(before, after) > DRIFT * min(before, after):
        lines.append(
            f"                  the reference's two runs differ by more than {DRIFT:.2f}x: the "
            "machine's speed changed during the case, so its ratio is not a measurement"
        )
    if not r["reference_same_result"]:
        lines.append("                  the reference's two runs disagree on test accuracy")
    lines += [
        f"  calibration     {r['calibration']}",
        f"  not sure        below confidence {r['confidence_threshold']:.3f}: "
        f"{100 * (1 - r['test_coverage']):.1f}% of test images (answered accuracy "
        f"{r['test_answered_accuracy']:.4f})",
    ]
    if r["foreign"]:
        lines.append(
            f"                  {100 * r['foreign_not_sure']:.1f}% of {r['foreign']} "
            "(another domain) given to this model"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--set", action="append", default=[], metavar="GROUP.KEY=VALUE")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    changes = parse_sets(args.set)
    cores = len(os.sched_getaffinity(0))
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as scratch:
        for name in args.cases:
            results.append(run_case(name, Path(scratch), changes))
    print(f"\nbench_quality: default params{' with ' + ' '.join(args.set) if args.set else ''}, "
          f"{cores} cores")  # fmt: skip
    for result in results:
        print(report(result))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    try:
        main()
    except subprocess.CalledProcessError as exc:
        sys.exit(f"bench_quality: {exc}")
