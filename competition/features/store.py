"""A packed split of a feature cache, memory-mapped: what training and prediction read.

    <split>/frames.npy      all clips end to end, float16 (frames, bins)
    <split>/index.csv       fname, start, length (rows of frames.npy), failed (1 = blank input),
                            crc (CRC-32 of the clip's float16 bytes)
    <split>/failures.json   {fname: why it could not be decoded} for the failed clips
    <split>/notes.json      {fname: what to know about its decoding} (cut to max_seconds, shorter
                            than its header), for the clips that have any
    <split>/integrity.json  frames.npy's size and shape, CRC-32 of index.csv (and train's stats.npz)
    train/stats.npz         per-bin mean and std over all train frames (input normalisation)

Opening a split checks its sizes, shape and small files against integrity.json (a truncated or
replaced file is caught at once); `verify` also checks every clip's CRC, which catches any changed
byte of frames.npy. Either way a damaged split raises FeatureError naming it; the cache rebuilds it.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from competition.errors import KitError

INTEGRITY = "integrity.json"


class CacheDamaged(KitError, RuntimeError):
    """A packed split does not match what was written; the message names the file and how."""


def file_crc(path: Path) -> int:
    return zlib.crc32(Path(path).read_bytes())


def npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, bool, int]:
    """(shape, dtype, fortran_order, offset of the data) from a .npy header, without reading the data."""
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran_order, dtype = read_header(handle)
        return shape, dtype, fortran_order, handle.tell()


def check_integrity(split_dir: Path) -> None:
    """Sizes, shape and small files against integrity.json: cheap enough for every open."""
    record_path = split_dir / INTEGRITY
    try:
        record = json.loads(record_path.read_text())
        frames_path = split_dir / "frames.npy"
        size = frames_path.stat().st_size
        if size != record["frames_bytes"]:
            raise CacheDamaged(f"{frames_path}: {size} bytes, {record['frames_bytes']} were written")
        try:
            shape, dtype, _, _ = npy_header(frames_path)
        except ValueError as error:
            raise CacheDamaged(f"{frames_path}: unreadable header ({error})") from None
        if tuple(shape) != (record["rows"], record["bins"]) or dtype != np.float16:
            raise CacheDamaged(f"{frames_path}: shape {shape} {dtype}, ({record['rows']}, {record['bins']}) "
                               "float16 were written")
        for name, crc in record["crc"].items():
            if file_crc(split_dir / name) != crc:
                raise CacheDamaged(f"{split_dir / name}: content differs from what was written (CRC-32)")
    except (OSError, ValueError, KeyError) as error:
        raise CacheDamaged(f"{split_dir}: cannot check the packed split ({error})") from None


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
        check_integrity(split_dir)
        if split_dir.name != "train":
            check_integrity(split_dir.parent / "train")  # its stats normalise this split too
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


    def verify(self) -> None:
        verify_clips(self.directory)


def verify_clips(split_dir: Path) -> None:
    """Every clip's bytes against its CRC-32: one pass over frames.npy."""
    index = pd.read_csv(split_dir / "index.csv", dtype={"fname": str})
    frames = np.load(split_dir / "frames.npy", mmap_mode="r")
    bad = [fname for fname, start, length, crc in zip(index["fname"], index["start"], index["length"], index["crc"])
           if zlib.crc32(np.ascontiguousarray(frames[start:start + length]).data) != crc]
    if bad:
        raise CacheDamaged(f"{split_dir / 'frames.npy'}: {len(bad)} clip(s) differ from what was written "
                           f"(CRC-32), first {bad[0]!r}")


def failure_reasons(store: FeatureStore) -> dict[str, str]:
    """{fname: why it could not be decoded} for the clips of a store that got a blank input."""
    return json.loads((store.directory / "failures.json").read_text())


def decoding_notes(store: FeatureStore) -> dict[str, str]:
    """{fname: notes on its decoding} for the clips of a store that have any."""
    path = store.directory / "notes.json"
    return json.loads(path.read_text()) if path.is_file() else {}
