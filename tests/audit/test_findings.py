"""The three findings on small generated embeddings, where the truth is known, on the exact
path and on the path that large data sets take (sampled fits, faiss' approximate search)."""

from __future__ import annotations

import numpy as np
import pytest

from imgclf.audit import findings, neighbours


@pytest.fixture(autouse=True, params=["exact", "approximate"])
def search(request, monkeypatch):
    """Every test twice: as the sample runs, and with the large-data path forced on tiny data
    (fits on 60 rows, 2 of the groups searched per query, 7 rows a chunk)."""
    if request.param == "approximate":
        monkeypatch.setattr(neighbours, "EXACT_ROWS", 10)
        monkeypatch.setattr(neighbours, "PROBES", 2)
        for module in (neighbours, findings):
            monkeypatch.setattr(module, "FIT_SAMPLE_ROWS", 60)
            monkeypatch.setattr(module, "CHUNK_ROWS", 7)  # several chunks, a short last one
    return request.param


def blobs(per_class: int, classes: int, dims: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Well separated Gaussian clusters, one per class."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 6, (classes, dims))
    labels = np.repeat(np.arange(classes), per_class)
    return centres[labels] + rng.normal(0, 1, (len(labels), dims)), labels


def test_flipped_labels_rank_first_and_are_flagged():
    features, labels = blobs(60, 3, 16, seed=0)
    rng = np.random.default_rng(1)
    flipped = rng.choice(len(labels), 9, replace=False)
    noisy = labels.copy()
    noisy[flipped] = (labels[flipped] + 1) % 3
    found = findings.label_issues(features, noisy, 3, folds=5, seed=0)
    assert found.probabilities.shape == (180, 3)
    assert set(np.argsort(found.quality)[:9]) == set(flipped)
    assert set(found.issues) == set(flipped)
    # Out of sample: the suggested class is the true one, not the given one.
    assert (found.probabilities[flipped].argmax(1) == labels[flipped]).all()


def test_clean_labels_give_no_issues_and_a_class_smaller_than_the_folds_works():
    features, labels = blobs(30, 3, 8, seed=2)
    assert len(findings.label_issues(features, labels, 3, folds=5, seed=0).issues) == 0
    small = np.concatenate([np.flatnonzero(labels != 2), np.flatnonzero(labels == 2)[:3]])
    found = findings.label_issues(features[small], labels[small], 4, folds=5, seed=0)
    assert found.probabilities.shape == (63, 4)  # class 3 never occurs: a column of zeros
    assert np.allclose(found.probabilities[:, 3], 0)


def test_label_issues_are_the_same_on_every_run_and_a_class_that_never_occurs_changes_nothing():
    features, labels = blobs(40, 3, 16, seed=5)
    noisy = labels.copy()
    noisy[[4, 50, 90]] = (labels[[4, 50, 90]] + 1) % 3
    first = findings.label_issues(features, noisy, 3, folds=5, seed=0)
    again = findings.label_issues(features, noisy, 3, folds=5, seed=0)
    np.testing.assert_array_equal(first.probabilities, again.probabilities)
    np.testing.assert_array_equal(first.quality, again.quality)
    np.testing.assert_array_equal(first.issues, again.issues)
    # A fourth class the project has but these images do not: the same answers, and a
    # column of zeros; every row's probabilities still sum to one.
    wider = findings.label_issues(features, noisy, 4, folds=5, seed=0)
    np.testing.assert_allclose(wider.probabilities[:, :3], first.probabilities)
    np.testing.assert_allclose(wider.probabilities.sum(axis=1), 1.0)
    np.testing.assert_array_equal(wider.issues, first.issues)


def test_the_number_of_folds_is_the_one_asked_for():
    features, labels = blobs(30, 3, 8, seed=10)
    noisy = labels.copy()
    noisy[[2, 40]] = (labels[[2, 40]] + 1) % 3
    by_folds = [findings.label_issues(features, noisy, 3, folds, seed=0) for folds in (2, 3, 5)]
    for found in by_folds:
        assert set(found.issues) == {2, 40}
    # Each is its own split into folds: no two give the same out-of-sample probabilities.
    for one, other in ((0, 1), (1, 2), (0, 2)):
        assert not np.allclose(by_folds[one].probabilities, by_folds[other].probabilities)


def test_one_class_has_no_label_issues_and_two_classes_do():
    features, labels = blobs(20, 2, 8, seed=6)
    alone = findings.label_issues(features[labels == 0], labels[labels == 0], 2, 5, seed=0)
    assert alone.issues.dtype == np.int64 and len(alone.issues) == 0
    assert (alone.quality == 1).all() and (alone.probabilities == [1, 0]).all()
    noisy = labels.copy()
    noisy[[3, 30]] = 1 - labels[[3, 30]]
    assert set(findings.label_issues(features, noisy, 2, folds=5, seed=0).issues) == {3, 30}


def test_label_issues_with_few_images_of_many_features():
    # Fewer images per class than features, and fewer images than features: the classifier
    # must be regularized (shrinkage) and the projection smaller than the images.
    features, labels = blobs(20, 3, 50, seed=4)
    noisy = labels.copy()
    noisy[[3, 25, 47]] = (labels[[3, 25, 47]] + 1) % 3
    assert set(findings.label_issues(features, noisy, 3, folds=5, seed=0).issues) == {3, 25, 47}
    few, few_labels = blobs(4, 3, 32, seed=7)
    found = findings.label_issues(few, few_labels, 3, folds=2, seed=0)
    assert found.probabilities.shape == (12, 3) and len(found.issues) == 0


def test_a_few_features_on_a_huge_scale_do_not_decide_the_label_issues(monkeypatch):
    # Projected on fewer components than there are features (as 2,000 features are on
    # 256), the loud ones would take them all were the features not standardized first.
    monkeypatch.setattr(findings, "PCA_DIMENSIONS", 8)
    features, labels = blobs(40, 3, 16, seed=8)
    rng = np.random.default_rng(9)
    loud = np.concatenate([features, rng.normal(0, 1000, (len(features), 8))], axis=1)
    noisy = labels.copy()
    noisy[[7, 60, 100]] = (labels[[7, 60, 100]] + 1) % 3
    assert set(findings.label_issues(loud, noisy, 3, folds=5, seed=0).issues) == {7, 60, 100}


def test_near_copies_are_paired_and_distinct_images_are_not():
    rng = np.random.default_rng(3)
    features, pixels = rng.normal(size=(200, 64)), rng.uniform(0, 255, (200, 48))
    copies = [(0, 120), (5, 150), (17, 160), (40, 199)]  # (0, 120): in the first chunk of pairs
    for original, copy in copies:
        features[copy] = features[original] + rng.normal(0, 0.01, 64)
        pixels[copy] = pixels[original] + rng.normal(0, 1, 48)  # re-encoding noise
    pairs = findings.near_duplicates(
        findings.feature_space(features), findings.pixel_space(pixels), distance=0.2
    )
    assert {(p.first, p.second) for p in pairs} == set(copies)
    assert all(0 <= p.distance <= 0.2 for p in pairs)


def test_a_pair_only_somewhat_close_in_one_space_and_unrelated_in_the_other_is_not():
    rng = np.random.default_rng(4)
    features, pixels = rng.normal(size=(100, 32)), rng.uniform(0, 255, (100, 27))
    # Similar content, other pixels (two photos of one scene); and the other way round.
    features[60] = 0.7 * features[10] + 0.3 * rng.normal(size=32)
    pixels[70] = 0.7 * pixels[20] + 0.3 * rng.uniform(0, 255, 27)
    assert (
        findings.near_duplicates(
            findings.feature_space(features), findings.pixel_space(pixels), distance=0.2
        )
        == []
    )
    # Both close at once: a copy.
    features[70] = 0.7 * features[20] + 0.3 * rng.normal(size=32)
    assert [
        (p.first, p.second)
        for p in findings.near_duplicates(
            findings.feature_space(features), findings.pixel_space(pixels), 0.2
        )
    ] == [(20, 70)]


def test_far_images_get_the_lowest_outlier_scores():
    features, labels = blobs(50, 2, 16, seed=5)
    far = np.random.default_rng(6).normal(60, 1, (3, 16))
    scores = findings.outlier_scores(
        findings.feature_space(np.concatenate([features, far])), np.r_[labels, 0, 1, 1]
    )
    assert scores.shape == (103,)
    assert set(np.argsort(scores)[:3]) == {100, 101, 102}
    assert scores[100:].max() < 0.5 * np.median(scores[:100])


def test_foreign_images_that_resemble_each_other_are_still_outliers():
    features, labels = blobs(40, 4, 16, seed=7)
    rng = np.random.default_rng(8)
    # Twelve foreign images, alike, filed three to a class: each other's neighbours overall.
    foreign = rng.normal(40, 1, (1, 16)) + rng.normal(0, 0.5, (12, 16))
    features = np.concatenate([features, foreign])
    labels = np.concatenate([labels, np.arange(12) % 4])
    scores = findings.outlier_scores(findings.feature_space(features), labels)
    assert set(np.argsort(scores)[:12]) == set(range(160, 172))


def test_outliers_are_listed_by_their_spread_among_the_data_sets_own_distances():
    features, labels = blobs(200, 4, 16, seed=9)
    far = np.random.default_rng(10).normal(0, 1, (4, 16)) * 12
    space = findings.outlier_space(np.concatenate([features, far]))
    z = findings.outlier_z(findings.outlier_scores(space, np.r_[labels, 0, 1, 2, 3]))
    assert set(np.flatnonzero(z > 3)) >= {800, 801, 802, 803}
    assert (z[:800] > 3).mean() <= 0.02  # the data set's own images: hardly any
    assert abs(np.median(z)) < 1e-6  # z is measured from the typical image


def test_the_outlier_list_is_capped_at_one_percent_farthest_first():
    scores = np.linspace(0.01, 0.5, 1000)
    z = findings.outlier_z(scores)
    listed = findings.listed_outliers(scores, z, threshold=0.5)  # half of them beyond it
    assert list(listed) == list(range(10))  # 1% of 1,000, the lowest scores first
    assert len(findings.listed_outliers(scores, z, threshold=100)) == 0


def test_an_image_filed_in_the_wrong_class_is_typical_of_its_own_kind_not_an_outlier(capsys):
    features, labels = blobs(30, 3, 16, seed=11)
    labels = labels.copy()
    labels[5] = 2  # an image of class 0 filed under class 2: a label error, not an outlier
    scores = findings.outlier_scores(findings.feature_space(features), labels)
    assert scores[5] > 0.5 * np.median(scores)
    assert capsys.readouterr().out == ""  # cleanlab says nothing while it scores


def test_small_classes_are_scored_and_a_lone_image_is_scored_by_the_others():
    features, labels = blobs(20, 3, 16, seed=12)
    # Class 0 has one image, class 1 two: the first has no neighbour of its own class, and
    # neither stops the other classes being scored.
    keep = np.r_[0, 20, 21, np.arange(40, 60)]
    scores = findings.outlier_scores(findings.feature_space(features[keep]), labels[keep])
    assert (scores[1:] > 0).all()
    assert scores[1:3].min() > 0.5 * np.median(scores[3:])  # a tight pair is typical


def test_outlier_z_is_the_distance_in_robust_spreads_from_the_median():
    distances = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    z = findings.outlier_z(np.exp(-distances))
    np.testing.assert_allclose(z, (distances - 2) / 1.4826)
    close = findings.outlier_z(np.exp(-distances / 10))  # a spread below 1 is no floor
    np.testing.assert_allclose(close, (distances / 10 - 0.2) / 0.14826, rtol=1e-6)
    assert np.isfinite(findings.outlier_z(np.array([0.0, 0.5, 0.5, 0.9]))).all()
    assert (findings.outlier_z(np.full(4, 0.5)) == 0).all()  # no spread: nobody is unusual


def test_an_outlier_exactly_at_the_threshold_is_not_listed_and_a_small_set_lists_one():
    scores, z = np.linspace(0.1, 0.9, 300), np.zeros(300)
    z[[0, 1]] = 5.0, 3.0
    assert list(findings.listed_outliers(scores, z, threshold=3.0)) == [0]  # 3 may be listed
    few = slice(0, 5)
    assert list(findings.listed_outliers(scores[few], z[few], threshold=2.0)) == [0]  # 1 of 5


def test_fewer_images_than_features_still_pair_their_copies():
    rng = np.random.default_rng(13)
    features, pixels = rng.normal(size=(30, 300)), rng.uniform(0, 255, (30, 400))
    features[29], pixels[29] = features[3] + rng.normal(0, 0.01, 300), pixels[3] + 1
    pairs = findings.near_duplicates(
        findings.feature_space(features), findings.pixel_space(pixels), distance=0.2
    )
    assert [(p.first, p.second) for p in pairs] == [(3, 29)]
    assert findings.outlier_space(features).shape == (30, 30)  # as many directions as images


def test_a_brighter_copy_is_still_a_copy():
    rng = np.random.default_rng(14)
    features, pixels = rng.normal(size=(60, 32)), rng.uniform(0, 200, (60, 64))
    features[59] = features[7] + rng.normal(0, 0.01, 32)
    pixels[59] = pixels[7] + 120  # the same picture, brighter: each is centred on its own mean
    pairs = findings.near_duplicates(
        findings.feature_space(features), findings.pixel_space(pixels), distance=0.2
    )
    assert [(p.first, p.second) for p in pairs] == [(7, 59)]
