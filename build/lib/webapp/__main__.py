"""Development server: `python -m webapp` (use `make serve`, gunicorn, in production)."""

from __future__ import annotations

import logging
import os

from webapp import create_app

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # Flask's debugger runs arbitrary code from the browser: only when asked for.
    debug = os.environ.get("FLASK_DEBUG") == "1"
    create_app().run(
        host=os.environ.get("IMGCLF_HOST", "127.0.0.1"),
        port=int(os.environ.get("IMGCLF_PORT", "5000")),
        debug=debug,
    )
