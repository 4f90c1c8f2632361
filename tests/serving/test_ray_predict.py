"""imgclf predict --engine ray: Ray Data actors on a local 2-CPU Ray, against the threaded CLI.

Each test starts its own Ray (a few seconds), so they are marked slow.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

pytest.importorskip("ray")

from imgclf.serving import ray_predict

pytestmark = pytest.mark.slow
TIMEOUT = 240


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "imgclf", "predict", *args],
        capture_output=True, text=True, cwd=cwd, timeout=TIMEOUT,
    )  # fmt: skip


def rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as table:
        return list(csv.DictReader(table))


@pytest.fixture
def many(tiny_project, tmp_path) -> Path:
    """A list of 3,000 file names (the tiny project's images, repeated) and two bad files."""
    images = sorted(str(p) for p in (tiny_project / "data").rglob("*.png"))
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    names = [images[i % len(images)] for i in range(3000)]
    names[1234:1234] = [str(text), str(tmp_path / "missing.jpg")]
    listed = tmp_path / "files.txt"
    listed.write_text("\n".join(names) + "\n")
    return listed


def test_the_same_rows_as_the_threaded_cli_and_bad_files_reported_per_row(tiny_project, many):
    threads = run_cli("--files-from", str(many), "--csv", str(many.parent / "threads.csv"),
                      cwd=tiny_project)  # fmt: skip
    assert threads.returncode == 1, threads.stderr  # the two bad files
    result = run_cli(
        "--files-from", str(many), "--engine", "ray", "--num-cpus", "2",
        "--out", str(many.parent / "shards"), "--csv", str(many.parent / "ray.csv"),
        cwd=tiny_project,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "2 of 3002 file(s) could not be predicted" in result.stderr
    expected, found = rows(many.parent / "threads.csv"), rows(many.parent / "ray.csv")
    assert found == expected  # row for row: file, label, confidence, top classes, error
    assert "not a usable image" in found[1234]["error"] and found[1234]["prediction"] == ""
    assert "No such file" in found[1235]["error"]
    assert len(list((many.parent / "shards").glob("part-*.parquet"))) == 1  # 10,000 a shard


def test_an_interrupted_run_resumes_without_redoing_or_repeating_a_file(tiny_project, many):
    out, table = many.parent / "shards", many.parent / "ray.csv"
    command = [
        sys.executable, "-m", "imgclf", "predict", "--files-from", str(many), "--engine", "ray",
        "--num-cpus", "2", "--out", str(out), "--csv", str(table), "--shard-files", "100",
    ]  # fmt: skip
    first = subprocess.Popen(command, cwd=tiny_project, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + TIMEOUT
    while not list(out.glob("part-*.parquet")) and time.monotonic() < deadline:
        assert first.poll() is None, first.stderr.read()
        time.sleep(0.02)
    first.send_signal(signal.SIGINT)  # Ctrl-C
    first.communicate(timeout=TIMEOUT)
    assert first.returncode != 0 and not table.exists()
    kept = {part.name: part.stat().st_mtime_ns for part in out.glob("part-*.parquet")}
    assert 0 < len(kept) < 31, "the run was not interrupted part way"

    second = run_cli(*command[4:], cwd=tiny_project)
    assert second.returncode == 1, second.stderr  # the two bad files, once each
    assert f"31 shards under {out}/ ({len(kept)} kept from an earlier run)" in second.stderr
    assert {name: (out / name).stat().st_mtime_ns for name in kept} == kept  # not redone
    names = [line for line in many.read_text().splitlines()]
    assert [row["file"] for row in rows(table)] == names  # every file once, in order


def test_an_actor_killed_mid_run_is_replaced_and_no_row_is_lost_or_repeated(
    tiny_project, many, monkeypatch, tmp_path
):
    monkeypatch.setattr(ray_predict, "BATCH", 16)
    monkeypatch.setattr(ray_predict, "FILES_PER_BLOCK", 64)
    out = tmp_path / "shards"
    killed: list[int] = []
    seen: set[int] = set()

    def kill_an_actor_once_a_shard_is_written() -> None:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and not killed:
            workers = [
                p for p in psutil.process_iter(["pid", "cmdline"])
                if any("MapWorker" in part for part in (p.info["cmdline"] or []))
            ]  # fmt: skip
            seen.update(p.pid for p in workers)
            if workers and list(out.glob("part-*.parquet")):
                workers[0].kill()
                killed.append(workers[0].pid)
            time.sleep(0.02)

    killer = threading.Thread(target=kill_an_actor_once_a_shard_is_written, daemon=True)
    killer.start()
    names = many.read_text().splitlines()
    run = ray_predict.predict_with_ray(
        names, out, tiny_project / "models" / "best", num_cpus=2, shard_files=100,
        csv_path=tmp_path / "ray.csv",
    )  # fmt: skip
    killer.join(timeout=10)
    assert killed, "no actor was killed: the run ended first"
    assert run.files == 3002 and run.errors == 2 and run.resumed == 0
    assert [row["file"] for row in rows(tmp_path / "ray.csv")] == names
    assert not psutil.pid_exists(killed[0]) or psutil.Process(killed[0]).status() == "zombie"


def test_a_folder_uri_and_a_refused_output_of_other_files(tiny_project, tmp_path):
    data = tiny_project / "data"
    out = tmp_path / "shards"
    run = ray_predict.predict_with_ray(
        [f"file://{data}"], out, tiny_project / "models" / "best", num_cpus=2,
        csv_path=tmp_path / "uri.csv",
    )  # fmt: skip
    found = rows(tmp_path / "uri.csv")
    assert run.files == 24 == len(found) and run.errors == 0
    assert found[0]["file"] == f"file://{sorted(data.rglob('*.png'))[0]}"
    assert all(row["prediction"] in {"circle", "square", "star"} for row in found)
    with pytest.raises(ray_predict.OutputMismatch, match="other files or another model"):
        ray_predict.predict_with_ray(
            [str(data / "circle")], out, tiny_project / "models" / "best", num_cpus=2
        )


def test_without_ray_the_cli_says_what_to_install(tiny_project, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "ray.py").write_text("raise ImportError('no ray here')\n")
    env = {**os.environ, "PYTHONPATH": f"{blocker}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = subprocess.run(
        [sys.executable, "-m", "imgclf", "predict", "data", "--engine", "ray", "--out", "x"],
        capture_output=True, text=True, cwd=tiny_project, env=env, timeout=TIMEOUT,
    )  # fmt: skip
    assert result.returncode == 2
    assert "pip install 'imgclf[ray]'" in result.stderr


def test_a_cluster_named_by_ray_address_does_the_work(tiny_project, tmp_path):
    """`ray start --head` (a one-machine cluster on a free port), then the CLI with
    RAY_ADDRESS: the run joins it instead of starting its own Ray."""
    import secrets
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ray = Path(sys.executable).parent / "ray"
    # As the docs say to start a cluster: its token in every node's and client's environment.
    token = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    env = {**os.environ, **token, "RAY_ADDRESS": f"127.0.0.1:{port}"}
    started = subprocess.run(
        [str(ray), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
         "--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats"],
        capture_output=True, text=True, env={**os.environ, **token}, timeout=TIMEOUT,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:
        result = subprocess.run(
            [sys.executable, "-m", "imgclf", "predict", "data", "--engine", "ray",
             "--out", str(tmp_path / "shards"), "--csv", str(tmp_path / "cluster.csv")],
            capture_output=True, text=True, cwd=tiny_project, env=env, timeout=TIMEOUT,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        status = subprocess.run(
            [str(ray), "status", "--address", f"127.0.0.1:{port}"],
            capture_output=True, text=True, env=env, timeout=TIMEOUT,
        )  # fmt: skip
        assert status.returncode == 0  # the cluster outlived the run: it was joined, not started
    finally:
        subprocess.run([str(ray), "stop", "--force"], capture_output=True, timeout=TIMEOUT)
    found = rows(tmp_path / "cluster.csv")
    assert len(found) == 24 and all(row["prediction"] for row in found)
