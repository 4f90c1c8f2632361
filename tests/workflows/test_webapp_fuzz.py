"""Fuzzing the HTTP surface: thousands of generated requests get 2xx or 4xx, never a 500.

Hypothesis generates the requests (derandomized, so a run is repeatable): random
bytes as files, broken multipart, wrong methods and content types, odd query
strings, many `file` fields; through Flask's test client, and as raw bytes on a
socket to the real gunicorn (broken request lines, huge headers, lying lengths).
Afterwards the server answers a normal request as before.
"""

from __future__ import annotations

import io
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.images import image_bytes, random_rgb, small_but_huge
from support.server import Gunicorn, http, multipart
from webapp import create_app

pytestmark = pytest.mark.slow  # thousands of requests: `make test-fast` leaves them out

PNG = image_bytes(random_rgb(8))
PATHS = ["/predict", "/", "/ready", "/health", "/model", "/metrics", "/static/app.js", "/nope"]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
FUZZ = settings(
    max_examples=2000, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip

queries = st.dictionaries(
    st.sampled_from(["top_k", "explain", "x", ""]),
    st.one_of(st.text(max_size=12), st.integers(-5, 10_000).map(str)),
    max_size=3,
)
files = st.lists(
    st.tuples(
        st.text(max_size=30),
        st.one_of(
            st.binary(max_size=2000),
            st.just(PNG),
            st.just(PNG[: len(PNG) // 2]),
            # Small files that decode huge: refused from their header, never decoded.
            st.sampled_from(list(small_but_huge().values())),
        ),
    ),
    max_size=20,
)


@pytest.fixture(scope="module")
def client(cnn_export):
    app = create_app({"MODEL_DIR": str(cnn_export), "MAX_FILES": 8})
    return app.test_client()


@FUZZ
@given(
    method=st.sampled_from(METHODS),
    # Generated paths without "?": the query string is generated on its own.
    path=st.one_of(
        st.sampled_from(PATHS), st.text(max_size=20).map(lambda t: "/" + t.replace("?", ""))
    ),
    query=queries,
    uploads=files,
    field_name=st.sampled_from(["file", "files", "", "file[]"]),
    content_type=st.sampled_from(
        [
            None,
            "multipart/form-data",
            "multipart/form-data; boundary=",
            "application/json",
            "text/plain",
            "image/png",
            "multipart/form-data; boundary=x",
        ]
    ),
    raw=st.binary(max_size=500),
)
def test_generated_requests_never_get_a_server_error(
    client, method, path, query, uploads, field_name, content_type, raw
):
    # The path goes in as a server hands it to the app (PATH_INFO: the request line's
    # bytes as latin-1), not through the test client's URL parser, which reads a
    # leading "//" as a host name and fails on one it cannot encode, before any request.
    wsgi = {"PATH_INFO": path.encode("utf-8", "surrogatepass").decode("latin-1")}
    if uploads and content_type is None:  # a real multipart form
        data = {field_name: [(io.BytesIO(content), name) for name, content in uploads]}
        response = client.open(
            "/", method=method, query_string=query, data=data,
            content_type="multipart/form-data", environ_overrides=wsgi,
        )  # fmt: skip
    else:  # whatever bytes, under whatever declared type
        headers = {"Content-Type": content_type} if content_type else {}
        response = client.open(
            "/", method=method, query_string=query, data=raw, headers=headers,
            environ_overrides=wsgi,
        )  # fmt: skip
    assert response.status_code < 500, (response.status_code, response.get_data()[:300])
    if response.status_code >= 400 and method != "HEAD" and response.is_json:
        assert "error" in response.get_json()


RAW = [
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Long: " + b"a" * 20_000 + b"\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(300)) + b"\r\n",
    b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nshort",
    b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET //\x80/%ff HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET //predict HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\x00\x01\x02\xff" * 100,
]


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(noise=st.binary(min_size=1, max_size=3000), known=st.sampled_from(RAW))
def test_raw_bytes_on_the_socket_never_get_a_server_error(gunicorn, noise, known):
    for payload in (known, noise, b"POST /predict HTTP/1.1\r\nHost: x\r\n" + noise):
        with socket.create_connection(("127.0.0.1", gunicorn.port), timeout=10) as sock:
            try:
                sock.sendall(payload)
                sock.shutdown(socket.SHUT_WR)
                reply = sock.recv(200)
            except OSError:  # the server may close a connection that makes no sense
                continue
        if reply.startswith(b"HTTP/"):
            status = int(reply.split()[1])
            assert status < 500, reply[:200]


@pytest.fixture(scope="module")
def gunicorn(cnn_export):
    with Gunicorn(cnn_export, workers=1) as server:
        workers = server.worker_pids()
        yield server
        # And it answers a normal request as before, from the worker it started with:
        # gunicorn replaces a worker that died, which would hide the crash.
        assert http(f"{server.url}/predict", *multipart([("a.png", PNG)]))[0] == 200
        assert server.worker_pids() == workers, "a worker exited during the fuzz"
        assert "Worker exiting" not in server.output() and "Traceback" not in server.output()


def test_the_app_answers_normally_after_the_fuzz(client):
    data = {"file": [(io.BytesIO(PNG), "a.png")]}
    response = client.post("/predict", data=data, content_type="multipart/form-data")
    assert response.status_code == 200 and response.get_json()["prediction"]
