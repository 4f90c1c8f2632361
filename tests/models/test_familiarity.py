"""imgclf.models.familiarity and served: the unfamiliarity score, in numpy and in the
served Keras model, and the served model's two outputs from one trained model."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from imgclf.evaluation.calibration import apply_temperature
from imgclf.explain.gradcam import GradCam
from imgclf.models.cnn import build_model
from imgclf.models.familiarity import Familiarity, fit_to_training, pooled_features
from imgclf.models.registry import CnnParams
from imgclf.models.served import served_model, unwrap

CNN = CnnParams(image_size="auto", filters=[4, 8, 8, 8], convs_per_block=1, dense_units=8,
                dropout=0.0, learning_rate=0.01)  # fmt: skip


def clusters(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three classes in 6 dimensions: wide along the first axis, narrow along the others."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, count)
    centres = np.array([[0, 0, 0, 0, 0, 0], [0, 4, 0, 0, 0, 0], [0, 0, 4, 0, 0, 0]], float)
    spread = np.array([5.0, 0.5, 0.5, 0.5, 0.5, 0.5])
    return centres[labels] + rng.normal(size=(count, 6)) * spread, labels


@pytest.fixture(scope="module")
def fitted() -> Familiarity:
    features, labels = clusters(3000, seed=0)
    return Familiarity.fit(features, labels, 3)


def test_images_like_the_training_images_score_about_one(fitted):
    features, _ = clusters(2000, seed=1)
    scores = fitted.score(features)
    assert 0.8 < np.median(scores) < 1.2
    assert (scores > 3).mean() < 0.01


def test_the_distance_is_measured_in_the_training_spread_not_in_raw_units(fitted):
    # The same step away from class 0: along its wide axis it is ordinary, across its
    # narrow axes it is far out (a Euclidean distance would score them alike).
    along, across = np.zeros((1, 6)), np.zeros((1, 6))
    along[0, 0], across[0, 3] = 6.0, 6.0
    assert fitted.score(along)[0] < 1.5
    assert fitted.score(across)[0] > 20 * fitted.score(along)[0]


def test_the_nearest_class_decides(fitted):
    # Exactly at class 2's centre: familiar, however far from classes 0 and 1.
    at_centre = np.array([[0, 0, 4, 0, 0, 0]], float)
    assert fitted.score(at_centre)[0] < 0.1


def test_the_keras_model_computes_the_numpy_score(fitted):
    features, _ = clusters(50, seed=2)
    features[:10] *= 7  # far ones too
    from_keras = fitted.model().predict(features.astype("float32"), verbose=0)
    np.testing.assert_allclose(from_keras, fitted.score(features), rtol=1e-4, atol=1e-4)


def test_a_class_without_training_images_is_named():
    features, labels = clusters(100, seed=3)
    with pytest.raises(ValueError, match=r"no training images of classes \[3\]"):
        Familiarity.fit(features, labels, 4)


def test_few_training_images_still_fit_a_usable_score():
    # Fewer images than feature dimensions: the shrunk covariance stays invertible.
    rng = np.random.default_rng(4)
    features, labels = rng.normal(size=(40, 300)), np.arange(40) % 4
    fitted = Familiarity.fit(features, labels, 4)
    assert fitted.projection.shape == (300, 39)
    far = fitted.score(features[:5] * 10)
    assert np.all(np.isfinite(far)) and far.min() > fitted.score(features[:5]).max()


@pytest.fixture(scope="module")
def cnn() -> keras.Model:
    keras.utils.set_random_seed(0)
    return build_model(16, 3, CNN)


def test_the_served_model_answers_both_from_one_trained_model(cnn):
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (24, 16, 16, 3)).astype(np.uint8)
    fitted = fit_to_training(cnn, images, np.arange(24) % 3, 3)
    served = served_model(cnn, 0.5, fitted)
    outputs = served.predict(images.astype("float32"), verbose=0)
    assert set(outputs) == {"probabilities", "unfamiliarity"}
    plain = cnn.predict(images.astype("float32"), verbose=0)
    np.testing.assert_allclose(outputs["probabilities"], apply_temperature(plain, 0.5), atol=1e-5)
    expected = fitted.score(pooled_features(cnn, images))
    np.testing.assert_allclose(outputs["unfamiliarity"], expected, rtol=1e-4, atol=1e-4)
    uncalibrated = served_model(cnn, None, fitted).predict(images.astype("float32"), verbose=0)
    np.testing.assert_allclose(uncalibrated["probabilities"], plain, atol=1e-6)


def test_the_served_model_is_explained_like_the_trained_model_inside(cnn):
    images = np.random.default_rng(6).integers(0, 256, (6, 16, 16, 3)).astype("float32")
    fitted = fit_to_training(cnn, images.astype(np.uint8), np.arange(6) % 3, 3)
    served = served_model(cnn, 2.0, fitted)
    inner, step = unwrap(served)
    assert inner.name == cnn.name and len(inner.outputs) == 1
    expected = served.predict_on_batch(images)["probabilities"]
    np.testing.assert_allclose(np.asarray(step(inner(images))), expected, atol=1e-6)
    probabilities, heatmaps = GradCam(served).explain(images)
    np.testing.assert_allclose(probabilities, expected, atol=1e-6)
    np.testing.assert_allclose(
        heatmaps, GradCam(cnn).heatmaps(images, expected.argmax(axis=1)), atol=1e-5
    )


def test_a_transfer_model_scores_its_pretrained_features():
    # pixels -> extractor (nested) -> head: the score measures the extractor's output.
    from imgclf import models
    from imgclf.models.registry import ResnetParams
    from imgclf.models.resnet import resnet50
    from imgclf.models.transfer import build_transfer

    params = ResnetParams(
        image_size="auto", weights="none", require_pretrained=False, dense_units=8,
        dropout=0.0, learning_rate=0.01, augmented_views=1, fine_tune_layers=0,
        fine_tune_epochs=0, fine_tune_learning_rate=1e-5,
    )  # fmt: skip
    base = resnet50(32)
    base.trainable = False
    extractor, _, model = build_transfer(models.get("resnet"), base, 32, 3, params)
    images = np.random.default_rng(7).integers(0, 256, (12, 32, 32, 3)).astype(np.uint8)
    features = extractor.predict(images.astype("float32"), verbose=0)
    np.testing.assert_allclose(pooled_features(model, images), features, rtol=1e-4, atol=1e-4)
    fitted = fit_to_training(model, images, np.arange(12) % 3, 3)
    outputs = served_model(model, None, fitted).predict(images.astype("float32"), verbose=0)
    np.testing.assert_allclose(
        outputs["probabilities"], model.predict(images, verbose=0), atol=1e-5
    )
    np.testing.assert_allclose(
        outputs["unfamiliarity"], fitted.score(features), rtol=1e-3, atol=1e-3
    )
