"""Micro-batching: requests that arrive together share one model call.

On a CPU one call on 8 images costs little more than a call on one, so each
worker's request threads share one model call at a time. A request that
finds the model idle calls it at once, in its own thread; requests that arrive
while a call runs queue up, and the batching thread runs them all in the next
call. Nobody waits for company, so a lone request pays nothing and a busy server
batches by itself.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np


class MicroBatcher:
    """Runs `predict` on batches gathered from concurrent `submit` calls."""

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray], max_batch: int) -> None:
        self.predict, self.max_batch = predict, max_batch
        self.model_busy = threading.Lock()  # one model call at a time
        self.requests: queue.Queue[tuple[np.ndarray, Future]] = queue.Queue()
        self.batch_sizes: list[int] = []  # the latest batch sizes, for tests and curiosity
        threading.Thread(target=self._serve, name="micro-batcher", daemon=True).start()

    def submit(self, images: np.ndarray, timeout: float = 60.0) -> np.ndarray:
        """Probabilities for `images`, computed together with whatever else is waiting."""
        if self.requests.empty() and self.model_busy.acquire(blocking=False):
            try:  # the model is idle: no queue, no thread hand-over
                return self.predict(images)
            finally:
                self.model_busy.release()
        answer: Future = Future()
        self.requests.put((images, answer))
        return answer.result(timeout=timeout)

    def _gather(self, first: tuple[np.ndarray, Future]) -> list[tuple[np.ndarray, Future]]:
        waiting = [first]
        count = len(waiting[0][0])
        while count < self.max_batch:
            try:
                item = self.requests.get_nowait()
            except queue.Empty:
                break
            waiting.append(item)
            count += len(item[0])
        return waiting

    def _serve(self) -> None:
        while True:
            first = self.requests.get()  # blocks until there is work
            with self.model_busy:
                waiting = self._gather(first)
                batch = np.concatenate([images for images, _ in waiting])
                self.batch_sizes = [*self.batch_sizes[-99:], len(batch)]
                try:
                    probabilities = self.predict(batch)
                except Exception as exc:  # each waiting request gets the error; the thread lives on
                    for _, answer in waiting:
                        answer.set_exception(exc)
                    continue
            start = 0
            for images, answer in waiting:
                answer.set_result(probabilities[start : start + len(images)])
                start += len(images)
