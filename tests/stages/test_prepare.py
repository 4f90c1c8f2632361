"""stages/prepare.py on generated data: outputs, skipped files, counts, determinism."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgclf.data.prepared import read_split
from imgclf.images import load_image
from imgclf.stage_files import PreparedInfo
from stages import prepare
from support.images import image_bytes, random_rgb, write_class_folders
from support.project import ROOT


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder with params.yaml and a flat data/ holding good and bad files."""
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    data = tmp_path / "data"
    write_class_folders(data, ["cat", "dog"], per_class=20)
    (data / "cat" / "empty.jpg").write_bytes(b"")
    (data / "dog" / "notes.jpg").write_bytes(b"not an image at all")
    (data / "dog" / "cut.png").write_bytes(image_bytes(random_rgb(9, (64, 64)))[:-200])
    (data / "stray.png").write_bytes(image_bytes(random_rgb(10)))
    shutil.copy(data / "cat" / "000.png", data / "cat" / "copy-of-000.png")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def prepared_bytes(root: Path) -> dict[str, bytes]:
    files = [*sorted((root / "prepared").rglob("*")), root / "metrics" / "prepare.json"]
    return {str(p.relative_to(root)): p.read_bytes() for p in files if p.is_file()}


def test_prepare_writes_splits_and_reports_every_skipped_file(project):
    prepare.main()
    classes = PreparedInfo.load(project / "prepared")
    assert classes.class_names == ["cat", "dog"]
    size = classes.image_size
    splits = {s: read_split(s, project / "prepared") for s in ("train", "val", "test")}
    assert sum(len(s.labels) for s in splits.values()) == 41  # 40 + the exact copy
    for split in splits.values():
        assert split.images.shape[1:] == (size, size, 3) and split.images.dtype == np.uint8
        assert set(split.labels.tolist()) == {0, 1}
        assert len(split.files) == len(split.labels)
    # The stored pixels are exactly what the shared decoder gives for that file.
    first = splits["val"]
    assert np.array_equal(first.images[0], load_image(project / "data" / first.files[0], size))

    report = json.loads((project / "prepared" / "report.json").read_text())
    reasons = {item["path"]: item["reason"] for item in report["skipped"]}
    assert reasons == {
        "cat/empty.jpg": "empty file (0 bytes)",
        "dog/notes.jpg": "not an image Pillow can identify",
        "dog/cut.png": reasons["dog/cut.png"],
    }
    assert reasons["dog/cut.png"].startswith("cannot be decoded")
    assert report["not_in_a_class_folder"] == [
        {"path": "stray.png", "reason": "not inside a class folder"}
    ]

    metrics = json.loads((project / "metrics" / "prepare.json").read_text())
    assert (metrics["found"], metrics["used"], metrics["skipped"]) == (44, 41, 3)
    for split in metrics["splits"].values():
        assert split["found"] == split["used"] + split["skipped"]
        for counts in split["classes"].values():
            assert counts["found"] == counts["used"] + counts["skipped"]


def test_prepare_is_byte_identical_across_runs_and_worker_counts(project, monkeypatch):
    monkeypatch.setattr(prepare, "default_workers", lambda n: 1)
    prepare.main()
    in_process = prepared_bytes(project)
    monkeypatch.setattr(prepare, "default_workers", lambda n: 2)
    prepare.main()
    assert prepared_bytes(project) == in_process


def test_split_folders_with_leaked_duplicate(project):
    shutil.rmtree(project / "data")
    for split, count in (("train", 6), ("validation", 3), ("test", 3)):
        write_class_folders(project / "data" / split, ["cat", "dog"], count, seed=len(split))
    leaked = project / "data" / "test" / "dog" / "leak.png"
    shutil.copy(project / "data" / "train" / "dog" / "001.png", leaked)
    prepare.main()
    report = json.loads((project / "prepared" / "report.json").read_text())
    assert report["duplicates_removed"] == [
        {"removed": "test/dog/leak.png", "split": "test", "kept": "train/dog/001.png"}
    ]
    assert len(read_split("test", project / "prepared").labels) == 6
    assert len(read_split("val", project / "prepared").labels) == 6


@pytest.mark.parametrize(
    ("arrange", "message"),
    [
        (lambda data: shutil.rmtree(data), "data folder data/ not found"),
        (lambda data: shutil.rmtree(data / "dog"), "only one class folder"),
        (
            lambda data: [p.write_bytes(b"") for p in (data / "dog").iterdir()],
            "class 'dog' in the class folders has only 0",
        ),
    ],
    ids=["missing", "one-class", "class-all-bad"],
)
def test_user_errors_exit_with_one_clear_message(project, arrange, message):
    arrange(project / "data")
    result = subprocess.run(
        [sys.executable, str(ROOT / "stages" / "prepare.py")],
        capture_output=True,
        text=True,
        cwd=project,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_params_stop_the_stage_naming_the_key(project):
    text = (project / "params.yaml").read_text().replace("image_size: auto", "image_size: 4")
    (project / "params.yaml").write_text(text)
    result = subprocess.run(
        [sys.executable, str(ROOT / "stages" / "prepare.py")],
        capture_output=True,
        text=True,
        cwd=project,
    )
    assert result.returncode == 2
    assert "prepare.image_size = 4: should be greater than or equal to 32" in result.stderr
    assert not (project / "prepared").exists()


def test_auto_image_size_follows_the_data_and_an_explicit_size_wins(project):
    prepare.main()  # params.yaml says auto; the generated images are 40 px
    metrics = json.loads((project / "metrics" / "prepare.json").read_text())
    classes = PreparedInfo.load(project / "prepared")
    assert classes.image_size == metrics["image_size"] == 48
    assert classes.image_size_param == "auto"
    assert read_split("train", project / "prepared").images.shape[1] == 48
    text = (project / "params.yaml").read_text().replace("image_size: auto", "image_size: 36")
    (project / "params.yaml").write_text(text)
    prepare.main()
    assert PreparedInfo.load(project / "prepared").image_size == 36
    assert read_split("val", project / "prepared").images.shape[1] == 36


def test_grey_png_and_jpeg_of_the_same_class_both_used(project):
    Image.new("L", (30, 30), 128).save(project / "data" / "cat" / "grey.png")
    Image.new("CMYK", (30, 30), (0, 255, 0, 0)).save(project / "data" / "cat" / "cmyk.jpg")
    prepare.main()
    metrics = json.loads((project / "metrics" / "prepare.json").read_text())
    assert metrics["used"] == 43


def split_files(root: Path) -> dict[str, list[str]]:
    return {s: read_split(s, root / "prepared").files for s in ("train", "val", "test")}


def test_review_decisions_relabel_and_exclude_without_moving_any_other_image(project):
    prepare.main()
    before = split_files(project)
    relabelled, excluded, test_image = before["train"][0], before["val"][0], before["test"][0]
    other = "dog" if relabelled.startswith("cat/") else "cat"
    (project / "labels").mkdir()
    (project / "labels" / "decisions.csv").write_text(
        "file,action,label,finding,when\n"
        f"{relabelled},relabel,{other},label_issue,2026-12-06T10:00:00+00:00\n"
        f"{excluded},exclude,,outlier,\n"
        f"{test_image},exclude,,near_duplicate,\n"
        "cat/deleted-since.png,exclude,,,\n"
    )
    prepare.main()
    after = split_files(project)
    assert after["train"] == before["train"] and after["test"] == before["test"]
    assert after["val"] == before["val"][1:]  # only the excluded image is gone
    train = read_split("train", project / "prepared")
    classes = PreparedInfo.load(project / "prepared").class_names
    assert classes[train.labels[0]] == other
    metrics = json.loads((project / "metrics" / "prepare.json").read_text())
    assert metrics["review"] == {
        "relabelled": 1, "excluded": 1, "kept": 0, "not_found": 1, "test_unchanged": 1,
    }  # fmt: skip
    assert metrics["found"] == metrics["used"] + metrics["skipped"]  # nothing lost
    report = json.loads((project / "prepared" / "report.json").read_text())
    reasons = {item["path"]: item["reason"] for item in report["skipped"]}
    assert reasons[excluded] == "excluded in labels/decisions.csv"
    assert report["review"]["relabelled"] == [
        {"path": relabelled, "from": relabelled.split("/")[0], "to": other}
    ]
    assert report["review"]["decisions_not_found"] == ["cat/deleted-since.png"]


def test_a_bad_decisions_file_stops_prepare_naming_the_line(project):
    (project / "labels").mkdir()
    (project / "labels" / "decisions.csv").write_text(
        "file,action,label,finding,when\ncat/000.png,relabel,horse,,\n"
    )
    result = subprocess.run(
        [sys.executable, str(ROOT / "stages" / "prepare.py")],
        capture_output=True, text=True, cwd=project,
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "labels/decisions.csv:2: cat/000.png is relabelled as 'horse'" in result.stderr
