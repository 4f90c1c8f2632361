"""imgclf.deploy.quantize: the ONNX int8 file, what stays float in it, and how that is chosen."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

from imgclf.bundle import PROBABILITIES, UNFAMILIARITY, Bundle
from imgclf.data.prepared import read_split
from imgclf.deploy import quantize
from imgclf.deploy.quantize import Quantized


def answers(model: onnx.ModelProto | bytes, **inputs) -> list[np.ndarray]:
    data = model if isinstance(model, bytes) else model.SerializeToString()
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    return session.run(None, inputs)


@pytest.mark.parametrize(
    ("changes", "chosen"),
    [
        ([0.06, 0.10, 0.03, 0.018, 0.014, 0.013], 3),  # levels off from 3: 0.018 <= 1.5 x 0.013
        ([0.01, 0.02, 0.005], 2),  # nothing but the last within reach
        ([0.0, 0.0], 0),  # already exact: no float convolution
    ],
)
def test_the_fewest_float_convolutions_within_the_slack_of_the_best_are_kept(changes, chosen):
    tried = [Quantized(index, 1.0, change) for index, change in enumerate(changes)]
    assert quantize.fewest_within_slack(tried).float_convolutions == chosen


def head_graph() -> onnx.GraphProto:
    """Pixels to a convolution, pooled; the pooled features standardized into a two-layer
    classifier (probabilities) and whitened into a score (unfamiliarity)."""
    rng = np.random.default_rng(0)

    def constant(name, shape):
        return numpy_helper.from_array(rng.normal(size=shape).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["pixels", "kernel"], ["maps"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["maps"], ["active"], name="relu"),
        helper.make_node("ReduceMean", ["active", "axes"], ["pooled"], name="pool", keepdims=0),
        helper.make_node("Sub", ["pooled", "mean"], ["centred"], name="centre"),
        helper.make_node("Mul", ["centred", "inv_std"], ["standard"], name="standardize"),
        helper.make_node("MatMul", ["standard", "hidden_w"], ["hidden"], name="hidden"),
        helper.make_node("Relu", ["hidden"], ["hidden_active"], name="hidden_relu"),
        helper.make_node("MatMul", ["hidden_active", "out_w"], ["logits"], name="logits"),
        helper.make_node("Softmax", ["logits"], [PROBABILITIES], name="softmax"),
        helper.make_node("MatMul", ["pooled", "whiten_w"], ["whitened"], name="whiten"),
        helper.make_node("ReduceMin", ["whitened", "last"], [UNFAMILIARITY], name="nearest"),
    ]
    constants = [
        constant("kernel", (8, 3, 3, 3)), constant("mean", (8,)), constant("inv_std", (8,)),
        constant("hidden_w", (8, 16)), constant("out_w", (16, 4)), constant("whiten_w", (8, 5)),
        numpy_helper.from_array(np.array([2, 3], np.int64), "axes"),
        numpy_helper.from_array(np.array([1], np.int64), "last"),
    ]  # fmt: skip
    return helper.make_graph(
        nodes, "head", [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [1, 3, 6, 6])],
        [helper.make_tensor_value_info(PROBABILITIES, TensorProto.FLOAT, None),
         helper.make_tensor_value_info(UNFAMILIARITY, TensorProto.FLOAT, None)],
        constants,
    )  # fmt: skip


def test_the_features_their_standardization_and_the_score_stay_float():
    floats = quantize.float_nodes(head_graph())
    # Pooling, standardization, the softmax and the score float; the classifier's products
    # and everything before the pooling quantized.
    assert floats == ["pool", "centre", "standardize", "softmax", "whiten", "nearest"]


def test_the_float_matrices_are_stored_int8_and_answer_as_before():
    model = helper.make_model(
        head_graph(), opset_imports=[helper.make_opsetid("", 18)], ir_version=9
    )
    pixels = np.random.default_rng(1).normal(size=(1, 3, 6, 6)).astype(np.float32)
    before = answers(model, pixels=pixels)
    smaller = quantize._int8_weights(model, {"whiten", "hidden", "conv"})
    stored = {t.name: t.data_type for t in smaller.graph.initializer}
    # the matrix products' weights (not the convolution's: the quantizer's own work)
    assert stored["whiten_w_int8"] == stored["hidden_w_int8"] == TensorProto.INT8
    assert "whiten_w" not in stored and stored["kernel"] == TensorProto.FLOAT
    after = answers(smaller, pixels=pixels)
    for old, new in zip(before, after, strict=True):
        # per-column int8: within a percent of each output's range
        np.testing.assert_allclose(new, old, atol=0.02 * np.abs(old).max() + 1e-6)


def test_the_int8_file_is_quantized_deterministic_and_keeps_the_float_answers(
    tiny_project, tmp_path
):
    bundle = Bundle(tiny_project / "models" / "best")
    train = read_split("train", tiny_project / "prepared")
    test = read_split("test", tiny_project / "prepared").images.astype(np.float32)
    first, second = tmp_path / "a.onnx", tmp_path / "b.onnx"
    made = quantize.write_onnx_int8(bundle.file("onnx"), first, train.images[:8], train.images[8:])
    quantize.write_onnx_int8(bundle.file("onnx"), second, train.images[:8], train.images[8:])
    assert first.read_bytes() == second.read_bytes()  # dvc.lock stays put on a re-run
    graph = onnx.load(first).graph
    convolutions = sum(node.op_type == "Conv" for node in graph.node)
    assert made.float_convolutions in quantize.FLOAT_PREFIXES
    assert made.float_convolutions < convolutions and 0 <= made.check_agreement <= 1
    assert sum(node.op_type == "QuantizeLinear" for node in graph.node) > 0
    assert first.stat().st_size < bundle.file("onnx").stat().st_size
    float_answers = answers(bundle.file("onnx").read_bytes(), pixels=test)
    int8_answers = answers(first.read_bytes(), pixels=test)
    assert [a.shape for a in int8_answers] == [a.shape for a in float_answers]
    np.testing.assert_allclose(int8_answers[0].sum(axis=1), 1.0, atol=1e-4)
    assert np.abs(int8_answers[0] - float_answers[0]).max() < 0.5
