"""imgclf.training.lr_finder: the learning-rate range test and fastai's valley suggestion."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from imgclf import params as params_file
from imgclf.training import lr_finder
from imgclf.training.batches import ArrayBatches

TRAIN = params_file.load().train  # the recipe as params.yaml sets it


def test_the_valley_is_halfway_down_the_longest_descent():
    # flat, then falling from index 10 to 60, then rising
    losses = [5.0] * 10 + list(np.linspace(5.0, 1.0, 51)[1:]) + list(np.linspace(1.1, 9, 20))
    index = lr_finder.valley(losses)
    assert 10 + 0.4 * 50 <= index <= 10 + 0.6 * 50  # in the middle of the descent
    # a brief bump does not end the valley: the longest decreasing run goes around it
    bumped = list(losses)
    bumped[30] = 6.0
    assert lr_finder.valley(bumped) == index


def separable(count: int = 256, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, count)
    features = rng.normal(size=(count, 8)).astype(np.float32) + 2.0 * labels[:, None]
    return features, labels


def model() -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(16, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(hidden))


def test_the_range_test_finds_a_rate_that_learns_and_leaves_the_weights_alone():
    features, labels = separable()
    net = model()
    before = [w.copy() for w in net.get_weights()]
    batches = ArrayBatches(features, labels, 32, 0, shuffle=True, num_classes=2)
    found = lr_finder.range_test(net, batches, TRAIN)
    for old, new in zip(before, net.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
    rates = np.array(found.learning_rates)
    assert np.all(np.diff(rates) > 0) and rates[0] == pytest.approx(lr_finder.START)
    # the loss blew up before the last rate, and the test stopped there
    assert len(rates) < lr_finder.STEPS or max(found.losses) > found.losses[0]
    assert 1e-4 <= found.suggestion <= 1.0
    assert found.suggestion < rates[int(np.argmin(found.losses))]  # below the minimum's rate
    # training with it learns the task
    net.compile(keras.optimizers.AdamW(found.suggestion), "categorical_crossentropy",
                metrics=["accuracy"])  # fmt: skip
    net.fit(batches, epochs=3, verbose=0)
    assert net.evaluate(batches, verbose=0)[1] > 0.9
    assert [point["loss"] for point in found.points()] == pytest.approx(found.losses, abs=1e-6)


def test_a_loss_that_diverges_at_once_asks_for_a_number(monkeypatch):
    features, labels = separable(64)
    net = model()
    batches = ArrayBatches(features, labels, 32, 0, shuffle=True, num_classes=2)
    monkeypatch.setattr(net, "train_on_batch", lambda *a, **k: float("nan"))
    with pytest.raises(ValueError, match="set the family's learning_rate to a number"):
        lr_finder.range_test(net, batches, TRAIN)
