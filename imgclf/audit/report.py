"""The audit's findings with their files, what to exclude, and how they are written and shown.

    audit = run_audit(splits, class_names, params.audit, features_model)
    excluded = audit.exclusions(params.audit.exclude)
    audit.write(paths.AUDIT, excluded)   # CSVs and the gallery
    audit.metrics(excluded)              # counts per finding, split and class

Only training and validation images are ever excluded: the test split stays as it
is, so the export's test score is on untouched data (its findings are reported).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from imgclf.atomic_io import csv_table
from imgclf.audit import findings
from imgclf.audit.embeddings import embed
from imgclf.data.prepared import PreparedSplit
from imgclf.evaluation.gallery import draw_sheet, save_gallery
from imgclf.param_groups import AuditParams

FINDINGS = ("label_issues", "near_duplicates", "outliers")
EXCLUDABLE_SPLITS = ("train", "val", "all")  # never test
# A near-duplicate pair keeps the copy in the split that is judged more strictly.
KEEP_ORDER = {"test": 0, "val": 1, "train": 2, "all": 3}


@dataclass(frozen=True)
class Seen:
    """One image the audit speaks of."""

    split: str
    row: int
    file: str
    label: int


@dataclass
class Audit:
    """What the audit found in a set of splits (see the module docstring)."""

    class_names: list[str]
    counts: dict[str, int]  # images per split
    label_issues: list[dict] = field(default_factory=list)
    near_duplicates: list[dict] = field(default_factory=list)
    outliers: list[dict] = field(default_factory=list)
    gallery_pixels: list[np.ndarray] = field(default_factory=list)
    # Every judged image, likeliest label error first; every image, most outlying first.
    label_ranking: list[tuple[str, str]] = field(default_factory=list)
    outlier_ranking: list[tuple[str, str]] = field(default_factory=list)

    def exclusions(self, exclude: list[str]) -> list[dict]:
        """The training and validation images the chosen findings leave out, each once."""
        chosen: dict[tuple[str, str], str] = {}
        if "label_issues" in exclude:
            for issue in self.label_issues:
                chosen.setdefault((issue["split"], issue["file"]), "label_issue")
        if "near_duplicates" in exclude:
            for pair in self.near_duplicates:
                a = (pair["split"], pair["file"])
                b = (pair["duplicate_split"], pair["duplicate_file"])
                # Keep the stricter split's copy (test, then val); in one split, the first.
                dropped = b if KEEP_ORDER[b[0]] >= KEEP_ORDER[a[0]] else a
                chosen.setdefault(dropped, "near_duplicate")
        if "outliers" in exclude:
            for outlier in self.outliers:
                chosen.setdefault((outlier["split"], outlier["file"]), "outlier")
        return [
            {"split": split, "file": file, "reason": reason}
            for (split, file), reason in sorted(chosen.items())
            if split in EXCLUDABLE_SPLITS
        ]

    def metrics(self, excluded: list[dict]) -> dict:
        """metrics/audit.json: counts of each finding, per split and per class."""

        def per(rows: list[dict], key: str, label_key: str) -> dict:
            return {
                "total": len(rows),
                "splits": dict(sorted(Counter(r[key] for r in rows).items())),
                "classes": dict(sorted(Counter(r[label_key] for r in rows).items())),
            }

        leaks = [p for p in self.near_duplicates if p["leak"]]
        left_out = Counter(e["split"] for e in excluded)
        return {
            "images": dict(self.counts),
            "label_issues": per(self.label_issues, "split", "given"),
            "near_duplicates": {
                **per(self.near_duplicates, "split", "label"),
                "across_splits": len(leaks),
            },
            "outliers": per(self.outliers, "split", "label"),
            "excluded": {
                "total": len(excluded),
                "splits": dict(sorted(left_out.items())),
                "reasons": dict(sorted(Counter(e["reason"] for e in excluded).items())),
            },
            "used": {s: n - left_out.get(s, 0) for s, n in self.counts.items()},
        }

    def write(self, folder: Path, excluded: list[dict], gallery_size: int) -> None:
        """The CSVs, and the gallery of the likeliest label errors, into `folder`."""
        folder.mkdir(parents=True, exist_ok=True)
        tables = {
            "label_issues.csv": (self.label_issues, LABEL_COLUMNS),
            "near_duplicates.csv": (self.near_duplicates, PAIR_COLUMNS),
            "outliers.csv": (self.outliers, OUTLIER_COLUMNS),
            "excluded.csv": (excluded, EXCLUDED_COLUMNS),
        }
        for name, (rows, columns) in tables.items():
            write_csv(folder / name, rows, columns)
        save_gallery(self.gallery(gallery_size), folder / "label_issues.png")

    def gallery(self, size: int) -> Image.Image:
        """The `size` likeliest label errors: each image with its given and suggested label."""
        shown = self.label_issues[:size]
        captions = [
            [
                (issue["file"], None),
                (f"given: {issue['given']}", "wrong"),
                (f"suggested: {issue['suggested']} ({issue['suggested_probability']:.2f})", None),
            ]
            for issue in shown
        ]
        pictures = [[pixels] for pixels in self.gallery_pixels[: len(shown)]]
        title = f"Likely label errors ({len(self.label_issues)} found; the {len(shown)} likeliest)"
        return draw_sheet(captions, pictures, title, "No likely label errors found.")


LABEL_COLUMNS = ["split", "file", "given", "suggested", "suggested_probability", "quality"]
PAIR_COLUMNS = [
    "split",
    "file",
    "duplicate_split",
    "duplicate_file",
    "label",
    "duplicate_label",
    "distance",
    "leak",
]
OUTLIER_COLUMNS = ["split", "file", "label", "score", "z"]
EXCLUDED_COLUMNS = ["split", "file", "reason"]


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    """A findings table, whole or not at all, its text cells spreadsheet-safe (atomic_io)."""
    with csv_table(path, columns) as writer:
        for row in rows:
            writer.writerow(row)


def run_audit(
    splits: dict[str, PreparedSplit],
    class_names: list[str],
    params: AuditParams,
    model,
    seed: int,
    judged: tuple[str, ...] = ("train", "val"),
) -> Audit:
    """Every finding on `splits` (see findings.py).

    Labels are judged in the `judged` splits together; outliers and near-duplicates
    are looked for across all of them.
    """
    names = list(splits)
    embedded = embed(model, [splits[name].images for name in names])
    # Held as locals, so each can go as soon as the findings are done with it: the small
    # pixel copies first, for the space near-duplicates compare them in.
    features, pixels = embedded.features, findings.pixel_space(embedded.pixels)
    del embedded
    images = [
        Seen(name, row, file, int(label))
        for name in names
        for row, (file, label) in enumerate(
            zip(splits[name].files, splits[name].labels, strict=True)
        )
    ]
    audit = Audit(class_names, {name: len(splits[name].labels) for name in names})
    label = class_names.__getitem__

    judged = tuple(name for name in judged if name in splits)
    if judged:
        at = np.flatnonzero([image.split in judged for image in images])
        rows = [images[i] for i in at]
        # The judged splits come first (train, val): a view, not a copy.
        contiguous = len(at) == 0 or at[-1] - at[0] + 1 == len(at)
        judged_features = features[at[0] : at[-1] + 1] if contiguous else features[at]
        labels = np.array([image.label for image in rows], dtype=np.int64)
        found = findings.label_issues(judged_features, labels, len(class_names), params.folds, seed)
        del judged_features
        audit.label_ranking = [
            (rows[i].split, rows[i].file) for i in np.argsort(found.quality, kind="stable")
        ]
        for index in found.issues:
            image, probabilities = rows[index], found.probabilities[index]
            suggested = int(np.argmax(probabilities))
            audit.label_issues.append(
                {
                    "split": image.split,
                    "file": image.file,
                    "given": label(image.label),
                    "suggested": label(suggested),
                    "suggested_probability": float(probabilities[suggested]),
                    "quality": float(found.quality[index]),
                }
            )
            audit.gallery_pixels.append(np.asarray(splits[image.split].images[image.row]))

    # Each array goes as soon as nothing needs it: the largest (the features, the small
    # pixel copies) before the searches that hold indexes of their own.
    space = findings.feature_space(features)
    outlier_space = findings.outlier_space(features)
    del features
    pairs = findings.near_duplicates(space, pixels, params.duplicate_distance)
    del pixels, space
    for pair in pairs:
        a, b = images[pair.first], images[pair.second]
        audit.near_duplicates.append(
            {
                "split": a.split,
                "file": a.file,
                "duplicate_split": b.split,
                "duplicate_file": b.file,
                "label": label(a.label),
                "duplicate_label": label(b.label),
                "distance": pair.distance,
                "leak": a.split != b.split,
            }
        )

    scores = findings.outlier_scores(outlier_space, np.array([i.label for i in images]))
    z = findings.outlier_z(scores)
    order = np.argsort(scores, kind="stable")
    audit.outlier_ranking = [(images[i].split, images[i].file) for i in order]
    audit.outliers = [
        {
            "split": images[i].split,
            "file": images[i].file,
            "label": label(images[i].label),
            "score": float(scores[i]),
            "z": float(z[i]),
        }
        for i in findings.listed_outliers(scores, z, params.outlier_z)
    ]
    return audit
