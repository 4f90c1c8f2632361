"""gunicorn's gthread worker, with each request read whole before a thread takes it.

gthread hands a connection to a thread as soon as its first bytes arrive, and the thread
then reads the rest with blocking calls and no deadline: a few dozen clients trickling
bytes (slowloris) hold every thread and nobody else is answered. Here the worker's event
loop, which already waits for idle connections without a thread, also reads each request's
head and body (what a buffering proxy such as nginx does), and only a complete request
takes a thread. A request must arrive within READ_TIMEOUT_S plus its length at
MIN_UPLOAD_RATE; past that the client gets a 408 and the connection is closed. What the
loop holds at once is bounded by BUFFER_LIMIT: beyond it, a 503 with Retry-After.

TLS and HTTP/2 connections keep gthread's own path (terminate TLS in a proxy).
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import time
from dataclasses import dataclass, field
from functools import partial

from gunicorn import http
from gunicorn.http2 import negotiation
from gunicorn.workers.gthread import TConn, ThreadWorker

HEAD_END = b"\r\n\r\n"
MIN_UPLOAD_RATE = 64 * 1024  # bytes/s a body may arrive at, on average, after its head
READ_SIZE = 256 * 1024


def _setting(name: str, default: float) -> float:
    raw = os.environ.get(f"IMGCLF_{name}", str(default))
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ValueError(f"IMGCLF_{name} = {raw!r}: give a positive number (default {default})")
    return value


READ_TIMEOUT_S = _setting("READ_TIMEOUT_S", 10)  # to send a request's head (and start its body)
# The largest request the app accepts (MAX_UPLOAD_MB, whose 413 comes from the app itself)
# and what the loop of one worker holds for requests still arriving.
MAX_REQUEST_BYTES = int(_setting("MAX_UPLOAD_MB", 10) * 2**20) + 64 * 1024
BUFFER_LIMIT = int(_setting("READ_BUFFER_MB", 256) * 2**20)


def canned(status: str, message: str, retry_after: int | None = None) -> bytes:
    """A whole JSON error response for a client whose request never reached the app."""
    body = json.dumps({"error": message}).encode()
    head = [f"HTTP/1.1 {status}", "Content-Type: application/json", "Connection: close",
            f"Content-Length: {len(body)}"]  # fmt: skip
    if retry_after is not None:
        head.append(f"Retry-After: {retry_after}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def declared_length(head: bytes) -> int | None:
    """The request's Content-Length (0 without a body); None when the body is chunked or the
    header is unreadable: gunicorn's parser then reads it, or answers 400."""
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"transfer-encoding":
            return None
        if name == b"content-length":
            if not value.strip().isdigit():
                return None
            length = int(value.strip())
    return length


@dataclass
class Arriving:
    """A request being read by the event loop."""

    deadline: float
    data: bytearray = field(default_factory=bytearray)
    needed: int | None = None  # head plus body, once the head has arrived


class BufferedThreadWorker(ThreadWorker):
    """gthread, but a thread only ever gets a request that has fully arrived."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.arriving: dict[TConn, Arriving] = {}
        self.buffered = 0  # bytes the loop holds (declared bodies included)
        # The longest head gunicorn's parser accepts (its limits; 0 means none: 1 MiB): a
        # longer one is wrong whatever follows, so the parser may answer it at once.
        limits = self.cfg.limit_request_line, self.cfg.limit_request_field_size
        line, field = (limit or 2**20 for limit in limits)
        self.max_head = line + (self.cfg.limit_request_fields or 100) * (field + 2) + 4

    def enqueue_req(self, conn: TConn) -> None:
        if self.cfg.is_ssl or conn.is_http2:
            return super().enqueue_req(conn)
        if negotiation.prior_knowledge_allowed(self.cfg, conn.client):
            return super().enqueue_req(conn)
        if conn.parser is not None and conn.parser.unreader.buf.getvalue():
            return super().enqueue_req(conn)  # the next request was read ahead already
        conn.sock.setblocking(False)
        self.arriving[conn] = Arriving(time.monotonic() + READ_TIMEOUT_S)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_bytes, conn))

    def on_bytes(self, conn: TConn, _sock) -> None:
        arriving = self.arriving[conn]
        try:
            chunk = conn.sock.recv(READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            return self.drop(conn)
        arriving.data += chunk
        if arriving.needed is None:
            self.buffered += len(chunk)
            end = arriving.data.find(HEAD_END)
            if end < 0:
                if len(arriving.data) > self.max_head:
                    self.dispatch(conn)  # gunicorn's parser answers the oversized head
                elif self.buffered > BUFFER_LIMIT:
                    self.refuse_busy(conn)
                return
            length = declared_length(bytes(arriving.data[:end]))
            if length is None or length > MAX_REQUEST_BYTES:
                return self.dispatch(conn)  # chunked, or the app's 413 without the body
            if self.buffered + length > BUFFER_LIMIT:
                return self.refuse_busy(conn)
            arriving.needed = end + len(HEAD_END) + length
            self.buffered += arriving.needed - len(arriving.data)  # held for the body to come
            arriving.deadline += length / MIN_UPLOAD_RATE
        if len(arriving.data) >= arriving.needed:
            self.dispatch(conn)

    def _forget(self, conn: TConn) -> Arriving:
        self.poller.unregister(conn.sock)
        arriving = self.arriving.pop(conn)
        self.buffered -= len(arriving.data) if arriving.needed is None else arriving.needed
        return arriving

    def dispatch(self, conn: TConn) -> None:
        """The request has arrived (or gunicorn's parser must judge it): a thread takes it."""
        arriving = self._forget(conn)
        conn.sock.setblocking(True)
        if conn.parser is None:
            conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
            conn.initialized = True
        conn.parser.unreader.unread(bytes(arriving.data))
        conn.data_ready = True
        super().enqueue_req(conn)

    def drop(self, conn: TConn) -> None:
        self._forget(conn)
        self.nr_conns -= 1
        conn.close()

    def refuse(self, conn: TConn, status: str, message: str, retry_after: int | None = None):
        """Answer a client from the loop (best effort: its socket may be full) and close."""
        with contextlib.suppress(OSError):
            conn.sock.send(canned(status, message, retry_after))
        self.log.info("refused %s: %s", conn.client, message)
        self.drop(conn)

    def refuse_busy(self, conn: TConn) -> None:
        busy = "the server is receiving too many uploads: retry shortly"
        self.refuse(conn, "503 Service Unavailable", busy, retry_after=1)

    def murder_pending(self) -> None:
        super().murder_pending()
        now = time.monotonic()
        for conn in [c for c, arriving in self.arriving.items() if arriving.deadline < now]:
            late = "the request did not arrive in time: send it at once, or raise the server's "
            self.refuse(conn, "408 Request Timeout", late + "IMGCLF_READ_TIMEOUT_S")
