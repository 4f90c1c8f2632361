"""The trainers on tiny generated data: outputs, metrics, frozen bases, fine-tuning, determinism."""

from __future__ import annotations

import json
import re
import shutil

import keras
import numpy as np
import pytest

from imgclf import models, paths
from imgclf import params as params_file
from imgclf.training import feature_cache
from stages import train
from support.project import InProject, model_metrics, set_params, tiny_params, write_params

pytestmark = pytest.mark.slow  # every family trained: `make test-fast` leaves them out


@pytest.fixture
def project(trained_project):
    return trained_project


CNN_KEYS = {
    "val_accuracy", "val_loss", "val_macro_f1", "val_per_class", "epochs_trained",
    "params_total", "params_trainable", "class_weighted", "workers", "input_size",
    "learning_rate",
}  # fmt: skip
TRANSFER_KEYS = CNN_KEYS | {"pretrained", "augmented_views", "backbone"}
TIMINGS = {"train_seconds", "train_images_per_second"}


def timings(project, stage: str) -> dict:
    return json.loads((project / "timings" / f"{stage}.json").read_text())


def test_both_models_write_complete_metrics(project):
    cnn, resnet = model_metrics(project, "cnn"), model_metrics(project, "resnet")
    assert set(cnn) == CNN_KEYS
    assert cnn["workers"] == resnet["workers"] == 1
    assert set(resnet) == TRANSFER_KEYS
    assert resnet["pretrained"] is True and resnet["augmented_views"] == 1
    assert resnet["backbone"] == "resnet50" and resnet["input_size"] == cnn["input_size"] == 32
    assert cnn["class_weighted"] is False  # balanced classes: auto leaves the loss alone
    for metrics in (cnn, resnet):
        assert 0 <= metrics["val_accuracy"] <= 1 and metrics["epochs_trained"] == 2
        assert set(metrics["val_per_class"]) == {"circle", "square", "star"}
        assert set(metrics["val_per_class"]["star"]) == {"precision", "recall", "f1"}
    assert resnet["params_trainable"] < resnet["params_total"] / 100


@pytest.mark.parametrize("family", ["cnn", "resnet", "efficientnet"])
def test_the_recorded_val_accuracy_is_the_saved_models(project, family):
    # What compare selects on is what the saved model scores on the validation split
    # (a transfer family's from its cached features: the same numbers).
    from imgclf.data.prepared import read_split

    val = read_split("val", project / "prepared")
    model = keras.models.load_model(project / "models" / family / "model.keras")
    predicted = model.predict(val.images.astype("float32"), verbose=0).argmax(axis=1)
    expected = float((predicted == val.labels).mean())
    assert model_metrics(project, family)["val_accuracy"] == pytest.approx(expected, abs=1e-6)


def test_wall_times_go_to_timings_not_to_the_metrics(project):
    cnn, resnet = timings(project, "train_cnn"), timings(project, "train_resnet")
    assert set(cnn) == TIMINGS and set(resnet) == TIMINGS | {"feature_cache_seconds"}
    assert set(timings(project, "train_efficientnet")) == TIMINGS | {"feature_cache_seconds"}
    for measured in (cnn, resnet):
        assert measured["train_seconds"] > 0 and measured["train_images_per_second"] > 0
    assert 0 < resnet["feature_cache_seconds"] <= resnet["train_seconds"]


def test_efficientnet_trains_on_its_pretrained_base_at_its_own_size(project):
    metrics = model_metrics(project, "efficientnet")
    assert set(metrics) == TRANSFER_KEYS
    assert metrics["pretrained"] is True and metrics["backbone"] == "efficientnet-lite0"
    assert metrics["input_size"] == 64  # auto: the prepared 32 px enlarged to its minimum
    model = keras.models.load_model(project / "models" / "efficientnet" / "model.keras")
    assert model.input_shape == (None, 32, 32, 3)  # served pixels stay at the prepared size
    extractor = model.get_layer("efficientnet_lite_features")
    assert extractor.get_layer("resize").output.shape[1:3] == (64, 64)


def test_dvclive_wrote_curves_and_confusion_matrices(project):
    for name in ("cnn", "resnet", "efficientnet"):
        plots = project / "dvclive" / name / "plots"
        for curve in ("train/loss", "eval/loss", "train/accuracy", "eval/accuracy"):
            rows = (plots / "metrics" / f"{curve}.tsv").read_text().splitlines()
            assert len(rows) == 3  # header and two epochs
        confusion = json.loads((plots / "sklearn" / "confusion_matrix.json").read_text())
        assert len(confusion) == 6  # one row per validation image
        assert {row["actual"] for row in confusion} <= {"circle", "square", "star"}


def test_saved_models_take_raw_pixels_and_match_the_metrics(project):
    from imgclf.data.prepared import read_split

    val = read_split("val", project / "prepared", mmap=False)
    for name in ("cnn", "resnet", "efficientnet"):
        model = keras.models.load_model(project / "models" / name / "model.keras")
        predicted = model.predict(val.images.astype("float32"), verbose=0).argmax(1)
        accuracy = float((predicted == val.labels).mean())
        assert accuracy == pytest.approx(model_metrics(project, name)["val_accuracy"], abs=1e-6)


def original_base(project, family: str) -> keras.Model:
    """The base a transfer family starts from: its own loader, with the project's params."""
    params = params_file.load(project / "params.yaml").family(family)
    builder = models.get(family).builder
    base = builder.build_base(model_metrics(project, family)["input_size"], params)
    assert builder.load_weights(base, params).pretrained
    return base


def saved_base(project, family: str) -> keras.Model:
    parts = models.get(family).transfer
    saved = keras.models.load_model(project / "models" / family / "model.keras")
    return saved.get_layer(parts.extractor).get_layer(parts.base)


@pytest.mark.parametrize("family", ["resnet", "efficientnet"])
def test_transfer_bases_are_really_frozen(project, family):
    original, base = original_base(project, family), saved_base(project, family)
    for before, after in zip(original.get_weights(), base.get_weights(), strict=True):
        assert np.array_equal(before, after)


def test_training_is_deterministic(project, tmp_path):
    first_weights = keras.models.load_model(project / "models/cnn/model.keras").get_weights()
    first = model_metrics(project, "cnn")
    again = tmp_path / "again"
    shutil.copytree(project, again, ignore=shutil.ignore_patterns("models", "dvclive"))
    with InProject(again):
        train.main("cnn")
    second = model_metrics(again, "cnn")
    assert first == second  # wall times are in timings/, not in the metrics
    # The saved model is the same file, byte for byte: dvc.lock does not change on a re-run.
    model_file = "models/cnn/model.keras"
    assert (project / model_file).read_bytes() == (again / model_file).read_bytes()
    second_weights = keras.models.load_model(again / "models/cnn/model.keras").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(first_weights, second_weights, strict=True))


def test_the_feature_cache_changes_no_metric(project, tmp_path, monkeypatch, capsys):
    # The fixture's audit computed the Lite0 features of train and val that
    # train_efficientnet reads; the stage kept its augmented view beside them.
    assert len(list((project / paths.FEATURE_CACHE).glob("*.npy"))) >= 4
    first = model_metrics(project, "efficientnet")
    model_file = "models/efficientnet/model.keras"
    runs = {}
    for cache in ("kept", "off"):
        again = tmp_path / cache
        shutil.copytree(project, again, ignore=shutil.ignore_patterns("models", "dvclive"))
        if cache == "off":
            monkeypatch.setenv(feature_cache.CACHE_ENV, "")
        capsys.readouterr()
        with InProject(again):
            train.main("efficientnet")
        runs[cache] = (again, capsys.readouterr().out)
    counts = re.search(r"features of (\d+) training .* and (\d+) validation .*\((\d+) of them",
                       runs["kept"][1])  # fmt: skip
    training, validation, reused = map(int, counts.groups())
    assert reused == training + validation > 0  # no pass of the base at all
    assert "(0 of them from no cache)" in runs["off"][1]
    # Weights, not file bytes: layer names made in one process differ from run to run.
    weights = keras.models.load_model(project / model_file).get_weights()
    for again, _ in runs.values():
        assert model_metrics(again, "efficientnet") == first
        trained = keras.models.load_model(again / model_file).get_weights()
        assert all(np.array_equal(a, b) for a, b in zip(weights, trained, strict=True))


def test_class_weights_change_training_when_switched_on(project, tmp_path):
    weighted = tmp_path / "weighted"
    shutil.copytree(project, weighted, ignore=shutil.ignore_patterns("models", "dvclive"))
    # Drop most training images of one class, as an unbalanced folder would have.
    train_dir = weighted / "prepared" / "train"
    labels = np.load(train_dir / "labels.npy")
    keep = np.flatnonzero((labels != 0) | (np.cumsum(labels == 0) <= 1))
    np.save(train_dir / "images.npy", np.load(train_dir / "images.npy")[keep])
    np.save(train_dir / "labels.npy", labels[keep])
    files = (train_dir / "files.txt").read_text().splitlines()
    (train_dir / "files.txt").write_text("".join(files[i] + "\n" for i in keep))
    results = {}
    for mode in ("none", "auto"):
        write_params(weighted, train={**tiny_params()["train"], "class_weight": mode})
        with InProject(weighted):
            train.main("cnn")
        results[mode] = (
            model_metrics(weighted, "cnn")["class_weighted"],
            keras.models.load_model(weighted / "models/cnn/model.keras").get_weights(),
        )
    assert results["none"][0] is False and results["auto"][0] is True
    assert not all(
        np.array_equal(a, b) for a, b in zip(results["none"][1], results["auto"][1], strict=True)
    )


@pytest.mark.parametrize("family", ["cnn", "efficientnet"])
def test_learning_rate_auto_trains_with_the_range_tests_suggestion(project, tmp_path, family):
    found = tmp_path / "found"
    shutil.copytree(project, found, ignore=shutil.ignore_patterns("models", "dvclive"))
    write_params(found, **{family: {**tiny_params().get(family, {}), "learning_rate": "auto"}})
    with InProject(found):
        train.main(family)
    curve = json.loads(
        (found / "dvclive" / family / "plots" / "custom" / "lr_find.json").read_text()
    )
    rates = [point["learning_rate"] for point in curve]
    assert len(curve) > 10 and rates == sorted(rates)
    used = model_metrics(found, family)["learning_rate"]
    assert any(rate == pytest.approx(used, abs=1e-6) for rate in rates)  # (rounded)
    # a number is used as written
    assert model_metrics(project, family)["learning_rate"] == pytest.approx(
        params_file.load(project / "params.yaml").family(family).learning_rate
    )


def test_mirrored_strategy_path_trains_on_cpu(project, tmp_path, monkeypatch):
    mirrored = tmp_path / "mirrored"
    shutil.copytree(project, mirrored, ignore=shutil.ignore_patterns("models", "dvclive"))
    write_params(mirrored, train={**tiny_params()["train"], "distribute": "mirrored", "epochs": 1})
    # Which strategy each fit ran under (its model's variables were made in its scope).
    strategies, fit = [], keras.Model.fit

    def recording_fit(model, *args, **kwargs):
        strategies.append(type(model.distribute_strategy).__name__)
        return fit(model, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", recording_fit)
    with InProject(mirrored):
        train.main("cnn")
    assert strategies and set(strategies) == {"MirroredStrategy"}
    assert model_metrics(mirrored, "cnn")["epochs_trained"] == 1


@pytest.mark.parametrize("family", ["resnet", "efficientnet"])
def test_fine_tuning_changes_only_the_unfrozen_top(project, tmp_path, family):
    tuned = tmp_path / "tuned"
    shutil.copytree(project, tuned, ignore=shutil.ignore_patterns("models", "dvclive"))
    # The copy keeps the fixture's params (its ResNet weights file included).
    tuning = {"fine_tune_layers": 5, "fine_tune_epochs": 1, "fine_tune_learning_rate": 0.01}
    set_params(tuned, {family: tuning, "train": {"epochs": 1}})
    with InProject(tuned):
        train.main(family)
    original, base = original_base(project, family), saved_base(tuned, family)
    changed = {
        layer.name
        for layer, before in zip(base.layers, original.layers, strict=True)
        if layer.weights
        and not all(
            np.array_equal(a, b)
            for a, b in zip(layer.get_weights(), before.get_weights(), strict=True)
        )
    }
    top = {layer.name for layer in base.layers[-5:]}
    assert changed and changed <= top
    # BatchNormalization stays in inference mode: its statistics and scale do not move.
    assert not any(isinstance(base.get_layer(name), keras.layers.BatchNormalization)
                   for name in changed)  # fmt: skip
