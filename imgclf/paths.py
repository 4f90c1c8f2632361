"""Where the pipeline keeps things: every path a stage reads or writes, in one place.

Paths are relative to the project root, where `dvc repro` runs the stages; dvc.yaml
names the same paths (tests/test_dvc_yaml.py holds the two together). A stage run
by a worker that is not the chief writes under another root (see
training/distribute.output_root), so the per-family paths take one.
"""

from __future__ import annotations

from pathlib import Path

PARAMS = Path("params.yaml")
DATA = Path("data")
DATA_DVC = Path("data.dvc")

PREPARED = Path("prepared")
PREPARED_INFO = PREPARED / "classes.json"  # class names and image size (stage_files.PreparedInfo)
PREPARE_REPORT = PREPARED / "report.json"  # every skipped file and why

# What a person decided in `imgclf review` (relabel, exclude, keep), applied by prepare.
DECISIONS = Path("labels") / "decisions.csv"
# The findings as the review page's last decision saw them: what is new since, and gone.
LAST_REVIEW = Path("labels") / "last_review.json"

AUDIT = Path("audit")  # the data audit's findings, kept in git
AUDIT_EXCLUDED = AUDIT / "excluded.csv"  # images training leaves out (audit.exclude)

MODELS = Path("models")
EXPORT = MODELS / "best"  # what the web app and the CLI serve
EXPORT_STAGING = MODELS / ".best.staging"  # the next export, swapped in when complete

METRICS = Path("metrics")
EVALUATION = Path("evaluation")  # the export's plots, kept in git
# The training and validation images the exported model is surest are wrong (imgclf review).
REVIEW_MISTAKES = EVALUATION / "review_mistakes.csv"
DVCLIVE = Path("dvclive")
# Wall times of each stage's last run: they differ run to run, so they stay out of the
# metrics that `dvc metrics diff` compares (and out of git).
TIMINGS = Path("timings")
# Features of frozen pretrained bases, shared by the stages that compute the same ones
# (training/feature_cache.py); outside git and DVC, safe to delete.
FEATURE_CACHE = Path(".imgclf-cache") / "features"


def metrics_file(name: str, root: Path = Path(".")) -> Path:
    """metrics/<stage or family>.json."""
    return root / METRICS / f"{name}.json"


def trained_model(family: str, root: Path = Path(".")) -> Path:
    """models/<family>/model.keras, written by the family's train stage."""
    return root / MODELS / family / "model.keras"


def live_dir(family: str, root: Path = Path(".")) -> Path:
    """dvclive/<family>/: the family's per-epoch curves and validation confusion matrix."""
    return root / DVCLIVE / family


def timings_file(stage: str, root: Path = Path(".")) -> Path:
    """timings/<stage>.json."""
    return root / TIMINGS / f"{stage}.json"
