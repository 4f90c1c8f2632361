"""webapp.observability: the drift gauges behind /metrics (the unfamiliar share, the
class mix against the training mix) and what each answer adds to the counters."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from webapp.observability import RecentAnswers, class_mix_shift


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def answer(label: str, unfamiliar: bool = False, score: float = 1.0) -> dict:
    return {"prediction": label, "unfamiliar": unfamiliar, "unfamiliarity": score}


def test_the_class_mix_shift_is_the_total_variation_distance():
    even = {"a": 0.5, "b": 0.5}
    assert class_mix_shift({"a": 5, "b": 5}, even) == 0.0
    assert class_mix_shift({"a": 10}, even) == pytest.approx(0.5)
    assert class_mix_shift({"c": 3}, even) == pytest.approx(1.0)  # a class never trained on
    assert class_mix_shift({"a": 3, "b": 1}, even) == pytest.approx(0.25)
    assert class_mix_shift({}, even) == 0.0


def test_the_gauges_follow_the_last_window_of_answers():
    recent = RecentAnswers(window=4)
    shares = {"a": 0.5, "b": 0.5}
    recent.record([answer("a"), answer("b"), answer("a", True, 9.0), answer("b")], shares)
    assert value("imgclf_recent_unfamiliar_share") == pytest.approx(0.25)
    assert value("imgclf_class_mix_shift") == pytest.approx(0.0)
    # Four more, all "a" and unfamiliar: the first four have left the window.
    recent.record([answer("a", True, 9.0)] * 4, shares)
    assert value("imgclf_recent_unfamiliar_share") == pytest.approx(1.0)
    assert value("imgclf_class_mix_shift") == pytest.approx(0.5)


def test_each_answer_counts_once_in_the_counters_and_the_histogram():
    before = {
        "unfamiliar": value("imgclf_unfamiliar_total"),
        "scored": value("imgclf_unfamiliarity_count"),
        "above_10": value("imgclf_unfamiliarity_count")
        - value("imgclf_unfamiliarity_bucket", le="10.0"),
        "label": value("imgclf_predictions_total", label="x"),
    }
    answers = [answer("x", True, 30.0), answer("x", False, 0.7), answer("y", False, 1.1)]
    answers.append({"prediction": "x", "unfamiliar": False, "unfamiliarity": None})  # older export
    RecentAnswers().record(answers, None)
    assert value("imgclf_unfamiliar_total") - before["unfamiliar"] == 1
    assert value("imgclf_unfamiliarity_count") - before["scored"] == 3
    above_10 = value("imgclf_unfamiliarity_count") - value("imgclf_unfamiliarity_bucket", le="10.0")
    assert above_10 - before["above_10"] == 1
    assert value("imgclf_predictions_total", label="x") - before["label"] == 3
