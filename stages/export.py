"""Stage `export`: evaluate the selected model once on the untouched test split and export it.

Reads params `export.*`, metrics/compare.json and the selected model; writes
models/best/ (model.keras and metadata.json) and metrics/export.json.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from imgclf import params as params_file
from imgclf.arrays import read_classes, read_split
from imgclf.files import write_json
from imgclf.stage import run
from imgclf.training import classification_metrics

PREPARED = Path("prepared")
EXPORT_DIR = Path("models/best")
METRICS_FILE = Path("metrics/export.json")


def main() -> None:
    import keras

    params = params_file.load()
    selected = json.loads(Path("metrics/compare.json").read_text(encoding="utf-8"))["selected"]
    model_file = Path(f"models/{selected}/model.keras")
    model = keras.models.load_model(model_file)
    classes = read_classes(PREPARED)
    test = read_split(PREPARED, "test", mmap=False)
    probabilities = model.predict(test.images.astype("float32"), batch_size=64, verbose=0)
    test_metrics = classification_metrics(
        probabilities, test.labels, classes["class_names"], "test"
    )
    val_metrics = json.loads(Path(f"metrics/{selected}.json").read_text(encoding="utf-8"))

    # Build the export next to its destination, then swap it in with renames.
    staging = EXPORT_DIR.with_name(".best.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shutil.copy2(model_file, staging / "model.keras")
    write_json(staging / "metadata.json", {
        "class_names": classes["class_names"],
        "image_size": classes["image_size"],
        "selected_model": selected,
        "pretrained": val_metrics.get("pretrained", False) if selected == "resnet" else None,
        "val_accuracy": val_metrics["val_accuracy"],
        "test_accuracy": test_metrics["test_accuracy"],
        "top_k": params.export.top_k,
    })  # fmt: skip
    retired = EXPORT_DIR.with_name(".best.retired")
    shutil.rmtree(retired, ignore_errors=True)
    if EXPORT_DIR.exists():
        os.replace(EXPORT_DIR, retired)
    os.replace(staging, EXPORT_DIR)
    shutil.rmtree(retired, ignore_errors=True)

    write_json(METRICS_FILE, {"selected": selected, **test_metrics})
    print(
        f"export: {selected} test_accuracy {test_metrics['test_accuracy']:.4f}; wrote {EXPORT_DIR}/"
    )


if __name__ == "__main__":
    run(main, "export")
