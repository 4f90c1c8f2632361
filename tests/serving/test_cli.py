"""python -m imgclf predict: one JSON line per image, per-file errors, honest exit codes."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from imgclf.data.prepared import read_split
from imgclf.images import load_image
from imgclf.serving.predictor import Predictor
from support.images import image_bytes, random_rgb


def run_cli(*args: str, cwd, command: str = "predict") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "imgclf", command, *args], capture_output=True, text=True, cwd=cwd
    )


@pytest.mark.slow
def test_predicts_good_files_and_reports_bad_ones(trained_project, tmp_path):
    good = trained_project / "data" / "star" / "000.png"
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    result = run_cli(
        str(good), str(text), str(tmp_path / "missing.png"), "--top-k", "2", cwd=trained_project
    )
    assert result.returncode == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["file"] for line in lines] == [str(good), str(text), str(tmp_path / "missing.png")]
    assert lines[0]["prediction"] in {"circle", "square", "star"}
    assert 0 < lines[0]["confidence"] <= 1 and len(lines[0]["probabilities"]) == 2
    assert "not a usable image" in lines[1]["error"]
    assert "No such file" in lines[2]["error"]
    assert "2 of 3 file(s) could not be predicted" in result.stderr


@pytest.mark.slow
def test_explain_writes_a_heatmap_beside_the_answer(trained_project, tmp_path):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(image_bytes(random_rgb(5, (90, 60)), "JPEG"))
    result = run_cli(str(photo), cwd=trained_project, command="explain")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["heatmap"] == str(tmp_path / "photo_heatmap.png")
    assert answer["prediction"] in {"circle", "square", "star"} and "uncertain" in answer
    from PIL import Image

    with Image.open(tmp_path / "photo_heatmap.png") as heatmap:
        assert heatmap.format == "PNG" and heatmap.size == (224, 224)
    chosen = tmp_path / "out" / "map.png"
    chosen.parent.mkdir()
    assert (
        run_cli(str(photo), "-o", str(chosen), cwd=trained_project, command="explain").returncode
        == 0
    )
    assert chosen.is_file()
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    failed = run_cli(str(text), cwd=trained_project, command="explain")
    assert failed.returncode == 1 and "not a usable image" in failed.stderr


@pytest.mark.slow
def test_a_successful_run_is_quiet_and_verbose_shows_tensorflow(trained_project):
    good = trained_project / "data" / "star" / "000.png"
    quiet = run_cli(str(good), cwd=trained_project)
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert json.loads(quiet.stdout)["prediction"] in {"circle", "square", "star"}
    verbose = run_cli(str(good), "-v", cwd=trained_project)
    assert verbose.returncode == 0 and verbose.stdout == quiet.stdout


@pytest.mark.slow
def test_folders_are_walked_in_batches_and_written_as_a_table(trained_project, tmp_path):
    folder = tmp_path / "photos"
    (folder / "holiday").mkdir(parents=True)
    (folder / ".thumbnails").mkdir()
    for number in range(5):
        image = image_bytes(random_rgb(number, (50, 40)), "JPEG")
        (folder / "holiday" / f"{number}.jpg").write_bytes(image)
    phone = image_bytes(random_rgb(5, (40, 50)), "HEIF")  # how phones save photos
    (folder / "holiday" / "5.heic").write_bytes(phone)
    (folder / "broken.png").write_bytes(b"not a png")
    (folder / "notes.txt").write_text("not an image, not listed")
    (folder / ".thumbnails" / "0.jpg").write_bytes(image_bytes(random_rgb(9), "JPEG"))
    table = tmp_path / "out.csv"
    result = run_cli(str(folder), "--csv", str(table), cwd=trained_project)
    assert result.returncode == 1  # one broken file
    assert "1 of 7 file(s) could not be predicted" in result.stderr
    rows = list(csv.DictReader(table.open()))
    assert [Path(row["file"]).name for row in rows] == [
        "broken.png",
        *(f"{n}.jpg" for n in range(5)),
        "5.heic",
    ]
    assert "not a usable image" in rows[0]["error"] and rows[0]["prediction"] == ""
    for row in rows[1:]:
        assert row["prediction"] in {"circle", "square", "star"} and row["error"] == ""
        assert 0 < float(row["confidence"]) <= 1 and row["uncertain"] in {"True", "False"}
        assert row["top_classes"].startswith(row["prediction"] + " ")
    # The same answers as one file at a time, whatever the batch.
    single = json.loads(run_cli(rows[3]["file"], cwd=trained_project).stdout)
    assert single["prediction"] == rows[3]["prediction"]
    assert float(rows[3]["confidence"]) == pytest.approx(single["confidence"], abs=1e-4)


@pytest.mark.slow
def test_a_terminal_gets_a_progress_bar(trained_project, tmp_path):
    import fcntl
    import os
    import pty
    import struct
    import termios

    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    command = [sys.executable, "-m", "imgclf", "predict", "data", "--csv", str(tmp_path / "t.csv")]
    process = subprocess.Popen(
        command, cwd=trained_project, stdout=subprocess.DEVNULL, stderr=terminal,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        shown += chunk
    assert process.wait(timeout=120) == 0
    os.close(controller)
    assert b"image/s" in shown and b"/24 " in shown  # tqdm's bar over the 24 images
    assert len((tmp_path / "t.csv").read_text().splitlines()) == 1 + 24


@pytest.mark.parametrize("decode_threads", [1, 3])
def test_batches_keep_order_and_errors_in_place(tiny_project, decode_threads):
    from imgclf.serving import batch_predict

    predictor = Predictor.load(tiny_project / "models" / "best")
    good = sorted(str(p) for p in (tiny_project / "data").rglob("*.png"))[:13]
    # Batches of 2: more batches than are decoded ahead, one of them all errors.
    files = [good[0], "/no/such/file.png", "/no/such/other.png", "/no/such/third.png", *good[1:]]
    answers = list(
        batch_predict.predict_files(
            predictor, files, None, batch_size=2, decode_threads=decode_threads
        )
    )
    assert [a["file"] for a in answers] == files
    assert all("cannot read" in answer["error"] for answer in answers[1:4])
    for answer, name in zip([answers[0], *answers[4:]], good, strict=True):
        expected = predictor.predict(name)
        assert answer["prediction"] == expected["prediction"]
        assert answer["confidence"] == pytest.approx(expected["confidence"], abs=1e-5)


def test_without_an_export_it_says_how_to_make_one(tmp_path):
    result = run_cli("x.png", cwd=tmp_path)
    assert result.returncode == 2
    assert "no exported model in models/best/" in result.stderr and "dvc repro" in result.stderr


def test_predictor_matches_the_exported_model_on_prepared_pixels(tiny_project, tmp_path):
    predictor = Predictor.load(tiny_project / "models" / "best")
    path = tmp_path / "photo.jpg"
    path.write_bytes(image_bytes(random_rgb(3, (70, 50)), "JPEG"))
    # The CLI, prepare and the web app share one decoder: same file, same model input.
    assert np.array_equal(predictor.pixels(path), load_image(path, predictor.image_size))
    test = read_split("test", tiny_project / "prepared")
    first = tiny_project / "data" / test.files[0]
    assert np.array_equal(predictor.pixels(first), test.images[0])
    answer = predictor.predict(first)
    assert sum(answer["probabilities"].values()) == pytest.approx(1, abs=1e-5)
