"""imgclf.models.tta and evaluation.test_time: the views inside the exported model, and
which of them the export keeps."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from imgclf.data.prepared import PreparedSplit
from imgclf.evaluation import test_time
from imgclf.evaluation.calibration import apply_temperature
from imgclf.explain.gradcam import GradCam
from imgclf.models.cnn import build_model
from imgclf.models.familiarity import fit_to_training, pooled_features
from imgclf.models.registry import CnnParams
from imgclf.models.served import served_model, unwrap
from imgclf.models.tta import KINDS, Views, averaged

CNN = CnnParams(image_size="auto", filters=[4, 8, 8, 8], convs_per_block=1, dense_units=8,
                dropout=0.0, learning_rate=0.01)  # fmt: skip


@pytest.fixture(scope="module")
def cnn() -> keras.Model:
    keras.utils.set_random_seed(0)
    return build_model(16, 3, CNN)


def images(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 16, 16, 3)).astype("float32")


def test_the_views_are_the_image_its_mirror_and_their_centre_crops():
    batch = images(2)
    flips = keras.ops.convert_to_numpy(Views("flips")(batch))
    np.testing.assert_array_equal(flips[:2], batch)
    np.testing.assert_array_equal(flips[2:], batch[:, :, ::-1])  # left-right
    crops = keras.ops.convert_to_numpy(Views("flips_crops")(batch))
    assert crops.shape == (8, 16, 16, 3)
    crop = crops[4:6]  # the centre 14 x 14, enlarged to 16 x 16
    expected = keras.ops.convert_to_numpy(keras.ops.image.resize(batch[:, 1:15, 1:15], (16, 16)))
    np.testing.assert_allclose(crop, expected, atol=1e-3)
    np.testing.assert_allclose(crops[6:], crop[:, :, ::-1], atol=1e-3)
    with pytest.raises(ValueError, match="'mirror'"):
        Views("mirror")


@pytest.mark.parametrize("kind", ["flips", "flips_crops"])
def test_the_answer_is_the_mean_over_the_views(cnn, kind):
    batch = images(5)
    views = keras.ops.convert_to_numpy(Views(kind)(batch))
    each = cnn.predict(views, verbose=0).reshape(KINDS[kind], 5, -1)
    np.testing.assert_allclose(averaged(cnn, kind).predict(batch, verbose=0), each.mean(0),
                               atol=1e-6)  # fmt: skip
    assert averaged(cnn, "none") is cnn


def test_the_served_model_averages_the_views_and_scores_the_image_itself(cnn, tmp_path):
    batch = images(12, seed=1)
    fitted = fit_to_training(cnn, batch.astype(np.uint8), np.arange(12) % 3, 3)
    served = served_model(cnn, 0.5, fitted, "flips")
    outputs = served.predict(batch, verbose=0)
    mean = averaged(cnn, "flips").predict(batch, verbose=0)
    np.testing.assert_allclose(outputs["probabilities"], apply_temperature(mean, 0.5), atol=1e-5)
    expected = fitted.score(pooled_features(cnn, batch.astype(np.uint8)))
    np.testing.assert_allclose(outputs["unfamiliarity"], expected, rtol=1e-4, atol=1e-4)
    # saved and loaded as the export saves it (the layers are registered with Keras)
    served.save(tmp_path / "served.keras")
    loaded = keras.models.load_model(tmp_path / "served.keras")
    np.testing.assert_allclose(loaded.predict(batch, verbose=0)["probabilities"],
                               outputs["probabilities"], atol=1e-6)  # fmt: skip
    # Grad-CAM explains the image itself, through the trained model inside
    inner, _ = unwrap(served)
    assert inner.name == cnn.name
    probabilities, heatmaps = GradCam(served).explain(batch[:2])
    assert heatmaps.shape[0] == 2 and probabilities.shape == (2, 3)


def split(count: int = 6) -> PreparedSplit:
    return PreparedSplit(images(count).astype(np.uint8), np.arange(count) % 3, [""] * count)


def by_kind(monkeypatch, accuracies: dict[str, float]) -> None:
    """Each kind's model scoring `accuracies[kind]` on split()."""
    labels = np.arange(6) % 3

    def answers(model, images, batch):
        right = round(accuracies[model] * 6)
        predicted = np.where(np.arange(6) < right, labels, (labels + 1) % 3)
        return np.eye(3)[predicted]

    monkeypatch.setattr(test_time, "averaged", lambda model, kind: kind)
    monkeypatch.setattr(test_time, "predict_in_batches", answers)


@pytest.mark.parametrize(
    ("accuracies", "chosen"),
    [
        ({"none": 4 / 6, "flips": 5 / 6, "flips_crops": 5 / 6}, "flips"),  # fewer views on a tie
        ({"none": 5 / 6, "flips": 5 / 6, "flips_crops": 4 / 6}, "none"),  # views must do better
        ({"none": 3 / 6, "flips": 4 / 6, "flips_crops": 1.0}, "flips_crops"),
    ],
)
def test_auto_keeps_the_views_with_the_best_validation_accuracy(monkeypatch, accuracies, chosen):
    by_kind(monkeypatch, accuracies)
    choice = test_time.choose_views(None, split(), "auto")
    assert choice.kind == chosen and choice.views == KINDS[chosen]
    assert choice.val_accuracy == pytest.approx(accuracies)
    assert choice.val_accuracy[chosen] >= choice.val_accuracy["none"]


def test_a_setting_is_served_as_written_with_none_measured_beside_it(monkeypatch):
    by_kind(monkeypatch, {"none": 5 / 6, "flips": 4 / 6})
    choice = test_time.choose_views(None, split(), "flips")
    assert choice.kind == "flips" and set(choice.val_accuracy) == {"none", "flips"}
    assert choice.metrics() == {
        "tta": "flips", "tta_views": 2,
        "tta_val_accuracy_none": pytest.approx(5 / 6),
        "tta_val_accuracy_flips": pytest.approx(4 / 6),
    }  # fmt: skip
