"""bench/measure.py: what the benchmarks' timings rest on."""

from __future__ import annotations

import sys

import pytest

from bench.measure import run_measured, stage_script


def test_stage_script_names_the_stage_a_process_runs():
    assert stage_script(["python", "stages/train.py", "cnn"]) == "train_cnn"
    assert stage_script(["python", "stages/prepare.py"]) == "prepare"
    assert stage_script(["/venv/bin/python3", "/tmp/p/stages/audit.py", "--x"]) == "audit"
    assert stage_script(["python", "-m", "bench.reference"]) is None
    assert stage_script(["python", "scripts/stages.py"]) is None


@pytest.mark.slow  # stage processes
def test_each_stage_process_is_timed_within_the_run(tmp_path):
    stages = tmp_path / "stages"
    stages.mkdir()
    (stages / "slow.py").write_text("import time\ntime.sleep(3)\n")
    (stages / "quick.py").write_text("")
    # A parent that starts the stages one after the other, as `dvc repro` does.
    parent = (
        "import subprocess, sys\n"
        "for stage in ('quick', 'slow'):\n"
        "    subprocess.run([sys.executable, f'stages/{stage}.py'], check=True)\n"
    )
    measured = run_measured([sys.executable, "-c", parent], tmp_path, label=stage_script)
    assert set(measured.labelled_seconds) <= {"quick", "slow"}
    assert 0.5 <= measured.labelled_seconds["slow"] <= measured.seconds
    unlabelled = run_measured([sys.executable, "-c", parent], tmp_path)
    assert unlabelled.labelled_seconds == {}
    assert measured.then(unlabelled).labelled_seconds == measured.labelled_seconds
