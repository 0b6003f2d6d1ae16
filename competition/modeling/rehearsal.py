"""Rehearsal (`train.rehearsal_weight`): a transfer's fine-tune that keeps training the base's own task.

A plain fine-tune trains the base's backbone on the target's clips alone, and may unlearn what the
base's larger set taught it. With `rehearsal_weight` above 0, every training batch also holds as many
of the base's own training clips (cropped and augmented as the target's), scored by a second head that
starts as the base's own (`head_base_output`), their loss weighted by `rehearsal_weight`. The second head
exists only while training (and in the fold's resumable checkpoint): the kept model, its predictions and
every later step see the target's head alone. A clip of a recording the target also holds is never
rehearsed (the leakage guard's rule, datasets.sources), whatever the base was trained on.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from competition.config import FeatureConfig, TrainConfig
from competition.errors import KitError
from competition.features.store import FeatureStore
from competition.modeling.batches import soft_targets, training_batches

BASE_HEAD = "head_base_output"
# The rehearsal stream's own generator, apart from the target batches' (seed, fold, epoch) one.
REHEARSAL_STREAM = 1


class RehearsalError(KitError, ValueError):
    """Rehearsal asked for where it cannot run (no base clips, or a base head of another size)."""


@dataclass(frozen=True)
class Rehearsal:
    """The base's training clips a fine-tune rehearses: their cached features and one-hot targets over
    the base's labels (the order of its head's outputs)."""

    dataset: str
    labels: tuple[str, ...]
    store: FeatureStore
    rows: np.ndarray
    targets: np.ndarray

    def batches(self, settings: TrainConfig, length: int, rng: np.random.Generator) -> Iterator[tuple]:
        """(x, y, weight) batches of the base's clips, `settings.batch_size` each, without end: one pass in
        a random order after another, augmented as the target's batches are."""
        weights = np.ones(len(self.rows), np.float32)
        while True:
            yield from training_batches(self.store, self.rows, self.targets, weights, settings, length, rng)


def rehearsal_set(workspace, dataset, base_train: pd.DataFrame, features: FeatureConfig,
                  target_name: str, target_train: pd.DataFrame) -> Rehearsal:
    """The base's training clips (`base_train`: the table it was trained on, whose feature cache is then
    its own) but those of recordings the target holds, on `features`."""
    from competition.datasets.sources import shared_sources, without_sources
    from competition.features.cache import build_features

    shared = shared_sources(base_train, target_train)
    kept = without_sources(base_train, shared)
    if kept.empty:
        raise RehearsalError(f"{dataset.name}: no training clip left to rehearse")
    print(f"rehearsal: {len(kept)} {dataset.name} clip(s) beside {target_name}'s"
          + (f" ({len(base_train) - len(kept)} of {len(shared)} recording(s) {target_name} holds left out)"
             if shared else ""), file=sys.stderr)
    store = build_features(workspace, dataset.name, {"train": base_train}, features)["train"]
    ids = kept["label"].map(dataset.label_to_id).to_numpy()
    return Rehearsal(dataset.name, tuple(dataset.labels), store, store.rows_of(kept["fname"]),
                     soft_targets(ids, len(dataset.labels), np.zeros(len(ids), np.float32)))


def joint_model(model, base, n_base_classes: int, dropout: float):
    """`model` (the target's, its backbone copied from `base`) with a second head on the same embedding,
    started as `base`'s own head: outputs [target, base]."""
    import keras
    from keras import layers

    from competition.modeling.models import HEAD_PREFIX

    base_head = base.get_layer(f"{HEAD_PREFIX}output")
    if base_head.units != n_base_classes:
        raise RehearsalError(f"the base's head has {base_head.units} outputs, its dataset {n_base_classes} labels: "
                             "is the base trained on that dataset?")
    embedding = model.get_layer(f"{HEAD_PREFIX}dropout").input
    x = layers.Dropout(dropout, name=f"{HEAD_PREFIX}base_dropout")(embedding)
    output = layers.Dense(n_base_classes, activation="softmax", dtype="float32", name=BASE_HEAD)(x)
    joint = keras.Model(model.input, [model.outputs[0], output], name=model.name)
    joint.get_layer(BASE_HEAD).set_weights(base_head.get_weights())
    return joint


def target_model(model):
    """The target's model alone (a joint model's first output); a model of one output as it is."""
    import keras

    return model if len(model.outputs) == 1 else keras.Model(model.input, model.outputs[0], name=model.name)


def joint_batches(target: Iterator[tuple], rehearsed: Iterator[tuple], n_base_classes: int,
                  weight: float) -> Iterator[tuple]:
    """Each target batch with a rehearsal batch after it: (x, (y target, y base), (w target, w base)), each
    head's targets and weights zero on the other's rows."""
    for x, y, w in target:
        rx, ry, rw = next(rehearsed)
        yield (np.concatenate([x, rx]),
               (np.concatenate([y, np.zeros((len(rx), y.shape[1]), np.float32)]),
                np.concatenate([np.zeros((len(x), n_base_classes), np.float32), ry])),
               (np.concatenate([w, np.zeros(len(rx), np.float32)]),
                np.concatenate([np.zeros(len(x), np.float32), weight * rw]).astype(np.float32)))

