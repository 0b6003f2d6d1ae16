"""Predictions of trained models: TTA crops of every clip averaged per model (or each clip whole, in
one pass), models blended by a weighted geometric mean (a run's folds, an ensemble's runs). `make
train`, `make predict` and `make ensemble` all predict through here."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from competition.config import WHOLE_CLIP
from competition.errors import KitError
from competition.features.store import FeatureStore
from competition.modeling.batches import fit_length, tta_crops, whole_clip_length

EPS = 1e-7  # probabilities are clipped to [EPS, 1] before their logarithms are blended


class BlendError(KitError, ValueError):
    pass


def predict_clips(model, clips, length: int, n_crops: int, batch_size: int = 64) -> np.ndarray:
    """Class probabilities per clip: the mean over its TTA crops, or (`n_crops` WHOLE_CLIP) of the
    whole clip in one pass."""
    if not len(clips):
        return np.zeros((0, model.output_shape[-1]), np.float32)
    if n_crops == WHOLE_CLIP:
        return predict_whole_clips(model, clips, length, batch_size)
    crops, owners = tta_crops(clips, length, n_crops)
    crop_probs = predict_batches(model, crops, batch_size)
    sums = np.zeros((len(clips), crop_probs.shape[1]), np.float64)
    np.add.at(sums, owners, crop_probs)
    return (sums / np.bincount(owners, minlength=len(clips))[:, None]).astype(np.float32)


def predict_whole_clips(model, clips, length: int, batch_size: int) -> np.ndarray:
    """Each clip whole, in one pass, clips of one length batched together (a batch is made only when
    it is predicted, so a long test set never sits in memory whole)."""
    lengths = np.array([whole_clip_length(len(clip), length) for clip in clips])
    probs = np.zeros((len(clips), model.output_shape[-1]), np.float32)
    for frames in np.unique(lengths):
        positions = np.flatnonzero(lengths == frames)
        for i in range(0, len(positions), batch_size):
            batch = positions[i:i + batch_size]
            probs[batch] = predict_batches(model, np.stack([fit_length(clips[p], int(frames)) for p in batch]),
                                           batch_size)
    return probs


def predict_store(model, store: FeatureStore, rows: np.ndarray, length: int, n_crops: int) -> np.ndarray:
    return predict_clips(model, [store.clip(int(row)) for row in rows], length, n_crops)


def predict_batches(model, x: np.ndarray, batch_size: int) -> np.ndarray:
    # Calling the model directly avoids predict()'s per-call setup, which dominates on small sets.
    outputs = [np.asarray(model(x[i:i + batch_size], training=False)) for i in range(0, len(x), batch_size)]
    return np.concatenate(outputs)


def geometric_mean(members: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """Weighted geometric mean of probability matrices, renormalised to sum to 1 per row."""
    if not members:
        raise BlendError("nothing to blend")
    weights = np.ones(len(members)) if weights is None else np.asarray(weights, np.float64)
    weights = weights / weights.sum()
    log_blend = sum(w * np.log(np.clip(m, EPS, 1.0)) for w, m in zip(weights, members))
    blend = np.exp(log_blend - log_blend.max(axis=1, keepdims=True))
    return (blend / blend.sum(axis=1, keepdims=True)).astype(np.float32)


