"""gunicorn's gthread worker, with each request read whole before a thread takes it.

gthread hands a connection to a thread as soon as its first bytes arrive, and the thread
then reads the rest with blocking calls and no deadline: a few dozen clients trickling
bytes (slowloris) hold every thread and nobody else is answered. Here the worker's event
loop, which already waits for idle connections without a thread, also reads each request's
head and body (what a buffering proxy such as nginx does), and only a complete request
takes a thread. The loop's rules, each answered from the loop with JSON and a closed
connection:

- a head must arrive within READ_TIMEOUT_S, and a body must keep arriving: it has
  READ_TIMEOUT_S, plus a second for every MIN_UPLOAD_RATE bytes it has sent (408);
- a body must declare its Content-Length (411 for a chunked one), within the app's upload
  limit (413, answered before the body is read), in at most MAX_LENGTH_DIGITS digits;
- what the worker holds of requests, arriving or waiting for a thread, counts the bytes
  actually received and stays within READ_BUFFER_MB: past it, a request with a body gets
  503 with Retry-After (a request without one is never refused for lack of buffer);
- bytes a client sent ahead (pipelining) come back to the loop after each response,
  so the next request is read under the same rules;
- nothing a client sends can raise out of the loop: a request the loop cannot read is
  answered 400, and the worker lives on.

gunicorn's own parser still splits and validates each request (malformed or duplicate
Content-Length, obs-fold, oversized heads). TLS and HTTP/2 keep gthread's own path
(terminate TLS in a proxy).
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

from webapp.errors import too_large_message

HEAD_END = b"\r\n\r\n"
MIN_UPLOAD_RATE = 64 * 1024  # bytes/s a body must keep arriving at, on average
READ_SIZE = 256 * 1024
HEAD_ALLOWANCE = 64 * 1024  # a head this long is read even when the buffer is full
MAX_LENGTH_DIGITS = 18  # a longer Content-Length is larger than any upload limit
DEFAULT_UPLOAD_LIMIT = 10 * 2**20  # when the app states none (webapp DEFAULTS: MAX_UPLOAD_MB)


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
BUFFER_LIMIT = int(_setting("READ_BUFFER_MB", 256) * 2**20)  # what one worker holds


class Refused(Exception):
    """A request the loop answers itself: status line and message."""

    def __init__(self, status: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.retry_after = status, message, retry_after


def canned(status: str, message: str, retry_after: int | None = None) -> bytes:
    """A whole JSON error response for a client whose request never reached the app."""
    body = json.dumps({"error": message}).encode()
    head = [f"HTTP/1.1 {status}", "Content-Type: application/json", "Connection: close",
            f"Content-Length: {len(body)}"]  # fmt: skip
    if retry_after is not None:
        head.append(f"Retry-After: {retry_after}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def declared_length(head: bytes, upload_limit: int) -> int | None:
    """The body length a complete request head declares (0 without a body).

    None when gunicorn's parser must judge the head (a Content-Length that is not a plain
    number: it answers 400 before reading any body). Raises Refused for a body the loop
    does not read: chunked (411), or longer than `upload_limit` (413).
    """
    length, chunked = 0, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip()
        if name == b"transfer-encoding":
            chunked = True
        elif name == b"content-length":
            if not value.isdigit():
                return None
            if len(value) > MAX_LENGTH_DIGITS or int(value) > upload_limit:
                raise Refused("413 Content Too Large", too_large_message(upload_limit))
            length = int(value)
    if chunked:
        raise Refused(
            "411 Length Required",
            "send the upload with a Content-Length: chunked request bodies are not accepted",
        )
    return length


@dataclass
class Arriving:
    """A request being read by the event loop."""

    deadline: float
    data: bytearray = field(default_factory=bytearray)
    searched: int = 0  # how much of `data` has been searched for the head's end
    head_size: int | None = None  # once the head has arrived
    length: int = 0  # the body's declared length
    body_started: float = 0.0  # when the head was complete


class BufferedThreadWorker(ThreadWorker):
    """gthread, but a thread only ever gets a request that has fully arrived."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.arriving: dict[TConn, Arriving] = {}
        self.in_threads: dict[TConn, int] = {}  # bytes of requests handed to threads
        self.buffered = 0  # bytes received and held: arriving, or waiting for a thread
        self.upload_limit = DEFAULT_UPLOAD_LIMIT
        # The longest head gunicorn's parser accepts (its limits; 0 means none: 1 MiB): a
        # longer one is wrong whatever follows, so the parser may answer it at once.
        limits = self.cfg.limit_request_line, self.cfg.limit_request_field_size
        line, field_size = (limit or 2**20 for limit in limits)
        self.max_head = line + (self.cfg.limit_request_fields or 100) * (field_size + 2) + 4

    def run(self) -> None:
        # The app's own upload limit (MAX_UPLOAD_MB, as Flask enforces it): one reader.
        config = getattr(self.wsgi, "config", {})
        self.upload_limit = int(config.get("MAX_CONTENT_LENGTH") or DEFAULT_UPLOAD_LIMIT)
        super().run()

    def enqueue_req(self, conn: TConn) -> None:
        if self.cfg.is_ssl or conn.is_http2:
            return super().enqueue_req(conn)
        if negotiation.prior_knowledge_allowed(self.cfg, conn.client):
            return super().enqueue_req(conn)
        # Bytes the client sent ahead of this request (pipelining) are read under the loop's
        # rules too: taken back from the parser, they start the next request.
        ahead = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        conn.sock.setblocking(False)
        self.arriving[conn] = Arriving(time.monotonic() + READ_TIMEOUT_S)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_bytes, conn))
        if ahead:
            self.receive(conn, ahead)

    def on_bytes(self, conn: TConn, _sock) -> None:
        try:
            chunk = conn.sock.recv(READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            return self.drop(conn)
        self.receive(conn, chunk)

    def receive(self, conn: TConn, chunk: bytes) -> None:
        """Take `chunk` of the request arriving on `conn`; answer from here what a client
        got wrong, and never let an exception reach the event loop."""
        try:
            self.advance(conn, chunk)
        except Refused as refusal:
            self.refuse(conn, refusal.status, refusal.message, refusal.retry_after)
        except Exception:  # a request the loop cannot read must not stop the worker
            self.log.exception("the request from %s could not be read", conn.client)
            if conn in self.arriving:
                self.refuse(conn, "400 Bad Request", "the request could not be read")

    def advance(self, conn: TConn, chunk: bytes) -> None:
        arriving = self.arriving[conn]
        arriving.data += chunk
        self.buffered += len(chunk)
        if arriving.head_size is None:
            end = arriving.data.find(HEAD_END, max(0, arriving.searched - len(HEAD_END) + 1))
            arriving.searched = len(arriving.data)
            if end < 0:
                if len(arriving.data) > self.max_head:
                    return self.dispatch(conn)  # gunicorn's parser answers the oversized head
                if len(arriving.data) > HEAD_ALLOWANCE:
                    self.check_room()
                return
            length = declared_length(bytes(arriving.data[:end]), self.upload_limit)
            if length is None:
                return self.dispatch(conn)  # the parser answers 400 before any body
            arriving.head_size, arriving.length = end + len(HEAD_END), length
            arriving.body_started = time.monotonic()
            arriving.deadline = arriving.body_started + READ_TIMEOUT_S
        body_received = len(arriving.data) - arriving.head_size
        if arriving.length and body_received > 0:
            self.check_room()
            arriving.deadline = max(
                arriving.deadline,
                arriving.body_started + READ_TIMEOUT_S + body_received / MIN_UPLOAD_RATE,
            )
        if body_received >= arriving.length:
            self.dispatch(conn)

    def check_room(self) -> None:
        if self.buffered > BUFFER_LIMIT:
            raise Refused(
                "503 Service Unavailable",
                "the server is receiving too many uploads: retry shortly",
                retry_after=1,
            )

    def _forget(self, conn: TConn) -> Arriving:
        self.poller.unregister(conn.sock)
        arriving = self.arriving.pop(conn)
        self.buffered -= len(arriving.data)
        return arriving

    def dispatch(self, conn: TConn) -> None:
        """The request has arrived (or gunicorn's parser must judge it): a thread takes it.
        Its bytes stay counted until the thread is done with it."""
        arriving = self._forget(conn)
        self.in_threads[conn] = len(arriving.data)
        self.buffered += len(arriving.data)
        conn.sock.setblocking(True)
        if conn.parser is None:
            conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
            conn.initialized = True
        conn.parser.unreader.unread(arriving.data)  # copied into the parser's buffer: once
        conn.data_ready = True
        super().enqueue_req(conn)

    def finish_request(self, conn: TConn, fs) -> None:
        self.buffered -= self.in_threads.pop(conn, 0)
        super().finish_request(conn, fs)

    def drop(self, conn: TConn) -> None:
        self._forget(conn)
        self.nr_conns -= 1
        conn.close()

    def refuse(self, conn: TConn, status: str, message: str, retry_after: int | None = None):
        """Answer a client from the loop (best effort: its socket may be full) and close."""
        with contextlib.suppress(OSError):
            conn.sock.send(canned(status, message, retry_after))
        self.log.info("refused %s: %s %s", conn.client, status, message)
        self.drop(conn)

    def murder_pending(self) -> None:
        super().murder_pending()
        now = time.monotonic()
        for conn in [c for c, arriving in self.arriving.items() if arriving.deadline < now]:
            late = "the request did not arrive in time: send it at once, or raise the server's "
            self.refuse(conn, "408 Request Timeout", late + "IMGCLF_READ_TIMEOUT_S")
