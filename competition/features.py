"""Feature extraction and the feature cache (`make features`).

Layout of one cache, `features/<dataset>/<kind>-<hash>/`, the hash covering exactly the parameters
that change the output (`FeatureConfig.output_params`):

    params.json                         the parameters
    clips/<split>/<fname>.<sig>.npy     one clip's features, float16 (frames, bins); sig = source size+mtime
    clips/<split>/<fname>.<sig>.failed  why that clip could not be decoded (its .npy is a blank input)
    <split>/frames.npy                  all clips of a split packed end to end, float16, memory-mappable
    <split>/index.csv                   fname, start, length (rows of frames.npy), failed (1 = blank input)
    <split>/manifest.json               {fname: sig} the pack was built from (a warm rerun compares only this)
    train/stats.npz                     per-bin mean and std over all train frames (input normalisation)

Clips are computed in worker processes (one BLAS/OpenMP thread each), each decoded once for all the
caches a run builds (`make features` builds one per experiment), and every file is written to a
temporary name and renamed, so a run killed at any moment leaves only whole files; a rerun computes
what is missing or changed and repacks, giving byte for byte the cache an uninterrupted run gives.
Packing streams clip by clip into a memory-mapped file, so memory does not grow with the dataset.
A clip that cannot be decoded is an error in the train split; in the test split it gets a blank
(silent) input, is listed in a warning, and still gets a row in the submission.

The log-mel spectrogram is librosa's (`melspectrogram` with a centred, zero-padded periodic Hann
STFT, Slaney mel filters, `power_to_db` with amin 1e-10, no top_db) computed in float32 with the
window, filterbank and DCT matrices built once per process: about 4x faster than calling librosa
per clip, and equal to it within float32 rounding (tests/test_features.py checks this).
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from competition.config import FeatureConfig
from competition.workspace import Workspace, atomic_write_text, replace_dir

# Values converted to float64 at a time for the input statistics (1 MB).
STATS_CHUNK_VALUES = 1 << 17
DB_FLOOR = -100.0  # log-mel of silence: power_to_db's amin of 1e-10
AMIN = 1e-10


class FeatureError(RuntimeError):
    pass


# ---------------------------------------------------------------- computing one clip

def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """(n_mels, 1 + n_fft // 2) float32: librosa.filters.mel's Slaney-scale, Slaney-normalised
    triangles, rebuilt in numpy because importing librosa.filters (and scipy.signal) costs a second."""
    f_sp = 200.0 / 3                        # Slaney's mel scale: linear below 1 kHz, log above
    min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp

    def hz_to_mel(hz):
        hz = np.asarray(hz, np.float64)
        return np.where(hz >= min_log_hz, min_log_mel + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / logstep,
                        hz / f_sp)

    def mel_to_hz(mel):
        return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)

    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fft_hz = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    ramps = edges[:, None] - fft_hz[None, :]
    widths = np.diff(edges)
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


@functools.lru_cache(maxsize=8)
def _spectrogram_matrices(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float,
                          n_mfcc: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(window, mel basis for interleaved re/im, DCT matrix), float32, built once per parameter set.

    The mel basis (n_mels, 2 * bins) has every frequency column twice: applied to the squared float32
    view of a complex64 spectrum [re0, im0, re1, im1, ...] it sums re² + im² and the filterbank in one
    product. It is sparse (each mel band spans a few bins; 3% of 64 x 2050 entries are nonzero), which
    halves that product's cost against a dense matmul.
    """
    import scipy.fft
    import scipy.sparse

    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)  # periodic Hann
    mel_basis = mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax)
    interleaved = scipy.sparse.csr_matrix(np.repeat(mel_basis, 2, axis=1))
    dct = scipy.fft.dct(np.eye(n_mels), type=2, norm="ortho", axis=0)[:n_mfcc]  # librosa.feature.mfcc's
    return window, interleaved, np.ascontiguousarray(dct.T.astype(np.float32))


def log_mel(signal: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """(frames, n_mels) float32 log-mel power in dB of a mono float32 signal at config.sample_rate."""
    import scipy.fft

    window, mel_basis, _ = _spectrogram_matrices(
        config.sample_rate, config.n_fft, config.n_mels, config.fmin,
        config.fmax or config.sample_rate / 2, config.n_mfcc)
    n_fft, hop = config.n_fft, config.hop_length
    # Empty and very short clips are padded with silence, as before centring, so every clip has frames.
    length = max(len(signal), n_fft)
    padded = np.zeros(length + 2 * (n_fft // 2), np.float32)
    padded[n_fft // 2: n_fft // 2 + len(signal)] = signal
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    spectrum = scipy.fft.rfft(frames * window, axis=1, overwrite_x=True)  # complex64
    squares = spectrum.view(np.float32)
    np.square(squares, out=squares)
    mel = np.ascontiguousarray((mel_basis @ squares.T).T)
    np.maximum(mel, AMIN, out=mel)
    np.log10(mel, out=mel)
    mel *= 10.0
    return mel


def compute_features(signal: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """(frames, bins) float32 features of a mono float32 signal at config.sample_rate."""
    if config.kind == "wave":
        hop = config.hop_length
        n_frames = max(1, -(-len(signal) // hop))
        padded = np.zeros(n_frames * hop, np.float32)
        padded[: len(signal)] = signal
        return padded.reshape(n_frames, hop)
    logmel = log_mel(np.asarray(signal, np.float32), config)
    if config.kind == "mfcc":
        _, _, dct = _spectrogram_matrices(config.sample_rate, config.n_fft, config.n_mels, config.fmin,
                                          config.fmax or config.sample_rate / 2, config.n_mfcc)
        return logmel @ dct
    return logmel


def blank_features(config: FeatureConfig) -> np.ndarray:
    return compute_features(np.zeros(0, np.float32), config)


def decode(path: str | Path, config: FeatureConfig) -> np.ndarray:
    """The signal features are computed from: mono float32 at config.sample_rate, at most max_seconds."""
    from competition.audio import load_audio

    return load_audio(path, config.sample_rate, max_seconds=config.max_seconds)


def features_of_file(path: str | Path, config: FeatureConfig) -> np.ndarray:
    return compute_features(decode(path, config), config)


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

    def __post_init__(self):
        # clip() runs for every crop of every batch; a pandas lookup there cost more than the crop.
        self._starts = self.index["start"].to_numpy()
        self._lengths = self.index["length"].to_numpy()

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
        start, length = int(self._starts[row]), int(self._lengths[row])
        return self.frames[start:start + length]


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def limit_worker_threads() -> None:
    """One BLAS/OpenMP thread in a pool worker, as the pool already uses every core and extra
    threads per worker only fight over them. The variables cover libraries loaded later,
    threadpoolctl the ones already loaded (numpy's and scipy's OpenBLAS)."""
    from threadpoolctl import threadpool_limits

    for variable in THREAD_VARIABLES:
        os.environ[variable] = "1"
    threadpool_limits(1)


def keep_freed_memory() -> None:
    """Let a pool worker's allocator reuse the memory of the clip before. glibc hands every freed
    block over 128 KiB (a clip's signal, frames, spectrum) back to the system and the next clip
    faults in fresh zeroed pages, about 400 page faults a clip (0.5 ms); higher thresholds keep
    up to 64 MiB for reuse. Other C libraries are left as they are."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's mallopt parameter numbers
    libc.mallopt(m_mmap_threshold, 32 << 20)
    libc.mallopt(m_trim_threshold, 64 << 20)


def _prepare_worker() -> None:
    limit_worker_threads()
    keep_freed_memory()


def available_cores() -> int:
    """Cores this process may run on (fewer than the machine's under taskset or a container limit)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _clip_path(clips_dir: Path, fname: str, signature: str) -> Path:
    return clips_dir / f"{fname}.{signature}.npy"


def _failure_path(clip_path: Path) -> Path:
    return clip_path.with_suffix(".failed")


def _write_atomically(target: Path, write) -> None:
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        write(handle)
    os.replace(tmp, target)


def _compute_clip(job: tuple[str, list[tuple[str, dict]]]) -> None:
    """Features of one file for every cache that lacks them, decoding it once per sample rate; each
    written atomically."""
    from competition.audio import AudioError

    source, targets = job
    decoded: dict[tuple, tuple[np.ndarray | None, str | None]] = {}
    for target, params in targets:
        config = FeatureConfig(**params)
        decoding = (config.sample_rate, config.max_seconds)
        if decoding not in decoded:
            try:
                decoded[decoding] = (decode(source, config), None)
            except AudioError as problem:
                decoded[decoding] = (None, str(problem))
        signal_, error = decoded[decoding]
        features = blank_features(config) if error else compute_features(signal_, config)
        target = Path(target)
        # The failure note goes first: a clip file on disk always has its note, if it needs one.
        if error:
            _write_atomically(_failure_path(target), lambda handle: handle.write(error.encode()))
        else:
            _failure_path(target).unlink(missing_ok=True)
        _write_atomically(target, lambda handle: np.save(handle, features.astype(np.float16)))


def compute_clips(table: pd.DataFrame, caches: dict[Path, FeatureConfig], *, signatures: dict[str, str],
                  workers: int, desc: str) -> None:
    """Compute every clip file missing from the caches ({clips_dir: config}), each source decoded once
    for all of them."""
    from tqdm import tqdm

    for clips_dir in caches:
        clips_dir.mkdir(parents=True, exist_ok=True)
    jobs = []
    for fname, source in zip(table["fname"], table["path"]):
        targets = [(str(path), config.__dict__) for clips_dir, config in caches.items()
                   if not (path := _clip_path(clips_dir, fname, signatures[fname])).exists()]
        if targets:
            jobs.append((int(signatures[fname].split("-")[0]), source, targets))
    # Longest first (file size, the signature's first part, stands for length), so no long clip is
    # left alone on one core at the end.
    jobs = [(source, targets) for _, source, targets in sorted(jobs, key=lambda job: -job[0])]
    if not jobs:
        return
    progress = tqdm(total=len(jobs), desc=desc, unit="clip", file=sys.stderr, dynamic_ncols=True)
    if workers > 1 and len(jobs) > 1:
        import multiprocessing

        # Import the decoder and build the filterbanks once here, so forked workers start warm.
        import competition.audio  # noqa: F401

        for config in caches.values():
            blank_features(config)
        # fork: workers inherit the imported modules instead of importing them again.
        with multiprocessing.get_context("fork").Pool(workers, initializer=_prepare_worker) as pool:
            for _ in pool.imap_unordered(_compute_clip, jobs, chunksize=4):
                progress.update()
    else:
        from threadpoolctl import threadpool_limits

        # In this process only for the loop: the variables stay as they are for what runs next
        # (training sets its own threads).
        with threadpool_limits(1):
            for job in jobs:
                _compute_clip(job)
                progress.update()
    progress.close()


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, bool, int]:
    """(shape, dtype, fortran_order, offset of the data) from a .npy header, without reading the data."""
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran_order, dtype = read_header(handle)
        return shape, dtype, fortran_order, handle.tell()


def _bin_stats(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin mean and std of (frames, bins) in float64, a bounded chunk at a time."""
    total = np.zeros(frames.shape[1], np.float64)
    total_sq = np.zeros(frames.shape[1], np.float64)
    rows = max(1, STATS_CHUNK_VALUES // max(frames.shape[1], 1))
    for start in range(0, len(frames), rows):
        chunk = frames[start:start + rows].astype(np.float64)
        total += chunk.sum(axis=0)
        total_sq += np.einsum("ij,ij->j", chunk, chunk)
    count = max(len(frames), 1)
    mean = total / count
    return mean, np.sqrt(np.maximum(total_sq / count - mean ** 2, 1e-8))


def _save_npz_reproducibly(path: Path, **arrays: np.ndarray) -> None:
    """np.savez stamps each member with the current time; a fixed stamp makes reruns byte-identical."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            with archive.open(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), "w") as member:
                np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)


def pack_split(table: pd.DataFrame, clips_dir: Path, split_dir: Path, signatures: dict[str, str],
               *, with_stats: bool) -> None:
    """Concatenate the clip files of a split into one memory-mappable array, atomically."""
    paths = [_clip_path(clips_dir, f, signatures[f]) for f in table["fname"]]
    headers = [_npy_header(p) for p in paths]
    lengths = np.array([shape[0] for shape, *_ in headers], dtype=np.int64)
    bins = headers[0][0][1]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    tmp_dir = split_dir.with_name(f".{split_dir.name}.tmp.{os.getpid()}")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    tmp_dir.mkdir(parents=True)
    frames = np.lib.format.open_memmap(tmp_dir / "frames.npy", mode="w+", dtype=np.float16,
                                       shape=(int(lengths.sum()), bins))
    for path, (shape, dtype, fortran_order, offset), start, length in zip(paths, headers, starts, lengths):
        if dtype == np.float16 and not fortran_order:  # what _compute_clip writes: read without parsing again
            frames[start:start + length] = np.fromfile(path, np.float16, count=length * bins,
                                                       offset=offset).reshape(length, bins)
        else:
            frames[start:start + length] = np.load(path)
    if with_stats:
        mean, std = _bin_stats(frames)
        _save_npz_reproducibly(tmp_dir / "stats.npz", mean=mean.astype(np.float32), std=std.astype(np.float32))
    frames.flush()
    del frames
    failed = [int(_failure_path(p).exists()) for p in paths]
    pd.DataFrame({"fname": table["fname"].to_numpy(), "start": starts, "length": lengths,
                  "failed": failed}).to_csv(tmp_dir / "index.csv", index=False)
    (tmp_dir / "manifest.json").write_text(json.dumps(signatures, sort_keys=True))
    replace_dir(tmp_dir, split_dir)


def _pid_is_running(pid: int) -> bool:
    """True for a live process; a killed worker can linger as a zombie until something reaps it."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _remove_leftovers(directory: Path) -> None:
    """Remove temporary files and folders of killed runs (their names end in the writer's pid);
    those of a run still going, e.g. `make train` building the same cache, are left alone."""
    for path in directory.glob(".*"):
        match = re.search(r"\.(?:tmp|old)\.(\d+)$", path.name)
        if match and not _pid_is_running(int(match.group(1))):
            shutil.rmtree(path, ignore_errors=True)
    for path in directory.glob("*.tmp"):
        match = re.search(r"\.(\d+)\.tmp$", path.name)
        if match and not _pid_is_running(int(match.group(1))):
            path.unlink(missing_ok=True)


def _remove_stale_clips(clips_dir: Path, signatures: dict[str, str]) -> None:
    keep = {_clip_path(clips_dir, f, s).name for f, s in signatures.items()}
    keep |= {_failure_path(clips_dir / name).name for name in keep}
    for path in clips_dir.iterdir():
        if path.suffix in (".npy", ".failed") and path.name not in keep:
            path.unlink(missing_ok=True)
    _remove_leftovers(clips_dir)


def failure_reasons(store: FeatureStore, clips_dir: Path) -> dict[str, str]:
    """{fname: why it could not be decoded} for the clips of a store that got a blank input."""
    failed = store.index["fname"][store.index["failed"] == 1]
    if failed.empty:
        return {}
    manifest = json.loads((store.directory / "manifest.json").read_text())
    return {f: _failure_path(_clip_path(clips_dir, f, manifest[f])).read_text() for f in failed}


def build_features(workspace: Workspace, dataset: str, splits: dict[str, pd.DataFrame],
                   config: FeatureConfig, *, workers: int | None = None) -> dict[str, FeatureStore]:
    """Make sure every split's cache is complete and current; return the opened stores."""
    return build_feature_sets(workspace, dataset, splits, [config], workers=workers)[config.key]


def build_feature_sets(workspace: Workspace, dataset: str, splits: dict[str, pd.DataFrame],
                       configs: list[FeatureConfig], *, workers: int | None = None
                       ) -> dict[str, dict[str, FeatureStore]]:
    """The caches of several feature configs in one pass, each clip decoded once for all of them
    (`make features` with a log-mel and an MFCC experiment decodes the audio once, not twice).
    Returns {config.key: {split: store}}."""
    configs = list({config.key: config for config in configs}.values())
    workers = workers or available_cores()
    roots = {config.key: cache_dir(workspace, dataset, config) for config in configs}
    for config in configs:
        params = roots[config.key] / "params.json"
        if not params.exists():
            atomic_write_text(params, json.dumps(config.output_params(), indent=1, sort_keys=True))
    stores: dict[str, dict[str, FeatureStore]] = {config.key: {} for config in configs}
    for split, table in splits.items():
        if table.empty:
            continue
        signatures = {f: source_signature(p) for f, p in zip(table["fname"], table["path"])}
        stale = [config for config in configs if not _pack_is_current(roots[config.key] / split, signatures)]
        if stale:
            for config in stale:
                _remove_leftovers(roots[config.key])
            caches = {roots[config.key] / "clips" / split: config for config in stale}
            kinds = "+".join(dict.fromkeys(config.kind for config in stale))
            compute_clips(table, caches, signatures=signatures, workers=workers, desc=f"{dataset} {kinds} {split}")
            for clips_dir, config in caches.items():
                failed = {f: _failure_path(_clip_path(clips_dir, f, signatures[f])) for f in table["fname"]}
                failed = {f: path.read_text() for f, path in failed.items() if path.exists()}
                if failed and split == "train":
                    listing = "\n".join(f"  {error}" for error in list(failed.values())[:20])
                    raise FeatureError(f"{len(failed)} train clip(s) could not be decoded; fix them or remove "
                                       f"them from the dataset's CSV:\n{listing}")
                pack_split(table, clips_dir, roots[config.key] / split, signatures, with_stats=(split == "train"))
                _remove_stale_clips(clips_dir, signatures)
        failed = {}
        for config in configs:
            store = stores[config.key][split] = FeatureStore.open(roots[config.key] / split)
            failed.update(failure_reasons(store, roots[config.key] / "clips" / split))
        if failed:
            listing = "\n".join(f"  {error}" for error in failed.values())
            print(f"warning: {len(failed)} {split} clip(s) could not be decoded; they get a blank input "
                  f"and still a row in the submission:\n{listing}", file=sys.stderr)
    return stores


def _pack_is_current(split_dir: Path, signatures: dict[str, str]) -> bool:
    manifest = split_dir / "manifest.json"
    return manifest.exists() and json.loads(manifest.read_text()) == signatures
