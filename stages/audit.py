"""Stage `audit`: what is probably wrong with the prepared data (see docs/audit.md).

Likely label errors in train and val, near-duplicates within and across all splits
(across splits: leakage), and outliers, all on the pretrained EfficientNet-Lite's
features. Reads params `audit.*` (and `prepare.seed` for the folds); writes audit/
(label_issues.csv, near_duplicates.csv, outliers.csv, excluded.csv and the
label_issues.png gallery, kept in git) and metrics/audit.json. With `audit.exclude`
the chosen findings' training and validation images are listed in
audit/excluded.csv, which the train stages leave out; the test split is never
changed.
"""

from __future__ import annotations

import json
import time

from imgclf import params as params_file
from imgclf import paths
from imgclf.atomic_io import write_json, write_timings
from imgclf.audit.embeddings import extractor
from imgclf.audit.report import run_audit
from imgclf.data.layout import SPLITS
from imgclf.data.prepared import read_split
from imgclf.models.efficientnet import FAMILY
from imgclf.models.input_size import input_size
from imgclf.seeding import make_deterministic
from imgclf.stage_errors import run_stage
from imgclf.stage_files import PreparedInfo


def main() -> None:
    params = params_file.load()
    p = params.audit
    started = time.perf_counter()
    make_deterministic(params.prepare.seed)
    info = PreparedInfo.load()
    splits = {split: read_split(split) for split in SPLITS}
    side = input_size(FAMILY, p.image_size, info.image_size)
    model = extractor(p.variant, info.image_size, side)
    audit = run_audit(splits, info.class_names, p, model, params.prepare.seed)
    excluded = audit.exclusions(p.exclude)
    audit.write(paths.AUDIT, excluded, p.gallery)

    prepare_metrics = paths.metrics_file("prepare")
    if not prepare_metrics.is_file():
        raise FileNotFoundError(f"{prepare_metrics} not found: run `dvc repro prepare` first")
    prepared = json.loads(prepare_metrics.read_text(encoding="utf-8"))
    metrics = audit.metrics(excluded)
    # Every file found in data/ is accounted for once: used, skipped by prepare, or excluded.
    metrics["files"] = {
        "found": prepared["found"],
        "skipped": prepared["found"] - prepared["used"],
        "excluded": len(excluded),
        "used": prepared["used"] - len(excluded),
    }
    write_json(paths.metrics_file("audit"), metrics)
    seconds = time.perf_counter() - started
    write_timings("audit", {"audit_seconds": seconds})
    leaks = metrics["near_duplicates"]["across_splits"]
    print(
        f"audit: {len(audit.label_issues)} likely label errors, "
        f"{len(audit.near_duplicates)} near-duplicate pairs ({leaks} across splits), "
        f"{len(audit.outliers)} outliers in {sum(audit.counts.values())} images "
        f"({p.variant} features at {side} px) in {seconds:.0f}s; see {paths.AUDIT}/"
    )
    if excluded:
        print(f"audit: {len(excluded)} images left out of training ({', '.join(p.exclude)}); "
              f"see {paths.AUDIT_EXCLUDED}")  # fmt: skip


if __name__ == "__main__":
    run_stage(main, "audit", writes=f"{paths.AUDIT}/")
