"""The real web server on a free 127.0.0.1 port, and a small HTTP client for it."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

from support.project import ROOT


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def multipart(files: list[tuple[str, bytes]], field: str = "file") -> tuple[bytes, str]:
    """Encode files as multipart/form-data: (body, content type)."""
    boundary = "----imgclf-test-boundary"
    parts = []
    for name, content in files:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n".encode()
            + content
            + b"\r\n"
        )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def http(
    url: str, body: bytes | None = None, content_type: str | None = None, timeout: float = 60
) -> tuple[int, dict]:
    """A request with urllib: (status, JSON body)."""
    import urllib.error
    import urllib.request

    headers = {"Content-Type": content_type} if content_type else {}
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def status_of_oversized_upload(port: int, size: int) -> int:
    """POST `size` bytes; the server may answer 413 and close before the body is all sent."""
    import socket

    body, content_type = multipart([("huge.jpg", b"\xff" * size)])
    head = (
        f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        with contextlib.suppress(OSError):  # the server may stop reading: its answer waits
            sock.sendall(head + body)
        answer = sock.recv(4096).decode(errors="replace")
    return int(answer.split()[1])


READY_IN_A_ROW = 10


class Gunicorn:
    """The real server (`make serve`'s gunicorn config) on a free 127.0.0.1 port."""

    def __init__(self, model_dir: Path, workers: int = 1, extra_env: dict | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ, "IMGCLF_MODEL_DIR": str(model_dir), "IMGCLF_HOST": "127.0.0.1",
            "IMGCLF_PORT": str(self.port), "WEB_CONCURRENCY": str(workers), **(extra_env or {}),
        }  # fmt: skip
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)

    def __enter__(self) -> Gunicorn:
        self.start()
        if self.wait_until_ready(120):
            return self
        self.__exit__()
        raise RuntimeError(f"gunicorn was not ready within 120 s: {self.output()[-2000:]}")

    def start(self) -> None:
        """Start gunicorn without waiting for it (__enter__ waits until it is ready)."""
        import subprocess
        import sys

        gunicorn = Path(sys.executable).parent / "gunicorn"
        # A file, not a pipe: one log line per request would fill a pipe and stall the server.
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (closed by __exit__)
        self.process = subprocess.Popen(
            [gunicorn, "--config", ROOT / "webapp" / "gunicorn.conf.py", "webapp:create_app()"],
            cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=self.log,
        )  # fmt: skip

    def wait_until_ready(self, seconds: float) -> bool:
        """Wait until /ready says the model is served by every worker (each loads its own:
        ten answers in a row, each a new connection), or that none can be (its 503 error)."""
        import time

        deadline, in_a_row = time.monotonic() + seconds, 0
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.output()[-2000:]}")
            try:
                status, answer = http(f"{self.url}/ready")
                if answer.get("status") == "not ready":
                    return True
                in_a_row = in_a_row + 1 if status == 200 else 0
            except OSError:
                in_a_row = 0
            if in_a_row == READY_IN_A_ROW:
                return True
            time.sleep(0.05 if in_a_row else 0.2)
        return False

    def output(self) -> str:
        """What gunicorn and the app have logged so far."""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def log_entries(self) -> list[dict]:
        """The app's JSON log lines so far (one per request, model loads), parsed."""
        entries = []
        for line in self.output().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):  # another program's line
                    entries.append(json.loads(line))
        return entries

    def worker_pids(self) -> list[int]:
        """The pids of gunicorn's workers (the master's children, from /proc)."""
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # a process that ended meanwhile
            if int(fields[1]) == self.process.pid:  # field 4 of stat: the parent's pid
                pids.append(int(stat.parent.name))
        return sorted(pids)

    def __exit__(self, *exc_info: object) -> None:
        import subprocess

        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
