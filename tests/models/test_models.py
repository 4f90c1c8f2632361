"""imgclf.models: the families' architectures, parameter counts, preprocessing inside,
train-only augmentation."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from imgclf import models
from imgclf.models.cnn import build_model
from imgclf.models.registry import CnnParams, ResnetParams
from imgclf.models.resnet import FEATURES, resnet50
from imgclf.models.transfer import build_head, build_transfer
from imgclf.param_groups import AugmentParams
from imgclf.training.augmentation import build_augmentation, build_augmenter, with_augmentation
from imgclf.training.pretrained import adapt_feature_norm

CNN = CnnParams(
    image_size="auto",
    filters=[4, 8, 8, 16],
    convs_per_block=1,
    dense_units=12,
    dropout=0.5,
    learning_rate=0.01,
)
STRONG = AugmentParams(horizontal_flip=True, translate=0.2, rotation=0.5, zoom=0.5)
OFF = AugmentParams(horizontal_flip=False, translate=0, rotation=0, zoom=0)
RESNET = ResnetParams(
    image_size="auto", weights="none", require_pretrained=False, dense_units=8, dropout=0.2,
    learning_rate=0.01, augmented_views=1, fine_tune_layers=0, fine_tune_epochs=0,
    fine_tune_learning_rate=1e-5,
)  # fmt: skip


def all_layers(model: keras.Layer) -> list[keras.Layer]:
    """A model's layers, nested models' layers included."""
    nested = getattr(model, "layers", [])
    return [model, *(layer for child in nested for layer in all_layers(child))]


def pixels(count: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3)).astype("float32")


def test_cnn_shape_and_parameter_count():
    model = build_model(32, 5, CNN)
    assert model.output_shape == (None, 5)
    expected, channels = 0, 3
    for filters in CNN.filters:
        expected += 3 * 3 * channels * filters + 4 * filters  # conv without bias, BatchNorm
        channels = filters
    expected += channels * 12 + 12 + 12 * 5 + 5  # dense, softmax
    assert model.count_params() == expected
    kinds = [layer.__class__.__name__ for layer in model.layers]
    assert kinds.count("Conv2D") == 4 and kinds.count("BatchNormalization") == 4
    assert kinds.count("MaxPooling2D") == 4 and "GlobalAveragePooling2D" in kinds
    assert "Dropout" in kinds and model.layers[-1].activation.__name__ == "softmax"


@pytest.mark.parametrize(("size", "last_map"), [(32, 2), (48, 3), (64, 4)])
def test_cnn_blocks_hold_two_convolutions_and_pool_once(size, last_map):
    model = build_model(size, 3, CNN.model_copy(update={"convs_per_block": 2}))
    kinds = [layer.__class__.__name__ for layer in model.layers]
    assert kinds.count("Conv2D") == 8 and kinds.count("BatchNormalization") == 8
    assert kinds.count("MaxPooling2D") == 4
    assert model.get_layer("gap").input.shape[1:3] == (last_map, last_map)


def test_augmentation_changes_training_batches_but_is_not_in_the_models(resnet_parts):
    images = pixels(4, 32)
    augmented = build_augmenter(STRONG, 0)(images)
    assert augmented.shape == images.shape and not np.array_equal(augmented, images)
    cnn = build_model(32, 3, CNN)
    models = [cnn, *resnet_parts]
    random_layers = [
        layer.name
        for model in models
        for layer in model._flatten_layers()
        if "Random" in type(layer).__name__
    ]
    assert random_layers == []  # nothing random can run at inference
    assert np.array_equal(cnn.predict(images, verbose=0), cnn.predict(images, verbose=0))


def test_the_fitted_model_shares_the_saved_models_layers():
    cnn = build_model(32, 3, CNN)
    trainer = with_augmentation(cnn, build_augmentation(STRONG, 0))
    assert trainer is not cnn and trainer.layers[-1] is cnn
    assert {id(w) for w in cnn.trainable_weights} == {id(w) for w in trainer.trainable_weights}
    assert with_augmentation(cnn, build_augmentation(OFF, 0)) is cnn


def test_switched_off_augmentation_gives_no_augmenter():
    assert build_augmentation(OFF, 0).layers == []
    assert build_augmenter(OFF, 0) is None


def test_translation_alone_shifts_images():
    shift = AugmentParams(horizontal_flip=False, translate=0.25, rotation=0, zoom=0)
    [layer] = build_augmentation(shift, 0).layers
    assert type(layer).__name__ == "RandomTranslation"
    images = pixels(4, 32)
    assert not np.array_equal(build_augmenter(shift, 0)(images), images)


def test_saved_cnn_takes_raw_pixels_like_the_in_memory_one(tmp_path):
    model = build_model(32, 3, CNN)
    images = pixels(3, 32)
    model.save(tmp_path / "cnn.keras")
    loaded = keras.models.load_model(tmp_path / "cnn.keras")
    np.testing.assert_allclose(
        loaded.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6
    )
    # Scaling lives inside: pixels already scaled to [0, 1] give a different answer.
    assert not np.allclose(model.predict(images / 255, verbose=0), model.predict(images, verbose=0))


@pytest.fixture(scope="module")
def resnet_parts():
    base = resnet50(32)
    base.trainable = False
    extractor, head, model = build_transfer(models.get("resnet"), base, 32, 4, RESNET)
    return base, extractor, head, model


def test_resnet_structure_and_frozen_base(resnet_parts):
    base, extractor, head, model = resnet_parts
    assert extractor.output_shape == (None, FEATURES)
    assert model.output_shape == (None, 4)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == FEATURES * 8 + 8 + 8 * 4 + 4  # only the head's two dense layers
    assert not head.get_layer("feature_norm").trainable_weights
    assert base.count_params() > 23_000_000


def test_feature_norm_keeps_features_dead_in_training_bounded(tmp_path):
    # A random base's ReLU channel can be 0 on every training image and fire on a new
    # one: plain standardization divides it by ~0 and the head's logits explode.
    rng = np.random.default_rng(0)
    features = rng.gamma(2.0, 1.0, (200, FEATURES)).astype("float32")
    features[:, :10] = 0.0
    head = build_head(FEATURES, 4, RESNET.dense_units, RESNET.dropout)
    adapt_feature_norm(head, features)
    fresh = rng.gamma(2.0, 1.0, (5, FEATURES)).astype("float32")  # fires the dead channels
    norm = head.get_layer("feature_norm")
    standardized = keras.ops.convert_to_numpy(norm(fresh))
    assert np.abs(standardized).max() < 100
    # Live features are standardized as usual.
    live = keras.ops.convert_to_numpy(norm(features))[:, 10:]
    np.testing.assert_allclose(live.mean(axis=0), 0, atol=1e-3)
    np.testing.assert_allclose(live.std(axis=0), 1, atol=1e-2)
    # The floor is saved with the head.
    head.save(tmp_path / "head.keras")
    loaded = keras.models.load_model(tmp_path / "head.keras").get_layer("feature_norm")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(fresh)), standardized, rtol=1e-5)


@pytest.mark.slow  # saves and loads a whole ResNet50
def test_saved_resnet_preprocesses_raw_pixels_inside(resnet_parts, tmp_path):
    _, extractor, head, model = resnet_parts
    images = pixels(2, 32, seed=1)
    model.save(tmp_path / "resnet.keras")
    loaded = keras.models.load_model(tmp_path / "resnet.keras")
    np.testing.assert_allclose(
        loaded.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-5
    )
    # The full model equals head(extractor(pixels)): the cached-feature path is the same function.
    via_cache = head.predict(extractor.predict(images, verbose=0), verbose=0)
    np.testing.assert_allclose(model.predict(images, verbose=0), via_cache, atol=1e-5)
