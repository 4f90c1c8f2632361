"""ONNX converters for the gradient ops in Grad-CAM's graph, which tf2onnx 1.17 lacks.

Grad-CAM differentiates the class score with respect to a feature map, so its graph
holds TensorFlow's gradient ops for whatever follows the map: ReluGrad, Relu6Grad
and the depthwise convolution's (EfficientNet-Lite), MaxPoolGrad (the CNN's
pooling), BiasAddGrad and ShapeN (ResNet50's convolutions). Each is written here
with plain ONNX ops; so is the antialiased resize of a model that shrinks its input.

MaxPoolGrad shares the gradient of a window equally among the positions that hold
its maximum, where TensorFlow gives it all to the first: Grad-CAM weighs each channel
by the mean of its gradient over the map, and the share changes no channel's sum, so
the heatmaps are the same. Only non-overlapping windows (pool size = stride), the
Keras MaxPooling2D default, are supported.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto

_REGISTERED = False


def register() -> None:
    """Add the converters to tf2onnx's registry (once per process)."""
    global _REGISTERED
    if _REGISTERED:
        return
    from tf2onnx.handler import tf_op

    for op, (opset, convert) in CONVERTERS.items():
        # tf2onnx registers a class whose version_<opset> converts a node of `op`.
        tf_op(op)(type(op, (), {f"version_{opset}": classmethod(_handler(convert))}))
    _REGISTERED = True


def _handler(convert):
    """tf2onnx's handler signature around a converter of (ctx, node)."""

    def version(cls, ctx, node, **kwargs):
        convert(ctx, node)

    return version


def _const(ctx, name: str, value: np.ndarray) -> str:
    from tf2onnx import utils

    return ctx.make_const(utils.make_name(name), value).output[0]


def _replace(ctx, node, op_type: str, inputs: list[str], **attr) -> None:
    shapes, dtypes = node.output_shapes, node.output_dtypes
    ctx.remove_node(node.name)
    ctx.make_node(op_type, inputs, attr=attr, outputs=node.output, name=node.name,
                  shapes=shapes, dtypes=dtypes)  # fmt: skip


def _as_float(ctx, condition: str) -> str:
    return ctx.make_node("Cast", [condition], attr={"to": TensorProto.FLOAT}).output[0]


def _scale_and_translate(ctx, node) -> None:
    """An antialiased resize (a model shrinking its input): ONNX's Resize does the same
    since opset 18, stretching the linear filter by the shrink factor."""
    if node.get_attr_str("kernel_type") != "triangle":
        raise ValueError(f"{node.name}: only the triangle (bilinear) kernel converts")
    images, size = node.input[0], node.input[1]
    sizes = ctx.make_node("Cast", [size], attr={"to": TensorProto.INT64}).output[0]
    _replace(
        ctx, node, "Resize", [images, "", "", sizes], axes=[1, 2], mode="linear",
        antialias=1, coordinate_transformation_mode="half_pixel",
    )  # fmt: skip


def _relu_grad(ctx, node) -> None:
    gradients, features = node.input
    zero = _const(ctx, "zero", np.array(0, np.float32))
    passes = _as_float(ctx, ctx.make_node("Greater", [features, zero]).output[0])
    _replace(ctx, node, "Mul", [gradients, passes])


def _relu6_grad(ctx, node) -> None:
    gradients, features = node.input
    zero = _const(ctx, "zero", np.array(0, np.float32))
    six = _const(ctx, "six", np.array(6, np.float32))
    above = ctx.make_node("Greater", [features, zero]).output[0]
    below = ctx.make_node("Less", [features, six]).output[0]
    inside = ctx.make_node("And", [above, below]).output[0]
    _replace(ctx, node, "Mul", [gradients, _as_float(ctx, inside)])


def _bias_add_grad(ctx, node) -> None:
    """The gradient of a bias: the graph computes it beside the one Grad-CAM reads."""
    rank = len(ctx.get_shape(node.input[0]))
    axes = _const(ctx, "axes", np.arange(rank - 1, dtype=np.int64))
    _replace(ctx, node, "ReduceSum", [node.input[0], axes], keepdims=0)


def _shape_n(ctx, node) -> None:
    """The shapes of several tensors at once: the gradient of a convolution asks for them."""
    inputs, outputs, dtypes = node.input, node.output, node.output_dtypes
    to = node.get_attr_value("out_type", TensorProto.INT32)
    ctx.remove_node(node.name)
    for tensor, output, dtype in zip(inputs, outputs, dtypes, strict=True):
        shape = ctx.make_node("Shape", [tensor]).output[0]
        ctx.make_node("Cast", [shape], attr={"to": to}, outputs=[output], dtypes=[dtype])


def _depthwise_conv2d_native_backprop_input(ctx, node) -> None:
    """The gradient of a depthwise convolution (EfficientNet-Lite's) with respect to its
    input: the transposed convolution, one group per channel, with the forward
    convolution's own padding (TensorFlow's SAME puts the odd pixel at the end)."""
    if node.get_attr_str("data_format") != "NHWC":
        raise ValueError(f"{node.name}: converted for NHWC only")
    if set(node.get_attr_value("dilations", [1, 1, 1, 1])) != {1}:
        raise ValueError(f"{node.name}: dilated convolutions are not converted")
    _, kernel, gradients = node.input
    k_h, k_w, channels, multiplier = ctx.get_shape(kernel)
    if multiplier != 1:
        raise ValueError(f"{node.name}: only a depth multiplier of 1 is converted")
    _, height, width, _ = node.output_shapes[0]
    _, rows, cols, _ = ctx.get_shape(gradients)
    stride = node.get_attr_value("strides")
    same = node.get_attr_str("padding") == "SAME"
    pads, extra = [], []
    for size, out, k, s in ((height, rows, k_h, stride[1]), (width, cols, k_w, stride[2])):
        total = max((out - 1) * s + k - size, 0) if same else 0
        pads.append((total // 2, total - total // 2))
        extra.append(size - ((out - 1) * s + k - total))
    nchw = ctx.make_node("Transpose", [gradients], attr={"perm": [0, 3, 1, 2]}).output[0]
    weights = ctx.make_node("Transpose", [kernel], attr={"perm": [2, 3, 0, 1]}).output[0]
    transposed = ctx.make_node("ConvTranspose", [nchw, weights], attr={
        "group": channels, "kernel_shape": [k_h, k_w], "strides": stride[1:3],
        "pads": [pads[0][0], pads[1][0], pads[0][1], pads[1][1]],
        "output_padding": extra,
    }).output[0]  # fmt: skip
    _replace(ctx, node, "Transpose", [transposed], perm=[0, 2, 3, 1])


def _max_pool_grad(ctx, node) -> None:
    if node.get_attr_str("data_format") != "NHWC":
        raise ValueError(f"{node.name}: MaxPoolGrad is converted for NHWC only")
    ksize, strides = node.get_attr_value("ksize"), node.get_attr_value("strides")
    if ksize != strides or ksize[0] != 1 or ksize[3] != 1:
        raise ValueError(f"{node.name}: only pool size = stride is converted")
    pixels, pooled, gradients = node.input
    _, height, width, channels = ctx.get_shape(pixels)
    _, rows, cols, _ = ctx.get_shape(pooled)
    k_h, k_w = ksize[1], ksize[2]
    if min(height, width, channels, rows, cols) < 1:
        raise ValueError(f"{node.name}: MaxPoolGrad needs static spatial shapes")
    covered = pixels
    if (rows * k_h, cols * k_w) != (height, width):  # VALID drops the last rows
        covered = ctx.make_node("Slice", [
            pixels, _const(ctx, "starts", np.array([0, 0], np.int64)),
            _const(ctx, "ends", np.array([rows * k_h, cols * k_w], np.int64)),
            _const(ctx, "axes", np.array([1, 2], np.int64)),
        ]).output[0]  # fmt: skip
    windows = _const(ctx, "windows", np.array([-1, rows, k_h, cols, k_w, channels]))
    one_per_window = _const(ctx, "one", np.array([-1, rows, 1, cols, 1, channels]))
    grid = ctx.make_node("Reshape", [covered, windows]).output[0]
    maxima = ctx.make_node("Reshape", [pooled, one_per_window]).output[0]
    held = _as_float(ctx, ctx.make_node("Equal", [grid, maxima]).output[0])
    window_axes = _const(ctx, "axes", np.array([2, 4], np.int64))
    count = ctx.make_node("ReduceSum", [held, window_axes], attr={"keepdims": 1}).output[0]
    per_window = ctx.make_node("Reshape", [gradients, one_per_window]).output[0]
    share = ctx.make_node("Div", [per_window, count]).output[0]
    spread = ctx.make_node("Mul", [held, share]).output[0]
    image = _const(ctx, "image", np.array([-1, rows * k_h, cols * k_w, channels]))
    if covered is pixels:
        _replace(ctx, node, "Reshape", [spread, image])
        return
    flat = ctx.make_node("Reshape", [spread, image]).output[0]
    pads = np.array([0, 0, 0, 0, 0, height - rows * k_h, width - cols * k_w, 0])
    _replace(ctx, node, "Pad", [flat, _const(ctx, "pads", pads)])


# TensorFlow's op -> (the ONNX opset its converter is for, the converter). A new base whose
# Grad-CAM graph holds another gradient op needs its converter here; until then the
# export ships the base's ONNX model without its heatmap graph (deploy/parity.py).
CONVERTERS = {
    "ScaleAndTranslate": (18, _scale_and_translate),
    "ReluGrad": (13, _relu_grad),
    "Relu6Grad": (13, _relu6_grad),
    "BiasAddGrad": (13, _bias_add_grad),
    "ShapeN": (13, _shape_n),
    "DepthwiseConv2dNativeBackpropInput": (13, _depthwise_conv2d_native_backprop_input),
    "MaxPoolGrad": (13, _max_pool_grad),
}
