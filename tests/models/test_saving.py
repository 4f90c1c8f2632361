"""imgclf.models.saving: the same model gives the same bytes, as .keras and as a SavedModel."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

from support.project import ROOT

# Each save in its own process: memory addresses, the clock and unseeded state differ.
SAVE = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import keras
    from imgclf.models.cnn import build_model
    from imgclf.models.saving import export_saved_model, save_model
    from imgclf.models.registry import CnnParams

    keras.utils.set_random_seed(3)
    model = build_model(32, 3, CnnParams(image_size="auto", filters=[4, 8, 8, 8], convs_per_block=1,
                                       dense_units=8, dropout=0.3, learning_rate=0.01))
    out = Path(sys.argv[1])
    save_model(model, out / "model.keras")
    export_saved_model(model, out / "saved_model")
    """
)


def digests(folder) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.mark.slow  # two processes; test_pipeline_repro checks the same end to end
def test_two_saves_in_two_processes_are_byte_identical(tmp_path):
    for name in ("first", "second"):
        subprocess.run([sys.executable, "-c", SAVE, str(tmp_path / name)], cwd=ROOT, check=True,
                       capture_output=True, timeout=120)  # fmt: skip
    first, second = digests(tmp_path / "first"), digests(tmp_path / "second")
    assert set(first) >= {"model.keras", "saved_model/saved_model.pb", "saved_model/fingerprint.pb"}
    assert first == second
    with zipfile.ZipFile(tmp_path / "first" / "model.keras") as archive:
        assert all(info.date_time == (1980, 1, 1, 0, 0, 0) for info in archive.infolist())
        assert b"date_saved" not in archive.read("metadata.json")


@pytest.mark.slow  # a save in another process
def test_the_reproducible_files_still_load_and_agree(tmp_path):
    import keras
    import tensorflow as tf

    subprocess.run([sys.executable, "-c", SAVE, str(tmp_path)], cwd=ROOT, check=True,
                   capture_output=True, timeout=120)  # fmt: skip
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype("float32")
    keras_answer = keras.models.load_model(tmp_path / "model.keras").predict(images, verbose=0)
    loaded = tf.saved_model.load(str(tmp_path / "saved_model"))  # holds the variables
    served = loaded.serve(images).numpy()
    np.testing.assert_allclose(keras_answer, served, atol=1e-5)


def test_a_save_killed_midway_leaves_the_previous_file_and_the_next_save_sweeps(
    tmp_path, monkeypatch
):
    import keras

    from imgclf.models import saving

    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    path = tmp_path / "models" / "toy" / "model.keras"
    saving.save_model(model, path)
    before = path.read_bytes()
    # A run killed before: its half archive and staging file are still there.
    (path.parent / ".model.keras.999.partial").write_bytes(b"half an archive")
    (path.parent / ".model.keras.saving.keras").write_bytes(b"staging")

    def dies(*args, **kwargs):
        raise OSError("killed while writing")

    monkeypatch.setattr(zipfile.ZipFile, "writestr", dies)
    with pytest.raises(OSError, match="killed"):
        saving.save_model(model, path)
    assert path.read_bytes() == before  # never half a file where DVC looks
    monkeypatch.undo()
    saving.save_model(model, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.keras"]
