"""Stage `compare`: choose the best candidate on a validation metric.

Reads params `compare.*` and every registered family's metrics/<family>.json; writes
metrics/compare.json (each score, the margin over the runner-up and the selected
family). A tie goes to the candidate with fewer parameters.
"""

from __future__ import annotations

from imgclf import models
from imgclf import params as params_file
from imgclf.stage_errors import run_stage
from imgclf.stage_files import Comparison, TrainedMetrics

LOWER_IS_BETTER = {"val_loss"}


def main() -> None:
    metric = params_file.load().compare.metric
    trained = {family.name: TrainedMetrics.load(family.name) for family in models.families()}
    sign = -1 if metric in LOWER_IS_BETTER else 1
    # Best score first; on a tie, fewer parameters first.
    ranked = sorted(trained, key=lambda name: (-sign * trained[name].score(metric),
                                               trained[name].params_total))  # fmt: skip
    selected, runner_up = ranked[0], ranked[1] if len(ranked) > 1 else None
    scores = {name: metrics.score(metric) for name, metrics in trained.items()}
    # With a single family registered there is nobody to beat: the margin is 0.
    margin = sign * (scores[selected] - scores[runner_up]) if runner_up else 0.0
    Comparison(metric=metric, scores=scores, margin=margin, selected=selected).write()
    print(
        f"compare: {selected} wins on {metric} ("
        + ", ".join(f"{name} {score:.4f}" for name, score in scores.items())
        + (f"; margin over {runner_up} {margin:.4f})" if runner_up else "; the only candidate)")
    )


if __name__ == "__main__":
    run_stage(main, "compare")
