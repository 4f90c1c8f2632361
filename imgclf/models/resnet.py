"""ResNet50 transfer learning: Keras' ResNet50 without its top, frozen, with a new head.

ImageNet weights come from a local file, the Keras cache, or a download; offline,
with none of them, training goes on from a random base (loudly) unless
resnet.require_pretrained asks to stop. `preprocess_input` (RGB to BGR, ImageNet
means subtracted) is inside the model, so the saved model takes plain RGB pixels.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import keras

from imgclf.models.contract import WeightsSource
from imgclf.models.registry import ResnetParams
from imgclf.models.transfer import PretrainedWeightsError

FEATURES = 2048  # ResNet50's last block has 2048 channels
preprocess = keras.applications.resnet50.preprocess_input

# The file Keras publishes for ResNet50 without its top, and its md5 (keras.applications.resnet).
WEIGHTS_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
WEIGHTS_URL = f"https://storage.googleapis.com/tensorflow/keras-applications/resnet/{WEIGHTS_FILE}"
WEIGHTS_MD5 = "4d473c1dd8becc155b73f8504c6f6626"


def resnet50(input_size: int) -> keras.Model:
    """ResNet50 without its ImageNet classifier, at `input_size`; weights are loaded separately."""
    return keras.applications.ResNet50(
        include_top=False, weights=None, input_shape=(input_size, input_size, 3)
    )


def build_base(input_size: int, params: ResnetParams) -> keras.Model:
    """The family's base (contract.TransferFamily): ResNet50 has no variants, its params
    group only says where the weights come from (load_weights)."""
    return resnet50(input_size)


def load_weights(base: keras.Model, params: ResnetParams) -> WeightsSource:
    """resnet.weights into the base (see load_base_weights)."""
    return load_base_weights(base, params.weights, params.require_pretrained)


def keras_cache_file() -> Path:
    """Where Keras keeps downloaded weights: $KERAS_HOME/models, else ~/.keras/models."""
    home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return home / "models" / WEIGHTS_FILE


def _download() -> Path:
    return Path(
        keras.utils.get_file(
            WEIGHTS_FILE, WEIGHTS_URL, cache_subdir="models", file_hash=WEIGHTS_MD5
        )
    )


def load_base_weights(base: keras.Model, weights: str, require_pretrained: bool) -> WeightsSource:
    """Load resnet.weights into the base; fall back to random weights, loudly, when offline."""
    if weights == "none":
        return WeightsSource(False, "random initialisation (resnet.weights: none)")
    if weights == "imagenet":
        path = keras_cache_file()
        if not path.is_file():
            try:
                path = _download()
            except Exception as exc:  # Keras wraps every network failure in a bare Exception
                return _no_imagenet_weights(str(exc), require_pretrained)
    else:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(
                f"resnet.weights = {weights!r}: file not found; give the path of a ResNet50 "
                "weights file (.h5), or use imagenet or none"
            )
    try:
        base.load_weights(path)
    except (ValueError, OSError, KeyError) as exc:
        raise PretrainedWeightsError(
            f"resnet.weights: {path} could not be loaded into ResNet50 without its top "
            f"(include_top=False): {exc}. Use Keras' {WEIGHTS_FILE}."
        ) from None
    return WeightsSource(True, str(path))


def _no_imagenet_weights(reason: str, require_pretrained: bool) -> WeightsSource:
    message = (
        f"ImageNet weights for ResNet50 are not available ({reason}).\n"
        f"  To use them, download {WEIGHTS_URL}\n"
        f"  and put it at {keras_cache_file()} (the Keras cache),\n"
        "  or set resnet.weights to its path.\n"
    )
    if require_pretrained:
        raise PretrainedWeightsError(message + "  resnet.require_pretrained is true: stopping.")
    banner = "!" * 78
    print(
        f"{banner}\nWARNING: {message}"
        "  Training ResNet50 from a RANDOMLY INITIALISED base instead: expect poor accuracy.\n"
        f"  The metrics record pretrained: false.\n{banner}",
        file=sys.stderr,
    )
    return WeightsSource(False, f"random initialisation (ImageNet weights unavailable: {reason})")
