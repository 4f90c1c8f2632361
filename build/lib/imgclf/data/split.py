"""Decide which split each usable image goes to: stratified, deterministic, leak-free."""

from __future__ import annotations

import zlib
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from imgclf.data.ingest import Decoded
from imgclf.data.layout import SPLITS, DataError, Layout


@dataclass
class Placement:
    """Where one source file ended up."""

    split: str | None  # None only for a file rejected before a flat layout was split
    used: bool
    reason: str | None = None  # why it was skipped


@dataclass
class SplitPlan:
    """The placement of every file, plus what the leakage checks found."""

    placements: list[Placement]
    duplicates: list[dict]  # removed cross-split copies
    label_conflicts: list[dict]  # identical pixels filed under different classes


def _carve(
    members: list[int], splits: dict[str, float], class_name: str, seed: int, where: str
) -> dict[int, str]:
    """Split one class's groups of identical images between train and the `splits` to carve."""
    rng = np.random.default_rng([seed, zlib.crc32(class_name.encode())])
    order = [members[i] for i in rng.permutation(len(members))]
    sizes = {split: max(1, round(len(order) * fraction)) for split, fraction in splits.items()}
    if len(order) - sum(sizes.values()) < 1:
        needed = len(splits) + 1
        raise DataError(
            f"class {class_name!r} in {where} has only {len(order)} usable distinct image(s); "
            f"it needs at least {needed} to give train, {', '.join(splits)} one each: add images"
        )
    chosen: dict[int, str] = {}
    start = 0
    for split in ("test", "val"):  # fixed order keeps the plan stable when one is not carved
        if split in splits:
            chosen.update({group: split for group in order[start : start + sizes[split]]})
            start += sizes[split]
    return chosen


def plan_splits(
    layout: Layout, decoded: list[Decoded], val_fraction: float, test_fraction: float, seed: int
) -> SplitPlan:
    """Place every file; raise DataError when a class would miss a split."""
    files = layout.files
    placements = [
        Placement(f.split, d.error is None, d.error) for f, d in zip(files, decoded, strict=True)
    ]
    fractions = {"val": val_fraction, "test": test_fraction}
    to_carve = {s: fractions[s] for s in ("val", "test") if s not in layout.given_splits}
    if to_carve:
        pool_split = None if layout.kind == "flat" else "train"
        where = "the class folders" if layout.kind == "flat" else "train/"
        for class_name in layout.class_names:
            # Identical images move together, so carving never splits a duplicate group.
            groups: dict[str, list[int]] = defaultdict(list)
            for i, f in enumerate(files):
                if f.class_name == class_name and f.split == pool_split and placements[i].used:
                    groups[decoded[i].digest].append(i)
            chosen = _carve(list(groups), to_carve, class_name, seed, where)
            for digest, members in groups.items():
                for i in members:
                    placements[i].split = chosen.get(digest, "train")
    duplicates = _remove_cross_split_duplicates(layout, decoded, placements)
    conflicts = _label_conflicts(layout, decoded, placements)
    _require_every_class_in_every_split(layout, placements)
    return SplitPlan(placements, duplicates, conflicts)


def _remove_cross_split_duplicates(
    layout: Layout, decoded: list[Decoded], placements: list[Placement]
) -> list[dict]:
    """Keep each image only in the earliest split holding it (train, then val, then test)."""
    keeper: dict[str, int] = {}
    used = [i for i, p in enumerate(placements) if p.used]
    for i in sorted(used, key=lambda i: SPLITS.index(placements[i].split)):
        keeper.setdefault(decoded[i].digest, i)
    removed = []
    for i in used:
        kept = keeper[decoded[i].digest]
        if placements[kept].split != placements[i].split:
            kept_path = layout.files[kept].path
            placements[i].used = False
            placements[i].reason = (
                f"exact duplicate of {kept_path} ({placements[kept].split} split): "
                "removed to prevent leakage"
            )
            removed.append(
                {"removed": layout.files[i].path, "split": placements[i].split, "kept": kept_path}
            )
    return removed


def _label_conflicts(
    layout: Layout, decoded: list[Decoded], placements: list[Placement]
) -> list[dict]:
    classes_by_digest: dict[str, dict[str, str]] = defaultdict(dict)
    for i, p in enumerate(placements):
        if p.used:
            f = layout.files[i]
            classes_by_digest[decoded[i].digest].setdefault(f.class_name, f.path)
    return [
        {"files": sorted(paths.values()), "classes": sorted(paths)}
        for paths in classes_by_digest.values()
        if len(paths) > 1
    ]


def _require_every_class_in_every_split(layout: Layout, placements: list[Placement]) -> None:
    present = {
        (p.split, f.class_name) for f, p in zip(layout.files, placements, strict=True) if p.used
    }
    for split in SPLITS:
        for class_name in layout.class_names:
            if (split, class_name) not in present:
                raise DataError(
                    f"class {class_name!r} has no usable image in the {split} split: add readable "
                    f"images of {class_name!r} there (prepared/report.json lists skipped files)"
                )


def count_files(layout: Layout, placements: list[Placement]) -> dict:
    """Per split and class, how many files were found, used and skipped (found = used + skipped).

    In a flat layout, files that could not be decoded never reach a split; they are
    counted under the pseudo-split "unsplit".
    """
    per_split: dict[str, dict] = {}
    for f, p in zip(layout.files, placements, strict=True):
        split = per_split.setdefault(p.split or "unsplit", {"classes": {}})
        counts = split["classes"].setdefault(f.class_name, {"found": 0, "used": 0, "skipped": 0})
        counts["found"] += 1
        counts["used" if p.used else "skipped"] += 1
    for split in per_split.values():
        for key in ("found", "used", "skipped"):
            split[key] = sum(c[key] for c in split["classes"].values())
    totals = {k: sum(s[k] for s in per_split.values()) for k in ("found", "used", "skipped")}
    return {**totals, "splits": per_split}
