"""imgclf.deploy.onnx_canonical: one graph, however its nodes were ordered and named."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
from onnx import helper, numpy_helper

from imgclf.deploy.onnx_canonical import canonical


def graph(order: list[int], names: list[str]) -> onnx.ModelProto:
    """y = relu(x * w) + relu(x * w) + b, its nodes in `order`, intermediates called `names`."""
    a, b, c, d = names
    nodes = [
        helper.make_node("Mul", ["x", "w"], [a], name=f"{a}_node"),
        helper.make_node("Relu", [a], [b], name=f"{b}_node"),
        helper.make_node("Mul", ["x", "w"], [c], name=f"{c}_node"),  # a duplicate of the first
        helper.make_node("Relu", [c], [d], name=f"{d}_node"),
        helper.make_node("Sum", [b, d, "bias"], ["y"], name="sum"),
    ]
    initializers = [
        numpy_helper.from_array(np.array([2.0, -1.0], np.float32), "w"),
        numpy_helper.from_array(np.array([0.5, 0.5], np.float32), "bias"),
    ]
    return helper.make_model(
        helper.make_graph(
            [nodes[i] for i in order], "g",
            [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
            [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])], initializers,
        ),
        opset_imports=[helper.make_opsetid("", 18)], ir_version=8,
    )  # fmt: skip


def run(model: onnx.ModelProto) -> np.ndarray:
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    return session.run(None, {"x": np.array([1.0, 3.0], np.float32)})[0]


def test_order_and_names_do_not_change_the_bytes_or_the_answer():
    first = graph([0, 1, 2, 3, 4], ["a", "b", "c", "d"])
    second = graph([2, 0, 3, 1, 4], ["p", "qq", "r", "sss"])
    expected = run(first)
    one, two = canonical(first), canonical(second)
    assert one.SerializeToString() == two.SerializeToString()
    np.testing.assert_allclose(run(one), expected)
    assert [node.op_type for node in one.graph.node] == ["Mul", "Relu", "Sum"]  # merged
    assert [i.name for i in one.graph.input] == ["x"] and one.graph.output[0].name == "y"
