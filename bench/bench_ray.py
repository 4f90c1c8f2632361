"""Batch inference on Ray Data against the threaded CLI: throughput on the same files.

Both run `imgclf predict` as a user would, on the export in models/best (run `make
repro` first) and the same folder, and write the CSV; the tables must be identical.
Ray runs locally on 2 CPUs (`--num-cpus 2`): two actors, one onnxruntime thread each.

- photos: crops of the nature photographs at 48-400 px (JPEG, PNG, WebP), decoded
  and resized to the model's input: decoding dominates, as with camera photos;
- fashion: 28 px Fashion-MNIST PNGs (bench/fashion_mnist.py's usable images): the
  model and the per-file overhead dominate.

Each engine runs once on a small folder (SMALL files: start-up and the first batches)
and once on the whole one; the steady throughput is the difference in files over the
difference in seconds, what a long job sees. Wall throughput includes Ray's start.

    python -m bench.bench_ray [--photos 24000] [--fashion 50000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from bench import datasets
from bench.fashion_mnist import CLASS_NAMES, load_usable
from imgclf.bundle import Bundle
from support.markers import machine, markdown_table, replace_between

SMALL = 1000
ENGINES = ("threads", "ray")


def write_fashion(folder: Path, count: int) -> None:
    images, labels = load_usable()
    for number in range(count):
        target = folder / CLASS_NAMES[labels[number]]
        target.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[number], mode="L").save(target / f"{number:05d}.png")


def first_files(folder: Path, count: int, into: Path) -> Path:
    """A folder of hard links to the first `count` files of `folder` (sorted)."""
    for path in sorted(p for p in folder.rglob("*") if p.is_file())[:count]:
        target = into / path.relative_to(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.hardlink_to(path)
    return into


def timed(args: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "imgclf", "predict", *args], cwd=cwd, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"imgclf predict {' '.join(args)} failed:\n{result.stderr}")
    return seconds


def engines(folder: Path, out: Path, project: Path) -> dict:
    """Seconds of each engine on `folder` (its tables and shards in `out`), and whether their
    tables are the same."""
    out.mkdir(parents=True)
    seconds = {}
    for engine in ENGINES:
        extra = ["--engine", "ray", "--num-cpus", "2", "--out", str(out / "shards")]
        seconds[engine] = timed(
            [str(folder), "--csv", str(out / f"{engine}.csv"), *(extra if engine == "ray" else [])],
            project,
        )
    same = (out / "threads.csv").read_bytes() == (out / "ray.csv").read_bytes()
    return {"seconds": seconds, "identical_tables": same}


def measure(name: str, folder: Path, work: Path, project: Path) -> dict:
    files = sum(1 for p in folder.rglob("*") if p.is_file())
    small = first_files(folder, SMALL, work / f"{name}-small" / name)
    whole = engines(folder, work / f"{name}-whole", project)
    start = engines(small, work / f"{name}-small-run", project)
    result = {"files": files, "identical_tables": whole["identical_tables"]}
    for engine in ENGINES:
        steady = (files - SMALL) / (whole["seconds"][engine] - start["seconds"][engine])
        result[engine] = {
            "seconds": round(whole["seconds"][engine], 1),
            "wall_files_per_second": round(files / whole["seconds"][engine]),
            "steady_files_per_second": round(steady),
            "start_seconds": round(start["seconds"][engine] - SMALL / steady, 1),
        }
    result["ray_over_threads_steady"] = round(
        result["ray"]["steady_files_per_second"] / result["threads"]["steady_files_per_second"], 2
    )
    result["ray_over_threads_wall"] = round(
        result["ray"]["wall_files_per_second"] / result["threads"]["wall_files_per_second"], 2
    )
    return result


def table(results: dict) -> str:
    """Markdown: each engine's time and throughput per case, and their ratio."""
    header = [
        "files", "threads: s, files/s (steady)", "ray, 2 actors: s, files/s (steady)",
        "Ray / threads: steady, wall", "tables identical",
    ]  # fmt: skip
    rows = []
    for name, r in results.items():
        engines = [f"{r[e]['seconds']:.1f}, {r[e]['steady_files_per_second']:,}" for e in ENGINES]
        ratios = f"**{r['ray_over_threads_steady']:.2f}**, {r['ray_over_threads_wall']:.2f}"
        same = "yes" if r["identical_tables"] else "**no**"
        rows.append([f"{r['files']:,} {name}", *engines, ratios, same])
    return markdown_table(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=24_000, help="photo crops (12 classes)")
    parser.add_argument("--fashion", type=int, default=50_000)
    parser.add_argument(
        "--docs", action="store_true", help="write the table into docs/benchmarks.md"
    )
    args = parser.parse_args()
    project = Path(__file__).resolve().parents[1]
    if not Bundle(project / "models" / "best").is_export():
        sys.exit("models/best/ not found: run `make repro` first")
    work = Path(tempfile.mkdtemp(prefix="imgclf-ray-"))
    results = {}
    try:
        if args.photos:
            datasets.write_photos(work / "photos", per_class=args.photos // 12, seed=3)
            results["photos"] = measure("photos", work / "photos", work, project)
        if args.fashion:
            write_fashion(work / "fashion", args.fashion)
            results["fashion"] = measure("fashion", work / "fashion", work, project)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = project / "bench" / "out" / "ray.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(table(results))
    if args.docs:
        stamp = (
            f"Measured {time.strftime('%Y-%m-%d')} on {machine()} (`python -m bench.bench_ray`)."
        )
        replace_between(project / "docs" / "benchmarks.md", "ray", f"{table(results)}\n\n{stamp}")


if __name__ == "__main__":
    main()
