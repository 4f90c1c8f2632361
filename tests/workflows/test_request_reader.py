"""The request reader (webapp/worker.py) attacked as a client would: each case once killed a
worker, blocked it, or let it grow without bound. Against the real gunicorn with the
documented settings, one worker, few threads so that holding them is cheap; every test
checks the worker never exits and a normal client is answered within 2 s.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import re
import socket
import threading
import time
from pathlib import Path

import pytest

from support.images import image_bytes, random_rgb
from support.server import Gunicorn, http, multipart

pytestmark = pytest.mark.slow  # starts servers: `make test-fast` leaves them out

PNG = image_bytes(random_rgb(5))
MiB = 2**20
HEALTH = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"


def peak_rss_mib(pid: int) -> float:
    """The worker's peak resident memory so far (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for {pid}")


def normal_answer(server: Gunicorn) -> tuple[int, float]:
    """A normal client's prediction: (status, seconds it waited)."""
    started = time.monotonic()
    try:
        status, _ = http(f"{server.url}/predict", *multipart([("a.png", PNG)]), timeout=10)
    except OSError:
        status = 0
    return status, time.monotonic() - started


def normal_answer_seconds(server: Gunicorn) -> float:
    """Seconds a normal client waits for a prediction (it must be a 200)."""
    status, seconds = normal_answer(server)
    assert status == 200
    return seconds


def normal_client_is_answered(server: Gunicorn, case: str) -> None:
    """A normal prediction during the attack, in under 2 s; prints its time."""
    seconds = normal_answer_seconds(server)
    print(f"\n{case}: a normal client answered in {seconds:.3f} s")
    assert seconds < 2


def connect(server: Gunicorn, payload: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    if payload:
        sock.sendall(payload)
    return sock


def reply(sock: socket.socket, timeout: float = 5) -> bytes:
    """What the server sent until it closed the connection or went quiet."""
    sock.settimeout(timeout)
    received = b""
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            received += chunk
    return received


def statuses(received: bytes) -> list[int]:
    """The status of each response in `received` (a body runs straight into the next one)."""
    return [int(status) for status in re.findall(rb"HTTP/1\.[01] (\d{3}) ", received)]


@pytest.fixture
def server(cnn_export, request):
    """One worker with two threads; `request.param` adds settings."""
    env = {"IMGCLF_THREADS": "2", "IMGCLF_READ_TIMEOUT_S": "3", **getattr(request, "param", {})}
    with Gunicorn(cnn_export, workers=1, extra_env=env) as running:
        running.first_workers = running.worker_pids()
        yield running
        assert running.worker_pids() == running.first_workers, "a worker exited"
        assert "Traceback" not in running.output()


def test_a_content_length_of_5000_digits_is_refused_and_the_worker_lives(server):
    # int() refuses strings of more than 4,300 digits: uncaught, it ended the worker.
    sock = connect(server, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: "
                   + b"9" * 5000 + b"\r\n\r\n")  # fmt: skip
    assert statuses(reply(sock)) == [413]
    normal_client_is_answered(server, "5000-digit Content-Length")


@pytest.mark.parametrize("server", [{"IMGCLF_READ_BUFFER_MB": "32"}], indirect=True)
def test_idle_connections_declaring_big_uploads_hold_no_buffer(server):
    # Each declares 10 MiB and sends nothing: the loop once reserved the declared size,
    # and four of them refused everyone else (even /health) for the read deadline.
    idle = [
        connect(server, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                % (10 * MiB))
        for _ in range(26)
    ]  # fmt: skip
    time.sleep(0.5)
    status, answer = http(f"{server.url}/health", timeout=5)
    assert status == 200, answer
    normal_client_is_answered(server, "26 idle 10 MiB uploads")
    # Each idle upload is cut off at its deadline, told why.
    assert {tuple(statuses(reply(sock, 8))) for sock in idle} == {(408,)}


def test_pipelined_requests_are_read_by_the_loop_not_by_a_thread(server):
    # One complete and one unfinished request: the thread that answered the first once
    # went on to read the second with no deadline, so two such held both threads.
    pipelined = [connect(server, HEALTH + b"GET /health HTTP/1.1\r\nHost: x\r\n") for _ in range(2)]
    time.sleep(0.5)
    started = time.monotonic()
    assert http(f"{server.url}/health", timeout=5)[0] == 200
    assert time.monotonic() - started < 2
    normal_client_is_answered(server, "2 pipelines holding an unfinished request")
    for sock in pipelined:
        assert statuses(reply(sock, 8)) == [200, 408]  # the first answered, the second cut off


def test_a_whole_pipeline_is_answered_in_order(server):
    sock = connect(
        server, HEALTH * 3 + b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert statuses(reply(sock)) == [200, 200, 200, 404]


def test_a_chunked_upload_is_refused_at_once_without_a_thread(server):
    # It once went to a thread at once; stopping after its first chunk held it.
    stalled = [
        connect(server, b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                b"\r\n10\r\n0123456789abcdef\r\n")
        for _ in range(3)
    ]  # fmt: skip
    for sock in stalled:
        received = reply(sock)
        assert statuses(received) == [411] and b"Content-Length" in received
    normal_client_is_answered(server, "3 stalled chunked uploads")


def test_an_upload_over_the_limit_is_refused_before_its_body(server):
    sock = connect(server, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                   % (10 * MiB + 1))  # fmt: skip
    started = time.monotonic()
    received = reply(sock)  # no body sent: the answer comes, and the connection closes
    assert statuses(received) == [413] and b"the limit is 10 MB" in received
    print(f"\nupload over the limit: 413 after {time.monotonic() - started:.3f} s, no body read")
    assert time.monotonic() - started < 1


@pytest.mark.parametrize(
    "server", [{"IMGCLF_READ_BUFFER_MB": "32", "IMGCLF_THREADS": "1"}], indirect=True
)
def test_requests_waiting_for_a_thread_count_against_the_buffer(server):
    # Complete uploads handed to busy threads once left the count: the worker grew by
    # all of them (40 x 10 MiB took it from 43 to 482 MiB under a 256 MiB buffer).
    [pid] = server.first_workers
    body, content_type = multipart([("a.png", random.Random(0).randbytes(8 * MiB))])
    head = (f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()  # fmt: skip
    answers: list[int] = []

    def upload() -> None:
        with connect(server) as sock, contextlib.suppress(OSError):
            sock.sendall(head + body)
            answers.extend(statuses(reply(sock, 30)))

    before = peak_rss_mib(pid)
    upload()  # alone: what one upload costs the worker, read and handled
    alone = peak_rss_mib(pid) - before
    clients = [threading.Thread(target=upload) for _ in range(40)]
    for client in clients:
        client.start()
    for client in clients:
        client.join(60)
    growth = peak_rss_mib(pid) - before
    print(f"\n40 concurrent 8 MiB uploads, one thread, 32 MiB buffer: worker peak +{growth:.0f} "
          f"MiB (one upload alone: +{alone:.0f} MiB); answers {sorted(set(answers))} "
          f"({answers.count(503)} x 503)")  # fmt: skip
    assert set(answers) <= {400, 503} and 503 in answers  # undecodable bytes, or no room
    # The buffer, what handling an upload costs (twice: the allocator keeps the last one's
    # pages while the next is handled), and the one being handed to the thread.
    assert growth < 32 + 2 * alone + 8
    normal_client_is_answered(server, "40 queued 8 MiB uploads")


def adversarial_payloads(seed: int, count: int) -> list[tuple[bytes, bool]]:
    """(bytes, stay open afterwards) pairs aimed at the reader: lengths, pipelines, chunks,
    idle and partial heads and bodies, oversized heads, binary noise."""
    rng = random.Random(seed)
    head = b"POST /predict HTTP/1.1\r\nHost: x\r\n"

    def one() -> bytes:
        kind = rng.randrange(9)
        if kind == 0:  # lengths: huge, negative, non-numeric, many digits, two of them
            value = rng.choice([b"9" * rng.randrange(19, 6000), b"-1", b"1e9", b"0x10", b" ",
                                b"%d" % rng.randrange(10**12), b"5, 5", b"\xd9\xa3"])  # fmt: skip
            return head + b"Content-Length: " + value + b"\r\n\r\n" + rng.randbytes(20)
        if kind == 1:  # a pipeline of complete and unfinished requests
            return HEALTH * rng.randrange(1, 20) + HEALTH[: rng.randrange(len(HEALTH))]
        if kind == 2:  # chunked, with or without a length, stopping anywhere
            chunked = head + b"Transfer-Encoding: chunked\r\n"
            if rng.random() < 0.5:
                chunked += b"Content-Length: 10\r\n"
            return chunked + b"\r\n" + b"5\r\nhello\r\n"[: rng.randrange(11)]
        if kind == 3:  # an idle or partial head
            return head[: rng.randrange(len(head))]
        if kind == 4:  # a partial body
            length = rng.randrange(1, 2 * MiB)
            return head + b"Content-Length: %d\r\n\r\n" % length + rng.randbytes(length // 7)
        if kind == 5:  # an oversized head, whole or not
            fields = b"".join(
                b"X-%d: %s\r\n" % (i, b"a" * 8000) for i in range(rng.randrange(1, 120))
            )
            return head + fields + rng.choice([b"\r\n", b""])
        if kind == 6:  # obs-fold and odd separators
            return head + b"Content-Length: 3\r\n folded\r\nX:y\r\n\r\nabc"
        if kind == 7:  # a complete, lying request: length longer than what follows
            return head + b"Content-Length: 100\r\n\r\n" + rng.randbytes(rng.randrange(100))
        return rng.randbytes(rng.randrange(1, 4000))  # noise

    return [(one(), rng.random() < 0.5) for _ in range(count)]


@pytest.mark.parametrize("server", [{"IMGCLF_READ_BUFFER_MB": "64"}], indirect=True)
def test_fuzzing_the_reader_never_stops_the_worker_or_a_normal_client(server):
    [pid] = server.first_workers
    before = peak_rss_mib(pid)
    stop, answers = threading.Event(), []

    def probe() -> None:
        while not stop.is_set():
            answers.append(normal_answer(server))
            time.sleep(0.1)

    def attack(payloads: list[tuple[bytes, bool]]) -> None:
        held = []
        until = time.monotonic() + 10  # the same payloads again, for ten seconds at least
        for payload, stay_open in itertools.chain.from_iterable(itertools.repeat(payloads)):
            if time.monotonic() > until:
                break
            with contextlib.suppress(OSError):
                sock = connect(server)
                sock.sendall(payload)
                if stay_open:
                    held.append(sock)
                else:
                    sock.close()
            held = held[-30:]  # at most 30 idle sockets a client, the oldest let go
            time.sleep(0.01)  # a client, not a load generator: the reader is under test
        for sock in held:
            sock.close()

    prober = threading.Thread(target=probe)
    prober.start()
    attackers = [threading.Thread(target=attack, args=(adversarial_payloads(seed, 150),))
                 for seed in range(4)]  # fmt: skip
    started = time.monotonic()
    for attacker in attackers:
        attacker.start()
    for attacker in attackers:
        attacker.join(120)
    stop.set()
    prober.join(30)
    growth = peak_rss_mib(pid) - before
    slowest = max(seconds for _, seconds in answers)
    print(f"\nreader fuzz: 4 clients x 150 adversarial payloads, repeated for "
          f"{time.monotonic() - started:.1f} s; {len(answers)} normal predictions, statuses "
          f"{sorted({status for status, _ in answers})}, slowest {slowest:.2f} s; worker peak "
          f"+{growth:.0f} MiB (64 MiB buffer)")  # fmt: skip
    assert {status for status, _ in answers} == {200} and len(answers) >= 10
    assert slowest < 2
    assert growth < 64 + 64  # the buffer, and the app's work on what it admitted
