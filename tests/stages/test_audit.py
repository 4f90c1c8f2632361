"""The audit stage on tiny generated data: its outputs, planted faults found, exclusion."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from imgclf.audit import neighbours
from imgclf.data.prepared import read_split, read_used_split
from stages import audit, prepare
from support.project import ROOT, InProject, write_params

CLASSES = ["circle", "square", "star"]


def rows(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as table:
        return list(csv.DictReader(table))


@pytest.mark.slow  # the whole pipeline's fixture
def test_the_pipeline_audit_writes_every_output_and_excludes_nothing(trained_project):
    folder = trained_project / "audit"
    for name in ("label_issues.csv", "near_duplicates.csv", "outliers.csv", "excluded.csv"):
        assert (folder / name).is_file(), name
    assert (folder / "label_issues.png").stat().st_size > 1000
    assert rows(folder / "excluded.csv") == []
    metrics = json.loads((trained_project / "metrics" / "audit.json").read_text())
    files = metrics["files"]
    assert files["found"] == files["used"] + files["skipped"] + files["excluded"] == 24
    assert metrics["used"] == metrics["images"]
    for finding in ("label_issues", "near_duplicates", "outliers"):
        assert set(metrics[finding]) >= {"total", "splits", "classes"}


def smooth_image(class_index: int, seed: int) -> Image.Image:
    """A distinct picture in its class's colour: a smooth random pattern, not pixel noise
    (a copy of noise re-encoded as JPEG is another noise)."""
    rng = np.random.default_rng(seed)
    pattern = rng.uniform(0, 120, (5, 5, 3))
    pattern[..., class_index] += 135
    small = Image.fromarray(pattern.astype(np.uint8))
    return small.resize((40, 40), Image.Resampling.BICUBIC)


def plant(data) -> dict[str, str]:
    """A mislabelled image, a re-encoded copy and a foreign image in clean class folders."""
    for c, name in enumerate(CLASSES):
        (data / name).mkdir(parents=True)
        for i in range(16):
            smooth_image(c, 100 * c + i).save(data / name / f"{i:03d}.png")
    smooth_image(0, 999).save(data / "square" / "wrong.png")  # a circle
    copy = io.BytesIO()
    with Image.open(data / "star" / "003.png") as original:
        original.convert("RGB").save(copy, "JPEG", quality=92)
    (data / "star" / "copy.jpg").write_bytes(copy.getvalue())
    stripes = np.zeros((40, 40, 3), np.uint8)
    stripes[::4] = 255
    Image.fromarray(stripes).save(data / "circle" / "foreign.png")
    return {
        "wrong": "square/wrong.png",
        "copy": "star/copy.jpg",
        "original": "star/003.png",
        "foreign": "circle/foreign.png",
    }


@pytest.fixture(scope="module", params=["exact", "large-data path"])
def planted(request, tmp_path_factory):
    """The stage on tiny data with faults planted: as the sample runs, and on the path a
    data set above neighbours.EXACT_ROWS takes (float16 features, sampled fits, faiss;
    how well the approximate search finds neighbours is test_neighbours' and
    bench_scale's)."""
    project = tmp_path_factory.mktemp("audited")
    planted = plant(project / "data")
    write_params(
        project,
        audit={
            "exclude": ["label_issues", "near_duplicates", "outliers"],
            "outlier_z": 3,
        },
    )
    with InProject(project), pytest.MonkeyPatch.context() as patch:
        if request.param != "exact":
            # faiss searching all of its few groups, fits on every row: float16 features,
            # chunked projections and faiss' index, on data too small to sample.
            patch.setattr(neighbours, "EXACT_ROWS", 10)
        prepare.main()
        audit.main()
    return project, planted


def test_planted_faults_are_found(planted):
    project, files = planted
    issues = rows(project / "audit" / "label_issues.csv")
    split_of = {
        f: s for s in ("train", "val", "test") for f in read_split(s, project / "prepared").files
    }
    if split_of[files["wrong"]] != "test":  # labels are judged in train and val only
        first = issues[0]
        assert (first["file"], first["given"], first["suggested"]) == (
            files["wrong"],
            "square",
            "circle",
        )
    pairs = {
        frozenset((p["file"], p["duplicate_file"]))
        for p in rows(project / "audit" / "near_duplicates.csv")
    }
    assert frozenset((files["copy"], files["original"])) in pairs
    outliers = rows(project / "audit" / "outliers.csv")
    assert outliers and outliers[0]["file"] == files["foreign"]


def test_excluded_files_are_listed_counted_and_left_out_of_training(planted):
    project, _ = planted
    excluded = rows(project / "audit" / "excluded.csv")
    assert excluded and {e["split"] for e in excluded} <= {"train", "val"}
    assert {e["reason"] for e in excluded} <= {"label_issue", "near_duplicate", "outlier"}
    metrics = json.loads((project / "metrics" / "audit.json").read_text())
    files = metrics["files"]
    assert files["excluded"] == len(excluded) == metrics["excluded"]["total"]
    assert files["found"] == files["used"] + files["skipped"] + files["excluded"] == 51
    with InProject(project):
        for split in ("train", "val", "test"):
            used = read_used_split(split)
            assert len(used.labels) == metrics["used"][split]
            left_out = {e["file"] for e in excluded if e["split"] == split}
            assert not left_out & set(used.files)
            assert set(read_split(split).files) - set(used.files) == left_out


def imgclf_audit(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`imgclf audit ARGS...` with the repository's params, in a subprocess."""
    command = [sys.executable, "-m", "imgclf", "audit", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow  # CLI processes
def test_imgclf_audit_prints_the_findings_of_a_folder(tmp_path):
    files = plant(tmp_path / "photos")
    params = str(ROOT / "params.yaml")
    result = imgclf_audit(
        str(tmp_path / "photos"), "--params", params, "--csv-dir", str(tmp_path / "out")
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("51 images, 3 classes; 0 unusable")
    issues = out.split("likely label errors:")[1].split("near-duplicate pairs:")[0]
    assert f"{files['wrong']}  given square, suggested circle" in issues
    assert (
        f"{files['original']}  ~  {files['copy']}" in out
        or f"{files['copy']}  ~  {files['original']}" in out
    )
    assert (tmp_path / "out" / "label_issues.png").is_file()
    assert result.stderr == ""


@pytest.mark.slow  # CLI processes
def test_imgclf_audit_names_a_missing_folder_and_params(tmp_path):
    missing = imgclf_audit(str(tmp_path / "nope"), "--params", str(ROOT / "params.yaml"))
    assert missing.returncode == 2 and str(tmp_path / "nope") in missing.stderr
    no_params = imgclf_audit(str(tmp_path), "--params", str(tmp_path / "p.yaml"))
    assert no_params.returncode == 2 and "p.yaml not found" in no_params.stderr
