"""webapp.auth: the optional API token, on the endpoints that need it and only those."""

from __future__ import annotations

import io

import pytest

from support.images import image_bytes, random_rgb
from webapp import ConfigError, create_app

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
