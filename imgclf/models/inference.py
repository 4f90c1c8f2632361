"""Running a model over many images: one traced forward call, batch by batch.

Training (validation predictions, cached features), evaluation, the audit and the
export all predict this way, so it lives under all of them, beside the models.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator

import keras
import numpy as np
import tensorflow as tf

from imgclf.data.prepared import release_pages


def inference_batch_size(image_size: int) -> int:
    """Images per forward pass at inference: large batches for small images.

    At 32-64 px a batch of 64 leaves a deep base's many small ops dominated by per-op
    overhead (256 runs about twice as fast); at 224 px 32 images already fill the
    cores and keep activation memory under a gigabyte.
    """
    return max(32, min(256, 256 * 64 * 64 // image_size**2))


# One traced forward call per model and input shape, for every predict_in_batches call.
_TRACED: weakref.WeakKeyDictionary[keras.Model, dict[tuple, Callable]] = weakref.WeakKeyDictionary()


def traced_forward(model: keras.Model, item_shape: tuple[int, ...]) -> Callable:
    """`model(batch, training=False)` as a tf.function traced once for any batch size.

    Tracing a base such as EfficientNet-Lite0 takes about 2 s on 2 cores, longer than
    predicting a few hundred images; a function made per call (and traced again for
    the smaller last batch) paid it several times per stage. The function holds the
    model weakly, so caching it keeps no model alive.
    """
    by_shape = _TRACED.setdefault(model, {})
    if item_shape not in by_shape:
        held = weakref.ref(model)
        spec = tf.TensorSpec((None, *item_shape), tf.float32)
        by_shape[item_shape] = tf.function(
            lambda batch: held()(batch, training=False), input_signature=[spec]
        )
    return by_shape[item_shape]


def predict_batches(
    model: keras.Model,
    images: np.ndarray,
    batch_size: int,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Iterator[np.ndarray]:
    """The model's outputs for images read batch by batch, one batch at a time.

    One traced call of the model per batch, the way predict_on_batch runs it: no tf.data
    iterator (destroying one can stall, see training/batches.py) and, under multi-worker
    training, no collectives: each worker predicts everything itself, with the same
    results on all of them. `transform` (random augmentation) runs on each batch
    outside the model's graph, so every call reuses one traced model (traced_forward).
    """
    call = traced_forward(model, tuple(images.shape[1:]))
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]  # a slice of a memory map reads only it
        if transform is not None:
            batch = transform(batch)
        outputs = call(tf.cast(batch, tf.float32))
        if isinstance(outputs, dict):  # a served model: probabilities and unfamiliarity
            yield {name: output.numpy() for name, output in outputs.items()}
        else:
            yield outputs.numpy()
    release_pages(images)


def predict_in_batches(
    model: keras.Model,
    images: np.ndarray,
    batch_size: int,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """All of predict_batches' outputs in one array (memory-mapped data stays on disk):
    `out` when given, else an array allocated once the first batch shows the shape (a
    served model's: one array per output, by name)."""
    if isinstance(model.output, dict):
        named = {name: [] for name in model.output}
        for output in predict_batches(model, images, batch_size, transform):
            for name, part in output.items():
                named[name].append(part)
        return {name: np.concatenate(parts) for name, parts in named.items()}
    outputs, start = out, 0
    for output in predict_batches(model, images, batch_size, transform):
        if outputs is None:
            outputs = np.empty((len(images), *output.shape[1:]), dtype=output.dtype)
        outputs[start : start + len(output)] = output
        start += len(output)
    if outputs is None:
        return np.zeros((0, *model.output_shape[1:]), dtype=np.float32)
    return outputs
