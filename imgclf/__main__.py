"""Command line: `python -m imgclf predict IMAGE...` prints one JSON object per image."""

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imgclf", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", help="classify image files with the exported model")
    predict.add_argument("images", nargs="+", metavar="IMAGE")
    predict.add_argument("--model-dir", default=str(DEFAULT_EXPORT_DIR), help="export directory")
    predict.add_argument(
        "--top-k", type=int, default=None, help="probabilities to list (default: metadata top_k)"
    )
    args = parser.parse_args(argv)
    try:
        predictor = Predictor.load(args.model_dir)
    except ModelNotExportedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failures = predict_files(predictor, args.images, args.top_k or predictor.metadata.get("top_k"))
    if failures:
        print(
            f"error: {failures} of {len(args.images)} file(s) could not be predicted",
            file=sys.stderr,
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
