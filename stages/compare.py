"""Stage `compare`: choose the better model on a validation metric.

Reads params `compare.*` and metrics/cnn.json, metrics/resnet.json; writes
metrics/compare.json (both scores, the margin and the selected model). A tie goes
to the model with fewer parameters.
"""

from __future__ import annotations

import json
from pathlib import Path

from imgclf import params as params_file
from imgclf.files import write_json
from imgclf.stage import run

MODELS = ("cnn", "resnet")
METRICS_FILE = Path("metrics/compare.json")
LOWER_IS_BETTER = {"val_loss"}


def read_metrics(model: str) -> dict:
    path = Path(f"metrics/{model}.json")
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `dvc repro train_{model}` first")
    return json.loads(path.read_text(encoding="utf-8"))


def main() -> None:
    metric = params_file.load().compare.metric
    metrics = {model: read_metrics(model) for model in MODELS}
    sign = -1 if metric in LOWER_IS_BETTER else 1
    # Best score first; on a tie, fewer parameters first.
    ranked = sorted(MODELS, key=lambda m: (-sign * metrics[m][metric], metrics[m]["params_total"]))
    selected, runner_up = ranked
    margin = sign * (metrics[selected][metric] - metrics[runner_up][metric])
    write_json(METRICS_FILE, {
        "metric": metric,
        **{f"{model}_{metric}": metrics[model][metric] for model in MODELS},
        "margin": margin,
        "selected": selected,
    })  # fmt: skip
    print(
        f"compare: {selected} wins on {metric} "
        f"({metrics[selected][metric]:.4f} vs {metrics[runner_up][metric]:.4f} for {runner_up})"
    )


if __name__ == "__main__":
    run(main, "compare")
