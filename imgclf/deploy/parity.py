"""Each exported format run on the untouched test split beside the Keras model, and judged.

A format ships only when it answers as the Keras model does: float formats agree on
the top class of at least FLOAT_AGREEMENT of the test images with probabilities
within FLOAT_DIFFERENCE, and flag the same images unfamiliar (models/familiarity.py)
on at least FLOAT_AGREEMENT of them; the int8 files (for devices, not served: their
flags are reported, not judged) agree on at least INT8_AGREEMENT and lose
at most INT8_ACCURACY_LOSS of test accuracy. A format that fails is removed from the
export, and the stage says so loudly; metrics/export.json keeps its figures with
`passed: false`. Grad-CAM's ONNX graph is held to the same answer and to heatmaps
that correlate with Keras' at HEATMAP_CORRELATION or better.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import keras
import numpy as np

from imgclf.bundle import CONVERTED, EXPLAIN, FORMATS, Bundle
from imgclf.deploy import formats
from imgclf.deploy.formats import Sources
from imgclf.evaluation.selective import is_unfamiliar
from imgclf.explain.gradcam import GradCam
from imgclf.models.inference import inference_batch_size, predict_in_batches
from imgclf.serving import runtimes
from imgclf.serving.runtimes import Runtime, Scores

FLOAT_AGREEMENT, FLOAT_DIFFERENCE = 0.999, 1e-4
INT8_AGREEMENT, INT8_ACCURACY_LOSS = 0.98, 0.01
HEATMAP_CORRELATION = 0.99
HEATMAP_IMAGES = 16  # test images whose ONNX heatmaps are compared with Keras'
LATENCY_CALLS = 50  # batch-1 calls timed per format (the median is reported)


@dataclass(frozen=True)
class FormatReport:
    """One format's file and how it answered on the test split."""

    format: str
    file: str
    size_bytes: int
    test_accuracy: float
    agreement: float  # share of test images whose top class is the Keras model's
    max_probability_difference: float
    passed: bool
    reason: str  # why it failed, or what it met
    heatmap_correlation: float | None = None  # Grad-CAM's graph only: the lowest against Keras'
    # Share of test images it flags unfamiliar exactly when Keras does (None: no score).
    unfamiliar_agreement: float | None = None
    # The ONNX int8 file only: its leading convolutions kept float, and on the images that
    # choice was made on, its agreement with the float file and how far its probabilities
    # moved (deploy/quantize.py).
    float_convolutions: int | None = None
    check_agreement: float | None = None
    check_probability_change: float | None = None

    @classmethod
    def failed(cls, fmt: str, path: Path, step: str, exc: Exception) -> FormatReport:
        """The report of a format whose `step` (conversion, check) raised `exc`."""
        said = (str(exc).strip().splitlines() or [""])[0]
        why = f"{step} failed: {type(exc).__name__}: {said}"
        return cls(fmt, path.name, 0, 0.0, 0.0, 1.0, False, why)

    def metrics(self) -> dict:
        """Its figures for metrics/export.json (deterministic: no timings; the figures a
        format has not, left out)."""
        return {
            key: value
            for key, value in asdict(self).items()
            if key not in ("format", "file") and value is not None
        }


def _runtime(fmt: str, path: Path, explain: Path | None = None) -> Runtime:
    return runtimes.open_file(FORMATS[fmt].runtime, path, explain)


def judge(
    fmt: str, agreement: float, difference: float, accuracy_loss: float,
    unfamiliar_agreement: float | None = None,
) -> tuple[bool, str]:  # fmt: skip
    """Whether a format's figures meet its bounds, and in words why (not)."""
    if FORMATS[fmt].int8:
        passed = agreement >= INT8_AGREEMENT and accuracy_loss <= INT8_ACCURACY_LOSS
        bounds = f"agreement >= {INT8_AGREEMENT:.0%}, accuracy loss <= {INT8_ACCURACY_LOSS:.0%}"
    else:
        passed = agreement >= FLOAT_AGREEMENT and difference <= FLOAT_DIFFERENCE
        bounds = f"agreement >= {FLOAT_AGREEMENT:.1%}, probability difference <= {FLOAT_DIFFERENCE}"
        if unfamiliar_agreement is not None:
            passed = passed and unfamiliar_agreement >= FLOAT_AGREEMENT
            bounds += f", the same unfamiliar flag on >= {FLOAT_AGREEMENT:.1%}"
    return passed, ("meets " if passed else "fails ") + bounds


def check_format(
    fmt: str, path: Path, images: np.ndarray, labels: np.ndarray, reference: Scores,
    unfamiliar_threshold: float | None = None,
) -> FormatReport:  # fmt: skip
    """`path` run on the test images and compared with the Keras model's scores."""
    runtime = _runtime(fmt, path)
    batch = 64
    answered = [
        runtime.scores(images[start : start + batch].astype(np.float32))
        for start in range(0, len(images), batch)
    ]
    found = np.concatenate([scores.probabilities for scores in answered])
    expected = reference.probabilities
    agreement = float((found.argmax(axis=1) == expected.argmax(axis=1)).mean())
    difference = float(np.abs(found - expected).max())
    accuracy = float((found.argmax(axis=1) == labels).mean())
    loss = float((expected.argmax(axis=1) == labels).mean()) - accuracy
    flags = None
    if unfamiliar_threshold is not None and reference.unfamiliarity is not None:
        if any(scores.unfamiliarity is None for scores in answered):
            flags = 0.0  # a file that lost the score agrees with no flag
        else:
            scores = np.concatenate([scores.unfamiliarity for scores in answered])
            flags = float((is_unfamiliar(scores, unfamiliar_threshold) == is_unfamiliar(
                reference.unfamiliarity, unfamiliar_threshold)).mean())  # fmt: skip
    passed, reason = judge(fmt, agreement, difference, loss, flags)
    return FormatReport(
        fmt, path.name, path.stat().st_size, accuracy, agreement, difference, passed, reason,
        unfamiliar_agreement=flags,
    )  # fmt: skip


def check_explain(
    bundle: Bundle, model: keras.Model, images: np.ndarray, labels: np.ndarray
) -> FormatReport:
    """The bundle's Grad-CAM graph against Keras' Grad-CAM on the first HEATMAP_IMAGES
    test images."""
    path = bundle.explain
    runtime = _runtime("onnx", bundle.file("onnx"), path)
    pixels = images[:HEATMAP_IMAGES].astype(np.float32)
    expected_probabilities, expected_maps = GradCam(model).explain(pixels)
    answers = [runtime.explain(image) for image in pixels]
    probabilities = np.stack([p for p, _ in answers])
    maps = np.stack([m for _, m in answers])
    agreement = float((probabilities.argmax(1) == expected_probabilities.argmax(1)).mean())
    flat = [(a.ravel(), b.ravel()) for a, b in zip(maps, expected_maps, strict=True)]
    # A map that is flat on both sides (nothing found) agrees; correlate the others.
    correlations = [float(np.corrcoef(a, b)[0, 1]) for a, b in flat if a.std() and b.std()]
    flat_alike = all(np.allclose(a, b, atol=1e-4) for a, b in flat if not (a.std() and b.std()))
    worst = min(correlations, default=1.0)
    passed = agreement == 1.0 and worst >= HEATMAP_CORRELATION and flat_alike
    reason = f"heatmap correlation >= {HEATMAP_CORRELATION} and the same class: " + (
        "met" if passed else f"failed (lowest {worst:.4f}, agreement {agreement:.3f})"
    )
    difference = float(np.abs(probabilities - expected_probabilities).max())
    accuracy = float((probabilities.argmax(1) == labels[:HEATMAP_IMAGES]).mean())
    return FormatReport(
        EXPLAIN.name, path.name, path.stat().st_size, accuracy, agreement, difference, passed,
        reason, heatmap_correlation=worst,
    )  # fmt: skip


def median_latency(runtime: Runtime, batch: np.ndarray, calls: int = LATENCY_CALLS) -> float:
    """Median seconds of `runtime` answering `batch` (after a warm-up call)."""
    batch = batch.astype(np.float32)
    runtime.probabilities(batch)
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        runtime.probabilities(batch)
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def write_formats(
    bundle: Bundle,
    model: keras.Model,
    wanted: list[str],
    quantization: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    unfamiliar_threshold: float | None = None,
) -> tuple[list[FormatReport], dict[str, float]]:
    """Write each wanted format into `bundle` (and Grad-CAM's graph with onnx), check it
    against the served `model` on the test (images, labels), flags at `unfamiliar_threshold`
    included, and remove each file that fails, alone. `quantization` holds the int8 files'
    (calibration, check) images (formats.Sources). The formats are written in the table's
    order, so the float ONNX file is there for its int8 file to quantize.

    Returns the reports and, for each shipped format, the seconds its conversion and
    check took and its batch-1 latency (timings, not metrics: they differ run to run).
    """
    images, labels = test
    outputs = predict_in_batches(model, images, inference_batch_size(images.shape[1]))
    reference = Scores.of(outputs)
    sources = Sources(bundle.saved_model, bundle.file("onnx"), *quantization)
    reports, seconds = [], {}
    for fmt in sorted(wanted, key=CONVERTED.index):
        path = bundle.file(fmt)
        started = time.perf_counter()
        convert = formats.CONVERTERS[fmt]
        report = _attempt(
            fmt, path,
            lambda: convert(sources, path),  # noqa: B023 (called at once)
            lambda: check_format(fmt, path, images, labels, reference, unfamiliar_threshold),  # noqa: B023
        )  # fmt: skip
        reports.append(report)
        if not report.passed:
            continue
        if fmt == "onnx":  # heatmaps for the onnx runtime: a graph of its own, judged alone
            reports.append(_attempt(
                EXPLAIN.name, bundle.explain,
                lambda: formats.write_explain_onnx(model, bundle.explain),
                lambda: check_explain(bundle, model, images, labels),
            ))  # fmt: skip
        seconds[f"{fmt}_seconds"] = time.perf_counter() - started  # converted and checked
        seconds[f"{fmt}_batch1_seconds"] = median_latency(_runtime(fmt, path), images[:1])
    return reports, seconds


def _attempt(
    fmt: str, path: Path, write: Callable[[], dict | None], check: Callable[[], FormatReport]
) -> FormatReport:
    """Write and check one file; a file that fails either is removed, loudly. What the
    writer returns (how it made the file) joins the report."""
    # A converter or a runtime that cannot take an op says so in many ways.
    try:
        made = write() or {}
    except Exception as exc:
        report = FormatReport.failed(fmt, path, "conversion", exc)
    else:
        try:
            report = replace(check(), **made)
        except Exception as exc:
            report = FormatReport.failed(fmt, path, "check", exc)
    if not report.passed:
        _refuse(report, path)
    return report


def _refuse(report: FormatReport, path: Path) -> None:
    path.unlink(missing_ok=True)
    banner = "!" * 78
    print(
        f"{banner}\nWARNING: export: {report.format} ({path.name}) is NOT shipped: "
        f"{report.reason}\n  (agreement {report.agreement:.4f}, largest probability "
        f"difference {report.max_probability_difference:.2g})\n{banner}",
        file=sys.stderr,
    )
