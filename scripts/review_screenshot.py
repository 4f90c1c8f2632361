"""The docs' picture of the review page: docs/review.png, from the project's findings.

    make screenshot        (after make repro)

Serves `imgclf review` for a scratch copy of the project (links to its data/,
audit/, evaluation/ and prepared/; its own empty labels/, so the project's decisions
are untouched) on a free 127.0.0.1 port, takes the first suggestion with the `a` key
in headless Chromium (Debian's), and saves the top of the page.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imgclf.review.app import create_review_app  # noqa: E402
from support.browser import CHROMIUM, FLAGS  # noqa: E402

OUT = ROOT / "docs" / "review.png"


def main() -> None:
    from playwright.sync_api import sync_playwright
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    if not (ROOT / "audit" / "label_issues.csv").is_file():
        sys.exit("no audit/ findings: run `make repro` first")
    with tempfile.TemporaryDirectory() as scratch:
        for name in ("data", "audit", "evaluation", "prepared"):
            (Path(scratch) / name).symlink_to(ROOT / name)
        app = create_review_app(Path(scratch))
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
            page = browser.new_page(viewport={"width": 1100, "height": 1000})
            page.goto(f"http://127.0.0.1:{server.server_port}/?key={app.config['REVIEW_KEY']}")
            page.locator(".finding").first.wait_for()
            page.keyboard.press("a")  # take the first suggestion: the page moves on
            decided = "!document.querySelector('#progress').textContent.startsWith('0 ')"
            page.wait_for_function(decided)
            page.check("#show-decided")
            page.locator(".finding img").nth(3).evaluate("img => img.decode()")
            OUT.parent.mkdir(exist_ok=True)
            page.screenshot(path=OUT)
            browser.close()
        server.shutdown()
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
