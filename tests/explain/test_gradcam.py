"""imgclf.explain.gradcam: Grad-CAM finds the region a decision depends on, in every family."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from imgclf import models
from imgclf.explain.gradcam import GradCam, map_layer
from imgclf.explain.heatmap import overlay
from imgclf.models.cnn import build_model
from imgclf.models.registry import CnnParams, ResnetParams
from imgclf.models.resnet import resnet50
from imgclf.models.temperature import with_temperature
from imgclf.models.transfer import build_transfer
from imgclf.models.tta import averaged

SIZE = 32
RESNET = ResnetParams(
    image_size="auto", weights="none", require_pretrained=False, dense_units=8, dropout=0.2,
    learning_rate=0.01, augmented_views=1, fine_tune_layers=0, fine_tune_epochs=0,
    fine_tune_learning_rate=1e-5,
)  # fmt: skip
CNN = CnnParams(
    image_size="auto",
    filters=[8, 16, 16, 32],
    convs_per_block=1,
    dense_units=16,
    dropout=0.0,
    learning_rate=0.01,
)


def quadrant_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noise everywhere; only the top-left quadrant says the class (stripes across or down)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (count, SIZE, SIZE, 3)).astype("float32")
    labels = rng.integers(0, 2, count)
    half = SIZE // 2
    stripes = (np.arange(half) // 2 % 2 * 255).astype("float32")
    for image, label in zip(images, labels, strict=True):
        pattern = stripes[:, None] if label == 0 else stripes[None, :]
        image[:half, :half] = np.broadcast_to(pattern, (half, half))[..., None]
    return images, labels


@pytest.fixture(scope="module")
def quadrant_model():
    keras.utils.set_random_seed(3)
    images, labels = quadrant_images(256, seed=1)
    model = build_model(SIZE, 2, CNN)
    model.compile(optimizer=keras.optimizers.Adam(0.003), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])  # fmt: skip
    model.fit(images, labels, epochs=12, batch_size=32, verbose=0)
    return model


def test_heatmap_mass_lies_in_the_quadrant_that_decides(quadrant_model):
    images, labels = quadrant_images(64, seed=2)
    predicted = quadrant_model.predict(images, verbose=0).argmax(axis=1)
    assert (predicted == labels).mean() > 0.9  # the model did learn the quadrant
    heatmaps = GradCam(quadrant_model).heatmaps(images, predicted)
    assert heatmaps.shape == (64, 4, 4)
    assert heatmaps.min() >= 0 and heatmaps.max() <= 1
    # Mass per quadrant (top-left, top-right, bottom-left, bottom-right) of the 4x4 maps.
    quadrants = heatmaps.reshape(64, 2, 2, 2, 2).sum(axis=(2, 4)).reshape(64, 4)
    share = quadrants / quadrants.sum(axis=1, keepdims=True).clip(1e-9)
    assert (share.argmax(axis=1) == 0).mean() >= 0.9  # top-left holds the most, nearly always
    assert share[:, 0].mean() > 0.33  # well over its quarter of the area
    peaks = heatmaps.reshape(64, 16).argmax(axis=1)
    assert np.isin(peaks, [0, 1, 4, 5]).mean() >= 0.8  # the hottest cell lies in it


def test_calibrated_wrapper_explains_like_the_model_inside(quadrant_model):
    images, labels = quadrant_images(8, seed=4)
    plain = GradCam(quadrant_model).heatmaps(images, labels)
    wrapped = GradCam(with_temperature(quadrant_model, 0.5)).heatmaps(images, labels)
    np.testing.assert_allclose(wrapped, plain, atol=1e-5)


@pytest.mark.parametrize("temperature", [None, 0.5])
def test_a_model_averaging_test_time_views_explains_like_the_model_inside(
    quadrant_model, temperature
):  # fmt: skip
    images, labels = quadrant_images(8, seed=5)
    viewed = averaged(quadrant_model, "flips")
    served = with_temperature(viewed, temperature) if temperature else viewed
    np.testing.assert_allclose(
        GradCam(served).heatmaps(images, labels),
        GradCam(quadrant_model).heatmaps(images, labels),
        atol=1e-5,
    )


@pytest.mark.parametrize("temperature", [None, 0.5])
def test_one_pass_explains_the_class_the_served_model_predicts(quadrant_model, temperature):
    served = with_temperature(quadrant_model, temperature) if temperature else quadrant_model
    images, _ = quadrant_images(8, seed=6)
    probabilities, heatmaps = GradCam(served).explain(images)
    expected = served.predict_on_batch(images.astype("float32"))
    np.testing.assert_allclose(probabilities, expected, atol=1e-6)  # what the model serves
    predicted = expected.argmax(axis=1)
    np.testing.assert_allclose(
        heatmaps, GradCam(served).heatmaps(images, predicted), atol=1e-5
    )  # the map of the class it answers


def test_resnet_map_is_the_last_block_output_still_4_cells_wide():
    base = resnet50(SIZE)
    base.trainable = False
    model = build_transfer(models.get("resnet"), base, SIZE, 3, RESNET)[2]
    assert map_layer(base).name == "conv3_block4_out"  # conv4 is 2x2, conv5 1x1 at 32 px
    images, _ = quadrant_images(2, seed=5)
    explainer = GradCam(model)
    heatmaps = explainer.heatmaps(images, np.array([0, 2]))
    assert explainer.layer_name == "conv3_block4_out"
    assert heatmaps.shape == (2, 4, 4) and np.isfinite(heatmaps).all()
    assert heatmaps.max() <= 1 and heatmaps.min() >= 0


def test_cnn_map_is_the_last_convolution_before_pooling(quadrant_model):
    assert map_layer(quadrant_model).name == "relu4"


def test_overlay_is_the_image_coloured_where_the_model_looked():
    pixels = np.full((SIZE, SIZE, 3), 128, np.uint8)
    heatmap = np.zeros((4, 4), np.float32)
    heatmap[0, 0] = 1.0
    image = np.asarray(overlay(pixels, heatmap, 64)).astype(int)
    assert image.shape == (64, 64, 3)
    hot, cold = image[4, 4], image[60, 60]
    assert hot[0] > hot[2] + 60  # red where attention is highest
    assert cold[2] > cold[0]  # blue where the model did not look
    assert np.abs(cold - 128).max() < 90  # and the image still shows through there
