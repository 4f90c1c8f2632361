"""Find the classes and the given splits in a user's data folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

SPLITS = ("train", "val", "test")
SPLIT_FOLDERS = {
    "train": "train",
    "val": "val",
    "validation": "val",
    "valid": "val",
    "test": "test",
}


class DataError(ValueError):
    """The data folder cannot be used as it is; the message says what to change."""


@dataclass(frozen=True)
class SourceFile:
    """One file found under the data folder."""

    path: str  # relative to the data folder, with forward slashes
    class_name: str
    split: str | None  # the split its folder names, or None in a flat layout


@dataclass
class Layout:
    """What the data folder holds: split folders or flat class folders."""

    kind: str  # "splits" or "flat"
    class_names: list[str]
    files: list[SourceFile]
    given_splits: list[str] = field(default_factory=list)
    stray: list[tuple[str, str]] = field(default_factory=list)  # (path, why it is not used)


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _stray_files(folder: Path, root: Path, why: str) -> list[tuple[str, str]]:
    """Files directly in `folder` (and hidden folders' contents) that belong to no class."""
    stray = [(p.relative_to(root).as_posix(), why) for p in sorted(folder.iterdir()) if p.is_file()]
    for hidden in sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith(".")):
        stray += [
            (p.relative_to(root).as_posix(), "inside a hidden folder")
            for p in sorted(hidden.rglob("*"))
            if p.is_file()
        ]
    return stray


def _class_files(class_dir: Path, root: Path, split: str | None) -> list[SourceFile]:
    return [
        SourceFile(path.relative_to(root).as_posix(), class_dir.name, split)
        for path in sorted(class_dir.rglob("*"))
        if path.is_file()
    ]


def find_layout(data_dir: Path) -> Layout:
    """Read the folder structure; raise DataError naming what is wrong."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(
            f"data folder {data_dir}/ not found: put one folder per class in it "
            f"({data_dir}/cats, {data_dir}/dogs, ...) or run `dvc pull data.dvc` for the sample"
        )
    top = _visible_dirs(data_dir)
    if not top:
        raise DataError(
            f"data folder {data_dir}/ has no class folders: put one folder of images per class "
            f"in it ({data_dir}/cats, {data_dir}/dogs, ...)"
        )
    split_dirs = [d for d in top if d.name.lower() in SPLIT_FOLDERS]
    if not split_dirs:
        return _flat_layout(data_dir, top)
    return _split_layout(data_dir, top, split_dirs)


def _flat_layout(data_dir: Path, class_dirs: list[Path]) -> Layout:
    class_names = [d.name for d in class_dirs]
    if len(class_names) < 2:
        raise DataError(
            f"data folder {data_dir}/ has only one class folder ({class_names[0]}/): "
            "a classifier needs at least 2 classes, one folder each"
        )
    files = [f for d in class_dirs for f in _class_files(d, data_dir, None)]
    stray = _stray_files(data_dir, data_dir, "not inside a class folder")
    return Layout("flat", class_names, files, [], stray)


def _split_layout(data_dir: Path, top: list[Path], split_dirs: list[Path]) -> Layout:
    others = [d.name for d in top if d not in split_dirs]
    if others:
        raise DataError(
            f"data folder {data_dir}/ mixes split folders "
            f"({', '.join(d.name for d in split_dirs)}) "
            f"with other folders ({', '.join(others)}): move every class folder inside "
            "train/, val/ and test/, or use flat class folders only"
        )
    by_split: dict[str, Path] = {}
    for folder in split_dirs:
        split = SPLIT_FOLDERS[folder.name.lower()]
        if split in by_split:
            raise DataError(
                f"data folder {data_dir}/ has both {by_split[split].name}/ and {folder.name}/ "
                f"for the {split} split: keep one of them"
            )
        by_split[split] = folder
    if "train" not in by_split:
        raise DataError(
            f"data folder {data_dir}/ has {', '.join(d.name + '/' for d in split_dirs)} but no "
            "train/ folder: add data/train/<class>/ folders"
        )
    classes_by_split = {s: [d.name for d in _visible_dirs(f)] for s, f in by_split.items()}
    class_names = classes_by_split["train"]
    if len(class_names) < 2:
        raise DataError(
            f"{by_split['train']}/ has {len(class_names)} class folder(s): a classifier needs at "
            "least 2 classes, one folder each"
        )
    for split, names in classes_by_split.items():
        if names != class_names:
            missing = sorted(set(class_names) - set(names))
            extra = sorted(set(names) - set(class_names))
            raise DataError(
                f"{by_split[split]}/ has different classes from {by_split['train']}/ "
                f"(missing: {', '.join(missing) or 'none'}; extra: {', '.join(extra) or 'none'}): "
                "every split needs the same class folders"
            )
    files: list[SourceFile] = []
    stray = _stray_files(data_dir, data_dir, "not inside a split folder")
    for split in SPLITS:
        if split in by_split:
            folder = by_split[split]
            stray += _stray_files(folder, data_dir, "not inside a class folder")
            files += [f for d in _visible_dirs(folder) for f in _class_files(d, data_dir, split)]
    given = [s for s in SPLITS if s in by_split]
    return Layout("splits", class_names, files, given, stray)
