"""Fixed-size inputs cut from variable-length cached clips: training batches, augmentation, TTA crops.

Pure NumPy on memory-mapped features: a batch reads only the frames it crops. Clips shorter than a
crop are tiled (repeated) to the crop length, so short sounds are not diluted by padding. Every
random choice comes from the generator passed in, so a seeded epoch is the same epoch every time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from competition.config import TrainConfig
from competition.features.store import FeatureStore


def fit_length(clip: np.ndarray, length: int, start: int = 0) -> np.ndarray:
    """`length` frames of a clip from `start`, tiling clips shorter than `length`."""
    if len(clip) >= length:
        return np.asarray(clip[start:start + length], np.float32)
    repeats = -(-length // len(clip))
    return np.tile(np.asarray(clip, np.float32), (repeats, 1))[:length]


def random_crops(store: FeatureStore, rows: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    batch = np.empty((len(rows), length, store.frames.shape[1]), np.float32)
    for i, row in enumerate(rows):
        clip = store.clip(int(row))
        start = int(rng.integers(0, len(clip) - length + 1)) if len(clip) > length else 0
        batch[i] = fit_length(clip, length, start)
    return batch


def whole_clip_length(n_frames: int, length: int) -> int:
    """Frames a clip is predicted on with WHOLE_CLIP: all of it, tiled up to one crop if shorter (as in
    training, where short sounds are tiled, never padded)."""
    return max(n_frames, length)


def tta_starts(n_frames: int, length: int, n_crops: int) -> np.ndarray:
    """Evenly spaced crop starts covering the clip; one crop when the clip fits in one."""
    if n_frames <= length or n_crops <= 1:
        return np.array([max(0, (n_frames - length) // 2)])
    return np.unique(np.linspace(0, n_frames - length, n_crops).round().astype(int))


def tta_crops(clips: Sequence[np.ndarray], length: int, n_crops: int) -> tuple[np.ndarray, np.ndarray]:
    """All TTA crops of the given clips, and for each crop the position of its clip in `clips`."""
    crops, owners = [], []
    for position, clip in enumerate(clips):
        for start in tta_starts(len(clip), length, n_crops):
            crops.append(fit_length(clip, length, int(start)))
            owners.append(position)
    return np.stack(crops), np.array(owners)


def mixup(x: np.ndarray, y: np.ndarray, w: np.ndarray, alpha: float, rng: np.random.Generator):
    """Blend each example with a random partner (Zhang et al. 2018); labels and weights blend alike."""
    if alpha <= 0:
        return x, y, w
    lam = rng.beta(alpha, alpha, size=len(x)).astype(np.float32)
    partner = rng.permutation(len(x))

    def mix(a: np.ndarray) -> np.ndarray:
        share = lam.reshape(-1, *[1] * (a.ndim - 1))
        return share * a + (1 - share) * a[partner]

    return mix(x), mix(y), mix(w)


def spec_augment(x: np.ndarray, fill: np.ndarray, *, time_masks: int, freq_masks: int, fraction: float,
                 rng: np.random.Generator) -> np.ndarray:
    """SpecAugment-style masking (Park et al. 2019): bands of frames and bins set to `fill` (per-bin mean)."""
    if not time_masks and not freq_masks:
        return x
    x = x.copy()
    n_frames, n_bins = x.shape[1:]
    for example in x:
        for _ in range(time_masks):
            width = int(rng.integers(0, max(1, int(n_frames * fraction)) + 1))
            start = int(rng.integers(0, n_frames - width + 1))
            example[start:start + width] = fill
        for _ in range(freq_masks):
            width = int(rng.integers(0, max(1, int(n_bins * fraction)) + 1))
            start = int(rng.integers(0, n_bins - width + 1))
            example[:, start:start + width] = fill[start:start + width]
    return x


def shift_and_gain(x: np.ndarray, *, max_shift: int, gain_db: float, rng: np.random.Generator) -> np.ndarray:
    """Log-mel frames moved up or down by up to `max_shift` bins (about a pitch shift; the edge bin
    fills the gap) and raised or lowered by up to `gain_db` dB (a recording level), per example."""
    if not max_shift and not gain_db:
        return x
    n_bins = x.shape[2]
    shifts = rng.integers(-max_shift, max_shift + 1, size=len(x))
    source = np.clip(np.arange(n_bins)[None, :] - shifts[:, None], 0, n_bins - 1)  # (examples, bins)
    x = np.take_along_axis(x, source[:, None, :], axis=2)
    return x + rng.uniform(-gain_db, gain_db, size=(len(x), 1, 1)).astype(np.float32)


def soft_targets(ids: np.ndarray, n_classes: int, smoothing: np.ndarray) -> np.ndarray:
    """One-hot targets with per-row label smoothing (the smoothed mass spread over every class)."""
    smoothing = np.asarray(smoothing, np.float32).reshape(-1, 1)
    targets = np.repeat(smoothing / n_classes, n_classes, axis=1)
    targets[np.arange(len(ids)), ids] += 1 - smoothing[:, 0]
    return targets


def class_balance_weights(ids: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-row loss weights giving every class present the same total weight; the mean weight is 1."""
    counts = np.bincount(ids, minlength=n_classes)
    return (len(ids) / (np.count_nonzero(counts) * counts[ids])).astype(np.float32)


def training_batches(store: FeatureStore, rows: np.ndarray, targets: np.ndarray, weights: np.ndarray,
                     settings: TrainConfig, length: int, rng: np.random.Generator) -> Iterator[tuple]:
    """One epoch of (x, y, sample weight) batches in a random order: crop, shift and gain, mask, mix."""
    order = rng.permutation(len(rows))
    for start in range(0, len(order), settings.batch_size):
        chosen = order[start:start + settings.batch_size]
        x = random_crops(store, rows[chosen], length, rng)
        x = shift_and_gain(x, max_shift=settings.bin_shift, gain_db=settings.gain_db, rng=rng)
        x = spec_augment(x, store.mean, time_masks=settings.time_masks, freq_masks=settings.freq_masks,
                         fraction=settings.mask_fraction, rng=rng)
        yield mixup(x, targets[chosen], weights[chosen], settings.mixup_alpha, rng)
