"""How each stage's time and peak memory grow with the data: 3,000 to 300,000 images.

Cases (flat class folders, written as a user's data/ would be):

- fashion-N: N Fashion-MNIST images at 28 px (the 50,000 usable training images,
  see bench/fashion_mnist.py; past 50,000, augmented copies of them: turned by up to
  15 degrees, scaled 0.85-1.15, shifted up to 3 px, mirrored half the time, their
  contrast changed), with faults planted before `prepare` as bench_audit plants
  them: 5% of the images moved to another class folder, 50 copies (resized or
  re-encoded as JPEG) and 20 colour photo crops (foreign images);
- photos-N: N crops of the nature photographs at 48-400 px (prepared at 128 px),
  nothing planted: the cost at a large image size.

Each case is a copy of this project (its tracked files) with `train.epochs: 1`, so
a training stage's figure is one epoch (plus its feature pass); every stage's
command from dvc.yaml runs in turn, measured alone: wall time and the peak
resident memory of its process tree (bench/measure.py). The audit's quality is
scored on what was planted (label errors flagged, copies paired, foreign images
listed). At 30,000 images the audit's near-duplicates and outliers are computed
again in this process on the large-data path (sampled fits, faiss) to compare with
the exact search on the same features.

    python -m bench.bench_scale                        # 3,000, 30,000, 300,000; photos 30,000
    python -m bench.bench_scale --sizes 3000 30000 --photos 0 --keep /tmp/scale
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from bench import datasets
from bench.bench_audit import _photo_crops, plant
from bench.fashion_mnist import CLASS_NAMES, USABLE, load_usable
from bench.measure import run_measured
from support.markers import machine, markdown_table, replace_between
from support.project import copy_tracked_files, project_env, set_params

STAGES = [
    ("prepare", ["python", "stages/prepare.py"]),
    ("audit", ["python", "stages/audit.py"]),
    ("train_cnn", ["python", "stages/train.py", "cnn"]),
    ("train_resnet", ["python", "stages/train.py", "resnet"]),
    ("train_efficientnet", ["python", "stages/train.py", "efficientnet"]),
    ("compare", ["python", "stages/compare.py"]),
    ("export", ["python", "stages/export.py"]),
]
COPIES, FOREIGN = 50, 20
OUT = Path("bench/out/scale.json")
DOCS = Path("docs")


def augmented(image: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Another view of a 28 px product shot: turned, scaled, shifted, maybe mirrored."""
    picture = Image.fromarray(image, mode="L")
    scale = rng.uniform(0.85, 1.15)
    side = max(8, round(28 * scale))
    picture = picture.resize((side, side), Image.Resampling.BILINEAR)
    picture = picture.rotate(rng.uniform(-15, 15), Image.Resampling.BILINEAR)
    canvas = Image.new("L", (28, 28))
    dx, dy = rng.integers(-3, 4, 2)
    canvas.paste(picture, ((28 - side) // 2 + int(dx), (28 - side) // 2 + int(dy)))
    if rng.random() < 0.5:
        canvas = ImageOps.mirror(canvas)
    pixels = np.asarray(canvas, np.float32)
    gamma = rng.uniform(0.7, 1.4)
    return Image.fromarray(np.uint8(255 * (pixels / 255) ** gamma), mode="L")


def write_fashion_scale(data: Path, count: int, seed: int = 0) -> dict:
    """`count` images in data/<class>/, then the planted faults; returns what was planted."""
    images, labels = load_usable()
    rng = np.random.default_rng(seed)
    for name in CLASS_NAMES:
        (data / name).mkdir(parents=True, exist_ok=True)
    written = []
    for number in range(count):
        source = number % USABLE
        path = data / CLASS_NAMES[labels[source]] / f"{number:06d}.png"
        if number < USABLE:
            Image.fromarray(images[source], mode="L").save(path)
        else:
            augmented(images[source], rng).save(path)
        written.append(path)
    pool = sorted(written)
    chosen = rng.choice(len(pool), COPIES, replace=False)
    copy_from = [pool[i] for i in sorted(chosen)]
    in_pool = set(copy_from)
    foreign = [crop for crop, _ in zip(_photo_crops(21), range(FOREIGN), strict=False)]
    return plant(data, [p for p in pool if p not in in_pool], copy_from, None, foreign, seed + 1)


def planted_files(data: Path) -> dict:
    """What bench_audit.plant planted, by the names it gives: `flip_*` (moved to another
    class), `copy_<original>` (beside its original), `foreign_*`."""
    rel = lambda p: str(p.relative_to(data))  # noqa: E731
    files = sorted(p for p in data.rglob("*") if p.is_file())
    return {
        "flipped": [rel(p) for p in files if p.name.startswith("flip_")],
        "copies": [
            (rel(p.parent / (p.stem.removeprefix("copy_") + ".png")), rel(p))
            for p in files if p.name.startswith("copy_")
        ],
        "foreign": [rel(p) for p in files if p.name.startswith("foreign_")],
    }  # fmt: skip


def score(project: Path, planted: dict) -> dict:
    """How much of what was planted the audit's CSVs report."""

    def table(name: str) -> list[dict]:
        with open(project / "audit" / name, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))

    flagged = {row["file"] for row in table("label_issues.csv")}
    pairs = {frozenset((r["file"], r["duplicate_file"])) for r in table("near_duplicates.csv")}
    outliers = {row["file"] for row in table("outliers.csv")}
    flips = planted["flipped"]
    return {
        "label_errors_recall": sum(f in flagged for f in flips) / max(1, len(flips)),
        "label_errors_precision": sum(f in flagged for f in flips) / max(1, len(flagged)),
        "copies_recall": sum(frozenset(p) in pairs for p in planted["copies"])
        / max(1, len(planted["copies"])),
        "foreign_recall": sum(f in outliers for f in planted["foreign"])
        / max(1, len(planted["foreign"])),
        "flagged": len(flagged),
        "pairs": len(pairs),
        "outliers": len(outliers),
    }


def search_check(project: Path) -> dict:
    """The audit's findings on the large-data path (forced) against the exact ones, on the
    same cached features: the share of exact findings it also reports, and its time."""
    import os

    from imgclf import params as params_file
    from imgclf.audit import findings, neighbours
    from imgclf.audit.embeddings import embed, extractor
    from imgclf.data.prepared import read_split
    from imgclf.models.efficientnet import FAMILY
    from imgclf.models.input_size import input_size
    from imgclf.stage_files import PreparedInfo

    previous, exact_limit = Path.cwd(), neighbours.EXACT_ROWS
    os.chdir(project)
    try:
        params = params_file.load()
        info = PreparedInfo.load()
        splits = [read_split(s).images for s in ("train", "val", "test")]
        labels = np.concatenate([read_split(s).labels for s in ("train", "val", "test")])
        side = input_size(FAMILY, params.audit.image_size, info.image_size)
        embedded = embed(extractor(params.audit.variant, info.image_size, side), splits)
        found, seconds = {}, {}
        for path, exact_rows in (("exact", len(labels)), ("approximate", 0)):
            neighbours.EXACT_ROWS = exact_rows
            started = time.perf_counter()
            space = findings.feature_space(embedded.features)
            pairs = findings.near_duplicates(
                space, findings.pixel_space(embedded.pixels), params.audit.duplicate_distance
            )
            scores = findings.outlier_scores(findings.outlier_space(embedded.features), labels)
            listed = findings.listed_outliers(
                scores, findings.outlier_z(scores), params.audit.outlier_z
            )
            seconds[path] = time.perf_counter() - started
            found[path] = ({(p.first, p.second) for p in pairs}, set(listed.tolist()))
    finally:
        os.chdir(previous)
        neighbours.EXACT_ROWS = exact_limit
    (exact_pairs, exact_outliers), (pairs, outliers) = found["exact"], found["approximate"]
    return {
        "exact_seconds": seconds["exact"],
        "approximate_seconds": seconds["approximate"],
        "pairs_exact": len(exact_pairs),
        "pairs_also_found": len(exact_pairs & pairs) / max(1, len(exact_pairs)),
        "outliers_exact": len(exact_outliers),
        "outliers_also_listed": len(exact_outliers & outliers) / max(1, len(exact_outliers)),
    }


def label_check(project: Path) -> dict:
    """Likely label errors on the same features with projections fitted on every row (as
    up to 50,000 images) and on the large-data path's sample: recall of the planted
    label errors each way (label errors are not a neighbour search: the exact fit is
    affordable at 300,000 images, in memory a stage would not hold)."""
    import os

    from imgclf import params as params_file
    from imgclf.audit import findings, neighbours
    from imgclf.audit.embeddings import embed, extractor
    from imgclf.data.prepared import read_split
    from imgclf.models.efficientnet import FAMILY
    from imgclf.models.input_size import input_size
    from imgclf.stage_files import PreparedInfo

    planted = set(planted_files(project / "data")["flipped"])
    previous, exact_limit = Path.cwd(), neighbours.EXACT_ROWS
    os.chdir(project)
    try:
        params = params_file.load()
        info = PreparedInfo.load()
        judged = [read_split(s) for s in ("train", "val")]
        files = [f for split in judged for f in split.files]
        labels = np.concatenate([split.labels for split in judged]).astype(np.int64)
        side = input_size(FAMILY, params.audit.image_size, info.image_size)
        model = extractor(params.audit.variant, info.image_size, side)
        features = embed(model, [split.images for split in judged]).features
        recall = {}
        for path, exact_rows in (("exact", len(labels)), ("sampled", 0)):
            neighbours.EXACT_ROWS = exact_rows
            found = findings.label_issues(
                features.astype(np.float32), labels, len(info.class_names), params.audit.folds,
                params.prepare.seed,
            )  # fmt: skip
            flagged = {files[i] for i in found.issues}
            recall[path] = len(flagged & planted) / max(1, len(planted))
    finally:
        os.chdir(previous)
        neighbours.EXACT_ROWS = exact_limit
    return {
        "label_errors_recall_exact_fit": recall["exact"],
        "label_errors_recall": recall["sampled"],
    }


def run_case(root: Path, name: str, write, earlier: dict | None = None) -> dict:
    """Write the case's data and run every stage; with `earlier` (this case's results
    in a kept project), copy this checkout's code in again and run only the stages
    `earlier` lacks."""
    project = root / name
    if earlier is None:
        project.mkdir(parents=True)
        copy_tracked_files(project)
        started = time.perf_counter()
        write(project / "data")
        written = time.perf_counter() - started
    else:
        copy_tracked_files(project)  # the code as it is now
        written = earlier["write_seconds"]
    planted = planted_files(project / "data")
    set_params(project, {"train": {"epochs": 1}})
    env = project_env(project)
    stages = dict(earlier["stages"]) if earlier else {}
    for stage, command in STAGES:
        if stage in stages:
            continue
        print(f"\n== {name}: {stage}", flush=True)
        measured = run_measured(command, project, env)
        stages[stage] = {
            "seconds": round(measured.seconds, 1),
            "peak_mib": round(measured.peak_tree_bytes / 2**20),
            "others_share": round(measured.others_share, 3),
        }
        print(f"== {name}: {stage} {stages[stage]}", flush=True)
    result = {"write_seconds": written and round(written, 1), "stages": stages}
    if any(planted.values()):
        result["audit_quality"] = score(project, planted)
    prepared = json.loads((project / "metrics" / "prepare.json").read_text())
    result["images"] = prepared["used"]
    from imgclf.stage_files import PreparedInfo

    result["image_size"] = PreparedInfo.load(project / "prepared").image_size
    return result


def growth_table(results: dict) -> str:
    """Markdown: each stage's seconds and peak MiB per case, its growth from 30,000 to
    300,000 images, and a million images projected from that growth."""
    names = list(results)
    small, large = "fashion-30000", "fashion-300000"
    grows = small in results and large in results
    header = ["stage", *(f"{n}: s, MiB" for n in names)]
    if grows:
        header += ["time 30k to 300k", "1M projected: s, MiB"]
    rows = []
    for stage, _ in STAGES:
        measured = [results[n]["stages"][stage] for n in names]
        cells = [stage, *(f"{m['seconds']:.0f}, {m['peak_mib']:,}" for m in measured)]
        if grows:
            at_30k, at_300k = results[small]["stages"][stage], results[large]["stages"][stage]
            seconds, mib = project_million(at_30k, at_300k)
            cells += [
                f"{at_300k['seconds'] / at_30k['seconds']:.1f}x",
                f"{seconds:.0f}, {mib:,.0f}",
            ]
        rows.append(cells)
    return markdown_table(header, rows)


def project_million(at_30k: dict, at_300k: dict) -> tuple[float, float]:
    """A stage's seconds and peak MiB at 1,000,000 images: its time on the power law through
    the two measurements (exponent log10 of the growth), its memory on the straight line."""
    exponent = np.log10(max(at_300k["seconds"], 1e-3) / max(at_30k["seconds"], 1e-3))
    seconds = at_300k["seconds"] * (1_000_000 / 300_000) ** max(exponent, 1.0)
    per_image = (at_300k["peak_mib"] - at_30k["peak_mib"]) / 270_000
    return seconds, at_300k["peak_mib"] + max(per_image, 0.0) * 700_000


def quality_table(results: dict) -> str:
    """Markdown: what the audit reported of the planted faults, per case."""
    header = [
        "case", "label errors flagged (recall, precision)", "copies paired", "foreign listed",
        "flagged, pairs, outliers",
    ]  # fmt: skip
    rows = []
    for name, result in results.items():
        if "audit_quality" in result:
            q = result["audit_quality"]
            rows.append([
                name, f"{q['label_errors_recall']:.0%}, {q['label_errors_precision']:.0%}",
                f"{q['copies_recall']:.0%}", f"{q['foreign_recall']:.0%}",
                f"{q['flagged']:,}, {q['pairs']:,}, {q['outliers']:,}",
            ])  # fmt: skip
    return markdown_table(header, rows)


def write_docs(results: dict) -> None:
    """The tables into docs/scaling.md and docs/audit.md, between their markers."""
    stamp = f"Measured {time.strftime('%Y-%m-%d')} on {machine()} (`python -m bench.bench_scale`)."
    search = ""
    for name, result in results.items():
        if "search_check" in result:
            check = result["search_check"]
            search += (
                f" Search check at {name}: the large-data path found "
                f"{check['pairs_also_found']:.0%} of the exact search's near-duplicate pairs "
                f"and listed {check['outliers_also_listed']:.0%} of its outliers, in "
                f"{check['approximate_seconds']:.0f} s against {check['exact_seconds']:.0f} s."
            )
        if "label_check" in result:
            check = result["label_check"]
            search += (
                f" Label check at {name}: projections fitted on a sample flag "
                f"{check['label_errors_recall']:.0%} of the planted label errors, fitted on "
                f"every image {check['label_errors_recall_exact_fit']:.0%}."
            )
    replace_between(
        DOCS / "scaling.md", "scale",
        f"{growth_table(results)}\n\nThe audit's findings of the planted faults:\n\n"
        f"{quality_table(results)}\n\n{stamp}{search}",
    )  # fmt: skip
    rows = []
    for name, result in results.items():
        if name.startswith("fashion-"):
            audit = result["stages"]["audit"]
            path = "exact" if result["images"] <= 50_000 else "faiss, sampled fits"
            rows.append([f"{result['images']:,}", f"{audit['seconds']:.0f}",
                         f"{audit['peak_mib']:,}", path])  # fmt: skip
    cost = markdown_table(["images", "seconds", "peak MiB", "search"], rows)
    replace_between(DOCS / "audit.md", "audit-cost", f"{cost}\n\n{stamp}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[3000, 30_000, 300_000])
    parser.add_argument("--photos", type=int, default=30_000, help="0: no photos case")
    parser.add_argument("--keep", type=Path, help="build the projects here and keep them")
    parser.add_argument("--no-search-check", action="store_true")
    parser.add_argument(
        "--label-check", action="store_true",
        help="above 50,000 images, also judge the labels with an exact fit (label_check)",
    )  # fmt: skip
    parser.add_argument(
        "--docs", action="store_true",
        help="write the tables into docs/scaling.md and docs/audit.md (every case measured)",
    )  # fmt: skip
    parser.add_argument(
        "--rerun", nargs="+", metavar="STAGE", default=[],
        help="with --keep: run these stages again in the kept projects, with this "
        f"checkout's code (a kept project's other figures come from {OUT})",
    )  # fmt: skip
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="imgclf-scale-"))
    # A project kept by an earlier run is resumed: its measured stages are kept.
    earlier = json.loads(OUT.read_text()) if args.keep and OUT.is_file() else {}
    results = {name: result for name, result in earlier.items() if (root / name).is_dir()}
    cases = [f"fashion-{size}" for size in args.sizes] + [f"photos-{args.photos}"]
    for name, result in results.items():
        if name not in cases:
            continue
        if "audit" in args.rerun:
            result.pop("search_check", None)
        result["stages"] = {
            stage: figures for stage, figures in result["stages"].items()
            if stage not in args.rerun
        }  # fmt: skip
    try:
        for size in args.sizes:
            name = f"fashion-{size}"
            results[name] = run_case(
                root, name, lambda data, size=size: write_fashion_scale(data, size),
                results.get(name),
            )  # fmt: skip
            # Exact search at 300,000 images is what the large-data path is for: too slow.
            needed = "search_check" not in results[name] and not args.no_search_check
            if 30_000 <= size <= 60_000 and needed:
                results[name]["search_check"] = search_check(root / name)
            if size > 50_000 and args.label_check:
                results[name]["label_check"] = label_check(root / name)
            print(json.dumps(results[name], indent=2), flush=True)
        if args.photos:
            per_class = args.photos // len(datasets.PHOTO_CLASSES)
            results[f"photos-{args.photos}"] = run_case(
                root, f"photos-{args.photos}",
                lambda data: datasets.write_photos(data, per_class=per_class, seed=5) and {},
                results.get(f"photos-{args.photos}"),
            )  # fmt: skip
    finally:
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(results, indent=2) + "\n")  # what was measured, even so far
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(results, indent=2))
    print("\n" + growth_table(results))
    for name, result in results.items():
        if "audit_quality" in result:
            print(f"{name} audit quality: {result['audit_quality']}")
        for check in ("search_check", "label_check"):
            if check in result:
                print(f"{name} {check}: {result[check]}")
    if args.docs:
        write_docs(results)
        print("wrote the tables into docs/scaling.md and docs/audit.md")


if __name__ == "__main__":
    main()
