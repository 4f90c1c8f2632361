"""Adding a model family is what docs/development.md says: a module, a registry entry, a params
group and a stage entry. This test does exactly that with two throwaway families, one trained
from scratch and one transfer family (a pretrained base with weights the test writes), both
built in this module, and takes each through prepare -> its train stage -> compare -> export
in every format -> the web app, heatmaps included."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Annotated

import keras
import numpy as np
import pytest
from keras import layers
from pydantic import Field
from ruamel.yaml import YAML

from imgclf.bundle import CONVERTED, Bundle
from imgclf.models import registry
from imgclf.models.contract import WeightsSource
from imgclf.param_groups import (
    Group,
    PositiveRate,
    Probability,
    TransferParams,
    input_size_key,
    key,
)
from support.images import class_image, image_bytes, write_class_folders
from support.project import ROOT, InProject, set_params

pytestmark = pytest.mark.slow  # trains: `make test-fast` leaves it out


# --- 1. the family's module (here: this one) -----------------------------------------------


def build_model(
    image_size: int,
    num_classes: int,
    params: ToyParams,
    *,
    input_size: int | None = None,
    sync_batch_norm: bool = False,
) -> keras.Model:
    """One convolution, its ReLU (Grad-CAM's map), pooling and a softmax."""
    inputs = keras.Input((image_size, image_size, 3), name="pixels")
    x = layers.Rescaling(1.0 / 255)(inputs)
    x = layers.Conv2D(params.filters, 3, padding="same", name="conv")(x)
    x = layers.Activation("relu", name="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(params.dropout)(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="toy")


# --- 2. its registry entry, with its params group ------------------------------------------


class ToyParams(Group):
    """`toy`: a throwaway family."""

    image_size: input_size_key(32, 32)
    filters: key(Annotated[int, Field(ge=1, le=64)], "filters of its one convolution")
    dropout: key(Probability, "dropout before the classifier")
    learning_rate: key(PositiveRate, "peak learning rate")


TOY = registry.ModelFamily(
    name="toy",
    title="toy network",
    description="a one-convolution network, for the test that adds a family",
    keras_name="toy",
    module=__name__,
    params=ToyParams,
    auto_input_size=(32, 32),
    tiny_params={"filters": 4},
)


# --- the transfer family: 1. its module (here: this one too) -------------------------------


def preprocess(pixels):
    """What the toy base was 'pretrained' on: pixels in [-1, 1]."""
    return pixels / 127.5 - 1.0


def build_base(input_size: int, params: ToyTransferParams) -> keras.Model:
    """Two strided convolutions. Its name is not the registry's base name: the machinery
    names the base, not the module."""
    inputs = keras.Input((input_size, input_size, 3), name="scaled")
    x = layers.Conv2D(params.filters, 3, strides=2, padding="same", name="Stem.conv-1")(inputs)
    x = layers.Activation("relu", name="Stem.act-1")(x)
    x = layers.Conv2D(params.filters, 3, padding="same", name="Block_A.conv")(x)
    x = layers.ReLU(name="Block_A.relu")(x)
    return keras.Model(inputs, x, name="Trunk_v0")


def load_weights(base: keras.Model, params: ToyTransferParams) -> WeightsSource:
    """The weights file params name (the test writes it, as a pretraining run would)."""
    base.load_weights(params.weights)
    return WeightsSource(True, params.weights)


# --- 2. its registry entry, with its params group ------------------------------------------


class ToyTransferParams(TransferParams):
    """`toy_transfer`: a throwaway transfer family."""

    image_size: input_size_key(32, 32)
    filters: key(Annotated[int, Field(ge=1, le=64)], "filters of the base's convolutions")
    weights: key(str, "the base's weights file (.weights.h5)")


TOY_TRANSFER = registry.ModelFamily(
    name="toy_transfer",
    title="toy transfer network",
    description="a two-convolution base with a new head, for the test that adds a family",
    keras_name="toy_transfer",
    module=__name__,
    params=ToyTransferParams,
    auto_input_size=(32, 32),
    tiny_params={"dense_units": 8, "augmented_views": 1},
    transfer=registry.TransferParts(
        extractor="toy_features", base="toy_base", head="head", backbone="toy-{filters}"
    ),
    weights_note="weights written by the test",
)


# --- 3. its params.yaml group, 4. its dvc.yaml entry ----------------------------------------

MODULE_FILE = Path(__file__).relative_to(ROOT)
TOY_GROUP = {"image_size": "auto", "filters": 4, "dropout": 0.0, "learning_rate": 0.01}


def dvc_entry() -> dict:
    """train_cnn's entry in dvc.yaml, made the toy's as docs/development.md says."""
    stages = YAML(typ="safe").load((ROOT / "dvc.yaml").read_text())["stages"]
    text = json.dumps(stages["train_cnn"])
    return json.loads(text.replace("imgclf/models/cnn.py", str(MODULE_FILE)).replace("cnn", "toy"))


def toy_transfer_group(root: Path) -> dict:
    """The transfer toy's params, with a weights file made here as a pretraining run would."""
    keras.utils.set_random_seed(3)
    weights = root / "trunk.weights.h5"
    group = {
        "image_size": "auto", "filters": 8, "dense_units": 8, "dropout": 0.0,
        "learning_rate": 0.01, "augmented_views": 1, "fine_tune_layers": 0,
        "fine_tune_epochs": 0, "fine_tune_learning_rate": 0.001, "weights": str(weights),
    }  # fmt: skip
    build_base(32, ToyTransferParams(**group)).save_weights(weights)
    return group


@pytest.fixture
def only_the_toy(monkeypatch):
    """The registry with the toy as its one family (the others need their own training)."""
    monkeypatch.setattr(registry, "_FAMILIES", {})
    registry.register(TOY)
    return TOY


@pytest.fixture
def only_the_toy_transfer(monkeypatch):
    monkeypatch.setattr(registry, "_FAMILIES", {})
    registry.register(TOY_TRANSFER)
    return TOY_TRANSFER


def project(root: Path, groups: dict | None = None) -> Path:
    """A project whose params.yaml has the shared groups and the toys' (`groups`)."""
    write_class_folders(root / "data", ["circle", "square", "star"], per_class=8)
    yaml = YAML(typ="rt")
    params = yaml.load((ROOT / "params.yaml").read_text())
    for family in ("cnn", "resnet", "efficientnet"):
        del params[family]
    with open(root / "params.yaml", "w") as f:
        yaml.dump(params, f)
    set_params(root, {
        "prepare": {"image_size": 32, "val_fraction": 0.25, "test_fraction": 0.25},
        "train": {"epochs": 3, "batch_size": 8, "early_stopping_patience": 0},
        **(groups or {"toy": TOY_GROUP}),
    })  # fmt: skip
    return root


def explained(best: Path, runtime: str) -> dict:
    """The web app's answer, heatmap included, for one image on `runtime`."""
    from webapp import create_app

    app = create_app({"MODEL_DIR": str(best), "TESTING": True, "RUNTIME": runtime})
    client = app.test_client()
    upload = {"file": (io.BytesIO(image_bytes(class_image(1, seed=99))), "square.png")}
    answer = client.post("/predict?explain=1", data=upload, content_type="multipart/form-data")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    assert body["prediction"] in {"circle", "square", "star"} and 0 < body["confidence"] <= 1
    assert body["heatmap_png"]
    assert client.get("/model").get_json()["runtime"] == runtime
    return body


def test_the_dvc_entry_recipe_gives_the_toy_its_own_stage():
    entry = dvc_entry()
    assert entry["cmd"] == "python stages/train.py toy"
    assert entry["params"] == ["train", "augment", "toy"]
    assert str(MODULE_FILE) in entry["deps"] and "imgclf/models/cnn.py" not in entry["deps"]
    outs = [next(iter(out)) for out in entry["outs"] + entry["metrics"]]
    assert outs == ["models/toy", "dvclive/toy/plots", "metrics/toy.json"]


def test_a_new_family_goes_through_the_pipeline_to_the_web_app(only_the_toy, tmp_path):
    from stages import compare, export, prepare, train
    from webapp import create_app

    root = project(tmp_path)
    with InProject(root):
        prepare.main()
        train.main("toy")
        compare.main()
        export.main()

    trained = json.loads((root / "metrics" / "toy.json").read_text())
    assert trained["epochs_trained"] == 3 and 0 <= trained["val_accuracy"] <= 1
    assert (root / "models" / "toy" / "model.keras").is_file()
    assert (root / "dvclive" / "toy" / "plots" / "metrics" / "eval" / "accuracy.tsv").is_file()
    assert json.loads((root / "metrics" / "compare.json").read_text())["selected"] == "toy"
    best = root / "models" / "best"
    metadata = json.loads((best / "metadata.json").read_text())
    assert metadata["selected_model"] == "toy" and metadata["input_size"] == 32
    assert TOY.description in (best / "MODEL_CARD.md").read_text()
    assert (root / "evaluation" / "mistakes.png").stat().st_size > 1000  # Grad-CAM found its map

    explained(best, "onnx")
    client = create_app({"MODEL_DIR": str(best), "TESTING": True}).test_client()
    assert client.get("/model").get_json()["selected_model"] == "toy"


def test_a_new_transfer_family_goes_through_the_pipeline_in_every_format(
    only_the_toy_transfer, tmp_path
):
    from stages import compare, export, prepare, train

    group = toy_transfer_group(tmp_path)
    root = project(tmp_path, {"toy_transfer": group, "export": {"formats": list(CONVERTED)}})
    with InProject(root):
        prepare.main()
        train.main("toy_transfer")
        compare.main()
        export.main()

    trained = json.loads((root / "metrics" / "toy_transfer.json").read_text())
    assert trained["pretrained"] is True and trained["backbone"] == "toy-8"
    assert trained["augmented_views"] == 1 and trained["input_size"] == 32
    saved = keras.models.load_model(root / "models" / "toy_transfer" / "model.keras")
    base = saved.get_layer("toy_features").get_layer("toy_base")  # named by the machinery
    written = build_base(32, ToyTransferParams(**group))
    written.load_weights(group["weights"])
    for kept, loaded in zip(base.get_weights(), written.get_weights(), strict=True):
        np.testing.assert_array_equal(kept, loaded)  # frozen: the weights the test wrote

    best = Bundle(root / "models" / "best")
    formats = json.loads((root / "metrics" / "export.json").read_text())["formats"]
    assert set(formats) == {*CONVERTED, "explain_onnx"}
    for name in ("onnx", "tflite", "explain_onnx"):  # the float files and the heatmaps ship
        assert formats[name]["passed"], (name, formats[name]["reason"])
    assert formats["explain_onnx"]["heatmap_correlation"] >= 0.99
    assert best.has("onnx") and best.has("tflite") and best.explain.is_file()
    for fmt in ("tflite_int8", "onnx_int8"):
        assert best.has(fmt) == formats[fmt]["passed"]
    assert best.read_metadata().backbone == "toy-8"
    assert TOY_TRANSFER.weights_note in best.card.read_text()
    assert (root / "evaluation" / "mistakes.png").stat().st_size > 1000  # Grad-CAM found its map

    onnx, keras_answer = explained(best.root, "onnx"), explained(best.root, "keras")
    assert onnx["prediction"] == keras_answer["prediction"]
    assert onnx["confidence"] == pytest.approx(keras_answer["confidence"], abs=1e-4)


def test_params_yaml_without_the_toy_group_names_it(only_the_toy, tmp_path):
    from imgclf import params

    root = project(tmp_path)
    set_params(root, {"toy": {}})
    text = (root / "params.yaml").read_text().replace("toy:", "toys:")
    (root / "params.yaml").write_text(text)
    with pytest.raises(params.ParamsError, match=r"toy: missing key") as error:
        params.load(root / "params.yaml")
    assert "toys: unknown key" in str(error.value)
