"""The data audit against planted faults: precision and recall of each finding, and its cost.

Two cases, each a clean dataset with faults planted in it before `prepare`:

- fashion: the Fashion-MNIST case of bench_quality (6,000 train, 1,000 val and 10,000
  test images in split folders); 5% of the training images moved to another class
  folder, 100 test images copied into train (resized to 36 px, or re-encoded as JPEG),
  and 20 nature-photo crops dropped into training class folders;
- photos: the 1,800 nature-photo crops (flat layout); 5% moved to another class,
  60 copies (resized to 70%, or re-encoded as JPEG), and 12 Fashion-MNIST images
  (96 px) dropped into class folders;
- fashion-grey and sample-grey: outliers only, the Fashion-MNIST case and the
  project's 3,000-image sample with 10 greyscale 28 px crops of the nature photos
  dropped into class folders (foreign at a glance, yet grey product-sized images).

It runs `dvc repro audit` (prepare, then the audit) in a temporary git copy of this
checkout and scores audit/*.csv against what was planted:

- label errors: recall among the 2x-planted-count likeliest (cleanlab's ranking, over
  the planted images that prepare kept in train/val), and precision/recall of what
  cleanlab flags;
- near-duplicates: precision and recall of the reported pairs against the planted
  pairs (pairs found in the clean data before planting count as neither);
- outliers: where the foreign images rank, and how many the report lists.

    python -m bench.bench_audit [--keep DIR]
    python -m bench.bench_audit --scale     # cost only: 25,008 photo crops at 128 px,
                                            # the audit and train_efficientnet
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from bench import datasets
from bench.fashion_mnist import load_usable
from bench.measure import run_measured
from support.project import (
    commit_copy,
    copy_tracked_files,
    model_metrics,
    project_env,
    read_timings,
)

FLIP_SHARE = 0.05


def _copy(image: Image.Image, number: int) -> tuple[bytes, str]:
    """A resized (PNG) or re-encoded (JPEG) copy of `image`, alternately."""
    out = io.BytesIO()
    if number % 2 == 0:
        w, h = image.size
        scale = 36 / max(w, h) if max(w, h) < 64 else 0.7
        image.resize(
            (max(8, round(w * scale)), max(8, round(h * scale))), Image.Resampling.LANCZOS
        ).save(out, "PNG")
        return out.getvalue(), ".png"
    image.convert("RGB").save(out, "JPEG", quality=75)
    return out.getvalue(), ".jpg"


def plant(
    data: Path,
    pool: list[Path],
    copy_from: list[Path],
    copy_into: Path | None,
    foreign: list[Image.Image],
    seed: int,
) -> dict:
    """Flip, copy and add foreign images; returns what was planted (paths under data/)."""
    rng = np.random.default_rng(seed)
    rel = lambda p: str(p.relative_to(data))  # noqa: E731
    classes = sorted({p.parent.name for p in pool})
    flipped = []
    for index in rng.choice(len(pool), round(FLIP_SHARE * len(pool)), replace=False):
        source = pool[index]
        others = [c for c in classes if c != source.parent.name]
        target = source.parent.parent / others[rng.integers(len(others))] / f"flip_{source.name}"
        shutil.move(source, target)
        flipped.append(rel(target))
    copies = []
    for number, original in enumerate(copy_from):
        with Image.open(original) as opened:  # as displayed: EXIF orientation applied
            content, suffix = _copy(ImageOps.exif_transpose(opened), number)
        folder = (copy_into / original.parent.name) if copy_into else original.parent
        target = folder / f"copy_{original.stem}{suffix}"
        target.write_bytes(content)
        copies.append((rel(original), rel(target)))
    foreigners = []
    for number, image in enumerate(foreign):
        folder = (copy_into or data) / classes[number % len(classes)]
        target = folder / f"foreign_{number:03d}.png"
        image.save(target)
        foreigners.append(rel(target))
    return {"flipped": flipped, "copies": copies, "foreign": foreigners}


def fashion_case(data: Path) -> dict:
    datasets.write_fashion(data)
    pool = sorted((data / "train").rglob("*.png"))
    rng = np.random.default_rng(7)
    tests = sorted((data / "test").rglob("*.png"))
    copy_from = [tests[i] for i in sorted(rng.choice(len(tests), 100, replace=False))]
    crops = [crop for crop, _ in zip(_photo_crops(7), range(20), strict=False)]
    return plant(data, pool, copy_from, data / "train", crops, seed=1)


def photos_case(data: Path) -> dict:
    datasets.write_photos(data)
    pool = sorted(p for p in data.rglob("*.*") if p.is_file())
    rng = np.random.default_rng(8)
    copy_from = [pool[i] for i in sorted(rng.choice(len(pool), 60, replace=False))]
    images, _ = load_usable()
    fashion = [
        Image.fromarray(images[40_000 + i]).resize((96, 96), Image.Resampling.BICUBIC)
        for i in range(12)
    ]
    copy_set = set(copy_from)
    pool = [p for p in pool if p not in copy_set]  # a copy's original keeps its label
    return plant(data, pool, copy_from, None, fashion, seed=2)


GREY_FOREIGN = 10  # greyscale 28 px crops of the nature photos, among product photos
GREY_SEED = 13  # not the crops the outlier rule was chosen on (seeds 11 and 12)


def _grey_crops() -> list[Image.Image]:
    return [crop.convert("L") for crop, _ in zip(_photo_crops(GREY_SEED), range(GREY_FOREIGN),
                                                   strict=False)]  # fmt: skip


def plant_foreign(data: Path, folder: Path, foreign: list[Image.Image]) -> dict:
    """Only foreign images, one to each class folder of `folder` in turn."""
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    planted = []
    for number, image in enumerate(foreign):
        target = folder / classes[number % len(classes)] / f"foreign_{number:03d}.png"
        image.save(target)
        planted.append(str(target.relative_to(data)))
    return {"flipped": [], "copies": [], "foreign": planted}


def fashion_grey_case(data: Path) -> dict:
    """The Fashion-MNIST case with nothing but 10 greyscale photo crops planted."""
    datasets.write_fashion(data)
    return plant_foreign(data, data / "train", _grey_crops())


def sample_grey_case(data: Path) -> dict:
    """The project's own sample (3,000 Fashion-MNIST images) with 10 greyscale photo crops."""
    write_sample(data)
    return plant_foreign(data, data, _grey_crops())


def write_sample(data: Path) -> None:
    sample = Path(__file__).resolve().parents[1] / "data"
    if not (sample / "Bag").is_dir():
        raise SystemExit(f"{sample}/ is not the sample: `dvc pull data.dvc` first")
    shutil.rmtree(data, ignore_errors=True)
    shutil.copytree(sample, data)


def _photo_crops(seed: int):
    rng = np.random.default_rng(seed)
    for photo in datasets.nature_photos().values():
        w, h = photo.size
        side = int(0.2 * min(w, h))
        left, top = rng.integers(0, w - side), rng.integers(0, h - side)
        yield photo.crop((left, top, left + side, top + side)).resize(
            (28, 28), Image.Resampling.LANCZOS
        )
        yield photo.crop(
            (w - side - left // 2, h - side - top // 2, w - left // 2, h - top // 2)
        ).resize((28, 28))


CASES = {
    "fashion": fashion_case, "photos": photos_case,
    "fashion-grey": fashion_grey_case, "sample-grey": sample_grey_case,
}  # fmt: skip
CLEAN = {
    "fashion": datasets.write_fashion, "photos": datasets.write_photos,
    "fashion-grey": datasets.write_fashion, "sample-grey": write_sample,
}  # fmt: skip
SCALE_PER_CLASS = 2084  # 12 classes: 25,008 photo crops, for time and memory only


def run_scale(root: Path) -> dict:
    """On 25,008 photo crops at 128 px, nothing planted: `dvc repro audit`, then
    `dvc repro train_efficientnet` (which reads the audit's cached features), each
    measured on its own: the cost."""
    project = root / "photos-25k"
    project.mkdir()
    copy_tracked_files(project)
    shutil.rmtree(project / "data", ignore_errors=True)
    datasets.write_photos(project / "data", per_class=SCALE_PER_CLASS, seed=5)
    env = project_env(project)
    commit_copy(project, env)
    runs = {}
    for target in ("audit", "train_efficientnet"):
        print(f"\n== photos-25k: dvc repro {target} in {project}", flush=True)
        measured = run_measured(["dvc", "repro", target], project, env)
        runs[target] = {
            "repro_seconds": measured.seconds,
            "peak_tree_mib": measured.peak_tree_bytes / 2**20,
            "peak_process_mib": measured.peak_process_bytes / 2**20,
        }
    return {
        "images": SCALE_PER_CLASS * 12,
        "seconds": read_timings(project),
        "val_accuracy": model_metrics(project, "efficientnet")["val_accuracy"],
        "runs": runs,
    }


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as table:
        return list(csv.DictReader(table))


def prepared_files(project: Path) -> dict[str, str]:
    """Each prepared file (as under data/) and its split."""
    out = {}
    for split in ("train", "val", "test"):
        for line in (project / "prepared" / split / "files.txt").read_text().splitlines():
            out[line] = split
    return out


def rankings(project: Path) -> dict[str, list[str]]:
    """Every judged image by label quality, every image by outlier score (the audit's own
    ranking, recomputed in this process: the stage writes only what it flags)."""
    from imgclf import params as params_file
    from imgclf.audit.embeddings import extractor
    from imgclf.audit.report import run_audit
    from imgclf.data.prepared import read_split
    from imgclf.models.efficientnet import FAMILY
    from imgclf.models.input_size import input_size
    from imgclf.stage_files import PreparedInfo

    params = params_file.load(project / "params.yaml")
    info = PreparedInfo.load(project / "prepared")
    splits = {s: read_split(s, project / "prepared") for s in ("train", "val", "test")}
    side = input_size(FAMILY, params.audit.image_size, info.image_size)
    model = extractor(params.audit.variant, info.image_size, side)
    audit = run_audit(splits, info.class_names, params.audit, model, params.prepare.seed)
    return {
        "label_issues": [file for _, file in audit.label_ranking],
        "outliers": [file for _, file in audit.outlier_ranking],
    }


def score(project: Path, planted: dict, clean_pairs: set) -> dict:
    audit = project / "audit"
    kept = prepared_files(project)
    judged = {f for f, s in kept.items() if s in ("train", "val")}
    flipped = [f for f in planted["flipped"] if f in judged]
    ranking = rankings(project)
    top = set(ranking["label_issues"][: 2 * len(flipped)])
    flagged = [row["file"] for row in read_csv(audit / "label_issues.csv")]
    true_flagged = sum(f in set(flipped) for f in flagged)

    pairs = {
        frozenset((r["file"], r["duplicate_file"])) for r in read_csv(audit / "near_duplicates.csv")
    }
    pairs -= clean_pairs
    planted_pairs = {frozenset(p) for p in planted["copies"] if all(f in kept for f in p)}
    found_pairs = pairs & planted_pairs
    # A pair the clean data already had is neither right nor wrong (removed above);
    # every other reported pair that was not planted is a false one.
    outliers = ranking["outliers"]
    foreign_ranks = sorted(outliers.index(f) + 1 for f in planted["foreign"] if f in outliers)
    listed = {row["file"] for row in read_csv(audit / "outliers.csv")}
    return {
        "flipped": len(flipped),
        "label_recall_at_2x": sum(f in top for f in flipped) / max(1, len(flipped)),
        "label_flagged": len(flagged),
        "label_precision": true_flagged / max(1, len(flagged)),
        "label_recall": true_flagged / max(1, len(flipped)),
        "planted_pairs": len(planted_pairs),
        "reported_pairs": len(pairs),
        "pairs_in_clean_data": len(clean_pairs),
        "duplicate_recall": len(found_pairs) / max(1, len(planted_pairs)),
        "duplicate_precision": len(found_pairs) / max(1, len(pairs)),
        "leaks_reported": sum(1 for p in found_pairs if len({kept[f] for f in p}) > 1),
        "foreign": len(planted["foreign"]),
        "foreign_ranks": foreign_ranks,
        "foreign_in_top_2x": sum(r <= 2 * len(planted["foreign"]) for r in foreign_ranks),
        "outliers_listed": len(listed),
        "foreign_listed": sum(f in listed for f in planted["foreign"]),
    }


def run_case(name: str, root: Path) -> dict:
    results = {}
    for stage in ("clean", "planted"):
        project = root / f"{name}-{stage}"
        project.mkdir()
        copy_tracked_files(project)
        shutil.rmtree(project / "data", ignore_errors=True)
        (project / "data").mkdir()
        planted = None
        if stage == "planted":
            planted = CASES[name](project / "data")
        else:  # the same clean data, nothing planted
            CLEAN[name](project / "data")
        env = project_env(project)
        commit_copy(project, env)
        print(f"\n== {name} ({stage}): dvc repro audit in {project}", flush=True)
        measured = run_measured(["dvc", "repro", "audit"], project, env)
        timings = json.loads((project / "timings" / "audit.json").read_text())
        results[stage] = {
            "project": project,
            "planted": planted,
            "measured": measured,
            "audit_seconds": timings["audit_seconds"],
        }
    clean = results["clean"]["project"]
    clean_pairs = {
        frozenset((r["file"], r["duplicate_file"]))
        for r in read_csv(clean / "audit" / "near_duplicates.csv")
    }
    planted = results["planted"]
    out = score(planted["project"], planted["planted"], clean_pairs)
    out.update(
        {
            "case": name,
            "images": sum(
                json.loads((planted["project"] / "metrics" / "audit.json").read_text())[
                    "images"
                ].values()
            ),
            "audit_seconds": planted["audit_seconds"],
            "repro_audit_seconds": planted["measured"].seconds,
            "peak_mib": planted["measured"].peak_tree_bytes / 2**20,
        }
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="work here and keep the projects")
    parser.add_argument("--case", choices=sorted(CASES), action="append")
    parser.add_argument("--scale", action="store_true", help="only the 25,008-photo cost case")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-audit-"))
    root.mkdir(parents=True, exist_ok=True)
    if args.scale:
        scale = run_scale(root)
        seconds, audit, trainer = (
            scale["seconds"],
            scale["runs"]["audit"],
            scale["runs"]["train_efficientnet"],
        )
        print(
            f"\nphotos-25k: {scale['images']:,} images: prepare {seconds['prepare']:.0f}s, "
            f"audit {seconds['audit']:.0f}s; peak memory {audit['peak_process_mib']:,.0f} MiB "
            f"(largest process), {audit['peak_tree_mib']:,.0f} MiB (dvc and its children)\n"
            f"  train_efficientnet {seconds['train_efficientnet']:.0f}s (val_accuracy "
            f"{scale['val_accuracy']:.4f}); peak memory {trainer['peak_process_mib']:,.0f} MiB "
            f"(largest process), {trainer['peak_tree_mib']:,.0f} MiB (dvc and its children)"
        )
        return 0
    rows = [run_case(name, root) for name in (args.case or list(CASES))]
    print()
    for r in rows:
        print(
            f"{r['case']}: {r['images']} images, audit {r['audit_seconds']:.0f}s, "
            f"prepare+audit peak {r['peak_mib']:,.0f} MiB"
        )
        print(
            f"  label errors: {r['flipped']} planted in train/val; recall in the top "
            f"{2 * r['flipped']}: {r['label_recall_at_2x']:.3f} (target >= 0.8); cleanlab "
            f"flags {r['label_flagged']}: precision {r['label_precision']:.3f}, "
            f"recall {r['label_recall']:.3f}"
        )
        print(
            f"  near-duplicates: {r['planted_pairs']} planted pairs, {r['reported_pairs']} "
            f"reported (besides {r['pairs_in_clean_data']} in the clean data): recall "
            f"{r['duplicate_recall']:.3f}, precision {r['duplicate_precision']:.3f} "
            f"(targets >= 0.95); {r['leaks_reported']} of the found are across splits"
        )
        print(
            f"  outliers: {r['foreign']} foreign images, {r['foreign_in_top_2x']} in the top "
            f"{2 * r['foreign']}; ranks {r['foreign_ranks']}; {r['outliers_listed']} listed "
            f"({100 * r['outliers_listed'] / r['images']:.2f}% of the images), "
            f"{r['foreign_listed']} of them foreign"
        )
    print(json.dumps(rows, indent=1, default=str))
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
