"""imgclf.native_memory: training from a PyDataset keeps its freed memory for the next step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from imgclf.native_memory import pin_malloc_thresholds

# Fits a small CNN on an ArrayBatches PyDataset (Keras hands it to TensorFlow's
# generator op, which sets glibc's trim threshold) and prints the page faults of the
# epochs after the first: each run is its own process, so malloc starts fresh.
FIT = textwrap.dedent(
    """
    import json, resource, sys
    import keras, numpy as np
    from imgclf.native_memory import KeepFreedMemory
    from imgclf.training import ArrayBatches

    class Faults(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                self.start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (512, 32, 32, 3), dtype=np.uint8)
    batches = ArrayBatches(images, rng.integers(0, 3, 512), 64, 0, shuffle=True, num_classes=3)
    model = keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(3, activation="softmax"),
    ])
    model.compile("adam", "categorical_crossentropy", steps_per_execution=4)
    faults = Faults()
    callbacks = [faults, KeepFreedMemory()] if sys.argv[1] == "pinned" else [faults]
    model.fit(batches, epochs=4, callbacks=callbacks, verbose=0)
    print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults.start))
    """
)


def page_faults_of_training(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_"))}
    result = subprocess.run(
        [sys.executable, "-c", FIT, mode], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_pinned_thresholds_stop_the_page_fault_storm_of_generator_training():
    unpinned, pinned = page_faults_of_training("default"), page_faults_of_training("pinned")
    # Unpinned, every step's activations (a few MB) are given back and faulted in again.
    assert pinned * 4 < unpinned, (pinned, unpinned)


def test_a_users_own_malloc_settings_are_left_alone(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1048576")
    assert pin_malloc_thresholds() is False
