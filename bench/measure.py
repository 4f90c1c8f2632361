"""Run a command and measure its wall time and the peak memory of its whole process tree."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_tree_bytes: int  # the summed resident memory of the command and all its children
    peak_process_bytes: int  # the largest single process


# Sampling is not free: walking the process tree every 50 ms took about a tenth of a
# core, and on 2 cores that pushed TensorFlow's two-thread kernels of the project's
# CNN into epochs twice as long. Memory grows over seconds, not milliseconds.
SAMPLE_SECONDS = 0.5


def run_measured(command: list[str], cwd: Path, env: dict | None = None) -> Measured:
    """Run `command`, sampling memory every SAMPLE_SECONDS; exit if it fails."""
    started = time.perf_counter()
    process = psutil.Popen(command, cwd=cwd, env=env)
    peak_tree = peak_process = 0
    while process.poll() is None:
        try:
            sizes = [p.memory_info().rss for p in [process, *process.children(recursive=True)]]
        except psutil.Error:
            continue  # a child ended between listing and reading it
        peak_tree, peak_process = max(peak_tree, sum(sizes)), max(peak_process, max(sizes))
        time.sleep(SAMPLE_SECONDS)
    if process.returncode != 0:
        sys.exit(f"{' '.join(command)} failed with exit status {process.returncode}")
    return Measured(time.perf_counter() - started, peak_tree, peak_process)
