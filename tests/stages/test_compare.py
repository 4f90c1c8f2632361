"""stages/compare.py: the better model on compare.metric, ties to the smaller model."""

from __future__ import annotations

import json
import shutil

import pytest

from imgclf import models
from imgclf.atomic_io import write_json
from stages import compare
from support.project import ROOT


def trained_metrics(**values) -> dict:
    """A complete metrics/<family>.json with `values` set."""
    return {
        "val_accuracy": 0.5, "val_loss": 1.0, "val_macro_f1": 0.5, "val_per_class": {},
        "epochs_trained": 3, "class_weighted": False, "params_total": 400_000,
        "params_trainable": 400_000, "workers": 1, **values,
    }  # fmt: skip


def run_compare(tmp_path, monkeypatch, cnn: dict, resnet: dict, metric: str = "val_accuracy"):
    text = (ROOT / "params.yaml").read_text().replace("metric: val_accuracy", f"metric: {metric}")
    (tmp_path / "params.yaml").write_text(text)
    write_json(tmp_path / "metrics" / "cnn.json", trained_metrics(**cnn))
    write_json(
        tmp_path / "metrics" / "resnet.json", trained_metrics(params_total=24_000_000, **resnet)
    )
    # Every other registered family, well behind (its loss well above).
    for family in models.families():
        if family.name not in ("cnn", "resnet"):
            behind = trained_metrics(val_accuracy=0.1, val_macro_f1=0.1, val_loss=9.0)
            write_json(tmp_path / "metrics" / f"{family.name}.json", behind)
    monkeypatch.chdir(tmp_path)
    compare.main()
    return json.loads((tmp_path / "metrics" / "compare.json").read_text())


def test_higher_accuracy_wins(tmp_path, monkeypatch):
    result = run_compare(tmp_path, monkeypatch, {"val_accuracy": 0.8}, {"val_accuracy": 0.9})
    assert result["selected"] == "resnet"
    assert result["margin"] == pytest.approx(0.1)
    assert result["cnn_val_accuracy"] == 0.8 and result["resnet_val_accuracy"] == 0.9


@pytest.mark.parametrize(("cnn_params", "smaller"), [(400_000, "cnn"), (30_000_000, "resnet")])
def test_a_tie_goes_to_the_smaller_model(tmp_path, monkeypatch, cnn_params, smaller):
    # Both ways: the CNN is registered first, so a tie must not simply keep the first.
    cnn = {"val_accuracy": 0.85, "params_total": cnn_params}
    result = run_compare(tmp_path, monkeypatch, cnn, {"val_accuracy": 0.85})
    assert result["selected"] == smaller and result["margin"] == 0


def test_lower_loss_wins(tmp_path, monkeypatch):
    result = run_compare(
        tmp_path, monkeypatch, {"val_loss": 0.3}, {"val_loss": 0.5}, metric="val_loss"
    )
    assert result["selected"] == "cnn" and result["margin"] == pytest.approx(0.2)


def test_missing_metrics_say_which_stage_to_run(tmp_path, monkeypatch):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        FileNotFoundError, match=r"metrics/cnn.json not found: run `dvc repro train_cnn`"
    ):
        compare.main()


def test_every_allowed_metric_exists_in_the_training_metrics(tiny_project):
    from typing import get_args

    from imgclf.param_groups import CompareParams

    trained = json.loads((tiny_project / "metrics" / "cnn.json").read_text())
    for metric in get_args(CompareParams.model_fields["metric"].annotation):
        assert isinstance(trained[metric], float)
