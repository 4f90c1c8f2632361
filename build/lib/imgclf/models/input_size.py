"""Each family sees images at its own size: prepared pixels are resized inside the model.

`prepare` keeps the data at one size (prepared/classes.json); a family whose
`image_size` differs resizes inside its model, so the saved model still takes
pixels at the prepared size, as the decoder makes them. `image_size: auto` gives
the prepared size kept within the family's bounds (its `auto_input_size`): a
pretrained base is given enough pixels for its features to be good, a small
network trained from scratch no more than it can use.
"""

from __future__ import annotations

from keras import layers

from imgclf.models.registry import ModelFamily


def input_size(family: ModelFamily, param: int | str, prepared_size: int) -> int:
    """The side a family's model works at: its params' `image_size`, or auto's choice."""
    if param != "auto":
        return int(param)
    low, high = family.auto_input_size
    return min(high, max(low, prepared_size))


def resize_to(pixels, size: int):
    """`pixels` resized to `size` x `size` inside the model (a named layer), or as they are."""
    if pixels.shape[1] == size and pixels.shape[2] == size:
        return pixels
    # Shrinking averages the pixels a sample covers, as the decoder's fit does. Enlarging
    # needs no such filter (TensorFlow's antialiased resize gives the same pixels), and
    # plain bilinear resizing converts to every runtime: LiteRT has no antialiased op.
    shrinking = size < pixels.shape[1]
    return layers.Resizing(
        size, size, interpolation="bilinear", antialias=shrinking, name="resize"
    )(pixels)
