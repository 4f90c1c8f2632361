"""Nearest neighbours and projections that grow near-linearly with the number of images.

Up to EXACT_ROWS rows the audit searches exactly (scikit-learn's brute-force search)
and fits its projections on every row, as it always has. Above that, exact search
compares every image with every other (its time grows with the square of the count)
and whole-matrix fits hold several copies of the data, so:

- projections (standardization and PCA) are fitted on a seeded sample of
  FIT_SAMPLE_ROWS rows and applied CHUNK_ROWS at a time into a preallocated array;
- neighbours come from faiss's inverted-file index (IndexIVFFlat): vectors are
  grouped around about sqrt(n) k-means centroids, trained on a seeded sample, and a
  query is compared only with the members of its PROBES nearest groups. A copy lies
  next to its original, so it shares its group; the found distances are exact, only a
  far neighbour may be missed (bench/bench_scale.py measures the findings' quality).

Both are deterministic: the same rows give the same neighbours on the same machine.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler

EXACT_ROWS = 50_000  # above this many rows, sampled fits and faiss (see bench_scale)
FIT_SAMPLE_ROWS = 20_000
CHUNK_ROWS = 8_192
PROBES = 16  # groups searched per query
TRAINING_ROWS_PER_GROUP = 64  # k-means sample per centroid (faiss warns below 39)


def is_large(rows: int) -> bool:
    """Whether `rows` rows take the sampled, approximate path."""
    return rows > EXACT_ROWS


def sample_rows(rows: int, count: int, seed: int = 0) -> np.ndarray:
    """`count` distinct row indices out of `rows` (all when fewer), sorted: a memory map
    reads them front to back."""
    if rows <= count:
        return np.arange(rows)
    return np.sort(np.random.default_rng(seed).choice(rows, count, replace=False))


def in_chunks(rows: int, fill: Callable[[slice], np.ndarray]) -> np.ndarray:
    """`fill` of every CHUNK_ROWS rows, in one array allocated once the first chunk shows
    its width and dtype."""
    out = None
    for start in range(0, rows, CHUNK_ROWS):
        chunk = slice(start, min(rows, start + CHUNK_ROWS))
        filled = fill(chunk)
        if out is None:
            out = np.empty((rows, *filled.shape[1:]), dtype=filled.dtype)
        out[chunk] = filled
    return out


def sampled_projection(
    vectors, dims: int, standardize: bool, seed: int = 0
) -> Callable[[np.ndarray], np.ndarray]:
    """Standardization (optional) and PCA fitted on a sample of `vectors`' rows: the
    function that projects any rows with them (float32)."""
    sample = np.asarray(vectors[sample_rows(len(vectors), FIT_SAMPLE_ROWS, seed)], np.float32)
    scaler = StandardScaler().fit(sample) if standardize else None
    if scaler is not None:
        sample = scaler.transform(sample)
    dims = min(dims, *sample.shape)
    pca = PCA(dims, svd_solver="randomized", random_state=seed).fit(sample)

    def project(rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, np.float32)
        if scaler is not None:
            rows = scaler.transform(rows)
        return pca.transform(rows).astype(np.float32)

    return project


class IVFNeighbours:
    """faiss's inverted-file search behind scikit-learn's NearestNeighbors interface
    (`kneighbors`, `n_neighbors`, `metric`), which cleanlab's outlier scores accept."""

    metric = "euclidean"

    def __init__(self, vectors: np.ndarray, n_neighbors: int, seed: int = 0) -> None:
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.n_neighbors = n_neighbors
        groups, width = max(1, int(np.sqrt(len(vectors)))), vectors.shape[1]
        self.index = faiss.IndexIVFFlat(faiss.IndexFlatL2(width), width, groups)
        self.index.cp.seed = seed
        training = vectors[sample_rows(len(vectors), groups * TRAINING_ROWS_PER_GROUP, seed)]
        self.index.train(training)
        self.index.add(vectors)
        self.index.nprobe = min(PROBES, groups)

    def kneighbors(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Euclidean distances and indices of each query's n_neighbors nearest rows."""
        k = self.n_neighbors
        distances = np.empty((len(queries), k), np.float32)
        indices = np.empty((len(queries), k), np.int64)
        for start in range(0, len(queries), CHUNK_ROWS):
            chunk = np.ascontiguousarray(queries[start : start + CHUNK_ROWS], np.float32)
            squared, found = self.index.search(chunk, k)
            distances[start : start + len(chunk)] = np.sqrt(np.maximum(squared, 0))
            indices[start : start + len(chunk)] = found
        # A query whose searched groups hold fewer than k rows gets -1s: it is searched
        # again in every group (exactly; rare once groups hold ~sqrt(n) rows each).
        short = np.flatnonzero((indices < 0).any(axis=1))
        if len(short):
            self.index.nprobe = self.index.nlist
            squared, found = self.index.search(np.ascontiguousarray(queries[short], np.float32), k)
            self.index.nprobe = min(PROBES, self.index.nlist)
            distances[short], indices[short] = np.sqrt(np.maximum(squared, 0)), found
        return distances, indices


def euclidean_index(vectors: np.ndarray, k: int, approximate: bool, seed: int = 0):
    """Nearest neighbours of rows by euclidean distance, fitted and ready for `kneighbors`.

    Exact: scikit-learn's chunked brute-force search (its euclidean search keeps memory
    flat where its cosine search holds a gigabyte of distances per chunk, and is
    several times faster). Approximate: faiss (IVFNeighbours). The caller decides by
    the size of the whole search (`is_large`): a small class searched by every image
    of a large data set is a large search.
    """
    if approximate:
        return IVFNeighbours(vectors, k, seed)
    return NearestNeighbors(n_neighbors=k, metric="euclidean", algorithm="brute").fit(vectors)
