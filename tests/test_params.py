"""imgclf.params: params.yaml validation names the key, the bad value and what is allowed."""

from __future__ import annotations

import copy

import pytest
from ruamel.yaml import YAML

from imgclf import params
from support.project import ROOT


@pytest.fixture(scope="module")
def good() -> dict:
    return YAML(typ="safe", pure=True).load((ROOT / "params.yaml").read_text())


def with_change(good: dict, group: str, key: str, value: object) -> dict:
    changed = copy.deepcopy(good)
    changed[group][key] = value
    return changed


def test_repository_params_are_valid():
    loaded = params.load(ROOT / "params.yaml")
    assert loaded.prepare.image_size == "auto" or loaded.prepare.image_size >= 32
    assert len(loaded.cnn.filters) == 4


@pytest.mark.parametrize("size", ["auto", 32, 224, 1024])
def test_image_size_is_auto_or_pixels(good, size):
    assert (
        params.validate(with_change(good, "prepare", "image_size", size)).prepare.image_size == size
    )


@pytest.mark.parametrize(
    ("group", "key", "value", "message"),
    [
        (
            "prepare",
            "image_size",
            8,
            r"prepare.image_size = 8: should be greater than or equal to 32",
        ),
        (
            "prepare",
            "image_size",
            "64",
            r"prepare.image_size = '64': should be auto or a whole number of pixels \(32 to 1024\)",
        ),
        ("prepare", "image_size", 2000, r"prepare.image_size = 2000: should be less than or equal"),
        ("prepare", "image_size", True, r"prepare.image_size = True: should be auto or a whole"),
        ("train", "lr_schedule", "step", r"train.lr_schedule = 'step': should be 'cosine'"),
        ("train", "label_smoothing", 1.0, r"train.label_smoothing = 1.0: should be less than 1"),
        ("train", "class_weight", "yes", r"train.class_weight = 'yes': should be 'auto'"),
        ("augment", "translate", 0.6, r"augment.translate = 0.6: should be less than or equal"),
        ("cnn", "convs_per_block", 0, r"cnn.convs_per_block = 0: should be greater than"),
        ("prepare", "val_fraction", 0.7, r"prepare.val_fraction = 0.7: should be less than 0.5"),
        ("train", "epochs", 0, r"train.epochs = 0: should be greater than or equal to 1"),
        ("train", "epochs", 2.5, r"train.epochs = 2.5: should be auto or a whole number of epochs"),
        (
            "train",
            "optimizer",
            "adan",
            r"train.optimizer = 'adan': should be 'adam', 'adamw', 'sgd'",
        ),
        ("train", "distribute", "tpu", r"train.distribute = 'tpu': should be 'auto', 'none'"),
        (
            "augment",
            "horizontal_flip",
            "yes",
            r"augment.horizontal_flip = 'yes': should be a valid boolean",
        ),
        (
            "cnn",
            "filters",
            [32, 64],
            r"cnn.filters = \[32, 64\]: should have at least 4 items, not 2",
        ),
        ("cnn", "dropout", 1.5, r"cnn.dropout = 1.5: should be less than or equal to 0.9"),
        (
            "resnet",
            "weights",
            "resnet.bin",
            r"resnet.weights = 'resnet.bin': should be imagenet, none, or the path",
        ),
        ("compare", "metric", "speed", r"compare.metric = 'speed': should be 'val_accuracy'"),
    ],
)
def test_bad_values_name_key_value_and_allowed(good, group, key, value, message):
    with pytest.raises(params.ParamsError, match=message):
        params.validate(with_change(good, group, key, value))


def test_unknown_key_lists_the_allowed_keys(good):
    bad = with_change(good, "train", "epoch", 3)
    with pytest.raises(
        params.ParamsError, match=r"train.epoch: unknown key \(allowed here: epochs, batch_size"
    ):
        params.validate(bad)


def test_unknown_group_is_reported(good):
    bad = {**good, "trian": {"epochs": 1}}
    with pytest.raises(
        params.ParamsError, match=r"trian: unknown key \(allowed here: prepare, audit, train"
    ):
        params.validate(bad)


def test_missing_key_is_reported(good):
    bad = copy.deepcopy(good)
    del bad["resnet"]["weights"]
    with pytest.raises(params.ParamsError, match=r"resnet\.weights: missing key"):
        params.validate(bad)


def test_every_problem_is_reported_at_once(good):
    bad = with_change(with_change(good, "train", "epochs", -1), "cnn", "dropout", 2)
    with pytest.raises(params.ParamsError) as raised:
        params.validate(bad)
    assert "train.epochs" in str(raised.value) and "cnn.dropout" in str(raised.value)


def test_split_fractions_must_leave_training_data(good):
    bad = with_change(
        with_change(good, "prepare", "val_fraction", 0.45), "prepare", "test_fraction", 0.45
    )
    with pytest.raises(params.ParamsError, match=r"val_fraction \+ prepare\.test_fraction = 0\.9"):
        params.validate(bad)


def test_scientific_notation_is_a_number(good, tmp_path):
    text = (
        (ROOT / "params.yaml")
        .read_text()
        .replace("fine_tune_learning_rate: 0.00001", "fine_tune_learning_rate: 1e-5")
    )
    path = tmp_path / "params.yaml"
    path.write_text(text)
    assert params.load(path).resnet.fine_tune_learning_rate == pytest.approx(1e-5)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(params.ParamsError, match="not found: run from the project root"):
        params.load(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text("train: [unclosed\n")
    with pytest.raises(params.ParamsError, match="is not valid YAML"):
        params.load(tmp_path / "params.yaml")
