"""This project as tests and benchmarks run it: throwaway git + DVC copies, tiny params, a cwd."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ruamel.yaml import YAML

from imgclf import models

ROOT = Path(__file__).resolve().parents[1]
# Results of the committed run: a copy makes its own.
LEFT_OUT = ("dvc-sample-remote/", "metrics/", "audit/", "dvc.lock")


def copy_tracked_files(dest: Path) -> None:
    """Copy the files git tracks in this checkout (code, params, dvc.yaml) into `dest`."""
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    for name in tracked:
        if name.startswith(LEFT_OUT) or not (ROOT / name).is_file():
            continue
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest / name)


def project_env(repo: Path) -> dict[str, str]:
    """The environment to run `dvc` in a copy: this venv's tools, the copy's own package."""
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(repo),
        "KERAS_HOME": str(repo / ".keras-home"),  # never the user's cached weights
        "GIT_AUTHOR_NAME": "imgclf", "GIT_AUTHOR_EMAIL": "imgclf@example.com",
        "GIT_COMMITTER_NAME": "imgclf", "GIT_COMMITTER_EMAIL": "imgclf@example.com",
    }  # fmt: skip


def set_params(repo: Path, changes: dict[str, dict]) -> None:
    """Update groups of the copy's params.yaml, keeping its comments."""
    yaml = YAML(typ="rt")
    params = yaml.load((repo / "params.yaml").read_text())
    for group, values in changes.items():
        params.setdefault(group, {}).update(values)
    with open(repo / "params.yaml", "w") as f:
        yaml.dump(params, f)


def commit_copy(repo: Path, env: dict[str, str]) -> None:
    """git init the copy, track its data/ with DVC, and commit everything."""
    for command in (
        ["git", "init", "-q"],
        ["dvc", "add", "-q", "data"],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "start"],
    ):
        result = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{command} failed:\n{result.stdout}\n{result.stderr}")


SHARED_TINY = {
    "prepare": {"image_size": 32, "val_fraction": 0.25, "test_fraction": 0.25},
    "train": {"epochs": 2, "batch_size": 8, "early_stopping_patience": 0},
}


def tiny_params() -> dict[str, dict]:
    """Params changes for a project that trains in seconds: every registered family's own
    `tiny_params` (its registry entry), and small shared groups."""
    return {**SHARED_TINY, **{f.name: dict(f.tiny_params) for f in models.families()}}


def write_params(project: Path, **changes: dict) -> None:
    """The repository's params.yaml in `project`, with tiny_params() and `changes` applied
    (a group params.yaml lacks, such as a test's own family's, is added)."""
    shutil.copy(ROOT / "params.yaml", project / "params.yaml")
    set_params(project, {**tiny_params(), **changes})


class InProject:
    """Run stage code with the project folder as the working directory."""

    def __init__(self, project: Path) -> None:
        self.project = project

    def __enter__(self) -> Path:
        self.previous = Path.cwd()
        os.chdir(self.project)
        return self.project

    def __exit__(self, *exc_info: object) -> None:
        os.chdir(self.previous)


def model_metrics(project: Path, name: str) -> dict:
    return json.loads((project / "metrics" / f"{name}.json").read_text())


def read_timings(project: Path) -> dict[str, float]:
    """Each stage's wall time, from timings/<stage>.json (a trainer's: `train_seconds`)."""
    seconds = {}
    for path in sorted((project / "timings").glob("*.json")):
        measured = json.loads(path.read_text())
        seconds[path.stem] = measured.get("train_seconds", measured.get(f"{path.stem}_seconds"))
    return seconds
