"""imgclf.training.pretrained: the head's feature standardization, fitted a chunk at a time."""

from __future__ import annotations

import numpy as np

from imgclf.models import transfer
from imgclf.training.pretrained import VARIANCE_FLOOR, adapt_feature_norm, column_statistics


def test_column_statistics_are_numpys_whatever_the_chunk():
    rows = np.random.default_rng(0).normal(3, 2, (1000, 7)).astype(np.float16)
    mean, variance = column_statistics(rows, chunk=64)
    np.testing.assert_allclose(mean, rows.astype(np.float64).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(variance, rows.astype(np.float64).var(axis=0), rtol=1e-12)


def test_the_head_standardizes_half_precision_features_with_a_variance_floor():
    rng = np.random.default_rng(1)
    features = rng.normal(5, 3, (500, 6)).astype(np.float16)
    features[:, 2] = 1.0  # a channel that never changes on the training set
    head = transfer.build_head(6, 3, dense_units=8, dropout=0.0)
    adapt_feature_norm(head, features)
    norm = head.get_layer("feature_norm")
    variance = np.asarray(norm.adapt_variance).ravel()
    assert variance[2] == np.float32(VARIANCE_FLOOR * np.median(variance))
    standardized = np.asarray(norm(features.astype(np.float32)))
    assert np.allclose(standardized[:, [0, 1, 3, 4, 5]].mean(axis=0), 0, atol=1e-3)
    assert np.allclose(standardized[:, [0, 1, 3, 4, 5]].std(axis=0), 1, atol=1e-2)
