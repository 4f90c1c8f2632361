"""The exported model: the trained model with its views, temperature and unfamiliarity score.

    pixels -> views (test-time augmentation, models/tta.py; none by default)
           -> trained model (pooled features, probabilities)
                probabilities -> mean over the views -> temperature (when calibration
                                 applies) -> "probabilities"
                pooled features of the image itself -> the score (models/familiarity.py)
                                 -> "unfamiliarity"

One forward pass answers both outputs, so the score costs a matrix product or two. What
explains a served model (explain/gradcam.py) reaches the trained model inside with
`unwrap`, which also takes the single-output models older exports served.
"""

from __future__ import annotations

from collections.abc import Callable

import keras

from imgclf.bundle import PROBABILITIES
from imgclf.models import tta as tta_layers
from imgclf.models.familiarity import SCORE, Familiarity, features_and_probabilities
from imgclf.models.temperature import calibrated, log_probabilities


def served_model(
    model: keras.Model, temperature: float | None, familiarity: Familiarity | None,
    tta: str = "none",
) -> keras.Model:  # fmt: skip
    """`model` (trained) as the export serves it: {"probabilities", "unfamiliarity"} out
    ({"probabilities"} without `familiarity`), averaged over the `tta` views (models/tta.py),
    temperature-scaled when `temperature`."""
    inputs = keras.Input(model.input_shape[1:], name="pixels")
    views = tta_layers.KINDS[tta]
    pixels = inputs if views == 1 else tta_layers.Views(tta, name="tta_views")(inputs)
    if familiarity is None:
        probabilities = model(pixels)
    else:
        features, probabilities = features_and_probabilities(model)(pixels)
    if views > 1:
        probabilities = tta_layers.FromViews(views, name="tta_mean")(probabilities)
        if familiarity is not None:
            features = tta_layers.FromViews(views, "first", name="tta_first")(features)
    if temperature is not None:
        probabilities = calibrated(probabilities, temperature)
    outputs = {PROBABILITIES: probabilities}
    if familiarity is not None:
        outputs[SCORE] = familiarity.model()(features)
    return keras.Model(inputs, outputs, name=f"{model.name}_served")


def unwrap(model: keras.Model) -> tuple[keras.Model, Callable]:
    """The trained model inside a served `model`, and the step from its probabilities to
    the served ones: the served model's own temperature layers, or the identity. (With
    test-time views the served probabilities are the views' mean; what explains one image
    explains the image itself.)"""
    names = {layer.name for layer in model.layers}
    if not names & {"temperature", SCORE, "tta_mean"} and not isinstance(model.output, dict):
        return model, lambda probabilities: probabilities
    inner = next(
        layer for layer in model.layers if isinstance(layer, keras.Model) and layer.name != SCORE
    )
    if len(inner.outputs) > 1:  # (pooled features, probabilities): the classifier is the last
        inner = keras.Model(inner.inputs, inner.outputs[-1], name=inner.name)
    inner = unwrap(inner)[0]  # the views' average inside a calibrated model (the export's)
    if "temperature" not in names:
        return inner, lambda probabilities: probabilities
    scale, softmax = model.get_layer("temperature"), model.get_layer("calibrated_probabilities")
    return inner, lambda probabilities: softmax(scale(log_probabilities(probabilities)))
