"""Selective classification: answer "not sure" below a confidence threshold.

Sorting images by confidence and answering only the most confident share gives the
risk-coverage curve (accuracy of the answered images against the share answered).
The export stage draws it on validation and picks the lowest threshold whose
answered images reach export.target_accuracy, so the model answers as many
images as it can at that accuracy; below the threshold the answer is the best
guess marked uncertain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# When the target cannot be reached, the threshold keeps at least this share answered.
MIN_COVERAGE = 0.1


@dataclass(frozen=True)
class Threshold:
    confidence: float  # answer when the top probability is >= this
    target_accuracy: float
    target_reached: bool  # False: the best accuracy validation allows was used instead
    val_accuracy: float  # of the answered validation images
    val_coverage: float  # share of validation images answered


def risk_coverage(
    probabilities: np.ndarray, labels: np.ndarray, max_points: int | None = None
) -> list[dict]:
    """Per distinct confidence (highest first): the threshold, coverage and answered accuracy.

    With `max_points`, an evenly thinned curve that still ends at full coverage.
    """
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    order = np.argsort(-confidence, kind="stable")
    confidence, correct = confidence[order], correct[order]
    count = np.arange(1, len(labels) + 1)
    accuracy = np.cumsum(correct) / count
    # Images with equal confidence are answered together: keep the last of each run.
    last_of_run = np.append(confidence[1:] != confidence[:-1], True)
    curve = [
        {"threshold": float(t), "coverage": float(n / len(labels)), "accuracy": float(a)}
        for t, n, a in zip(
            confidence[last_of_run], count[last_of_run], accuracy[last_of_run], strict=True
        )
    ]
    if max_points and len(curve) > max_points:
        step = -(-len(curve) // max_points)
        curve = curve[::step] + ([curve[-1]] if (len(curve) - 1) % step else [])
    return curve


def choose_threshold(
    probabilities: np.ndarray, labels: np.ndarray, target_accuracy: float
) -> Threshold:
    """The lowest confidence threshold whose answered validation images reach the target.

    A target of 0 answers everything. When no threshold reaches the target, the one with
    the best answered accuracy among those answering at least MIN_COVERAGE is used.
    """
    curve = risk_coverage(probabilities, labels)
    if target_accuracy <= 0 or not curve:
        everything = curve[-1] if curve else {"accuracy": 0.0, "coverage": 0.0}
        return Threshold(0.0, target_accuracy, True, everything["accuracy"], 1.0)
    reaching = [point for point in curve if point["accuracy"] >= target_accuracy]
    if reaching:
        point, reached = max(reaching, key=lambda p: p["coverage"]), True
    else:
        enough = [p for p in curve if p["coverage"] >= MIN_COVERAGE] or curve
        point, reached = max(enough, key=lambda p: (p["accuracy"], p["coverage"])), False
    return Threshold(
        point["threshold"], target_accuracy, reached, point["accuracy"], point["coverage"]
    )


def answered(probabilities: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    """Accuracy of the images answered at `threshold`, and the share answered."""
    confident = ~is_uncertain(probabilities.max(axis=1), threshold)
    correct = probabilities.argmax(axis=1) == labels
    count = int(confident.sum())
    return {
        "coverage": count / len(labels) if len(labels) else 0.0,
        "accuracy": float(correct[confident].mean()) if count else 0.0,
    }


def is_unfamiliar(score: float | np.ndarray, threshold: float | None) -> bool | np.ndarray:
    """True when an image with this unfamiliarity score is unlike the training images
    (models/familiarity.py); never for an export without the score's threshold. The one
    rule for choosing the threshold and for applying it when serving."""
    if threshold is None:
        return np.zeros(np.shape(score), dtype=bool) if np.ndim(score) else False
    return score > threshold


def unfamiliar_threshold(val_scores: np.ndarray, share: float) -> float | None:
    """The lowest validation score above which at most `share` of the validation images
    lie (None for a share of 0: nothing is flagged)."""
    if share <= 0 or len(val_scores) == 0:
        return None
    ordered = np.sort(np.asarray(val_scores, dtype=np.float64))
    return float(ordered[max(0, len(ordered) - 1 - int(np.floor(share * len(ordered))))])


def is_uncertain(confidence: float | np.ndarray, threshold: float) -> bool | np.ndarray:
    """True when an answer with this confidence is marked "not sure" (the one rule for both
    choosing the threshold here and applying it when serving)."""
    return confidence < threshold
