"""Command line for the exported model.

imgclf predict IMAGE...                    one JSON object per image
imgclf explain IMAGE -o IMAGE_heatmap.png  the JSON answer, and a PNG of what drove it
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from imgclf.images import ImageDecodeError
from imgclf.predictor import DEFAULT_EXPORT_DIR, ModelNotExportedError, Predictor


def predict_files(predictor: Predictor, files: list[str], top_k: int | None) -> int:
    """Print a JSON line per file, in order; return how many could not be predicted."""
    inputs: dict[int, np.ndarray] = {}
    answers: list[dict] = [{"file": name} for name in files]
    for i, name in enumerate(files):
        try:
            inputs[i] = predictor.pixels(Path(name))
        except OSError as exc:
            answers[i]["error"] = f"cannot read {name}: {exc.strerror or exc}"
        except ImageDecodeError as exc:
            answers[i]["error"] = f"{name} is not a usable image: {exc}"
    if inputs:
        probabilities = predictor.probabilities(np.stack(list(inputs.values())))
        for i, row in zip(inputs, probabilities, strict=True):
            answers[i].update(predictor.describe(row, top_k))
    for answer in answers:
        print(json.dumps(answer))
    return sum("error" in answer for answer in answers)


def explain_file(predictor: Predictor, name: str, output: Path, top_k: int | None) -> int:
    """Print the answer for one file and write its Grad-CAM overlay; 0 on success, 1 if not."""
    try:
        answer, heatmap = predictor.explain(Path(name), top_k)
    except OSError as exc:
        print(f"error: cannot read {name}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except ImageDecodeError as exc:
        print(f"error: {name} is not a usable image: {exc}", file=sys.stderr)
        return 1
    try:
        heatmap.save(output, format="PNG")
    except OSError as exc:
        print(f"error: cannot write {output}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(json.dumps({"file": name, **answer, "heatmap": str(output)}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imgclf", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", help="classify image files with the exported model")
    predict.add_argument("images", nargs="+", metavar="IMAGE")
    explain = commands.add_parser(
        "explain", help="classify one image and draw a Grad-CAM heatmap of what drove it"
    )
    explain.add_argument("image", metavar="IMAGE")
    explain.add_argument(
        "-o", "--output", type=Path, help="PNG to write (default: IMAGE_heatmap.png beside it)"
    )
    for command in (predict, explain):
        command.add_argument(
            "--model-dir", default=str(DEFAULT_EXPORT_DIR), help="export directory"
        )
        command.add_argument(
            "--top-k", type=int, default=None,
            help="probabilities to list (default: metadata top_k)",
        )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        predictor = Predictor.load(args.model_dir)
    except ModelNotExportedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    top_k = args.top_k or predictor.metadata.get("top_k")
    if args.command == "explain":
        image = Path(args.image)
        output = args.output or image.with_name(f"{image.stem}_heatmap.png")
        return explain_file(predictor, args.image, output, top_k)
    failures = predict_files(predictor, args.images, top_k)
    if failures:
        print(
            f"error: {failures} of {len(args.images)} file(s) could not be predicted",
            file=sys.stderr,
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
