"""The web app's container image, built and run with Podman from Debian's packages only.

The base image is made from Debian by container/base-image.sh (no registry is
needed), the project image is built from the Dockerfile with the tiny pipeline's
export copied in, and the running container is checked as an operator would: ready,
the same answers as `imgclf predict`, bad input refused as before, onnxruntime and no
TensorFlow in an image of at most 400 MiB, not root, healthy, a new export in the
mounted folder served under load, and `podman stop` under load losing no accepted
request.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.exports import swap_in
from support.images import image_bytes, random_rgb, upload_cases
from support.load import Load
from support.project import ROOT
from support.server import free_port, http, multipart, status_of_oversized_upload

pytestmark = pytest.mark.slow  # builds an image: `make test-fast` leaves it out

BASE = "docker.io/library/python:3.11-slim-bookworm"  # the Dockerfile's default BASE_IMAGE
TAG = "localhost/imgclf-test:latest"
CONTEXT_FILES = ["Dockerfile", ".dockerignore", "pyproject.toml", "constraints.txt", "README.md"]


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    # These machines' crun fails on hybrid cgroups and their ulimits cannot be raised.
    env.setdefault("CONTAINERS_CONF", str(ROOT / "container" / "containers.conf"))
    result = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, env=env
    )
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed: {result.stderr[-2000:]}")
    return result


@pytest.fixture(scope="module")
def engine() -> None:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (.ci/run installs podman, runc and mmdebstrap)")
    if podman("image", "exists", BASE, check=False).returncode != 0:
        if shutil.which("mmdebstrap") is None:
            pytest.skip(f"no {BASE} image and no mmdebstrap to build it from Debian")
        env = {**os.environ, "CONTAINERS_CONF": str(ROOT / "container" / "containers.conf")}
        built = subprocess.run(
            [str(ROOT / "container" / "base-image.sh"), BASE],
            capture_output=True, text=True, timeout=900, env=env,
        )  # fmt: skip
        assert built.returncode == 0, built.stderr[-2000:]
    probe = podman("run", "--rm", "--network", "host", BASE, "true", check=False)
    if probe.returncode != 0:
        pytest.skip(f"this machine cannot run containers: {probe.stderr.strip()[-300:]}")


@pytest.fixture(scope="module")
def image(engine, cnn_export, tmp_path_factory) -> str:
    """The project image, built from a copy of the checkout with the tiny export in it."""
    context = tmp_path_factory.mktemp("context")
    for name in CONTEXT_FILES:
        shutil.copy2(ROOT / name, context / name)
    for package in ("imgclf", "webapp"):
        shutil.copytree(
            ROOT / package, context / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copytree(cnn_export, context / "models" / "best")
    # Where pip's index needs this machine's CA bundle, lend it to the build (not baked in).
    certs = (
        ["--volume", "/etc/ssl/certs:/etc/ssl/certs:ro"] if Path("/etc/ssl/certs").is_dir() else []
    )
    started = time.monotonic()
    podman(
        "build", "--format", "docker", "--network", "host", "--pull=never", *certs,
        "--tag", TAG, str(context), timeout=1800,
    )  # fmt: skip
    size = int(podman("image", "inspect", "--format", "{{.Size}}", TAG).stdout)
    print(f"\nimage built in {time.monotonic() - started:.0f} s, {size / 2**20:,.0f} MiB")
    assert size <= 400 * 2**20, f"the serving image is {size / 2**20:,.0f} MiB (target 400)"
    return TAG


@dataclass
class Container:
    name: str
    port: int
    ready_seconds: float

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr


def start(image: str, *options: str, grace: int = 10) -> Container:
    """Run the image on a free 127.0.0.1 port; wait (at most 120 s) until /ready, from
    every worker (each loads its own model: ten answers in a row, each a new connection)."""
    port = free_port()
    name = f"imgclf-test-{port}"
    podman(
        "run", "--detach", "--name", name, "--network", "host",
        "--env", "IMGCLF_HOST=127.0.0.1", "--env", f"IMGCLF_PORT={port}",
        "--env", f"IMGCLF_GRACEFUL_TIMEOUT_S={grace}", *options, image,
    )  # fmt: skip
    started, in_a_row = time.monotonic(), 0
    while time.monotonic() - started < 120:
        try:
            in_a_row = (
                in_a_row + 1 if http(f"http://127.0.0.1:{port}/ready", timeout=2)[0] == 200 else 0
            )
        except OSError:
            in_a_row = 0
        if in_a_row == 10:
            return Container(name, port, time.monotonic() - started)
        time.sleep(0.1 if in_a_row else 0.25)
    logs = podman("logs", name, check=False)
    podman("rm", "--force", name, check=False)
    raise AssertionError(f"not ready in 120 s: {(logs.stdout + logs.stderr)[-2000:]}")


@pytest.fixture(scope="module")
def container(image):
    running = start(image)
    print(f"\ncontainer ready {running.ready_seconds:.1f} s after start")
    yield running
    podman("rm", "--force", running.name, check=False)


def test_ready_and_the_same_answer_as_the_cli(container, cnn_export, tmp_path):
    status, ready = http(f"{container.url}/ready")
    assert (status, ready["status"]) == (200, "ready")
    photo = tmp_path / "photo.png"
    photo.write_bytes(image_bytes(random_rgb(11)))
    status, served = http(
        f"{container.url}/predict", *multipart([("photo.png", photo.read_bytes())])
    )
    assert status == 200
    cli = subprocess.run(
        [sys.executable, "-m", "imgclf", "predict", "--model-dir", str(cnn_export), str(photo)],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    local = json.loads(cli.stdout)
    assert served["prediction"] == local["prediction"]
    for name, probability in local["probabilities"].items():
        assert served["probabilities"][name] == pytest.approx(probability, abs=1e-6)


def test_bad_input_gets_the_same_answers_as_outside_a_container(container):
    for name, (content, expected) in upload_cases().items():
        status, answer = http(f"{container.url}/predict", *multipart([(f"{name}.jpg", content)]))
        assert status == expected, (name, answer)
    assert status_of_oversized_upload(container.port, 10 * 2**20 + 1) == 413
    assert http(f"{container.url}/health") == (200, {"status": "ok"})


def test_it_serves_on_onnxruntime_without_tensorflow(container):
    assert http(f"{container.url}/model")[1]["runtime"] == "onnx"
    probe = "import importlib.util as u; print([u.find_spec(m) is None for m in ('tensorflow',"
    probe += " 'keras')])"
    found = podman("exec", container.name, "python3", "-c", probe).stdout.strip()
    assert found == "[True, True]"


def test_it_runs_as_a_user_and_reports_healthy(container):
    assert podman("exec", container.name, "id", "-u").stdout.strip() != "0"
    assert podman("healthcheck", "run", container.name, check=False).returncode == 0
    health = podman("inspect", "--format", "{{.State.Health.Status}}", container.name).stdout
    assert health.strip() == "healthy"


def test_a_new_export_in_the_mounted_folder_is_served_under_load(image, cnn_export, tmp_path):
    # As documented: the folder that holds the export is mounted, and the export is
    # replaced by a rename, as `dvc repro export` does it, while clients keep asking.
    from webapp.model_service import export_id

    models = tmp_path / "models"
    shutil.copytree(cnn_export, models / "best")
    second = shutil.copytree(cnn_export, tmp_path / "second")
    metadata = json.loads((second / "metadata.json").read_text())
    (second / "metadata.json").write_text(json.dumps({**metadata, "top_k": 2}))
    running = start(image, "--volume", f"{models}:/models:ro")
    try:
        first = http(f"{running.url}/model")[1]["export_id"]
        with Load(running.url, clients=2) as load:
            time.sleep(1)
            swapped = time.monotonic()
            swap_in(models / "best", second)
            new, took = export_id(models / "best"), None
            while took is None and time.monotonic() - swapped < 30:
                if http(f"{running.url}/model")[1]["export_id"] == new:
                    took = time.monotonic() - swapped
                time.sleep(0.2)
            time.sleep(1)
        outcomes = load.snapshot()
    finally:
        podman("rm", "--force", running.name, check=False)
    failed = [o for o in outcomes if o.status != 200]
    print(f"\nmounted folder: the new export served {took} s after the swap; "
          f"{len(outcomes)} requests meanwhile, {len(failed)} not 200")  # fmt: skip
    assert first == export_id(cnn_export) != new
    assert took is not None and not failed


def test_podman_stop_under_load_answers_every_accepted_request(image):
    grace = 10
    running = start(image, grace=grace)
    try:
        with Load(running.url, clients=4) as load:
            time.sleep(3)
            stopped = time.monotonic()
            podman("stop", "--time", str(grace + 10), running.name, timeout=grace + 60)
            took = time.monotonic() - stopped
        handled = {
            json.loads(line)["request_id"]
            for line in running.logs().splitlines()
            if line.startswith("{") and '"/predict"' in line
        }
        exit_code = podman("inspect", "--format", "{{.State.ExitCode}}", running.name).stdout
    finally:
        podman("rm", "--force", running.name, check=False)
    outcomes = load.snapshot()
    answered = {o.request_id for o in outcomes if o.status is not None}
    print(
        f"\npodman stop: {took:.1f} s; {len(handled)} requests handled, all "
        f"{len(handled & answered)} answered; {sum(o.status is None for o in outcomes)} "
        "connections refused after the listener closed"
    )
    assert handled and not handled - answered
    assert took < grace + 5
    assert exit_code.strip() == "0"
