"""Stage `export`: calibrate the selected model, evaluate it once on the test split, export it.

Reads params `export.*`, metrics/compare.json and the selected model; writes the
export bundle models/best/ (imgclf/bundle.py: the Keras model answering probabilities
and each image's unfamiliarity score, the SavedModel for TF Serving, the formats of
export.formats for onnxruntime and LiteRT, each checked against the Keras model on the
test split, the metadata and the model card), metrics/export.json and the plots in
evaluation/: the test confusion matrix and reliability, the validation risk-coverage
curve that sets the "not sure" threshold, and the gallery of the most confidently wrong
test images; and, for `imgclf review`, the training and validation images it is surest
are mislabelled (review_mistakes.csv).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from ruamel.yaml import YAML

from imgclf import models, paths
from imgclf import params as params_file
from imgclf.atomic_io import csv_table, staged_directory, write_json, write_timings
from imgclf.bundle import Bundle
from imgclf.data.prepared import read_split, read_used_split
from imgclf.deploy.parity import FormatReport, write_formats
from imgclf.deploy.quantize import CHECK_IMAGES
from imgclf.evaluation import calibration, model_card, selective
from imgclf.evaluation.gallery import save_gallery
from imgclf.evaluation.interpretation import Interpretation, mistakes_to_review
from imgclf.evaluation.test_time import choose_views
from imgclf.models.familiarity import Familiarity, fit_to_training, pooled_features
from imgclf.models.saving import export_saved_model, load_trained_model, save_model
from imgclf.models.served import served_model
from imgclf.models.temperature import with_temperature
from imgclf.models.tta import averaged
from imgclf.param_groups import ExportParams
from imgclf.seeding import make_deterministic
from imgclf.stage_errors import run_stage
from imgclf.stage_files import Calibration, Comparison, ExportMetadata, PreparedInfo, TrainedMetrics

if TYPE_CHECKING:  # imgclf is imported before Keras: it sets TensorFlow's defaults
    import keras

CONFUSED_PAIRS = 10  # listed in the model card and plotted
CURVE_POINTS = 200  # at most, in the risk-coverage plot
REVIEW_MISTAKES = 200  # the most confidently wrong training and validation images listed
SEED = 0  # nothing random runs here; seeding makes the saved dropout seed state the same


def data_version() -> str | None:
    """The md5 DVC recorded for data/ in data.dvc (None when data/ is not tracked by DVC)."""
    if not paths.DATA_DVC.is_file():
        return None
    return YAML(typ="safe", pure=True).load(paths.DATA_DVC.read_text())["outs"][0]["md5"]


def quantization_images(count: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` training images (a fixed sample) that calibrate the int8 files' ranges, and
    the images the ONNX int8 file is checked on as it is made: the validation images, then
    training images the calibration did not see (CHECK_IMAGES in all)."""
    train, val = read_used_split("train"), read_used_split("val")
    order = np.random.default_rng(SEED).permutation(len(train.labels))
    calibration = train.images[np.sort(order[:count])]
    more = order[count : count + max(0, CHECK_IMAGES - len(val.labels))]
    check = np.concatenate([val.images[:CHECK_IMAGES], train.images[np.sort(more)]])
    return calibration, check


def write_export(
    model: keras.Model, metadata: ExportMetadata, render_card: Callable[[list], str],
    export: ExportParams, test: tuple[np.ndarray, np.ndarray],
) -> tuple[list[FormatReport], dict[str, float]]:  # fmt: skip
    """models/best/, built beside its destination and swapped in whole (staged_directory):
    a server watching it, or a run killed midway, never sees half an export. The other
    runtimes' formats are written and checked inside it, and the card shows their figures."""
    with staged_directory(paths.EXPORT) as staging:
        bundle = Bundle(staging)
        save_model(model, bundle.file("keras"))
        export_saved_model(model, bundle.saved_model)
        reports, seconds = write_formats(
            bundle, model, export.formats, quantization_images(export.quantization_images),
            test, metadata.unfamiliar_threshold,
        )  # fmt: skip
        bundle.write_metadata(metadata)
        bundle.write_card(render_card(reports))
    return reports, seconds


def write_plots(
    model: keras.Model, test: Interpretation, test_raw: Interpretation,
    test_calibrated: Interpretation, val: Interpretation, pairs: list[dict], mistakes: int,
    model_name: str, to_review: list[dict],
) -> None:  # fmt: skip
    """evaluation/: what `dvc plots show` draws of the export, built and swapped in whole."""
    with staged_directory(paths.EVALUATION) as out:
        with csv_table(out / paths.REVIEW_MISTAKES.name, list(to_review[0]) if to_review else
                       ["split", "file", "given", "predicted", "confidence"]) as table:  # fmt: skip
            for row in to_review:
                table.writerow(row)
        write_json(out / "test_confusion.json", test.confusion_rows())
        write_json(out / "risk_coverage.json", val.risk_coverage(CURVE_POINTS))
        top_losses, gallery = test.plot_top_losses(model, mistakes, model_name)
        save_gallery(gallery, out / "mistakes.png")
        write_json(out / "mistakes.json", top_losses)
        write_json(out / "confused_pairs.json", [
            {"pair": f"{p['actual']} → {p['predicted']}", "count": p["count"]} for p in pairs
        ])  # fmt: skip
        # One file per curve, so DVC draws them as two lines (see plots in dvc.yaml).
        for label, curve in (("uncalibrated", test_raw), ("calibrated", test_calibrated)):
            write_json(out / f"reliability_{label}.json", curve.reliability())


@dataclass(frozen=True)
class Served:
    """The selected model as it will be served (calibrated or not), and what it answers."""

    model: keras.Model
    decision: calibration.Decision
    val: Interpretation  # validation and test, read from the served probabilities
    test: Interpretation
    test_raw: Interpretation
    test_calibrated: Interpretation

    @property
    def temperature(self) -> float | None:
        """The temperature inside the served model (None when calibration did not apply)."""
        return self.decision.temperature if self.decision.applied else None

    def answering(self, target_accuracy: float) -> tuple[selective.Threshold, dict]:
        """ "Not sure" below the confidence that reaches `target_accuracy` on validation, and
        how the test split is answered at it (coverage, accuracy)."""
        threshold = selective.choose_threshold(
            self.val.probabilities, self.val.labels, target_accuracy
        )
        return threshold, self.test.answered(threshold.confidence)


def calibrate(model: keras.Model, val_raw: Interpretation, test_raw: Interpretation,
              enabled: bool) -> Served:  # fmt: skip
    """Temperature scaling, fitted and judged on validation; the test split only reports."""
    decision = calibration.decide(val_raw.probabilities, val_raw.labels, enabled)
    test_calibrated = test_raw.with_probabilities(
        calibration.apply_temperature(test_raw.probabilities, decision.temperature)
    )
    if decision.applied:
        model = with_temperature(model, decision.temperature)
    return Served(
        model, decision,
        val=val_raw.with_probabilities(decision.served(val_raw.probabilities)),
        test=test_raw.with_probabilities(decision.served(test_raw.probabilities)),
        test_raw=test_raw, test_calibrated=test_calibrated,
    )  # fmt: skip


@dataclass(frozen=True)
class Unfamiliar:
    """The unfamiliarity score's summary of the training features, its threshold, and the
    share of validation and test images it flags."""

    familiarity: Familiarity
    threshold: float | None
    val_share: float
    test_share: float

    def metrics(self) -> dict:
        return {
            "unfamiliar_threshold": self.threshold,
            "val_unfamiliar_share": self.val_share,
            "test_unfamiliar_share": self.test_share,
        }


def fit_unfamiliar(raw_model: keras.Model, num_classes: int, share: float,
                   val: np.ndarray, test: np.ndarray) -> Unfamiliar:  # fmt: skip
    """The score fitted on training features, its threshold chosen on validation images
    (at most `share` of them above it); the test split only reports how many it flags."""
    train = read_used_split("train")
    familiarity = fit_to_training(raw_model, train.images, train.labels, num_classes, SEED)
    val_scores = familiarity.score(pooled_features(raw_model, val))
    threshold = selective.unfamiliar_threshold(val_scores, share)
    test_scores = familiarity.score(pooled_features(raw_model, test))
    return Unfamiliar(
        familiarity, threshold,
        float(selective.is_unfamiliar(val_scores, threshold).mean()),
        float(selective.is_unfamiliar(test_scores, threshold).mean()),
    )  # fmt: skip


def export_metadata(
    family: str, comparison: Comparison, info: PreparedInfo, test_metrics: dict,
    calibration_summary: Calibration, threshold: selective.Threshold, top_k: int,
    unfamiliar: Unfamiliar,
) -> ExportMetadata:  # fmt: skip
    """What a server needs to know about the export, and where it came from."""
    trained = TrainedMetrics.load(family)
    return ExportMetadata(
        class_names=info.class_names,
        image_size=info.image_size,
        selected_model=family,
        compare_metric=comparison.metric,
        input_size=trained.input_size,
        backbone=trained.backbone,
        pretrained=trained.pretrained,
        val_accuracy=trained.val_accuracy,
        val_macro_f1=trained.val_macro_f1,
        test_accuracy=test_metrics["test_accuracy"],
        test_macro_f1=test_metrics["test_macro_f1"],
        calibration=calibration_summary,
        data_version=data_version(),
        top_k=top_k,
        confidence_threshold=threshold.confidence,
        target_accuracy=threshold.target_accuracy,
        unfamiliar_threshold=unfamiliar.threshold,
        class_shares=class_shares(info.num_classes),
    )


def class_shares(num_classes: int) -> list[float]:
    """Each class's share of the training images the model learned from."""
    counts = np.bincount(read_used_split("train").labels, minlength=num_classes)
    return [round(float(count / counts.sum()), 6) for count in counts]


def main() -> None:
    started = time.perf_counter()
    export = params_file.load().export
    make_deterministic(SEED)
    comparison = Comparison.load()
    family = models.get(comparison.selected)
    raw_model = load_trained_model(family.name)
    info = PreparedInfo.load()
    # Validation as the candidates were selected on (less audit.exclude's images); test whole.
    # Memory-mapped: predicted a batch at a time, never held whole.
    val_split, test_split = read_used_split("val"), read_split("test")
    # Test-time views (export.tta): chosen on validation; everything below answers with them.
    views = choose_views(raw_model, val_split, export.tta)
    viewed = averaged(raw_model, views.kind)
    served = calibrate(
        viewed,
        Interpretation.of(viewed, val_split, "val", info.class_names),
        Interpretation.of(viewed, test_split, "test", info.class_names),
        export.calibrate,
    )
    model, val, test = served.model, served.val, served.test  # what the export will serve

    threshold, test_answered = served.answering(export.target_accuracy)  # "not sure" below
    test_metrics = test.metrics()
    calibration_summary = Calibration(
        **served.decision.as_dict(),
        test_ece_before=served.test_raw.calibration_error(),
        test_ece_after=served.test_calibrated.calibration_error(),
    )
    # "Unfamiliar" above the score that export.unfamiliar_share of validation images exceed.
    unfamiliar = fit_unfamiliar(
        raw_model, info.num_classes, export.unfamiliar_share, val_split.images, test_split.images
    )
    metadata = export_metadata(
        family.name, comparison, info, test_metrics, calibration_summary, threshold,
        export.top_k, unfamiliar,
    )  # fmt: skip
    counts = {name: len(read_used_split(name).labels) for name in ("train", "val", "test")}
    pairs = test.most_confused(CONFUSED_PAIRS)
    # For `imgclf review`: the training and validation images the served model is surest
    # are wrong. Never test images: choosing those to fix by the model's mistakes would
    # flatter its test score.
    train = Interpretation.of(model, read_used_split("train"), "train", info.class_names)
    to_review = mistakes_to_review([train, val], REVIEW_MISTAKES)

    def render_card(reports: list[FormatReport]) -> str:
        return model_card.render(
            metadata, family, test_metrics, counts, pairs, threshold, test_answered, reports,
            unfamiliar.metrics(), views,
        )  # fmt: skip

    # What the bundle serves: the calibrated probabilities (over the views) and the
    # unfamiliarity score, from one forward pass of the selected model.
    bundled = served_model(raw_model, served.temperature, unfamiliar.familiarity, views.kind)
    reports, format_seconds = write_export(
        bundled, metadata, render_card, export, (test.split.images, test.labels)
    )
    write_plots(model, test, served.test_raw, served.test_calibrated, val, pairs, export.mistakes,
                family.name, to_review)  # fmt: skip
    calibration_metrics = {
        f"calibration_{key}": value for key, value in calibration_summary.model_dump().items()
    }
    write_json(paths.metrics_file("export"), {
        "selected": family.name, **test_metrics, **calibration_metrics,
        "confidence_threshold": threshold.confidence,
        "target_accuracy_reached": threshold.target_reached,
        "val_coverage": threshold.val_coverage, "val_answered_accuracy": threshold.val_accuracy,
        "test_coverage": test_answered["coverage"],
        "test_answered_accuracy": test_answered["accuracy"],
        **unfamiliar.metrics(), **views.metrics(),
        "formats": {report.format: report.metrics() for report in reports},
    })  # fmt: skip
    seconds = time.perf_counter() - started
    write_timings("export", {"export_seconds": seconds, **format_seconds})
    print(
        f"export: {family.name}, test_accuracy {test_metrics['test_accuracy']:.4f}, test ECE "
        f"{calibration_summary.test_ece_before:.4f} -> {calibration_summary.test_ece_after:.4f} "
        f"(calibration {served.decision.reason}); answers {100 * test_answered['coverage']:.0f}% "
        f"of test images at confidence >= {threshold.confidence:.3f} with accuracy "
        f"{test_answered['accuracy']:.4f}; test-time views: {views.kind}; flags "
        f"{100 * unfamiliar.test_share:.1f}% of test "
        f"images unfamiliar; wrote {paths.EXPORT}/ in {seconds:.0f}s"
    )


if __name__ == "__main__":
    run_stage(main, "export", writes=f"{paths.EXPORT}/ and {paths.EVALUATION}/")
