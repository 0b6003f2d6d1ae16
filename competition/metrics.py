"""MAP@k (the competition's metric) and accuracy, on score matrices or on predicted label lists."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def top_k_indices(scores: np.ndarray, k: int = 3) -> np.ndarray:
    """Indices of the k highest scores per row, best first; ties go to the lower label index."""
    scores = np.asarray(scores)
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def average_precision_at_k(true_label, predicted: Sequence, k: int = 3) -> float:
    """1/rank of the true label within the first k predictions (0 if absent); one label per clip."""
    for rank, label in enumerate(list(predicted)[:k], start=1):
        if label == true_label:
            return 1.0 / rank
    return 0.0


def map_at_k_labels(true_labels: Sequence, predicted_lists: Sequence[Sequence], k: int = 3) -> float:
    if len(true_labels) != len(predicted_lists):
        raise ValueError(f"{len(true_labels)} true labels but {len(predicted_lists)} predictions")
    if not len(true_labels):
        raise ValueError("MAP@k of zero rows is undefined")
    return float(np.mean([average_precision_at_k(t, p, k) for t, p in zip(true_labels, predicted_lists)]))


def map_at_k(true_ids: np.ndarray, scores: np.ndarray, k: int = 3) -> float:
    """MAP@k with one true label per row, from a (rows, classes) score matrix."""
    true_ids = np.asarray(true_ids)
    top = top_k_indices(scores, k)  # fewer than k columns when there are fewer than k classes
    hits = top == true_ids[:, None]
    return float((hits / np.arange(1, top.shape[1] + 1)).sum(axis=1).mean())


def accuracy(true_ids: np.ndarray, scores: np.ndarray) -> float:
    return float((top_k_indices(scores, 1)[:, 0] == np.asarray(true_ids)).mean())


METRICS = {"map@3": lambda y, p: map_at_k(y, p, 3), "accuracy": accuracy}


def score(metric: str, true_ids: np.ndarray, scores: np.ndarray) -> float:
    return METRICS[metric](true_ids, scores)
