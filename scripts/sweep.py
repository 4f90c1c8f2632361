"""A parameter sweep through DVC's experiment queue: queue, run, compare, apply the best.

    make sweep SET="cnn.learning_rate=0.001,0.003,0.01 cnn.dropout=0.2,0.4" JOBS=2
    python scripts/sweep.py -S cnn.learning_rate=0.001,0.003,0.01 -S cnn.dropout=0.2,0.4 -j 2
    python scripts/sweep.py -S cnn.learning_rate=0.001,0.002,0.004 -S cnn.dropout=0.1,0.3 --random 3

Every point is a DVC experiment (`dvc exp run --queue -S ...`; DVC's own grid syntax,
`a,b,c` or `range(start, stop, step)`, expands a grid); `dvc queue start -j JOBS` runs
them in parallel workers, each in its own temporary copy of the project, re-running
only the stages whose params changed. When they are done the script prints each one's
params and compare metric (`dvc exp show` has them all, `dvc plots diff` their curves),
and applies the best by the compare metric of the model compare selected
(metrics/compare.json), the same number compare itself ranks by: validation, never
test. `--no-apply` leaves the workspace alone; `--random N` queues N points drawn
(seeded) from the grid instead of all of it.

DVC's parallel workers can lose an experiment when several start at once (it fails
without a log: treeverse/dvc#10673); the script queues the points that failed again and
runs them with one worker, so every point of the sweep ends with its metrics and logs.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import re
import subprocess
import sys
import time

LOWER_IS_BETTER = {"val_loss"}
POLL_SECONDS = 2


def dvc(*args: str, check: bool = True) -> str:
    """A dvc command's standard output (its errors shown and raised when `check`)."""
    done = subprocess.run(["dvc", *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise SystemExit(f"dvc {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def grid(settings: list[str]) -> list[list[str]]:
    """Every combination of `-S key=a,b,c` values, as lists of `key=value`."""
    axes = []
    for setting in settings:
        key, _, values = setting.partition("=")
        if not key or not values:
            raise SystemExit(f"-S {setting!r}: give KEY=VALUE[,VALUE...], e.g. cnn.dropout=0.2,0.4")
        axes.append([f"{key}={value}" for value in values.split(",")])
    return [list(point) for point in itertools.product(*axes)]


def queue(points: list[list[str]]) -> None:
    for point in points:
        dvc("exp", "run", "--queue", *[arg for setting in point for arg in ("-S", setting)])


def queue_status() -> list[dict]:
    """`dvc queue status` as rows: task, name, status (Queued, Running, Success, Failed)."""
    rows = []
    for line in dvc("queue", "status").splitlines():
        parts = line.split()
        if parts and re.fullmatch(r"[0-9a-f]{7}", parts[0]):
            rows.append({"task": parts[0], "name": parts[1] if len(parts) > 4 else "",
                         "status": parts[-1]})  # fmt: skip
    return rows


def run_queue(jobs: int) -> list[dict]:
    """Start `jobs` workers and wait until nothing is queued or running."""
    dvc("queue", "start", "-j", str(jobs))
    while True:
        rows = queue_status()
        if not any(row["status"] in ("Queued", "Running") for row in rows):
            return rows
        time.sleep(POLL_SECONDS)


def experiments() -> list[dict]:
    """Every experiment of the workspace's commit: name, params and metrics (`dvc exp show`)."""
    shown = json.loads(dvc("exp", "show", "--json"))
    found = []
    for commit in shown:
        for experiment in commit.get("experiments") or []:
            for rev in experiment.get("revs", []):
                data = rev.get("data") or {}
                if rev.get("name") and data.get("metrics"):
                    found.append({
                        "name": rev["name"],
                        "params": _flatten(data.get("params", {})),
                        "metrics": _flatten(data.get("metrics", {})),
                    })  # fmt: skip
    return found


def _flatten(files: dict) -> dict:
    """{"params.yaml": {"data": {"cnn": {"dropout": 0.2}}}} as {"cnn.dropout": 0.2}."""
    flat = {}

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else key, inner)
        else:
            flat[prefix] = value

    for file, content in files.items():
        walk(file, (content or {}).get("data", {}))
    return flat


def matches(experiment: dict, point: list[str]) -> bool:
    """Whether `experiment` ran with every `key=value` of `point` (1e-3 is 0.001)."""
    for setting in point:
        key, _, value = setting.partition("=")
        have = experiment["params"].get(f"params.yaml.{key}")
        if str(have) != value:
            try:
                if float(have) != float(value):
                    return False
            except (TypeError, ValueError):
                return False
    return True


def score(experiment: dict) -> float | None:
    """The compare metric of the model compare selected, from metrics/compare.json."""
    metrics = experiment["metrics"]
    metric = metrics.get("metrics/compare.json.metric")
    selected = metrics.get("metrics/compare.json.selected")
    return metrics.get(f"metrics/compare.json.{selected}_{metric}") if metric else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-S", "--set", action="append", required=True, metavar="KEY=A,B,...")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="parallel queue workers")
    parser.add_argument("--random", type=int, metavar="N", help="N points drawn from the grid")
    parser.add_argument("--seed", type=int, default=0, help="the draw of --random")
    parser.add_argument("--no-apply", action="store_true", help="leave the workspace alone")
    args = parser.parse_args()

    points = grid(args.set)
    if args.random:
        points = random.Random(args.seed).sample(points, min(args.random, len(points)))
    before = {experiment["name"] for experiment in experiments()}
    print(f"sweep: {len(points)} experiments, {args.jobs} workers", flush=True)
    queue(points)
    rows = run_queue(args.jobs)
    failed = [row for row in rows if row["status"] == "Failed"]
    if failed:
        # Queued again as they were, run one at a time (see the docstring).
        finished = [e for e in experiments() if e["name"] not in before]
        again = [p for p in points if not any(matches(e, p) for e in finished)]
        print(f"sweep: {len(failed)} failed in parallel; running {len(again)} again with one "
              "worker", flush=True)  # fmt: skip
        dvc("queue", "remove", "--failed", check=False)
        queue(again)
        run_queue(1)
    swept = [e for e in experiments() if e["name"] not in before]
    lost = len(points) - len(swept)
    if not swept:
        print("sweep: no experiment finished: see `dvc queue logs`", file=sys.stderr)
        return 1
    metric = swept[0]["metrics"].get("metrics/compare.json.metric", "val_accuracy")
    keys = sorted({setting.split("=")[0] for point in points for setting in point})
    print(f"\n{'experiment':24s} " + " ".join(f"{k:>22s}" for k in keys) + f" {metric:>14s}")
    for experiment in swept:
        values = [experiment["params"].get(f"params.yaml.{key}") for key in keys]
        print(f"{experiment['name']:24s} " + " ".join(f"{v!s:>22s}" for v in values)
              + f" {score(experiment)!s:>14s}")  # fmt: skip
    ranked = [e for e in swept if score(e) is not None]
    best = (min if metric in LOWER_IS_BETTER else max)(ranked, key=score)
    print(f"\nbest by {metric}: {best['name']} ({score(best)})")
    if lost:
        print(f"sweep: {lost} experiment(s) did not finish: see `dvc queue logs`", file=sys.stderr)
    if not args.no_apply:
        dvc("exp", "apply", best["name"])
        print(f"applied {best['name']}: `git diff params.yaml` shows it, `dvc status` is clean, "
              "commit it to keep it")  # fmt: skip
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
