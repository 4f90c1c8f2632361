"""Start N local training workers for tf.distribute.MultiWorkerMirroredStrategy.

    python -m imgclf.training.launcher --workers 2 stages/train.py cnn

Each worker runs the same stage script with a generated TF_CONFIG (the whole
cluster on free 127.0.0.1 ports, its own task index); worker 0 is the chief and
the only one that writes the stage's outputs. Their output is streamed with a
"[worker N]" prefix; if one fails, the others are stopped and the launcher exits
with the failed worker's status. On several machines, set TF_CONFIG by hand on
each and run the stage script there instead (see the README, "Scaling out").
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path


def free_ports(count: int) -> list[int]:
    """`count` distinct ports that were free on 127.0.0.1 a moment ago."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tf_config(addresses: list[str], index: int) -> str:
    """The TF_CONFIG of worker `index` in a cluster of `addresses` (index 0 is the chief)."""
    return json.dumps(
        {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
    )


def _stream(prefix: str, pipe, lock: threading.Lock) -> None:
    for line in iter(pipe.readline, ""):
        with lock:
            sys.stdout.write(f"{prefix}{line}")
            sys.stdout.flush()
    pipe.close()


def launch(command: list[str], workers: int, timeout: float | None = None) -> int:
    """Run `command` as `workers` local workers; the first failure's status, or 0."""
    addresses = [f"127.0.0.1:{port}" for port in free_ports(workers)]
    lock = threading.Lock()
    processes, streams = [], []
    for index in range(workers):
        env = {**os.environ, "TF_CONFIG": tf_config(addresses, index)}
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )  # fmt: skip
        processes.append(process)
        stream = threading.Thread(target=_stream, args=(f"[worker {index}] ", process.stdout, lock))
        stream.start()
        streams.append(stream)
    deadline = None if timeout is None else time.monotonic() + timeout
    status = 0
    try:
        while True:
            codes = [process.poll() for process in processes]
            status = next((code for code in codes if code), 0)
            if status or all(code is not None for code in codes):
                break
            if deadline is not None and time.monotonic() > deadline:
                print(f"launcher: workers still running after {timeout:.0f}s, stopping")
                status = 124
                break
            time.sleep(0.2)
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for stream in streams:
            stream.join()
    if status:
        print(f"launcher: a worker failed (exit status {status}); stopped the others")
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m imgclf.training.launcher", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--workers", type=int, default=2, help="local workers (default 2)")
    parser.add_argument("--timeout", type=float, default=None, help="stop all after this many s")
    parser.add_argument("script", help="the stage script, e.g. stages/train.py")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="its arguments, e.g. cnn")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if not Path(args.script).is_file():
        parser.error(
            f"{args.script} not found: run from the project root, e.g. stages/train.py cnn"
        )
    return launch([sys.executable, args.script, *args.args], args.workers, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
