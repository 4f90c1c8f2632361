"""The review page in a real browser: Debian's Chromium driven by Playwright against
`imgclf review`'s server, deciding with the mouse and the keyboard, then reloading."""

from __future__ import annotations

import csv
import threading

import pytest

from imgclf.review.app import create_review_app
from support.browser import CHROMIUM, FLAGS, screenshot
from support.review import review_project

pytestmark = [
    pytest.mark.slow,  # a browser: `make test-fast` leaves it out
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (.ci/run has it)"),
]


@pytest.fixture
def served(tmp_path):
    """The review server for a hand-made project, on a free 127.0.0.1 port, stopped after."""
    from werkzeug.serving import make_server

    project = review_project(tmp_path / "project")
    app = create_review_app(project)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    # The address `imgclf review` prints: it carries the run's key.
    yield project, f"http://127.0.0.1:{server.server_port}/?key={app.config['REVIEW_KEY']}"
    server.shutdown()
    thread.join(10)


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield browser.new_page(viewport={"width": 1100, "height": 900})
        browser.close()


def decisions(project) -> dict[str, tuple[str, str]]:
    path = project / "labels" / "decisions.csv"
    with open(path, newline="") as table:
        return {row["file"]: (row["action"], row["label"]) for row in csv.DictReader(table)}


def test_decide_with_mouse_and_keyboard_reload_and_undo(served, page, tmp_path):
    project, url = served
    page.goto(url)
    findings = page.locator(".finding")
    findings.first.wait_for()
    assert findings.count() == 7 and page.locator("#progress").inner_text() == "0 of 7 reviewed"
    first = findings.first
    assert first.locator(".labels").inner_text().startswith("Label: circle · suggested: square")
    assert first.locator("img").evaluate("img => img.decode().then(() => img.naturalWidth)") == 256
    screenshot(page, tmp_path, "review")

    # The mouse: take the first suggestion. The page moves on to the next finding.
    first.get_by_role("button", name="Take the suggestion: square (a)").click()
    page.wait_for_function("document.querySelector('#progress').textContent.startsWith('1 of')")
    assert decisions(project) == {"circle/000.png": ("relabel", "square")}
    assert findings.count() == 6  # decided ones are hidden unless asked for
    current = page.locator(".finding.current")
    assert "star/001.png" in current.locator(".file").inner_text()

    # The keyboard: keep this label (s); move down past square/002.png (j) to the pair of
    # square/003.png and 004.png, and keep only the first of them (1).
    page.keyboard.press("s")
    page.wait_for_function("document.querySelector('#progress').textContent.startsWith('2 of')")
    page.keyboard.press("j")
    page.keyboard.press("1")
    page.wait_for_function("document.querySelector('#progress').textContent.startsWith('3 of')")
    assert decisions(project) == {
        "circle/000.png": ("relabel", "square"), "star/001.png": ("keep", ""),
        "square/004.png": ("exclude", ""),
    }  # fmt: skip
    decided = dict(decisions(project))

    # A reload keeps every decision; "show decided" lists them with what was decided.
    page.reload()
    findings.first.wait_for()
    assert page.locator("#progress").inner_text() == "3 of 7 reviewed"
    page.check("#show-decided")
    assert page.locator(".finding.done").count() == 3
    relabelled = page.locator(".finding.done", has_text="circle/000.png")
    assert relabelled.locator(".decided").inner_text() == "circle/000.png: relabelled as square"
    screenshot(page, tmp_path, "review-decided")

    # Undo by button: the decision is gone from the file, the finding back to review.
    relabelled.get_by_role("button", name="Undo (u)").click()
    page.wait_for_function("document.querySelector('#progress').textContent.startsWith('2 of')")
    decided.pop("circle/000.png")
    assert decisions(project) == decided

    # Filters: only the outliers, and only what concerns one class.
    page.select_option("#kind", "outlier")
    assert page.locator(".finding").count() == 1
    page.select_option("#kind", "")
    page.select_option("#class", "star")  # given, suggested or the pair's label
    files = [page.locator(".finding .file").nth(i).inner_text() for i in range(3)]
    assert page.locator(".finding").count() == 3
    assert files == ["val: star/001.png", "train: square/002.png", "star/005.png and star/006.png"]
