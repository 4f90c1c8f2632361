"""`imgclf review`: a page on 127.0.0.1 for deciding about the audit's findings.

A local tool, apart from the serving app on purpose: it reads the project's data/,
audit/ and evaluation/, and writes labels/decisions.csv, none of which a deployed
server has or should write. It loads no model, so it starts at once and works
offline. Every decision is written at once (labels/decisions.csv, whole or not at
all), so nothing is lost on a reload; `prepare` applies them on the next `dvc repro`.

It answers only its own user. Any web page the user visits can send requests to
127.0.0.1, and through DNS rebinding read the answers, so every request must name the
server as 127.0.0.1 or localhost at its own port (`Host`), and carry this run's random
key: in the address `imgclf review` prints (the page then keeps it in a SameSite=Strict
cookie, and strips it from the address), or in an `X-Review-Key` header. No page may
frame it, and an image is served only from a file that resolves inside data/.
"""

from __future__ import annotations

import hmac
import io
import json
import secrets
import threading
from pathlib import Path

from flask import Flask, abort, jsonify, redirect, render_template, request, send_file

from imgclf import paths
from imgclf.atomic_io import write_json
from imgclf.data.decisions import (
    FINDING_KINDS,
    Decision,
    DecisionsError,
    decision,
    read_decisions,
    write_decisions,
)
from imgclf.data.layout import DataError, find_layout
from imgclf.images import ImageDecodeError, load_image
from imgclf.review.worklist import FINDINGS_FILES, Finding, current_findings
from imgclf.stage_files import PreparedInfo, StageFileError
from imgclf.timestamps import utc_now

IMAGE_SIDE = 256  # px: large enough to judge a photo, and a 28 px image shown 9x
KEY_PARAMETER, KEY_COOKIE, KEY_HEADER = "key", "imgclf_review_key", "X-Review-Key"
LOCAL_NAMES = ("127.0.0.1", "localhost")


class Review:
    """The project's findings (read again when their files change) and its decisions
    (read on every request: another page or an editor may have written them)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = threading.Lock()  # one decision written at a time
        self._read: tuple[tuple, dict[str, Finding]] = ((), {})  # (files' stamp, findings)

    def class_names(self) -> list[str]:
        try:
            return PreparedInfo.load(self.root / paths.PREPARED).class_names
        except (StageFileError, FileNotFoundError):
            return find_layout(self.root / paths.DATA).class_names

    def decisions(self) -> dict[str, Decision]:
        return read_decisions(self.root / paths.DECISIONS, self.class_names())

    def findings(self) -> dict[str, Finding]:
        """Read again only when a findings file has changed (a page shows hundreds of
        images, each request checking its file against them)."""
        stamp = tuple(
            (path.stat().st_mtime_ns, path.stat().st_size) if path.is_file() else None
            for path in (self.root / name for name in FINDINGS_FILES)
        )
        if stamp != self._read[0]:
            self._read = (stamp, {f.key: f for f in current_findings(self.root)})
        return self._read[1]

    def since_last_review(self, findings: dict[str, Finding]) -> dict:
        """Findings new since the last decision, and how many it saw that are gone now."""
        path = self.root / paths.LAST_REVIEW
        if not path.is_file():
            return {"new": [], "resolved": 0, "when": None}
        last = json.loads(path.read_text(encoding="utf-8"))
        seen = set(last["findings"])
        return {
            "new": sorted(set(findings) - seen),
            "resolved": len(seen - set(findings)),
            "when": last["when"],
        }

    def state(self) -> dict:
        findings = self.findings()
        problems = []
        if not (self.root / paths.AUDIT / "label_issues.csv").is_file():
            problems.append(f"{paths.AUDIT}/ has no findings yet: run `dvc repro audit`")
        if not (self.root / paths.REVIEW_MISTAKES).is_file():
            problems.append(
                f"{paths.REVIEW_MISTAKES} not found: run `dvc repro` to add the model's "
                "confident mistakes"
            )
        return {
            "classes": self.class_names(),
            "kinds": FINDING_KINDS,
            "findings": [finding.as_json() for finding in findings.values()],
            "decisions": {file: d.row() for file, d in self.decisions().items()},
            "since": self.since_last_review(findings),
            "problems": problems,
            "decisions_file": str(paths.DECISIONS),
        }

    def decide(self, key: str, changes: list[dict], undo: bool) -> None:
        """Write the decisions about one finding's files (or remove them: undo)."""
        with self.lock:
            findings = self.findings()
            if key not in findings:
                raise DecisionsError(f"no finding {key!r}: reload the page")
            allowed = findings[key].files()
            decisions, classes = self.decisions(), self.class_names()
            for change in changes:
                file = change.get("file", "")
                if file not in allowed:
                    raise DecisionsError(f"{file!r} cannot be decided from finding {key!r}")
                if undo:
                    decisions.pop(file, None)
                    continue
                decisions[file] = decision({
                    "file": file, "action": change.get("action", ""),
                    "label": change.get("label", ""), "finding": findings[key].kind,
                    "when": utc_now(),
                }, classes, "the decision")  # fmt: skip
            write_decisions(self.root / paths.DECISIONS, decisions)
            write_json(
                self.root / paths.LAST_REVIEW, {"findings": sorted(findings), "when": utc_now()}
            )


def is_local_host(host: str, port: str) -> bool:
    """Whether a request's Host names this server on this machine (127.0.0.1 or localhost
    at its own port; a browser leaves out port 80), not a name rebound to it."""
    return any(host == f"{name}:{port}" or (port == "80" and host == name) for name in LOCAL_NAMES)


def create_review_app(root: Path = Path("."), key: str | None = None) -> Flask:
    """The review page and its JSON API for the project at `root`, answering only requests
    that carry `key` (default: a new random one, in app.config["REVIEW_KEY"])."""
    app = Flask(__name__)
    app.config["REVIEW_KEY"] = key or secrets.token_urlsafe(32)
    review = Review(Path(root))

    def given_key() -> str:
        return (
            request.args.get(KEY_PARAMETER)
            or request.headers.get(KEY_HEADER)
            or request.cookies.get(KEY_COOKIE)
            or ""
        )

    @app.before_request
    def only_its_own_user():
        if not is_local_host(request.host, request.environ.get("SERVER_PORT", "")):
            return jsonify(error=f"this page answers only at 127.0.0.1 or localhost, not at "
                           f"{request.host!r}"), 403  # fmt: skip
        if not hmac.compare_digest(given_key().encode(), app.config["REVIEW_KEY"].encode()):
            return jsonify(error="open the address `imgclf review` printed: it carries this "
                           "run's key"), 403  # fmt: skip
        if KEY_PARAMETER in request.args and request.method == "GET" and request.path == "/":
            # Keep the key in a cookie no other site can send, and out of the address bar.
            page = redirect("/", code=303)
            page.set_cookie(KEY_COOKIE, app.config["REVIEW_KEY"], httponly=True,
                            samesite="Strict", path="/")  # fmt: skip
            return page
        return None

    @app.after_request
    def never_framed(response):
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Content-Security-Policy"] = "frame-ancestors 'none'"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    @app.errorhandler(DecisionsError)
    @app.errorhandler(DataError)
    def user_error(exc: Exception):
        return jsonify(error=str(exc)), 400

    @app.get("/")
    def page():
        return render_template("review.html")

    @app.get("/api/state")
    def state():
        return jsonify(review.state())

    @app.post("/api/decide")
    def decide():
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("changes"), list):
            raise DecisionsError('send JSON {"finding": KEY, "changes": [{"file", "action", ...}]}')
        review.decide(str(body.get("finding", "")), body["changes"], bool(body.get("undo")))
        return jsonify(review.state())

    @app.get("/image/<path:file>")
    def image(file: str):
        shown = {name for f in review.findings().values() for name in (f.file, f.partner_file)}
        if file not in shown:
            abort(404)
        # The findings files are data too: a path in them must still land inside data/.
        data = (review.root / paths.DATA).resolve()
        path = (data / file).resolve()
        if not path.is_relative_to(data):
            abort(404)
        try:
            pixels = load_image(path, IMAGE_SIDE)
        except (ImageDecodeError, OSError):
            abort(404)
        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        buffer.seek(0)
        return send_file(buffer, mimetype="image/png", max_age=60)

    return app
