"""The Flask app through its test client: every endpoint, every error, every odd upload,
on onnxruntime and on Keras."""

from __future__ import annotations

import base64
import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from imgclf.data.prepared import read_split
from imgclf.images import load_image
from support.images import image_bytes, random_rgb, upload_cases
from webapp import create_app
from webapp.model_service import model_service


@pytest.fixture(scope="module", params=["onnx", "keras"])
def app(cnn_export, request):
    """The app on each runtime that draws heatmaps: every endpoint answers the same on both."""
    return create_app({"MODEL_DIR": str(cnn_export), "TESTING": True, "RUNTIME": request.param})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="module")
def no_model_app(tmp_path_factory):
    return create_app({"MODEL_DIR": str(tmp_path_factory.mktemp("empty") / "best")})


def post(client, *files: tuple[bytes, str], query: str = ""):
    data = {"file": [(io.BytesIO(content), name) for content, name in files]}
    return client.post(f"/predict{query}", data=data, content_type="multipart/form-data")


PNG = image_bytes(random_rgb(21))


def test_predict_answers_label_confidence_and_probabilities(client, app):
    response = post(client, (PNG, "photo.png"))
    assert response.status_code == 200
    answer = response.get_json()
    class_names = model_service(app).current.predictor.class_names
    assert set(answer["probabilities"]) == set(class_names)
    assert sum(answer["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    assert answer["prediction"] == max(answer["probabilities"], key=answer["probabilities"].get)
    assert answer["confidence"] == answer["probabilities"][answer["prediction"]]


def test_answers_say_whether_they_are_sure(client, app):
    predictor = model_service(app).current.predictor
    answer = post(client, (PNG, "photo.png")).get_json()
    assert answer["unfamiliar"] == (answer["unfamiliarity"] > predictor.unfamiliar_threshold)
    abstains = predictor.metadata.target_accuracy > 0
    assert answer["uncertain"] == (
        answer["confidence"] < predictor.confidence_threshold or (answer["unfamiliar"] and abstains)
    )
    if answer["unfamiliar"] and abstains:
        expected = f"not sure — unlike the training images (maybe {answer['prediction']})"
    elif answer["uncertain"]:
        expected = f"not sure — maybe {answer['prediction']}"
    else:
        expected = answer["prediction"]
    assert answer["answer"] == expected


def test_explain_adds_a_heatmap_png_of_the_upload(client):
    plain = post(client, (PNG, "photo.png")).get_json()
    assert "heatmap_png" not in plain  # a plain prediction is unchanged
    answer = post(client, (PNG, "photo.png"), query="?explain=1").get_json()
    assert set(answer) == {*plain, "heatmap_png"}
    assert answer["prediction"] == plain["prediction"] and answer["answer"] == plain["answer"]
    assert answer["probabilities"] == pytest.approx(plain["probabilities"], abs=1e-5)
    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(answer["heatmap_png"]))) as heatmap:
        assert heatmap.format == "PNG" and heatmap.size == (224, 224)
    several = post(client, (PNG, "a.png"), (PNG, "b.png"), query="?explain=true").get_json()
    assert len(several) == 2 and all("heatmap_png" in a for a in several)
    bad = post(client, (PNG, "photo.png"), query="?explain=yes-please")
    assert bad.status_code == 400 and "explain" in bad.get_json()["error"]


def test_top_k_limits_the_probabilities(client):
    answer = post(client, (PNG, "photo.png"), query="?top_k=2").get_json()
    assert len(answer["probabilities"]) == 2
    assert next(iter(answer["probabilities"])) == answer["prediction"]
    for value in ("zero", "0", "-1", "²", "٣", "1e3", "9" * 40):  # "²".isdigit() is True
        bad = post(client, (PNG, "photo.png"), query=f"?top_k={value}")
        assert bad.status_code == 400 and "top_k" in bad.get_json()["error"], value


def test_several_files_answer_a_list_in_order(client):
    first, second = image_bytes(random_rgb(22)), image_bytes(random_rgb(23), "JPEG")
    answers = post(client, (first, "a.png"), (second, "b.jpg")).get_json()
    singles = [post(client, (data, "x")).get_json() for data in (first, second)]
    assert [a["prediction"] for a in answers] == [s["prediction"] for s in singles]
    for a, s in zip(answers, singles, strict=True):
        assert a["confidence"] == pytest.approx(s["confidence"], abs=1e-5)


@pytest.mark.parametrize(("name", "case"), list(upload_cases().items()), ids=list(upload_cases()))
def test_every_odd_upload_gets_a_clear_answer(client, name, case):
    content, status = case
    response = post(client, (content, "upload.jpg"))
    assert response.status_code == status, response.get_json()
    if status == 400:
        assert "upload.jpg is not a usable image" in response.get_json()["error"]
    else:
        assert 0 <= response.get_json()["confidence"] <= 1
    assert client.get("/health").status_code == 200


def test_client_errors_are_json_with_the_right_status(client, app):
    cases = [
        (client.post("/predict", data={}, content_type="multipart/form-data"), 400, "no file"),
        (client.post("/predict", json={"file": "x"}), 415, "multipart/form-data"),
        (client.get("/predict"), 405, "method not allowed"),
        (client.get("/nowhere"), 404, "no such page"),
    ]
    for response, status, text in cases:
        assert response.status_code == status
        assert text in response.get_json()["error"]


def test_upload_over_the_limit_is_413(cnn_export):
    small = create_app({"MODEL_DIR": str(cnn_export), "MAX_CONTENT_LENGTH": 2000})
    response = post(small.test_client(), (b"x" * 2500, "big.png"))
    assert response.status_code == 413
    assert "limit" in response.get_json()["error"]


def test_uploads_are_never_written_to_disk(client, monkeypatch):
    import werkzeug.formparser

    def no_disk(*args, **kwargs):
        raise AssertionError("an upload was spooled to a temporary file")

    monkeypatch.setattr(werkzeug.formparser, "SpooledTemporaryFile", no_disk)
    big = image_bytes(random_rgb(24, (1200, 800)))  # > 500 kB, where Werkzeug would spool
    assert len(big) > 1_000_000
    assert post(client, (big, "big.png")).status_code == 200


def test_unexpected_errors_do_not_leak(client, app, monkeypatch):
    predictor = model_service(app).current.predictor

    def broken(batch):
        raise RuntimeError("secret internals at /srv/model")

    monkeypatch.setattr(predictor, "scores", broken)
    response = post(client, (PNG, "photo.png"))
    assert response.status_code == 500
    body = response.get_data(as_text=True)
    assert "secret" not in body and "Traceback" not in body and "error" in response.get_json()


def test_same_file_gives_the_same_tensor_as_prepare(app, tiny_project):
    predictor = model_service(app).current.predictor
    test = read_split("test", tiny_project / "prepared")
    path = tiny_project / "data" / test.files[1]
    assert np.array_equal(predictor.pixels(path.read_bytes()), test.images[1])
    assert np.array_equal(
        predictor.pixels(path.read_bytes()), load_image(path, predictor.image_size)
    )


def test_health_ready_model_and_metrics(client, app):
    assert client.get("/health").get_json() == {"status": "ok"}
    assert client.get("/ready").status_code == 200
    model = client.get("/model").get_json()
    assert model["class_names"] == model_service(app).current.predictor.class_names
    assert {"selected_model", "test_accuracy", "val_accuracy", "pretrained", "image_size"} <= set(
        model
    )
    label = post(client, (PNG, "photo.png")).get_json()["prediction"]
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'imgclf_requests_total{endpoint="/predict",status="200"}' in metrics
    assert "imgclf_request_seconds_bucket" in metrics
    assert f'imgclf_predictions_total{{label="{label}"}}' in metrics
    assert "imgclf_model_load_seconds" in metrics
    for drift in ("imgclf_unfamiliarity_bucket", "imgclf_unfamiliar_total",
                  "imgclf_recent_unfamiliar_share", "imgclf_class_mix_shift"):  # fmt: skip
        assert drift in metrics
    assert (
        model["unfamiliar_threshold"] == model_service(app).current.predictor.unfamiliar_threshold
    )


def test_noise_is_answered_unfamiliar_and_a_test_image_is_not(client, app, tiny_project):
    predictor = model_service(app).current.predictor
    test = read_split("test", tiny_project / "prepared")
    scores = predictor.scores(test.images.astype("float32")).unfamiliarity
    familiar = int(np.argmin(scores))
    assert scores[familiar] <= predictor.unfamiliar_threshold
    image = image_bytes(Image.fromarray(test.images[familiar]))
    answers = post(client, (image, "shirt.png"), (PNG, "noise.png")).get_json()
    assert [a["unfamiliar"] for a in answers] == [False, True]
    assert (
        answers[1]["unfamiliarity"] > predictor.unfamiliar_threshold >= answers[0]["unfamiliarity"]
    )


def test_security_headers_and_request_id(client):
    response = client.get("/", headers={"X-Request-ID": "abc-123"})
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Request-ID"] == "abc-123"
    generated = client.get("/health", headers={"X-Request-ID": "<bad id>"}).headers["X-Request-ID"]
    assert len(generated) == 32 and generated.isalnum()
    assert not client.application.debug


def test_page_shows_the_model_and_has_no_inline_script(client, app):
    page = client.get("/").get_data(as_text=True)
    metadata = model_service(app).current.predictor.metadata
    assert f"{metadata.test_accuracy * 100:.1f}%" in page
    assert 'src="/static/app.js"' in page
    assert "<script>" not in page and "onclick" not in page
    assert client.get("/static/app.js").status_code == 200


def test_class_names_are_escaped_on_the_page(cnn_export, tmp_path):
    export = tmp_path / "best"
    shutil.copytree(cnn_export, export)
    metadata = json.loads((export / "metadata.json").read_text())
    metadata["class_names"][0] = "<script>alert('x')</script>"
    (export / "metadata.json").write_text(json.dumps(metadata))
    page = create_app({"MODEL_DIR": str(export)}).test_client().get("/").get_data(as_text=True)
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page


def test_without_a_model_the_server_still_answers(no_model_app):
    client = no_model_app.test_client()
    assert client.get("/health").status_code == 200
    ready = client.get("/ready")
    assert ready.status_code == 503 and "dvc repro" in ready.get_json()["error"]
    response = post(client, (PNG, "photo.png"))
    assert response.status_code == 503 and "dvc repro" in response.get_json()["error"]
    assert client.get("/model").status_code == 503
    page = client.get("/").get_data(as_text=True)
    assert "No model is exported yet" in page and "dvc repro" in page


def test_page_warns_when_resnet_served_without_pretrained_weights(cnn_export, tmp_path):
    export = tmp_path / "best"
    shutil.copytree(cnn_export, export)
    metadata = json.loads((export / "metadata.json").read_text())
    for pretrained, shown in ((False, True), (True, False)):
        metadata.update(selected_model="resnet", pretrained=pretrained)
        (export / "metadata.json").write_text(json.dumps(metadata))
        page = create_app({"MODEL_DIR": str(export)}).test_client().get("/").get_data(as_text=True)
        assert "Serving the <strong>ResNet50</strong>" in page
        assert ("without pretrained ImageNet weights" in page) is shown


def test_the_runtime_is_chosen_named_and_checked(cnn_export):
    tflite = create_app({"MODEL_DIR": str(cnn_export), "RUNTIME": "tflite"}).test_client()
    assert tflite.get("/model").get_json()["runtime"] == "tflite"
    assert post(tflite, (PNG, "photo.png")).status_code == 200
    heatmap = post(tflite, (PNG, "photo.png"), query="?explain=1")
    assert heatmap.status_code == 501 and "onnx" in heatmap.get_json()["error"]
    from webapp import ConfigError

    with pytest.raises(ConfigError, match="IMGCLF_RUNTIME = 'tensorrt': give auto, onnx"):
        create_app({"MODEL_DIR": str(cnn_export), "RUNTIME": "tensorrt"})
