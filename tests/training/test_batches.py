"""imgclf.training.batches: the tf.data pipelines fit() feeds, and batch-by-batch prediction."""

from __future__ import annotations

import gc
import weakref

import keras
import numpy as np

from imgclf.training.batches import (
    ArrayBatches,
    array_batches,
    dataset_of,
    predict_in_batches,
    steady,
    traced_forward,
    training_pipelines,
)


def numbered(count: int = 10, batch_size: int = 4, seed: int = 3) -> ArrayBatches:
    """Batches whose images carry their own index, so an order can be read back."""
    images = np.arange(count, dtype=np.uint8).reshape(count, 1, 1, 1).repeat(2, axis=1)
    return ArrayBatches(images, np.arange(count) % 3, batch_size, seed, True, num_classes=3)


def indices(dataset) -> list[list[int]]:
    return [images[:, 0, 0, 0].numpy().tolist() for images, _ in dataset]


def test_dataset_of_gives_the_pydataset_batches_in_order_and_reshuffles_after_each_pass():
    batches, reference = numbered(), numbered()
    dataset = dataset_of(batches)
    assert int(dataset.cardinality()) == len(reference) == 3
    for _ in range(3):  # three epochs: each the reference's batches, then its reshuffle
        expected = [reference[i][0][:, 0, 0, 0].tolist() for i in range(len(reference))]
        assert indices(dataset) == expected
        reference.on_epoch_end()
    seen = indices(dataset_of(numbered()))
    assert sorted(i for batch in seen for i in batch) == list(range(10))  # each once a pass
    labels = next(iter(dataset))[1].numpy()
    assert labels.shape == (4, 3) and set(labels.sum(axis=1)) == {1.0}  # one-hot


def test_steady_switches_autotuning_off_and_keeps_the_data():
    images, labels = np.arange(12, dtype=np.float32).reshape(6, 2), np.arange(6)
    plain = array_batches(images, labels, 4)
    tuned = steady(plain)
    assert tuned.options().autotune.enabled is False
    assert plain.options().autotune.enabled is not False  # tf.data's default is on
    got = [(x.numpy(), y.numpy()) for x, y in tuned]
    assert [len(y) for _, y in got] == [4, 2]
    np.testing.assert_array_equal(np.concatenate([x for x, _ in got]), images)
    np.testing.assert_array_equal(np.concatenate([y for _, y in got]), labels)


def test_predict_in_batches_matches_model_predict_and_applies_the_transform():
    inputs = keras.Input((2, 2, 3))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inputs)))
    images = np.random.default_rng(0).integers(0, 255, (9, 2, 2, 3), dtype=np.uint8)
    got = predict_in_batches(model, images, batch_size=4)
    # float32 agreement: oneDNN's kernels round a batch of one and a batch of nine apart.
    expected = model.predict(images.astype("float32"), verbose=0)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)
    flipped = predict_in_batches(model, images, 4, transform=lambda batch: batch[:, ::-1])
    expected = model.predict(images[:, ::-1].astype("float32"), verbose=0)
    np.testing.assert_allclose(flipped, expected, rtol=1e-5, atol=1e-4)
    assert not np.allclose(flipped, got)


def test_predict_in_batches_traces_a_model_once_and_sees_its_new_weights():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    images = np.random.default_rng(0).normal(size=(10, 3)).astype("float32")
    first = predict_in_batches(model, images, batch_size=4)  # batches of 4, 4 and 2
    predict_in_batches(model, images[:7], batch_size=3)
    assert traced_forward(model, (3,)).experimental_get_tracing_count() == 1
    model.set_weights([w * 2 for w in model.get_weights()])
    np.testing.assert_allclose(predict_in_batches(model, images, 4), 2 * first, rtol=1e-5)
    assert traced_forward(model, (3,)).experimental_get_tracing_count() == 1


def test_a_traced_forward_call_keeps_no_model_alive():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    predict_in_batches(model, np.zeros((2, 3), np.float32), 2)
    freed = weakref.ref(model)
    del model, inputs
    gc.collect()
    assert freed() is None


def test_training_pipelines_turn_a_pydataset_and_arrays_into_steady_pipelines():
    batches = numbered()
    expected = [batches[i][0][:, 0, 0, 0].tolist() for i in range(len(batches))]
    val = (np.zeros((5, 1, 1, 1), np.float32), np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1]])
    train_pipeline, val_pipeline = training_pipelines(numbered(), val, batch_size=4)
    for pipeline in (train_pipeline, val_pipeline):
        assert pipeline.options().autotune.enabled is False
    assert indices(train_pipeline) == expected
    assert [len(y) for _, y in val_pipeline] == [4, 1]
