"""scripts/sweep.py: a grid through DVC's queue with two workers, every point finished
with its metrics and logs, the best applied, and the workspace then up to date."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from ruamel.yaml import YAML

from support.images import write_class_folders
from support.project import ROOT, commit_copy, copy_tracked_files, project_env, write_params

pytestmark = pytest.mark.slow  # a tiny pipeline, then four experiments: a few minutes

# Four points, none the baseline's (dropout 0.3, 8 units): each re-runs train_cnn onwards.
GRID = ["-S", "cnn.dropout=0.1,0.2", "-S", "cnn.dense_units=12,16"]


def run(command: list[str], project, env, timeout: float = 900) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip
    assert done.returncode == 0, f"{command}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_a_sweep_runs_every_point_in_parallel_and_applies_the_best(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    copy_tracked_files(project)
    write_class_folders(project / "data", ["circle", "square", "star"], per_class=8)
    write_params(project, export={"formats": []})  # conversions are not what is tested here
    env = project_env(project)
    commit_copy(project, env)
    run(["dvc", "repro", "-q"], project, env)
    run(["git", "add", "-A"], project, env)
    run(["git", "commit", "-qm", "baseline"], project, env)

    swept = run(
        [sys.executable, str(ROOT / "scripts" / "sweep.py"), *GRID, "-j", "2"], project, env
    )
    assert "sweep: 4 experiments, 2 workers" in swept.stdout

    shown = json.loads(run(["dvc", "exp", "show", "--json"], project, env).stdout)
    experiments = [
        rev for commit in shown for experiment in commit.get("experiments") or []
        for rev in experiment["revs"]
    ]  # fmt: skip
    points = set()
    for experiment in experiments:
        data = experiment["data"]
        cnn = data["params"]["params.yaml"]["data"]["cnn"]
        points.add((cnn["dropout"], cnn["dense_units"]))
        assert {"metrics/compare.json", "metrics/export.json"} <= set(data["metrics"])
        logs = run(["dvc", "queue", "logs", experiment["name"]], project, env).stdout
        assert "Running stage 'train_cnn'" in logs and "export:" in logs  # its own, whole
    assert points == {(0.1, 12), (0.1, 16), (0.2, 12), (0.2, 16)}  # none lost, none twice

    def score(experiment: dict) -> float:
        compare = experiment["data"]["metrics"]["metrics/compare.json"]["data"]
        return compare[f"{compare['selected']}_{compare['metric']}"]

    best = max(experiments, key=score)
    assert f"best by val_accuracy: {best['name']}" in swept.stdout
    applied = YAML(typ="safe").load((project / "params.yaml").read_text())["cnn"]
    chosen = best["data"]["params"]["params.yaml"]["data"]["cnn"]
    assert (applied["dropout"], applied["dense_units"]) == (
        chosen["dropout"],
        chosen["dense_units"],
    )
    status = run(["dvc", "status"], project, env).stdout
    assert "up to date" in status  # `dvc repro` after applying has nothing to do


def sweep_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("sweep", ROOT / "scripts" / "sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("point", "matched"),
    [(["cnn.dropout=0.1"], True), (["cnn.learning_rate=1e-3"], True),
     (["cnn.dropout=0.1", "train.optimizer=adamw"], True), (["cnn.dropout=0.2"], False),
     (["train.optimizer=sgd"], False), (["cnn.filters=[8]"], False)],
)  # fmt: skip
def test_a_finished_point_is_recognised_by_its_params(point, matched):
    # What decides which points a failed parallel run queues again.
    experiment = {"params": {"params.yaml.cnn.dropout": 0.1, "params.yaml.cnn.learning_rate": 0.001,
                             "params.yaml.train.optimizer": "adamw"}}  # fmt: skip
    assert sweep_module().matches(experiment, point) is matched


def test_the_grid_is_every_combination_and_a_bad_setting_is_named():
    sweep = sweep_module()
    assert sweep.grid(["a.x=1,2", "b.y=3"]) == [["a.x=1", "b.y=3"], ["a.x=2", "b.y=3"]]
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        sweep.grid(["cnn.dropout"])
