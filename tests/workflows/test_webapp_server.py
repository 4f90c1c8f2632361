"""The real gunicorn server over real HTTP: good and bad uploads, and a bounded load test."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from support.images import image_bytes, random_rgb, upload_cases
from support.server import Gunicorn, http, multipart, status_of_oversized_upload

pytestmark = pytest.mark.slow  # end to end: `make test-fast` leaves it out


@pytest.fixture(scope="module")
def server(cnn_export):
    with Gunicorn(cnn_export, workers=2) as running:
        yield running


def test_ready_and_predict_over_http(server):
    status, ready = http(f"{server.url}/ready")
    assert (status, ready["status"]) == (200, "ready")
    assert ready["export_id"] == http(f"{server.url}/model")[1]["export_id"]
    body, content_type = multipart([("photo.png", image_bytes(random_rgb(31)))])
    status, answer = http(f"{server.url}/predict?top_k=2", body, content_type)
    assert status == 200
    assert len(answer["probabilities"]) == 2 and 0 < answer["confidence"] <= 1


def test_bad_uploads_get_clear_errors_and_the_server_keeps_serving(server):
    for name, (content, expected) in upload_cases().items():
        body, content_type = multipart([(f"{name}.jpg", content)])
        status, answer = http(f"{server.url}/predict", body, content_type)
        assert status == expected, (name, answer)
        if expected == 400:
            assert "is not a usable image" in answer["error"]
    assert status_of_oversized_upload(server.port, 10 * 2**20 + 1) == 413
    assert http(f"{server.url}/health") == (200, {"status": "ok"})


def test_load_of_400_requests_from_8_clients_has_no_errors(server):
    uploads = [multipart([(f"{i}.png", image_bytes(random_rgb(100 + i)))]) for i in range(8)]

    def client(index: int) -> list[int]:
        body, content_type = uploads[index]
        return [http(f"{server.url}/predict", body, content_type)[0] for _ in range(50)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = [status for result in pool.map(client, range(8)) for status in result]
    assert len(statuses) == 400 and set(statuses) == {200}
    metrics = http_text(f"{server.url}/metrics")
    assert 'imgclf_requests_total{endpoint="/predict",status="200"}' in metrics


def http_text(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read().decode()


def test_server_without_a_model_starts_and_says_so(tmp_path):
    with Gunicorn(tmp_path / "best") as running:
        status, answer = http(f"{running.url}/ready")
        assert status == 503 and "dvc repro" in answer["error"]
        body, content_type = multipart([("photo.png", image_bytes(random_rgb(32)))])
        assert http(f"{running.url}/predict", body, content_type)[0] == 503
        assert http(f"{running.url}/health")[0] == 200
