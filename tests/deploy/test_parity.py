"""imgclf.deploy.parity: every format checked against the Keras model, and refused loudly."""

from __future__ import annotations

import json
import shutil
import typing

import keras
import numpy as np
import pytest

from imgclf import bundle as bundle_module
from imgclf import models
from imgclf.bundle import CONVERTED, EXPLAIN, Bundle
from imgclf.data.prepared import read_split
from imgclf.deploy import formats, parity
from imgclf.models.familiarity import fit_to_training, pooled_features
from imgclf.models.saving import export_saved_model
from imgclf.models.served import served_model
from imgclf.param_groups import ExportFormat
from imgclf.serving.runtimes import OnnxRuntime, Scores


@pytest.mark.parametrize(
    ("fmt", "agreement", "difference", "loss", "passed"),
    [
        ("onnx", 1.0, 1e-6, 0.0, True),
        ("onnx", 0.998, 1e-6, 0.0, False),  # one image in 500 with another top class
        ("tflite", 1.0, 2e-4, 0.0, False),
        ("tflite_int8", 0.98, 0.05, 0.01, True),  # int8: probabilities may move
        ("tflite_int8", 0.97, 0.05, 0.0, False),
        ("tflite_int8", 0.99, 0.05, 0.02, False),
        ("onnx_int8", 0.98, 0.05, 0.01, True),
        ("onnx_int8", 0.97, 0.05, 0.0, False),
    ],
)
def test_each_format_is_judged_by_its_own_bounds(fmt, agreement, difference, loss, passed):
    judged, reason = parity.judge(fmt, agreement, difference, loss)
    assert judged is passed and reason.startswith("meets" if passed else "fails")


@pytest.mark.parametrize(
    ("fmt", "flags", "passed"),
    [
        ("onnx", 1.0, True),
        ("onnx", 0.998, False),
        ("tflite", 0.998, False),
        ("tflite_int8", 0.9, True),
        ("onnx_int8", 0.9, True),
    ],  # int8 files are for devices:
)  # fmt: skip                                               their flags are reported
def test_float_formats_must_flag_the_images_keras_flags(fmt, flags, passed):
    judged, reason = parity.judge(fmt, 1.0, 1e-6, 0.0, flags)
    assert judged is passed
    assert ("unfamiliar" in reason) is (not fmt.endswith("int8"))


def test_a_file_whose_score_disagrees_with_keras_is_refused(tiny_project, tmp_path):
    model, folder, test = exported(tiny_project, tmp_path)
    formats.write_onnx(folder.saved_model, folder.file("onnx"))
    outputs = model.predict(test[0].astype("float32"), verbose=0)
    reference = Scores(outputs["probabilities"], outputs["unfamiliarity"])
    threshold = float(np.median(reference.unfamiliarity))
    same = parity.check_format("onnx", folder.file("onnx"), *test, reference, threshold)
    assert same.passed and same.unfamiliar_agreement == 1.0
    # The reference's scores moved across the threshold for a third of the images.
    moved = reference.unfamiliarity.copy()
    moved[::3] = np.where(moved[::3] > threshold, 0.0, threshold * 2)
    shifted = Scores(reference.probabilities, moved)
    refused = parity.check_format("onnx", folder.file("onnx"), *test, shifted, threshold)
    assert not refused.passed and refused.unfamiliar_agreement < 0.7
    assert "unfamiliar" in refused.reason


def test_every_format_export_formats_may_list_has_a_converter_and_a_file():
    assert set(formats.CONVERTERS) == set(CONVERTED) == set(typing.get_args(ExportFormat))
    names = [f.file for f in bundle_module.FORMATS.values()] + [EXPLAIN.file]
    assert len(set(names)) == len(names)


def exported(tiny_project, tmp_path):
    """A copy of the tiny export's Keras model with its SavedModel, and the test split."""
    model = keras.models.load_model(Bundle(tiny_project / "models" / "best").file("keras"))
    folder = Bundle(tmp_path / "best")
    export_saved_model(model, folder.saved_model)
    test = read_split("test", tiny_project / "prepared")
    return model, folder, (test.images, test.labels)


def test_every_format_answers_as_the_keras_model(tiny_project, tmp_path):
    model, folder, test = exported(tiny_project, tmp_path)
    reports, latency = parity.write_formats(
        folder, model, list(CONVERTED), (test[0][:4], test[0][4:8]), test
    )
    by_format = {report.format: report for report in reports}
    for fmt in ("onnx", "tflite"):
        assert by_format[fmt].passed and by_format[fmt].agreement == 1.0
        assert by_format[fmt].max_probability_difference <= parity.FLOAT_DIFFERENCE
        assert folder.file(fmt).stat().st_size == by_format[fmt].size_bytes
        assert 0 < latency[f"{fmt}_batch1_seconds"] < 1 and latency[f"{fmt}_seconds"] > 0
    assert by_format["explain_onnx"].passed and by_format["explain_onnx"].heatmap_correlation > 0.99
    # int8 weights: smaller than the float file (a quarter of it on real models)
    for fmt, float_fmt in (("tflite_int8", "tflite"), ("onnx_int8", "onnx")):
        int8 = by_format[fmt]
        assert 0 < int8.size_bytes < by_format[float_fmt].size_bytes
        assert int8.passed == folder.file(fmt).is_file()
    # how the ONNX int8 file was made joins its report
    assert by_format["onnx_int8"].float_convolutions is not None
    assert 0 <= by_format["onnx_int8"].check_agreement <= 1


@pytest.mark.parametrize("step", ["conversion", "check"])
def test_a_grad_cam_graph_that_fails_is_refused_alone(
    tiny_project, tmp_path, monkeypatch, capsys, step
):
    # A new base whose gradient ops tf2onnx cannot convert (or onnxruntime cannot run)
    # loses its heatmaps on the onnx runtime, never its model.onnx or the whole export.
    model, folder, test = exported(tiny_project, tmp_path)

    def cannot(*args):
        raise ValueError("Unsupported ops: OrderedSet(['FancyPoolGrad'])\ntf2onnx detail")

    where = {"conversion": (formats, "write_explain_onnx"), "check": (parity, "check_explain")}
    monkeypatch.setattr(*where[step], cannot)
    reports, latency = parity.write_formats(
        folder, model, ["onnx"], (test[0][:4], test[0][4:8]), test
    )
    onnx, explain = reports
    assert onnx.passed and folder.file("onnx").is_file() and "onnx_seconds" in latency
    assert explain.format == "explain_onnx" and not explain.passed
    assert (
        explain.reason
        == f"{step} failed: ValueError: Unsupported ops: OrderedSet(['FancyPoolGrad'])"
    )
    assert not folder.explain.exists()
    assert "explain_onnx (explain.onnx) is NOT shipped" in capsys.readouterr().err
    assert "heatmap_correlation" not in explain.metrics() and explain.metrics()["passed"] is False


def test_a_grad_cam_graph_whose_heatmaps_disagree_is_refused(tiny_project, tmp_path, monkeypatch):
    # The graph is judged by its heatmaps, not only its probabilities: against a reference
    # whose maps are turned upside down, the same (correct) graph must be refused.
    model, folder, test = exported(tiny_project, tmp_path)

    class UpsideDown(parity.GradCam):
        def explain(self, pixels):
            probabilities, maps = super().explain(pixels)
            return probabilities, maps[:, ::-1, ::-1] + np.linspace(0, 1, maps.shape[2])

    monkeypatch.setattr(parity, "GradCam", UpsideDown)
    onnx, explain = parity.write_formats(
        folder, model, ["onnx"], (test[0][:4], test[0][4:8]), test
    )[0]
    assert onnx.passed and explain.agreement == 1.0  # the same classes, other places
    assert not explain.passed and explain.heatmap_correlation < parity.HEATMAP_CORRELATION
    assert "failed (lowest" in explain.reason and not folder.explain.exists()


def test_a_format_that_fails_its_bounds_is_removed_loudly(
    tiny_project, tmp_path, monkeypatch, capsys
):
    model, folder, test = exported(tiny_project, tmp_path)
    monkeypatch.setattr(parity, "FLOAT_DIFFERENCE", 0.0)  # no float file is that exact
    reports, latency = parity.write_formats(
        folder, model, ["onnx"], (test[0][:4], test[0][4:8]), test
    )
    assert [r.format for r in reports] == ["onnx"] and not reports[0].passed
    assert not folder.file("onnx").exists() and not folder.explain.exists()
    assert latency == {}
    assert "onnx (model.onnx) is NOT shipped" in capsys.readouterr().err


def test_a_conversion_that_fails_is_reported_not_raised(tiny_project, tmp_path, monkeypatch):
    model, folder, test = exported(tiny_project, tmp_path)

    def cannot(*args):
        raise ValueError("Some ops are not supported: ScaleAndTranslate\nmore detail")

    monkeypatch.setattr(formats, "write_tflite", cannot)
    (report,), _ = parity.write_formats(
        folder, model, ["tflite"], (test[0][:4], test[0][4:8]), test
    )
    assert (
        not report.passed and "ScaleAndTranslate" in report.reason and "more" not in report.reason
    )
    assert not folder.file("tflite").exists()


def test_the_export_records_each_format_in_its_metrics_and_card(tiny_project):
    metrics = json.loads((tiny_project / "metrics" / "export.json").read_text())["formats"]
    card = (tiny_project / "models" / "best" / "MODEL_CARD.md").read_text()
    for name, figures in metrics.items():
        assert {"size_bytes", "test_accuracy", "agreement", "passed"} <= set(figures)
        file = EXPLAIN.file if name == EXPLAIN.name else bundle_module.FORMATS[name].file
        assert f"`{file}`" in card


@pytest.mark.slow  # every family trained
@pytest.mark.parametrize("family", [f.name for f in models.families()])
def test_every_family_converts_within_the_bounds(trained_project, family, tmp_path):
    trained = keras.models.load_model(trained_project / "models" / family / "model.keras")
    test = read_split("test", trained_project / "prepared")
    train = read_split("train", trained_project / "prepared")
    # As the export serves it: probabilities and the unfamiliarity score.
    familiarity = fit_to_training(trained, train.images, train.labels, trained.output_shape[-1])
    model = served_model(trained, None, familiarity)
    folder = Bundle(tmp_path / family)
    export_saved_model(model, folder.saved_model)
    threshold = float(np.median(familiarity.score(pooled_features(trained, test.images))))
    reports, _ = parity.write_formats(
        folder, model, list(CONVERTED), (train.images, train.images[::-1]),
        (test.images, test.labels), threshold,
    )  # fmt: skip
    failed = {r.format: r.reason for r in reports if not r.passed}
    # int8 on a dozen test images of an untrained-looking tiny model may miss its bound;
    # the float formats and the heatmaps may not.
    assert set(failed) <= {"tflite_int8", "onnx_int8"}, failed
    flags = {r.format: r.unfamiliar_agreement for r in reports if r.format in ("onnx", "tflite")}
    assert all(agreement == 1.0 for agreement in flags.values()), flags
    runtime = OnnxRuntime(folder.file("onnx"))
    np.testing.assert_allclose(
        runtime.probabilities(test.images.astype("float32")),
        trained.predict(test.images.astype("float32"), verbose=0),
        atol=parity.FLOAT_DIFFERENCE,
    )
    shutil.rmtree(folder.root)


@pytest.mark.slow  # four conversions; test_pipeline_repro checks dvc.lock end to end
def test_a_conversion_gives_the_same_bytes_every_time(tiny_project, tmp_path):
    # tf2onnx's own output depends on where its objects land in memory; a re-run of the
    # export must not change dvc.lock.
    model, folder, _ = exported(tiny_project, tmp_path)
    files = []
    for attempt in range(2):
        onnx_file, explain_file = tmp_path / f"m{attempt}.onnx", tmp_path / f"e{attempt}.onnx"
        formats.write_onnx(folder.saved_model, onnx_file)
        formats.write_explain_onnx(model, explain_file)
        files.append((onnx_file.read_bytes(), explain_file.read_bytes()))
    assert files[0] == files[1]
