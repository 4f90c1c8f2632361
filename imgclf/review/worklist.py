"""What the review page lists: the audit's findings and the export's confident mistakes.

Read from the files the pipeline keeps in git (audit/*.csv, evaluation/review_mistakes.csv),
so the page needs neither TensorFlow nor the serving model. Test images are never
offered for a decision: the model is scored on them, and choosing which to fix by
its mistakes would flatter that score.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path

from imgclf import paths
from imgclf.atomic_io import spreadsheet_unescaped

# What current_findings reads, under the project.
FINDINGS_FILES = (
    paths.AUDIT / "label_issues.csv", paths.AUDIT / "near_duplicates.csv",
    paths.AUDIT / "outliers.csv", paths.REVIEW_MISTAKES,
)  # fmt: skip


@dataclass(frozen=True)
class Finding:
    """One thing to look at: an image (or a pair, for near-duplicates)."""

    key: str  # kind and file(s): stable across runs, so decisions and reviews match it
    kind: str  # one of data.decisions.FINDING_KINDS
    split: str
    file: str
    label: str  # the label it has now
    suggested: str = ""  # what the audit or the model says it is
    probability: float | None = None  # of `suggested`
    score: float | None = None  # label quality, outlier score or duplicate distance
    partner_split: str = ""  # near-duplicates: the other image
    partner_file: str = ""
    partner_label: str = ""

    def files(self) -> list[str]:
        """The files a decision about this finding may touch (never a test image)."""
        pairs = [(self.split, self.file), (self.partner_split, self.partner_file)]
        return [file for split, file in pairs if file and split != "test"]

    def as_json(self) -> dict:
        return {**asdict(self), "files": self.files()}


def _rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    # As csv_table wrote them: a name that would start a formula is read back as it is.
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as table:
        return [
            {key: spreadsheet_unescaped(value) if isinstance(value, str) else value
             for key, value in row.items()}
            for row in csv.DictReader(table)
        ]  # fmt: skip


def _number(text: str) -> float | None:
    return float(text) if text else None


def current_findings(root: Path) -> list[Finding]:
    """Every finding of the project at `root`, each kind in the order its file ranks it."""
    labels, duplicates, outliers, mistakes = (root / name for name in FINDINGS_FILES)
    found = []
    for row in _rows(labels):
        found.append(Finding(
            f"label_issue:{row['file']}", "label_issue", row["split"], row["file"], row["given"],
            row["suggested"], _number(row["suggested_probability"]), _number(row["quality"]),
        ))  # fmt: skip
    for row in _rows(duplicates):
        if row["split"] == "test" and row["duplicate_split"] == "test":
            continue  # nothing to decide: both are test images
        found.append(Finding(
            f"near_duplicate:{row['file']}|{row['duplicate_file']}", "near_duplicate",
            row["split"], row["file"], row["label"], score=_number(row["distance"]),
            partner_split=row["duplicate_split"], partner_file=row["duplicate_file"],
            partner_label=row["duplicate_label"],
        ))  # fmt: skip
    for row in _rows(outliers):
        if row["split"] != "test":
            found.append(Finding(
                f"outlier:{row['file']}", "outlier", row["split"], row["file"], row["label"],
                score=_number(row["score"]),
            ))  # fmt: skip
    for row in _rows(mistakes):
        if row["split"] != "test":
            found.append(Finding(
                f"mistake:{row['file']}", "mistake", row["split"], row["file"], row["given"],
                row["predicted"], _number(row["confidence"]),
            ))  # fmt: skip
    return found
