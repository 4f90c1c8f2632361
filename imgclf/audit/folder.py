"""`imgclf audit FOLDER`: the audit of a folder of class folders, outside the pipeline.

The folder is read as `prepare` reads data/ (class folders, or train/val/test folders
of class folders) and decoded at prepare's automatic size into a temporary file;
labels are judged over all of it (over train and val for split folders), outliers
and near-duplicates everywhere. Nothing is written
into the folder.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from imgclf.audit.embeddings import extractor
from imgclf.audit.report import Audit, run_audit
from imgclf.data.ingest import auto_image_size, decode_to_rows, default_workers, longer_sides
from imgclf.data.layout import find_layout
from imgclf.data.prepared import PreparedSplit
from imgclf.params import Params

WHOLE = "all"  # the one split of a flat folder


def audit_folder(folder: Path, params: Params) -> tuple[Audit, list[tuple[str, str]]]:
    """The audit of `folder`, and the files that could not be used, with why."""
    from imgclf.models.efficientnet import FAMILY
    from imgclf.models.input_size import input_size

    layout = find_layout(folder)
    sources = [folder / f.path for f in layout.files]
    size = auto_image_size(longer_sides(sources))
    label_of = {name: i for i, name in enumerate(layout.class_names)}
    with tempfile.TemporaryDirectory(prefix="imgclf-audit-") as scratch:
        rows_file = Path(scratch) / "rows"
        decoded = decode_to_rows(
            sources, rows_file, size, params.prepare.max_pixels, default_workers(len(sources))
        )
        skipped = [(f.path, d.error) for f, d in zip(layout.files, decoded, strict=True) if d.error]
        # Read whole: the parts below are copies of it anyway (a folder, not a data set).
        rows = np.fromfile(rows_file, dtype=np.uint8).reshape(-1, size, size, 3)
        splits: dict[str, list[int]] = {}
        for index, (file, result) in enumerate(zip(layout.files, decoded, strict=True)):
            if result.row is not None:
                splits.setdefault(file.split or WHOLE, []).append(index)
        parts = {
            name: PreparedSplit(
                images=np.asarray(rows[[decoded[i].row for i in chosen]]),
                labels=np.array([label_of[layout.files[i].class_name] for i in chosen], np.int32),
                files=[layout.files[i].path for i in chosen],
            )
            for name, chosen in sorted(splits.items(), key=lambda kv: _order(kv[0]))
        }
    side = input_size(FAMILY, params.audit.image_size, size)
    model = extractor(params.audit.variant, size, side)
    flat = WHOLE in parts
    audit = run_audit(
        parts,
        layout.class_names,
        params.audit,
        model,
        params.prepare.seed,
        judged=(WHOLE,) if flat else ("train", "val"),
    )
    return audit, skipped


def _order(split: str) -> int:
    return {"train": 0, "val": 1, "test": 2}.get(split, 3)


def print_findings(audit: Audit, skipped: list[tuple[str, str]], out, limit: int) -> None:
    """The findings as plain tables: the `limit` likeliest of each."""
    total = sum(audit.counts.values())
    print(f"{total} images, {len(audit.class_names)} classes; {len(skipped)} unusable", file=out)
    for path, why in skipped[:limit]:
        print(f"  unusable  {path}: {why}", file=out)
    print(f"\nlikely label errors: {len(audit.label_issues)}", file=out)
    for issue in audit.label_issues[:limit]:
        print(
            f"  {issue['file']}  given {issue['given']}, suggested {issue['suggested']} "
            f"({issue['suggested_probability']:.2f})",
            file=out,
        )
    leaks = sum(p["leak"] for p in audit.near_duplicates)
    print(f"\nnear-duplicate pairs: {len(audit.near_duplicates)} ({leaks} across splits)", file=out)
    for pair in audit.near_duplicates[:limit]:
        print(
            f"  {pair['file']}  ~  {pair['duplicate_file']}  (distance {pair['distance']:.3f}"
            f"{', across splits' if pair['leak'] else ''})",
            file=out,
        )
    print(f"\noutliers: {len(audit.outliers)}", file=out)
    for outlier in audit.outliers[:limit]:
        print(f"  {outlier['file']}  ({outlier['label']}, z {outlier['z']:.1f})", file=out)
