"""A packed split of a feature cache, memory-mapped: what training and prediction read.

    <split>/frames.npy     all clips end to end, float16 (frames, bins)
    <split>/index.csv      fname, start, length (rows of frames.npy), failed (1 = blank input)
    <split>/failures.json  {fname: why it could not be decoded} for the failed clips
    train/stats.npz        per-bin mean and std over all train frames (input normalisation)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass
class FeatureStore:
    """One packed split: frames of every clip, end to end, memory-mapped."""

    directory: Path
    frames: np.ndarray            # (total_frames, bins) float16, memory-mapped
    index: pd.DataFrame           # fname, start, length, failed
    mean: np.ndarray              # (bins,) float32, from the train split
    std: np.ndarray

    def __post_init__(self):
        # clip() runs for every crop of every batch; a pandas lookup there cost more than the crop.
        self._starts = self.index["start"].to_numpy()
        self._lengths = self.index["length"].to_numpy()

    @classmethod
    def open(cls, split_dir: Path) -> FeatureStore:
        index = pd.read_csv(split_dir / "index.csv", dtype={"fname": str})
        stats = np.load(split_dir.parent / "train" / "stats.npz")
        frames = np.load(split_dir / "frames.npy", mmap_mode="r")
        return cls(split_dir, frames, index, stats["mean"], stats["std"])

    def __len__(self) -> int:
        return len(self.index)

    @property
    def fnames(self) -> list[str]:
        return self.index["fname"].tolist()

    def rows_of(self, fnames) -> np.ndarray:
        position = pd.Series(np.arange(len(self.index)), index=self.index["fname"])
        return position.loc[list(fnames)].to_numpy()

    def clip(self, row: int) -> np.ndarray:
        start, length = int(self._starts[row]), int(self._lengths[row])
        return self.frames[start:start + length]


def failure_reasons(store: FeatureStore) -> dict[str, str]:
    """{fname: why it could not be decoded} for the clips of a store that got a blank input."""
    return json.loads((store.directory / "failures.json").read_text())
