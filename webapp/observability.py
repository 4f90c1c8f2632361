"""Request ids, one structured log line per request, Prometheus metrics, security headers."""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import threading
import time
import uuid
from collections import deque

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

log = logging.getLogger("webapp.access")

REQUESTS = Counter("imgclf_requests_total", "HTTP requests", ["endpoint", "status"])
LATENCY = Histogram(
    "imgclf_request_seconds", "HTTP request latency", ["endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)  # fmt: skip
PREDICTIONS = Counter("imgclf_predictions_total", "Predicted labels", ["label"])
UNFAMILIARITY = Histogram(
    "imgclf_unfamiliarity", "Unfamiliarity score of each predicted image (about 1: like the "
    "training images; the export's threshold is in /model)",
    buckets=(0.5, 1, 1.5, 2, 3, 5, 10, 20, 50, 100),
)  # fmt: skip
UNFAMILIAR = Counter("imgclf_unfamiliar_total", "Images answered as unfamiliar")
RECENT_UNFAMILIAR = Gauge(
    "imgclf_recent_unfamiliar_share", "Share of the last answers (a worker's window) that were "
    "unfamiliar", multiprocess_mode="livemax",
)  # fmt: skip
CLASS_MIX_SHIFT = Gauge(
    "imgclf_class_mix_shift", "Total variation distance between the predicted classes of the "
    "last answers (a worker's window) and the training images' class mix, 0..1",
    multiprocess_mode="livemax",
)  # fmt: skip
MODEL_LOAD_SECONDS = Gauge(
    "imgclf_model_load_seconds", "Time to load and warm up the model", multiprocess_mode="max"
)
MODEL_RELOADS = Counter("imgclf_model_reloads_total", "New exports swapped in without a restart")
MODEL_RELOAD_FAILURES = Counter(
    "imgclf_model_reload_failures_total", "New exports refused (the old one kept serving)"
)
REJECTED = Counter(
    "imgclf_requests_rejected_total", "Predictions refused with 503 (queue_full, timeout)",
    ["reason"],
)  # fmt: skip

WINDOW = 1000  # the answers a worker's drift gauges look back over


class RecentAnswers:
    """A worker's last WINDOW answers, behind the drift gauges: the share that were
    unfamiliar, and how far their predicted classes are from the training mix."""

    def __init__(self, window: int = WINDOW) -> None:
        self._answers: deque[tuple[str, bool]] = deque()
        self._window = window
        # Kept as answers come and go, so a request costs its own answers, not the window.
        self._labels: collections.Counter[str] = collections.Counter()
        self._unfamiliar = 0
        self._lock = threading.Lock()

    def record(self, answers: list[dict], class_shares: dict[str, float] | None) -> None:
        """Count `answers` (the API's), and set the gauges over the window."""
        for answer in answers:
            PREDICTIONS.labels(answer["prediction"]).inc()
            if answer.get("unfamiliarity") is not None:
                UNFAMILIARITY.observe(answer["unfamiliarity"])
            UNFAMILIAR.inc(answer.get("unfamiliar", False))
        with self._lock:
            for answer in answers:
                self._add(answer["prediction"], bool(answer.get("unfamiliar", False)))
            RECENT_UNFAMILIAR.set(self._unfamiliar / len(self._answers))
            if class_shares:
                CLASS_MIX_SHIFT.set(class_mix_shift(self._labels, class_shares))

    def _add(self, label: str, unfamiliar: bool) -> None:
        self._answers.append((label, unfamiliar))
        self._labels[label] += 1
        self._unfamiliar += unfamiliar
        if len(self._answers) > self._window:
            gone, was_unfamiliar = self._answers.popleft()
            self._labels[gone] -= 1
            self._unfamiliar -= was_unfamiliar
            if not self._labels[gone]:
                del self._labels[gone]


def class_mix_shift(counts: dict[str, int], expected: dict[str, float]) -> float:
    """Total variation distance (half the summed absolute differences, 0..1) between the
    share of each class in `counts` and the `expected` shares."""
    total = sum(counts.values())
    if not total:
        return 0.0
    names = set(counts) | set(expected)
    return 0.5 * sum(abs(counts.get(n, 0) / total - expected.get(n, 0.0)) for n in names)


SECURITY_HEADERS = {
    # No inline script anywhere: scripts and styles come from /static only.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def metrics_response() -> Response:
    """The Prometheus exposition, summed over gunicorn workers when they share a directory."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
    return Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST)


def register(app: Flask) -> None:
    @app.before_request
    def start_timer() -> None:
        g.started = time.perf_counter()
        # When the request's REQUEST_TIMEOUT_S runs out (see model_service).
        g.deadline = time.monotonic() + float(app.config["REQUEST_TIMEOUT_S"])
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if REQUEST_ID.match(incoming) else uuid.uuid4().hex

    @app.after_request
    def finish(response: Response) -> Response:
        seconds = time.perf_counter() - g.get("started", time.perf_counter())
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        REQUESTS.labels(endpoint, str(response.status_code)).inc()
        LATENCY.labels(endpoint).observe(seconds)
        response.headers["X-Request-ID"] = g.get("request_id", "")
        response.headers.update(SECURITY_HEADERS)
        log.info(json.dumps({
            "request_id": g.get("request_id"), "method": request.method, "path": request.path,
            "status": response.status_code, "ms": round(seconds * 1000, 1),
            "bytes_in": request.content_length or 0,
        }))  # fmt: skip
        return response
