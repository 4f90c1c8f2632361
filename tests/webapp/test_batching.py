"""webapp.batching: concurrent requests share model calls and each gets its own rows."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import numpy as np
import pytest

from webapp.batching import MicroBatcher


def slow_double(batch: np.ndarray) -> np.ndarray:
    threading.Event().wait(0.02)  # a model call that costs time, as a real one does
    return batch * 2


def test_concurrent_requests_share_calls_and_get_their_own_rows():
    batcher = MicroBatcher(slow_double, max_batch=16)
    requests = [np.full((1 + i % 2, 3), i, dtype=np.float32) for i in range(24)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(batcher.submit, requests))
    for request, answer in zip(requests, answers, strict=True):
        np.testing.assert_array_equal(answer, request * 2)
    assert max(batcher.batch_sizes) > 2  # several requests went through one call
    assert max(batcher.batch_sizes) <= 16 + 1  # a batch closes once it reaches max_batch


def test_a_lone_request_runs_at_once_in_its_own_thread():
    threads = []

    def record(batch: np.ndarray) -> np.ndarray:
        threads.append(threading.current_thread())
        return batch

    batcher = MicroBatcher(record, max_batch=4)
    batcher.submit(np.ones((1, 2)))
    assert threads == [threading.current_thread()]


def test_a_failing_call_fails_its_requests_and_the_batcher_keeps_serving():
    calls = []

    def flaky(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        if len(calls) == 1:
            raise RuntimeError("model failed")
        return batch

    batcher = MicroBatcher(flaky, max_batch=4)
    batcher.model_busy.acquire()  # force the queued path, through the batching thread
    answers = ThreadPoolExecutor(2).map(lambda _: catch(batcher.submit, np.ones((1, 2))), range(2))
    threading.Event().wait(0.05)
    batcher.model_busy.release()
    results = list(answers)
    assert any(isinstance(r, RuntimeError) for r in results)
    np.testing.assert_array_equal(batcher.submit(np.ones((1, 2))), np.ones((1, 2)))


def catch(function, *args):
    try:
        return function(*args)
    except RuntimeError as exc:
        return exc


def test_a_request_that_gave_up_is_not_computed():
    release, calls = threading.Event(), []

    def predict(batch):
        calls.append(len(batch))
        release.wait(5)
        return np.zeros((len(batch), 2))

    batcher = MicroBatcher(predict, max_batch=8)
    first = threading.Thread(target=lambda: batcher.submit(np.zeros((1, 4))))
    first.start()
    time.sleep(0.1)  # the model is busy with the first request
    with pytest.raises(FutureTimeout):
        batcher.submit(np.zeros((3, 4)), timeout=0.1)
    release.set()
    first.join()
    batcher.submit(np.zeros((2, 4)))
    assert 3 not in calls and 5 not in calls  # the abandoned 3 images never reached the model


def test_a_closed_batcher_answers_what_it_holds_and_then_stragglers_itself():
    release = threading.Event()

    def predict(batch):
        release.wait(5)  # the first call holds the model while others queue
        return batch.sum(axis=1, keepdims=True)

    batcher = MicroBatcher(predict, max_batch=4)
    answers = {}

    def ask(name, rows):
        answers[name] = batcher.submit(np.full((rows, 3), rows, dtype=float), timeout=10)

    first = threading.Thread(target=ask, args=("first", 1))
    first.start()
    deadline = time.monotonic() + 5
    while not batcher.model_busy.locked() and time.monotonic() < deadline:
        time.sleep(0.001)
    held = [threading.Thread(target=ask, args=(name, rows)) for name, rows in (("a", 2), ("b", 3))]
    for thread in held:
        thread.start()
    # Both are queued by now (the batching thread may hold one, waiting for the model);
    # one that is not yet is answered all the same, by the closed batcher's caller path.
    time.sleep(0.2)
    batcher.close()  # two requests are held: they are answered before the thread ends
    release.set()
    for thread in (first, *held):
        thread.join(10)
    assert {name: answer.ravel().tolist() for name, answer in answers.items()} == {
        "first": [3.0], "a": [6.0, 6.0], "b": [9.0, 9.0, 9.0],
    }  # fmt: skip
    batcher._thread.join(timeout=5)
    assert not batcher._thread.is_alive()
    answer = batcher.submit(np.ones((2, 3)))  # after close: computed in the caller's thread
    assert answer.tolist() == [[3.0], [3.0]]
