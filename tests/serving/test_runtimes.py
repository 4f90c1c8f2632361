"""imgclf.serving.runtimes: the same answers from onnxruntime, LiteRT and Keras, and a
TensorFlow-free process that predicts and explains."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from imgclf.data.prepared import read_split
from imgclf.serving import runtimes
from imgclf.serving.predictor import ModelNotExportedError, Predictor
from support.project import ROOT

# Run in a fresh interpreter where importing TensorFlow or Keras fails, as it would
# where `pip install 'imgclf[serve]'` installed neither.
WITHOUT_TENSORFLOW = """
import importlib.abc, json, sys

class NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
            raise ImportError(f"{name} is blocked in this test")
        return None

sys.meta_path.insert(0, NoTensorFlow())
"""


def test_every_runtime_gives_the_keras_answers(cnn_export, tiny_project):
    pixels = read_split("test", tiny_project / "prepared").images.astype("float32")
    # Noise too: images the score calls unfamiliar, so both sides of the flag are compared.
    noise = np.random.default_rng(0).integers(0, 256, (8, *pixels.shape[1:])).astype("float32")
    pixels = np.concatenate([pixels, noise])
    keras_answers = Predictor.load(cnn_export, "keras").scores(pixels)
    threshold = Predictor.load(cnn_export, "keras").unfamiliar_threshold
    flags = keras_answers.unfamiliarity > threshold
    assert flags.any() and not flags.all()
    for name in ("onnx", "tflite"):
        predictor = Predictor.load(cnn_export, name)
        assert predictor.runtime.name == name
        answers = predictor.scores(pixels)
        np.testing.assert_allclose(answers.probabilities, keras_answers.probabilities, atol=1e-5)
        # The whitening magnifies the runtimes' last-digit differences in the features
        # along the training images' narrowest directions: scores agree to about 0.1%.
        np.testing.assert_allclose(
            answers.unfamiliarity, keras_answers.unfamiliarity, rtol=5e-3, atol=1e-3
        )
        assert ((answers.unfamiliarity > threshold) == flags).all()
        # A batch of one after a batch of many (LiteRT resizes its input tensor).
        np.testing.assert_allclose(
            predictor.probabilities(pixels[:1]), keras_answers.probabilities[:1], atol=1e-5
        )


def test_auto_takes_the_fastest_runtime_the_export_has(cnn_export, tmp_path):
    assert Predictor.load(cnn_export).runtime.name == "onnx"
    keras_only = shutil.copytree(cnn_export, tmp_path / "best")
    for name in ("model.onnx", "model.tflite", "model_int8.tflite", "explain.onnx"):
        (keras_only / name).unlink(missing_ok=True)
    assert Predictor.load(keras_only).runtime.name == "keras"
    with pytest.raises(ModelNotExportedError, match=r"model\.onnx not found"):
        Predictor.load(keras_only, "onnx")


def test_onnx_heatmaps_are_keras_heatmaps(cnn_export, tiny_project):
    pixels = read_split("test", tiny_project / "prepared").images[:4].astype("float32")
    onnx, keras = Predictor.load(cnn_export, "onnx"), Predictor.load(cnn_export, "keras")
    for image in pixels:
        (p_onnx, map_onnx), (p_keras, map_keras) = (
            onnx.runtime.explain(image),
            keras.runtime.explain(image),
        )
        assert p_onnx.argmax() == p_keras.argmax()
        np.testing.assert_allclose(map_onnx, map_keras, atol=1e-4)


def test_the_tflite_runtime_says_it_draws_no_heatmaps(cnn_export):
    predictor = Predictor.load(cnn_export, "tflite")
    with pytest.raises(runtimes.RuntimeUnavailable, match="onnx"):
        predictor.explain_pixels(np.zeros((32, 32, 3), np.float32))


def test_an_unknown_or_missing_runtime_is_named(cnn_export, monkeypatch):
    with pytest.raises(ModelNotExportedError, match="runtime 'torch': choose one of auto, onnx"):
        Predictor.load(cnn_export, "torch")
    monkeypatch.setattr(runtimes, "installed", lambda name: name == "keras")
    with pytest.raises(ModelNotExportedError, match="not installed: pip install onnxruntime"):
        Predictor.load(cnn_export, "onnx")
    assert Predictor.load(cnn_export).runtime.name == "keras"


def test_a_process_without_tensorflow_predicts_and_explains(cnn_export, tiny_project):
    photo = next((tiny_project / "data" / "star").iterdir())
    code = (
        WITHOUT_TENSORFLOW
        + f"""
from imgclf.serving import Predictor
predictor = Predictor.load({str(cnn_export)!r})
answer = predictor.predict({str(photo)!r})
explained, heatmap = predictor.explain({str(photo)!r})
loaded = [m for m in sys.modules if m.startswith(("tensorflow", "keras"))]
print(json.dumps({{"runtime": predictor.runtime.name, "answer": answer, "tensorflow": loaded,
                   "explained": explained["prediction"], "heatmap": heatmap.size}}))
"""
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["runtime"] == "onnx" and found["tensorflow"] == []
    expected = Predictor.load(cnn_export, "keras").predict(photo)
    assert found["answer"]["prediction"] == expected["prediction"] == found["explained"]
    assert found["answer"]["confidence"] == pytest.approx(expected["confidence"], abs=1e-5)
    assert found["heatmap"] == [224, 224]


@pytest.mark.slow  # CLI processes
def test_the_cli_runs_without_tensorflow(cnn_export, tiny_project, tmp_path):
    photos = sorted((tiny_project / "data" / "circle").iterdir())[:3]
    (tmp_path / "notes.png").write_text("not an image")
    code = WITHOUT_TENSORFLOW + "import runpy; runpy.run_module('imgclf', run_name='__main__')"
    command = [
        sys.executable, "-c", code, "predict", "--model-dir", str(cnn_export),
        *map(str, photos), str(tmp_path / "notes.png"),
    ]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 1  # one file was not an image
    assert [line["file"] for line in lines] == [*map(str, photos), str(tmp_path / "notes.png")]
    assert all("prediction" in line for line in lines[:3]) and "error" in lines[3]
