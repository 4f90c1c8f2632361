"""imgclf.training.feature_cache: features kept on disk, keyed by what computes them."""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np
import pytest

from imgclf.models.inference import predict_batches, predict_in_batches
from imgclf.training import feature_cache
from imgclf.training.feature_cache import cached_training_set, prune, stored_features


def extractor(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs / 255.0)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))


@pytest.fixture
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "features"
    monkeypatch.setenv(feature_cache.CACHE_ENV, str(folder))
    return folder


def counting(monkeypatch) -> list[int]:
    """Replace the base pass by one that counts the images it runs on."""
    passes: list[int] = []

    def predict(model, images, batch_size, transform=None):
        passes.append(len(images))
        return predict_batches(model, images, batch_size, transform)

    monkeypatch.setattr(feature_cache, "predict_batches", predict)
    return passes


def test_a_second_call_reads_what_the_first_computed(cache, images, monkeypatch):
    passes = counting(monkeypatch)
    model = extractor(1)
    first, hit_first = stored_features(model, images, 4)
    second, hit_second = stored_features(extractor(1), images, 4)  # rebuilt: same key
    assert (hit_first, hit_second) == (False, True) and passes == [10]
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, model.predict(images, batch_size=4, verbose=0))
    assert len(list(cache.glob("*.npy"))) == 1


@pytest.mark.parametrize(
    "change",
    ["weights", "images", "one pixel", "batch size", "recipe"],
)
def test_anything_that_changes_the_features_misses(cache, images, monkeypatch, change):
    stored_features(extractor(1), images, 4)
    passes = counting(monkeypatch)
    model, batch, recipe = extractor(1), 4, ""
    if change == "weights":
        model = extractor(2)
    elif change == "images":
        images = images[:9]
    elif change == "one pixel":
        images = images.copy()
        images[5, 3, 3, 1] ^= 1
    elif change == "batch size":
        batch = 5
    else:
        recipe = "flip"
    _, hit = stored_features(model, images, batch, recipe=recipe)
    assert not hit and passes == [len(images)]


def test_a_broken_entry_is_computed_again(cache, images):
    expected, _ = stored_features(extractor(1), images, 4)
    (entry,) = cache.glob("*.npy")
    entry.write_bytes(entry.read_bytes()[:50])
    again, hit = stored_features(extractor(1), images, 4)
    assert not hit
    np.testing.assert_array_equal(again, expected)
    assert np.load(entry).shape == expected.shape  # mended


def test_an_empty_setting_switches_the_cache_off(tmp_path, images, monkeypatch):
    monkeypatch.setenv(feature_cache.CACHE_ENV, "")
    monkeypatch.chdir(tmp_path)
    assert feature_cache.cache_folder() is None
    _, hit = stored_features(extractor(1), images, 4)
    _, hit_again = stored_features(extractor(1), images, 4)
    assert not hit and not hit_again and not any(tmp_path.rglob("*.npy"))


def test_only_a_project_gets_a_cache_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(feature_cache.CACHE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert feature_cache.cache_folder() is None  # `imgclf audit FOLDER` run anywhere
    (tmp_path / "params.yaml").write_text("prepare: {}\n")
    assert feature_cache.cache_folder() == Path(".imgclf-cache/features")


def test_an_unwritable_cache_costs_speed_not_the_run(tmp_path, images, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv(feature_cache.CACHE_ENV, str(blocked / "features"))
    features, hit = stored_features(extractor(1), images, 4)
    assert not hit and features.shape == (10, 4)


def test_prune_deletes_the_least_recently_used_first(tmp_path):
    entries = []
    for age, name in enumerate(["old", "mid", "new"]):
        entry = tmp_path / f"{name}.npy"
        entry.write_bytes(b"x" * 100)
        entries.append(entry)
        stamp = 1_000_000 + age
        os.utime(entry, (stamp, stamp))
    prune(tmp_path, keep=entries[2], max_bytes=250)
    assert sorted(p.name for p in tmp_path.glob("*.npy")) == ["mid.npy", "new.npy"]
    prune(tmp_path, keep=entries[0], max_bytes=50)  # the one just written always stays
    assert [p.name for p in tmp_path.glob("*.npy")] == []


def test_the_cache_holds_a_dozen_entries_of_this_data_set_within_half_the_free_disk(
    tmp_path, monkeypatch
):
    (tmp_path / "a.npy").write_bytes(b"x" * 1000)
    free = 100 * 2**30
    usage = type("Usage", (), {"free": free})
    monkeypatch.setattr(feature_cache.shutil, "disk_usage", lambda _: usage)
    assert feature_cache.cache_limit(tmp_path, 10) == feature_cache.MIN_CACHE_BYTES
    # 300,000 images' features (about 1.5 GB an entry) get room for all of them ...
    entry = 1_500_000_000
    assert feature_cache.cache_limit(tmp_path, entry) == feature_cache.ENTRIES_KEPT * entry
    # ... unless the disk has not that much to spare.
    usage.free = 10 * 2**30
    assert feature_cache.cache_limit(tmp_path, entry) == (10 * 2**30 + 1000) // 2


def test_features_land_in_the_array_given_from_a_pass_and_from_the_cache(cache, images):
    model = extractor(1)
    for expected_hit in (False, True):
        out = np.full((12, 4), -1.0, np.float32)
        features, hit = stored_features(model, images, 4, out=out[1:11])
        assert hit is expected_hit and features.base is out
        np.testing.assert_array_equal(out[1:11], predict_in_batches(model, images, 4))
        assert (out[[0, 11]] == -1).all()  # nothing written outside


def test_augmented_views_are_cached_whole_and_give_the_same_training_set(cache, images):
    labels = np.arange(10) % 3
    calls = []

    def augmenter(batch):
        calls.append(len(batch))
        return batch[:, ::-1]  # deterministic stand-in for a flip

    model = extractor(1)
    features, tiled, reused = cached_training_set(model, images, labels, 4, augmenter, 2, "flip")
    assert features.shape == (30, 4) and reused == 0
    np.testing.assert_array_equal(tiled, np.tile(labels, 3))
    augmenter_calls = len(calls)
    again, _, reused_again = cached_training_set(model, images, labels, 4, augmenter, 2, "flip")
    assert reused_again == 30 and len(calls) == augmenter_calls  # no base pass, no augmenting
    np.testing.assert_array_equal(again, features)
    _, _, reused_three = cached_training_set(model, images, labels, 4, augmenter, 3, "flip")
    assert reused_three == 10  # the originals only: three views are another entry
    plain, tiled_plain, _ = cached_training_set(model, images, labels, 4, None, 2, "")
    assert plain.shape == (10, 4) and len(tiled_plain) == 10


def test_a_disk_that_fills_while_writing_leaves_no_entry_and_every_feature(cache, images):
    class FullDisk:
        def __init__(self) -> None:
            self.writes = 0

        def write(self, data: bytes) -> None:
            self.writes += 1
            if self.writes > 1:
                raise OSError(28, "No space left on device")

    model = extractor(1)
    batches = feature_cache.predict_batches(model, images, 4)
    out = np.zeros((10, 4), np.float32)
    assert feature_cache._fill(out, batches, FullDisk()) is False
    np.testing.assert_array_equal(out, predict_in_batches(model, images, 4))


def test_an_entry_is_written_as_float32_and_read_into_any_float_array(cache, images):
    model = extractor(1)
    exact, _ = stored_features(model, images, 4)
    (entry,) = cache.glob("*.npy")
    assert np.load(entry).dtype == np.float32
    np.testing.assert_array_equal(np.load(entry), exact)
    half = np.empty((10, 4), np.float16)
    _, hit = stored_features(model, images, 4, out=half)
    assert hit and np.array_equal(half, exact.astype(np.float16))


def test_the_training_set_is_half_precision_and_the_cache_full_precision(cache, images):
    model = extractor(1)
    features, _, _ = cached_training_set(model, images, np.zeros(10), 4, None, 0)
    assert features.dtype == feature_cache.TRAINING_DTYPE == np.float16
    np.testing.assert_allclose(features, predict_in_batches(model, images, 4), rtol=1e-3)
    assert np.load(next(cache.glob("*.npy"))).dtype == np.float32
