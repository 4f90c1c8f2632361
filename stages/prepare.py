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
from imgclf.data.decisions import apply_decisions, read_decisions
from imgclf.data.ingest import auto_image_size, decode_to_rows, default_workers, longer_sides
from imgclf.data.layout import SPLITS, find_layout
from imgclf.data.prepared import write_split
from imgclf.data.split import count_files, plan_splits
from imgclf.stage_errors import run_stage
from imgclf.stage_files import PreparedInfo

DATA_DIR, OUT_DIR = paths.DATA, paths.PREPARED


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
    if p.image_size == "auto":
        image_size = auto_image_size(longer_sides(sources))
        print(f"prepare: image_size auto -> {image_size} px (from the images' median size)")
    else:
        image_size = p.image_size
    # Built beside prepared/ and swapped in whole: a bad data folder, a full disk or a
    # killed run leaves the previous prepared/ as it was.
    with staged_directory(OUT_DIR) as out:
        rows_file = out / "rows.tmp"
        decoded = decode_to_rows(
            sources, rows_file, image_size, p.max_pixels, default_workers(len(sources))
        )
        plan = plan_splits(layout, decoded, p.val_fraction, p.test_fraction, p.seed)
        # The review's decisions, after the split: no other image changes split.
        review = apply_decisions(
            decisions,
            [(f.path, f.class_name, placed.split, placed.used)
             for f, placed in zip(layout.files, plan.placements, strict=True)],
        )  # fmt: skip
        for i in review.excluded:
            plan.placements[i].used = False
            plan.placements[i].reason = f"excluded in {paths.DECISIONS}"
        class_of = [review.labels.get(i, f.class_name) for i, f in enumerate(layout.files)]
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

        counts = count_files(layout, plan.placements)
        skipped = [
            {"path": f.path, "class": f.class_name, "split": placed.split, "reason": placed.reason}
            for f, placed in zip(layout.files, plan.placements, strict=True)
            if not placed.used
        ]
        PreparedInfo(
            class_names=layout.class_names, image_size=image_size, image_size_param=p.image_size
        ).write(out / paths.PREPARED_INFO.name)
        write_json(
            out / paths.PREPARE_REPORT.name,
            {
                "layout": layout.kind,
                "skipped": skipped,
                "not_in_a_class_folder": [
                    {"path": path, "reason": why} for path, why in layout.stray
                ],
                "duplicates_removed": plan.duplicates,
                "label_conflicts": plan.label_conflicts,
                "review": review.report(),
            },
        )
    write_json(
        paths.metrics_file("prepare"),
        {
            **counts,
            "classes": len(layout.class_names),
            "image_size": image_size,
            "duplicates_removed": len(plan.duplicates),
            "not_in_a_class_folder": len(layout.stray),
            "review": review.metrics(),
        },
    )

    seconds = time.perf_counter() - started
    write_timings("prepare", {"prepare_seconds": seconds})
    print(
        f"prepare: used {counts['used']} of {counts['found']} files "
        f"({counts['skipped']} skipped, {len(plan.duplicates)} cross-split duplicates removed, "
        f"{len(layout.stray)} outside class folders) in {seconds:.1f}s; see {OUT_DIR}/report.json"
    )
    for split in SPLITS:
        print(f"prepare:   {split}: {counts['splits'][split]['used']} images")
    if any(review.metrics().values()):
        done = review.metrics()
        print(
            f"prepare: {paths.DECISIONS}: {done['relabelled']} relabelled, {done['excluded']} "
            f"excluded, {done['kept']} kept as they are"
        )
        for path in review.not_found:
            print(f"prepare:   {path}: no longer in {DATA_DIR}/, its decision is not applied")
        if review.test_unchanged:
            print(f"prepare:   {len(review.test_unchanged)} decisions about test images not "
                  "applied: the model is scored on the test split as it is")  # fmt: skip


if __name__ == "__main__":
    run_stage(main, "prepare", writes=f"{OUT_DIR}/")
