"""stages/export.py: a complete, consistent, calibrated export of the selected model."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from imgclf import params as params_file
from imgclf.bundle import EXPLAIN, FORMATS
from imgclf.data.prepared import read_split
from imgclf.evaluation import calibration, selective
from support.project import model_metrics


@pytest.fixture
def best(tiny_project):
    return tiny_project / "models" / "best"


def served_outputs(best, images: np.ndarray) -> dict[str, np.ndarray]:
    """What the exported Keras model answers: probabilities and unfamiliarity, by name."""
    return keras.models.load_model(best / "model.keras").predict(
        images.astype("float32"), verbose=0
    )


def served_probabilities(best, images: np.ndarray) -> np.ndarray:
    return served_outputs(best, images)["probabilities"]


def test_export_holds_what_serving_needs_and_nothing_half_written(tiny_project, best):
    formats = model_metrics(tiny_project, "export")["formats"]
    wanted = params_file.load(tiny_project / "params.yaml").export.formats
    assert set(formats) == {*wanted, "explain_onnx"}
    files = {name: f.file for name, f in FORMATS.items()} | {EXPLAIN.name: EXPLAIN.file}
    shipped = {files[name] for name, f in formats.items() if f["passed"]}
    assert sorted(p.name for p in best.iterdir()) == sorted([
        "MODEL_CARD.md", "metadata.json", "model.keras", "saved_model", *shipped,
    ])  # fmt: skip
    assert (best / "saved_model" / "1" / "saved_model.pb").is_file()
    assert not any(p.name.startswith(".best") for p in (tiny_project / "models").iterdir())


def test_metadata_describes_the_selected_model(tiny_project, best):
    metadata = json.loads((best / "metadata.json").read_text())
    selected = json.loads((tiny_project / "metrics" / "compare.json").read_text())["selected"]
    assert metadata["selected_model"] == selected
    assert metadata["class_names"] == ["circle", "square", "star"]
    assert metadata["image_size"] == 32
    assert metadata["val_accuracy"] == model_metrics(tiny_project, selected)["val_accuracy"]
    exported = model_metrics(tiny_project, "export")
    assert metadata["test_accuracy"] == exported["test_accuracy"]
    assert set(metadata["calibration"]) >= {
        "temperature",
        "applied",
        "reason",
        "test_ece_before",
        "test_ece_after",
    }
    low, high = calibration.TEMPERATURE_RANGE
    assert low <= metadata["calibration"]["temperature"] <= high
    assert exported["calibration_reason"] == metadata["calibration"]["reason"]
    card = (best / "MODEL_CARD.md").read_text()
    assert f"Model card: {selected}" in card and "test" in card and "circle" in card
    assert metadata["calibration"]["reason"] in card


def test_calibration_is_skipped_when_validation_is_too_small_to_support_it(tiny_project, best):
    # 6 validation images: fewer than calibration.MIN_ERRORS mistakes are even possible.
    metadata = json.loads((best / "metadata.json").read_text())
    assert metadata["calibration"]["applied"] is False
    assert metadata["calibration"]["temperature"] == 1.0
    assert metadata["calibration"]["reason"].startswith("skipped: only ")
    assert "too few to fit a temperature" in (best / "MODEL_CARD.md").read_text()


def test_savedmodel_and_keras_model_give_the_same_probabilities(tiny_project, best):
    images = read_split("test", tiny_project / "prepared").images[:6].astype("float32")
    from_keras = served_outputs(best, images)
    served = tf.saved_model.load(str(best / "saved_model" / "1"))
    from_savedmodel = served.serve(tf.constant(images))
    assert set(from_savedmodel) == set(from_keras) == {"probabilities", "unfamiliarity"}
    for name, output in from_savedmodel.items():
        np.testing.assert_allclose(output.numpy(), from_keras[name], atol=1e-5)


def test_exported_probabilities_are_the_calibrated_ones(tiny_project, best):
    metadata = json.loads((best / "metadata.json").read_text())
    selected = metadata["selected_model"]
    images = read_split("test", tiny_project / "prepared").images.astype("float32")
    raw = keras.models.load_model(tiny_project / "models" / selected / "model.keras")
    exported = served_probabilities(best, images)
    expected = raw.predict(images, verbose=0)
    if metadata["calibration"]["applied"]:
        expected = calibration.apply_temperature(expected, metadata["calibration"]["temperature"])
    np.testing.assert_allclose(exported, expected, atol=1e-5)


def test_test_split_plots_are_written(tiny_project):
    confusion = json.loads((tiny_project / "evaluation" / "test_confusion.json").read_text())
    test_size = len(read_split("test", tiny_project / "prepared").labels)
    assert len(confusion) == test_size
    for curve in ("uncalibrated", "calibrated"):
        path = tiny_project / "evaluation" / f"reliability_{curve}.json"
        rows = json.loads(path.read_text())
        assert sum(row["count"] for row in rows) == test_size
        assert all(0 <= row["confidence"] <= 1 and 0 <= row["accuracy"] <= 1 for row in rows)


def test_mistakes_gallery_and_confused_pairs_match_the_test_predictions(tiny_project, best):
    metadata = json.loads((best / "metadata.json").read_text())
    test = read_split("test", tiny_project / "prepared")
    probabilities = served_probabilities(best, test.images)
    wrong = probabilities.argmax(axis=1) != test.labels
    evaluation = tiny_project / "evaluation"
    mistakes = json.loads((evaluation / "mistakes.json").read_text())
    assert len(mistakes) == min(int(wrong.sum()), 16)
    names = metadata["class_names"]
    for mistake in mistakes:
        row = test.files.index(mistake["file"])
        assert wrong[row] and mistake["actual"] == names[test.labels[row]]
        assert mistake["predicted"] == names[probabilities[row].argmax()]
        assert mistake["confidence"] == pytest.approx(probabilities[row].max(), abs=1e-5)
    confidences = [m["confidence"] for m in mistakes]
    assert confidences == sorted(confidences, reverse=True)
    pairs = json.loads((evaluation / "confused_pairs.json").read_text())
    assert sum(p["count"] for p in pairs) == int(wrong.sum())  # few classes: every pair listed
    from PIL import Image

    with Image.open(evaluation / "mistakes.png") as gallery:
        assert gallery.format == "PNG" and gallery.width > 200
    card = (best / "MODEL_CARD.md").read_text()
    assert "Most confused classes" in card and "When it is not sure" in card


def test_threshold_is_chosen_on_validation_and_measured_on_test(tiny_project, best):
    metadata = json.loads((best / "metadata.json").read_text())
    exported = model_metrics(tiny_project, "export")
    threshold = metadata["confidence_threshold"]
    assert threshold == exported["confidence_threshold"] and 0 <= threshold <= 1
    test = read_split("test", tiny_project / "prepared")
    probabilities = served_probabilities(best, test.images)
    confident = probabilities.max(axis=1) >= threshold
    assert exported["test_coverage"] == pytest.approx(confident.mean(), abs=1e-6)
    # Chosen on the validation images as served, at export.target_accuracy: not on test.
    target = params_file.load(tiny_project / "params.yaml").export.target_accuracy
    chosen = {
        name: selective.choose_threshold(
            served_probabilities(best, split.images), split.labels, target
        ).confidence
        for name, split in (("val", read_split("val", tiny_project / "prepared")), ("test", test))
    }
    assert threshold == pytest.approx(chosen["val"]) and chosen["val"] != chosen["test"], chosen
    curve = json.loads((tiny_project / "evaluation" / "risk_coverage.json").read_text())
    assert curve[-1]["coverage"] == 1.0
    assert all(0 <= point["accuracy"] <= 1 for point in curve)


def test_the_mistakes_to_review_are_training_and_validation_images_only(tiny_project, best):
    import csv

    names = json.loads((best / "metadata.json").read_text())["class_names"]
    wrong = {}
    for split in ("train", "val"):
        images = read_split(split, tiny_project / "prepared")
        probabilities = served_probabilities(best, images.images)
        for file, label, row in zip(images.files, images.labels, probabilities, strict=True):
            if row.argmax() != label:
                wrong[(split, file)] = (names[label], names[row.argmax()], row.max())
    with open(tiny_project / "evaluation" / "review_mistakes.csv", newline="") as table:
        rows = list(csv.DictReader(table))
    assert 0 < len(rows) == min(len(wrong), 200)
    for row in rows:
        given, predicted, confidence = wrong[(row["split"], row["file"])]
        assert (row["given"], row["predicted"]) == (given, predicted)
        assert float(row["confidence"]) == pytest.approx(confidence, abs=1e-4)
    assert [float(r["confidence"]) for r in rows] == sorted(
        (float(r["confidence"]) for r in rows), reverse=True
    )


def overconfident(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of 3 classes at 0.96 on their top class, a third of them wrong."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, count)
    predicted = np.where(np.arange(count) % 3 == 0, (labels + 1) % 3, labels)
    probabilities = np.full((count, 3), 0.02)
    probabilities[np.arange(count), predicted] = 0.96
    return probabilities, labels


def test_a_temperature_that_applies_is_inside_the_model_the_export_serves(tiny_project):
    # The tiny export never applies calibration (too few validation errors): here it must,
    # and what the stage then serves is the model wrapped with that temperature.
    from imgclf.data.prepared import PreparedSplit
    from imgclf.evaluation.interpretation import Interpretation
    from stages.export import calibrate

    model = keras.models.load_model(tiny_project / "models" / "cnn" / "model.keras")
    test = read_split("test", tiny_project / "prepared")

    def interpretation(name: str, seed: int) -> Interpretation:
        probabilities, labels = overconfident(60, seed)
        split = PreparedSplit(np.zeros((60, 32, 32, 3), np.uint8), labels, [""] * 60)
        return Interpretation(name, split, ["a", "b", "c"], probabilities)

    served = calibrate(model, interpretation("val", 0), interpretation("test", 1), enabled=True)
    assert served.decision.applied and served.decision.temperature > 1  # overconfident
    raw = model.predict(test.images.astype("float32"), verbose=0)
    exported = served.model.predict(test.images.astype("float32"), verbose=0)
    np.testing.assert_allclose(
        exported, calibration.apply_temperature(raw, served.decision.temperature), atol=1e-5
    )
    assert served.val.probabilities.max() < 0.96  # read from what is served
    switched_off = calibrate(model, interpretation("val", 0), interpretation("test", 1), False)
    assert switched_off.model is model and not switched_off.decision.applied


def test_the_unfamiliar_threshold_is_chosen_on_validation_and_measured_on_test(tiny_project, best):
    metadata = json.loads((best / "metadata.json").read_text())
    exported = model_metrics(tiny_project, "export")
    share = params_file.load(tiny_project / "params.yaml").export.unfamiliar_share
    val, test = (read_split(name, tiny_project / "prepared") for name in ("val", "test"))
    val_scores = served_outputs(best, val.images)["unfamiliarity"]
    threshold = metadata["unfamiliar_threshold"]
    assert threshold == exported["unfamiliar_threshold"]
    assert threshold == pytest.approx(selective.unfamiliar_threshold(val_scores, share), rel=1e-3)
    assert exported["val_unfamiliar_share"] <= share
    test_scores = served_outputs(best, test.images)["unfamiliarity"]
    assert exported["test_unfamiliar_share"] == pytest.approx(
        (test_scores > threshold).mean(), abs=1e-6
    )
    # Noise is far from everything the model learned from.
    noise = np.random.default_rng(0).integers(0, 256, (8, *test.images.shape[1:]))
    assert (served_outputs(best, noise)["unfamiliarity"] > threshold).all()
    counts = np.bincount(read_split("train", tiny_project / "prepared").labels)
    assert metadata["class_shares"] == pytest.approx(counts / counts.sum(), abs=1e-6)
    card = (best / "MODEL_CARD.md").read_text()
    assert f"Above {threshold:.3f} the image is" in card
    assert "same unfamiliar flag" in card
