"""webapp.auth: the optional API token, on the endpoints that need it and only those."""

from __future__ import annotations

import io
import json

import pytest

from support.images import image_bytes, random_rgb
from webapp import ConfigError, create_app
from webapp.auth import MAX_TOKEN_LENGTH, configured_token

PNG = image_bytes(random_rgb(3))
TOKEN = "s3cret-token"


def predict(client, headers=None):
    data = {"file": [(io.BytesIO(PNG), "a.png")]}
    return client.post("/predict", data=data, content_type="multipart/form-data",
                       headers=headers or {})  # fmt: skip


@pytest.fixture(scope="module")
def guarded(cnn_export):
    return create_app({"MODEL_DIR": str(cnn_export), "API_TOKEN": TOKEN}).test_client()


def test_without_a_token_configured_nothing_asks_for_one(cnn_export):
    client = create_app({"MODEL_DIR": str(cnn_export)}).test_client()
    assert predict(client).status_code == 200 and client.get("/model").status_code == 200
    assert 'data-token-required="false"' in client.get("/").get_data(as_text=True)


@pytest.mark.parametrize("sent", [None, "Bearer wrong", f"Basic {TOKEN}", "Bearer", TOKEN])
def test_a_protected_endpoint_answers_401_without_the_right_token(guarded, sent):
    headers = {"Authorization": sent} if sent is not None else {}
    for response in (
        predict(guarded, headers), guarded.get("/model", headers=headers),
        guarded.get("/metrics", headers=headers),
    ):  # fmt: skip
        assert response.status_code == 401
        assert "Authorization: Bearer" in response.get_json()["error"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_right_token_opens_them_and_probes_need_none(guarded):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert predict(guarded, headers).get_json()["prediction"]
    assert guarded.get("/model", headers=headers).status_code == 200
    assert guarded.get("/metrics", headers=headers).status_code == 200
    assert guarded.get("/health").status_code == 200 and guarded.get("/ready").status_code == 200
    assert 'data-token-required="true"' in guarded.get("/").get_data(as_text=True)


def test_the_token_can_come_from_a_file(cnn_export, tmp_path):
    secret = tmp_path / "token"
    secret.write_text(f"{TOKEN}\n")
    client = create_app({"MODEL_DIR": str(cnn_export), "API_TOKEN_FILE": str(secret)}).test_client()
    assert predict(client).status_code == 401
    assert predict(client, {"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    with pytest.raises(ConfigError, match=r"IMGCLF_API_TOKEN_FILE = .*nope.*cannot read"):
        create_app({"MODEL_DIR": str(cnn_export), "API_TOKEN_FILE": str(tmp_path / "nope")})
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="holds no token"):
        create_app({"MODEL_DIR": str(cnn_export), "API_TOKEN_FILE": str(tmp_path / "empty")})


def test_with_a_token_the_page_tells_nothing_that_model_protects(cnn_export, guarded):
    page = guarded.get("/").get_data(as_text=True)
    metadata = create_app({"MODEL_DIR": str(cnn_export)}).test_client().get("/model").get_json()
    assert 'data-token-required="true"' in page and "asks for its API token" in page
    for secret in (*metadata["class_names"], "accuracy on its test images", "custom CNN"):
        assert secret not in page, secret
    open_page = create_app({"MODEL_DIR": str(cnn_export)}).test_client().get("/")
    assert all(name in open_page.get_data(as_text=True) for name in metadata["class_names"])


def test_a_refused_request_is_logged_with_its_request_id(guarded, caplog):
    with caplog.at_level("INFO", logger="webapp"):
        answer = guarded.get("/model", headers={"X-Request-ID": "refused-42"})
    assert answer.status_code == 401 and answer.headers["X-Request-ID"] == "refused-42"
    logged = [json.loads(r.getMessage()) for r in caplog.records if r.getMessage().startswith("{")]
    assert {"request_id": "refused-42", "status": 401}.items() <= logged[-1].items()


def test_only_the_token_files_first_line_is_the_token(cnn_export, tmp_path):
    secret = tmp_path / "token"
    secret.write_text(f"{TOKEN}\nnot-the-token\n" + "x" * 100_000)
    client = create_app({"MODEL_DIR": str(cnn_export), "API_TOKEN_FILE": str(secret)}).test_client()
    assert client.get("/model", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert (
        client.get("/model", headers={"Authorization": "Bearer not-the-token"}).status_code == 401
    )


def test_a_token_line_too_long_to_be_one_is_refused_by_name(cnn_export, tmp_path):
    longest = "t" * MAX_TOKEN_LENGTH
    secret = tmp_path / "token"
    secret.write_text(f"{longest}\n")
    client = create_app({"MODEL_DIR": str(cnn_export), "API_TOKEN_FILE": str(secret)}).test_client()
    assert client.get("/model", headers={"Authorization": f"Bearer {longest}"}).status_code == 200
    for too_long in (longest + "t", longest + " t"):  # not cut to fit, whatever is cut off
        secret.write_text(too_long + "\n")
        with pytest.raises(ConfigError, match=r"IMGCLF_API_TOKEN_FILE = .*longer than 4096"):
            create_app({"MODEL_DIR": str(cnn_export), "API_TOKEN_FILE": str(secret)})
    secret.write_text("ünïcode-tökén\n", encoding="utf-8")  # read as UTF-8 whatever the locale
    assert configured_token({"API_TOKEN_FILE": str(secret)}) == "ünïcode-tökén"
