"""webapp.worker's pieces: what a request head declares, the loop's own answers, settings.
(The worker under slow clients: tests/workflows/test_serving_faults.py.)"""

from __future__ import annotations

import json

import pytest

from webapp.worker import _setting, canned, declared_length

HEAD = b"POST /predict HTTP/1.1\r\nHost: x"


@pytest.mark.parametrize(
    ("extra", "length"),
    [
        (b"", 0),
        (b"\r\nContent-Length: 1234", 1234),
        (b"\r\ncontent-length:  77 ", 77),
        (b"\r\nTransfer-Encoding: chunked", None),  # gunicorn's parser reads chunks itself
        (b"\r\nContent-Length: -5", None),  # left to the parser, which answers 400
        (b"\r\nContent-Length: \xb2", None),
    ],
)
def test_declared_length(extra, length):
    assert declared_length(HEAD + extra) == length


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
