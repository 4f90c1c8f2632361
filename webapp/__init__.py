"""The web app: a page and a JSON API serving the model that the `export` stage wrote.

gunicorn --config webapp/gunicorn.conf.py 'webapp:create_app()'   # production (`make serve`)
python -m webapp                                                  # development server

Configuration comes from IMGCLF_* environment variables (Flask's from_prefixed_env:
IMGCLF_MAX_FILES=8 sets MAX_FILES), over the defaults below, under `config`.
"""

from __future__ import annotations

import io
from typing import Any

from flask import Flask, Request

from imgclf import paths
from imgclf.serving.runtimes import RUNTIMES
from webapp import api, auth, errors, model_service, observability, page

DEFAULTS = {
    "MODEL_DIR": str(paths.EXPORT),  # the export to serve
    "MAX_UPLOAD_MB": 10,  # request size limit (413 above)
    "MAX_FILES": 16,  # files per request
    "MAX_DECODE_MB": 256,  # memory one image may take to decode (estimated from its header)
    "MAX_BATCH": 32,  # images per model call when requests arrive together (1: no batching)
    "MAX_QUEUE": 16,  # requests a worker lets wait for the model; more get 503 at once
    "REQUEST_TIMEOUT_S": 30,  # a request that waited this long for the model gets 503
    "RELOAD_INTERVAL_S": 2,  # how often a worker looks for a new export (0: never)
    "LOAD_IN_BACKGROUND": False,  # True: answer /health while the model loads (gunicorn)
    "RUNTIME": "auto",  # onnx, tflite or keras; auto: the fastest installed (serving/runtimes.py)
    "API_TOKEN": "",  # non-empty: /predict, /model and /metrics need it (webapp/auth.py)
    "API_TOKEN_FILE": "",  # or a file holding it (a container secret); wins over API_TOKEN
}


class ConfigError(ValueError):
    """An IMGCLF_* setting has a value the server cannot use."""


class InMemoryRequest(Request):
    """Keeps uploads in memory (bounded by MAX_CONTENT_LENGTH): nothing is written to disk."""

    def _get_file_stream(self, *args: Any, **kwargs: Any) -> io.BytesIO:
        return io.BytesIO()


def _check(app: Flask) -> None:
    """Every numeric setting is a number in range; the message names the variable."""
    numbers = {
        "MAX_UPLOAD_MB": 0,
        "REQUEST_TIMEOUT_S": 0,
        "RELOAD_INTERVAL_S": 0,
        "MAX_DECODE_MB": 1,
    }
    whole = {"MAX_FILES": 1, "MAX_BATCH": 1, "MAX_QUEUE": 1}
    for key, minimum in {**numbers, **whole}.items():
        value = app.config[key]
        wrong = isinstance(value, bool) or not isinstance(value, int | float)
        if wrong or value < minimum or (key in whole and value != int(value)):
            kind = f"a whole number >= {minimum}" if key in whole else "a number >= 0"
            raise ConfigError(f"IMGCLF_{key} = {value!r}: give {kind}")
    if app.config["RUNTIME"] not in ("auto", *RUNTIMES):
        raise ConfigError(
            f"IMGCLF_RUNTIME = {app.config['RUNTIME']!r}: give auto, " + ", ".join(RUNTIMES)
        )
    if not isinstance(app.config["LOAD_IN_BACKGROUND"], bool):
        raise ConfigError(
            f"IMGCLF_LOAD_IN_BACKGROUND = {app.config['LOAD_IN_BACKGROUND']!r}: give true or false"
        )


def create_app(config: dict | None = None) -> Flask:
    """Application factory: defaults, then IMGCLF_* variables, then `config`."""
    app = Flask(__name__)
    app.request_class = InMemoryRequest
    app.json.sort_keys = False  # probabilities keep their order, most likely first
    app.config.from_mapping(DEFAULTS)
    app.config.from_prefixed_env("IMGCLF")
    app.config.from_mapping(config or {})
    _check(app)
    if not (config and "MAX_CONTENT_LENGTH" in config):
        app.config["MAX_CONTENT_LENGTH"] = int(app.config["MAX_UPLOAD_MB"] * 2**20)
    # First: every request gets its id and its log line, a refused one (401) included.
    observability.register(app)
    try:
        auth.install(app)
    except auth.TokenError as exc:
        raise ConfigError(str(exc)) from None
    model_service.install(app)
    app.register_blueprint(page.bp)
    app.register_blueprint(api.bp)
    errors.register(app)
    return app
