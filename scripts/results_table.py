"""Regenerate the README's "Results of the default run" table from `dvc metrics show`.

    dvc repro && python scripts/results_table.py    # or: make results

Replaces the lines between the `<!-- results:start -->` and `<!-- results:end -->`
markers in README.md with a table built from `dvc metrics show --json`, one row per
registered model family; the train times come from timings/ (the last run's).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imgclf import models, paths
from support.markers import replace_between

README = Path("README.md")


def metrics() -> dict[str, dict]:
    shown = subprocess.run(
        ["dvc", "metrics", "show", "--json"], capture_output=True, text=True, check=True
    ).stdout
    files = json.loads(shown)[""]["data"]
    return {Path(name).stem: entry["data"] for name, entry in files.items()}


def train_seconds(stage: str) -> str:
    """The stage's last training time, from timings/<stage>.json."""
    timings = paths.timings_file(stage)
    if not timings.is_file():
        return "not timed"
    return f"{json.loads(timings.read_text())['train_seconds']:.0f} s"


def counted(n: int, thing: str) -> str:
    return f"{n} {thing}" + ("" if n == 1 else "s")


def table(m: dict[str, dict]) -> str:
    export, selected = m["export"], m["compare"]["selected"]
    rows = [
        "| model | works at | val accuracy | **test accuracy** | test macro F1 | epochs "
        "| train time |",
        "|---|---|---|---|---|---|---|",
    ]
    for family in models.families():
        model, trained = family.name, m[family.name]
        name = family.title
        if trained.get("pretrained") is False:
            name += ", random base (`pretrained: false`)"
        if model == selected:
            name += " (selected)"
            test = f"**{export['test_accuracy']:.3f}** | {export['test_macro_f1']:.3f}"
        else:
            test = "not measured | "
        size = trained.get("input_size", m["prepare"]["image_size"])
        rows.append(
            f"| {name} | {size} px | {trained['val_accuracy']:.3f} | {test} "
            f"| {trained['epochs_trained']} | {train_seconds(family.stage)} |"
        )
    rows += [
        "",
        f"Calibration: {export['calibration_reason']}. Test ECE "
        f"{export['calibration_test_ece_before']:.3f} uncalibrated, "
        f"{export['calibration_test_ece_after']:.3f} with the temperature.",
        "",
        f"Not sure below confidence {export['confidence_threshold']:.3f} (chosen on validation "
        f"for `export.target_accuracy`): the model answers "
        f"{100 * export['test_coverage']:.0f}% of the test images, with accuracy "
        f"{export['test_answered_accuracy']:.3f}.",
    ]
    if "audit" in m:
        audit = m["audit"]
        issues = counted(audit["label_issues"]["total"], "likely label error")
        pairs = counted(audit["near_duplicates"]["total"], "near-duplicate pair")
        rows += [
            "",
            f"Data audit (`audit/`): {issues} in train and val, {pairs}"
            f" ({audit['near_duplicates']['across_splits']} across splits), "
            f"{counted(audit['outliers']['total'], 'outlier')}, in "
            f"{sum(audit['images'].values()):,} images; {audit['excluded']['total']} left out of "
            "training.",
        ]
    return "\n".join(rows)


def main() -> None:
    replace_between(README, "results", table(metrics()))
    print(f"updated the results table in {README}")


if __name__ == "__main__":
    main()
