"""Client threads sending /predict until stopped, keeping every outcome: load for fault tests."""

from __future__ import annotations

import http.client
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field

from support.images import image_bytes, random_rgb
from support.server import multipart

PNG = image_bytes(random_rgb(5))


@dataclass
class Outcome:
    started: float
    ended: float
    status: int | None  # None: the connection failed
    request_id: str
    retry_after: str | None = None
    failure: str | None = None  # why the connection failed

    @property
    def seconds(self) -> float:
        return self.ended - self.started


@dataclass
class Load:
    """Client threads sending /predict until stopped; every outcome is kept."""

    url: str
    clients: int
    files: int = 1
    timeout: float = 30
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.body, self.content_type = multipart([(f"{i}.png", PNG) for i in range(self.files)])
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client) for _ in range(self.clients)]

    def _client(self) -> None:
        while not self._stop.is_set():
            request_id = uuid.uuid4().hex
            request = urllib.request.Request(
                f"{self.url}/predict", data=self.body,
                headers={"Content-Type": self.content_type, "X-Request-ID": request_id},
            )  # fmt: skip
            started, status, retry_after, failure = time.monotonic(), None, None, None
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    response.read()
                    status = response.status
            except urllib.error.HTTPError as error:
                status, retry_after = error.code, error.headers.get("Retry-After")
                error.read()
            except (OSError, http.client.HTTPException) as exc:
                # Refused, reset, or cut off mid-answer (IncompleteRead): not answered.
                failure = repr(exc)
                time.sleep(0.05)  # try again shortly
            with self._lock:
                self.outcomes.append(
                    Outcome(started, time.monotonic(), status, request_id, retry_after, failure)
                )

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout + 5)

    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)
