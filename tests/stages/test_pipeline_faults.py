"""The pipeline's own faults lose nothing: a killed export, a full disk in prepare or export.

The full-disk tests mount a small tmpfs (they need root, as CI runs them; elsewhere
they skip, saying so) and run the real stage scripts in it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imgclf.serving.predictor import Predictor
from support.images import write_class_folders
from support.project import ROOT, write_params

pytestmark = pytest.mark.slow  # real stage processes: `make test-fast` leaves them out


def stage(name: str, project: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KERAS_HOME": str(project / ".keras-home")}
    return subprocess.run(
        [sys.executable, str(ROOT / "stages" / f"{name}.py")],
        cwd=project, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def export_files(export: Path) -> dict[str, bytes]:
    return {str(p.relative_to(export)): p.read_bytes() for p in export.rglob("*") if p.is_file()}


@pytest.fixture
def project(trained_project, tmp_path) -> Path:
    copy = tmp_path / "project"
    shutil.copytree(trained_project, copy)
    return copy


def test_an_export_killed_midway_leaves_the_previous_one_and_the_next_run_cleans_up(project):
    before = export_files(project / "models" / "best")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KERAS_HOME": str(project / ".keras-home")}
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "stages" / "export.py")], cwd=project, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    staging = project / "models" / ".best.staging"
    deadline = time.monotonic() + 120
    while not staging.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert staging.exists(), "export never started writing its staging directory"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert export_files(project / "models" / "best") == before
    Predictor.load(project / "models" / "best")  # complete and servable
    again = stage("export", project)
    assert again.returncode == 0, again.stderr[-2000:]
    assert not staging.exists() and not (project / "models" / ".best.retired").exists()
    Predictor.load(project / "models" / "best")


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of 3 MiB at tmp_path/disk, unmounted afterwards (root only)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs these tests as root)")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def resize(disk: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(disk)], check=True)


def test_prepare_on_a_full_disk_says_so_and_keeps_the_previous_prepared(small_disk):
    write_class_folders(small_disk / "data", ["cat", "dog"], per_class=12)
    write_params(
        small_disk, prepare={"image_size": 32, "val_fraction": 0.25, "test_fraction": 0.25}
    )
    assert stage("prepare", small_disk).returncode == 0
    before = json.loads((small_disk / "prepared" / "classes.json").read_text())
    # 24 images at 256 px are 4.7 MB of arrays: more than the disk holds.
    write_params(
        small_disk, prepare={"image_size": 256, "val_fraction": 0.25, "test_fraction": 0.25}
    )
    full = stage("prepare", small_disk)
    assert full.returncode == 2, full.stderr[-2000:]
    assert "no space left on device" in full.stderr and "prepared" in full.stderr
    assert "Traceback" not in full.stderr
    assert json.loads((small_disk / "prepared" / "classes.json").read_text()) == before
    assert not (small_disk / ".prepared.staging").exists()  # nothing half-written left
    resize(small_disk, "16m")
    assert stage("prepare", small_disk).returncode == 0
    assert json.loads((small_disk / "prepared" / "classes.json").read_text())["image_size"] == 256


def test_export_on_a_full_disk_says_so_and_keeps_the_previous_export(trained_project, small_disk):
    project = small_disk / "project"
    # tmpfs takes memory only for what it holds; two exports of a ResNet50 in every
    # format (the tiny run's winner may be it) take about 1.7 GB.
    resize(small_disk, "4g")
    selected = json.loads((trained_project / "metrics" / "compare.json").read_text())["selected"]
    # What export reads: the winner's model, not the other candidates'.
    unread = {f.name for f in (trained_project / "models").iterdir()} - {selected, "best"}
    shutil.copytree(
        trained_project, project, ignore=lambda folder, names: [
            n for n in names if n in {"data", ".keras-home"} or
            (Path(folder).name == "models" and n in unread)
        ],
    )  # fmt: skip
    before = export_files(project / "models" / "best")
    used = int(subprocess.run(["df", "--output=used", "-k", str(small_disk)], capture_output=True,
                              text=True, check=True).stdout.split()[-1])  # fmt: skip
    resize(small_disk, f"{used + 16}k")  # too small for a second export
    full = stage("export", project)
    assert full.returncode == 2, full.stderr[-2000:]
    assert "no space left on device" in full.stderr and "Traceback" not in full.stderr
    assert export_files(project / "models" / "best") == before
    assert not (project / "models" / ".best.staging").exists()
    resize(small_disk, "4g")
    again = stage("export", project)
    assert again.returncode == 0, again.stderr[-2000:]
    Predictor.load(project / "models" / "best")
