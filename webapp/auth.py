"""Optional token authentication: IMGCLF_API_TOKEN (or a file, IMGCLF_API_TOKEN_FILE) turns on
`Authorization: Bearer <token>` for /predict, /model and /metrics.

/health and /ready stay open (load balancers and orchestrators probe them), and so
does the page, which asks for the token once and keeps it for the browser session.
The comparison takes the same time whatever the token sent (hmac.compare_digest).
Off by default, for a server on 127.0.0.1; turn it on wherever others can reach the
port (docs/serving.md).
"""

from __future__ import annotations

import hmac

from flask import Flask, current_app, request

from webapp.errors import ApiError

PROTECTED = {"api.predict", "api.model", "api.metrics"}
MAX_TOKEN_LENGTH = 4096  # characters of the token file's first line: the rest is never read


class TokenError(ValueError):
    """IMGCLF_API_TOKEN_FILE cannot be read, or holds no token."""


def configured_token(config: dict) -> str:
    """The token to require ("" for none): the file's first line, else the variable."""
    file = config.get("API_TOKEN_FILE") or ""
    if file:
        try:
            with open(file, encoding="utf-8") as secret:
                line = secret.readline(MAX_TOKEN_LENGTH + 1)
        except OSError as exc:
            raise TokenError(
                f"IMGCLF_API_TOKEN_FILE = {file!r}: cannot read it ({exc.strerror})"
            ) from None
        if len(line.rstrip("\r\n")) > MAX_TOKEN_LENGTH:  # longer than a token, spaces or not
            raise TokenError(
                f"IMGCLF_API_TOKEN_FILE = {file!r}: its first line is longer than "
                f"{MAX_TOKEN_LENGTH} characters; put the token alone on the first line"
            )
        token = line.strip()
        if not token:
            raise TokenError(f"IMGCLF_API_TOKEN_FILE = {file!r}: the file holds no token")
        return token
    return str(config.get("API_TOKEN") or "")


def install(app: Flask) -> None:
    """Check the token before every protected endpoint, when one is configured."""
    app.config["API_TOKEN"] = configured_token(app.config)

    @app.before_request
    def require_token() -> None:
        expected = current_app.config["API_TOKEN"]
        if not expected or request.endpoint not in PROTECTED:
            return
        scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            sent.strip().encode(), expected.encode()
        ):
            raise ApiError(
                401, "this server needs its API token: send `Authorization: Bearer <token>` "
                "(the token is the server's IMGCLF_API_TOKEN)",
            )  # fmt: skip
