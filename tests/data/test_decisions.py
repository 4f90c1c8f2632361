"""imgclf.data.decisions: reading, writing and applying the review's decisions."""

from __future__ import annotations

from pathlib import Path

import pytest

from imgclf.data.decisions import (
    Applied,
    Decision,
    DecisionsError,
    apply_decisions,
    apply_to_plan,
    decision,
    read_decisions,
    write_decisions,
)
from imgclf.data.layout import SourceFile
from imgclf.data.split import Placement

CLASSES = ["cat", "dog", "+plus"]  # a folder name a spreadsheet would take for a formula
HEADER = "file,action,label,finding,when\n"


def test_decisions_round_trip_whole_and_sorted_with_awkward_names(tmp_path):
    path = tmp_path / "labels" / "decisions.csv"
    decisions = {
        d.file: d
        for d in [
            Decision("+plus/=SUM(1,2).png", "relabel", "cat", "label_issue", "2026-12-06T10:00"),
            Decision("cat/b\udcffad.png", "exclude", "", "outlier"),  # a name that is not UTF-8
            Decision("cat/a, with comma.jpg", "keep"),
        ]
    }  # fmt: skip
    write_decisions(path, decisions)
    text = path.read_text(encoding="utf-8", errors="surrogateescape")
    assert text.startswith(HEADER) and "'+plus/=SUM" in text  # a spreadsheet shows no formula
    assert text.splitlines()[2].startswith('"cat/a, with comma.jpg"')
    assert read_decisions(path, CLASSES) == decisions
    assert not list(path.parent.glob(".*partial*"))
    # Written again (the folder is there), and into a folder whose parents are not yet.
    write_decisions(path, {})
    assert read_decisions(path, CLASSES) == {}
    deeper = tmp_path / "a" / "b" / "decisions.csv"
    write_decisions(deeper, decisions)
    assert read_decisions(deeper, CLASSES) == decisions


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ("dog/1.png,relabel,horse,,\n", "decisions.csv:2: dog/1.png is relabelled as 'horse', "
         "which is not a class (the classes: cat, dog, +plus)"),
        ("dog/1.png,rename,,,\n", "decisions.csv:2: action 'rename' for dog/1.png: "),
        ("dog/1.png,exclude,,,\ncat/2.png,keep,,,\ndog/1.png,keep,,,\n",
         "decisions.csv:4: a second decision for dog/1.png"),
        ("dog/1.png,exclude,cat,,\n", "decisions.csv:2: dog/1.png has label 'cat'"),
        ("../etc/passwd,exclude,,,\n", "decisions.csv:2: file '../etc/passwd' is not a path"),
        ("/etc/passwd,exclude,,,\n", "file '/etc/passwd' is not a path under data/"),
        (",exclude,,,\n", "file '' is not a path under data/"),
        ("dog/1.png,exclude,,,,extra\n", "decisions.csv:2: expected 5 cells"),
        ("dog/1.png,exclude,,typo,\n", "finding 'typo'"),
    ],
    ids=["unknown-class", "unknown-action", "twice", "label-without-relabel", "outside",
         "absolute", "empty", "cells", "finding"],
)  # fmt: skip
def test_a_bad_decision_names_its_line(tmp_path, lines, message):
    path = tmp_path / "decisions.csv"
    path.write_text(HEADER + lines)
    with pytest.raises(DecisionsError, match=None) as error:
        read_decisions(path, CLASSES)
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"action": "keep"}, "the request: no file given"),
        ({"file": "cat/1.png"}, "the request: no action given"),
        ({"file": "cat/1.png", "action": "keep", "when": 5},
         "the request: when 5 for cat/1.png: Input should be a valid string"),
    ],
)  # fmt: skip
def test_a_decision_the_page_sends_names_what_is_wrong(fields, message):
    with pytest.raises(DecisionsError) as error:
        decision(fields, CLASSES, "the request")
    assert str(error.value) == message


def test_a_file_without_the_columns_says_which(tmp_path):
    path = tmp_path / "decisions.csv"
    path.write_text("path,what\nx,y\n")
    with pytest.raises(DecisionsError) as error:
        read_decisions(path, CLASSES)
    assert str(error.value) == (
        f"{path}:1: the header lacks file, action: the columns are file,action,label,finding,when"
    )
    assert read_decisions(tmp_path / "absent.csv", CLASSES) == {}
    # Only file and action are required: a hand-written list of exclusions is enough.
    path.write_text("file,action\ndog/1.png,exclude\n")
    assert read_decisions(path, CLASSES) == {"dog/1.png": Decision("dog/1.png", "exclude")}


def test_applied_to_train_and_val_only_and_missing_files_reported():
    decisions = {
        d.file: d
        for d in [
            Decision("cat/1.png", "relabel", "dog"),
            Decision("cat/2.png", "exclude"),
            Decision("dog/3.png", "keep"),
            Decision("dog/4.png", "relabel", "dog"),  # the label it has: nothing to do
            Decision("cat/5.png", "exclude"),  # a test image
            Decision("cat/gone.png", "exclude"),
        ]
    }
    placed = [
        ("dog/0.png", "dog", "train", True),  # no decision: the ones after it still count
        ("cat/1.png", "cat", "train", True), ("cat/2.png", "cat", "val", True),
        ("dog/3.png", "dog", "train", True), ("dog/4.png", "dog", "train", True),
        ("cat/5.png", "cat", "test", True), ("dog/6.png", "dog", "train", True),
    ]  # fmt: skip
    applied = apply_decisions(decisions, placed)
    assert applied.labels == {1: "dog"} and applied.excluded == {2}
    assert applied.test_unchanged == ["cat/5.png"] and applied.not_found == ["cat/gone.png"]
    assert applied.metrics() == {
        "relabelled": 1, "excluded": 1, "kept": 2, "not_found": 1, "test_unchanged": 1,
    }  # fmt: skip


def test_applied_to_a_plan_marks_the_excluded_and_relabels_what_prepare_reads():
    decisions = {d.file: d for d in [Decision("cat/1.png", "relabel", "dog"),
                                     Decision("cat/2.png", "exclude"),
                                     Decision("dog/3.png", "exclude")]}  # fmt: skip
    files = [SourceFile(path, path.split("/")[0], None)
             for path in ("cat/1.png", "cat/2.png", "dog/3.png", "dog/4.png")]  # fmt: skip
    placements = [Placement("train", True), Placement("val", True), Placement("test", True),
                  Placement("train", True)]  # fmt: skip
    applied, labels = apply_to_plan(decisions, files, placements)
    assert labels == ["dog", "cat", "dog", "dog"]
    assert [p.used for p in placements] == [True, False, True, True]  # a test image stays
    assert placements[1].reason == "excluded in labels/decisions.csv"
    assert placements[0].reason is None and placements[2].reason is None
    with pytest.raises(ValueError):  # every file has its placement
        apply_to_plan(decisions, files, placements[:3])
    assert applied.report() == {
        "relabelled": [{"path": "cat/1.png", "from": "cat", "to": "dog"}],
        "decisions_not_found": [],
        "test_unchanged": ["dog/3.png"],
    }


def test_what_prepare_prints_of_the_review():
    nothing = Applied({}, set(), 0, [], [])
    assert nothing.summary(Path("data")) == []
    done = Applied({0: "dog"}, {1, 2}, 3, ["cat/gone.png"], ["cat/5.png", "cat/6.png"])
    assert done.summary(Path("data")) == [
        "labels/decisions.csv: 1 relabelled, 2 excluded, 3 kept as they are",
        "  cat/gone.png: no longer in data/, its decision is not applied",
        "  2 decisions about test images not applied: the model is scored on the test split "
        "as it is",
    ]
    kept_only = Applied({}, set(), 1, [], [])
    assert kept_only.summary(Path("data")) == [
        "labels/decisions.csv: 0 relabelled, 0 excluded, 1 kept as they are"
    ]
