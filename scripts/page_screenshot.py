"""The README's picture of the web page: docs/page.png, from the current export.

    make screenshot        (after make repro)

Serves models/best with gunicorn on a free 127.0.0.1 port, opens the page in
headless Chromium (Debian's), drops one sample image per class, a file that is not
an image and a picture unlike anything the model learned from (a drawn sunset) on
it, turns on the heatmap of the first card and saves the page.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from support.browser import CHROMIUM, FLAGS  # noqa: E402
from support.server import Gunicorn  # noqa: E402

OUT = ROOT / "docs" / "page.png"


def sample_files() -> list[dict]:
    classes = sorted(p for p in (ROOT / "data").iterdir() if p.is_dir())
    if not classes:
        sys.exit("no sample images in data/: run `make repro` first")
    files = []
    for folder in classes[:8]:
        first = sorted(folder.glob("*.png"))[0]
        files.append({"name": first.name, "mimeType": "image/png", "buffer": first.read_bytes()})
    broken = {"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"not an image\n" * 20}
    foreign = {"name": "sunset.png", "mimeType": "image/png", "buffer": sunset()}
    return [*files[:4], broken, foreign, *files[4:]]


def sunset() -> bytes:
    """A drawn sunset over the sea: nothing like the sample's clothes."""
    import io

    from PIL import Image, ImageDraw

    image = Image.new("RGB", (160, 120))
    draw = ImageDraw.Draw(image)
    for row in range(120):  # sky from violet to orange, then the sea
        sky = (int(90 + 1.4 * row), int(40 + 0.9 * row), int(140 - 0.6 * row))
        draw.line([(0, row), (160, row)], fill=sky if row < 80 else (20, 60, 110 + row - 80))
    draw.ellipse((60, 45, 100, 85), fill=(255, 200, 60))
    draw.rectangle((0, 80, 160, 120), fill=(25, 70, 120))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def main() -> None:
    from playwright.sync_api import sync_playwright

    with Gunicorn(ROOT / "models" / "best") as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.goto(server.url)
        files = sample_files()
        page.set_input_files("#file", files=files)
        page.locator("#results .card.done").nth(len(files) - 1).wait_for()
        page.locator("#results .card .explain-toggle").first.check()
        page.locator("#results .card .heatmap:not([hidden])").first.wait_for()
        OUT.parent.mkdir(exist_ok=True)
        page.screenshot(path=OUT, full_page=True)
        browser.close()
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
