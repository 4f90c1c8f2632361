"""imgclf.models.inference: batch-by-batch prediction through one traced call."""

from __future__ import annotations

import gc
import weakref

import keras
import numpy as np

from imgclf.models.inference import predict_in_batches, traced_forward


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
