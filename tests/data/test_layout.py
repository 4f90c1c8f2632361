"""imgclf.data.layout: flat class folders or train/val/test split folders."""

from __future__ import annotations

import pytest

from imgclf.data.layout import DataError, find_layout


def touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_flat_layout_sorts_classes_and_files(tmp_path):
    for name in ("dogs/b.jpg", "dogs/a.jpg", "cats/x.png", "cats/sub/y.png"):
        touch(tmp_path / name)
    layout = find_layout(tmp_path)
    assert layout.kind == "flat"
    assert layout.class_names == ["cats", "dogs"]
    assert [f.path for f in layout.files] == [
        "cats/sub/y.png",
        "cats/x.png",
        "dogs/a.jpg",
        "dogs/b.jpg",
    ]
    assert all(f.split is None for f in layout.files)


@pytest.mark.parametrize("val_name", ["val", "validation", "valid"])
def test_split_layout_accepts_val_aliases(tmp_path, val_name):
    for split in ("train", val_name, "test"):
        for name in ("cats", "dogs"):
            touch(tmp_path / split / name / "1.png")
    layout = find_layout(tmp_path)
    assert layout.kind == "splits"
    assert layout.given_splits == ["train", "val", "test"]
    assert {(f.split, f.class_name) for f in layout.files} == {
        (s, c) for s in ("train", "val", "test") for c in ("cats", "dogs")
    }


def test_split_layout_without_test_folder(tmp_path):
    for split in ("train", "val"):
        for name in ("cats", "dogs"):
            touch(tmp_path / split / name / "1.png")
    assert find_layout(tmp_path).given_splits == ["train", "val"]


def test_stray_and_hidden_files_are_reported_not_lost(tmp_path):
    touch(tmp_path / "cats/1.png")
    touch(tmp_path / "dogs/1.png")
    touch(tmp_path / "README.txt")
    touch(tmp_path / ".cache/thing.png")
    layout = find_layout(tmp_path)
    assert layout.class_names == ["cats", "dogs"]
    assert dict(layout.stray) == {
        "README.txt": "not inside a class folder",
        ".cache/thing.png": "inside a hidden folder",
    }


def test_missing_data_folder(tmp_path):
    with pytest.raises(DataError, match=r"nowhere/ not found.*dvc pull data.dvc"):
        find_layout(tmp_path / "nowhere")


def test_empty_data_folder(tmp_path):
    with pytest.raises(DataError, match="has no class folders"):
        find_layout(tmp_path)


def test_one_class_is_not_enough(tmp_path):
    touch(tmp_path / "cats/1.png")
    with pytest.raises(DataError, match=r"only one class folder \(cats/\).*at least 2"):
        find_layout(tmp_path)


def test_split_folders_need_the_same_classes(tmp_path):
    touch(tmp_path / "train/cats/1.png")
    touch(tmp_path / "train/dogs/1.png")
    touch(tmp_path / "val/cats/1.png")
    touch(tmp_path / "val/birds/1.png")
    with pytest.raises(DataError, match=r"val/ has different classes.*missing: dogs; extra: birds"):
        find_layout(tmp_path)


def test_split_folders_need_train(tmp_path):
    touch(tmp_path / "val/cats/1.png")
    touch(tmp_path / "val/dogs/1.png")
    with pytest.raises(DataError, match="no train/ folder"):
        find_layout(tmp_path)


def test_two_folders_for_one_split(tmp_path):
    for split in ("train", "val", "validation"):
        touch(tmp_path / split / "cats/1.png")
        touch(tmp_path / split / "dogs/1.png")
    with pytest.raises(DataError, match="both val/ and validation/"):
        find_layout(tmp_path)


def test_split_and_class_folders_mixed(tmp_path):
    touch(tmp_path / "train/cats/1.png")
    touch(tmp_path / "train/dogs/1.png")
    touch(tmp_path / "horses/1.png")
    with pytest.raises(
        DataError, match=r"mixes split folders \(train\) with other folders \(horses\)"
    ):
        find_layout(tmp_path)
