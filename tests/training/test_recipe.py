"""imgclf.training.recipe and batches: schedule, optimizer, class weights, one-hot batches."""

from __future__ import annotations

import numpy as np
import pytest

from imgclf.param_groups import TrainParams
from imgclf.training.batches import ArrayBatches
from imgclf.training.recipe import (
    class_weights,
    learning_rate_schedule,
    make_optimizer,
    one_hot,
    planned_epochs,
)


def recipe(**changes) -> TrainParams:
    values = dict(
        epochs=10, batch_size=8, optimizer="adamw", weight_decay=0.05, lr_schedule="cosine",
        warmup_epochs=1, label_smoothing=0.1, class_weight="auto", early_stopping_patience=3,
        seed=1, distribute="none",
    )  # fmt: skip
    return TrainParams(**{**values, **changes})


def rates(schedule, steps: list[int]) -> list[float]:
    return [float(schedule(step)) for step in steps]


def test_warm_up_then_cosine_decay_to_zero():
    schedule = learning_rate_schedule(recipe(), 0.01, steps_per_epoch=10, epochs=10)
    start, mid_warmup, peak, halfway, end = rates(schedule, [0, 5, 10, 55, 100])
    assert start == 0 and mid_warmup == pytest.approx(0.005) and peak == pytest.approx(0.01)
    assert halfway == pytest.approx(0.005, rel=1e-3)  # cosine: half the peak halfway through
    assert end == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(
    ("steps_per_epoch", "expected"), [(94, 11), (33, 30), (10, 30), (500, 10), (1, 30)]
)
def test_auto_epochs_give_about_a_thousand_steps_within_bounds(steps_per_epoch, expected):
    assert planned_epochs(recipe(epochs="auto"), steps_per_epoch) == expected
    assert planned_epochs(recipe(epochs=7), steps_per_epoch) == 7


def test_auto_epochs_set_the_schedule_length():
    auto = recipe(epochs="auto", warmup_epochs=0)
    optimizer = make_optimizer(auto, 0.01, 100, planned_epochs(auto, 100))
    # 10 epochs of 100 steps: the cosine reaches 0 at step 1,000, half the peak at 500.
    assert float(optimizer.learning_rate) == pytest.approx(0.01)
    schedule = optimizer._learning_rate
    assert float(schedule(500)) == pytest.approx(0.005, rel=1e-3)
    assert float(schedule(1000)) == pytest.approx(0.0, abs=1e-9)


def test_constant_schedule_and_no_warm_up():
    schedule = learning_rate_schedule(
        recipe(lr_schedule="constant", warmup_epochs=0), 0.01, steps_per_epoch=10, epochs=10
    )
    assert rates(schedule, [0, 50, 99]) == pytest.approx([0.01] * 3)


def test_warm_up_never_takes_the_whole_run():
    schedule = learning_rate_schedule(recipe(warmup_epochs=5), 0.01, steps_per_epoch=4, epochs=2)
    assert float(schedule(4)) == pytest.approx(0.01)  # warm-up shortened to 1 epoch of 2


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd", "rmsprop"])
def test_every_optimizer_gets_the_schedule_and_weight_decay(name):
    optimizer = make_optimizer(recipe(optimizer=name), 0.01, steps_per_epoch=5, epochs=10)
    assert optimizer.weight_decay == pytest.approx(0.05)
    assert float(optimizer.learning_rate) == 0.0  # step 0 of the warm-up


def test_class_weights_balance_only_unbalanced_classes_in_auto_mode():
    balanced = np.repeat([0, 1, 2], [100, 90, 80])
    unbalanced = np.repeat([0, 1, 2], [100, 100, 10])
    assert class_weights(balanced, 3, "auto") is None
    weights = class_weights(unbalanced, 3, "auto")
    assert weights == pytest.approx({0: 210 / 300, 1: 210 / 300, 2: 210 / 30})
    assert class_weights(unbalanced, 3, "none") is None
    assert class_weights(balanced, 3, "balanced")[2] == pytest.approx(270 / 240)


def test_batches_carry_one_hot_labels_when_asked():
    images = np.arange(5 * 2 * 2 * 3, dtype=np.uint8).reshape(5, 2, 2, 3)
    labels = np.array([0, 2, 1, 2, 0])
    batches = ArrayBatches(images, labels, 2, seed=0, shuffle=False, num_classes=3)
    _, first = batches[0]
    np.testing.assert_array_equal(first, one_hot(np.array([0, 2]), 3))
    assert first.dtype == np.float32 and len(batches) == 3
    _, sparse = ArrayBatches(images, labels, 2, seed=0, shuffle=False)[2]
    np.testing.assert_array_equal(sparse, [0])
