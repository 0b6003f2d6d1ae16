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
        cap line: no method, the kit included, can pass it, before any resampling or log-mel.

The methods live in benchmarks/feature_methods.py, the measuring in benchmarks/measure.py, the clip
sets in benchmarks/clips.py. Each method runs in its own fresh process. (a) to (d) first handle a
clip untimed ((d) builds a scratch cache of two), so imports and JIT compilation are left out of
every one of them alike; (d') counts everything. Peak memory is the largest sum of resident memory
over the method's process and its children (pages forked workers share are counted once per
process, so this overstates).

Clips, each set its own table, every method on the same clips: from ../shared/data beside the kit,
when there, ESC-10 (the 400 esc10 rows of the shared ESC-50 copy: ESC-50 at 16 kHz, Vorbis, 5 s)
and every UrbanSound8K clip of the shared folds (1,761 in folds 1-2; 16-bit WAV, 22,050 Hz, up to
4 s; converted from the shared FLAC copy as its bin/urbansound8k-wav does); otherwise (or with
`--generated`) 400 generated 5 s 16-bit WAV clips at 44.1 kHz. Each table says which. The kit's
cold start (forking workers that then set their threads and warm their caches) is a fixed cost,
whose share shrinks as the set grows: the two shared sets (400 and 1,761 clips) show it side by
side. Each table also shows what creating a file costs where the methods write (under `make bench`
the workspace's features/ folder, where the kit's cache lives) and in the system's temporary
folder, as every method writes files. On OGG, decoding Vorbis (libvorbis through libsndfile) costs the same whoever does
it: row (0)'s CPU ms/clip against (d)'s, and the cap line, show how much of the kit's work that
is. WAV is the format of Freesound, UrbanSound8K and ESC-50's own release.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from benchmarks import SHARED_DATA
from benchmarks.clips import GENERATED_CLIPS, SHARED_ESC10, SHARED_URBANSOUND8K, clip_sets
from benchmarks.feature_methods import CHILD_METHODS, KIT_EXPERIMENT, METHODS, child_command
from benchmarks.measure import file_creation_ms, kit_env, measured

# SHARED_DATA, SHARED_ESC10, SHARED_URBANSOUND8K and GENERATED_CLIPS are read from this module when
# run_bench runs, so that a caller (the tests) can point them elsewhere.


def run_bench(*, clips: int | None = None, workers: int | None = None, generated: bool = False,
              scratch: Path | None = None) -> list[dict]:
    """Run every method on each clip set, print a table per set, return the numbers. `generated`: WAV
    clips made here even where the shared copies are present. Every method writes its output under
    `scratch` (`make bench`: the workspace's features/ folder, where the kit's cache lives), so that
    the files they write cost what they cost where the kit writes its cache; each table shows what
    creating a file costs there and in the system's temporary folder."""
    from competition.features.workers import available_cores

    workers = workers or available_cores()
    if scratch is not None:
        scratch = scratch.resolve()
        scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".bench-", dir=scratch) as tmp:
        tmp = Path(tmp)
        file_ms = {str(tmp.parent): file_creation_ms(tmp)}
        if scratch is not None:
            file_ms[tempfile.gettempdir()] = file_creation_ms(Path(tempfile.gettempdir()))
        sets = clip_sets(tmp, clips, generated, shared=SHARED_DATA, esc10=SHARED_ESC10,
                         urbansound8k=SHARED_URBANSOUND8K, n_generated=GENERATED_CLIPS)
        return [_bench_clips(tmp / f"set-{i}", source, paths, what, workers, file_ms)
                for i, (source, paths, what) in enumerate(sets)]


def _bench_clips(tmp: Path, source: Path, paths: list[str], what: str, workers: int,
                 file_ms: dict[str, float]) -> dict:
    from competition.features.workers import THREAD_VARIABLES

    tmp.mkdir()
    load_before = os.getloadavg()[0]
    env = kit_env()
    rows = {}
    print(f"features bench on {what}", flush=True)
    list_file = tmp / "paths.json"
    list_file.write_text(json.dumps(paths))
    one_thread = {variable: "1" for variable in THREAD_VARIABLES}
    for method in CHILD_METHODS:
        print(f"  ({method}) {METHODS[method].format(workers=workers)} ...", flush=True)
        work = tmp / f"work-{method}"
        work.mkdir()
        command = child_command(method, list_file, work, workers)
        _, _, peak, out = measured(command, {**env, **one_thread} if method == "c1" else env)
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
    seconds, cpu, peak, _ = measured(command, {**env, "KIT_HOME": str(home)})
    rows["d'"] = {"seconds": seconds, "cpu_seconds": cpu, "peak_bytes": peak}
    warm_seconds, _, _, _ = measured(command, {**env, "KIT_HOME": str(home)})
    # The same warm rerun checking every cached clip against its CRC-32 (what training does first).
    verify_seconds, _, _, _ = measured([*command, "--verify"], {**env, "KIT_HOME": str(home)})
    load_after = os.getloadavg()[0]
    n = len(paths)
    for row in rows.values():
        row["clips_per_second"] = n / row["seconds"]
    print(_table(rows, n, workers, what, load_before, load_after, warm_seconds, file_ms, verify_seconds), flush=True)
    return {"clips": n, "source": what, "workers": workers, "rows": rows, "warm_rerun_seconds": warm_seconds,
            "verify_rerun_seconds": verify_seconds, "file_creation_ms": file_ms}


def _table(rows: dict, n: int, workers: int, what: str, load_before: float, load_after: float,
           warm_seconds: float, file_ms: dict[str, float], verify_seconds: float) -> str:
    from competition.features.workers import available_cores

    a, c, d, decode_only = (rows[k]["clips_per_second"] for k in ("a", "c", "d", "0"))
    cold_seconds = rows["d'"]["seconds"]
    where = ", ".join(f"{ms:.3f} ms in {folder}" for folder, ms in file_ms.items())
    lines = [
        "",
        f"features bench: {what}",
        f"machine: {available_cores()} cores available (os.cpu_count {os.cpu_count()}); load average "
        f"{load_before:.2f} before, {load_after:.2f} after (other processes share these cores)",
        f"creating a file: {where} (the methods write in the first)",
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
        f"(d') warm rerun, nothing to compute: {warm_seconds:.2f} s for {n} clips; with --verify (every clip's "
        f"CRC-32): {verify_seconds:.2f} s, {1000 * 1000 * max(verify_seconds - warm_seconds, 0) / n:.1f} ms per "
        f"1,000 clips more, {100 * max(verify_seconds - warm_seconds, 0) / cold_seconds:.1f}% of the cold "
        "build",
        f"(0) x {workers} cores, decoding and nothing else: {workers * decode_only:.1f} clips/s, "
        f"{workers * decode_only / a:.2f}x (a), {workers * decode_only / c:.2f}x (c): no method can go faster",
        "",
        f"targets: (d) >= 4x (a): {d / a:.2f}x {'met' if d >= 4 * a else 'NOT met'}; "
        f"(d) >= 3x (c): {d / c:.2f}x {'met' if d >= 3 * c else 'NOT met'}",
    ]
    return "\n".join(lines)
