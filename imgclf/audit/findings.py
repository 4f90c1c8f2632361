"""The three findings, on embeddings already computed: plain numpy, scikit-learn and cleanlab.

- Likely label errors: every image's class probabilities come from a fast classifier
  (linear discriminant analysis on the standardized features' top principal
  components) fitted on the other folds of a k-fold split, so no label is judged by a
  model that saw it; cleanlab's confident
  learning (`find_label_issues`) picks the labels those probabilities contradict, ranked
  by cleanlab's label quality score (the probability of the given label).
- Near-duplicates: two images closer than `distance` times the typical distance
  between an image and its nearest neighbour, in their pixels and in their pretrained
  features at once (the geometric mean of the two ratios; cosine distances on each
  space's top principal components). Pixels alone take two
  plain textures for copies; features alone miss a re-encoded copy of a small
  image. Measuring against the typical neighbour makes one threshold hold for
  28 px product shots and for photos.
- Outliers: cleanlab's out-of-distribution score of each image's standardized
  features against each class (of all splits), the best of them: an image far from
  every class scores lowest. Listed are the images whose distance to their nearest
  class is an outlier among the data set's own distances (a robust z-score, median
  and MAD), at most 1% of the images, so one threshold holds for 3,000 images and
  for 17,000, where an absolute score does not (the typical distance grows as
  classes get sparser).

Up to 50,000 images every search is exact and every projection is fitted on all the
rows; above, projections are fitted on a sample and the searches use faiss'
inverted-file index, so time and memory grow near-linearly (see neighbours.py).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from cleanlab.filter import find_label_issues
from cleanlab.outlier import OutOfDistribution
from cleanlab.rank import get_label_quality_scores
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.preprocessing import StandardScaler

from imgclf.audit.neighbours import (
    CHUNK_ROWS,
    FIT_SAMPLE_ROWS,
    euclidean_index,
    in_chunks,
    is_large,
    sample_rows,
    sampled_projection,
)

PCA_DIMENSIONS = 256  # as accurate as all 2,024 features here, and several times faster
NEIGHBOURS = 5  # candidates per image for near-duplicates, in each space
OUTLIER_NEIGHBOURS = 10  # cleanlab's default k (with 20, distances saturate on photos)
# The outliers listed are at most this share of the images, the farthest first: a data
# set whose distances have a long tail still gets a list a person can go through.
MAX_OUTLIER_SHARE = 0.01


@dataclass(frozen=True)
class LabelIssues:
    """Out-of-sample class probabilities, and what cleanlab makes of them."""

    probabilities: np.ndarray  # (n, classes), each row from a model that did not see it
    quality: np.ndarray  # (n,): cleanlab's label quality score, low = likely wrong
    issues: np.ndarray  # row indices cleanlab flags, most likely wrong first


def out_of_sample_probabilities(
    features: np.ndarray, labels: np.ndarray, num_classes: int, folds: int, seed: int
) -> np.ndarray:
    """Class probabilities of each row from a classifier fitted on the other folds."""
    counts = np.bincount(labels)
    # A class needs a member in every fold; fewer folds when a class is that small.
    folds = int(min(folds, max(2, counts[counts > 0].min())))
    # The projection never sees a label, so fitting it once on every row keeps each
    # row's probabilities out of sample (and is 5x faster than once per fold).
    dims = int(min(PCA_DIMENSIONS, features.shape[1], len(labels) - 1))
    if is_large(len(features)):
        project = sampled_projection(features, dims, standardize=True, seed=seed)
        projected = in_chunks(len(features), lambda rows: project(features[rows]))
    else:
        standardized = StandardScaler().fit_transform(features)
        pca = PCA(dims, svd_solver="randomized", random_state=seed)
        projected = pca.fit_transform(standardized)
    classifier = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # A class smaller than the folds, or a constant feature in a tiny fold, warns.
        warnings.simplefilter("ignore", (UserWarning, RuntimeWarning, ConvergenceWarning))
        probabilities = cross_val_predict(
            classifier, projected, labels, cv=splitter, method="predict_proba"
        )
    full = np.zeros((len(labels), num_classes))  # a class absent from these labels: 0
    full[:, np.unique(labels)] = probabilities
    return full


def label_issues(
    features: np.ndarray, labels: np.ndarray, num_classes: int, folds: int, seed: int
) -> LabelIssues:
    """Likely label errors among `labels`, judged out of sample (see the module docstring)."""
    present = np.unique(labels)
    if len(present) < 2:  # one class: nothing to confuse it with, no classifier to fit
        probabilities = np.zeros((len(labels), num_classes))
        probabilities[:, present] = 1.0
        return LabelIssues(probabilities, np.ones(len(labels)), np.zeros(0, dtype=np.int64))
    probabilities = out_of_sample_probabilities(features, labels, num_classes, folds, seed)
    # cleanlab wants every class it is told about to occur: judge the present ones.
    given = np.searchsorted(present, labels)
    probs = probabilities[:, present]
    quality = get_label_quality_scores(given, probs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        # One process: cleanlab's worker processes (the same results) are forks of this
        # one, each counting its gigabytes of features as theirs too.
        issues = find_label_issues(
            given, probs, return_indices_ranked_by="self_confidence", n_jobs=1
        )
    return LabelIssues(probabilities, quality, np.asarray(issues, dtype=np.int64))


@dataclass(frozen=True)
class Pair:
    """Two rows of the stacked embeddings that are near-duplicates, first < second."""

    first: int
    second: int
    distance: float  # relative to the typical nearest-neighbour distance; 0 = identical


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    vectors = vectors.astype(np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.clip(norms, 1e-12, None)


def _projected(vectors: np.ndarray) -> np.ndarray:
    """`vectors`, centred, on their top principal components (scikit-learn's randomized
    PCA with its default power iterations: fewer lose copies on Fashion-MNIST)."""
    vectors = vectors.astype(np.float32)
    dims = min(PCA_DIMENSIONS, vectors.shape[1], len(vectors))
    if dims == vectors.shape[1]:
        return vectors - vectors.mean(axis=0)
    return PCA(dims, svd_solver="randomized", random_state=0).fit_transform(vectors)


def _unit_space(
    vectors: np.ndarray, standardize: bool = False, prepare: Callable | None = None
) -> np.ndarray:
    """Rows of `vectors` (after `prepare`, then standardized if asked) on their top principal
    components, as unit rows: whole below EXACT_ROWS, else fitted on a sample and
    computed a chunk at a time (see neighbours.py)."""
    prepare = prepare or (lambda rows: np.asarray(rows, np.float32))
    if not is_large(len(vectors)):
        rows = prepare(vectors)
        if standardize:
            rows = StandardScaler().fit_transform(rows)
        return _unit_rows(_projected(rows))
    dims = min(PCA_DIMENSIONS, vectors.shape[1])
    sample = prepare(vectors[sample_rows(len(vectors), FIT_SAMPLE_ROWS)])
    project = sampled_projection(sample, dims, standardize)
    return in_chunks(len(vectors), lambda rows: _unit_rows(project(prepare(vectors[rows]))))


def _neighbours(units: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Cosine distances and indices of each unit row's k nearest other rows (and itself)."""
    index = euclidean_index(units, min(k + 1, len(units)), approximate=is_large(len(units)))
    distances, indices = index.kneighbors(units)
    return distances**2 / 2, indices  # for unit vectors |a - b|^2 = 2 (1 - cos)


def _typical_distance(distances: np.ndarray, indices: np.ndarray) -> float:
    """The median distance from a row to its nearest other row."""
    others = indices != np.arange(len(indices))[:, None]
    first_other = np.argmax(others, axis=1)
    nearest = distances[np.arange(len(distances)), first_other]
    return max(float(np.median(nearest)), 1e-6)


def feature_space(features: np.ndarray) -> np.ndarray:
    """The features as near-duplicates and outliers compare them: unit rows on the top
    principal components (256 keep the neighbours of 2,000-3,000 dimensions, at a
    tenth of the cost of searching them). Computed once for both findings."""
    return _unit_space(features)


def _centred_pixels(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, np.float32)
    return rows - rows.mean(axis=1, keepdims=True)


def pixel_space(pixels: np.ndarray) -> np.ndarray:
    """The small pixel copies (uint8 or float, one flattened image per row) as near-duplicates
    compare them: each centred on its own mean, on the top principal components, as unit
    rows (a quarter of the copies' bytes at 28 px, so they can go early)."""
    return _unit_space(pixels, prepare=_centred_pixels)


def near_duplicates(space: np.ndarray, pixels: np.ndarray, distance: float) -> list[Pair]:
    """Pairs closer than `distance` (relative, in both spaces; see the module docstring).

    `space` is the images' `feature_space`, `pixels` their `pixel_space`.
    """
    if len(space) < 2:
        return []
    spaces = [space, pixels]
    found = [_neighbours(vectors, NEIGHBOURS) for vectors in spaces]
    scale = [_typical_distance(*neighbours) for neighbours in found]
    # Every (row, neighbour) of either search, each unordered pair once.
    pairs = np.concatenate(
        [
            np.stack([np.repeat(np.arange(len(indices)), indices.shape[1]), indices.ravel()], 1)
            for _, indices in found
        ]
    )
    pairs = np.unique(np.sort(pairs[pairs[:, 0] != pairs[:, 1]], axis=1), axis=0)
    if len(pairs) == 0:
        return []
    first, second = pairs[:, 0], pairs[:, 1]
    ratios = [
        _pair_distances(vectors, first, second) / s
        for vectors, s in zip(spaces, scale, strict=True)
    ]
    combined = np.sqrt(ratios[0] * ratios[1])
    keep = np.flatnonzero(combined <= distance)
    return [Pair(int(first[i]), int(second[i]), float(combined[i])) for i in keep]


def _pair_distances(units: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Cosine distance of each pair of unit rows, CHUNK_ROWS pairs at a time: the rows of
    all the candidate pairs at once (ten an image) would take gigabytes."""
    distances = np.empty(len(first), dtype=np.float32)
    for start in range(0, len(first), CHUNK_ROWS):
        a, b = first[start : start + CHUNK_ROWS], second[start : start + CHUNK_ROWS]
        distances[start : start + len(a)] = np.maximum(1 - np.sum(units[a] * units[b], axis=1), 0)
    return distances


def outlier_space(features: np.ndarray) -> np.ndarray:
    """The features as outliers compare them: standardized (so no few large features
    decide), on their top principal components, as unit rows."""
    return _unit_space(features, standardize=True)


def outlier_z(scores: np.ndarray) -> np.ndarray:
    """How unusual each image's distance to its nearest class is among the data set's own:
    (distance - median) / (1.4826 MAD), the distance being -log(outlier score)."""
    distance = -np.log(np.clip(scores, 1e-12, None))
    median = np.median(distance)
    spread = 1.4826 * np.median(np.abs(distance - median))
    return (distance - median) / max(float(spread), 1e-12)


def listed_outliers(scores: np.ndarray, z: np.ndarray, threshold: float) -> np.ndarray:
    """Rows whose z is above `threshold`, lowest score first, at most MAX_OUTLIER_SHARE
    (and at least one: a small data set may still list its most foreign image)."""
    order = np.argsort(scores, kind="stable")
    beyond = order[z[order] > threshold]
    return beyond[: max(1, int(MAX_OUTLIER_SHARE * len(scores)))]


def outlier_scores(space: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """How typical each image is of its nearest class: cleanlab's out-of-distribution score
    against each class, the best of them (1 typical, towards 0 far from every class).

    Per class, because foreign images tend to resemble each other: a dozen screenshots
    spread over the classes are each other's nearest neighbours in the whole set, but
    in any one class they are among strangers. cleanlab leaves an image out of its
    own neighbours.
    """
    best = np.zeros(len(space))
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rest = np.flatnonzero(labels != label)
        k = min(OUTLIER_NEIGHBOURS, len(members) - 1)
        if k < 1:
            continue
        # Cosine geometry (cleanlab's own default for features) on the top principal
        # components, searched by euclidean distance (see neighbours.euclidean_index).
        index = euclidean_index(space[members], k, approximate=is_large(len(space)))
        detector = OutOfDistribution(params={"knn": index, "k": k})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            own = detector.fit_score(features=space[members], verbose=False)
            best[members] = np.maximum(best[members], own)
            # The other classes' images, a chunk at a time on a large set (not a copy of
            # nearly all of `space`); each row's score is its own.
            step = CHUNK_ROWS * 8 if is_large(len(space)) else max(1, len(rest))
            for start in range(0, len(rest), step):
                chunk = rest[start : start + step]
                best[chunk] = np.maximum(best[chunk], detector.score(features=space[chunk]))
    return best
