"""Stage `export`: calibrate the selected model, evaluate it once on the test split, export it.

Reads params `export.*`, metrics/compare.json and the selected model; writes
models/best/ (model.keras, saved_model/1/ for TF Serving, metadata.json,
MODEL_CARD.md), metrics/export.json and the plots in evaluation/: the test
confusion matrix and reliability, the validation risk-coverage curve that sets the
"not sure" threshold, and the gallery of the most confidently wrong test images.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from ruamel.yaml import YAML

from imgclf import calibration, model_card, selective
from imgclf import params as params_file
from imgclf.arrays import read_classes, read_split
from imgclf.evaluation import classification_metrics, most_confused
from imgclf.feature_cache import inference_batch_size
from imgclf.files import replace_directory, write_json
from imgclf.gallery import mistakes_gallery, save_gallery
from imgclf.stage import run
from imgclf.training import load_trained_model

PREPARED = Path("prepared")
EXPORT_DIR = Path("models/best")
EVALUATION_DIR = Path("evaluation")
METRICS_FILE = Path("metrics/export.json")
CONFUSED_PAIRS = 10  # listed in the model card and plotted
CURVE_POINTS = 200  # at most, in the risk-coverage plot


def read_json(path: str) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def data_version() -> str | None:
    """The md5 DVC recorded for data/ in data.dvc (None when data/ is not tracked by DVC)."""
    if not Path("data.dvc").is_file():
        return None
    return YAML(typ="safe", pure=True).load(Path("data.dvc").read_text())["outs"][0]["md5"]


def main() -> None:
    started = time.perf_counter()
    export = params_file.load().export
    compared = read_json("metrics/compare.json")
    selected = compared["selected"]
    model = load_trained_model(selected)
    classes = read_classes(PREPARED)
    class_names, image_size = classes["class_names"], classes["image_size"]
    val = read_split(PREPARED, "val", mmap=False)
    test = read_split(PREPARED, "test", mmap=False)

    def predict(split):
        images = split.images.astype("float32")
        return model.predict(images, batch_size=inference_batch_size(image_size), verbose=0)

    val_probabilities, test_probabilities = predict(val), predict(test)

    # Temperature scaling, fitted and judged on validation; the test split only reports.
    decision = calibration.decide(val_probabilities, val.labels, export.calibrate)
    test_calibrated = calibration.apply_temperature(test_probabilities, decision.temperature)
    if decision.applied:
        model = calibration.with_temperature(model, decision.temperature)
    # The threshold is read from the probabilities the exported model will serve.
    served_probabilities, val_served = (
        decision.served(test_probabilities),
        decision.served(val_probabilities),
    )

    # "Not sure" below the confidence that reaches export.target_accuracy on validation.
    threshold = selective.choose_threshold(val_served, val.labels, export.target_accuracy)
    test_answered = selective.answered(served_probabilities, test.labels, threshold.confidence)
    test_metrics = classification_metrics(served_probabilities, test.labels, class_names, "test")
    ece = calibration.expected_calibration_error
    calibration_summary = {
        **decision.as_dict(),
        "test_ece_before": ece(test_probabilities, test.labels),
        "test_ece_after": ece(test_calibrated, test.labels),
    }

    trained = read_json(f"metrics/{selected}.json")
    metadata = {
        "class_names": class_names,
        "image_size": classes["image_size"],
        "selected_model": selected,
        "compare_metric": compared["metric"],
        "pretrained": trained.get("pretrained", None),
        "val_accuracy": trained["val_accuracy"],
        "val_macro_f1": trained["val_macro_f1"],
        "test_accuracy": test_metrics["test_accuracy"],
        "test_macro_f1": test_metrics["test_macro_f1"],
        "calibration": calibration_summary,
        "data_version": data_version(),
        "top_k": export.top_k,
        "confidence_threshold": threshold.confidence,
        "target_accuracy": threshold.target_accuracy,
    }
    predicted = served_probabilities.argmax(axis=1)
    pairs = most_confused(test.labels, predicted, class_names, CONFUSED_PAIRS)
    counts = {split: len(read_split(PREPARED, split).labels) for split in ("train", "val", "test")}

    # Build the export beside its destination, then swap it in (see replace_directory).
    staging = EXPORT_DIR.with_name(".best.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    model.save(staging / "model.keras")
    model.export(str(staging / "saved_model" / "1"), format="tf_saved_model", verbose=False)
    write_json(staging / "metadata.json", metadata)
    card = model_card.render(metadata, test_metrics, counts, pairs, threshold, test_answered)
    (staging / "MODEL_CARD.md").write_text(card, encoding="utf-8")
    replace_directory(staging, EXPORT_DIR)

    shutil.rmtree(EVALUATION_DIR, ignore_errors=True)
    write_json(EVALUATION_DIR / "test_confusion.json", [
        {"actual": class_names[a], "predicted": class_names[p]}
        for a, p in zip(test.labels, predicted, strict=True)
    ])  # fmt: skip
    curve = selective.risk_coverage(val_served, val.labels, max_points=CURVE_POINTS)
    write_json(EVALUATION_DIR / "risk_coverage.json", curve)
    mistakes, gallery = mistakes_gallery(
        model, test, served_probabilities, class_names, export.mistakes, selected
    )
    save_gallery(gallery, EVALUATION_DIR / "mistakes.png")
    write_json(EVALUATION_DIR / "mistakes.json", mistakes)
    write_json(EVALUATION_DIR / "confused_pairs.json", [
        {"pair": f"{p['actual']} → {p['predicted']}", "count": p["count"]} for p in pairs
    ])  # fmt: skip
    # One file per curve, so DVC draws them as two lines (see plots in dvc.yaml).
    for label, probabilities in (
        ("uncalibrated", test_probabilities),
        ("calibrated", test_calibrated),
    ):
        rows = calibration.reliability(probabilities, test.labels)
        write_json(EVALUATION_DIR / f"reliability_{label}.json", rows)
    seconds = time.perf_counter() - started
    calibration_metrics = {f"calibration_{k}": v for k, v in calibration_summary.items()}
    write_json(METRICS_FILE, {
        "selected": selected, **test_metrics, **calibration_metrics,
        "confidence_threshold": threshold.confidence,
        "target_accuracy_reached": threshold.target_reached,
        "val_coverage": threshold.val_coverage, "val_answered_accuracy": threshold.val_accuracy,
        "test_coverage": test_answered["coverage"],
        "test_answered_accuracy": test_answered["accuracy"],
        "export_seconds": seconds,
    })  # fmt: skip
    before, after = calibration_summary["test_ece_before"], calibration_summary["test_ece_after"]
    print(
        f"export: {selected}, test_accuracy {test_metrics['test_accuracy']:.4f}, "
        f"test ECE {before:.4f} -> {after:.4f} (calibration {decision.reason}); "
        f"answers {100 * test_answered['coverage']:.0f}% of test images at confidence >= "
        f"{threshold.confidence:.3f} with accuracy {test_answered['accuracy']:.4f}; "
        f"wrote {EXPORT_DIR}/ in {seconds:.0f}s"
    )


if __name__ == "__main__":
    run(main, "export")
