"""What the audit reports and excludes, and how training reads the exclusions."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from imgclf.audit.report import Audit
from imgclf.data.prepared import KeptRows, read_split, read_used_split, write_split


def audit() -> Audit:
    found = Audit(["cat", "dog"], {"train": 10, "val": 4, "test": 4})
    found.label_issues = [
        {
            "split": "train",
            "file": "cat/1.png",
            "given": "cat",
            "suggested": "dog",
            "suggested_probability": 0.9,
            "quality": 0.05,
        },
        {
            "split": "val",
            "file": "dog/7.png",
            "given": "dog",
            "suggested": "cat",
            "suggested_probability": 0.8,
            "quality": 0.1,
        },
    ]
    pair = {"label": "cat", "duplicate_label": "cat", "distance": 0.1}
    found.near_duplicates = [
        {
            **pair,
            "split": "train",
            "file": "cat/2.png",
            "duplicate_split": "test",
            "duplicate_file": "cat/9.png",
            "leak": True,
        },
        {
            **pair,
            "split": "train",
            "file": "cat/3.png",
            "duplicate_split": "train",
            "duplicate_file": "cat/4.png",
            "leak": False,
        },
        {
            **pair,
            "split": "val",
            "file": "cat/5.png",
            "duplicate_split": "test",
            "duplicate_file": "cat/6.png",
            "leak": True,
        },
        {
            **pair,
            "split": "test",
            "file": "dog/8.png",
            "duplicate_split": "test",
            "duplicate_file": "dog/9.png",
            "leak": False,
        },
    ]
    found.outliers = [
        {"split": "train", "file": "cat/1.png", "label": "cat", "score": 0.01},
        {"split": "test", "file": "dog/3.png", "label": "dog", "score": 0.02},
    ]
    found.gallery_pixels = [np.zeros((8, 8, 3), np.uint8)] * 2
    return found


def test_report_only_by_default():
    assert audit().exclusions([]) == []


def test_exclusions_never_touch_test_and_keep_the_stricter_copy():
    excluded = audit().exclusions(["label_issues", "near_duplicates", "outliers"])
    assert excluded == [
        {"split": "train", "file": "cat/1.png", "reason": "label_issue"},  # once, first reason
        {"split": "train", "file": "cat/2.png", "reason": "near_duplicate"},  # test copy kept
        {"split": "train", "file": "cat/4.png", "reason": "near_duplicate"},  # first kept
        {"split": "val", "file": "cat/5.png", "reason": "near_duplicate"},
        {"split": "val", "file": "dog/7.png", "reason": "label_issue"},
    ]
    assert {e["split"] for e in excluded} <= {"train", "val"}


def test_metrics_count_each_finding_per_split_and_class_and_what_is_used():
    found = audit()
    excluded = found.exclusions(["near_duplicates"])
    metrics = found.metrics(excluded)
    assert metrics["label_issues"] == {
        "total": 2,
        "splits": {"train": 1, "val": 1},
        "classes": {"cat": 1, "dog": 1},
    }
    assert metrics["near_duplicates"]["total"] == 4
    assert metrics["near_duplicates"]["across_splits"] == 2
    assert metrics["outliers"]["splits"] == {"test": 1, "train": 1}
    assert metrics["excluded"] == {
        "total": 3,
        "splits": {"train": 2, "val": 1},
        "reasons": {"near_duplicate": 3},
    }
    assert metrics["used"] == {"train": 8, "val": 3, "test": 4}
    for split, count in metrics["images"].items():
        assert metrics["used"][split] + metrics["excluded"]["splits"].get(split, 0) == count


def test_write_makes_every_table_and_the_gallery(tmp_path):
    found = audit()
    excluded = found.exclusions(["outliers"])
    found.write(tmp_path, excluded, gallery_size=16)
    names = ("label_issues.csv", "near_duplicates.csv", "outliers.csv", "excluded.csv")
    rows = {name: list(csv.DictReader((tmp_path / name).open())) for name in names}
    assert [r["file"] for r in rows["label_issues.csv"]] == ["cat/1.png", "dog/7.png"]
    assert rows["near_duplicates.csv"][0]["leak"] == "True"
    assert rows["excluded.csv"] == [{"split": "train", "file": "cat/1.png", "reason": "outlier"}]
    from PIL import Image

    with Image.open(tmp_path / "label_issues.png") as gallery:
        assert gallery.width >= 2 * 176 and gallery.height > 150


def split_on_disk(tmp_path, n: int = 6):
    rows_file = tmp_path / "rows"
    images = np.arange(n * 4 * 4 * 3, dtype=np.uint8).reshape(n, 4, 4, 3)
    rows_file.write_bytes(images.tobytes())
    files = [f"c/{i}.png" for i in range(n)]
    write_split(
        tmp_path / "prepared" / "train",
        rows_file,
        list(range(n)),
        [i % 2 for i in range(n)],
        files,
        4,
    )
    return images, files


def test_training_reads_the_split_less_the_excluded_files(tmp_path):
    images, files = split_on_disk(tmp_path)
    excluded = tmp_path / "excluded.csv"
    excluded.write_text(
        "split,file,reason\ntrain,c/1.png,outlier\ntrain,c/4.png,label_issue\nval,c/2.png,outlier\n"
    )
    used = read_used_split("train", tmp_path / "prepared", excluded=excluded)
    assert used.files == ["c/0.png", "c/2.png", "c/3.png", "c/5.png"]
    assert used.labels.tolist() == [0, 0, 1, 1]
    assert isinstance(used.images, KeptRows) and len(used.images) == 4
    # Batches index with sorted row numbers, as from the array itself.
    assert np.array_equal(used.images[np.array([1, 3])], images[[2, 5]])
    assert np.array_equal(used.images.astype("float32"), images[[0, 2, 3, 5]].astype("float32"))
    whole = read_used_split("train", tmp_path / "prepared", excluded=tmp_path / "none.csv")
    assert whole.files == read_split("train", tmp_path / "prepared").files == files


@pytest.mark.parametrize("mmap", [True, False])
def test_nothing_excluded_reads_the_prepared_split_unchanged(tmp_path, mmap):
    images, _ = split_on_disk(tmp_path)
    excluded = tmp_path / "excluded.csv"
    excluded.write_text("split,file,reason\n")
    used = read_used_split("train", tmp_path / "prepared", mmap=mmap, excluded=excluded)
    assert np.array_equal(np.asarray(used.images), images)
