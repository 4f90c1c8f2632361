"""imgclf.data.split: stratified deterministic splits, leakage removal, honest counts."""

from __future__ import annotations

from collections import Counter

import pytest

from imgclf.data.ingest import Decoded
from imgclf.data.layout import DataError, Layout, SourceFile
from imgclf.data.split import count_files, plan_splits


def flat(per_class: dict[str, int]) -> tuple[Layout, list[Decoded]]:
    files, decoded = [], []
    for name, count in per_class.items():
        for i in range(count):
            files.append(SourceFile(f"{name}/{i:03d}.png", name, None))
            decoded.append(Decoded(len(decoded), f"{name}-{i}", None))
    return Layout("flat", list(per_class), files), decoded


def placed(layout, plan):
    return Counter(
        (p.split, f.class_name)
        for f, p in zip(layout.files, plan.placements, strict=True)
        if p.used
    )


def test_flat_split_is_stratified_by_the_fractions():
    layout, decoded = flat({"cat": 100, "dog": 40})
    counts = placed(layout, plan_splits(layout, decoded, 0.2, 0.1, seed=1))
    assert counts == {
        ("train", "cat"): 70, ("val", "cat"): 20, ("test", "cat"): 10,
        ("train", "dog"): 28, ("val", "dog"): 8, ("test", "dog"): 4,
    }  # fmt: skip


def test_split_is_deterministic_and_seed_dependent():
    layout, decoded = flat({"cat": 50, "dog": 50})
    splits = [
        [p.split for p in plan_splits(layout, decoded, 0.2, 0.2, s).placements] for s in (7, 7, 8)
    ]
    assert splits[0] == splits[1]
    assert splits[0] != splits[2]


def test_adding_a_class_does_not_reshuffle_the_others():
    small, small_decoded = flat({"cat": 30, "dog": 30})
    big, big_decoded = flat({"cat": 30, "dog": 30, "eel": 30})
    before = plan_splits(small, small_decoded, 0.2, 0.2, 3).placements
    after = plan_splits(big, big_decoded, 0.2, 0.2, 3).placements
    assert [p.split for p in before] == [p.split for p in after[:60]]


def test_undecodable_files_are_skipped_and_counted():
    layout, decoded = flat({"cat": 10, "dog": 10})
    decoded[3] = Decoded(None, None, "empty file (0 bytes)")
    plan = plan_splits(layout, decoded, 0.2, 0.2, 0)
    assert plan.placements[3].used is False
    assert plan.placements[3].split is None
    assert plan.placements[3].reason == "empty file (0 bytes)"
    counts = count_files(layout, plan.placements)
    assert counts["found"] == 20 and counts["used"] == 19 and counts["skipped"] == 1
    assert counts["splits"]["unsplit"]["classes"]["cat"] == {"found": 1, "used": 0, "skipped": 1}
    for split in counts["splits"].values():
        for c in split["classes"].values():
            assert c["found"] == c["used"] + c["skipped"]


def test_identical_images_in_a_flat_class_stay_in_one_split():
    layout, decoded = flat({"cat": 30, "dog": 30})
    decoded = [Decoded(d.row, "same" if i < 5 else d.digest, None) for i, d in enumerate(decoded)]
    plan = plan_splits(layout, decoded, 0.2, 0.2, 0)
    assert len({p.split for p in plan.placements[:5]}) == 1
    assert plan.duplicates == []
    assert all(p.used for p in plan.placements)


def split_layout(files: list[tuple[str, str, str]]) -> tuple[Layout, list[Decoded]]:
    """files: (split, class, digest)"""
    sources = [SourceFile(f"{s}/{c}/{i}.png", c, s) for i, (s, c, _) in enumerate(files)]
    decoded = [Decoded(i, digest, None) for i, (_, _, digest) in enumerate(files)]
    classes = sorted({c for _, c, _ in files})
    return Layout("splits", classes, sources, ["train", "val", "test"]), decoded


def test_cross_split_duplicates_keep_the_earliest_copy():
    layout, decoded = split_layout([
        ("train", "cat", "a"), ("train", "dog", "b"),
        ("val", "cat", "c"), ("val", "dog", "b"),  # leaked from train
        ("test", "cat", "a"), ("test", "cat", "e"), ("test", "dog", "f"),  # a leaked from train
        ("test", "dog", "c"),  # leaked from val (and filed under another class)
    ])  # fmt: skip
    with pytest.raises(DataError, match="'dog' has no usable image in the val split"):
        plan_splits(layout, decoded, 0.2, 0.2, 0)
    layout.files.append(SourceFile("val/dog/extra.png", "dog", "val"))
    decoded.append(Decoded(8, "g", None))
    plan = plan_splits(layout, decoded, 0.2, 0.2, 0)
    removed = {(d["removed"], d["kept"]) for d in plan.duplicates}
    assert removed == {("val/dog/3.png", "train/dog/1.png"), ("test/cat/4.png", "train/cat/0.png"),
                       ("test/dog/7.png", "val/cat/2.png")}  # fmt: skip
    assert "exact duplicate of train/dog/1.png" in plan.placements[3].reason
    counts = count_files(layout, plan.placements)
    assert counts["splits"]["test"]["found"] == 4 and counts["splits"]["test"]["skipped"] == 2


def test_missing_test_split_is_carved_from_train():
    rows = [("train", c, f"{c}{i}") for c in ("cat", "dog") for i in range(10)]
    rows += [("val", c, f"v{c}") for c in ("cat", "dog")]
    layout, decoded = split_layout(rows)
    layout.given_splits = ["train", "val"]
    counts = placed(layout, plan_splits(layout, decoded, 0.2, 0.3, 0))
    assert (
        counts[("test", "cat")] == 3
        and counts[("train", "cat")] == 7
        and counts[("val", "cat")] == 1
    )


def test_too_few_images_in_a_class_is_a_clear_error():
    layout, decoded = flat({"cat": 10, "dog": 2})
    with pytest.raises(DataError, match=r"class 'dog' .* only 2 usable distinct image.*at least 3"):
        plan_splits(layout, decoded, 0.2, 0.2, 0)


def test_identical_pixels_under_two_classes_in_one_split_are_reported():
    layout, decoded = split_layout([
        ("train", "cat", "x"), ("train", "dog", "x"),
        ("val", "cat", "a"), ("val", "dog", "b"), ("test", "cat", "c"), ("test", "dog", "d"),
    ])  # fmt: skip
    plan = plan_splits(layout, decoded, 0.2, 0.2, 0)
    assert plan.label_conflicts == [
        {"files": ["train/cat/0.png", "train/dog/1.png"], "classes": ["cat", "dog"]}
    ]
    assert all(p.used for p in plan.placements)
