"""Small file helpers shared by stages: JSON written the same way every time."""

from __future__ import annotations

import json
from pathlib import Path


def _rounded(value: object) -> object:
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    return value


def write_json(path: Path, content: object) -> None:
    """Write JSON with sorted keys, floats rounded to 6 places and a final newline."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_rounded(content), indent=2, sort_keys=True)
    path.write_text(text + "\n", encoding="utf-8")
