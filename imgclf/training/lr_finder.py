"""The learning-rate range test: `learning_rate: auto` (Smith, 2017; fastai's `lr_find`).

The model trains for up to STEPS batches while the learning rate grows exponentially
from START to END; the loss, smoothed as fastai smooths it, falls, levels off and
blows up. The suggestion is fastai's default, "valley": along the longest stretch
where the loss keeps falling, the point halfway down, where it falls fast and is
still far from the blow-up. Then the weights are put back as they were,
and the real training starts from them with the suggested peak rate.

It costs at most STEPS training steps (fewer once the loss passes DIVERGED times its
best): about a tenth of the sample CNN's training, and seconds for a head on cached
features. The curve goes to DVCLive (`dvc plots show dvclive/<family>/plots/custom/
lr_find.json`), the rate used to metrics/<family>.json (`learning_rate`).
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from imgclf.param_groups import TrainParams
from imgclf.training.recipe import build_optimizer
from imgclf.training.trainer import Trainer

START, END, STEPS = 1e-7, 10.0, 100
DIVERGED = 4.0  # stop once the smoothed loss is this many times its lowest
SMOOTHING = 0.98  # exponential moving average of the loss, debiased (fastai's)
SKIP_END = 5  # the last points, where the loss takes off, are not suggested


@dataclass(frozen=True)
class RangeTest:
    """The learning rates tried, the smoothed loss at each, and the suggested rate."""

    learning_rates: list[float]
    losses: list[float]
    suggestion: float

    def points(self) -> list[dict]:
        """The curve, for a DVCLive plot (log10 of the rate: DVC's templates are linear)."""
        return [
            {"log10_learning_rate": round(float(np.log10(rate)), 4), "learning_rate": rate,
             "loss": round(loss, 6)}
            for rate, loss in zip(self.learning_rates, self.losses, strict=True)
        ]  # fmt: skip


def valley(losses: list[float]) -> int:
    """The index fastai's "valley" suggests: along the longest decreasing run of the loss
    (not necessarily contiguous), half of the way from its start to its end (fastai's
    start + 1.5 x a third)."""
    count = len(losses)
    longest = [1] * count
    start = end = 0
    for i in range(1, count):
        for j in range(i):
            if losses[i] < losses[j] and longest[i] < longest[j] + 1:
                longest[i] = longest[j] + 1
            if longest[end] < longest[i]:
                end, start = i, i - longest[i]
    sections = (end - start) / 3
    return start + int(sections) + int(sections / 2)


def range_test(
    model: keras.Model, batches: keras.utils.PyDataset, train: TrainParams,
    class_weight: dict[int, float] | None = None,
) -> RangeTest:  # fmt: skip
    """Train `model` on `batches` with a growing learning rate (the recipe's optimizer,
    loss and weight decay), then restore its weights; the curve and the suggestion."""
    saved = model.get_weights()
    model.compile(
        optimizer=build_optimizer(train, START),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=train.label_smoothing),
    )
    growth = (END / START) ** (1 / (STEPS - 1))
    rates, losses, average, best = [], [], 0.0, np.inf
    for step in range(STEPS):
        rate = START * growth**step
        model.optimizer.learning_rate = rate
        images, labels = batches[step % len(batches)]
        loss = float(model.train_on_batch(images, labels, class_weight=class_weight))
        if not np.isfinite(loss):
            break
        average = SMOOTHING * average + (1 - SMOOTHING) * loss
        smoothed = average / (1 - SMOOTHING ** (step + 1))
        rates.append(rate)
        losses.append(smoothed)
        best = min(best, smoothed)
        if smoothed > DIVERGED * best:
            break
    model.set_weights(saved)
    if len(losses) <= SKIP_END + 1:
        raise ValueError(
            f"the learning-rate range test diverged after {len(losses)} steps: set the "
            "family's learning_rate to a number instead of auto"
        )
    kept = losses[:-SKIP_END]
    return RangeTest(rates, losses, float(rates[valley(kept)]))


def peak_learning_rate(
    trainer: Trainer, model: keras.Model, batches: keras.utils.PyDataset, setting: float | str
) -> float:
    """The family's learning_rate: the number it sets, or for "auto" the range test's
    suggestion on `model` and `batches` (its curve logged to DVCLive)."""
    if setting != "auto":
        return float(setting)
    found = range_test(model, batches, trainer.params.train, trainer.class_weight)
    trainer.live.log_plot(
        "lr_find", found.points(), x="log10_learning_rate", y="loss", template="linear",
        title="Learning-rate range test (smoothed training loss)",
        x_label="log10 learning rate", y_label="loss",
    )  # fmt: skip
    print(
        f"{trainer.family.stage}: learning-rate range test over {len(found.losses)} steps "
        f"suggests {found.suggestion:.3g}"
    )
    return found.suggestion
