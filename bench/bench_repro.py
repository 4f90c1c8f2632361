"""Time the whole default pipeline on a fresh clone: `dvc pull data.dvc && dvc repro`.

    python -m bench.bench_repro

Clones this repository's committed HEAD into a scratch folder (bench/out/clone),
pulls the sample data from the in-repo remote and runs every stage, reporting the
wall time and peak memory (the summed resident memory of DVC and its stage
processes, sampled every 0.5 s) and each stage's own timings, runs the audit stage
once more alone for its whole cost, then prints `dvc metrics show` for that run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench.measure import run_measured

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    clone = ROOT / "bench" / "out" / "clone"
    shutil.rmtree(clone, ignore_errors=True)
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env["PYTHONPATH"] = str(clone)  # the clone's own package, not this checkout's
    subprocess.run(["dvc", "pull", "--quiet", "data.dvc"], cwd=clone, env=env, check=True)
    run = run_measured(["dvc", "repro"], clone, env)
    print(f"dvc repro (all stages, fresh clone, {len(os.sched_getaffinity(0))} cores)")
    print(f"  wall time    {run.seconds:7.1f} s ({run.seconds / 60:.1f} min; target <= 5 min)")
    print(f"  peak memory  {run.peak_tree_bytes / 2**20:7.0f} MiB (target <= 4096 MiB)")
    print(f"  largest process {run.peak_process_bytes / 2**20:4.0f} MiB")
    for timings in sorted((clone / "timings").glob("*.json")):
        seconds = {k: v for k, v in json.loads(timings.read_text()).items() if "seconds" in k}
        print(f"  {timings.stem:18s} " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()))
    # The data audit's whole cost, process start included: the stage once more, alone.
    # (A clone has the committed audit/ and skips the stage when nothing it reads changed.)
    audit_ran = (clone / "timings" / "audit.json").is_file()
    audit = run_measured(["dvc", "repro", "--force", "--single-item", "audit"], clone, env)
    share = audit.seconds / (run.seconds - (audit.seconds if audit_ran else 0))
    print(f"  the audit stage alone: {audit.seconds:.1f} s, adding {share:.0%} to the rest of "
          f"the run (target <= 20%)")  # fmt: skip
    subprocess.run(["dvc", "metrics", "show"], cwd=clone, env=env, check=True)


if __name__ == "__main__":
    main()
