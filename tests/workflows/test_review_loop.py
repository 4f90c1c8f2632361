"""The review loop end to end, in a temporary git copy: `dvc repro`, accept the audit's
suggestions in `imgclf review`, `dvc repro` again, and see what moved."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from imgclf.data.prepared import read_split
from support.images import write_class_folders
from support.project import commit_copy, copy_tracked_files, project_env, set_params, tiny_params
from support.review import review_client

pytestmark = pytest.mark.slow  # trains every family twice: `make test-fast` leaves it out

CLASSES = ["blue", "green", "red"]  # class_image: one colour each, easy for any features
# Every family at its tiny settings; ResNet50 from a random base (no weights file here).
SMALL = {**tiny_params(), "resnet": {**tiny_params()["resnet"], "weights": "none"}}
FLIPPED = 6  # images filed under the wrong colour


def run(command: list[str], cwd: Path, env: dict) -> str:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def changed_files(repo: Path, env: dict) -> set[str]:
    status = run(["git", "status", "--porcelain", "--untracked-files=all"], repo, env)
    return {line[3:] for line in status.splitlines()}


def test_accepting_the_suggestions_fixes_labels_through_dvc_repro(tmp_path):
    repo = tmp_path / "repo"
    copy_tracked_files(repo)
    write_class_folders(repo / "data", ["red", "green", "blue"], per_class=24)
    # Plant wrong labels: a few images of each colour moved into another colour's folder.
    for n in range(FLIPPED):
        source = repo / "data" / CLASSES[n % 3] / f"{n + 1:03d}.png"
        shutil.move(source, repo / "data" / CLASSES[(n + 1) % 3] / f"flipped_{n}.png")
    set_params(repo, {**SMALL, "prepare": {**SMALL["prepare"], "test_fraction": 0.2}})
    env = project_env(repo)
    commit_copy(repo, env)
    run(["dvc", "repro"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "first run"], repo, env)
    before = {name: json.loads((repo / "metrics" / f"{name}.json").read_text())
              for name in ("audit", "export")}  # fmt: skip

    # What a reviewer does on the page: take every suggestion (the 'a' key, or its button).
    client = review_client(repo)
    state = client.get("/api/state").get_json()
    issues = [f for f in state["findings"] if f["kind"] == "label_issue"]
    assert issues and all(f["file"].split("/")[1].startswith("flipped_") for f in issues)
    for finding in issues:
        change = {"file": finding["file"], "action": "relabel", "label": finding["suggested"]}
        answer = client.post("/api/decide", json={"finding": finding["key"], "changes": [change]})
        assert answer.status_code == 200

    rerun = run(["dvc", "repro"], repo, env)
    assert "Running stage 'prepare'" in rerun
    after = {name: json.loads((repo / "metrics" / f"{name}.json").read_text())
             for name in ("audit", "export")}  # fmt: skip
    prepared = json.loads((repo / "metrics" / "prepare.json").read_text())
    issues_before, issues_after = (m["audit"]["label_issues"]["total"] for m in (before, after))
    accuracy_before, accuracy_after = (m["export"]["test_accuracy"] for m in (before, after))
    print(
        f"\nreview loop: {len(issues)} suggestions accepted; label issues {issues_before} -> "
        f"{issues_after}, test accuracy {accuracy_before:.3f} -> {accuracy_after:.3f}"
    )
    assert prepared["review"]["relabelled"] == len(issues)
    assert issues_after < issues_before and accuracy_after >= accuracy_before
    # What improved is the data: each relabelled image now carries its true colour in the
    # split it landed in, and the audit no longer flags any of them.
    names = json.loads((repo / "prepared" / "classes.json").read_text())["class_names"]
    relabelled = {finding["file"].split("/", 1)[1] for finding in issues}
    for split in ("train", "val", "test"):
        kept = read_split(split, repo / "prepared", mmap=False)
        for file, label in zip(kept.files, kept.labels, strict=True):
            if Path(file).name in relabelled:
                number = int(Path(file).stem.split("_")[1])
                assert names[label] == CLASSES[number % 3], file
    flagged = review_client(repo).get("/api/state").get_json()["findings"]
    assert not relabelled & {
        f["file"].split("/", 1)[1] for f in flagged if f["kind"] == "label_issue"
    }
    # data/ is as it was; what changed is the decisions and what the pipeline regenerates.
    changed = changed_files(repo, env)
    assert {"labels/decisions.csv", "labels/last_review.json", "dvc.lock"} <= changed
    regenerated = ("labels/", "metrics/", "audit/", "evaluation/", "dvclive/", "dvc.lock")
    assert all(path.startswith(regenerated) for path in changed), changed
    assert "Data and pipelines are up to date" in run(["dvc", "status"], repo, env)
