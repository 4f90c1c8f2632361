"""Stage `prepare`: validate every image in data/, normalize it and split it into train/val/test.

Reads params `prepare.*` and the review's decisions (labels/decisions.csv: relabel or
exclude train and val images, applied after the split is planned); writes prepared/
(per split images.npy, labels.npy, files.txt; classes.json; report.json listing every
skipped file and why) and the metrics file metrics/prepare.json.
"""

from __future__ import annotations

import time

from imgclf import params as params_file
from imgclf import paths
from imgclf.atomic_io import staged_directory, write_json, write_timings
from imgclf.data.decisions import Applied, apply_to_plan, read_decisions
from imgclf.data.ingest import auto_image_size, decode_to_rows, default_workers, longer_sides
from imgclf.data.layout import SPLITS, Layout, find_layout
from imgclf.data.prepared import write_split
from imgclf.data.split import SplitPlan, count_files, plan_splits
from imgclf.stage_errors import run_stage
from imgclf.stage_files import PreparedInfo

DATA_DIR, OUT_DIR = paths.DATA, paths.PREPARED


def image_size_of(sources: list, param: int | str) -> int:
    """prepare.image_size, or auto's choice from the images' median size."""
    if param != "auto":
        return param
    size = auto_image_size(longer_sides(sources))
    print(f"prepare: image_size auto -> {size} px (from the images' median size)")
    return size


def report(layout: Layout, plan: SplitPlan, review: Applied) -> dict:
    """prepared/report.json: every file left out and why, and what the review changed."""
    return {
        "layout": layout.kind,
        "skipped": [
            {"path": f.path, "class": f.class_name, "split": placed.split, "reason": placed.reason}
            for f, placed in zip(layout.files, plan.placements, strict=True)
            if not placed.used
        ],
        "not_in_a_class_folder": [{"path": path, "reason": why} for path, why in layout.stray],
        "duplicates_removed": plan.duplicates,
        "label_conflicts": plan.label_conflicts,
        "review": review.report(),
    }


def main() -> None:
    p = params_file.load().prepare
    started = time.perf_counter()
    layout = find_layout(DATA_DIR)
    print(
        f"prepare: {len(layout.files)} files, {len(layout.class_names)} classes "
        f"({layout.kind} layout): {', '.join(layout.class_names)}"
    )
    decisions = read_decisions(paths.DECISIONS, layout.class_names)  # a bad line stops us here
    sources = [DATA_DIR / f.path for f in layout.files]
    image_size = image_size_of(sources, p.image_size)
    # Built beside prepared/ and swapped in whole: a bad data folder, a full disk or a
    # killed run leaves the previous prepared/ as it was.
    with staged_directory(OUT_DIR) as out:
        rows_file = out / "rows.tmp"
        decoded = decode_to_rows(
            sources, rows_file, image_size, p.max_pixels, default_workers(len(sources))
        )
        plan = plan_splits(layout, decoded, p.val_fraction, p.test_fraction, p.seed)
        # The review's decisions, after the split: no other image changes split.
        review, class_of = apply_to_plan(decisions, layout.files, plan.placements)
        label_of = {name: i for i, name in enumerate(layout.class_names)}
        for split in SPLITS:
            chosen = [
                i for i, placed in enumerate(plan.placements)
                if placed.used and placed.split == split
            ]  # fmt: skip
            write_split(
                out / split,
                rows_file,
                rows=[decoded[i].row for i in chosen],
                labels=[label_of[class_of[i]] for i in chosen],
                files=[layout.files[i].path for i in chosen],
                image_size=image_size,
            )
        rows_file.unlink()
        PreparedInfo(
            class_names=layout.class_names, image_size=image_size, image_size_param=p.image_size
        ).write(out / paths.PREPARED_INFO.name)
        write_json(out / paths.PREPARE_REPORT.name, report(layout, plan, review))
    counts = count_files(layout, plan.placements)
    write_json(paths.metrics_file("prepare"), {
        **counts,
        "classes": len(layout.class_names),
        "image_size": image_size,
        "duplicates_removed": len(plan.duplicates),
        "not_in_a_class_folder": len(layout.stray),
        "review": review.metrics(),
    })  # fmt: skip

    seconds = time.perf_counter() - started
    write_timings("prepare", {"prepare_seconds": seconds})
    print(
        f"prepare: used {counts['used']} of {counts['found']} files "
        f"({counts['skipped']} skipped, {len(plan.duplicates)} cross-split duplicates removed, "
        f"{len(layout.stray)} outside class folders) in {seconds:.1f}s; see {OUT_DIR}/report.json"
    )
    for split in SPLITS:
        print(f"prepare:   {split}: {counts['splits'][split]['used']} images")
    for line in review.summary(DATA_DIR):
        print(f"prepare: {line}")


if __name__ == "__main__":
    run_stage(main, "prepare", writes=f"{OUT_DIR}/")
