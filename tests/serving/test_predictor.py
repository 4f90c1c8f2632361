"""imgclf.serving.predictor: the answer users see, "not sure" and "unfamiliar" included."""

from __future__ import annotations

import numpy as np
import pytest

from imgclf.serving.predictor import Predictor
from imgclf.serving.runtimes import Scores

# Three images: confident and familiar, confident but unfamiliar, unsure and familiar.
PROBABILITIES = np.array([[0.9, 0.05, 0.05], [0.97, 0.02, 0.01], [0.4, 0.35, 0.25]])
SCORES = Scores(PROBABILITIES, np.array([0.8, 40.0, 1.2]))


@pytest.fixture
def predictor(cnn_export) -> Predictor:
    return Predictor.load(cnn_export, "onnx")


def with_metadata(predictor: Predictor, **changes) -> Predictor:
    return Predictor(predictor.runtime, predictor.metadata.model_copy(update=changes))


def test_an_unfamiliar_image_is_not_sure_when_the_export_abstains(predictor):
    abstaining = with_metadata(
        predictor, confidence_threshold=0.6, target_accuracy=0.95, unfamiliar_threshold=3.0
    )
    sure, strange, unsure = abstaining.describe_batch(SCORES)
    assert (sure["uncertain"], sure["unfamiliar"], sure["answer"]) == (
        False,
        False,
        sure["prediction"],
    )
    assert strange["unfamiliar"] and strange["uncertain"] and strange["unfamiliarity"] == 40.0
    assert (
        strange["answer"]
        == f"not sure — unlike the training images (maybe {strange['prediction']})"
    )
    assert strange["prediction"] == predictor.class_names[0]  # the best guess is still given
    assert unsure["uncertain"] and not unsure["unfamiliar"]
    assert unsure["answer"] == f"not sure — maybe {unsure['prediction']}"


def test_without_abstaining_an_unfamiliar_image_is_flagged_and_answered(predictor):
    answering = with_metadata(
        predictor, confidence_threshold=0.0, target_accuracy=0.0, unfamiliar_threshold=3.0
    )
    strange = answering.describe_batch(SCORES)[1]
    assert strange["unfamiliar"] and not strange["uncertain"]
    assert strange["answer"] == strange["prediction"]


def test_an_export_without_the_score_flags_nothing(predictor):
    older = with_metadata(predictor, unfamiliar_threshold=None)
    for answer in older.describe_batch(SCORES) + older.describe_batch(Scores(PROBABILITIES)):
        assert answer["unfamiliar"] is False and answer["unfamiliarity"] is None


def test_predict_reads_the_score_from_the_model(predictor, tiny_project):
    from imgclf.data.prepared import read_split

    pixels = read_split("test", tiny_project / "prepared").images[:4]
    answered = predictor.scores(pixels.astype(np.float32))
    answers = predictor.describe_batch(answered)
    assert [a["unfamiliarity"] for a in answers] == pytest.approx(answered.unfamiliarity.tolist())
    threshold = predictor.unfamiliar_threshold
    assert [a["unfamiliar"] for a in answers] == (answered.unfamiliarity > threshold).tolist()
