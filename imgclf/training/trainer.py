"""One train stage's run, from params.yaml to its outputs: the skeleton every family shares.

    with open_trainer(family) as trainer:
        ... build, fit ...
        trainer.finish(model, val_probabilities, epochs_trained=..., train_seconds=...,
                       images_seen=...)

`open_trainer` seeds everything, reads the prepared splits, chooses the
tf.distribute strategy and this worker's role, and opens the DVCLive run under
the right output root; `finish` writes the stage's declared outputs (the
validation confusion matrix, models/<family>/model.keras, metrics/<family>.json),
its timings, and the one closing line.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from dvclive import Live
from imgclf import params as params_file
from imgclf import paths
from imgclf.atomic_io import write_timings
from imgclf.data.prepared import PreparedSplit, read_used_split
from imgclf.evaluation.metrics import classification_metrics, log_confusion
from imgclf.models.registry import ModelFamily
from imgclf.models.saving import save_model
from imgclf.param_groups import Group
from imgclf.params import Params
from imgclf.seeding import make_deterministic
from imgclf.stage_files import PreparedInfo, TrainedMetrics
from imgclf.training.distribute import WorkerRole, choose_strategy, output_root, worker_role
from imgclf.training.fit import open_live
from imgclf.training.recipe import class_weights, one_hot


@dataclass
class Trainer:
    """What a train stage works with, and where its outputs go."""

    family: ModelFamily
    params: Params
    info: PreparedInfo
    train_split: PreparedSplit  # memory-mapped: read batch by batch
    val: PreparedSplit  # in memory
    strategy: tf.distribute.Strategy
    role: WorkerRole
    out: Path  # the project for the chief, a scratch directory for the other workers
    live: Live

    @property
    def num_classes(self) -> int:
        return self.info.num_classes

    @property
    def family_params(self) -> Group:
        """The family's own params group (`cnn`, `resnet`, ...)."""
        return self.params.family(self.family.name)

    @functools.cached_property
    def class_weight(self) -> dict[int, float] | None:
        """train.class_weight applied to the training labels (None: unweighted)."""
        return class_weights(
            self.train_split.labels, self.num_classes, self.params.train.class_weight
        )

    def val_data(self, inputs: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(validation inputs, one-hot labels) for fit(): the images, or features of them.

        The images stay uint8 (a quarter of float32's bytes); the model casts them in
        its graph, exactly as it casts the training batches.
        """
        if inputs is None:
            inputs = self.val.images
        return inputs, one_hot(self.val.labels, self.num_classes)

    def finish(
        self,
        model: keras.Model,
        val_probabilities: np.ndarray,
        *,
        epochs_trained: int,
        train_seconds: float,
        images_seen: int,
        timings: dict[str, float] | None = None,
        note: str = "",
        **details: object,
    ) -> TrainedMetrics:
        """Write the stage's outputs and print its closing line; returns the metrics written.

        `details` are family-specific metrics (`pretrained`, `augmented_views`);
        `timings` are further wall times for timings/<stage>.json.
        """
        name, stage = self.family.name, self.family.stage
        log_confusion(self.live, self.val.labels, val_probabilities, self.info.class_names)
        self.live.end()
        model_file = paths.trained_model(name, self.out)
        save_model(model, model_file)
        metrics = TrainedMetrics(
            **classification_metrics(
                val_probabilities, self.val.labels, self.info.class_names, "val"
            ),
            **parameter_counts(model),
            epochs_trained=epochs_trained,
            class_weighted=self.class_weight is not None,
            workers=self.role.workers,
            **details,
        )
        metrics.write(paths.metrics_file(name, self.out))
        write_timings(stage, {
            **(timings or {}),
            "train_seconds": train_seconds,
            "train_images_per_second": images_seen / train_seconds,
        }, self.out)  # fmt: skip
        done = f"val_accuracy {metrics.val_accuracy:.4f}{note} after {epochs_trained} epochs"
        if self.role.is_chief:
            print(f"{stage}: {done} in {train_seconds:.0f}s; saved {model_file}")
        else:
            print(self.role.bystander_note(stage, done))
        return metrics


@contextlib.contextmanager
def open_trainer(family: ModelFamily) -> Iterator[Trainer]:
    """Everything a train stage starts from (see the module docstring)."""
    params = params_file.load()
    make_deterministic(params.train.seed)
    info = PreparedInfo.load()
    # Less any images audit.exclude leaves out (audit/excluded.csv; none by default).
    train_split, val = read_used_split("train"), read_used_split("val", mmap=False)
    strategy = choose_strategy(params.train.distribute)
    role = worker_role()
    with output_root(role) as out:
        live = open_live(family.name, out)
        yield Trainer(family, params, info, train_split, val, strategy, role, out, live)


def parameter_counts(model: keras.Model) -> dict:
    """Total and trainable parameter counts."""
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return {"params_total": int(model.count_params()), "params_trainable": trainable}
