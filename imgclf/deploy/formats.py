"""The exported model in other runtimes' formats: ONNX and LiteRT (TFLite), float and int8.

Each file takes the same plain RGB pixels as the Keras model and gives the same calibrated
probabilities: preprocessing, resizing and the temperature layer are inside the model,
so they are inside every conversion too. Every format is converted from the SavedModel
the export writes (its constants frozen in, which converting the Keras object itself
leaves out): ONNX by tf2onnx (opset 18, read by onnxruntime 1.14 and newer), LiteRT
by TensorFlow's own converter. The LiteRT int8 file is fully integer-quantized (weights
and activations), its ranges calibrated on a sample of the training images; the ONNX
int8 file is the float ONNX file quantized by onnxruntime's own quantizer
(deploy/quantize.py, which says what stays float). Their input and output stay
float32, so a caller feeds them exactly what it feeds the others. Grad-CAM is exported
too, as a second ONNX graph (the bundle's EXPLAIN, serving/bundle.py) that runs the
forward pass and the gradient of the predicted class in one call.

The conversions are deterministic: the same model gives the same bytes (ONNX graphs
through onnx_canonical.py), so a re-run leaves dvc.lock unchanged.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from imgclf.bundle import EXPLAIN_OUTPUTS, OUTPUTS
from imgclf.deploy.onnx_canonical import canonical
from imgclf.deploy.quantize import write_onnx_int8
from imgclf.explain.gradcam import GradCam

OPSET = 18  # Resize with an antialiasing filter (a model that shrinks its input) needs 18
INPUT = "pixels"


def saved_model_to_onnx(saved_model: Path, path: Path, outputs: tuple[str, ...]) -> None:
    """A SavedModel's serving signature as ONNX, its tensors named `pixels` and `outputs`."""
    import tf2onnx
    from tf2onnx import tf_loader

    from imgclf.deploy import onnx_gradients

    onnx_gradients.register()
    # tf2onnx notes each default it takes, and TensorFlow that its freezing API is old:
    # neither is the user's to act on.
    for name in ("tf2onnx", "tensorflow"):
        logging.getLogger(name).setLevel(logging.ERROR)
    graph_def, inputs, found, renamed = tf_loader.from_saved_model(
        str(saved_model), None, None, return_tensors_to_rename=True
    )
    # The signature's input (args_0) made readable; its outputs are named by their keys.
    names = {inputs[0]: INPUT, **{tensor: renamed[tensor] for tensor in found}}
    if sorted(names[tensor] for tensor in found) != sorted(outputs):
        raise ValueError(f"{saved_model} answers {sorted(found)}, expected {sorted(outputs)}")
    with _deterministic_optimizers():
        converted, _ = tf2onnx.convert.from_graph_def(
            graph_def, input_names=inputs, output_names=sorted(found), opset=OPSET,
            tensors_to_rename={tensor: names[tensor] for tensor in renamed},
        )  # fmt: skip
    path.write_bytes(canonical(converted).SerializeToString(deterministic=True))


# tf2onnx's optimizers that walk sets of graph nodes, whose order follows their memory
# addresses: the same model then converts to a differently arranged graph in each process.
# onnxruntime makes the same kind of rewrites itself when it loads a model.
_UNORDERED_OPTIMIZERS = ("optimize_transpose", "remove_back_to_back")


@contextlib.contextmanager
def _deterministic_optimizers() -> Iterator[None]:
    from tf2onnx import optimizer

    every = optimizer._optimizers
    optimizer._optimizers = type(every)(
        (name, factory) for name, factory in every.items() if name not in _UNORDERED_OPTIMIZERS
    )
    try:
        yield
    finally:
        optimizer._optimizers = every


def write_onnx(saved_model: Path, path: Path) -> None:
    """The export's SavedModel as ONNX: input `pixels`, outputs `probabilities` and
    `unfamiliarity`."""
    saved_model_to_onnx(saved_model, path, OUTPUTS)


def write_explain_onnx(model: keras.Model, path: Path) -> None:
    """Grad-CAM as ONNX: one image's `pixels` in; the served `probabilities` and the
    `heatmap` of the predicted class, in [0, 1] at the feature map's size, out.

    The gradient ops TensorFlow emits for ReLU and max pooling have no ONNX converter
    of their own in tf2onnx; onnx_gradients.py gives them one. The graph takes one
    image at a time: with the batch size unknown, the gradient of global average
    pooling reshapes by a shape tensor that tf2onnx converts wrongly.
    """
    module = tf.Module()
    module.model = model  # tracks the variables the function reads
    spec = tf.TensorSpec((1, *model.input_shape[1:]), tf.float32, name=INPUT)
    gradcam = GradCam(model)

    def explain(pixels: tf.Tensor) -> dict[str, tf.Tensor]:
        return dict(zip(EXPLAIN_OUTPUTS, gradcam.explain_graph(pixels), strict=True))

    module.explain = tf.function(explain, input_signature=[spec])
    with tempfile.TemporaryDirectory() as folder:
        tf.saved_model.save(module, folder, signatures=module.explain)
        saved_model_to_onnx(Path(folder), path, EXPLAIN_OUTPUTS)


def write_tflite(saved_model: Path, path: Path) -> None:
    """The SavedModel as a float32 LiteRT flatbuffer."""
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    path.write_bytes(converter.convert())


def write_tflite_int8(saved_model: Path, path: Path, calibration: np.ndarray) -> None:
    """The SavedModel fully integer-quantized, ranges calibrated on `calibration` images."""

    def representative() -> Iterator[list[np.ndarray]]:
        for image in calibration:
            yield [image[None].astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    # Every op in int8 (no float fallback); the model's input and output stay float32.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    path.write_bytes(converter.convert())


@dataclass(frozen=True)
class Sources:
    """What the converters read."""

    saved_model: Path  # every format's source
    onnx: Path  # the float ONNX file, which the ONNX int8 file quantizes
    calibration: np.ndarray  # training images whose activations set the int8 ranges
    check: np.ndarray  # other images the ONNX int8 file's float prefix is chosen on


def write_onnx_int8_from(sources: Sources, path: Path) -> dict:
    """The float ONNX file (converted here when the export has none) quantized into `path`;
    what the quantization chose, for the format's report."""
    with tempfile.TemporaryDirectory() as folder:
        float_onnx = sources.onnx
        if not float_onnx.is_file():
            float_onnx = Path(folder) / "float.onnx"
            write_onnx(sources.saved_model, float_onnx)
        quantized = write_onnx_int8(float_onnx, path, sources.calibration, sources.check)
    return asdict(quantized)


# Each converted format of the bundle (bundle.CONVERTED), written from the sources into a
# file; what it returns joins the format's report (empty: nothing to add).
CONVERTERS: dict[str, Callable[[Sources, Path], dict | None]] = {
    "onnx": lambda sources, path: write_onnx(sources.saved_model, path),
    "tflite": lambda sources, path: write_tflite(sources.saved_model, path),
    "tflite_int8": lambda sources, path: write_tflite_int8(
        sources.saved_model, path, sources.calibration
    ),
    "onnx_int8": write_onnx_int8_from,
}
