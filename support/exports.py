"""Exports the serving tests replace or break, as the export stage (or an accident) would."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from imgclf.atomic_io import replace_directory
from imgclf.bundle import Bundle

BREAKAGES = ["truncated model", "truncated onnx", "no metadata", "class count", "image size"]
# The runtime a server must run for a breakage of one model file to matter.
RUNTIME_OF = {"truncated model": "keras", "truncated onnx": "onnx"}


def spoil(export: Path, breakage: str) -> None:
    """Break an export folder in one of the ways BREAKAGES names (its Keras or ONNX file)."""
    bundle = Bundle(export)
    if breakage.startswith("truncated"):
        model = bundle.file(RUNTIME_OF[breakage])
        data = model.read_bytes()
        model.write_bytes(data[: len(data) // 2])
    elif breakage == "no metadata":
        bundle.metadata_file.unlink()
    else:
        metadata = json.loads(bundle.metadata_file.read_text())
        if breakage == "class count":
            metadata["class_names"].append("unicorn")
        else:
            metadata["image_size"] += 16
        bundle.metadata_file.write_text(json.dumps(metadata))


def swap_in(export: Path, new_content: Path) -> None:
    """Replace `export` as the export stage does: a staging directory, swapped in whole."""
    staging = export.with_name(f".{export.name}.staging")
    shutil.copytree(new_content, staging)
    replace_directory(staging, export)
