"""webapp.model_service: swapping in a new export, refusing a broken one, bounding the queue."""

from __future__ import annotations

import io
import shutil
import threading
import time

import numpy as np
import pytest

from support.exports import BREAKAGES, RUNTIME_OF, spoil, swap_in
from support.images import image_bytes, random_rgb
from webapp import ConfigError, create_app
from webapp.errors import ApiError
from webapp.model_service import export_stamp, model_service

PNG = image_bytes(random_rgb(3))


def app_for(export, **config):
    return create_app({"MODEL_DIR": str(export), "RELOAD_INTERVAL_S": 0, **config})


def predict(client, query: str = ""):
    data = {"file": [(io.BytesIO(PNG), "a.png")]}
    return client.post(f"/predict{query}", data=data, content_type="multipart/form-data")


@pytest.fixture
def export(cnn_export, tmp_path):
    return shutil.copytree(cnn_export, tmp_path / "best")


def changed_copy(export, change, tmp_path):
    """A copy of `export` with `change` applied to it."""
    copy = shutil.copytree(export, tmp_path / "changed")
    change(copy)
    return copy


def test_a_replaced_export_is_swapped_in_and_model_names_it(export, tiny_project, tmp_path):
    app = app_for(export)
    service, client = model_service(app), app.test_client()
    first = client.get("/model").get_json()
    assert len(first["export_id"]) == 16 and first["reload_error"] is None
    assert not service.check_for_new_export()  # nothing changed
    old_batcher = service.current.batcher
    uncalibrated = tiny_project / "models/cnn/model.keras"
    swap_in(export, changed_copy(export, lambda c: shutil.copy(uncalibrated, c), tmp_path))
    assert service.check_for_new_export()
    second = client.get("/model").get_json()
    assert second["export_id"] != first["export_id"]
    assert old_batcher.closed  # the old export's batcher stops once its queue is answered
    assert predict(client).status_code == 200


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_a_broken_export_is_refused_and_the_old_one_keeps_serving(export, breakage, tmp_path):
    app = app_for(export, RUNTIME=RUNTIME_OF.get(breakage, "auto"))
    service, client = model_service(app), app.test_client()
    working = service.current.export_id
    swap_in(export, changed_copy(export, lambda c: spoil(c, breakage), tmp_path))
    assert not service.check_for_new_export()
    described = client.get("/model").get_json()
    assert described["export_id"] == working and described["reload_error"]
    assert client.get("/ready").status_code == 200 and predict(client).status_code == 200
    assert not service.check_for_new_export()  # the same broken files are not tried again


def test_a_server_that_starts_with_a_broken_export_says_why(export):
    for runtime, name in (("keras", "model.keras"), ("onnx", "model.onnx")):
        (export / name).write_bytes(b"not a model")
        client = app_for(export, RUNTIME=runtime).test_client()
        ready = client.get("/ready")
        assert ready.status_code == 503 and f"{name} cannot be loaded" in ready.get_json()["error"]
        page = client.get("/").get_data(as_text=True)
        assert "none can be used" in page and f"{name} cannot be loaded" in page
        # Clients learn what is wrong, not where the server keeps its files.
        said = ready.get_json()["error"] + page
        assert str(export) not in said and str(export.parent) not in said
        assert "IMGCLF_MODEL_DIR" in ready.get_json()["error"]
        assert predict(client).status_code == 503


def test_a_directory_missing_for_a_moment_is_not_a_failure(export, tmp_path):
    app = app_for(export)
    service = model_service(app)
    export.rename(tmp_path / "aside")  # the instant between two renames
    assert export_stamp(export) is None and not service.check_for_new_export()
    assert service.reload_error is None and service.ready


def test_a_full_queue_answers_503_with_retry_after_at_once(export):
    app = app_for(export, MAX_QUEUE=1)
    service, client = model_service(app), app.test_client()
    with service.admitted():  # someone is already waiting for the model
        started = time.perf_counter()
        response = predict(client)
        waited = time.perf_counter() - started
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert "busy" in response.get_json()["error"] and waited < 1
    assert predict(client).status_code == 200


def test_a_request_that_waits_too_long_gets_503(export):
    app = app_for(export, REQUEST_TIMEOUT_S=0.3)
    service = model_service(app)
    loaded = service.current
    release = threading.Event()
    slow = loaded.predictor.scores

    def stuck(batch):
        release.wait(5)
        return slow(batch)

    loaded.batcher.predict = stuck  # the model is busy with a long call
    blocker = threading.Thread(target=lambda: loaded.batcher.submit(np.zeros((1, 32, 32, 3))))
    blocker.start()
    time.sleep(0.1)
    try:
        with pytest.raises(ApiError) as refused:
            service.scores(loaded, np.zeros((1, 32, 32, 3)), time.monotonic() + 0.3)
        assert refused.value.status == 503 and refused.value.retry_after == 1
        assert "no answer within 0.3 s" in refused.value.message
    finally:
        release.set()
        blocker.join()


@pytest.mark.parametrize(
    ("variable", "value"), [("MAX_QUEUE", 0), ("REQUEST_TIMEOUT_S", "soon"), ("MAX_FILES", 1.5)]
)
def test_a_bad_setting_names_the_variable(export, variable, value):
    with pytest.raises(ConfigError, match=f"IMGCLF_{variable}"):
        app_for(export, **{variable: value})


def test_loading_in_the_background_answers_health_and_waits_predictions(export):
    app = create_app({"MODEL_DIR": str(export), "LOAD_IN_BACKGROUND": True})
    client = app.test_client()
    assert client.get("/health").status_code == 200
    assert predict(client).status_code == 200  # waited for the model instead of failing
    assert client.get("/ready").status_code == 200


def test_waiting_until_loaded_ends_when_the_model_is_served_or_cannot_be(export, tmp_path):
    service = model_service(create_app({"MODEL_DIR": str(export), "LOAD_IN_BACKGROUND": True}))
    assert service.wait_until_loaded(120) and service.ready
    missing = model_service(create_app({"MODEL_DIR": str(tmp_path), "LOAD_IN_BACKGROUND": True}))
    assert (
        missing.wait_until_loaded(120)
        and not missing.ready
        and "no exported model" in missing.error
    )


def test_explain_waits_for_a_place_only_until_the_deadline(export):
    import contextlib
    import os

    app = app_for(export, REQUEST_TIMEOUT_S=0.3)
    service, client = model_service(app), app.test_client()
    with contextlib.ExitStack() as busy:
        for _ in range(os.cpu_count() or 2):  # every Grad-CAM place is taken
            busy.enter_context(service.explaining(time.monotonic() + 60))
        started = time.perf_counter()
        response = predict(client, "?explain=1")
        waited = time.perf_counter() - started
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert "no answer within 0.3 s" in response.get_json()["error"] and 0.25 < waited < 2
    late = service.explaining(time.monotonic() - 0.01)  # a place is free, but time is up
    with pytest.raises(ApiError):
        late.__enter__()
    answered = predict(client, "?explain=1")
    assert answered.status_code == 200 and answered.get_json()["heatmap_png"]
