"""The large-data search: faiss' inverted-file index against exact search, and sampled fits."""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import NearestNeighbors

from imgclf.audit import neighbours


def clustered(rows: int, dims: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (20, dims))
    return (centres[rng.integers(0, 20, rows)] + rng.normal(0, 1, (rows, dims))).astype(np.float32)


def test_the_approximate_search_finds_nearly_every_exact_neighbour_at_exact_distances():
    vectors = clustered(6000, 32, seed=0)
    found_distances, found = neighbours.IVFNeighbours(vectors, 5).kneighbors(vectors)
    exact_distances, exact = (
        NearestNeighbors(n_neighbors=5, algorithm="brute").fit(vectors).kneighbors(vectors)
    )
    assert found.shape == exact.shape == (6000, 5)
    assert (found[:, 0] == np.arange(6000)).all()  # each row is its own nearest
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(found, exact, strict=True)])
    assert recall > 0.9
    # What it finds is at its true distance: never closer than the exact k-th neighbour.
    assert np.allclose(found_distances[:, 0], 0, atol=1e-3)
    assert (found_distances[:, -1] >= exact_distances[:, -1] - 1e-3).all()


def test_the_same_rows_give_the_same_neighbours():
    vectors = clustered(3000, 16, seed=1)
    first = neighbours.IVFNeighbours(vectors, 4).kneighbors(vectors[:500])
    second = neighbours.IVFNeighbours(vectors, 4).kneighbors(vectors[:500])
    assert np.array_equal(first[1], second[1]) and np.array_equal(first[0], second[0])


def test_a_query_whose_groups_are_too_small_is_searched_everywhere(monkeypatch):
    monkeypatch.setattr(neighbours, "PROBES", 1)
    vectors = clustered(400, 8, seed=2)
    # 20 groups of about 20 rows: one group cannot give 30 neighbours.
    distances, indices = neighbours.IVFNeighbours(vectors, 30).kneighbors(vectors)
    assert (indices >= 0).all() and np.isfinite(distances).all()
    exact = NearestNeighbors(n_neighbors=30).fit(vectors).kneighbors(vectors)[0]
    assert (distances[:, -1] >= exact[:, -1] - 1e-3).all()


def test_a_projection_fitted_on_a_sample_keeps_the_main_directions(monkeypatch):
    monkeypatch.setattr(neighbours, "FIT_SAMPLE_ROWS", 500)
    rng = np.random.default_rng(3)
    # Two strong directions among 40 weak ones.
    vectors = rng.normal(0, 0.1, (5000, 40)).astype(np.float32)
    vectors[:, :2] += rng.normal(0, 10, (5000, 2))
    project = neighbours.sampled_projection(vectors, 2, standardize=False)
    projected = neighbours.in_chunks(len(vectors), lambda rows: project(vectors[rows]))
    assert projected.shape == (5000, 2) and projected.dtype == np.float32
    kept = np.var(projected, axis=0).sum() / np.var(vectors, axis=0).sum()
    assert kept > 0.99
