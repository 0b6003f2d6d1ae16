"""The ways of turning audio into model inputs that the speed bench compares, each run alone in a
fresh child process: `python -m benchmarks.feature_methods --child METHOD PATHS.json WORK_DIR WORKERS`
times one method over the clips the JSON file lists and prints {"seconds", "cpu_seconds"} as its
last line. Before the timed pass each method handles a clip untimed ((d) builds a scratch cache of
two), so imports and JIT compilation are left out of every one of them alike.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.measure import cpu_seconds
from competition.config import DEFAULT_EXPERIMENTS

KIT_EXPERIMENT = DEFAULT_EXPERIMENTS[0]

METHODS = {
    "a": "seed: librosa.load 22.05k, 80-mel, power_to_db, PNG",
    "b": "Zafar: librosa.load 44.1k, 40 MFCC, serial",
    "c": "plain librosa log-mel, serial",
    "c1": "the same, BLAS/OpenMP limited to 1 thread",
    "d": "kit: build_features, {workers} workers, cold",
    "d'": "kit: `python -m competition features`, cold",
    "0": "decoding alone: soundfile.read, serial",
}
# The methods a child process runs; (d') is the kit's own command, run as it is. (c1) is (c) in a
# child whose environment holds BLAS/OpenMP to one thread.
CHILD_METHODS = ("a", "b", "c", "c1", "d", "0")


def child_command(method: str, list_file: Path, work_dir: Path, workers: int) -> list[str]:
    """The command that runs `method` (one of CHILD_METHODS) in a fresh process."""
    return [sys.executable, "-m", "benchmarks.feature_methods", "--child", method.rstrip("1"),
            str(list_file), str(work_dir), str(workers)]


def _kit_feature_config():
    from competition.config import load_experiment

    return load_experiment(KIT_EXPERIMENT).features


def _seed_png(path: str, out_dir: Path) -> None:
    import librosa
    import matplotlib.pyplot as plt

    signal, rate = librosa.load(path)
    mel = librosa.feature.melspectrogram(y=signal, sr=rate, n_fft=1024, hop_length=512, n_mels=80)
    plt.imsave(out_dir / (Path(path).stem + ".png"), librosa.power_to_db(mel, ref=np.max), origin="lower")


def _zafar_mfcc(path: str) -> np.ndarray:
    import librosa

    signal, rate = librosa.load(path, sr=44100)
    return np.mean(librosa.feature.mfcc(y=signal, sr=rate, n_mfcc=40).T, axis=0)


def _librosa_logmel(path: str, config) -> np.ndarray:
    import librosa

    signal, rate = librosa.load(path, sr=config.sample_rate)
    mel = librosa.feature.melspectrogram(y=signal, sr=rate, n_fft=config.n_fft, hop_length=config.hop_length,
                                         n_mels=config.n_mels, fmin=config.fmin,
                                         fmax=config.fmax or rate / 2)
    return librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)


def run_method(method: str, paths: list[str], work_dir: Path, workers: int) -> dict:
    """Time one method over all paths in this process; its first clip once more, untimed, before."""
    config = _kit_feature_config()
    if method == "a":
        import matplotlib

        matplotlib.use("Agg")
        (work_dir / "png").mkdir(parents=True, exist_ok=True)
        one = lambda path: _seed_png(path, work_dir / "png")  # noqa: E731
    elif method == "b":
        one = _zafar_mfcc
    elif method == "c":
        one = lambda path: _librosa_logmel(path, config)  # noqa: E731
    elif method == "0":
        import soundfile

        one = lambda path: soundfile.read(path, dtype="float32")  # noqa: E731
    elif method == "d":
        import pandas as pd

        from competition.features.cache import build_features
        from competition.workspace import Workspace

        table = pd.DataFrame({"fname": [Path(p).name for p in paths], "path": paths})
        # The untimed start: a whole build of the first two clips in a scratch workspace, which
        # imports all a build uses (tqdm, multiprocessing, ...), as the other methods' first clip
        # does for them.
        one = lambda path: build_features(Workspace(work_dir / "first-clips"), "bench",  # noqa: E731
                                          {"train": table.head(2)}, config, workers=workers)
    else:
        raise ValueError(f"unknown method {method!r}")
    one(paths[0])
    started, cpu_started = time.perf_counter(), cpu_seconds()
    if method == "d":
        build_features(Workspace(work_dir / "cold"), "bench", {"train": table}, config, workers=workers)
    else:
        for path in paths:
            one(path)
    return {"seconds": time.perf_counter() - started, "cpu_seconds": cpu_seconds() - cpu_started}


if __name__ == "__main__":
    # Internal entry point: `python -m benchmarks.feature_methods --child METHOD PATHS.json WORK_DIR WORKERS`.
    if len(sys.argv) != 6 or sys.argv[1] != "--child":
        sys.exit("run the bench with `make bench` or `python -m benchmarks speed`")
    method, list_file, work_dir, n_workers = sys.argv[2:]
    result = run_method(method, json.loads(Path(list_file).read_text()), Path(work_dir), int(n_workers))
    print(json.dumps(result))
