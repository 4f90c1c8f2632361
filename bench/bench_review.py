"""Reviewing the audit's label findings: what accepting them is worth, and what it costs.

The case: the Fashion-MNIST case of bench_quality (6,000 train, 1,000 val and 10,000
test images, split folders; none of the reserved images), with 5% of the training
images moved to another class folder. In a temporary git copy of this checkout:

1. `dvc repro train_efficientnet` (prepare, audit, the pretrained EfficientNet-Lite
   head): the model's accuracy on the untouched test split, before any review;
2. for each way of reviewing, labels/decisions.csv is written as the review page
   writes it and `dvc repro train_efficientnet` runs again:
   - accept every suggestion whose probability is at least a threshold (0.5, 0.9);
   - a careful reviewer: goes through the whole list of likely label errors and
     accepts a suggestion only when it is right (the planted image's true class),
     keeping every other label; what it costs is the findings looked at per
     planted error fixed. And one with less time, who reads only the first 2x
     planted-count findings (the list is likeliest first).
   - oracle: every planted error put right (the most any review could gain).

    python -m bench.bench_review [--keep DIR] [--docs]

`--docs` writes the table into docs/benchmarks.md between its `review` markers.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np

from bench import datasets
from bench.bench_audit import plant, read_csv
from bench.cli import bench_arguments
from bench.measure import run_measured
from imgclf import paths
from imgclf.data.decisions import Decision, write_decisions
from support.markers import markdown_table, replace_between, stamp
from support.project import commit_copy, copy_tracked_files, project_env

THRESHOLDS = (0.5, 0.9)
DOCS = Path("docs/benchmarks.md")


def test_accuracy(project: Path) -> float:
    """The trained EfficientNet-Lite's accuracy on the project's prepared test split."""
    import keras

    from imgclf.data.prepared import read_split

    model = keras.models.load_model(project / paths.trained_model("efficientnet"))
    test = read_split("test", project / "prepared")
    probabilities = model.predict(test.images.astype("float32"), batch_size=256, verbose=0)
    return float(np.mean(probabilities.argmax(axis=1) == test.labels))


def repro(project: Path, env: dict) -> float:
    run_measured(["dvc", "repro", "train_efficientnet"], project, env)
    return test_accuracy(project)


def review(project: Path, env: dict, decisions: dict[str, Decision]) -> float:
    write_decisions(project / "labels" / "decisions.csv", decisions)
    return repro(project, env)


def table(results: dict, train_images: int) -> str:
    """The docs' table of a run, with the commit, date and machine that produced it."""
    rows = [["none", "0", f"{results['before']:.4f}"]]
    for threshold in THRESHOLDS:
        r = results[f"accept_{threshold}"]
        rows.append([f"accept every suggestion with probability >= {threshold}",
                     f"{r['accepted']:,} ({r['right']:,})", f"{r['accuracy']:.4f}"])  # fmt: skip
    careful, hurried = results["careful"], results["hurried"]
    rows.append([f"a careful reviewer: the whole list of {careful['looked_at']:,}, accepting "
                 "only right suggestions", f"{careful['accepted']:,} ({careful['accepted']:,})",
                 f"{careful['accuracy']:.4f}"])  # fmt: skip
    rows.append([f"a hurried one: only the first {hurried['looked_at']:,} (2x the planted "
                 "count), the same way", f"{hurried['accepted']:,} ({hurried['accepted']:,})",
                 f"{hurried['accuracy']:.4f}"])  # fmt: skip
    rows.append(["every planted error put right (the most a review can gain)",
                 f"{results['planted']:,} ({results['planted']:,})",
                 f"{results['oracle']['accuracy']:.4f}"])  # fmt: skip
    note = (
        f"{stamp('python -m bench.bench_review --docs')}: {results['planted']:,} of the "
        f"{train_images:,} training images "
        f"planted in another class; the audit lists {results['findings']:,}. Careful: "
        f"{careful['per_error_fixed']:.1f} findings looked at per error fixed; hurried: "
        f"{hurried['per_error_fixed']:.1f}."
    )
    header = ["review", "relabelled (right)", "test accuracy"]
    return f"{note}\n\n{markdown_table(header, rows)}"


def main() -> int:
    args, root = bench_arguments(__doc__, "bench-review")
    project = root / "fashion"
    project.mkdir(parents=True)
    copy_tracked_files(project)
    shutil.rmtree(project / "data", ignore_errors=True)
    datasets.write_fashion(project / "data")
    train = sorted((project / "data" / "train").rglob("*.png"))
    true_class = {f"flip_{p.name}": p.parent.name for p in train}  # file names are unique
    planted = plant(project / "data", train, [], None, [], seed=1)["flipped"]
    truth = {path: true_class[path.rsplit("/", 1)[1]] for path in planted}
    env = project_env(project)
    commit_copy(project, env)

    print(f"== {len(truth)} planted label errors among {len(train)} training images", flush=True)
    results = {"planted": len(truth), "before": repro(project, env)}
    findings = read_csv(project / "audit" / "label_issues.csv")
    results["findings"] = len(findings)
    files = [row["file"] for row in findings]  # as under data/, as the planted ones
    found_right = [
        f for f, row in zip(files, findings, strict=True) if truth.get(f) == row["suggested"]
    ]

    def relabel(rows: list[tuple[str, str]]) -> dict[str, Decision]:
        return {file: Decision(file, "relabel", label, "label_issue") for file, label in rows}

    for threshold in THRESHOLDS:
        chosen = [
            (f, row["suggested"]) for f, row in zip(files, findings, strict=True)
            if float(row["suggested_probability"]) >= threshold
        ]  # fmt: skip
        right = sum(truth.get(f) == label for f, label in chosen)
        results[f"accept_{threshold}"] = {
            "accepted": len(chosen), "right": right,
            "accuracy": review(project, env, relabel(chosen)),
        }  # fmt: skip
    for name, looked_at in (("careful", len(findings)), ("hurried", 2 * len(truth))):
        seen = set(files[:looked_at])
        accepted = relabel([(f, truth[f]) for f in found_right if f in seen])
        results[name] = {
            "accepted": len(accepted), "looked_at": min(looked_at, len(findings)),
            "per_error_fixed": min(looked_at, len(findings)) / max(1, len(accepted)),
            "accuracy": review(project, env, accepted),
        }  # fmt: skip
    results["oracle"] = {"accuracy": review(project, env, relabel(list(truth.items())))}

    print(f"\nreview of {results['planted']} planted label errors in {len(train)} training "
          f"images; the audit lists {results['findings']}, the suggestion right for "
          f"{len(found_right)}")  # fmt: skip
    print(f"  test accuracy before any review: {results['before']:.4f}")
    for threshold in THRESHOLDS:
        r = results[f"accept_{threshold}"]
        print(f"  accept every suggestion >= {threshold}: {r['accepted']} accepted, "
              f"{r['right']} of them right: {r['accuracy']:.4f}")  # fmt: skip
    for name in ("careful", "hurried"):
        r = results[name]
        print(
            f"  a {name} reviewer: looks at {r['looked_at']}, accepts {r['accepted']} "
            f"({r['per_error_fixed']:.1f} findings per error fixed): {r['accuracy']:.4f}"
        )
    print(f"  every planted error put right: {results['oracle']['accuracy']:.4f}")
    print(json.dumps(results, indent=1))
    if args.docs:
        replace_between(DOCS, "review", table(results, len(train)))
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
