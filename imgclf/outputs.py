"""Writing stage outputs the same way every time: JSON, timings, whole directories."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from imgclf import paths


def _rounded(value: object) -> object:
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    return value


def write_json(path: Path, content: object) -> None:
    """Write JSON with sorted keys, floats rounded to 6 places and a final newline.

    Rounding keeps the last, machine-dependent digits of floating-point work out of
    files that git and `dvc metrics diff` compare.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_rounded(content), indent=2, sort_keys=True)
    path.write_text(text + "\n", encoding="utf-8")


def write_timings(stage: str, seconds: dict[str, float], root: Path = Path(".")) -> None:
    """timings/<stage>.json: how long the stage's parts took on its last run."""
    write_json(paths.timings_file(stage, root), seconds)


def replace_directory(staging: Path, target: Path) -> None:
    """Swap a fully written `staging` directory in for `target`.

    A reader sees the old directory or (for the instant between two renames) none,
    never a half-written one.
    """
    retired = target.with_name(f".{target.name}.retired")
    shutil.rmtree(retired, ignore_errors=True)
    if target.exists():
        os.replace(target, retired)
    os.replace(staging, target)
    shutil.rmtree(retired, ignore_errors=True)
