"""Feature extraction and the feature cache (`make features`).

Layout of one cache, `features/<dataset>/<kind>-<hash>/`, the hash covering exactly the parameters
that change the output (`FeatureConfig.output_params`):

    params.json                      the parameters
    clips/<split>/<fname>.<sig>.npy  one clip's features, float16 (frames, bins); sig = source size+mtime
    <split>/frames.npy               all clips of a split packed end to end, float16, memory-mappable
    <split>/index.csv                fname, start, length (rows of frames.npy), failed (1 = blank input)
    <split>/manifest.json            {fname: sig} the pack was built from (a warm rerun compares only this)
    train/stats.npz                  per-bin mean and std over all train frames (for input normalisation)

Clips are computed in worker processes (one BLAS/OpenMP thread each) and written atomically, so a
run killed at any moment leaves only whole files; a rerun computes what is missing or changed and
repacks. Packing streams clip by clip into a memory-mapped file, so memory does not grow with the
dataset. A clip that cannot be decoded is an error in the train split; in the test split it gets a
blank (silent) input, is listed in a warning, and still gets a row in the submission.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from competition.config import FeatureConfig
from competition.workspace import Workspace, atomic_write_text, replace_dir

DB_FLOOR = -100.0  # log-mel of silence: power_to_db's amin of 1e-10


class FeatureError(RuntimeError):
    pass


# ---------------------------------------------------------------- computing one clip

def compute_features(signal: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """(frames, bins) float32 features of a mono float32 signal at config.sample_rate."""
    import librosa

    if config.kind == "wave":
        hop = config.hop_length
        n_frames = max(1, -(-len(signal) // hop))
        padded = np.zeros(n_frames * hop, np.float32)
        padded[: len(signal)] = signal
        return padded.reshape(n_frames, hop)
    if len(signal) < config.n_fft:
        # Empty and very short clips: pad with silence so every clip has at least one frame.
        signal = np.pad(signal, (0, config.n_fft - len(signal)))
    mel = librosa.feature.melspectrogram(
        y=signal, sr=config.sample_rate, n_fft=config.n_fft, hop_length=config.hop_length,
        n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax or config.sample_rate / 2, power=2.0)
    logmel = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
    if config.kind == "mfcc":
        return librosa.feature.mfcc(S=logmel, n_mfcc=config.n_mfcc).T.astype(np.float32)
    return logmel.T.astype(np.float32)


def blank_features(config: FeatureConfig) -> np.ndarray:
    return compute_features(np.zeros(0, np.float32), config)


def features_of_file(path: str | Path, config: FeatureConfig) -> np.ndarray:
    from competition.audio import load_audio

    return compute_features(load_audio(path, config.sample_rate, max_seconds=config.max_seconds), config)


# ---------------------------------------------------------------- the cache

def source_signature(path: str) -> str:
    stat = os.stat(path)
    return f"{stat.st_size}-{stat.st_mtime_ns}"


def cache_dir(workspace: Workspace, dataset: str, config: FeatureConfig) -> Path:
    return workspace.features / dataset / config.key


@dataclass
class FeatureStore:
    """One packed split: frames of every clip, end to end, memory-mapped."""

    directory: Path
    frames: np.ndarray            # (total_frames, bins) float16, memory-mapped
    index: pd.DataFrame           # fname, start, length, failed
    mean: np.ndarray              # (bins,) float32, from the train split
    std: np.ndarray

    @classmethod
    def open(cls, split_dir: Path) -> "FeatureStore":
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
        start, length = int(self.index["start"].iat[row]), int(self.index["length"].iat[row])
        return self.frames[start:start + length]


def _limit_threads() -> None:
    # Without this, every worker's BLAS/OpenMP pool fights for the same cores.
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[variable] = "1"
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def _compute_clip(job: tuple[str, str, str, dict]) -> tuple[str, int, str | None]:
    """Worker: features of one file, written atomically. Returns (fname, frames, error or None)."""
    from competition.audio import AudioError

    fname, source, target, params = job
    config = FeatureConfig(**params)
    error = None
    try:
        features = features_of_file(source, config)
    except AudioError as problem:
        features, error = blank_features(config), str(problem)
    tmp = f"{target}.{os.getpid()}.tmp"
    with open(tmp, "wb") as handle:
        np.save(handle, features.astype(np.float16))
    os.replace(tmp, target)
    return fname, len(features), error


def _clip_path(clips_dir: Path, fname: str, signature: str) -> Path:
    return clips_dir / f"{fname}.{signature}.npy"


def _failures_path(clips_dir: Path) -> Path:
    return clips_dir / "failed.json"


def compute_clips(table: pd.DataFrame, clips_dir: Path, config: FeatureConfig, *, workers: int,
                  signatures: dict[str, str], desc: str) -> dict[str, str]:
    """Compute every missing clip file; return {fname: error} for clips that could not be decoded."""
    from tqdm import tqdm

    clips_dir.mkdir(parents=True, exist_ok=True)
    failures_file = _failures_path(clips_dir)
    failures = json.loads(failures_file.read_text()) if failures_file.exists() else {}
    jobs = []
    for fname, source in zip(table["fname"], table["path"]):
        target = _clip_path(clips_dir, fname, signatures[fname])
        if not target.exists():
            failures.pop(fname, None)
            jobs.append((fname, source, str(target), config.__dict__))
    if jobs:
        progress = tqdm(total=len(jobs), desc=desc, unit="clip", file=sys.stderr, dynamic_ncols=True)
        if workers > 1 and len(jobs) > 1:
            import multiprocessing

            # Import and JIT-compile librosa once here, so forked workers start warm.
            blank_features(config)
            # fork: workers inherit the imported modules instead of importing them again.
            with multiprocessing.get_context("fork").Pool(workers, initializer=_limit_threads) as pool:
                for fname, _, error in pool.imap_unordered(_compute_clip, jobs, chunksize=4):
                    if error:
                        failures[fname] = error
                    progress.update()
        else:
            for job in jobs:
                fname, _, error = _compute_clip(job)
                if error:
                    failures[fname] = error
                progress.update()
        progress.close()
        atomic_write_text(failures_file, json.dumps(failures, indent=1, sort_keys=True))
    return {fname: failures[fname] for fname in table["fname"] if fname in failures}


def pack_split(table: pd.DataFrame, clips_dir: Path, split_dir: Path, signatures: dict[str, str],
               failures: dict[str, str], *, with_stats: bool) -> None:
    """Concatenate the clip files of a split into one memory-mappable array, atomically."""
    paths = [_clip_path(clips_dir, f, signatures[f]) for f in table["fname"]]
    lengths = np.array([np.load(p, mmap_mode="r").shape[0] for p in paths], dtype=np.int64)
    bins = np.load(paths[0], mmap_mode="r").shape[1]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    tmp_dir = split_dir.with_name(f".{split_dir.name}.tmp{os.getpid()}")
    tmp_dir.mkdir(parents=True, exist_ok=True)
    frames = np.lib.format.open_memmap(tmp_dir / "frames.npy", mode="w+", dtype=np.float16,
                                       shape=(int(lengths.sum()), bins))
    total = np.zeros(bins, np.float64)
    total_sq = np.zeros(bins, np.float64)
    for path, start, length in zip(paths, starts, lengths):
        clip = np.load(path)
        frames[start:start + length] = clip
        if with_stats:
            clip64 = clip.astype(np.float64)
            total += clip64.sum(axis=0)
            total_sq += (clip64 ** 2).sum(axis=0)
    frames.flush()
    del frames
    if with_stats:
        count = max(int(lengths.sum()), 1)
        mean = total / count
        std = np.sqrt(np.maximum(total_sq / count - mean ** 2, 1e-8))
        np.savez(tmp_dir / "stats.npz", mean=mean.astype(np.float32), std=std.astype(np.float32))
    pd.DataFrame({"fname": table["fname"].to_numpy(), "start": starts, "length": lengths,
                  "failed": [int(f in failures) for f in table["fname"]]}).to_csv(tmp_dir / "index.csv", index=False)
    (tmp_dir / "manifest.json").write_text(json.dumps(signatures, sort_keys=True))
    replace_dir(tmp_dir, split_dir)


def _remove_stale_clips(clips_dir: Path, signatures: dict[str, str]) -> None:
    keep = {_clip_path(clips_dir, f, s).name for f, s in signatures.items()}
    for path in clips_dir.glob("*.npy"):
        if path.name not in keep:
            path.unlink(missing_ok=True)
    for path in clips_dir.glob("*.tmp"):
        path.unlink(missing_ok=True)


def build_features(workspace: Workspace, dataset: str, splits: dict[str, pd.DataFrame],
                   config: FeatureConfig, *, workers: int | None = None) -> dict[str, FeatureStore]:
    """Make sure every split's cache is complete and current; return the opened stores."""
    root = cache_dir(workspace, dataset, config)
    atomic_write_text(root / "params.json", json.dumps(config.output_params(), indent=1, sort_keys=True))
    workers = workers or os.cpu_count() or 1
    for split, table in splits.items():
        if table.empty:
            continue
        split_dir = root / split
        signatures = {f: source_signature(p) for f, p in zip(table["fname"], table["path"])}
        manifest = split_dir / "manifest.json"
        if manifest.exists() and json.loads(manifest.read_text()) == signatures:
            continue
        clips_dir = root / "clips" / split
        failures = compute_clips(table, clips_dir, config, workers=workers, signatures=signatures,
                                 desc=f"{dataset} {config.kind} {split}")
        if failures and split == "train":
            listing = "\n".join(f"  {fname}: {error}" for fname, error in list(failures.items())[:20])
            raise FeatureError(f"{len(failures)} train clip(s) could not be decoded; fix or remove them "
                               f"from the dataset's CSV:\n{listing}")
        if failures:
            listing = "\n".join(f"  {error}" for error in failures.values())
            print(f"warning: {len(failures)} {split} clip(s) could not be decoded; they get a blank input "
                  f"and still a row in the submission:\n{listing}", file=sys.stderr)
        pack_split(table, clips_dir, split_dir, signatures, failures, with_stats=(split == "train"))
        _remove_stale_clips(clips_dir, signatures)
    return {split: FeatureStore.open(root / split) for split, table in splits.items() if not table.empty}
