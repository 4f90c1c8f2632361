"""Review decisions: what a person decided about an image, kept in labels/decisions.csv.

One row per image of `data/` (its path as under data/): `relabel` it as another class,
`exclude` it from training and validation, or `keep` it as it is (reviewed, nothing to
change). `prepare` applies them after planning the splits, so no image changes split
because another was relabelled, and never to the test split, which stays the
untouched data the model is scored on. `data/` itself is never modified.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import pydantic
import pydantic.dataclasses
from pydantic import AfterValidator

from imgclf import paths
from imgclf.atomic_io import csv_table, spreadsheet_unescaped
from imgclf.data.layout import DataError, SourceFile
from imgclf.data.split import Placement

ACTIONS = ("relabel", "exclude", "keep")
# What a decision may be about: each kind of finding the review page lists, and its title.
FINDING_KINDS = {
    "label_issue": "likely label error",
    "near_duplicate": "near-duplicate",
    "outlier": "outlier",
    "mistake": "the model's confident mistake",
}
COLUMNS = ["file", "action", "label", "finding", "when"]


class DecisionsError(DataError):
    """labels/decisions.csv cannot be used as it is; the message names the line."""


def _under_data(file: str) -> str:
    if not file or file.startswith("/") or ".." in file.split("/"):
        raise ValueError(f"file {file!r} is not a path under data/")
    return file


@pydantic.dataclasses.dataclass(frozen=True)
class Decision:
    """One person's decision about one image; a value that cannot be one fails to construct."""

    file: Annotated[str, AfterValidator(_under_data)]  # as under data/, forward slashes
    action: Literal[ACTIONS]
    label: str = ""  # the new class, for relabel
    finding: Literal[("", *FINDING_KINDS)] = ""  # what the review page showed it for
    when: str = ""  # ISO 8601, UTC

    @pydantic.model_validator(mode="after")
    def _label_only_to_relabel(self) -> Decision:
        if self.action != "relabel" and self.label:
            raise ValueError(
                f"{self.file} has label {self.label!r} with action {self.action!r}: only "
                "relabel takes a label"
            )
        return self

    def row(self) -> dict[str, str]:
        return {column: getattr(self, column) for column in COLUMNS}


def decision(fields: dict[str, str], class_names: list[str], where: str) -> Decision:
    """The Decision `fields` describe, for a project of `class_names`; a DecisionsError
    naming `where` (a file and line, say) when it cannot be applied."""
    try:
        made = Decision(**fields)
    except pydantic.ValidationError as exc:
        error = exc.errors()[0]
        if error["type"] == "value_error":
            raise DecisionsError(f"{where}: {error['ctx']['error']}") from None
        name = error["loc"][0]  # any other error is a field's (a model-level check is above)
        if error["type"] == "missing":
            raise DecisionsError(f"{where}: no {name} given") from None
        raise DecisionsError(
            f"{where}: {name} {error['input']!r} for {fields['file']}: {error['msg']}"
        ) from None
    if made.action == "relabel" and made.label not in class_names:
        raise DecisionsError(
            f"{where}: {made.file} is relabelled as {made.label!r}, which is not a "
            f"class (the classes: {', '.join(class_names)}); fix the label or delete the line"
        )
    return made


def read_decisions(path: Path, class_names: list[str]) -> dict[str, Decision]:
    """Every decision in `path` by file (none when the file does not exist)."""
    if not path.is_file():
        return {}
    # As csv_table wrote it: names that are not UTF-8 kept as their bytes.
    text = path.read_text(encoding="utf-8", errors="surrogateescape")
    reader = csv.DictReader(text.splitlines())
    if reader.fieldnames is None:
        return {}
    missing = [column for column in COLUMNS[:2] if column not in reader.fieldnames]
    if missing:
        raise DecisionsError(
            f"{path}:1: the header lacks {', '.join(missing)}: the columns are {','.join(COLUMNS)}"
        )
    decisions: dict[str, Decision] = {}
    for line, row in enumerate(reader, start=2):
        if None in row or any(value is None for value in row.values()):
            raise DecisionsError(f"{path}:{line}: expected {len(reader.fieldnames)} cells")
        fields = {
            column: spreadsheet_unescaped((row.get(column) or "").strip()) for column in COLUMNS
        }
        made = decision(fields, class_names, f"{path}:{line}")
        if made.file in decisions:
            raise DecisionsError(
                f"{path}:{line}: a second decision for {made.file}: keep one of its lines"
            )
        decisions[made.file] = made
    return decisions


def write_decisions(path: Path, decisions: dict[str, Decision]) -> None:
    """Write every decision, sorted by file, whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with csv_table(path, COLUMNS) as table:
        for file in sorted(decisions):
            table.writerow(decisions[file].row())


@dataclass
class Applied:
    """What `prepare` did with the decisions: by index into its list of files."""

    labels: dict[int, str]  # relabelled images: their new class
    excluded: set[int]
    kept: int
    not_found: list[str]  # decisions about files data/ no longer has
    test_unchanged: list[str]  # decisions about test images: never applied
    relabelled: list[dict] = field(default_factory=list)  # {path, from, to}, for the report

    def report(self) -> dict:
        """What prepare's report.json says of the review (what was excluded it lists
        with the skipped files)."""
        return {
            "relabelled": self.relabelled,
            "decisions_not_found": self.not_found,
            "test_unchanged": self.test_unchanged,
        }

    def summary(self, data_dir: Path) -> list[str]:
        """What prepare prints of the review: nothing when no decision did anything."""
        done = self.metrics()
        if not any(done.values()):
            return []
        lines = [
            f"{paths.DECISIONS}: {done['relabelled']} relabelled, {done['excluded']} "
            f"excluded, {done['kept']} kept as they are"
        ]
        lines += [f"  {path}: no longer in {data_dir}/, its decision is not applied"
                  for path in self.not_found]  # fmt: skip
        if self.test_unchanged:
            lines.append(f"  {len(self.test_unchanged)} decisions about test images not "
                         "applied: the model is scored on the test split as it is")  # fmt: skip
        return lines

    def metrics(self) -> dict:
        return {
            "relabelled": len(self.labels),
            "excluded": len(self.excluded),
            "kept": self.kept,
            "not_found": len(self.not_found),
            "test_unchanged": len(self.test_unchanged),
        }


def apply_to_plan(
    decisions: dict[str, Decision], files: list[SourceFile], placements: list[Placement]
) -> tuple[Applied, list[str]]:
    """The decisions applied to a planned split of `files`: excluded images marked unused
    in `placements` (with the reason), and each file's class after relabelling."""
    applied = apply_decisions(
        decisions,
        [(f.path, f.class_name, placed.split, placed.used)
         for f, placed in zip(files, placements, strict=True)],
    )  # fmt: skip
    for index in applied.excluded:
        placements[index].used = False
        placements[index].reason = f"excluded in {paths.DECISIONS}"
    return applied, [applied.labels.get(i, f.class_name) for i, f in enumerate(files)]


def apply_decisions(
    decisions: dict[str, Decision], placed: list[tuple[str, str, str | None, bool]]
) -> Applied:
    """The decisions for the files of data/ ((path, class, split, used), in order);
    only used train and val images change."""
    applied = Applied({}, set(), 0, [], [])
    for index, (path, class_name, split, used) in enumerate(placed):
        decision = decisions.get(path)
        if decision is None or not used:
            continue
        if split == "test":
            applied.test_unchanged.append(path)
        elif decision.action == "exclude":
            applied.excluded.add(index)
        elif decision.action == "relabel" and decision.label != class_name:
            applied.labels[index] = decision.label
            applied.relabelled.append({"path": path, "from": class_name, "to": decision.label})
        else:
            applied.kept += 1
    found = {path for path, *_ in placed}
    applied.not_found = sorted(path for path in decisions if path not in found)
    return applied
