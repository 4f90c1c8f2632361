"""webapp.worker's pieces: what a request head declares, the loop's own answers, settings.
(The worker under slow clients: tests/workflows/test_serving_faults.py.)"""

from __future__ import annotations

import json
import os
import selectors
import socket
import time
from concurrent.futures import Future
from types import SimpleNamespace
from unittest import mock

import pytest
from gunicorn import http
from gunicorn.config import Config
from gunicorn.workers.gthread import TConn, ThreadWorker

from webapp import worker as worker_module
from webapp.worker import BufferedThreadWorker, Refused, _setting, canned, declared_length

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
    status, *lines = head.decode().split("\r\n")
    headers = {name.lower(): value for name, value in (line.split(": ", 1) for line in lines)}
    assert status == "HTTP/1.1 408 Request Timeout"
    assert headers == {"content-type": "application/json", "connection": "close",
                       "content-length": str(len(body)), "retry-after": "2"}  # fmt: skip
    assert json.loads(body) == {"error": "too slow"}
    assert "retry-after" not in canned("400 Bad Request", "no").decode().lower()


def test_a_refusal_carries_its_message():
    refusal = Refused("503 Service Unavailable", "busy", retry_after=1)
    assert str(refusal) == refusal.message == "busy" and refusal.retry_after == 1


def test_settings_take_their_default_and_any_positive_number(monkeypatch):
    monkeypatch.delenv("IMGCLF_READ_TIMEOUT_S", raising=False)
    assert _setting("READ_TIMEOUT_S", 10) == 10.0
    monkeypatch.setenv("IMGCLF_READ_TIMEOUT_S", "0.5")
    assert _setting("READ_TIMEOUT_S", 10) == 0.5


@pytest.mark.parametrize(
    ("head", "length"),
    [
        (b"POST /predict HTTP/1.1\r\nContent-Length: 12\r\nHost: x", 12),  # the first field
        (b"POST /predict HTTP/1.1\r\nHost: x:80\r\nContent-Length: 7", 7),
        (b"POST /predict HTTP/1.1\r\nContent-Length: 5:6", None),  # not a number: the parser's
    ],
)
def test_the_length_is_read_from_whichever_field_declares_it(head, length):
    assert declared_length(head, LIMIT) == length


@pytest.mark.parametrize("raw", ["soon", "0", "-3"])
def test_a_bad_setting_names_its_variable(monkeypatch, raw):
    monkeypatch.setenv("IMGCLF_READ_TIMEOUT_S", raw)
    with pytest.raises(ValueError, match=r"IMGCLF_READ_TIMEOUT_S = .*positive number"):
        _setting("READ_TIMEOUT_S", 10)
    monkeypatch.setenv("IMGCLF_READ_TIMEOUT_S", "2.5")
    assert _setting("READ_TIMEOUT_S", 10) == 2.5


# The event loop itself, in-process: a worker without its arbiter, a socket pair per client,
# and a thread pool that only records what it is given (gunicorn's threads are not needed
# to see what reaches them).
class RecordingPool:
    def __init__(self) -> None:
        self.given: list = []

    def submit(self, handle, conn) -> Future:
        self.given.append(conn)
        return Future()


class Loop:
    def __init__(self, monkeypatch, upload_limit: int = LIMIT, **settings) -> None:
        for name, value in settings.items():
            monkeypatch.setattr(worker_module, name, value)
        cfg = Config()
        cfg.set("threads", 2)
        self.log = mock.Mock()
        self.worker = BufferedThreadWorker(0, os.getpid(), [], None, 30, cfg, self.log)
        self.worker.wsgi = SimpleNamespace(config={"MAX_CONTENT_LENGTH": upload_limit})
        self.worker.tpool, self.worker.poller = RecordingPool(), selectors.DefaultSelector()
        self.pool = self.worker.tpool
        self.start()

    def start(self) -> None:
        """The worker's run(), up to ThreadWorker's loop (which would serve forever)."""
        with mock.patch.object(ThreadWorker, "run"):
            self.worker.run()
        self.clients: list[socket.socket] = []

    def connect(self, ahead: bytes = b"") -> tuple[socket.socket, TConn]:
        client, server = socket.socketpair()
        client.settimeout(2)
        self.clients.append(client)
        conn = TConn(self.worker.cfg, server, ("127.0.0.1", 5), ("127.0.0.1", 80))
        if ahead:  # a previous request's parser holding bytes the client sent ahead
            conn.parser = http.get_parser(self.worker.cfg, server, conn.client)
            conn.parser.unreader.unread(ahead)
        self.worker.nr_conns += 1
        self.worker.enqueue_req(conn)
        return client, conn

    def send(self, client: socket.socket, data: bytes) -> None:
        """What the client sends, then one turn of the loop over whatever is readable."""
        client.sendall(data)
        for key, _ in self.worker.poller.select(0.5):
            key.data(key.fileobj)

    def close(self) -> None:
        for client in self.clients:
            client.close()
        self.worker.poller.close()


def answer(client: socket.socket) -> tuple[str, dict, dict]:
    """The status line, headers and JSON body the loop answered, read to the close."""
    received = b""
    while chunk := client.recv(65536):
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    return status, headers, json.loads(body)


def request(body: bytes = b"", extra: bytes = b"") -> bytes:
    return b"%s\r\nContent-Length: %d%s\r\n\r\n%s" % (HEAD, len(body), extra, body)


@pytest.fixture
def loop(monkeypatch):
    made = []

    def make(**settings) -> Loop:
        made.append(Loop(monkeypatch, **settings))
        return made[-1]

    yield make
    for each in made:
        each.close()


def test_a_request_reaches_a_thread_only_once_it_has_all_arrived(loop):
    reader = loop()
    client, conn = reader.connect()
    whole = request(b"x" * 5000)
    reader.send(client, whole[:10])  # part of the head
    reader.send(client, whole[10:-3])  # the head and most of the body
    assert reader.pool.given == [] and reader.worker.buffered == len(whole) - 3
    reader.send(client, whole[-3:])
    assert reader.pool.given == [conn] and conn.sock.getblocking()
    # The thread's parser reads the request the client sent, body and all, from the bytes
    # the loop collected: nothing is read from the socket again.
    parsed = next(conn.parser)
    assert (parsed.method, parsed.path) == ("POST", "/predict")
    assert parsed.body.read() == b"x" * 5000
    # Its bytes count against the buffer until the thread is done with it.
    assert reader.worker.buffered == len(whole) and reader.worker.arriving == {}
    done = Future()
    done.set_result(False)
    reader.worker.finish_request(conn, done)
    assert reader.worker.buffered == 0 and reader.worker.in_threads == {}


def test_the_end_of_the_head_is_found_across_reads(loop):
    reader = loop()
    client, conn = reader.connect()
    whole = request(b"abc")
    cut = whole.index(b"\r\n\r\n") + 2  # the blank line split between two reads
    reader.send(client, whole[:cut])
    assert reader.pool.given == []
    reader.send(client, whole[cut:])
    assert reader.pool.given == [conn] and next(conn.parser).body.read() == b"abc"


def test_a_request_without_a_body_goes_at_once(loop):
    reader = loop()
    client, conn = reader.connect()
    reader.send(client, HEAD + b"\r\n\r\n")
    assert reader.pool.given == [conn]


@pytest.mark.parametrize(
    ("extra", "status"),
    [(b"\r\nContent-Length: %d" % (LIMIT + 1), "413"), (b"\r\nTransfer-Encoding: chunked", "411")],
)
def test_a_body_it_will_not_read_is_answered_from_the_loop_before_it_is_sent(loop, extra, status):
    reader = loop()
    client, _ = reader.connect()
    reader.send(client, HEAD + extra + b"\r\n\r\n")
    got, headers, body = answer(client)
    assert got.startswith(f"HTTP/1.1 {status} ") and headers["Connection"] == "close"
    assert body["error"] and reader.pool.given == []
    assert reader.worker.buffered == 0 and reader.worker.nr_conns == 0


def test_the_upload_limit_is_the_apps(loop):
    reader = loop(upload_limit=100)
    assert reader.worker.upload_limit == 100
    client, _ = reader.connect()
    reader.send(client, HEAD + b"\r\nContent-Length: 101\r\n\r\n")
    assert answer(client)[0].startswith("HTTP/1.1 413 ")
    reader.worker.wsgi = SimpleNamespace(config={})  # an app that states none
    reader.start()
    assert reader.worker.upload_limit == worker_module.DEFAULT_UPLOAD_LIMIT


def test_a_head_the_parser_must_judge_goes_to_it_unread(loop):
    reader = loop()
    client, conn = reader.connect()
    reader.send(client, HEAD + b"\r\nContent-Length: -5\r\n\r\n")
    assert reader.pool.given == [conn]  # gunicorn's parser answers it 400, before any body


def test_an_oversized_head_goes_to_the_parser_as_soon_as_it_is_too_long(loop):
    reader = loop()
    client, conn = reader.connect()
    too_long = reader.worker.max_head + 1
    sent = 0
    while sent <= too_long and not reader.pool.given:
        reader.send(client, b"a" * 60000)
        sent += 60000
    assert reader.pool.given == [conn] and sent < too_long + 60000


def test_uploads_past_the_buffer_get_503_and_what_they_held_is_let_go(loop):
    reader = loop(BUFFER_LIMIT=10_000)
    first, _ = reader.connect()
    reader.send(first, request(b"y" * 9_000)[:-100])  # held, still arriving
    second, _ = reader.connect()
    reader.send(second, request(b"z" * 2_000))
    status, headers, _ = answer(second)
    assert status.startswith("HTTP/1.1 503 ") and headers["Retry-After"] == "1"
    # The refused upload's bytes are no longer counted; the first is still arriving.
    assert reader.worker.buffered == len(request(b"y" * 9_000)) - 100
    # A request without a body is never refused for want of buffer.
    third, conn = reader.connect()
    reader.send(third, HEAD + b"\r\n\r\n")
    assert reader.pool.given == [conn]


def test_a_long_head_past_the_allowance_is_refused_when_the_buffer_is_full(loop):
    reader = loop(BUFFER_LIMIT=1_000, HEAD_ALLOWANCE=2_000)
    client, _ = reader.connect()
    reader.send(client, HEAD + b"\r\nX-Long: " + b"a" * 1_500)  # within the allowance
    assert reader.worker.arriving
    reader.send(client, b"a" * 1_000)
    assert answer(client)[0].startswith("HTTP/1.1 503 ")


def test_a_request_late_past_its_deadline_gets_408(loop):
    reader = loop(READ_TIMEOUT_S=0.2)
    late, _ = reader.connect()
    on_time, conn = reader.connect()
    reader.send(late, HEAD)
    reader.send(on_time, request(b"q"))
    time.sleep(0.3)
    reader.worker.murder_pending()
    status, _, body = answer(late)
    assert status.startswith("HTTP/1.1 408 ") and "IMGCLF_READ_TIMEOUT_S" in body["error"]
    assert reader.pool.given == [conn] and reader.worker.arriving == {}


def test_a_body_that_keeps_arriving_earns_more_time(loop):
    rate = 1_000
    reader = loop(READ_TIMEOUT_S=0.2, MIN_UPLOAD_RATE=rate)
    client, _ = reader.connect()
    started = time.monotonic()
    reader.send(client, request(b"b" * 4_000)[:-1_000])  # 3,000 bytes: 3 s more
    arriving = next(iter(reader.worker.arriving.values()))
    assert arriving.deadline >= started + 0.2 + 3_000 / rate - 0.05
    time.sleep(0.3)
    reader.worker.murder_pending()
    assert reader.worker.arriving  # still arriving, within its earned time


def test_whatever_the_loop_cannot_read_is_answered_400_and_the_worker_lives(loop, monkeypatch):
    reader = loop()
    monkeypatch.setattr(worker_module, "declared_length", mock.Mock(side_effect=ValueError))
    client, _ = reader.connect()
    reader.send(client, request(b"k"))
    assert answer(client)[0].startswith("HTTP/1.1 400 ")
    assert reader.worker.arriving == {} and reader.worker.buffered == 0
    reader.log.exception.assert_called_once()


def test_bytes_sent_ahead_are_the_next_requests_start(loop):
    reader = loop()
    whole = request(b"n" * 10)
    client, conn = reader.connect(ahead=whole[:20])
    assert reader.worker.buffered == 20 and reader.pool.given == []
    reader.send(client, whole[20:])
    assert reader.pool.given == [conn] and next(conn.parser).body.read() == b"n" * 10


def test_a_client_that_goes_away_is_forgotten(loop):
    reader = loop()
    client, conn = reader.connect()
    reader.send(client, request(b"g" * 100)[:-10])
    client.close()
    for key, _ in reader.worker.poller.select(0.5):
        key.data(key.fileobj)
    assert reader.worker.arriving == {} and reader.worker.buffered == 0
    assert reader.worker.nr_conns == 0 and conn.sock.fileno() == -1
