"""Micro-batching: requests that arrive together share one model call.

On a CPU one call on 8 images costs little more than a call on one, so each
worker's request threads share one model call at a time. A request that finds the
model idle calls it at once, in its own thread; requests that arrive while a call
runs queue up, and the batching thread runs them all in the next call. Nobody waits
for company, so a lone request pays nothing and a busy server batches by itself.
A request that gave up waiting (its timeout passed) is dropped from the batch.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import numpy as np

Sliceable = Any  # rows of what `predict` answers: answer[start:stop] is theirs

_CLOSE = object()  # put in the queue by close(): the batching thread ends after it


class MicroBatcher:
    """Runs `predict` on batches gathered from concurrent `submit` calls; what it answers
    (an array, or the runtimes' Scores) is split by rows among the callers."""

    def __init__(self, predict: Callable[[np.ndarray], Sliceable], max_batch: int) -> None:
        self.predict, self.max_batch = predict, max_batch
        self.model_busy = threading.Lock()  # one model call at a time
        self.requests: queue.Queue = queue.Queue()
        self.batch_sizes: list[int] = []  # the latest batch sizes, for tests and curiosity
        self._closing = threading.Lock()
        self.closed = False
        self._thread = threading.Thread(target=self._serve, name="micro-batcher", daemon=True)
        self._thread.start()

    def submit(self, images: np.ndarray, timeout: float = 60.0) -> Sliceable:
        """`predict`'s answer for `images`, computed together with whatever else is waiting.

        Raises concurrent.futures.TimeoutError when no answer came within `timeout` s.
        """
        if self.requests.empty() and self.model_busy.acquire(blocking=False):
            try:  # the model is idle: no queue, no thread hand-over
                return self.predict(images)
            finally:
                self.model_busy.release()
        answer: Future = Future()
        with self._closing:
            queued = not self.closed
            if queued:
                self.requests.put((images, answer))
        if not queued:
            with self.model_busy:  # a retired batcher still answers its stragglers itself
                return self.predict(images)
        try:
            return answer.result(timeout=timeout)
        except FutureTimeout:
            answer.cancel()  # the batching thread skips it if it has not started it
            raise

    def close(self) -> None:
        """Stop the batching thread once the requests queued so far are answered."""
        with self._closing:
            self.closed = True
            self.requests.put((None, _CLOSE))

    def _gather(self, first: tuple) -> tuple[list[tuple], bool]:
        waiting, closing = [first], False
        count = len(first[0])
        while count < self.max_batch:
            try:
                item = self.requests.get_nowait()
            except queue.Empty:
                break
            if item[1] is _CLOSE:
                closing = True
                break
            waiting.append(item)
            count += len(item[0])
        # A request whose client gave up is not computed (set_running_... is False).
        return [item for item in waiting if item[1].set_running_or_notify_cancel()], closing

    def _serve(self) -> None:
        while True:
            first = self.requests.get()  # blocks until there is work
            if first[1] is _CLOSE:
                return
            with self.model_busy:
                waiting, closing = self._gather(first)
                if waiting:
                    self._answer(waiting)
            if closing:
                return

    def _answer(self, waiting: list[tuple]) -> None:
        batch = np.concatenate([images for images, _ in waiting])
        self.batch_sizes = [*self.batch_sizes[-99:], len(batch)]
        try:
            answered = self.predict(batch)
        except Exception as exc:  # each waiting request gets the error; the thread lives on
            for _, answer in waiting:
                answer.set_exception(exc)
            return
        start = 0
        for images, answer in waiting:
            answer.set_result(answered[start : start + len(images)])
            start += len(images)
