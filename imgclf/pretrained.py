"""Where ResNet50's ImageNet weights come from: a local file, the Keras cache, or a download."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import keras

from imgclf.params import ParamsError

# The file Keras publishes for ResNet50 without its top, and its md5 (keras.applications.resnet).
WEIGHTS_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
WEIGHTS_URL = f"https://storage.googleapis.com/tensorflow/keras-applications/resnet/{WEIGHTS_FILE}"
WEIGHTS_MD5 = "4d473c1dd8becc155b73f8504c6f6626"


class PretrainedWeightsError(ParamsError):
    """ImageNet weights were required (resnet.require_pretrained) but could not be had."""


@dataclass(frozen=True)
class WeightsSource:
    pretrained: bool
    source: str  # the file loaded, or why none was


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
