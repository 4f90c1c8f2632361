"""Test-time augmentation inside the exported model: the views of each image, averaged.

    pixels -> Views("flips")      -> [image; mirrored image]       (one batch, 2x as long)
           -> trained model       -> probabilities of every view
           -> FromViews(2)        -> their mean, one row per image
           -> FromViews(2, "first") -> the image's own features (the unfamiliarity score's)

The views are layers of the model, so the SavedModel and the ONNX and LiteRT files all
compute them: every runtime answers the same, and parity is checked as before. All views
go through the network as one batch (one call, not one per view). What each kind costs
is its number of views: a forward pass each.

    none          the image
    flips         the image and its mirror image (left-right)
    flips_crops   those two and the centre CROP of each, enlarged back to the full size
"""

from __future__ import annotations

import keras
from keras import layers, ops

KINDS = {"none": 1, "flips": 2, "flips_crops": 4}  # each kind and its number of views
CROP = 0.875  # the centre crop's side, as a share of the image's


@keras.saving.register_keras_serializable(package="imgclf")
class Views(layers.Layer):
    """An image batch as the batch of its views, view after view (`KINDS`)."""

    def __init__(self, kind: str, **kwargs) -> None:
        super().__init__(**kwargs)
        if kind not in KINDS:
            raise ValueError(f"test-time augmentation {kind!r}: expected one of {list(KINDS)}")
        self.kind = kind

    def call(self, pixels):
        views = [pixels]
        if self.kind in ("flips", "flips_crops"):
            views.append(ops.flip(pixels, axis=2))
        if self.kind == "flips_crops":
            height, width = pixels.shape[1], pixels.shape[2]
            top, left = round(height * (1 - CROP) / 2), round(width * (1 - CROP) / 2)
            crop = pixels[:, top : height - top, left : width - left, :]
            enlarged = ops.image.resize(crop, (height, width), interpolation="bilinear")
            views += [enlarged, ops.flip(enlarged, axis=2)]
        return ops.concatenate(views, axis=0)

    def compute_output_shape(self, input_shape):
        batch = None if input_shape[0] is None else input_shape[0] * KINDS[self.kind]
        return (batch, *input_shape[1:])

    def get_config(self) -> dict:
        return {**super().get_config(), "kind": self.kind}


@keras.saving.register_keras_serializable(package="imgclf")
class FromViews(layers.Layer):
    """One row per image from the rows of its views (laid out as Views lays them): their
    mean ("mean"), or the image's own row ("first")."""

    def __init__(self, views: int, take: str = "mean", **kwargs) -> None:
        super().__init__(**kwargs)
        self.views, self.take = views, take

    def call(self, rows):
        by_view = ops.reshape(rows, (self.views, -1, rows.shape[-1]))
        return ops.mean(by_view, axis=0) if self.take == "mean" else by_view[0]

    def compute_output_shape(self, input_shape):
        return (None, input_shape[-1])

    def get_config(self) -> dict:
        return {**super().get_config(), "views": self.views, "take": self.take}


def averaged(model: keras.Model, kind: str) -> keras.Model:
    """`model` (pixels to probabilities) answering the mean of its `kind` views' answers."""
    if kind == "none":
        return model
    inputs = keras.Input(model.input_shape[1:], name="pixels")
    probabilities = FromViews(KINDS[kind], name="tta_mean")(model(Views(kind)(inputs)))
    return keras.Model(inputs, probabilities, name=f"{model.name}_tta")
