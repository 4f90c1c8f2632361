"""Request ids, one structured log line per request, Prometheus metrics, security headers."""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid

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
