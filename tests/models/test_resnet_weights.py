"""imgclf.models.resnet: weights from a file, the Keras cache, or a loud offline fallback."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from keras.src.legacy.saving import legacy_h5_format

from imgclf.models import resnet as pretrained
from imgclf.models.resnet import load_base_weights, resnet50
from imgclf.models.transfer import PretrainedWeightsError

SIZE = 32


def same_weights(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights(), strict=True))


@pytest.fixture(scope="module")
def source_base():
    import keras

    keras.utils.set_random_seed(123)
    return resnet50(SIZE)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty Keras cache and a download that fails as it does with no network."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))

    def no_network():
        raise Exception("URL fetch failure on https://example.invalid: Name or service not known")

    monkeypatch.setattr(pretrained, "_download", no_network)


def test_weights_load_from_a_file_the_user_names(source_base, tmp_path):
    path = tmp_path / "resnet50.weights.h5"
    source_base.save_weights(path)
    base = resnet50(SIZE)
    assert not same_weights(base, source_base)
    loaded = load_base_weights(base, str(path), require_pretrained=True)
    assert loaded.pretrained and loaded.source == str(path)
    assert same_weights(base, source_base)


def test_imagenet_uses_the_keras_cache_file_in_the_published_format(source_base, offline):
    cache_file = pretrained.keras_cache_file()
    cache_file.parent.mkdir(parents=True)
    with h5py.File(cache_file, "w") as f:  # the legacy layout Keras publishes its weights in
        legacy_h5_format.save_weights_to_hdf5_group(f, source_base)
    base = resnet50(SIZE)
    loaded = load_base_weights(base, "imagenet", require_pretrained=True)
    assert loaded.pretrained and loaded.source == str(cache_file)
    assert same_weights(base, source_base)


def test_offline_imagenet_falls_back_loudly(offline, capsys):
    base = resnet50(SIZE)
    before = base.get_weights()[0].copy()
    loaded = load_base_weights(base, "imagenet", require_pretrained=False)
    assert loaded.pretrained is False
    assert np.array_equal(base.get_weights()[0], before)
    warning = capsys.readouterr().err
    assert "WARNING" in warning and "RANDOMLY INITIALISED" in warning
    assert pretrained.WEIGHTS_FILE in warning and str(pretrained.keras_cache_file()) in warning
    assert "resnet.weights" in warning


def test_offline_imagenet_fails_when_pretrained_is_required(offline):
    with pytest.raises(PretrainedWeightsError, match="require_pretrained is true"):
        load_base_weights(resnet50(SIZE), "imagenet", require_pretrained=True)


def test_missing_weights_file_names_the_key(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"resnet.weights = '.*nope.h5': file not found"):
        load_base_weights(resnet50(SIZE), str(tmp_path / "nope.h5"), False)


def test_wrong_weights_file_is_a_clear_error(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"something_else"]
    with pytest.raises(PretrainedWeightsError, match="could not be loaded into ResNet50"):
        load_base_weights(resnet50(SIZE), str(path), False)


def test_none_means_random_weights():
    assert load_base_weights(resnet50(SIZE), "none", True).pretrained is False
