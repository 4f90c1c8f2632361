"""imgclf.training.batches: the tf.data pipelines fit() feeds."""

from __future__ import annotations

import numpy as np

from imgclf.training.batches import (
    ArrayBatches,
    array_batches,
    dataset_of,
    training_pipelines,
    without_autotuning,
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


def test_without_autotuning_switches_autotuning_off_and_keeps_the_data():
    images, labels = np.arange(12, dtype=np.float32).reshape(6, 2), np.arange(6)
    plain = array_batches(images, labels, 4)
    tuned = without_autotuning(plain)
    assert tuned.options().autotune.enabled is False
    assert plain.options().autotune.enabled is not False  # tf.data's default is on
    got = [(x.numpy(), y.numpy()) for x, y in tuned]
    assert [len(y) for _, y in got] == [4, 2]
    np.testing.assert_array_equal(np.concatenate([x for x, _ in got]), images)
    np.testing.assert_array_equal(np.concatenate([y for _, y in got]), labels)


def test_training_pipelines_turn_a_pydataset_and_arrays_into_pipelines_without_autotuning():
    batches = numbered()
    expected = [batches[i][0][:, 0, 0, 0].tolist() for i in range(len(batches))]
    val = (np.zeros((5, 1, 1, 1), np.float32), np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1]])
    train_pipeline, val_pipeline = training_pipelines(numbered(), val, batch_size=4)
    for pipeline in (train_pipeline, val_pipeline):
        assert pipeline.options().autotune.enabled is False
    assert indices(train_pipeline) == expected
    assert [len(y) for _, y in val_pipeline] == [4, 1]
