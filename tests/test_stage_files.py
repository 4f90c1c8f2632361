"""imgclf.stage_files: the files between stages read back as written, and say what is wrong."""

from __future__ import annotations

import json

import pytest

from imgclf.stage_files import Comparison, PreparedInfo, StageFileError, TrainedMetrics

TRAINED = {
    "val_accuracy": 0.8, "val_loss": 0.5, "val_macro_f1": 0.79,
    "val_per_class": {"cat": {"precision": 0.9, "recall": 0.7, "f1": 0.79}},
    "epochs_trained": 4, "class_weighted": False, "params_total": 10, "params_trainable": 8,
    "workers": 1,
}  # fmt: skip


def test_trained_metrics_round_trip_and_leave_out_what_a_family_has_not(tmp_path):
    path = tmp_path / "cnn.json"
    TrainedMetrics(**TRAINED).write(path)
    written = json.loads(path.read_text())
    assert "pretrained" not in written and "augmented_views" not in written
    assert TrainedMetrics.read(path, "dvc repro train_cnn") == TrainedMetrics(**TRAINED)
    transfer = TrainedMetrics(**TRAINED, pretrained=False, augmented_views=0)
    transfer.write(path)
    assert json.loads(path.read_text())["pretrained"] is False


def test_a_missing_file_names_the_stage_that_makes_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"classes.json not found: run `dvc repro prepare`"):
        PreparedInfo.load(tmp_path)


def test_a_file_that_does_not_match_names_the_key(tmp_path):
    (tmp_path / "classes.json").write_text(json.dumps({"class_names": ["a", "b"]}))
    with pytest.raises(StageFileError, match=r"image_size: Field required.*dvc repro prepare"):
        PreparedInfo.load(tmp_path)
    (tmp_path / "classes.json").write_text("{not json")
    with pytest.raises(StageFileError, match="is not valid JSON"):
        PreparedInfo.load(tmp_path)


def test_comparison_keeps_one_key_per_candidate_on_disk(tmp_path):
    path = tmp_path / "compare.json"
    scores = {"cnn": 0.8, "resnet": 0.7, "efficientnet": 0.9}
    Comparison(metric="val_accuracy", scores=scores, margin=0.1, selected="efficientnet").write(
        path
    )
    written = json.loads(path.read_text())
    assert written["efficientnet_val_accuracy"] == 0.9 and written["selected"] == "efficientnet"
    assert Comparison.load(path).scores == scores
