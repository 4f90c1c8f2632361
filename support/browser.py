"""Debian's Chromium for the browser tests (Playwright drives it), and their screenshots."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


def screenshot(page, tmp_path: Path, name: str) -> None:
    """Keep a screenshot; IMGCLF_SCREENSHOT_DIR keeps a copy for a person to look at."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    if os.environ.get("IMGCLF_SCREENSHOT_DIR"):
        shutil.copy(path, Path(os.environ["IMGCLF_SCREENSHOT_DIR"]) / path.name)
