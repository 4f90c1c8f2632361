"""Grad-CAM: where in an image the served model looked for the class it chose.

Follows the keras.io example "Grad-CAM class activation visualization": the
gradient of the class score with respect to a convolutional feature map, averaged
over the map, weighs the map's channels; their weighted sum, through a ReLU, is
the heatmap. The class score is the log-probability of the class in the
uncalibrated model (temperature scaling rescales every gradient alike, so the
normalized map is the same).

The feature map is the last convolutional activation that is still at least
MIN_MAP_SIDE cells wide: at the small sizes this project trains at, ResNet50's
last block is 1x1 or 2x2 (a single colour, no "where"), so an earlier block's
output is used; at 224 px it is the last block, as in the paper. Drawing the map
over the image is heatmap.py. Which model is which family, and where a transfer
family keeps its pretrained base, the model registry says (models/registry.py).
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from imgclf.models import family_of
from imgclf.models.served import unwrap

MIN_MAP_SIDE = 4


def map_layer(model: keras.Model) -> keras.Layer:
    """The last activation layer whose output is a feature map at least MIN_MAP_SIDE wide."""
    maps = [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.Activation | keras.layers.ReLU)
        and len(layer.output.shape) == 4
    ]
    if not maps:
        raise ValueError(f"model {model.name!r} has no convolutional feature map to explain")
    wide = [layer for layer in maps if min(layer.output.shape[1:3]) >= MIN_MAP_SIDE]
    return (wide or maps[:1])[-1]


class GradCam:
    """Heatmaps for a served model of any registered family."""

    def __init__(self, model: keras.Model) -> None:
        inner, self._served = unwrap(model)
        family = family_of(inner)
        if family is not None and family.transfer is not None:
            # pixels -> preprocessing -> pretrained base -> pooling -> head (models/transfer.py)
            parts = family.transfer
            extractor = inner.get_layer(parts.extractor)
            base, head = extractor.get_layer(parts.base), inner.get_layer(parts.head)
            resize = next((x for x in extractor.layers if x.name == "resize"), None)
            layer = map_layer(base)
            base_maps = keras.Model(base.inputs, [layer.output, *base.outputs])

            def forward(pixels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
                sized = resize(pixels) if resize is not None else pixels
                feature_map, *outputs = base_maps(family.preprocess(sized), training=False)
                pooled = tf.concat([tf.reduce_mean(o, axis=(1, 2)) for o in outputs], axis=-1)
                return feature_map, head(pooled, training=False)

        else:
            layer = map_layer(inner)
            maps_and_output = keras.Model(inner.inputs, [layer.output, inner.output])

            def forward(pixels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
                return maps_and_output(pixels, training=False)

        self.layer_name = layer.name
        self._forward = forward
        self._heatmaps = tf.function(self._for_classes, reduce_retracing=True)
        self._explain = tf.function(self.explain_graph, reduce_retracing=True)

    def _cam(self, pixels: tf.Tensor, choose: Callable) -> tuple[tf.Tensor, tf.Tensor]:
        """The model's probabilities, and the map for the class `choose` picks from them."""
        with tf.GradientTape() as tape:
            feature_map, probabilities = self._forward(pixels)
            class_indices = choose(probabilities)
            chosen = tf.gather(probabilities, class_indices, axis=1, batch_dims=1)
            score = tf.math.log(tf.maximum(chosen, 1e-12))
        gradients = tape.gradient(score, feature_map)
        channel_weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(channel_weights * feature_map, axis=-1))
        peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
        return probabilities, tf.math.divide_no_nan(cam, peak)

    def _for_classes(self, pixels: tf.Tensor, class_indices: tf.Tensor) -> tf.Tensor:
        return self._cam(pixels, lambda _: class_indices)[1]

    def explain_graph(self, pixels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """The graph of explain(): pixels to (served probabilities, maps of the predicted class)."""
        # Temperature scaling keeps the order of the classes: the inner model's most
        # likely class is the served model's.
        probabilities, cam = self._cam(pixels, lambda p: tf.argmax(p, axis=1, output_type=tf.int32))
        return self._served(probabilities), cam

    def heatmaps(self, pixels: np.ndarray, class_indices: np.ndarray) -> np.ndarray:
        """(n, h, w) maps in [0, 1] at the feature map's resolution, one per image and class."""
        batch = tf.convert_to_tensor(np.asarray(pixels, dtype=np.float32))
        indices = tf.convert_to_tensor(np.asarray(class_indices, dtype=np.int32))
        return self._heatmaps(batch, indices).numpy()

    def explain(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """What the model outputs for each image, and the map of its most likely class.

        One forward pass serves both (`heatmaps` after a separate prediction would run
        the model twice).
        """
        probabilities, maps = self._explain(tf.convert_to_tensor(np.asarray(pixels, np.float32)))
        return probabilities.numpy(), maps.numpy()
