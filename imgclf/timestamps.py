"""When something happened, as every file and answer of the project writes it."""

from __future__ import annotations

import datetime


def utc_now() -> str:
    """The time now in UTC, ISO 8601 to the second ("2026-12-07T13:27:17+00:00")."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
