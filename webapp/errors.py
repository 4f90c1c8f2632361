"""Every error a client can cause answers JSON {"error": "..."} with the right status."""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

log = logging.getLogger("webapp")

MESSAGES = {
    404: "no such page or endpoint: see GET /model, POST /predict, GET /health",
    405: "method not allowed here: POST /predict takes the upload, the other endpoints take GET",
}


class ApiError(Exception):
    """A client error with its status code and a message saying what to do."""

    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.retry_after = status, message, retry_after


def too_large_message(limit_bytes: int) -> str:
    """What a client is told when its upload passes MAX_UPLOAD_MB (the app and the worker)."""
    return f"upload too large: the limit is {limit_bytes / 2**20:g} MB per request"


def error_response(status: int, message: str, retry_after: int | None = None):
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="imgclf"'  # RFC 6750
    return jsonify(error=message), status, headers


def register(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(exc: ApiError):
        return error_response(exc.status, exc.message, exc.retry_after)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc: RequestEntityTooLarge):
        return error_response(413, too_large_message(app.config["MAX_CONTENT_LENGTH"]))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return error_response(exc.code or 500, MESSAGES.get(exc.code, exc.description))

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unhandled error")  # the trace goes to the log, never to the client
        return error_response(500, "internal error: the request failed; it has been logged")
