"""The page in a real browser: Debian's Chromium driven by Playwright against gunicorn."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from support.server import Gunicorn
from tests.conftest import image_bytes, random_rgb

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"),
    reason="needs Debian's chromium (apt-get install chromium); .ci/run installs it",
)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def server(trained_project):
    with Gunicorn(trained_project / "models" / "best") as running:
        yield running


def screenshot(page, tmp_path: Path, name: str) -> None:
    """Keep a screenshot; IMGCLF_SCREENSHOT_DIR keeps a copy for a person to look at."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    if os.environ.get("IMGCLF_SCREENSHOT_DIR"):
        shutil.copy(path, Path(os.environ["IMGCLF_SCREENSHOT_DIR"]) / path.name)


def test_upload_shows_label_confidence_and_bars_then_an_error(browser, server, tmp_path):
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    page.goto(server.url)
    assert "accuracy on its test images" in page.locator("#model").inner_text()

    png = image_bytes(random_rgb(41, (64, 64)))
    page.set_input_files(
        "#file", files=[{"name": "photo.png", "mimeType": "image/png", "buffer": png}]
    )
    page.wait_for_selector("#result:not([hidden])")
    label = page.locator("#label").inner_text()
    assert label in {"circle", "square", "star"}
    assert page.locator("#confidence").inner_text().endswith("% confident")
    assert page.locator("#bars li").count() == 3
    assert page.locator("#preview").evaluate("img => img.naturalWidth") == 64
    screenshot(page, tmp_path, "prediction")

    text = b"this is not an image" * 10
    page.set_input_files(
        "#file", files=[{"name": "fake.jpg", "mimeType": "image/jpeg", "buffer": text}]
    )
    # (not wait_for_function: the page's CSP refuses eval, as it should)
    page.locator("#status", has_text="not a usable image").wait_for()
    assert "error" in page.locator("#status").get_attribute("class")
    assert page.locator("#result").is_hidden()
    screenshot(page, tmp_path, "error")
    page.close()


def test_page_works_from_the_keyboard_and_on_a_phone(browser, server, tmp_path):
    page = browser.new_page(viewport={"width": 375, "height": 740}, is_mobile=True)
    page.goto(server.url)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "file"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "submit"
    page.keyboard.press("Enter")  # nothing chosen yet: the browser asks for a file, no request
    assert page.locator("#file").evaluate("input => input.validationMessage") != ""
    assert page.locator("#result").is_hidden()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375  # nothing overflows sideways on a phone
    png = image_bytes(random_rgb(42, (30, 90)))
    page.set_input_files(
        "#file", files=[{"name": "tall.png", "mimeType": "image/png", "buffer": png}]
    )
    page.wait_for_selector("#result:not([hidden])")
    screenshot(page, tmp_path, "phone")
    page.close()


def test_toggle_lays_the_heatmap_over_the_preview(browser, server, tmp_path):
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    page.goto(server.url)
    png = image_bytes(random_rgb(43, (64, 64)))
    page.set_input_files(
        "#file", files=[{"name": "photo.png", "mimeType": "image/png", "buffer": png}]
    )
    page.wait_for_selector("#result:not([hidden])")
    assert page.locator("#heatmap").is_hidden()
    label = page.locator("#label")
    uncertain = "uncertain" in (label.get_attribute("class") or "")
    assert label.inner_text().startswith("not sure — maybe ") == uncertain
    page.check("#explain-toggle")
    page.wait_for_selector("#heatmap:not([hidden])")
    heatmap = page.locator("#heatmap")
    assert heatmap.evaluate("img => img.complete && img.naturalWidth") == 224
    preview_box, heatmap_box = page.locator("#preview").bounding_box(), heatmap.bounding_box()
    assert heatmap_box == preview_box  # exactly over the picture
    screenshot(page, tmp_path, "heatmap")
    page.uncheck("#explain-toggle")
    assert heatmap.is_hidden()
    # A new image starts without the old heatmap.
    page.set_input_files(
        "#file", files=[{"name": "other.png", "mimeType": "image/png", "buffer": png}]
    )
    page.wait_for_selector("#result:not([hidden])")
    assert heatmap.is_hidden() and not page.is_checked("#explain-toggle")
    page.close()
