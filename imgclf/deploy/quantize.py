"""The int8 ONNX file: the float ONNX file statically quantized by onnxruntime's quantizer.

QDQ format, weights int8 per output channel, activations uint8 per tensor: the U8S8
kernels onnxruntime runs fastest on x86 (with AVX-512 VNNI or AVX-VNNI; on older AVX2
CPUs onnxruntime documents a possible saturation). Activation ranges are the min and
max seen on a fixed sample of training images (export.quantization_images).

Three parts stay float, because int8 costs them accuracy and buys little speed:

- the pooled features, and what reads them before the classifier's first matrix
  product: the transfer head's per-feature standardization multiplies the rounding
  error of a feature that hardly varies (its input, standardized, quantizes well);
- the unfamiliarity score (models/familiarity.py), whose whitening magnifies narrow
  directions; its matrices are stored int8 and dequantized as they are read, so the
  file is small all the same;
- the first convolutions, as few as do most of the good: their rounding error travels
  through the whole network. The export quantizes with each of FLOAT_PREFIXES kept
  float and measures how far the probabilities move from the float file's on check
  images (validation images, then training images the calibration did not see; the
  mean total variation distance), and keeps the fewest whose movement is within
  SLACK times the smallest. On EfficientNet-Lite0 and 264 test photos (docs/
  benchmarks.md "int8"), every convolution in int8 moved the probabilities by 0.060
  and kept the float top class on 97.3%; the stem and the first blocks float (5 of
  49), 0.024 and 100%; the movement levels off there (0.017 with 20 float). The test
  split then judges the file like every other format (deploy/parity.py).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from imgclf.bundle import PROBABILITIES
from imgclf.deploy.onnx_canonical import canonical

FLOAT_PREFIXES = (0, 1, 2, 3, 5, 8, 13)  # leading convolutions kept float, each tried
SLACK = 1.5  # the fewest float convolutions that move the probabilities <= SLACK x the least
CHECK_IMAGES = 1000  # images the float prefix is chosen on, at most
BATCH = 32
POOLING = ("ReduceMean", "GlobalAveragePool", "GlobalMaxPool", "ReduceMax")
PRODUCTS = ("MatMul", "Gemm")


@dataclass(frozen=True)
class Quantized:
    """How the int8 file was made: the leading convolutions left float; on the check
    images, the share whose top class is the float file's and how far its probabilities
    moved (mean total variation distance)."""

    float_convolutions: int
    check_agreement: float
    check_probability_change: float


def write_onnx_int8(
    float_onnx: Path, path: Path, calibration: np.ndarray, check: np.ndarray
) -> Quantized:
    """`float_onnx` quantized into `path`: ranges from the `calibration` images, the float
    prefix chosen on the `check` images (none of them among the calibration images)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    check = np.asarray(check[:CHECK_IMAGES], dtype=np.float32)
    with tempfile.TemporaryDirectory() as folder:
        # onnxruntime's own clean-up first (removes the layout transposes around each
        # convolution, folds its bias), so the quantizer sees whole convolutions.
        prepared = Path(folder) / "prepared.onnx"
        quant_pre_process(str(float_onnx), str(prepared), skip_symbolic_shape=True)
        graph = onnx.load(prepared).graph
        convolutions = [node.name for node in graph.node if node.op_type == "Conv"]
        floats = float_nodes(graph)
        expected = _probabilities(prepared, check)
        tried = {}
        for prefix in (p for p in FLOAT_PREFIXES if p < len(convolutions)):
            candidate = Path(folder) / f"int8_{prefix}.onnx"
            _quantize(prepared, candidate, calibration, floats + convolutions[:prefix])
            found = _probabilities(candidate, check)
            tried[prefix] = Quantized(
                prefix,
                round(float((found.argmax(1) == expected.argmax(1)).mean()), 6),
                round(float(0.5 * np.abs(found - expected).sum(axis=1).mean()), 6),
            )
        quantized = fewest_within_slack(list(tried.values()))
        chosen = Path(folder) / f"int8_{quantized.float_convolutions}.onnx"
        model = _int8_weights(onnx.load(chosen), set(floats))
        path.write_bytes(canonical(model).SerializeToString(deterministic=True))
    return quantized


def fewest_within_slack(tried: list[Quantized]) -> Quantized:
    """Of the quantizations `tried` (fewest float convolutions first), the first whose
    probabilities moved at most SLACK times as far as the least moved."""
    least = min(quantized.check_probability_change for quantized in tried)
    return next(q for q in tried if q.check_probability_change <= SLACK * least)


def float_nodes(graph: onnx.GraphProto) -> list[str]:
    """The nodes that stay float: those computed from the pooled features, except the
    classifier's matrix products and activations before its softmax (see the module's
    docstring). The softmax and what follows it (a mean over test-time views) stay float."""
    tainted, after = set(), []
    for node in graph.node:  # topologically ordered, as ONNX requires
        if node.op_type in POOLING or tainted & set(node.input):
            tainted.update(node.output)
            after.append(node)
    probabilities = _ancestors(graph, {PROBABILITIES})
    others = _ancestors(graph, {o.name for o in graph.output} - {PROBABILITIES})
    classifier, started, ended = set(), False, False
    for node in after:
        only_probabilities = node.name in probabilities and node.name not in others
        started = started or (only_probabilities and node.op_type in PRODUCTS)
        ended = ended or (only_probabilities and node.op_type == "Softmax")
        if started and not ended and only_probabilities:
            classifier.add(node.name)
    return [node.name for node in after if node.name not in classifier]


def _ancestors(graph: onnx.GraphProto, outputs: set[str]) -> set[str]:
    """The names of the nodes that `outputs` (tensor names) are computed from."""
    needed, names = set(outputs), set()
    for node in reversed(graph.node):
        if needed & set(node.output):
            names.add(node.name)
            needed.update(node.input)
    return names


def _int8_weights(model: onnx.ModelProto, nodes: set[str]) -> onnx.ModelProto:
    """`model` with the constant weights of the matrix products among `nodes` stored int8,
    symmetric per output column, and dequantized where they are read: the file is smaller,
    the arithmetic stays float (its inputs are the pooled features, see the docstring)."""
    graph = model.graph
    constants = {tensor.name: tensor for tensor in graph.initializer}
    for node in [node for node in graph.node if node.name in nodes]:
        if node.op_type not in ("MatMul", "Gemm") or node.input[1] not in constants:
            continue
        if node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute):
            continue  # (out, in): its columns are not the outputs; left float
        weights = numpy_helper.to_array(constants[node.input[1]])
        if weights.ndim != 2:
            continue
        scale = np.maximum(np.abs(weights).max(axis=0), np.finfo(np.float32).tiny) / 127
        stored = np.clip(np.round(weights / scale), -127, 127).astype(np.int8)
        name = node.input[1]
        graph.initializer.remove(constants[name])
        graph.initializer.extend([
            numpy_helper.from_array(stored, f"{name}_int8"),
            numpy_helper.from_array(scale.astype(np.float32), f"{name}_scale"),
        ])  # fmt: skip
        dequantize = onnx.helper.make_node(
            "DequantizeLinear", [f"{name}_int8", f"{name}_scale"], [f"{name}_dequantized"], axis=1
        )
        position = list(graph.node).index(node)
        graph.node.insert(position, dequantize)
        node.input[1] = f"{name}_dequantized"
    return model


def _quantize(source: Path, target: Path, calibration: np.ndarray, floats: list[str]) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Images(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = _batches(calibration)

        def get_next(self) -> dict | None:
            batch = next(self._batches, None)
            return None if batch is None else {_input_name(source): batch}

    quantize_static(
        str(source), str(target), Images(), quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=floats,
        # The classifier's products answer float: the probabilities keep their digits.
        extra_options={"OpTypesToExcludeOutputQuantization": list(PRODUCTS)},
    )  # fmt: skip


def _batches(images: np.ndarray) -> Iterator[np.ndarray]:
    for start in range(0, len(images), BATCH):
        yield np.asarray(images[start : start + BATCH], dtype=np.float32)


def _input_name(path: Path) -> str:
    return onnx.load(path, load_external_data=False).graph.input[0].name


def _probabilities(path: Path, images: np.ndarray) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate(
        [session.run([PROBABILITIES], {name: batch})[0] for batch in _batches(images)]
    )
