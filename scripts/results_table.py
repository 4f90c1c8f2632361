"""Regenerate the README's "Results of the default run" table from `dvc metrics show`.

    dvc repro && python scripts/results_table.py    # or: make results

Replaces the lines between the `<!-- results:start -->` and `<!-- results:end -->`
markers in README.md with a table built from `dvc metrics show --json`.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

README = Path("README.md")
START, END = "<!-- results:start -->", "<!-- results:end -->"


def metrics() -> dict[str, dict]:
    shown = subprocess.run(
        ["dvc", "metrics", "show", "--json"], capture_output=True, text=True, check=True
    ).stdout
    files = json.loads(shown)[""]["data"]
    return {Path(name).stem: entry["data"] for name, entry in files.items()}


def table(m: dict[str, dict]) -> str:
    export, selected = m["export"], m["compare"]["selected"]
    names = {"cnn": "CNN", "resnet": "ResNet50"}
    rows = [
        "| model | image size | val accuracy | **test accuracy** | test macro F1 | epochs "
        "| train time |",
        "|---|---|---|---|---|---|---|",
    ]
    for model in ("cnn", "resnet"):
        trained = m[model]
        name = names[model]
        if model == "resnet" and not trained.get("pretrained"):
            name += ", random base (`pretrained: false`)"
        if model == selected:
            name += " (selected)"
            test = f"**{export['test_accuracy']:.3f}** | {export['test_macro_f1']:.3f}"
        else:
            test = "not measured | "
        rows.append(
            f"| {name} | {m['prepare']['image_size']} px | {trained['val_accuracy']:.3f} | {test} "
            f"| {trained['epochs_trained']} | {trained['train_seconds']:.0f} s |"
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
    return "\n".join(rows)


def main() -> None:
    text = README.read_text(encoding="utf-8")
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    README.write_text(f"{before}{START}\n{table(metrics())}\n{END}{after}", encoding="utf-8")
    print(f"updated the results table in {README}")


if __name__ == "__main__":
    main()
