"""`make bench`, features part: clips per second of ways to turn audio into model inputs.

On the same clips, in one run:

    (a) the seed project's path: librosa.load at its default 22,050 Hz, 80-mel spectrogram (n_fft
        1024, hop 512), power_to_db, one PNG image per clip written by matplotlib (Agg). `imsave`
        is the cheapest way matplotlib writes a spectrogram image, so (a) is if anything fast.
    (b) a Zafar-style loop: librosa.load at 44,100 Hz, 40 MFCC averaged over time, one clip at a time.
    (c) plain serial librosa log-mel: librosa.load at the kit's rate, melspectrogram, power_to_db,
        with the kit's parameters (the same numbers the kit computes).
    (c1) the same with BLAS/OpenMP held to one thread, as the kit's workers run: how much of the
        gap is librosa's threads fighting over the cores rather than its arithmetic.
    (d) the kit: `build_features`, what `make features` runs, on all cores, cold cache.
    (d') the whole command, `python -m competition features`, cold cache: interpreter start,
        imports and indexing included; then its warm rerun.
    (0) decoding alone (soundfile.read, float32 at the file's rate), serial: a floor under every
        method. All cores decoding and nothing else would give (0) x cores clips/s, the table's
        last line; on ESC-10's Vorbis clips that cap is about 3.7x (c) here, before any
        resampling or log-mel.

Each method runs in its own fresh process. (a) to (d) first handle a clip untimed ((d) builds a
scratch cache of two), so imports and JIT compilation are left out of every one of them alike;
(d') counts everything. Peak memory is the
largest sum of resident memory over the method's process and its children (psutil, sampled every
20 ms; pages forked workers share are counted once per process, so this overstates).

Clips, each set its own table, every method on the same clips: from ../shared/data beside the kit,
when there, ESC-10 (400 OGG clips, 44.1 kHz, 5 s) and every UrbanSound8K clip of the shared folds
(1,761 in folds 1-2; 16-bit WAV, 22,050 Hz, up to 4 s; converted from the shared FLAC copy as its
bin/urbansound8k-wav does); otherwise (or with `--generated`) 400 generated 5 s 16-bit WAV clips at
44.1 kHz. Each table says which. The kit's cold start (forking workers that then set their threads
and warm their caches, about 0.1 s) is a fixed cost: over 400 clips it is a third of the kit's
time, over a real dataset's thousands next to nothing, which the UrbanSound8K set shows. On OGG,
decoding Vorbis (libvorbis through libsndfile) costs about 5.8 ms a 5 s clip whoever does it, more
than all of the kit's other work: row (0) and its cap line show it, and with resampling and log-mel
the kit's whole serial cost is about 7.6 ms a clip, so on two cores (d) cannot pass about 2.6-2.9x
(c) there; WAV is the format of Freesound, UrbanSound8K and today's ESC-50.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks import SHARED_DATA
from competition.config import DEFAULT_EXPERIMENTS
from competition.workspace import KIT_ROOT

SHARED_ESC10 = SHARED_DATA / "esc10"
SHARED_URBANSOUND8K = SHARED_DATA / "urbansound8k"
KIT_EXPERIMENT = DEFAULT_EXPERIMENTS[0]
GENERATED_CLIPS = 400

METHODS = {
    "a": "seed: librosa.load 22.05k, 80-mel, power_to_db, PNG",
    "b": "Zafar: librosa.load 44.1k, 40 MFCC, serial",
    "c": "plain librosa log-mel, serial",
    "c1": "the same, BLAS/OpenMP limited to 1 thread",
    "d": "kit: build_features, {workers} workers, cold",
    "d'": "kit: `python -m competition features`, cold",
    "0": "decoding alone: soundfile.read, serial",
}


# ---------------------------------------------------------------- the methods (run in a child process)

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


def _run_method(method: str, paths: list[str], work_dir: Path, workers: int) -> dict:
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
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    if method == "d":
        build_features(Workspace(work_dir / "cold"), "bench", {"train": table}, config, workers=workers)
    else:
        for path in paths:
            one(path)
    return {"seconds": time.perf_counter() - started, "cpu_seconds": _cpu_seconds() - cpu_started}


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (pool workers are joined before this)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


# ---------------------------------------------------------------- measuring from the outside

def _measured(command: list[str], env: dict) -> tuple[float, float, int, str]:
    """Run a command; return (wall seconds, its CPU seconds, peak resident bytes of its process
    tree, stdout)."""
    import psutil

    started = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    process = subprocess.Popen(command, env=env, cwd=KIT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    peak = 0
    stop = threading.Event()

    def sample():
        nonlocal peak
        root = psutil.Process(process.pid)
        while not stop.wait(0.02):
            try:
                tree = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree))
            except psutil.Error:
                continue

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = process.communicate()
    seconds = time.perf_counter() - started
    stop.set()
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}):\n{err[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return seconds, cpu, peak, out


def _clip_sources(work_dir: Path, limit: int | None, generated: bool) -> list[tuple[Path, list[str], str]]:
    """[(an ESC-50-layout folder, its audio paths, what they are)]: the shared ESC-10 and UrbanSound8K
    copies present (unless `generated`), else generated clips."""
    import pandas as pd

    sources = []
    if not generated and (SHARED_ESC10 / "meta" / "esc50.csv").is_file():
        what = f"ESC-10 clips (OGG, 44.1 kHz, 5 s) from {os.path.relpath(SHARED_ESC10, KIT_ROOT)}"
        sources.append((SHARED_ESC10, what))
    if not generated and (SHARED_URBANSOUND8K / "audio-flac" / "fold1").is_dir():
        root = work_dir / "urbansound8k-wav"
        folds = _urbansound8k_as_esc50_layout(root)
        what = (f"UrbanSound8K clips (folds {folds}, 16-bit WAV, 22.05 kHz, <= 4 s) from "
                f"{os.path.relpath(SHARED_URBANSOUND8K, KIT_ROOT)}")
        sources.append((root, what))
    if not sources:
        root = work_dir / "generated-esc10"
        _generate_esc50_layout(root, GENERATED_CLIPS)
        why = "as asked" if generated else f"{SHARED_DATA} holds neither ESC-10 nor UrbanSound8K"
        sources.append((root, f"generated clips (16-bit WAV, 44.1 kHz, 5 s; {why})"))
    result = []
    for root, what in sources:
        table = pd.read_csv(root / "meta" / "esc50.csv", dtype=str)
        table = table[table["esc10"].str.lower() == "true"]
        if limit:
            table = table.head(limit)
            # The whole-command run (d') indexes the folder: give it exactly these rows.
            if root == SHARED_ESC10:
                root = work_dir / "esc10-subset"
                (root / "meta").mkdir(parents=True)
                (root / "audio").symlink_to(SHARED_ESC10 / "audio")
            table.to_csv(root / "meta" / "esc50.csv", index=False)
        result.append((root, [str(root / "audio" / f) for f in table["filename"]], f"{len(table)} {what}"))
    return result


def _urbansound8k_as_esc50_layout(root: Path) -> str:
    """Every UrbanSound8K clip of the shared folds as WAV (16-bit, as the official release and
    bin/urbansound8k-wav write them) in ESC-50's layout, so (d') can index them as `esc10`; the
    labels are ESC-10's, assigned in turn, as speed does not depend on them. Returns the folds, e.g. "1, 2"."""
    import pandas as pd
    import soundfile

    from competition.datasets.esc50 import ESC10_LABELS
    from competition.datasets.esc50 import LABELS as ESC50_LABELS

    (root / "audio").mkdir(parents=True)
    (root / "meta").mkdir(parents=True)
    fold_dirs = sorted((SHARED_URBANSOUND8K / "audio-flac").glob("fold*"), key=lambda d: int(d.name[4:]))
    rows = []
    for fold_dir in fold_dirs:
        for flac in sorted(fold_dir.glob("*.flac")):
            data, rate = soundfile.read(flac, dtype="int16")
            soundfile.write(root / "audio" / f"{flac.stem}.wav", data, rate, format="WAV", subtype="PCM_16")
            label = ESC10_LABELS[len(rows) % len(ESC10_LABELS)]
            rows.append({"filename": f"{flac.stem}.wav", "fold": 1, "target": ESC50_LABELS.index(label),
                         "category": label, "esc10": True, "src_file": flac.stem, "take": "A"})
    pd.DataFrame(rows).to_csv(root / "meta" / "esc50.csv", index=False)
    return ", ".join(d.name[4:] for d in fold_dirs)


def _generate_esc50_layout(root: Path, n_clips: int) -> None:
    """ESC-10-like clips: tones, chirps and noise bursts, 5 s at 44.1 kHz, in ESC-50's layout."""
    import pandas as pd
    import soundfile

    from competition.datasets.esc50 import ESC10_LABELS
    from competition.datasets.esc50 import LABELS as ESC50_LABELS

    rate, rng = 44100, np.random.default_rng(0)
    (root / "audio").mkdir(parents=True)
    (root / "meta").mkdir(parents=True)
    time_axis = np.arange(5 * rate) / rate
    rows = []
    for i in range(n_clips):
        label = ESC10_LABELS[i % len(ESC10_LABELS)]
        pitch = 100 + 60 * (i % 10) + rng.uniform(0, 40)
        clip = 0.3 * np.sin(2 * np.pi * pitch * time_axis * (1 + 0.1 * rng.standard_normal() * time_axis))
        clip += 0.05 * rng.standard_normal(len(time_axis)) * (rng.uniform(size=len(time_axis) // 4410 + 1) > 0.5
                                                             ).repeat(4410)[: len(time_axis)]
        name = f"{i % 5 + 1}-{100000 + i}-A-{ESC50_LABELS.index(label)}.wav"
        soundfile.write(root / "audio" / name, clip.astype(np.float32), rate, subtype="PCM_16")
        rows.append({"filename": name, "fold": i % 5 + 1, "target": ESC50_LABELS.index(label),
                     "category": label, "esc10": True, "src_file": 100000 + i, "take": "A"})
    pd.DataFrame(rows).to_csv(root / "meta" / "esc50.csv", index=False)


def run_bench(*, clips: int | None = None, workers: int | None = None, generated: bool = False,
              scratch: Path | None = None) -> list[dict]:
    """Run every method on each clip set, print a table per set, return the numbers. `generated`: WAV
    clips made here even where the shared copies are present. Every method writes its output under
    `scratch` (`make bench`: the workspace's features/ folder, where the kit's cache lives): creating a
    file costs 0.04 ms there but 0.25 ms in this machine's /tmp, a third of the kit's work on a WAV clip."""
    from competition.features.workers import available_cores

    workers = workers or available_cores()
    if scratch is not None:
        scratch = scratch.resolve()
        scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".bench-", dir=scratch) as tmp:
        tmp = Path(tmp)
        return [_bench_clips(tmp / f"set-{i}", source, paths, what, workers)
                for i, (source, paths, what) in enumerate(_clip_sources(tmp, clips, generated))]


def _bench_clips(tmp: Path, source: Path, paths: list[str], what: str, workers: int) -> dict:
    from competition.features.workers import THREAD_VARIABLES

    tmp.mkdir()
    load_before = os.getloadavg()[0]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(KIT_ROOT), os.environ.get("PYTHONPATH")]))}
    rows = {}
    print(f"features bench on {what}", flush=True)
    list_file = tmp / "paths.json"
    list_file.write_text(json.dumps(paths))
    one_thread = {variable: "1" for variable in THREAD_VARIABLES}
    for method in ("a", "b", "c", "c1", "d", "0"):
        print(f"  ({method}) {METHODS[method].format(workers=workers)} ...", flush=True)
        work = tmp / f"work-{method}"
        work.mkdir()
        command = [sys.executable, "-m", "benchmarks.features", "--child", method.rstrip("1"),
                   str(list_file), str(work), str(workers)]
        _, _, peak, out = _measured(command, {**env, **one_thread} if method == "c1" else env)
        inner = json.loads(out.strip().splitlines()[-1])
        rows[method] = {**inner, "peak_bytes": peak}
        shutil.rmtree(work)
    # (d'): the command a user runs, in a fresh workspace whose data/esc10 is the clip folder.
    home = tmp / "kit-home"
    (home / "data").mkdir(parents=True)
    (home / "data" / "esc10").symlink_to(source)
    command = [sys.executable, "-m", "competition", "features", "--dataset", "esc10",
               "--experiment", str(KIT_EXPERIMENT), "--workers", str(workers)]
    print("  (d') " + METHODS["d'"] + " ...", flush=True)
    seconds, cpu, peak, _ = _measured(command, {**env, "KIT_HOME": str(home)})
    rows["d'"] = {"seconds": seconds, "cpu_seconds": cpu, "peak_bytes": peak}
    warm_seconds, _, _, _ = _measured(command, {**env, "KIT_HOME": str(home)})
    load_after = os.getloadavg()[0]
    n = len(paths)
    for row in rows.values():
        row["clips_per_second"] = n / row["seconds"]
    print(_table(rows, n, workers, what, load_before, load_after, warm_seconds), flush=True)
    return {"clips": n, "source": what, "workers": workers, "rows": rows, "warm_rerun_seconds": warm_seconds}


def _table(rows: dict, n: int, workers: int, what: str, load_before: float, load_after: float,
           warm_seconds: float) -> str:
    from competition.features.workers import available_cores

    a, c, d, decode_only = (rows[k]["clips_per_second"] for k in ("a", "c", "d", "0"))
    lines = [
        "",
        f"features bench: {what}",
        f"machine: {available_cores()} cores available (os.cpu_count {os.cpu_count()}); load average "
        f"{load_before:.2f} before, {load_after:.2f} after (other processes share these cores)",
        "",
        f"{'method':58s} {'clips/s':>8s} {'vs (a)':>7s} {'vs (c)':>7s} {'CPU ms/clip':>12s} {'peak MiB':>9s}",
    ]
    for key in METHODS:
        row = rows[key]
        label = f"({key}) {METHODS[key].format(workers=workers)}"
        lines.append(f"{label:58s} {row['clips_per_second']:8.1f} {row['clips_per_second'] / a:6.2f}x "
                     f"{row['clips_per_second'] / c:6.2f}x {1000 * row['cpu_seconds'] / n:12.1f} "
                     f"{row['peak_bytes'] / 2**20:9.0f}")
    lines += [
        f"(d') warm rerun, nothing to compute: {warm_seconds:.2f} s for {n} clips",
        f"(0) x {workers} cores, decoding and nothing else: {workers * decode_only:.1f} clips/s, "
        f"{workers * decode_only / a:.2f}x (a), {workers * decode_only / c:.2f}x (c): no method can go faster",
        "",
        f"targets: (d) >= 4x (a): {d / a:.2f}x {'met' if d >= 4 * a else 'NOT met'}; "
        f"(d) >= 3x (c): {d / c:.2f}x {'met' if d >= 3 * c else 'NOT met'}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    # Internal entry point: `python -m benchmarks.features --child METHOD PATHS.json WORK_DIR WORKERS`.
    if len(sys.argv) != 6 or sys.argv[1] != "--child":
        sys.exit("run the bench with `make bench` or `python -m benchmarks speed`")
    method, list_file, work_dir, n_workers = sys.argv[2:]
    result = _run_method(method, json.loads(Path(list_file).read_text()), Path(work_dir), int(n_workers))
    print(json.dumps(result))
