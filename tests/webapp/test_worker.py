"""webapp.worker's pieces: what a request head declares, the loop's own answers, settings.
(The worker under slow clients: tests/workflows/test_serving_faults.py.)"""

from __future__ import annotations

import json

import pytest

from webapp.worker import Refused, _setting, canned, declared_length

HEAD = b"POST /predict HTTP/1.1\r\nHost: x"
LIMIT = 10 * 2**20


@pytest.mark.parametrize(
    ("extra", "length"),
    [
        (b"", 0),
        (b"\r\nContent-Length: 1234", 1234),
        (b"\r\ncontent-length:  77 ", 77),
        (b"\r\nContent-Length: %d" % LIMIT, LIMIT),
        (b"\r\nContent-Length: -5", None),  # left to the parser, which answers 400
        (b"\r\nContent-Length: \xb2", None),
        (b"\r\nContent-Length: \xd9\xa3", None),  # an Arabic-Indic digit: not ASCII
    ],
)
def test_declared_length(extra, length):
    assert declared_length(HEAD + extra, LIMIT) == length


@pytest.mark.parametrize(
    ("extra", "status"),
    [
        (b"\r\nContent-Length: %d" % (LIMIT + 1), "413"),
        # Python refuses int() of more than 4,300 digits: this once killed the worker.
        (b"\r\nContent-Length: " + b"9" * 5000, "413"),
        (b"\r\nContent-Length: " + b"0" * 30 + b"5", "413"),  # no length needs 19 digits
        (b"\r\nTransfer-Encoding: chunked", "411"),
        (b"\r\nContent-Length: 5\r\nTransfer-Encoding: chunked", "411"),
    ],
)
def test_a_body_the_loop_does_not_read_is_refused_with_its_status(extra, status):
    with pytest.raises(Refused) as refusal:
        declared_length(HEAD + extra, LIMIT)
    assert refusal.value.status.startswith(status) and refusal.value.message


def test_canned_answers_are_whole_json_responses():
    answer = canned("408 Request Timeout", "too slow", retry_after=2)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ") and b"Retry-After: 2" in head
    assert f"Content-Length: {len(body)}".encode() in head and b"Connection: close" in head
    assert json.loads(body) == {"error": "too slow"}


@pytest.mark.parametrize("raw", ["soon", "0", "-3"])
def test_a_bad_setting_names_its_variable(monkeypatch, raw):
    monkeypatch.setenv("IMGCLF_READ_TIMEOUT_S", raw)
    with pytest.raises(ValueError, match=r"IMGCLF_READ_TIMEOUT_S = .*positive number"):
        _setting("READ_TIMEOUT_S", 10)
    monkeypatch.setenv("IMGCLF_READ_TIMEOUT_S", "2.5")
    assert _setting("READ_TIMEOUT_S", 10) == 2.5
