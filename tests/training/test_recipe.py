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
        seed=1, distribute="none", max_epochs=60, max_minutes=0,
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


def test_auto_epochs_are_a_budget_and_the_rate_a_plain_number():
    auto = recipe(epochs="auto", max_epochs=45)
    assert planned_epochs(auto, 100) == 45 and planned_epochs(recipe(epochs=7), 100) == 7
    optimizer = make_optimizer(auto, 0.01, 100, 45, auto=True)
    # No schedule: the warm-up and the plateaus' cuts set it as training goes (fit.py).
    assert float(optimizer.learning_rate) == pytest.approx(0.01)
    assert not hasattr(optimizer._learning_rate, "get_config")


def tiny_fit(tmp_path, learnable: bool, **changes):
    """fit() under train.epochs auto on a one-layer model: what ended it, and the model."""
    import keras

    from imgclf.training.fit import fit, open_live
    from imgclf.training.recipe import compile_for_training

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    images = rng.normal(size=(96, 4)).astype("float32")
    labels = (images[:, 0] > 0).astype(int) if learnable else rng.integers(0, 2, 96)
    train = recipe(epochs="auto", warmup_epochs=1, early_stopping_patience=3, **changes)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    batches = ArrayBatches(images[:64], labels[:64], 8, 1, shuffle=True, num_classes=2)
    compile_for_training(model, train, 0.05, len(batches), train.max_epochs, auto=True)
    live = open_live("tiny", tmp_path)
    result = fit(
        model, batches, (images[64:], one_hot(labels[64:], 2)), train, live, 64,
        train.max_epochs, auto_learning_rate=0.05,
    )  # fmt: skip
    live.end()
    return result, model


def test_auto_stops_when_validation_stops_improving_and_cuts_the_rate_first(tmp_path):
    # Random labels: nothing to learn, so validation accuracy soon stops improving.
    result, model = tiny_fit(tmp_path, learnable=False, max_epochs=40, max_minutes=0)
    assert result.epochs_trained < 40
    assert result.stopped.startswith("validation accuracy stopped improving: best at epoch")
    assert float(model.optimizer.learning_rate) < 0.05  # cut on a plateau before stopping


def test_auto_ends_at_the_epoch_budget_and_says_so(tmp_path):
    result, _ = tiny_fit(tmp_path, learnable=True, max_epochs=3, max_minutes=0)
    assert result.epochs_trained == 3
    assert result.stopped == "epoch budget: train.max_epochs 3 reached, still improving"


def test_auto_ends_at_the_time_budget_and_says_so(tmp_path):
    result, _ = tiny_fit(tmp_path, learnable=True, max_epochs=40, max_minutes=1e-6)
    assert result.epochs_trained == 1 and result.stopped.startswith("time budget")


def test_the_warm_up_rises_to_the_peak_over_its_steps():
    import keras

    from imgclf.training.recipe import WarmUp

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5), loss="mse")
    seen = []

    class Watch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(float(self.model.optimizer.learning_rate))

    data = np.zeros((8, 2), "float32"), np.zeros((8, 1), "float32")
    model.fit(*data, batch_size=1, epochs=1, verbose=0, callbacks=[WarmUp(0.4, 4), Watch()])
    assert seen[:5] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.4])
    assert seen[-1] == pytest.approx(0.4)


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
