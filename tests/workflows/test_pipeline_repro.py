"""The DVC workflow end to end, in a temporary git copy of the repository on generated data."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from imgclf import models
from support.images import write_class_folders
from support.project import (
    ROOT,
    commit_copy,
    copy_tracked_files,
    project_env,
    set_params,
    tiny_params,
)

pytestmark = pytest.mark.slow  # end to end: `make test-fast` leaves it out

# Every family at its tiny settings; ResNet50 from a random base (no weights file here).
SMALL = {**tiny_params(), "resnet": {**tiny_params()["resnet"], "weights": "none"}}


TRAINERS = {family.stage for family in models.families()}


def run(command: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result


def fresh_repo(tmp_path_factory) -> tuple[Path, dict]:
    """A git repository holding this project's tracked files and a small generated data/."""
    repo = tmp_path_factory.mktemp("repo")
    copy_tracked_files(repo)
    write_class_folders(repo / "data", ["cat", "dog"], per_class=10)
    set_params(repo, SMALL)
    env = project_env(repo)
    commit_copy(repo, env)
    return repo, env


# Each test leaves the repository as it found it (committed, clean), so they pass in any
# order (`make test` runs them shuffled).
@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> tuple[Path, dict]:
    return fresh_repo(tmp_path_factory)


@pytest.fixture(scope="module")
def first_run(repo) -> str:
    """`dvc repro` of the whole pipeline, committed; what it printed."""
    path, env = repo
    first = run(["dvc", "repro"], path, env)
    run(["git", "add", "-A"], path, env)
    run(["git", "commit", "-qm", "first run"], path, env)
    return first.stdout


def ran_stages(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


def test_prepare_alone_then_nothing_to_do(tmp_path_factory):
    path, env = fresh_repo(tmp_path_factory)
    first = run(["dvc", "repro", "prepare"], path, env)
    assert ran_stages(first.stdout) == {"prepare"}
    metrics = json.loads((path / "metrics" / "prepare.json").read_text())
    assert metrics["found"] == metrics["used"] == 20
    assert ran_stages(run(["dvc", "repro", "prepare"], path, env).stdout) == set()


def test_whole_pipeline_then_only_what_changed(repo, first_run):
    path, env = repo
    assert ran_stages(first_run) == {"prepare", "audit", *TRAINERS, "compare", "export"}
    assert (path / "models" / "best" / "model.keras").is_file()
    assert ran_stages(run(["dvc", "repro"], path, env).stdout) == set()
    # Running every stage again on the same machine changes nothing git or DVC tracks:
    # no timings in the metrics, no save times in the models (dvc.lock holds their md5s).
    run(["dvc", "repro", "--force"], path, env)
    assert run(["git", "status", "--porcelain"], path, env).stdout == ""
    assert (path / "timings" / "train_cnn.json").is_file()  # the wall times, untracked

    set_params(path, {"cnn": {"dense_units": 6}})
    changed = run(["dvc", "repro"], path, env)
    assert ran_stages(changed.stdout) == {"train_cnn", "compare", "export"}
    params_diff = run(["dvc", "params", "diff"], path, env).stdout
    assert "cnn.dense_units" in params_diff
    assert "metrics/cnn.json" in run(["dvc", "metrics", "diff"], path, env).stdout

    run(["dvc", "plots", "show", "--out", "plots-html"], path, env)
    page = (path / "plots-html" / "index.html").read_text()
    assert "Loss per epoch" in page and "CNN confusion matrix" in page
    assert "cdn.jsdelivr.net" not in page  # Vega is inlined: the page renders offline
    assert "Risk-coverage on validation" in page
    pairs = json.loads((path / "evaluation" / "confused_pairs.json").read_text())
    assert ("Most confused classes" in page) == bool(pairs)  # DVC leaves out empty plots
    # The mistakes gallery is an image plot, copied beside the page.
    assert "evaluation_mistakes.png" in page
    assert next((path / "plots-html" / "static").glob("*mistakes.png")).stat().st_size > 1000
    assert "audit_label_issues.png" in page  # and the audit's gallery of likely label errors
    run(["git", "add", "-A"], path, env)
    run(["git", "commit", "-qm", "smaller cnn"], path, env)


def test_experiment_reruns_both_trainers_and_is_listed(repo, first_run):
    path, env = repo
    # In a temporary copy: the workspace keeps the committed run.
    experiment = run(["dvc", "exp", "run", "--temp", "-S", "train.epochs=1"], path, env)
    assert ran_stages(experiment.stdout) == {*TRAINERS, "compare", "export"}
    table = run(["dvc", "exp", "show", "--csv"], path, env).stdout
    rows = list(csv.DictReader(io.StringIO(table)))
    tried = [row for row in rows if row["train.epochs"] == "1" and row["Experiment"]]
    assert len(tried) == 1
    for model in (family.name for family in models.families()):
        assert tried[0][f"metrics/{model}.json:epochs_trained"] == "1"
        assert 0 <= float(tried[0][f"metrics/{model}.json:val_accuracy"]) <= 1
    assert run(["git", "status", "--porcelain"], path, env).stdout == ""


def test_no_stage_output_can_be_pushed_into_the_sample_remote():
    stages = YAML(typ="safe").load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        for out in stage.get("outs", []) + stage.get("metrics", []):
            ((path, options),) = out.items()
            in_git = options.get("cache") is False
            assert in_git or options.get("push") is False, f"{name}: {path} would be pushed"
        for metrics in stage.get("metrics", []):
            ((path, options),) = metrics.items()
            assert options.get("cache") is False, f"{name}: {path} should live in git"
