"""Training with several workers (MultiWorkerMirroredStrategy) through imgclf.distributed.

Real worker processes on 127.0.0.1, each bounded in time and stopped by the launcher.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import keras
import numpy as np
import pytest

from imgclf import models
from imgclf.data.prepared import read_split
from imgclf.training.distribute import WorkerRole, worker_role
from support.images import write_class_folders
from support.project import ROOT, InProject, tiny_params, write_params

pytestmark = pytest.mark.slow  # end to end: `make test-fast` leaves it out

TIMEOUT = 300  # seconds, for the whole launch


@pytest.fixture(scope="module")
def prepared_project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("multi-worker")
    write_class_folders(root / "data", ["circle", "square", "star"], per_class=24)
    write_params(
        root,
        train={**tiny_params()["train"], "epochs": 3, "batch_size": 12},
        resnet={**tiny_params()["resnet"], "weights": "none"},
    )
    from stages import prepare

    with InProject(root):
        prepare.main()
    return root


def launch(project: Path, workers: int, stage: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable, "-m", "imgclf.training.launcher", "--workers", str(workers),
        "--timeout", str(TIMEOUT - 30), str(ROOT / "stages" / "train.py"),
        stage.removeprefix("train_"),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TF_CONFIG", None)
    return subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, timeout=TIMEOUT
    )


def worker_scratch() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("imgclf-worker*")}


@pytest.mark.parametrize(
    "stage, model_name",
    [(family.stage, family.name) for family in models.families()],
)
def test_two_workers_train_and_only_the_chief_writes(prepared_project, stage, model_name):
    before = worker_scratch()
    for output in ("models", "metrics", "dvclive"):
        subprocess.run(["rm", "-rf", str(prepared_project / output / model_name)], check=True)
    result = launch(prepared_project, 2, stage)
    assert result.returncode == 0, result.stdout[-4000:]
    lines = result.stdout.splitlines()
    assert any(line.startswith("[worker 0] ") for line in lines)
    assert any(
        line.startswith("[worker 1] ") and "this worker wrote none" in line for line in lines
    )
    metrics = json.loads((prepared_project / "metrics" / f"{model_name}.json").read_text())
    assert metrics["workers"] == 2 and metrics["epochs_trained"] == 3
    curve = (
        prepared_project / "dvclive" / model_name / "plots" / "metrics" / "eval" / "accuracy.tsv"
    )
    assert len(curve.read_text().splitlines()) == 1 + 3  # one set of curves, one row per epoch
    assert worker_scratch() == before  # the other worker removed what it wrote
    model = keras.models.load_model(prepared_project / "models" / model_name / "model.keras")
    val = read_split("val", prepared_project / "prepared")
    probabilities = model.predict(val.images.astype("float32"), verbose=0)
    assert probabilities.shape == (len(val.labels), 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    accuracy = float((probabilities.argmax(axis=1) == val.labels).mean())
    assert accuracy == pytest.approx(metrics["val_accuracy"], abs=1e-6)


def test_one_and_two_workers_reach_similar_accuracy(prepared_project):
    accuracy = {}
    for workers in (1, 2):
        result = launch(prepared_project, workers, "train_cnn")
        assert result.returncode == 0, result.stdout[-4000:]
        metrics = json.loads((prepared_project / "metrics" / "cnn.json").read_text())
        assert metrics["workers"] == workers
        accuracy[workers] = metrics["val_accuracy"]
    assert min(accuracy.values()) > 0.6  # well above chance (1/3) for both
    assert abs(accuracy[1] - accuracy[2]) <= 0.15, accuracy


def test_a_failing_worker_stops_the_others_and_sets_the_status(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(
        "import json, os, sys, time\n"
        "index = json.loads(os.environ['TF_CONFIG'])['task']['index']\n"
        "print('started', flush=True)\n"
        "if index == 1:\n    sys.exit(3)\n"
        "time.sleep(60)\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "imgclf.training.launcher", "--workers", "2", str(script)],
        cwd=tmp_path, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 3
    assert "[worker 0] started" in result.stdout and "[worker 1] started" in result.stdout
    assert "a worker failed (exit status 3)" in result.stdout


def test_worker_role_reads_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert worker_role() == WorkerRole(0, 1) and worker_role().is_chief
    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]}
    monkeypatch.setenv(
        "TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 2}})
    )
    assert worker_role() == WorkerRole(2, 3) and not worker_role().is_chief
    with_chief = {"chief": ["127.0.0.1:0"], **cluster}
    monkeypatch.setenv(
        "TF_CONFIG", json.dumps({"cluster": with_chief, "task": {"type": "chief", "index": 0}})
    )
    assert worker_role() == WorkerRole(0, 4) and worker_role().is_chief
