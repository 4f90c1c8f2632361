"""The model a worker serves: loaded once, warmed up, replaced without downtime, and guarded.

- **Loading.** The export is loaded and warmed up (a prediction of each batch
  size class) before the worker reports ready; with LOAD_IN_BACKGROUND (what
  gunicorn's config sets) that happens beside a worker that already answers
  `/health`, and a prediction that arrives meanwhile waits for it.
- **Replacing.** Every RELOAD_INTERVAL_S a watcher looks at the export's files;
  when `export` (or anyone) has replaced them, the new export is loaded and warmed
  up in the background and swapped in with one assignment. A request keeps the
  export it started with (model, class names, batcher) to the end; the old
  batcher answers what it still holds, then stops.
- **Refusing a broken export.** A new export that does not load (truncated model,
  missing or mismatched metadata) never replaces a working one: the old one keeps
  serving, and the failure is one JSON log line, a Prometheus counter and
  `reload_error` in `GET /model`. The same files are not tried again until they
  change.
- **Bounding the queue.** At most MAX_QUEUE requests wait for the model in a
  worker; one more gets `503` with `Retry-After` at once, and a request that has
  waited REQUEST_TIMEOUT_S gets one too, never a hang.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from flask import Flask, current_app

from imgclf.bundle import Bundle
from imgclf.images import DEFAULT_MAX_DECODED_BYTES
from imgclf.serving.predictor import ModelNotExportedError, Predictor
from imgclf.serving.runtimes import Scores
from imgclf.timestamps import utc_now
from webapp import observability
from webapp.batching import MicroBatcher
from webapp.errors import ApiError

log = logging.getLogger("webapp")
RETRY_AFTER_S = 1  # what a refused client is told to wait
_ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(?:[\w.+-]+/)+[\w.+-]*")


def export_stamp(model_dir: Path) -> tuple | None:
    """What changes when an export's files are replaced.

    None while the directory itself is missing (between the two renames of a swap,
    on a file system that cannot exchange them in one step); a missing file inside it
    is part of the stamp, so an incomplete export is tried, and refused.
    """
    try:
        directory = model_dir.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    stamp: list[tuple] = [(directory.st_ino,)]
    for member in Bundle(model_dir).members():
        try:
            found = member.stat()
            stamp.append((member.name, found.st_ino, found.st_mtime_ns, found.st_size))
        except FileNotFoundError:
            stamp.append((member.name, "missing"))
    return tuple(stamp)


def export_id(model_dir: Path) -> str:
    """A digest of the export's files: the same export gives the same id on every worker."""
    digest = hashlib.sha256()
    for member in Bundle(model_dir).members():
        with contextlib.suppress(FileNotFoundError), open(member, "rb") as file:
            for block in iter(lambda: file.read(2**20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class LoadedExport:
    """One export, loaded and warmed up, with the batcher in front of its model."""

    predictor: Predictor
    batcher: MicroBatcher
    export_id: str
    exported_at: str  # when its metadata was written
    loaded_at: str
    stamp: tuple
    # This export's last answers in this worker, behind the drift gauges (a new export
    # starts a new window: its classes or its threshold may differ).
    recent: observability.RecentAnswers = field(default_factory=observability.RecentAnswers)

    @property
    def class_shares(self) -> dict[str, float] | None:
        """Each class's share of the training images (None for older exports)."""
        metadata = self.predictor.metadata
        if metadata.class_shares is None:
            return None
        return dict(zip(metadata.class_names, metadata.class_shares, strict=True))

    def describe(self) -> dict:
        """What GET /model tells about the export being served."""
        return {
            "export_id": self.export_id,
            "exported_at": self.exported_at,
            "loaded_at": self.loaded_at,
            "unfamiliar_threshold": self.predictor.unfamiliar_threshold,
        }


class ModelService:
    """The export in `model_dir` a worker serves, or why there is none."""

    def __init__(
        self,
        model_dir: Path | str,
        max_batch: int,
        max_queue: int,
        request_timeout: float,
        reload_interval: float,
        runtime: str = "auto",
        max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.max_decoded_bytes = max_decoded_bytes
        # Decodes at once in this worker: with each image's memory bounded, so is theirs.
        self._decoders = threading.BoundedSemaphore(os.cpu_count() or 2)
        self._explainers = threading.BoundedSemaphore(os.cpu_count() or 2)
        self.runtime = runtime  # serving/runtimes.py: auto, onnx, tflite or keras
        self.max_batch, self.max_queue = max_batch, max_queue
        self.request_timeout, self.reload_interval = request_timeout, reload_interval
        self.current: LoadedExport | None = None
        self.error: str | None = None  # why nothing is served
        self.reload_error: str | None = None  # why the latest new export was refused
        self._failed_stamp: tuple | None = None
        self._first_load = threading.Event()
        self._waiting = threading.BoundedSemaphore(max_queue)
        self._stop = threading.Event()
        self._swap = threading.Lock()

    # --- loading and replacing ---------------------------------------------------------

    def start(self, background: bool) -> None:
        """Load the export (now, or in a background thread), then watch it for a new one."""
        if background:
            threading.Thread(target=self._run, name="model-loader", daemon=True).start()
        else:
            self._load_first()
            if self.reload_interval > 0:
                threading.Thread(target=self._watch, name="model-watcher", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        self._load_first()
        if self.reload_interval > 0:
            self._watch()

    def _load_first(self) -> None:
        try:
            self._replace(self._load(export_stamp(self.model_dir)))
        except ModelNotExportedError as exc:
            self.error = self.for_clients(str(exc))
            self._failed_stamp = export_stamp(self.model_dir)
            log.warning("serving without a model: %s", exc)
        finally:
            self._first_load.set()

    def _watch(self) -> None:
        while not self._stop.wait(self.reload_interval):
            self.check_for_new_export()

    def check_for_new_export(self) -> bool:
        """Load and swap in the export if its files changed; True when a new one is served."""
        stamp = export_stamp(self.model_dir)
        current = self.current.stamp if self.current else None
        # Missing files: between the two renames of a swap, or deleted. Keep what runs.
        if stamp is None or stamp in (current, self._failed_stamp):
            return False
        try:
            loaded = self._load(stamp)
        except ModelNotExportedError as exc:
            self._failed_stamp = stamp
            self._refuse(str(exc))
            return False
        self._replace(loaded)
        return True

    def _load(self, stamp: tuple | None) -> LoadedExport:
        started = time.perf_counter()
        predictor = Predictor.load(self.model_dir, self.runtime)
        predictor.max_decoded_bytes = self.max_decoded_bytes
        size = predictor.image_size
        for batch in (1, 2):  # a second batch size makes Keras trace one graph for any size, now
            predictor.probabilities(np.zeros((batch, size, size, 3), dtype=np.uint8))
        written = Bundle(self.model_dir).metadata_file.stat().st_mtime
        loaded = LoadedExport(
            predictor=predictor,
            # Through the predictor, not its bound method: what it runs is what it holds.
            batcher=MicroBatcher(lambda batch: predictor.scores(batch), self.max_batch),
            export_id=export_id(self.model_dir),
            exported_at=datetime.datetime.fromtimestamp(written, datetime.timezone.utc).isoformat(
                timespec="seconds"
            ),
            loaded_at=utc_now(),
            stamp=stamp,
        )
        observability.MODEL_LOAD_SECONDS.set(time.perf_counter() - started)
        return loaded

    def _replace(self, loaded: LoadedExport) -> None:
        with self._swap:
            old, self.current = self.current, loaded
            self.error = self.reload_error = None
            self._failed_stamp = None
        if old is not None:
            old.batcher.close()
            observability.MODEL_RELOADS.inc()
        log.info(json.dumps({
            "event": "model_loaded", "pid": os.getpid(), "model_dir": str(self.model_dir),
            "selected_model": loaded.predictor.metadata.selected_model,
            "export_id": loaded.export_id, "replaced": old.export_id if old else None,
        }))  # fmt: skip

    def for_clients(self, message: str) -> str:
        """`message` without the server's paths: the export directory is named by its
        variable, any other absolute path by its file name (the logs keep them whole)."""
        for folder in sorted({str(self.model_dir.resolve()), str(self.model_dir)}, key=len)[::-1]:
            message = message.replace(folder, "IMGCLF_MODEL_DIR")
        return _ABSOLUTE_PATH.sub(lambda match: Path(match.group(0)).name, message)

    def _refuse(self, reason: str) -> None:
        self.reload_error = self.for_clients(reason)
        observability.MODEL_RELOAD_FAILURES.inc()
        log.error(json.dumps({
            "event": "model_reload_failed", "model_dir": str(self.model_dir), "reason": reason,
            "serving": self.current.export_id if self.current else None,
        }))  # fmt: skip

    # --- serving requests --------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.current is not None

    @property
    def loading(self) -> bool:
        return not self._first_load.is_set()

    def wait_until_loaded(self, seconds: float) -> bool:
        """Wait up to `seconds` for the first load to end (loaded or failed): has it?"""
        return self._first_load.wait(seconds)

    def acquire(self) -> LoadedExport:
        """The export a request uses from start to end; a 503 saying why when there is none.

        While the first load is still running, the request waits for it (up to
        REQUEST_TIMEOUT_S) instead of failing: a worker that has just started, or
        restarted, answers once its model is warm.
        """
        self.wait_until_loaded(self.request_timeout)
        current = self.current
        if current is None:
            if self.loading:
                raise ApiError(503, "the model is still loading: retry shortly", RETRY_AFTER_S)
            raise ApiError(503, self.error or "no model loaded")
        return current

    @contextlib.contextmanager
    def admitted(self) -> Iterator[None]:
        """A place among the MAX_QUEUE requests that may wait for the model, or a 503 at once."""
        if not self._waiting.acquire(blocking=False):
            observability.REJECTED.labels("queue_full").inc()
            raise ApiError(
                503,
                f"the server is busy ({self.max_queue} requests are already waiting for the "
                "model here): retry shortly",
                RETRY_AFTER_S,
            )
        try:
            yield
        finally:
            self._waiting.release()

    @contextlib.contextmanager
    def decoding(self) -> Iterator[None]:
        """One of the worker's few decoding places (as many as cores), waited for."""
        with self._decoders:
            yield

    def scores(self, loaded: LoadedExport, batch: np.ndarray, deadline: float) -> Scores:
        """Class probabilities and unfamiliarity for model inputs, in a model call shared
        with other requests.

        The caller holds its place (admitted()); `deadline` (time.monotonic) is when the
        request's REQUEST_TIMEOUT_S runs out.
        """
        try:
            return loaded.batcher.submit(batch, max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            raise self._too_late() from None

    @contextlib.contextmanager
    def explaining(self, deadline: float) -> Iterator[None]:
        """One of the worker's Grad-CAM places (as many as cores) for one image, waited for
        until the request's deadline: a gradient pass costs several predictions, so explain
        requests queue here, and one that cannot start in time gets a 503, never a hang."""
        left = deadline - time.monotonic()
        if left <= 0 or not self._explainers.acquire(timeout=left):
            raise self._too_late()
        try:
            yield
        finally:
            self._explainers.release()

    def _too_late(self) -> ApiError:
        observability.REJECTED.labels("timeout").inc()
        return ApiError(
            503,
            f"no answer within {self.request_timeout:g} s: the server is overloaded, "
            "retry shortly",
            RETRY_AFTER_S,
        )  # fmt: skip

    def describe(self) -> dict:
        """GET /model: the served export's metadata, its id and times, and any refused reload."""
        loaded = self.acquire()
        return {
            **loaded.predictor.metadata.model_dump(mode="json"),
            **loaded.describe(),
            "runtime": loaded.predictor.runtime.name,
            "reload_error": self.reload_error,
        }


def install(app: Flask) -> ModelService:
    """Make the app's model service and start loading its export (once per process)."""
    config = app.config
    service = ModelService(
        str(config["MODEL_DIR"]), config["MAX_BATCH"], config["MAX_QUEUE"],
        float(config["REQUEST_TIMEOUT_S"]), float(config["RELOAD_INTERVAL_S"]),
        config["RUNTIME"], int(config["MAX_DECODE_MB"] * 2**20),
    )  # fmt: skip
    service.start(background=bool(config["LOAD_IN_BACKGROUND"]))
    app.extensions["imgclf"] = service
    return service


def model_service(app: Flask | None = None) -> ModelService:
    """The model service of `app` (default: the app handling the current request)."""
    return (app or current_app).extensions["imgclf"]
