"""Review decisions: what a person decided about an image, kept in labels/decisions.csv.

One row per image of `data/` (its path as under data/): `relabel` it as another class,
`exclude` it from training and validation, or `keep` it as it is (reviewed, nothing to
change). `prepare` applies them after planning the splits, so no image changes split
because another was relabelled, and never to the test split, which stays the
untouched data the model is scored on. `data/` itself is never modified.
"""

from __future__ import annotations

import csv
import datetime
from dataclasses import dataclass, field
from pathlib import Path

from imgclf.atomic_io import FORMULA_STARTS, csv_table
from imgclf.data.layout import DataError

ACTIONS = ("relabel", "exclude", "keep")
FINDINGS = ("label_issue", "near_duplicate", "outlier", "mistake", "")
COLUMNS = ["file", "action", "label", "finding", "when"]


class DecisionsError(DataError):
    """labels/decisions.csv cannot be used as it is; the message names the line."""


@dataclass(frozen=True)
class Decision:
    file: str  # as under data/, forward slashes
    action: str  # one of ACTIONS
    label: str = ""  # the new class, for relabel
    finding: str = ""  # what the review page showed it for (FINDINGS)
    when: str = ""  # ISO 8601, UTC

    def row(self) -> dict[str, str]:
        return {column: getattr(self, column) for column in COLUMNS}


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def check(decision: Decision, class_names: list[str], where: str) -> None:
    """Raise DecisionsError naming `where` when the decision cannot be applied."""
    if not decision.file or decision.file.startswith("/") or ".." in decision.file.split("/"):
        raise DecisionsError(f"{where}: file {decision.file!r} is not a path under data/")
    if decision.action not in ACTIONS:
        raise DecisionsError(
            f"{where}: action {decision.action!r} for {decision.file}: give one of "
            f"{', '.join(ACTIONS)}"
        )
    if decision.action == "relabel" and decision.label not in class_names:
        raise DecisionsError(
            f"{where}: {decision.file} is relabelled as {decision.label!r}, which is not a "
            f"class (the classes: {', '.join(class_names)}); fix the label or delete the line"
        )
    if decision.action != "relabel" and decision.label:
        raise DecisionsError(
            f"{where}: {decision.file} has label {decision.label!r} with action "
            f"{decision.action!r}: only relabel takes a label"
        )
    if decision.finding not in FINDINGS:
        raise DecisionsError(
            f"{where}: finding {decision.finding!r}: give one of {', '.join(FINDINGS[:-1])} "
            "or leave it empty"
        )


def _unescaped(cell: str) -> str:
    """A cell as it was before csv_table kept a spreadsheet from reading it as a formula."""
    return cell[1:] if cell.startswith("'") and cell[1:2] in FORMULA_STARTS and cell[1:] else cell


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
        fields = {column: _unescaped((row.get(column) or "").strip()) for column in COLUMNS}
        decision = Decision(**fields)
        check(decision, class_names, f"{path}:{line}")
        if decision.file in decisions:
            raise DecisionsError(
                f"{path}:{line}: a second decision for {decision.file}: keep one of its lines"
            )
        decisions[decision.file] = decision
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

    def metrics(self) -> dict:
        return {
            "relabelled": len(self.labels),
            "excluded": len(self.excluded),
            "kept": self.kept,
            "not_found": len(self.not_found),
            "test_unchanged": len(self.test_unchanged),
        }


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
