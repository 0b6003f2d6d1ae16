"""The feature cache: librosa's numbers faster, bad test clips kept as blank rows, incremental,
parallel with one thread per worker, crash-safe (kill -9 and rerun), flat memory, fast warm rerun."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile

from competition.config import FeatureConfig, load_experiment
from competition.datasets.esc50 import LABELS as ESC50_LABELS
from competition.datasets.registry import get_dataset
from competition.features import cache, dsp, workers
from competition.features import records as record_file
from competition.features.cache import FeatureError, build_features, pack_split
from competition.features.dsp import blank_features, compute_features
from competition.workspace import Workspace

KIT_ROOT = Path(__file__).resolve().parents[1]
RECIPE = """
name = "tiny"
[features]
kind = "{kind}"
sample_rate = 22050
n_fft = 1024
hop_length = 512
n_mels = 32
n_mfcc = 20
"""


def tone(seconds: float, rate: int, pitch: float, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(seed).standard_normal(len(t))
    return (0.3 * np.sin(2 * np.pi * pitch * t * (1 + 0.1 * t)) + 0.02 * noise).astype(np.float32)


def write_clip(path: Path, seconds: float, pitch: float, rate: int = 16000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, tone(seconds, rate, pitch, seed=int(pitch)), rate, subtype="PCM_16")


def make_competition(root: Path, n_train: int, n_test: int, *, seconds: float = 0.5, rate: int = 16000,
                     broken_test: bool = True) -> Path:
    """Kaggle's layout (the demo entry's), with an unreadable and an empty test clip when broken_test."""
    from competition.datasets.demo import LABELS as DEMO_LABELS

    train = pd.DataFrame({"fname": [f"{i:08x}.wav" for i in range(n_train)],
                          "label": [DEMO_LABELS[i % len(DEMO_LABELS)] for i in range(n_train)],
                          "manually_verified": 1})
    for i, fname in enumerate(train["fname"]):
        write_clip(root / "audio_train" / fname, seconds * (1 + i % 3), 200 + 10 * i, rate)
    test = [f"{0x1000 + i:08x}.wav" for i in range(n_test)]
    for i, fname in enumerate(test):
        write_clip(root / "audio_test" / fname, seconds, 300 + 10 * i, rate)
    if broken_test:
        test += ["not-audio.wav", "empty.wav"]
        (root / "audio_test" / "not-audio.wav").write_text("this is not a WAV file\n")
        (root / "audio_test" / "empty.wav").write_bytes(b"")
    train.to_csv(root / "train.csv", index=False)
    pd.DataFrame({"fname": test, "label": "Bark Meow Oboe"}).to_csv(root / "sample_submission.csv", index=False)
    return root


def experiment_file(directory: Path, kind: str = "logmel") -> Path:
    path = directory / f"tiny-{kind}.toml"
    path.write_text(RECIPE.format(kind=kind))
    return path


def tiny_config(kind: str = "logmel") -> FeatureConfig:
    return FeatureConfig(kind=kind, n_mels=32, n_mfcc=20)


def workspace_with(home: Path, competition: Path, name: str = "demo") -> Workspace:
    (home / "data").mkdir(parents=True, exist_ok=True)
    (home / "data" / name).symlink_to(competition)
    return Workspace(home)


def build(workspace: Workspace, config: FeatureConfig, **options):
    index = get_dataset("demo").index(workspace.dataset_dir("demo"))
    return build_features(workspace, "demo", {"train": index.train, "test": index.test}, config, **options)


def cache_files(workspace: Workspace, config: FeatureConfig, dataset: str = "demo") -> dict[str, bytes]:
    """Every file of a cache and its bytes; of failures.json only which clips failed (its reasons name
    the sources through this workspace's data/ folder)."""
    root = cache.cache_dir(workspace, dataset, config)
    return {str(p.relative_to(root)): (" ".join(json.loads(p.read_text())).encode() if p.name == "failures.json"
                                       else p.read_bytes())
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def competition(tmp_path_factory) -> Path:
    return make_competition(tmp_path_factory.mktemp("features") / "demo", n_train=12, n_test=4)


# ---------------------------------------------------------------- numbers

@pytest.mark.parametrize("seconds", [0.0, 0.004, 1024 / 22050, 0.3, 5.0])
@pytest.mark.parametrize("kind", ["logmel", "mfcc"])
def test_log_mel_and_mfcc_match_librosa(kind, seconds):
    import librosa

    config = FeatureConfig(kind=kind)
    signal_ = tone(seconds, config.sample_rate, 440.0)
    signal_[len(signal_) // 3: len(signal_) // 2] = 0  # a silent stretch: the -100 dB floor
    kit = compute_features(signal_, config)
    padded = np.pad(signal_, (0, max(0, config.n_fft - len(signal_))))  # the kit's handling of short clips
    mel = librosa.feature.melspectrogram(y=padded, sr=config.sample_rate, n_fft=config.n_fft,
                                         hop_length=config.hop_length, n_mels=config.n_mels, fmin=config.fmin,
                                         fmax=config.sample_rate / 2, power=2.0)
    reference = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
    if kind == "mfcc":
        reference = librosa.feature.mfcc(S=reference, n_mfcc=config.n_mfcc)
    assert kit.dtype == np.float32 and kit.shape == reference.T.shape
    np.testing.assert_allclose(kit, reference.T, atol=2e-3)  # dB; float16 storage rounds by 0.03 at -60 dB


@pytest.mark.parametrize("rate,n_fft,n_mels,fmin,fmax", [(22050, 1024, 64, 20.0, 11025.0),
                                                         (44100, 2048, 128, 0.0, 22050.0),
                                                         (16000, 512, 40, 300.0, 7000.0)])
def test_mel_filterbank_is_librosas(rate, n_fft, n_mels, fmin, fmax):
    import librosa

    np.testing.assert_allclose(dsp.mel_filterbank(rate, n_fft, n_mels, fmin, fmax),
                               librosa.filters.mel(sr=rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax),
                               atol=1e-7)


def test_features_of_a_file_resample_to_the_configured_rate(tmp_path):
    config = FeatureConfig()
    for rate in (8000, 44100, 96000):
        write_clip(tmp_path / f"{rate}.wav", 1.0, 440.0, rate)
        assert dsp.features_of_file(tmp_path / f"{rate}.wav", config).shape == (1 + 22050 // 512, 64)


# ---------------------------------------------------------------- bad clips

def test_undecodable_test_clips_get_a_blank_row_and_a_warning(tmp_path, competition, capsys):
    workspace = workspace_with(tmp_path, competition)
    config = tiny_config()
    stores = build(workspace, config, workers=2)
    test = stores["test"]
    assert test.fnames[-2:] == ["not-audio.wav", "empty.wav"]
    assert test.index["failed"].tolist() == [0, 0, 0, 0, 1, 1]
    for row in (4, 5):
        np.testing.assert_array_equal(test.clip(row), blank_features(config).astype(np.float16))
    err = capsys.readouterr().err
    assert "warning: 2 test clip(s) could not be decoded; they get a blank input" in err
    assert "not-audio.wav: not a readable audio file" in err and "empty.wav: empty file (0 bytes)" in err
    build(workspace, config)  # a warm rerun computes nothing, and still warns
    assert "warning: 2 test clip(s)" in capsys.readouterr().err


def test_clips_recorded_below_the_features_rate_are_said_when_their_cache_is_built(tmp_path, capsys):
    competition = make_competition(tmp_path / "demo", n_train=3, n_test=2)  # 16 kHz, and two broken test clips
    train = sorted((competition / "audio_train").iterdir())
    write_clip(train[0], 0.5, 300.0, 8000)
    write_clip(train[1], 0.5, 300.0, 44100)
    workspace = workspace_with(tmp_path / "kit", competition)
    build(workspace, tiny_config(), workers=1)
    err = capsys.readouterr().err
    assert ("note: 2 of 3 demo train clip(s) are recorded below the features' 22050 Hz (8000 Hz: 1, 16000 Hz: 1): "
            "resampled up, they hold nothing above 4000 Hz, so the features' top bins are empty for them "
            "(features.sample_rate sets the rate)") in err
    assert "note: 2 of 4 demo test clip(s) are recorded below the features' 22050 Hz (16000 Hz: 2)" in err
    build(workspace, tiny_config(), workers=1)  # current caches: nothing built, nothing said again
    assert "recorded below" not in capsys.readouterr().err
    build(workspace, FeatureConfig(kind="logmel", n_mels=32, sample_rate=16000), workers=1)
    err = capsys.readouterr().err
    assert "note: 1 of 3 demo train clip(s) are recorded below the features' 16000 Hz (8000 Hz: 1)" in err
    assert "test clip(s) are recorded below" not in err


def test_undecodable_train_clip_is_an_error_naming_it(tmp_path):
    competition = make_competition(tmp_path / "demo", n_train=3, n_test=1, broken_test=False)
    (competition / "audio_train" / "00000001.wav").write_bytes(b"RIFF\x00\x00")
    workspace = workspace_with(tmp_path / "kit", competition)
    with pytest.raises(FeatureError, match=r"1 train clip\(s\) could not be decoded.*\n.*00000001.wav: "):
        build(workspace, tiny_config(), workers=1)


# ---------------------------------------------------------------- incremental, parallel

def test_only_new_or_changed_audio_is_computed(tmp_path, monkeypatch):
    competition = make_competition(tmp_path / "demo", n_train=8, n_test=2)
    workspace = workspace_with(tmp_path / "kit", competition)
    config = tiny_config("mfcc")
    computed = []
    original = cache.decode
    monkeypatch.setattr(cache, "decode", lambda path, cfg, notes=None: computed.append(Path(path).name)
                        or original(path, cfg, notes))
    build(workspace, config, workers=1)
    assert len(computed) == 12  # every clip once, the 2 undecodable test clips included
    computed.clear()
    build(workspace, config, workers=1)
    assert computed == []
    # Change one clip, add one, drop one.
    time.sleep(0.01)
    write_clip(competition / "audio_train" / "00000002.wav", 0.5, 999.0)
    train = pd.read_csv(competition / "train.csv")
    write_clip(competition / "audio_train" / "new.wav", 0.7, 555.0)
    train.loc[len(train)] = ["new.wav", train["label"].iloc[0], 1]
    train[train["fname"] != "00000005.wav"].to_csv(competition / "train.csv", index=False)
    build(workspace, config, workers=1)
    assert sorted(computed) == ["00000002.wav", "new.wav"]
    fresh = workspace_with(tmp_path / "fresh", competition)
    build(fresh, config, workers=2)
    assert cache_files(workspace, config) == cache_files(fresh, config)  # stale clip files are gone too


def test_several_configs_decode_each_clip_once_and_match_single_builds(tmp_path, competition, monkeypatch):
    configs = [tiny_config("logmel"), tiny_config("mfcc"), FeatureConfig(kind="wave", sample_rate=8000)]
    decoded = []
    original = cache.decode
    monkeypatch.setattr(cache, "decode", lambda path, cfg, notes=None: decoded.append((Path(path).name,
                                                                                      cfg.sample_rate))
                        or original(path, cfg, notes))
    together = workspace_with(tmp_path / "together", competition)
    index = get_dataset("demo").index(together.dataset_dir("demo"))
    stores = cache.build_feature_sets(together, "demo", {"train": index.train, "test": index.test},
                                         configs + [tiny_config("logmel")], workers=1)
    assert list(stores) == [config.key for config in configs]
    assert len(decoded) == 2 * (12 + 6)  # once per clip at 22,050 Hz, once at 8,000 Hz
    for config in configs:
        alone = workspace_with(tmp_path / config.kind, competition)
        build(alone, config, workers=2)
        assert cache_files(alone, config) == cache_files(together, config)


def test_parallel_and_serial_caches_are_identical(tmp_path, competition):
    serial = workspace_with(tmp_path / "serial", competition)
    parallel = workspace_with(tmp_path / "parallel", competition)
    config = tiny_config()
    build(serial, config, workers=1)
    build(parallel, config, workers=2)
    assert cache_files(serial, config) == cache_files(parallel, config)


def _threads_in_worker(_) -> tuple[list[int], list[str]]:
    from threadpoolctl import threadpool_info

    return ([pool["num_threads"] for pool in threadpool_info()],
            [os.environ.get(v, "") for v in workers.THREAD_VARIABLES])


def test_workers_run_one_blas_and_openmp_thread_each():
    dsp.blank_features(FeatureConfig())  # what the parent loads before forking
    with multiprocessing.get_context("fork").Pool(2, initializer=workers.limit_worker_threads) as pool:
        for threads, variables in pool.map(_threads_in_worker, range(2)):
            assert threads and set(threads) == {1}
            assert variables == ["1"] * len(workers.THREAD_VARIABLES)


def test_a_serial_build_leaves_the_callers_threads_alone(tmp_path, competition, monkeypatch):
    from threadpoolctl import threadpool_info

    for variable in workers.THREAD_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    before = [pool["num_threads"] for pool in threadpool_info()]
    build(workspace_with(tmp_path, competition), tiny_config(), workers=1)
    assert [pool["num_threads"] for pool in threadpool_info()] == before  # training runs next, in-process
    assert not any(variable in os.environ for variable in workers.THREAD_VARIABLES)


# ---------------------------------------------------------------- crash safety

def _features_command(experiment: Path, workers: int = 2) -> list[str]:
    return [sys.executable, "-m", "competition", "features", "--dataset", "demo", "--experiment", str(experiment),
            "--workers", str(workers)]


def _env(home: Path) -> dict:
    return {**os.environ, "KIT_HOME": str(home), "PYTHONPATH": str(KIT_ROOT)}


def _clips_done(cache: Path) -> int:
    """Clips a build has finished so far: whole records in its record files plus packed clips."""
    records = sum(1 for path in cache.glob("clips/*/*.records") for _ in record_file.read_records(path))
    manifests = [path for path in cache.glob("*/manifest.json")]
    return records + sum(len(json.loads(path.read_text())) for path in manifests)


def _run_and_kill_after(command: list[str], home: Path, cache: Path, n_clips: int) -> None:
    """Start the command; SIGKILL it (and its workers) once n_clips clips are done (or it ended)."""
    process = subprocess.Popen(command, env=_env(home), cwd=home, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        try:
            if _clips_done(cache) >= n_clips:
                break
        except (OSError, ValueError):  # a file moved or written while looking
            pass
        time.sleep(0.002)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@pytest.mark.slow  # fresh processes
def test_kill_9_at_any_moment_then_rerun_gives_the_uninterrupted_cache(tmp_path):
    competition = make_competition(tmp_path / "demo", n_train=60, n_test=12, seconds=1.5, rate=44100)
    experiment = experiment_file(tmp_path)
    config = load_experiment(experiment).features
    reference = workspace_with(tmp_path / "reference", competition)
    subprocess.run(_features_command(experiment), env=_env(reference.root), cwd=reference.root, check=True,
                   capture_output=True)
    killed = workspace_with(tmp_path / "killed", competition)
    cache_root = cache.cache_dir(killed, "demo", config)
    for n_clips in (1, 25, 62, 70):  # early, mid-train, in the test split, near the end
        _run_and_kill_after(_features_command(experiment), killed.root, cache_root, n_clips)
    subprocess.run(_features_command(experiment), env=_env(killed.root), cwd=killed.root, check=True,
                   capture_output=True)
    expected = cache_files(reference, config)
    assert "train/frames.npy" in expected and "test/index.csv" in expected
    assert cache_files(killed, config) == expected  # byte for byte, leftovers of killed runs removed


def test_a_torn_or_damaged_record_and_all_after_it_are_ignored(tmp_path):
    clips = {f"clip{i}.wav": np.full((3 + i, 4), i, np.float16) for i in range(3)}
    for fname, values in clips.items():
        error = "bad audio" if fname == "clip1.wav" else ""
        last = record_file.append_record(tmp_path, 1, fname, "10-1", values, error)
    record_file.close_record_files()
    (path,) = tmp_path.glob("*.records")
    whole = path.read_bytes()
    records = list(record_file.read_records(path))
    assert [(f, s, r.error) for f, s, r in records] == [("clip0.wav", "10-1", ""), ("clip1.wav", "10-1", "bad audio"),
                                                       ("clip2.wav", "10-1", "")]
    for (_, _, record), values in zip(records, clips.values()):
        np.testing.assert_array_equal(record.read(), values)
    assert records[-1][2] == last
    last_start = len(whole) - (record_file._RECORD_HEADER.size + len("clip2.wav\n10-1") + clips["clip2.wav"].nbytes + 4)
    for cut in range(last_start, len(whole)):  # killed at every byte of the last record
        path.write_bytes(whole[:cut])
        assert [f for f, _, _ in record_file.read_records(path)] == ["clip0.wav", "clip1.wav"]
    damaged = bytearray(whole)
    damaged[last_start - 7] ^= 0xFF  # a byte of clip1's data
    path.write_bytes(bytes(damaged))
    assert [f for f, _, _ in record_file.read_records(path)] == ["clip0.wav"]


def _reference_and_records_of_another_run(tmp_path, competition, owner: int):
    """(config, a whole reference cache, a fresh workspace holding records of the first 5 train clips
    written by a build whose main process is `owner`, the train clips folder, the index)."""
    config = tiny_config()
    reference = workspace_with(tmp_path / "reference", competition)
    build(reference, config, workers=1)
    workspace = workspace_with(tmp_path / "other", competition)
    index = get_dataset("demo").index(workspace.dataset_dir("demo"))
    clips_dir = cache.cache_dir(workspace, "demo", config) / "clips" / "train"
    clips_dir.mkdir(parents=True)
    for fname, path in list(zip(index.train["fname"], index.train["path"]))[:5]:
        record_file.append_record(clips_dir, owner, fname, cache.source_signature(path),
                               dsp.features_of_file(path, config), "")
    record_file.close_record_files()
    return config, reference, workspace, clips_dir, index


def test_records_left_by_a_killed_run_are_used_and_then_removed(tmp_path, competition, monkeypatch):
    dead_pid = 2 ** 22 + 1  # above Linux's largest pid: no such process
    config, reference, resumed, clips_dir, index = _reference_and_records_of_another_run(tmp_path, competition,
                                                                                       dead_pid)
    computed = []
    original = cache.decode
    monkeypatch.setattr(cache, "decode", lambda path, cfg, notes=None: computed.append(Path(path).name)
                        or original(path, cfg, notes))
    build(resumed, config, workers=1)
    assert len(computed) == len(index.train) - 5 + len(index.test)
    assert cache_files(resumed, config) == cache_files(reference, config)
    assert not any(clips_dir.iterdir())


def test_records_deleted_by_a_build_running_beside_are_found_again(tmp_path, competition, monkeypatch):
    """Another build of the same cache packs first and deletes its record files, which this build had
    found and meant to read: it looks again, computes what is gone, and packs the same cache."""
    config, reference, workspace, clips_dir, _ = _reference_and_records_of_another_run(
        tmp_path, competition, os.getppid())  # a live owner
    original = cache.pack_split
    deleted = []

    def pack_after_the_other_build_cleaned_up(table, records, *args, **kwargs):
        if not deleted:
            deleted.extend(clips_dir.glob(f"{os.getppid()}-*.records"))
            for path in deleted:
                path.unlink()
        return original(table, records, *args, **kwargs)

    monkeypatch.setattr(cache, "pack_split", pack_after_the_other_build_cleaned_up)
    build(workspace, config, workers=1)
    assert deleted
    assert cache_files(workspace, config) == cache_files(reference, config)


def test_crash_while_packing_then_rerun_gives_the_same_cache(tmp_path, competition, monkeypatch):
    config = tiny_config()
    reference = workspace_with(tmp_path / "reference", competition)
    build(reference, config, workers=1)
    crashed = workspace_with(tmp_path / "crashed", competition)

    def crash(*args):
        raise KeyboardInterrupt("simulated crash before the packed split moves into place")

    monkeypatch.setattr(cache, "replace_dir", crash)
    with pytest.raises(KeyboardInterrupt):
        build(crashed, config, workers=1)
    monkeypatch.undo()
    build(crashed, config, workers=1)
    assert cache_files(crashed, config) == cache_files(reference, config)


# ---------------------------------------------------------------- memory and the warm path

def _peak_packing_bytes(tmp_path: Path, n_clips: int) -> int:
    clips_dir = tmp_path / f"clips-{n_clips}"
    clips_dir.mkdir()
    rng = np.random.default_rng(0)
    signatures = {f"clip{i}.wav": f"{i}-0" for i in range(n_clips)}
    for fname, signature in signatures.items():
        record_file.append_record(clips_dir, os.getpid(), fname, signature,
                               rng.standard_normal((2000, 64)).astype(np.float16), "")
    record_file.close_record_files()
    found = cache.cached_clips(tmp_path / "no-pack-yet", clips_dir, signatures)
    table = pd.DataFrame({"fname": list(signatures)})
    tracemalloc.start()
    pack_split(table, found, tmp_path / f"split-{n_clips}", signatures, with_stats=True)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_packing_memory_does_not_grow_with_the_number_of_clips(tmp_path):
    small, large = _peak_packing_bytes(tmp_path, 20), _peak_packing_bytes(tmp_path, 160)
    clip_bytes, split_bytes = 2000 * 64 * 2, 160 * 2000 * 64 * 2
    assert large < 1.5 * small + 100_000  # 8x the clips, about the same peak
    # A few clips at a time (under 10 clips' bytes, a 16th of the split), not the split.
    assert large < 10 * clip_bytes, f"peak {large:,} B packing {split_bytes:,} B of {clip_bytes:,} B clips"


@pytest.mark.slow  # fresh processes
def test_warm_rerun_of_2000_clips_does_no_work_and_imports_no_heavy_library(tmp_path):
    root = tmp_path / "esc50"
    (root / "audio").mkdir(parents=True)
    (root / "meta").mkdir()
    blip = tone(0.02, 8000, 440.0)
    rows = []
    for i in range(2000):
        name = f"{i % 5 + 1}-{i}-A-{i % 50}.wav"
        soundfile.write(root / "audio" / name, blip, 8000, subtype="PCM_16")
        rows.append({"filename": name, "fold": i % 5 + 1, "target": i % 50, "category": ESC50_LABELS[i % 50],
                     "esc10": False, "src_file": i, "take": "A"})
    pd.DataFrame(rows).to_csv(root / "meta" / "esc50.csv", index=False)
    workspace = workspace_with(tmp_path / "kit", root, "esc50")
    experiment = experiment_file(tmp_path)
    index = get_dataset("esc50").index(workspace.dataset_dir("esc50"))
    build_features(workspace, "esc50", {"train": index.train}, load_experiment(experiment).features, workers=2)
    probe = ("import json, sys, time; from competition.__main__ import main; started = time.perf_counter(); "
             f"code = main(['features', '--dataset', 'esc50', '--experiment', {str(experiment)!r}]); "
             "print(json.dumps({'seconds': time.perf_counter() - started, 'code': code, 'heavy': sorted(m for m "
             "in ('tensorflow', 'keras', 'librosa', 'scipy.signal', 'matplotlib') if m in sys.modules)}))")
    cache = workspace.features / "esc50"
    written = {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()}
    assert any(p.name == "params.json" for p in written) and any(p.name == "frames.npy" for p in written)
    result = subprocess.run([sys.executable, "-c", probe], env=_env(workspace.root), cwd=workspace.root,
                            capture_output=True, text=True, check=True)
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["code"] == 0 and outcome["heavy"] == []
    # Nothing recomputed or rewritten, params.json included (it is written only when absent).
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()} == written
    # How long it takes is measured by `make bench` (warm rerun row), not asserted here.


@pytest.mark.realdata
def test_shared_esc10_features_match_their_clip_count(tmp_path):
    shared = KIT_ROOT.parent / "shared" / "data" / "esc50"  # ESC-10 is its esc10 rows
    if not shared.is_dir():
        pytest.skip(f"{shared} is absent (real data lives beside the checkout, not in it)")
    workspace = workspace_with(tmp_path, shared, "esc10")
    index = get_dataset("esc10").index(workspace.dataset_dir("esc10"))
    stores = build_features(workspace, "esc10", {"train": index.train, "test": index.test}, FeatureConfig())
    assert len(stores["train"]) == 400 and not stores["train"].index["failed"].any()
    assert json.loads((stores["train"].directory / "manifest.json").read_text()).keys() == set(index.train["fname"])
