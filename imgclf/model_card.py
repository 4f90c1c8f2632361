"""MODEL_CARD.md for an export: what the model is, its data, its measured quality, its limits."""

from __future__ import annotations

from imgclf.selective import Threshold

MODEL_NAMES = {"cnn": "custom CNN (4 convolutional blocks, trained from scratch)",
               "resnet": "ResNet50 transfer learning (frozen base, new head)"}  # fmt: skip


def _per_class_table(per_class: dict) -> str:
    rows = ["| class | precision | recall | F1 |", "|---|---|---|---|"]
    rows += [
        f"| {name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} |"
        for name, m in per_class.items()
    ]
    return "\n".join(rows)


def _pairs_table(pairs: list[dict]) -> str:
    if not pairs:
        return "No test image was misclassified."
    rows = ["| true class | predicted as | test images |", "|---|---|---|"]
    rows += [f"| {p['actual']} | {p['predicted']} | {p['count']} |" for p in pairs]
    return "\n".join(rows)


def _threshold_text(threshold: Threshold, test_answered: dict) -> str:
    if threshold.confidence <= 0:
        return "Off (`export.target_accuracy: 0`): every image gets an answer."
    reached = (
        f"reaches the target accuracy {threshold.target_accuracy:.2f}"
        if threshold.target_reached
        else f"is the best validation allows: the target {threshold.target_accuracy:.2f} "
        "was not reached"
    )
    return (
        f"Answers below a confidence of {threshold.confidence:.3f} are marked uncertain "
        f'("not sure"). On validation that threshold {reached} (answered accuracy '
        f"{threshold.val_accuracy:.4f}, {100 * threshold.val_coverage:.1f}% answered); on "
        f"the test split it answers {100 * test_answered['coverage']:.1f}% of images with "
        f"accuracy {test_answered['accuracy']:.4f}."
    )


def render(
    metadata: dict,
    test_metrics: dict,
    data_counts: dict,
    confused_pairs: list[dict],
    threshold: Threshold,
    test_answered: dict,
) -> str:
    """The model card as Markdown."""
    selected = metadata["selected_model"]
    size, classes = metadata["image_size"], metadata["class_names"]
    calibration = metadata["calibration"]
    pretrained_note = ""
    if selected == "resnet" and not metadata["pretrained"]:
        pretrained_note = (
            "\n> **Warning:** ResNet50 was trained on a randomly initialised base, not on "
            "ImageNet weights (they could not be had when it was trained). Accuracy is lower "
            "than a pretrained base would give; see the README to get the weights.\n"
        )
    return f"""# Model card: {selected}

{MODEL_NAMES[selected]}, selected by the `compare` stage on `{metadata["compare_metric"]}`.
{pretrained_note}
## Use

- Input: one image of any size in any format Pillow reads, decoded by `imgclf/images.py`
  (EXIF orientation, RGB, fitted into a {size} x {size} square with white padding).
  The model takes raw pixels in [0, 255]; scaling is inside it.
- Output: probabilities over {len(classes)} classes: {", ".join(classes)}.
- Files: `model.keras` (Keras 3), `saved_model/1/` (TensorFlow SavedModel for TF Serving,
  signature `serve`), `metadata.json`.

## Data

- Data version (md5 of `data/` in `data.dvc`): `{metadata["data_version"]}`
- Images used: {data_counts["train"]} train, {data_counts["val"]} validation,
  {data_counts["test"]} test (the test split was used once, for this card only).

## Quality

| split | accuracy | macro F1 |
|---|---|---|
| validation | {metadata["val_accuracy"]:.4f} | {metadata["val_macro_f1"]:.4f} |
| test | {test_metrics["test_accuracy"]:.4f} | {test_metrics["test_macro_f1"]:.4f} |

Per class, on the test split:

{_per_class_table(test_metrics["test_per_class"])}

Most confused classes on the test split (the gallery of the most confidently wrong
images is `evaluation/mistakes.png`, drawn by `dvc plots show`):

{_pairs_table(confused_pairs)}

## When it is not sure

{_threshold_text(threshold, test_answered)}

## Confidence calibration

Temperature scaling on the validation split: {calibration["reason"]}.
Expected calibration error (15 bins) on the test split: {calibration["test_ece_before"]:.4f}
before, {calibration["test_ece_after"]:.4f} after. The exported probabilities are the
{"calibrated" if calibration["applied"] else "uncalibrated"} ones.

## Limits

- Trained only on the classes above: every image gets one of them, however unrelated;
  only a low confidence (marked uncertain) hints that an image may be none of them.
- Small input size ({metadata["image_size"]} px): fine detail is lost.
- Measured on a test split from the same source as the training data; other cameras,
  backgrounds or image styles may do worse.
"""
