"""How unlike the training images an image is: the unfamiliarity score an export carries.

A classifier answers with one of its classes whatever it is shown, and on an image
unlike anything it learned from (a car shown to a model of shoes and shirts) it is
often confident. The score measures the image itself instead: the Mahalanobis
distance of its pooled features (the input of the family's classifier, `pooled`) to
the nearest class centre, with one covariance shared by the classes (Lee et al., "A
Simple Unified Framework for Detecting Out-of-Distribution Samples and Adversarial
Attacks", NeurIPS 2018). The features are first reduced to their top PROJECTED_DIMS
principal directions (a pretrained base gives 1,280 or 2,048), and the covariance is
Ledoit-Wolf shrunk (scikit-learn), so a few hundred training images fit it. The squared
distance is divided by the number of directions: about 1 for an image like the
training images, and many times that for a photo shown to a model of drawings.

The score is built from Keras' own layers (two Dense layers, a sum and a minimum)
inside the exported model, beside the probabilities, so every runtime the export
converts to computes it from the same forward pass. The threshold above which an
image is "unfamiliar" is chosen by the export stage on validation images.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
from keras import layers

from imgclf.bundle import UNFAMILIARITY
from imgclf.models.inference import inference_batch_size, predict_in_batches
from imgclf.models.registry import family_of

PROJECTED_DIMS = 128  # principal directions kept: enough for 10 classes, small beside any model
FIT_IMAGES = 10_000  # training images at most whose features fit the summary (a seeded sample)
SCORE = UNFAMILIARITY  # the served model's output, and the name of the sub-model computing it


def feature_model(model: keras.Model) -> keras.Model:
    """Pixels to the pooled features inside a trained model: a transfer family's
    pretrained features (its extractor); otherwise the last global pooling of a feature
    map (the CNN's), or, in a model without one, what its classifier layer takes."""
    family = family_of(model)
    if family is not None and family.transfer is not None:
        return model.get_layer(family.transfer.extractor)
    pooling = (layers.GlobalAveragePooling2D, layers.GlobalMaxPooling2D)
    found = [layer for layer in model.layers if isinstance(layer, pooling)]
    features = found[-1].output if found else model.layers[-1].input
    return keras.Model(model.inputs, features, name=f"{model.name}_pooled")


def pooled_features(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """The trained model's pooled features of `images`, a batch at a time."""
    extractor = feature_model(model)
    return predict_in_batches(extractor, images, inference_batch_size(images.shape[1]))


def features_and_probabilities(model: keras.Model) -> keras.Model:
    """The trained model answering (pooled features, probabilities) in one forward pass;
    it shares the model's layers and name (so its family is still recognised)."""
    family = family_of(model)
    if family is None or family.transfer is None:
        return keras.Model(model.inputs, [feature_model(model).output, model.output],
                           name=model.name)  # fmt: skip
    # pixels -> extractor -> head (models/transfer.py): the extractor's output, taken
    # where the head takes it.
    inputs = keras.Input(model.input_shape[1:], name="pixels")
    features = model.get_layer(family.transfer.extractor)(inputs)
    probabilities = model.get_layer(family.transfer.head)(features)
    return keras.Model(inputs, [features, probabilities], name=model.name)


@dataclass(frozen=True)
class Familiarity:
    """What the score needs of the training features: a whitening projection, class centres."""

    # Whitened principal coordinates, divided by sqrt(dims): a squared distance in them is
    # the squared Mahalanobis distance per direction.
    projection: np.ndarray  # (features, dims): features to those coordinates
    offset: np.ndarray  # (dims,): minus the training mean, projected
    centres: np.ndarray  # (classes, dims): each class's mean, in those coordinates

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray, num_classes: int) -> Familiarity:
        """Fitted to training `features` with their `labels` (every class must be present)."""
        from sklearn.covariance import LedoitWolf
        from sklearn.decomposition import PCA

        missing = sorted(set(range(num_classes)) - set(np.unique(labels).tolist()))
        if missing:
            raise ValueError(f"no training images of classes {missing}: cannot fit their centres")
        features = features.astype(np.float64)
        dims = min(PROJECTED_DIMS, features.shape[1], len(features) - 1)
        pca = PCA(n_components=dims, svd_solver="full").fit(features)
        reduced = pca.transform(features)
        centres = np.stack([reduced[labels == c].mean(axis=0) for c in range(num_classes)])
        residuals = reduced - centres[labels]
        covariance = LedoitWolf(assume_centered=True).fit(residuals).covariance_
        values, vectors = np.linalg.eigh(covariance)
        # Whitened, and shrunk by sqrt(dims): squared distances come out per direction
        # with no division in the graph (one op fewer at batch 1).
        whitening = vectors / np.sqrt(np.maximum(values, values.max() * 1e-9) * dims)
        projection = pca.components_.T @ whitening
        return cls(
            projection.astype(np.float32),
            (-pca.mean_ @ projection).astype(np.float32),
            (centres @ whitening).astype(np.float32),
        )

    @property
    def dims(self) -> int:
        return self.projection.shape[1]

    def score(self, features: np.ndarray) -> np.ndarray:
        """The score of each row of pooled `features`, as the exported graph computes it."""
        whitened = features.astype(np.float32) @ self.projection + self.offset
        cross = whitened @ (-2.0 * self.centres.T) + (self.centres**2).sum(axis=1)
        nearest = (cross + (whitened**2).sum(axis=1, keepdims=True)).min(axis=1)
        return np.maximum(nearest, 0.0)

    def model(self) -> keras.Model:
        """The score as a Keras model on pooled features (the sub-model SCORE of an export)."""
        features = keras.Input((self.projection.shape[0],), name="features")
        project = layers.Dense(self.dims, trainable=False, name="whiten")
        whitened = project(features)
        project.set_weights([self.projection, self.offset])
        # |z - c|^2 = |z|^2 - 2 z.c + |c|^2 for every centre c at once: one matrix product.
        centre_terms = layers.Dense(len(self.centres), trainable=False, name="centre_terms")
        cross = centre_terms(whitened)
        centre_terms.set_weights([-2.0 * self.centres.T, (self.centres**2).sum(axis=1)])
        squared = keras.ops.sum(keras.ops.square(whitened), axis=-1, keepdims=True)
        nearest = keras.ops.min(cross + squared, axis=-1)
        return keras.Model(features, keras.ops.maximum(nearest, 0.0), name=SCORE)


def fit_to_training(
    model: keras.Model, images: np.ndarray, labels: np.ndarray, num_classes: int, seed: int = 0
) -> Familiarity:
    """The summary of `model`'s pooled features on a seeded sample of at most FIT_IMAGES
    training images (the covariance of 128 directions needs no more; the sample bounds
    the export's time on large sets)."""
    chosen = np.sort(np.random.default_rng(seed).permutation(len(labels))[:FIT_IMAGES])
    return Familiarity.fit(pooled_features(model, images[chosen]), labels[chosen], num_classes)
