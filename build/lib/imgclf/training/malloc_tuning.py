"""Keep glibc from handing training's freed memory back to the kernel at every step.

Keras feeds a `PyDataset` (batches.ArrayBatches) to TensorFlow through
`tf.data.Dataset.from_generator`, and TensorFlow 2.21's generator op calls
`mallopt(M_TRIM_THRESHOLD, 128 KiB)` the first time it runs ("Memory patch applied" in
its log). Setting any threshold switches off glibc's dynamic tuning of both, so they
stay at their 128 KiB start values: every step's activations are returned to the
kernel when freed and faulted back in on the next step, which costs page faults and
system time on every step (docs/benchmarks.md has the figures). Pinning both
thresholds where glibc's own tuning would have taken them (its 32 MiB cap, and twice
that for trimming) after TensorFlow's call keeps the memory for the next step.
Numerics are untouched.
"""

from __future__ import annotations

import ctypes
import os

import keras

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h>
MMAP_THRESHOLD = 32 * 2**20
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD
# A user who tunes malloc through the environment keeps their settings.
_USER_SETTINGS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")


def pin_malloc_thresholds() -> bool:
    """Pin glibc's mmap and trim thresholds; False where there is no glibc or the user set them."""
    if any(name in os.environ for name in _USER_SETTINGS):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to undo
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )


class KeepFreedMemory(keras.callbacks.Callback):
    """Pins the thresholds after each epoch's first call into TensorFlow, once it set its own."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.pending = True

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        # `batch` is the last step of the call (steps_per_execution), so not always 0.
        if self.pending:
            pin_malloc_thresholds()
            self.pending = False
