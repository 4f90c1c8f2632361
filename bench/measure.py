"""Run a command and measure its wall time, the peak memory of its process tree, and
how much of the machine others used meanwhile.

A shared machine's other work (another test run, a neighbouring virtual machine)
stretches a run's wall time: `others_share` says how much of the CPU was busy with
it, so a ratio measured while it was high is known to be unreliable.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

# The label of a process of the tree (its command line) whose lifetime is timed, or None.
Labeller = Callable[[list[str]], str | None]


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_tree_bytes: int  # the summed resident memory of the command and all its children
    peak_process_bytes: int  # the largest single process
    # Share of all cores' time, during the run, that went to other processes or was
    # stolen by the hypervisor (0: the command had the machine to itself).
    others_share: float
    # Wall seconds of each labelled process (see run_measured), from the first sample
    # that saw it to the last: to within SAMPLE_SECONDS.
    labelled_seconds: dict[str, float] = field(default_factory=dict)

    def then(self, later: Measured) -> Measured:
        """This run and a `later` one as one: times added, the larger peaks, shares weighed."""
        seconds = self.seconds + later.seconds
        return Measured(
            seconds,
            max(self.peak_tree_bytes, later.peak_tree_bytes),
            max(self.peak_process_bytes, later.peak_process_bytes),
            (self.others_share * self.seconds + later.others_share * later.seconds) / seconds,
            {**self.labelled_seconds, **later.labelled_seconds},
        )


# Sampling is not free: walking the process tree every 50 ms took about a tenth of a
# core, and on 2 cores that pushed TensorFlow's two-thread kernels of the project's
# CNN into epochs twice as long. Memory grows over seconds, not milliseconds.
SAMPLE_SECONDS = 0.5


def _children_cpu_seconds() -> float:
    """CPU time of this process's ended (and waited-for) descendants."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _machine_busy_seconds() -> float:
    """CPU time all cores spent on anything but idling, stolen time included."""
    times = psutil.cpu_times()
    return (
        sum(times)
        - times.idle
        - getattr(times, "iowait", 0.0)
        - getattr(times, "guest", 0.0)
        - getattr(times, "guest_nice", 0.0)
    )  # guest time is counted in user time already


def stage_script(cmdline: list[str]) -> str | None:
    """A Labeller: the pipeline stage a process runs (`python stages/<stage>.py`, or
    `python stages/train.py <family>` for train_<family>), if any."""
    for index, arg in enumerate(cmdline):
        script = Path(arg)
        if script.suffix == ".py" and script.parent.name == "stages":
            if script.stem == "train" and index + 1 < len(cmdline):
                return f"train_{cmdline[index + 1]}"
            return script.stem
    return None


def run_measured(
    command: list[str], cwd: Path, env: dict | None = None, label: Labeller | None = None
) -> Measured:
    """Run `command`, sampling memory every SAMPLE_SECONDS; exit if it fails.

    With `label`, also times each process of the tree that `label` names (for example
    each stage `dvc repro` starts: its whole life, interpreter start and imports too).
    """
    busy, tree_cpu = _machine_busy_seconds(), _children_cpu_seconds()
    started = time.perf_counter()
    process = psutil.Popen(command, cwd=cwd, env=env)
    peak_tree = peak_process = 0
    seen: dict[str, list[float]] = {}  # label: [first, last] sample time
    while process.poll() is None:
        try:
            tree = [process, *process.children(recursive=True)]
            sizes = [p.memory_info().rss for p in tree]
            labels = [label(p.cmdline()) for p in tree[1:]] if label else []
        except psutil.Error:
            continue  # a child ended between listing and reading it
        now = time.perf_counter()
        for name in filter(None, labels):
            seen.setdefault(name, [now, now])[1] = now
        peak_tree, peak_process = max(peak_tree, sum(sizes)), max(peak_process, max(sizes))
        time.sleep(SAMPLE_SECONDS)
    if process.returncode != 0:
        sys.exit(f"{' '.join(command)} failed with exit status {process.returncode}")
    seconds = time.perf_counter() - started
    others = (_machine_busy_seconds() - busy) - (_children_cpu_seconds() - tree_cpu)
    share = min(1.0, max(0.0, others / (seconds * (os.cpu_count() or 1))))
    lifetimes = {name: last - first for name, (first, last) in seen.items()}
    return Measured(seconds, peak_tree, peak_process, share, lifetimes)
