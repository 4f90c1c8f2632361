"""imgclf.training.malloc_tuning: a PyDataset fit keeps its freed memory for the next step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from imgclf.training.malloc_tuning import pin_malloc_thresholds

# Fits a small CNN on an ArrayBatches PyDataset (Keras hands it to TensorFlow's
# generator op, which sets glibc's trim threshold), then counts the page faults of
# what every training step does: allocate a few MB, touch them, free them. Frozen at
# 128 KiB, glibc serves each such block with a fresh mmap that faults in page by page;
# pinned, the block is reused from the heap. Each run is its own process, so malloc
# starts fresh. (Whether a given model's own steps storm depends on the CPU's kernels;
# the allocator's behaviour does not.)
FIT = textwrap.dedent(
    """
    import ctypes, json, resource, sys
    import keras, numpy as np
    from imgclf.training.malloc_tuning import KeepFreedMemory
    from imgclf.training.batches import ArrayBatches

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (256, 32, 32, 3), dtype=np.uint8)
    batches = ArrayBatches(images, rng.integers(0, 3, 256), 64, 0, shuffle=True, num_classes=3)
    model = keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(3, activation="softmax"),
    ])
    model.compile("adam", "categorical_crossentropy")
    callbacks = [KeepFreedMemory()] if sys.argv[1] == "pinned" else []
    model.fit(batches, epochs=2, callbacks=callbacks, verbose=0)

    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    block = 8 * 2**20  # about one activation tensor of a training step
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(50):
        pointer = libc.malloc(block)
        ctypes.memset(pointer, 1, block)
        libc.free(ctypes.c_void_p(pointer))
    print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start))
    """
)


def page_faults_of_training(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_"))}
    result = subprocess.run(
        [sys.executable, "-c", FIT, mode], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_pinned_thresholds_stop_the_page_fault_storm_of_generator_training():
    unpinned, pinned = page_faults_of_training("default"), page_faults_of_training("pinned")
    # Unpinned, each 8 MB block is given back to the kernel and faulted in again (2,048
    # pages every time); pinned, only the first is.
    assert unpinned > 40 * 2048 and pinned < 4 * 2048, (pinned, unpinned)


def test_a_users_own_malloc_settings_are_left_alone(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1048576")
    assert pin_malloc_thresholds() is False
