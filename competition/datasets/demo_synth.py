"""Offline "demo competition": a small FSDKaggle2018-shaped dataset rendered from recorded samples.

`generate_demo(dest)` writes, under `dest`, exactly the layout of Kaggle `freesound-audio-tagging`:

    train.csv                  fname,label,manually_verified
    audio_train/<fname>        one WAV per train row
    audio_test/<fname>         one WAV per test row
    sample_submission.csv      fname,label   (every test fname, three labels per row like Kaggle's)
    test_post_competition.csv  fname,label,usage   (usage: Public / Private / Ignored)

plus `demo.json`, the generator's own record: the arguments (so a rerun with the same ones is a
no-op) and `flipped_train_labels`, the true label of every train row whose CSV label was made wrong.

Clips are General MIDI notes played through the TimGM6mb soundfont that ships with pretty_midi
(real instrument recordings, rendered by tinysoundfont without system libraries), one label per
clip out of `LABELS`. To keep the task learnable but not trivial, clips vary in preset, pitch,
velocity, note pattern (single notes, repeats, melodies, chords, rolls, bursts), tuning, duration
(0.3 s to 10 s), leading silence, gain and background noise; ~40 % of train rows are unverified and
some of those carry a wrong label, as in FSDKaggle2018; the test set holds empty (0-sample) clips.
WAVs are 16-bit PCM, 44.1 kHz, mono. Everything is deterministic given the seed.

`generate_full_size(dest)` renders a competition of the real size the same way: exactly the fnames,
labels, verification flags and usage of FSDKaggle2018's own CSVs (`freesound.SHIPPED_META_DIR`,
copied as they are), the labels General MIDI cannot voice sounded by stand-ins
(`demo_voices.STAND_IN_VOICES`), the Ignored test rows (labelled `None`) by a random label, and the
competition's three empty test clips. Its clip lengths are an assumption, not the real ones (which
the CSVs do not give): log-normal with a median of `FULL_SIZE_MEDIAN_S` and a spread of
`FULL_SIZE_SIGMA` (natural log), held to 0.3-30 s, so many clips are short and a few reach the cap,
as in FSDKaggle2018. That is many GB of WAV, so it is rendered on every core, after checking the
free disk (`check_free_disk`).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from competition.datasets import freesound
from competition.datasets.demo_voices import LABELS, STAND_IN_VOICES, VOICES, Voice
from competition.datasets.freesound import SAMPLE_SUBMISSION_LABELS
from competition.datasets.spec import DatasetError, read_csv

SAMPLE_RATE = 44100
TRAIN_AUDIO_DIR = "audio_train"
TEST_AUDIO_DIR = "audio_test"
DEMO_RECORD = "demo.json"
# Bump when the rendering changes, so a cached demo from an older generator is rebuilt.
_FORMAT_VERSION = 1

# Label noise: share of train rows left unverified, and share of those given a wrong label.
UNVERIFIED_FRACTION = 0.4
FLIPPED_FRACTION_OF_UNVERIFIED = 0.12
# Test rows scored on the public / private leaderboard; the rest (and every empty clip) is Ignored.
PUBLIC_FRACTION = 0.3
PRIVATE_FRACTION = 0.5

SHORTEST_CLIP_S = 0.3  # the shortest clips of FSDKaggle2018
LONGEST_CLIP_S = 30.0  # and the longest
# The full-size competition's clip lengths: log-normal, held to SHORTEST_CLIP_S..LONGEST_CLIP_S (an assumption).
FULL_SIZE_MEDIAN_S = 3.5
FULL_SIZE_SIGMA = 1.1
WAV_HEADER_BYTES = 44  # a 16-bit PCM WAV as soundfile writes it: the header, then 2 bytes a sample
# Free disk a render leaves beyond its own files: a share of them and a fixed margin.
DISK_HEADROOM_FRACTION = 0.05
DISK_HEADROOM_BYTES = 64 << 20
SHORT_CLIP_FRACTION = 0.05  # clips exactly SHORTEST_CLIP_S long
LONG_CLIP_FRACTION = 0.12  # clips of 4-10 s; the rest is log-uniform in 0.3-4 s

MELODIC_CHANNEL = 0
DRUM_CHANNEL = 9  # General MIDI percussion channel
PITCH_WHEEL_CENTRE = 8192  # the default +-2 semitone bend range spans 0..16383
# GM drum kits of TimGM6mb (bank 128): Standard, Room, Power, Electronic, TR-808, Jazz, Brush, Orchestra.
DRUM_KITS = (0, 8, 16, 24, 25, 32, 40, 48)

# A note: (onset in s, length in s, MIDI key, velocity 1..127).
Note = tuple[float, float, int, int]


def generate_demo(
    dest: Path, *, n_train: int = 600, n_test: int = 300, seed: int = 0, n_empty_test: int = 1
) -> Path:
    """Render the demo competition into `dest` (see module docstring) and return `dest`.

    Does nothing if `dest` already holds a demo made with the same arguments. Otherwise builds it in
    `<dest>.partial` and renames that into place, replacing an earlier demo in `dest`.
    """
    if n_train < 1 or n_test < 1:
        raise ValueError(f"need at least one train and one test clip, got {n_train=}, {n_test=}")
    if not 0 <= n_empty_test <= n_test:
        raise ValueError(f"n_empty_test must be in 0..n_test, got {n_empty_test}")
    dest = Path(dest)
    params = {"format_version": _FORMAT_VERSION, "n_train": n_train, "n_test": n_test,
              "seed": seed, "n_empty_test": n_empty_test}
    if _holds_demo(dest, params):
        return dest
    if dest.exists() and any(dest.iterdir()) and not (dest / DEMO_RECORD).exists():
        raise FileExistsError(f"{dest} exists and is not a demo competition; refusing to replace it")

    plan = _plan(n_train, n_test, n_empty_test, np.random.default_rng(seed))
    record = {**params, "labels": list(LABELS),
              "flipped_train_labels": {c.fname: c.true_label for c in plan if c.label != c.true_label}}
    return _build(dest, plan, seed, record, lambda partial: _write_csvs(partial, plan), workers=1)


def generate_full_size(dest: Path, *, meta_dir: Path = freesound.SHIPPED_META_DIR, seed: int = 0,
                       workers: int | None = None) -> Path:
    """Render a competition with the fnames, labels, flags and usage of the CSVs in `meta_dir` (see
    the module docstring) into `dest`, on `workers` processes (default: every core); return `dest`.

    Does nothing if `dest` already holds one rendered from the same CSVs and seed; refuses before
    rendering anything when the disk lacks the room. Built in `<dest>.partial`, renamed into place.
    """
    dest, meta_dir = Path(dest), Path(meta_dir)
    train = read_csv(meta_dir / "train.csv", ["fname", "label", "manually_verified"])
    test = read_csv(meta_dir / "test_post_competition.csv", ["fname", "label", "usage"])
    sample = read_csv(meta_dir / "sample_submission.csv", ["fname"])
    if sample["fname"].tolist() != test["fname"].tolist():
        raise DatasetError(f"{meta_dir}: sample_submission.csv and test_post_competition.csv list other test fnames")
    csvs = [name for name in freesound.KAGGLE_CSVS if (meta_dir / name).is_file()]
    digest = hashlib.sha256(b"".join((meta_dir / name).read_bytes() for name in csvs)).hexdigest()
    params = {"format_version": _FORMAT_VERSION, "full_size": True, "seed": seed, "meta_sha256": digest}
    if _holds_demo(dest, params):
        return dest
    if dest.exists() and any(dest.iterdir()) and not (dest / DEMO_RECORD).exists():
        raise FileExistsError(f"{dest} exists and is not a rendered competition; refusing to replace it")

    plan = _full_size_plan(train, test, np.random.default_rng(seed))

    def copy_csvs(partial: Path) -> None:
        for name in csvs:
            shutil.copyfile(meta_dir / name, partial / name)

    record = {**params, "labels": list(freesound.LABELS), "train_clips": len(train), "test_clips": len(test),
              "audio_seconds": round(sum(c.n_samples for c in plan) / SAMPLE_RATE, 1)}
    workers = workers or _cores()
    print(f"rendering {len(train):,} train and {len(test):,} test clips ({record['audio_seconds'] / 3600:.1f} h of "
          f"audio, {planned_bytes(plan) / 1e9:.2f} GB) into {dest} on {workers} process(es)", flush=True)
    return _build(dest, plan, seed, record, copy_csvs, workers=workers)


def _build(dest: Path, plan: list[_Clip], seed: int, record: dict, write_csvs: Callable[[Path], None], *,
           workers: int) -> Path:
    """Render `plan` and its CSVs into `<dest>.partial`, then rename that into place over `dest`."""
    partial = dest.with_name(dest.name + ".partial")
    if partial.exists():  # left over from an interrupted run
        shutil.rmtree(partial)
    partial.parent.mkdir(parents=True, exist_ok=True)
    check_free_disk(partial.parent, plan)
    (partial / TRAIN_AUDIO_DIR).mkdir(parents=True)
    (partial / TEST_AUDIO_DIR).mkdir()
    _render_clips(partial, plan, seed, workers)
    write_csvs(partial)
    (partial / DEMO_RECORD).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    if dest.exists():
        shutil.rmtree(dest)
    partial.rename(dest)
    return dest


def planned_bytes(plan: list[_Clip]) -> int:
    """What the WAVs of `plan` take on disk."""
    return sum(WAV_HEADER_BYTES + 2 * clip.n_samples for clip in plan)


def check_free_disk(folder: Path, plan: list[_Clip]) -> None:
    """Refuse, before anything is written, a render that would not fit on the disk of `folder`."""
    needed = planned_bytes(plan)
    free = shutil.disk_usage(folder).free
    if free < needed * (1 + DISK_HEADROOM_FRACTION) + DISK_HEADROOM_BYTES:
        raise DatasetError(f"{folder}: rendering {len(plan):,} clips needs {needed / 1e9:.2f} GB but the disk has "
                           f"{free / 1e9:.2f} GB free; free some space or render elsewhere")


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _holds_demo(dest: Path, params: dict) -> bool:
    if not (dest / "train.csv").is_file() or not (dest / DEMO_RECORD).is_file():
        return False
    try:
        record = json.loads((dest / DEMO_RECORD).read_text())
    except json.JSONDecodeError:
        return False
    return all(record.get(key) == value for key, value in params.items())


@dataclass(frozen=True)
class _Clip:
    """What one row of the dataset will hold, decided before any audio is rendered."""

    index: int  # position in the plan; seeds this clip's own random stream
    fname: str
    split: str  # "train" or "test"
    true_label: str  # what the audio is
    label: str  # what the CSV says (differs from true_label for flipped train rows)
    manually_verified: int  # train only
    usage: str  # test only: Public / Private / Ignored
    n_samples: int  # 0 for the empty test clips


def _plan(n_train: int, n_test: int, n_empty_test: int, rng: np.random.Generator) -> list[_Clip]:
    """Decide every clip's name, labels, flags and length (train clips first, each split sorted by fname)."""
    fnames = _unique_fnames(n_train + n_test, rng)
    train_fnames, test_fnames = sorted(fnames[:n_train]), sorted(fnames[n_train:])
    # Train and test get their own class proportions, as in the real data.
    train_labels = _roughly_balanced_labels(n_train, rng)
    test_labels = _roughly_balanced_labels(n_test, rng)
    n_samples = _clip_lengths(n_train + n_test, rng)

    unverified = _pick(n_train, round(UNVERIFIED_FRACTION * n_train), rng)
    flipped = set(rng.choice(sorted(unverified), size=_at_least_one(FLIPPED_FRACTION_OF_UNVERIFIED,
                                                                     len(unverified)), replace=False))
    clips = []
    for i, (fname, true_label) in enumerate(zip(train_fnames, train_labels)):
        label = true_label
        if i in flipped:
            label = str(rng.choice([other for other in LABELS if other != true_label]))
        clips.append(_Clip(i, fname, "train", true_label, label, int(i not in unverified), "",
                           int(n_samples[i])))

    empty = _pick(n_test, n_empty_test, rng)
    scored = [i for i in rng.permutation(n_test) if i not in empty]
    n_public = min(round(PUBLIC_FRACTION * n_test), len(scored))
    n_private = min(round(PRIVATE_FRACTION * n_test), len(scored) - n_public)
    usage = {int(i): "Public" for i in scored[:n_public]}
    usage.update({int(i): "Private" for i in scored[n_public:n_public + n_private]})
    for i, (fname, label) in enumerate(zip(test_fnames, test_labels)):
        index = n_train + i
        clips.append(_Clip(index, fname, "test", label, label, 1, usage.get(i, "Ignored"),
                           0 if i in empty else int(n_samples[index])))
    return clips


def _full_size_plan(train, test, rng: np.random.Generator) -> list[_Clip]:
    """The clips of the real competition's CSVs: their own fnames, labels, flags and usage; the
    Ignored rows (label None) sound a random label, and EMPTY_TEST_CLIPS hold no samples."""
    n_train = len(train)
    n_samples = _full_size_lengths(n_train + len(test), rng)
    clips = [_Clip(i, row.fname, "train", row.label, row.label, int(row.manually_verified), "", int(n_samples[i]))
             for i, row in enumerate(train.itertuples(index=False))]
    stand_in_labels = rng.choice(freesound.LABELS, size=len(test))
    for i, row in enumerate(test.itertuples(index=False)):
        index = n_train + i
        sounds = row.label if row.label in freesound.LABELS else str(stand_in_labels[i])
        length = 0 if row.fname in freesound.EMPTY_TEST_CLIPS else int(n_samples[index])
        clips.append(_Clip(index, row.fname, "test", sounds, row.label, 1, row.usage, length))
    return clips


def _full_size_lengths(count: int, rng: np.random.Generator) -> np.ndarray:
    """Lengths in samples: log-normal (median FULL_SIZE_MEDIAN_S, sigma FULL_SIZE_SIGMA), held to 0.3-30 s."""
    seconds = np.exp(rng.normal(np.log(FULL_SIZE_MEDIAN_S), FULL_SIZE_SIGMA, size=count))
    return np.round(np.clip(seconds, SHORTEST_CLIP_S, LONGEST_CLIP_S) * SAMPLE_RATE).astype(int)


def _unique_fnames(count: int, rng: np.random.Generator) -> list[str]:
    """Kaggle-style names: 8 lowercase hex digits + .wav, all distinct."""
    fnames: list[str] = []
    seen = set()
    while len(fnames) < count:
        fname = f"{int(rng.integers(0, 2**32)):08x}.wav"
        if fname not in seen:
            seen.add(fname)
            fnames.append(fname)
    return fnames


def _roughly_balanced_labels(count: int, rng: np.random.Generator) -> list[str]:
    """Labels in shuffled order, class counts proportional to weights within +-30 % of each other."""
    weights = rng.uniform(0.7, 1.3, size=len(LABELS))
    quotas = weights / weights.sum() * count
    counts = np.floor(quotas).astype(int)
    # Hand the remaining rows to the largest remainders so the counts sum to `count`.
    counts[np.argsort(counts - quotas)[: count - counts.sum()]] += 1
    labels = np.repeat(np.array(LABELS), counts)
    return [str(label) for label in rng.permutation(labels)]


def _clip_lengths(count: int, rng: np.random.Generator) -> np.ndarray:
    """Lengths in samples: a fixed share exactly 0.3 s, a share 4-10 s, the rest log-uniform 0.3-4 s."""
    seconds = np.exp(rng.uniform(np.log(SHORTEST_CLIP_S), np.log(4.0), size=count))
    order = rng.permutation(count)
    n_short = _at_least_one(SHORT_CLIP_FRACTION, count)
    n_long = _at_least_one(LONG_CLIP_FRACTION, count - n_short)
    seconds[order[:n_short]] = SHORTEST_CLIP_S
    seconds[order[n_short:n_short + n_long]] = rng.uniform(4.0, 10.0, size=n_long)
    return np.round(seconds * SAMPLE_RATE).astype(int)


def _at_least_one(fraction: float, count: int) -> int:
    """round(fraction * count), but at least 1 when count allows, so tiny demos keep every case."""
    return min(count, max(1, round(fraction * count)))


def _pick(count: int, k: int, rng: np.random.Generator) -> set[int]:
    return {int(i) for i in rng.choice(count, size=k, replace=False)}


def _render_clips(root: Path, plan: list[_Clip], seed: int, workers: int = 1) -> None:
    """Every clip of `plan` as a WAV under `root`: in this process, or on `workers` processes."""
    import multiprocessing

    from tqdm import tqdm

    progress = tqdm(total=len(plan), desc="Rendering clips", unit="clip")
    if workers <= 1:
        _start_renderer(root, seed)
        for clip in plan:
            progress.update(_render_to_file(clip))
    else:
        # Longest first, so the last clips to finish are short ones and no core idles at the end.
        order = sorted(plan, key=lambda clip: -clip.n_samples)
        with multiprocessing.get_context("fork").Pool(workers, _start_renderer, (root, seed)) as pool:
            for done in pool.imap_unordered(_render_to_file, order, chunksize=4):
                progress.update(done)
    progress.close()


# One renderer per process: its synthesiser, where clips go, and the seed (set by _start_renderer).
_renderer: dict = {}


def _start_renderer(root: Path, seed: int) -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # one BLAS/OpenMP thread a process: the pool already uses every core
    synth, soundfont_id = _load_synth()
    _renderer.update(root=root, seed=seed, synth=synth, soundfont_id=soundfont_id)


def _render_to_file(clip: _Clip) -> int:
    import soundfile

    # Each clip draws from its own stream, so its audio depends only on (seed, clip index).
    rng = np.random.default_rng([_renderer["seed"], clip.index])
    audio = np.zeros(0, dtype=np.int16)
    if clip.n_samples:
        audio = _to_pcm16(_render_clip(_renderer["synth"], _renderer["soundfont_id"], clip.true_label,
                                       clip.n_samples, rng))
    folder = TRAIN_AUDIO_DIR if clip.split == "train" else TEST_AUDIO_DIR
    soundfile.write(_renderer["root"] / folder / clip.fname, audio, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    return 1


def _write_csvs(root: Path, plan: list[_Clip]) -> None:
    train = [c for c in plan if c.split == "train"]
    test = [c for c in plan if c.split == "test"]
    _write_csv(root / "train.csv", ("fname", "label", "manually_verified"),
               [(c.fname, c.label, c.manually_verified) for c in train])
    _write_csv(root / "sample_submission.csv", ("fname", "label"),
               [(c.fname, SAMPLE_SUBMISSION_LABELS) for c in test])
    _write_csv(root / "test_post_competition.csv", ("fname", "label", "usage"),
               [(c.fname, c.label, c.usage) for c in test])


def _write_csv(path: Path, header: tuple[str, ...], rows: list[tuple]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _load_synth():
    import pretty_midi
    import tinysoundfont

    synth = tinysoundfont.Synth(samplerate=SAMPLE_RATE)
    soundfont_id = synth.sfload(str(Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"))
    return synth, soundfont_id


def _render_clip(synth, soundfont_id: int, label: str, n_samples: int,
                 rng: np.random.Generator) -> np.ndarray:
    """One clip of `label`, float32 mono in [-1, 1], exactly `n_samples` long."""
    voices = VOICES.get(label) or STAND_IN_VOICES[label]
    voice = voices[rng.integers(len(voices))]
    seconds = n_samples / SAMPLE_RATE
    lead_in = rng.uniform(0, min(0.25, 0.2 * seconds)) if rng.random() < 0.5 else 0.0
    span = seconds - lead_in
    patterns = voice.patterns
    if voice.is_drums and span > 2.0 and len(patterns) > 1:
        patterns = tuple(p for p in patterns if p != "single")  # one hit in a long clip is mostly silence
    pattern = str(rng.choice(patterns))
    base_velocity = rng.uniform(40, 120)
    notes = [(lead_in + onset, length, key, velocity)
             for onset, length, key, velocity in _PATTERNS[pattern](voice, span, base_velocity, rng)]

    if voice.is_drums:
        channel = DRUM_CHANNEL
        synth.program_select(channel, soundfont_id, 0, int(rng.choice(DRUM_KITS)), is_drums=True)
        bend = rng.uniform(-0.5, 0.5)  # drum tuning, in units of the +-2 semitone bend range
    else:
        channel = MELODIC_CHANNEL
        synth.program_select(channel, soundfont_id, 0, voice.program)
        bend = rng.uniform(-0.15, 0.15)  # real instruments are rarely tuned to exactly A440
    synth.pitchbend(channel, PITCH_WHEEL_CENTRE + int(bend * PITCH_WHEEL_CENTRE))
    sound = _play(synth, channel, notes, n_samples)
    _silence(synth, channel)

    fade = min(n_samples, SAMPLE_RATE // 200)  # 5 ms, so notes cut by the clip end do not click
    sound[n_samples - fade:] *= np.linspace(1, 0, fade, dtype=np.float32)
    return _level_and_noise(sound, rng)


def _play(synth, channel: int, notes: list[Note], n_samples: int) -> np.ndarray:
    """Render notes on one channel; returns the mono mix of the stereo output."""
    events = []  # (sample, is_note_on, key, velocity); note-offs sort first so repeats retrigger
    for onset, length, key, velocity in notes:
        start = round(onset * SAMPLE_RATE)
        if start >= n_samples:
            continue
        events.append((start, True, key, velocity))
        events.append((start + max(1, round(length * SAMPLE_RATE)), False, key, 0))
    events.sort()

    stereo = np.empty((n_samples, 2), dtype=np.float32)
    position = 0
    for sample, is_note_on, key, velocity in events:
        sample = min(sample, n_samples)
        if sample > position:
            stereo[position:sample] = np.frombuffer(synth.generate(sample - position), np.float32).reshape(-1, 2)
            position = sample
        if position == n_samples:
            break
        if is_note_on:
            synth.noteon(channel, key, velocity)
        else:
            synth.noteoff(channel, key)
    if position < n_samples:
        stereo[position:] = np.frombuffer(synth.generate(n_samples - position), np.float32).reshape(-1, 2)
    return stereo.mean(axis=1)


def _silence(synth, channel: int) -> None:
    """Leave the synth as if fresh: sounds_off only shortens releases, so render until they are gone."""
    synth.sounds_off()
    synth.pitchbend(channel, PITCH_WHEEL_CENTRE)
    while np.any(np.frombuffer(synth.generate(1024), np.float32)):
        pass


def _level_and_noise(sound: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Add background noise at a random SNR (sometimes none) and scale to a random peak level."""
    if rng.random() < 0.7:
        noise = _pink_noise(len(sound), rng) if rng.random() < 0.5 else rng.standard_normal(len(sound))
        noise /= np.sqrt(np.mean(noise**2))
        snr_db = rng.uniform(5, 40)
        sound = sound + (np.sqrt(np.mean(sound**2)) * 10 ** (-snr_db / 20) * noise).astype(np.float32)
    peak = np.abs(sound).max()
    if peak == 0:
        raise RuntimeError("a demo clip rendered silent; check the voice's key range")
    peak_dbfs = rng.uniform(-24, -1)
    return sound * (10 ** (peak_dbfs / 20) / peak)


def _pink_noise(n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """1/f noise: white noise shaped in the frequency domain."""
    spectrum = np.fft.rfft(rng.standard_normal(n_samples))
    frequencies = np.fft.rfftfreq(n_samples)
    spectrum[1:] /= np.sqrt(frequencies[1:])
    spectrum[0] = 0
    return np.fft.irfft(spectrum, n=n_samples)


def _to_pcm16(sound: np.ndarray) -> np.ndarray:
    return np.round(np.clip(sound, -1, 1) * 32767).astype(np.int16)


# ---- note patterns: each returns notes with onsets in [0, span) -------------------------------

def _velocity(base: float, rng: np.random.Generator, spread: float = 8.0) -> int:
    return int(np.clip(round(base + rng.normal(0, spread)), 1, 127))


def _humanize(rng: np.random.Generator) -> float:
    return rng.normal(0, 0.008)  # players are never exactly on the grid


def _key(voice: Voice, rng: np.random.Generator) -> int:
    return int(voice.keys[rng.integers(len(voice.keys))])


def _single(voice: Voice, span: float, base_velocity: float, rng: np.random.Generator) -> list[Note]:
    return [(0.0, span * rng.uniform(0.5, 1.0), _key(voice, rng), _velocity(base_velocity, rng))]


def _repeated(voice: Voice, span: float, base_velocity: float, rng: np.random.Generator) -> list[Note]:
    interval = rng.uniform(0.12, 0.7)
    gate = rng.uniform(0.3, 0.95)
    key = _key(voice, rng)
    # Drum voices with several keys (closed/open hi-hat, two snares) sometimes mix them in a groove.
    mix_keys = voice.is_drums and len(voice.keys) > 1 and rng.random() < 0.4
    accent_every = int(rng.choice([2, 3, 4, 8]))
    notes = []
    for i, onset in enumerate(np.arange(0, span, interval)):
        accent = 20 if i % accent_every == 0 else 0
        notes.append((max(0.0, onset + _humanize(rng)), interval * gate,
                      _key(voice, rng) if mix_keys else key, _velocity(base_velocity + accent, rng)))
    return notes


def _scale_keys(voice: Voice, rng: np.random.Generator) -> list[int]:
    """Keys of a random scale (major, natural minor or pentatonic) inside the voice's range."""
    steps = [(0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10), (0, 2, 4, 7, 9), (0, 3, 5, 7, 10)]
    scale = steps[rng.integers(len(steps))]
    tonic = int(rng.integers(12))
    return [key for key in voice.keys if (key - tonic) % 12 in scale]


def _melody(voice: Voice, span: float, base_velocity: float, rng: np.random.Generator) -> list[Note]:
    keys = _scale_keys(voice, rng)
    beat = rng.uniform(0.15, 0.6)
    legato = rng.uniform(0.6, 1.0)
    position = int(rng.integers(len(keys)))
    notes, onset = [], 0.0
    while onset < span:
        length = beat * float(rng.choice([0.5, 1, 1, 1, 1.5, 2]))
        notes.append((max(0.0, onset + _humanize(rng)), length * legato, keys[position],
                      _velocity(base_velocity, rng)))
        position = int(np.clip(position + rng.choice([-3, -2, -1, -1, 0, 1, 1, 2, 3]), 0, len(keys) - 1))
        onset += length
    return notes


def _chord_keys(voice: Voice, rng: np.random.Generator) -> list[int]:
    shapes = [(0, 4, 7), (0, 3, 7), (0, 4, 7, 10), (0, 3, 7, 10), (0, 7, 12), (0, 5, 7), (0, 4, 7, 12, 16)]
    shape = shapes[rng.integers(len(shapes))]
    lowest, highest = voice.keys[0], voice.keys[-1]
    root = int(rng.integers(lowest, max(lowest, highest - shape[-1]) + 1))
    return [root + step for step in shape if root + step <= highest]


def _chords(voice: Voice, span: float, base_velocity: float, rng: np.random.Generator) -> list[Note]:
    chord_length = rng.uniform(0.4, 2.0)
    strum = rng.uniform(0, 0.035)  # seconds between strings; 0 is a block chord
    notes = []
    for onset in np.arange(0, span, chord_length):
        keys = _chord_keys(voice, rng)
        velocity = base_velocity + rng.normal(0, 6)
        for i, key in enumerate(keys):
            notes.append((onset + i * strum, chord_length * 0.95, key, _velocity(velocity, rng, 4)))
    return notes


def _arpeggio(voice: Voice, span: float, base_velocity: float, rng: np.random.Generator) -> list[Note]:
    step = rng.uniform(0.08, 0.3)
    notes, onset = [], 0.0
    while onset < span:
        keys = _chord_keys(voice, rng)
        if rng.random() < 0.5:
            keys = keys[::-1]
        for i, key in enumerate(keys):
            # Each note rings on until the whole chord has been played, like a held arpeggio.
            notes.append((onset + i * step, (len(keys) - i) * step + step, key, _velocity(base_velocity, rng)))
        onset += len(keys) * step + step
    return notes


def _cluster(voice: Voice, span: float, base_velocity: float, rng: np.random.Generator) -> list[Note]:
    """Wind-chime-like: random notes of a few pitches struck at random times."""
    pitches = rng.choice(_scale_keys(voice, rng), size=5)
    rate = rng.uniform(2, 10)  # strikes per second
    onsets = np.cumsum(rng.exponential(1 / rate, size=max(1, int(span * rate * 2))))
    return [(float(onset), rng.uniform(0.5, 2.5), int(rng.choice(pitches)), _velocity(base_velocity, rng, 20))
            for onset in onsets[onsets < span]] or _single(voice, span, base_velocity, rng)


def _roll(voice: Voice, span: float, base_velocity: float, rng: np.random.Generator) -> list[Note]:
    """Drum rolls: fast even strokes swelling or fading, separated by pauses."""
    stroke = rng.uniform(0.03, 0.07)
    key = _key(voice, rng)
    notes, onset = [], 0.0
    while onset < span:
        roll_length = rng.uniform(0.3, 1.5)
        strokes = np.arange(0, roll_length, stroke)
        swell = np.linspace(-25, 15, len(strokes)) * rng.choice([-1, 1])
        notes += [(onset + t, stroke, key, _velocity(base_velocity + s, rng, 5)) for t, s in zip(strokes, swell)]
        onset += roll_length + rng.uniform(0.1, 1.0)
    return notes


def _rings(voice: Voice, span: float, base_velocity: float, rng: np.random.Generator) -> list[Note]:
    """Telephone: bursts of quickly repeated ring tones, then a pause."""
    key = _key(voice, rng)
    interval = rng.uniform(0.08, 0.25)
    ring_length = rng.uniform(0.8, 2.0)
    pause = rng.uniform(0.6, 2.5)
    notes, onset = [], 0.0
    while onset < span:
        notes += [(onset + t, interval, key, _velocity(base_velocity, rng, 3))
                  for t in np.arange(0, ring_length, interval)]
        onset += ring_length + pause
    return notes


def _shots(voice: Voice, span: float, base_velocity: float, rng: np.random.Generator) -> list[Note]:
    """Gunfire: a single shot, sparse shots, or automatic bursts."""
    key = _key(voice, rng)
    kind = rng.choice(["single", "sparse", "automatic"])
    if kind == "single" or span < 0.5:
        return [(0.0, 1.0, key, _velocity(base_velocity, rng))]
    notes, onset = [], 0.0
    while onset < span:
        if kind == "sparse":
            notes.append((onset, 1.0, _key(voice, rng), _velocity(base_velocity, rng, 15)))
            onset += rng.uniform(0.25, 2.0)
        else:
            interval = rng.uniform(0.06, 0.12)
            n_shots = int(rng.integers(3, 13))
            notes += [(onset + i * interval, interval, key, _velocity(base_velocity, rng)) for i in range(n_shots)]
            onset += n_shots * interval + rng.uniform(0.3, 1.5)
    return notes


def _texture(voice: Voice, span: float, base_velocity: float, rng: np.random.Generator) -> list[Note]:
    """Applause: one to three overlapping crowd layers at different playback pitches."""
    return [(rng.uniform(0, 0.2) * span, span * rng.uniform(0.7, 1.0), _key(voice, rng),
             _velocity(base_velocity, rng, 15)) for _ in range(int(rng.integers(1, 4)))]


_PATTERNS: dict[str, Callable[[Voice, float, float, np.random.Generator], list[Note]]] = {
    "single": _single, "repeated": _repeated, "melody": _melody, "chords": _chords,
    "arpeggio": _arpeggio, "cluster": _cluster, "roll": _roll, "rings": _rings, "shots": _shots,
    "texture": _texture,
}
