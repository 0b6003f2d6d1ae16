"""Nothing silent: each bad input or fault a hostile user can plant is named, handled as documented,
and never turns into a submission that validates by accident.

Every case starts from a copy of the tiny demo competition (tests/conftest.py `workspace`) and plants
one fault; `test_every_fault_at_once` plants them all and runs the whole pipeline.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile

from competition.__main__ import main
from competition.config import FeatureConfig
from competition.datasets.registry import get_dataset
from competition.datasets.spec import DatasetError
from competition.features import cache
from competition.features.store import CacheDamaged, FeatureStore

REPO = Path(__file__).resolve().parents[1]
CONFIG = FeatureConfig(n_mels=32, hop_length=512)
TINY_RECIPE = """
name = "tiny"
[features]
n_mels = 32
hop_length = 512
[model]
width = 4
[train]
epochs = 2
batch_size = 16
crop_seconds = 1.0
tta_crops = 2
[folds]
k = 2
"""


def demo_root(workspace) -> Path:
    return workspace.dataset_dir("demo")


def rewrite_csv(path: Path, edit) -> None:
    """Rewrite a CSV through `edit(rows)` (a list of dicts, header kept)."""
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        header, rows = reader.fieldnames, list(reader)
    edit(rows)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def index_of(workspace):
    dataset = get_dataset("demo")
    return dataset, dataset.index(demo_root(workspace))


def built(workspace, **options):
    _, index = index_of(workspace)
    return cache.build_features(workspace, "demo", {"train": index.train, "test": index.test}, CONFIG, workers=1,
                                **options)


def write_tone(path: Path, seconds: float, rate: int = 44100) -> None:
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate, subtype="PCM_16")


# ---------------------------------------------------------------- the feature cache

def test_one_changed_byte_of_the_cache_is_caught_and_rebuilt_not_trained_on(workspace, capsys):
    stores = built(workspace)
    reference = np.array(stores["train"].frames)
    frames = np.load(stores["train"].directory / "frames.npy", mmap_mode="r+")
    frames[5, 3] = np.float16("nan")  # the size and header stay as they were
    frames.flush()
    del frames, stores

    assert np.isnan(built(workspace)["train"].frames[5, 3])  # the cheap check on open cannot see content
    repaired = built(workspace, verify=True)  # what training does before it starts
    assert "damaged feature cache, rebuilding it" in capsys.readouterr().err
    np.testing.assert_array_equal(np.array(repaired["train"].frames), reference)


def test_a_truncated_cache_file_is_caught_on_open_and_rebuilt(workspace, capsys):
    stores = built(workspace)
    path = stores["test"].directory / "frames.npy"
    reference = np.array(stores["test"].frames)
    del stores
    os.truncate(path, path.stat().st_size - 64)
    with pytest.raises(CacheDamaged, match="frames.npy: .* bytes, .* were written"):
        FeatureStore.open(path.parent)

    rebuilt = built(workspace)
    assert "damaged feature cache" in capsys.readouterr().err
    np.testing.assert_array_equal(np.array(rebuilt["test"].frames), reference)


def test_features_that_are_not_finite_are_never_cached(workspace, monkeypatch, capsys):
    _, index = index_of(workspace)
    poisoned = index.test["fname"].iloc[0]
    real = cache.compute_features

    def nan_for_one(signal, config):
        features = real(signal, config)
        return np.full_like(features, np.nan) if len(signal) and nan_for_one.calls.pop(0) else features

    nan_for_one.calls = [fname == poisoned for fname in index.test["fname"]]  # serial build: in table order
    built(workspace)  # the train split first, untouched
    monkeypatch.setattr(cache, "compute_features", nan_for_one)
    (demo_root(workspace) / "audio_test" / poisoned).touch()  # so the test split is computed again
    stores = built(workspace)
    assert np.isfinite(np.asarray(stores["test"].frames, np.float32)).all()
    assert "features are not finite" in capsys.readouterr().err


# ---------------------------------------------------------------- the dataset's files

@pytest.mark.parametrize("value", ["yes", "", "2"])
def test_an_invalid_manually_verified_names_the_file_and_line(workspace, value):
    rewrite_csv(demo_root(workspace) / "train.csv", lambda rows: rows[3].update(manually_verified=value))
    with pytest.raises(DatasetError, match=rf"train.csv: line 5: manually_verified not 0 or 1: {value!r}"):
        index_of(workspace)


def test_make_data_names_every_problem_at_once(workspace, capsys):
    root = demo_root(workspace)
    rows = pd.read_csv(root / "train.csv", dtype=str)

    def plant(csv_rows):
        csv_rows[0]["label"] = "Theremin"
        csv_rows[1]["label"] = "Kazoo "
        csv_rows[2]["fname"] = csv_rows[3]["fname"]
        csv_rows[4]["manually_verified"] = "yes"

    rewrite_csv(root / "train.csv", plant)
    (root / "audio_train" / rows["fname"][5]).unlink()
    assert main(["data", "--dataset", "demo", "--from", str(root)]) == 2
    err = capsys.readouterr().err
    assert "5 problems" in err
    for expected in ("line 2: 'Theremin'", "line 3: 'Kazoo '", f"line 5: {rows['fname'][3]!r}",
                     "line 6: 'yes'", f"line 7: '{root / 'audio_train' / rows['fname'][5]}'"):
        assert expected in err, expected


def test_a_trailing_space_in_an_fname_is_visible(workspace):
    rewrite_csv(demo_root(workspace) / "train.csv", lambda rows: rows[0].update(fname=rows[0]["fname"] + " "))
    with pytest.raises(DatasetError, match=r"listed audio file missing: '.*\.wav '"):
        index_of(workspace)


@pytest.mark.parametrize("csv_name", ["train.csv", "sample_submission.csv"])
@pytest.mark.parametrize("fname", ["../../../outside/x.wav", "/etc/passwd", "../../etc/passwd", "sub/x.wav"])
def test_an_fname_outside_its_audio_folder_is_an_error_naming_the_line(workspace, tmp_path, csv_name, fname):
    outside = tmp_path / "outside"
    outside.mkdir(exist_ok=True)
    write_tone(outside / "x.wav", 0.5)
    rewrite_csv(demo_root(workspace) / csv_name, lambda rows: rows[1].update(fname=fname))
    with pytest.raises(DatasetError, match=rf"{csv_name}: line 3: fname not a plain file name inside its audio "
                                           rf"folder: '{fname}'"):
        index_of(workspace)


def test_an_undecodable_or_missing_test_clip_is_a_warning_a_blank_input_and_a_row(workspace, capsys):
    root = demo_root(workspace)
    test = pd.read_csv(root / "sample_submission.csv", dtype=str)
    (root / "audio_test" / test["fname"][0]).write_bytes(b"not audio at all")
    (root / "audio_test" / test["fname"][1]).unlink()
    assert main(["data", "--dataset", "demo", "--from", str(root)]) == 0
    err = capsys.readouterr().err
    assert "listed test clip missing" in err and test["fname"][1] in err
    assert "unreadable audio file" in err and test["fname"][0] in err
    stores = built(workspace)
    assert len(stores["test"]) == len(test)  # every test clip keeps its row
    assert stores["test"].index.set_index("fname").loc[list(test["fname"][:2]), "failed"].tolist() == [1, 1]


# ---------------------------------------------------------------- decoding notes

def test_a_clip_cut_to_max_seconds_and_a_wav_shorter_than_its_header_are_said(workspace, capsys):
    root = demo_root(workspace)
    train = pd.read_csv(root / "train.csv", dtype=str)
    write_tone(root / "audio_train" / train["fname"][0], 31.0)
    short = root / "audio_train" / train["fname"][1]
    write_tone(short, 3.0)
    os.truncate(short, 44 + 2 * 44100)  # one of its three seconds left
    built(workspace)
    err = capsys.readouterr().err
    assert f"{train['fname'][0]}: cut to its first 30 s of 31.0 s (max_seconds)" in err
    assert f"{train['fname'][1]}: shorter than its header says: 1.00 s present" in err
    built(workspace)  # a warm rerun says it again: the notes are kept with the cache
    assert "cut to its first 30 s" in capsys.readouterr().err


# ---------------------------------------------------------------- archives and CSVs

def test_a_zip_with_stray_members_puts_the_clips_where_the_csv_expects_them(workspace, tmp_path, monkeypatch):
    root = demo_root(workspace)
    copy = tmp_path / "kaggle-files"
    copy.mkdir()
    for name in ("train.csv", "sample_submission.csv"):
        (copy / name).write_bytes((root / name).read_bytes())
    for folder in ("audio_train", "audio_test"):
        with zipfile.ZipFile(copy / f"{folder}.zip", "w") as archive:
            for clip in sorted((root / folder).iterdir()):
                archive.write(clip, f"{folder}/{clip.name}")
            archive.writestr("README.txt", "stray")
            archive.writestr(f"__MACOSX/{folder}/._x.wav", "resource fork")
    home = tmp_path / "kit"
    monkeypatch.setenv("KIT_HOME", str(home))
    # Verification then refuses the clip counts (not the competition's 9,473): the unpacking is what is tested.
    assert main(["data", "--dataset", "freesound-audio-tagging", "--from", str(copy)]) == 2
    train_dir = home / "data" / "freesound-audio-tagging" / "audio_train"
    assert sorted(p.name for p in train_dir.glob("*.wav")) == sorted(p.name for p in (root / "audio_train").iterdir())
    assert not (train_dir / "audio_train").exists() and not list(train_dir.rglob("._x.wav"))


def test_an_fname_with_a_comma_is_quoted_and_validates(tmp_path):
    from competition.submit.submission import validate_submission, write_submission

    path = tmp_path / "sub.csv"
    fnames = ["a,b.wav", 'say "hi".wav', "plain.wav"]
    write_submission(path, fnames, np.eye(3, 4), ["w", "x", "y", "z"])
    assert validate_submission(path, fnames, ["w", "x", "y", "z"]) == 3
    assert path.read_text().splitlines()[1] == '"a,b.wav",w x y'


# ---------------------------------------------------------------- predictions and blends

def write_finished_run(root: Path, name: str, test_fnames: list[str], probs: np.ndarray):
    from competition.modeling.runs import Run

    run = Run(root / name)
    run.claim({"dataset": "demo", "labels": ["a", "b", "c"], "hash": name.rjust(10, "0"), "feature_key": "k"})
    run.write_scores({"metric": "map@3", "oof": 0.5})
    run.write_predictions("oof", ["t1", "t2"], np.full((2, 3), 1 / 3), true_ids=np.array([0, 1]))
    run.write_predictions("test", test_fnames, probs)
    return run


def test_a_blend_refuses_predictions_that_are_not_probabilities(tmp_path):
    from competition.submit.ensemble import EnsembleError, load_run

    probs = np.full((2, 3), 1 / 3)
    probs[1, 0] = np.nan
    run = write_finished_run(tmp_path, "nan-run", ["x.wav", "y.wav"], probs)
    with pytest.raises(EnsembleError, match=r"test.npz: 1 row\(s\) are not finite"):
        load_run(run.dir)
    run = write_finished_run(tmp_path, "bad-sum", ["x.wav", "y.wav"], np.full((2, 3), 0.9))
    with pytest.raises(EnsembleError, match="not class probabilities"):
        load_run(run.dir)


def test_validate_checks_the_blend_record_beside_the_csv(tmp_path):
    from competition.submit.submission import SubmissionError, validate_record, write_record, write_submission

    labels = ["a", "b", "c"]
    csv_path = tmp_path / "submission.csv"
    write_submission(csv_path, ["x.wav", "y.wav"], np.eye(2, 3), labels)
    assert "not found beside the CSV" in validate_record(csv_path, tmp_path / "runs")[0]
    write_record(csv_path, {"members": [{"run": "good"}, {"run": "gone"}]})
    write_finished_run(tmp_path / "runs", "good", ["x.wav", "y.wav"], np.full((2, 3), 1 / 3))
    assert validate_record(csv_path, tmp_path / "runs") == [f"member run gone not under {tmp_path / 'runs'}: "
                                                            "not checked"]
    probs = np.full((2, 3), 1 / 3)
    probs[0, 0] = np.inf
    write_finished_run(tmp_path / "runs2", "good", ["x.wav", "y.wav"], probs)
    with pytest.raises(SubmissionError, match="predictions are not finite"):
        validate_record(csv_path, tmp_path / "runs2")
    write_finished_run(tmp_path / "runs3", "good", ["x.wav", "other.wav"], np.full((2, 3), 1 / 3))
    with pytest.raises(SubmissionError, match="not the CSV's"):
        validate_record(csv_path, tmp_path / "runs3")


@pytest.mark.slow
def test_a_nan_loss_stops_the_fold_and_a_rerun_resumes_once_fixed(workspace, tmp_path, monkeypatch, capsys):
    from competition.modeling import train

    experiment = tmp_path / "tiny.toml"
    experiment.write_text(TINY_RECIPE)
    real = train.training_batches
    poisoned = {"epoch": 1}

    def nan_in_epoch_1(store, rows, targets, weights, settings, length, rng):
        for x, y, w in real(store, rows, targets, weights, settings, length, rng):
            yield (np.full_like(x, np.nan) if poisoned["epoch"] == 1 and nan_in_epoch_1.seen >= 1 else x), y, w
        nan_in_epoch_1.seen += 1

    nan_in_epoch_1.seen = 0
    monkeypatch.setattr(train, "training_batches", nan_in_epoch_1)
    args = ["train", "--dataset", "demo", "--experiment", str(experiment), "--fold", "0"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "training loss is nan at epoch 1; nothing of this epoch was kept" in err
    state = json.loads((workspace.runs / "demo-tiny" / "fold-0" / "state.json").read_text())
    assert state["epoch"] == 0  # the last finite epoch is the resume point
    monkeypatch.setattr(train, "training_batches", real)  # the cause fixed
    assert main(args) == 0
    assert (workspace.runs / "demo-tiny" / "fold-0" / "done.json").is_file()


# ---------------------------------------------------------------- the machine

@pytest.mark.parametrize("fault", [errno.ENOSPC, errno.EACCES])
def test_a_full_disk_or_no_permission_is_one_line_and_leaves_nothing_half_written(workspace, monkeypatch, capsys,
                                                                                     fault):
    real = np.lib.format.open_memmap

    def fails(path, *args, **kwargs):
        if "frames.npy" in str(path) and kwargs.get("mode") == "w+":
            raise OSError(fault, os.strerror(fault), str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(np.lib.format, "open_memmap", fails)
    experiment = workspace.root / "tiny.toml"
    experiment.write_text(TINY_RECIPE)
    assert main(["features", "--dataset", "demo", "--experiment", str(experiment), "--workers", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and os.strerror(fault) in err[-1] and "Traceback" not in "".join(err)
    assert ("disk is full" if fault == errno.ENOSPC else "no permission") in err[-1]
    leftovers = [p for p in (workspace.root / "features").rglob("*") if ".tmp." in p.name or p.name == "frames.npy"]
    assert leftovers == []


# ---------------------------------------------------------------- the terminal

@pytest.mark.slow
def test_tensorflow_start_up_notices_stay_off_the_terminal_unless_verbose(tmp_path):
    probe = "from competition import quiet_start; quiet_start.install(); import tensorflow; print('ok')"
    env = {k: v for k, v in os.environ.items() if k not in ("VERBOSE", "TF_CPP_MIN_LOG_LEVEL")}
    # TensorFlow turns oneDNN on by itself only on some CPUs (AVX-512 ones); asked for, it is on and
    # says so on every x86 CPU, so the notice is there to hide on any machine.
    env["TF_ENABLE_ONEDNN_OPTS"] = "1"
    quiet = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True)
    loud = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env={**env, "VERBOSE": "1"}, capture_output=True,
                          text=True)
    assert quiet.returncode == loud.returncode == 0 and quiet.stdout == loud.stdout == "ok\n"
    assert "oneDNN custom operations" in loud.stderr  # what is hidden exists
    assert "oneDNN custom operations" not in quiet.stderr and "absl::InitializeLog" not in quiet.stderr


# ---------------------------------------------------------------- all at once

@pytest.mark.slow
def test_every_handled_fault_at_once_still_gives_a_complete_valid_submission(workspace, tmp_path, capsys):
    """Faults the kit handles rather than refuses, planted together: the pipeline runs through, says
    each one, and the submission holds every test fname exactly once."""
    root = demo_root(workspace)
    train = pd.read_csv(root / "train.csv", dtype=str)
    test = pd.read_csv(root / "sample_submission.csv", dtype=str)
    write_tone(root / "audio_train" / train["fname"][0], 31.0)  # cut to max_seconds
    short = root / "audio_train" / train["fname"][1]
    write_tone(short, 3.0)
    os.truncate(short, 44 + 2 * 44100)  # shorter than its header
    (root / "audio_test" / test["fname"][0]).write_bytes(b"not audio")  # undecodable test clip
    (root / "audio_test" / test["fname"][1]).unlink()  # listed test clip missing
    write_tone(root / "audio_test" / "with,comma.wav", 1.0)  # an fname CSV must quote
    rewrite_csv(root / "sample_submission.csv",
                lambda rows: rows.append({"fname": "with,comma.wav", "label": rows[0]["label"]}))
    experiment = tmp_path / "tiny.toml"
    experiment.write_text(TINY_RECIPE)

    assert main(["data", "--dataset", "demo", "--from", str(root)]) == 0
    assert main(["train", "--dataset", "demo", "--experiment", str(experiment)]) == 0
    assert main(["ensemble", "--dataset", "demo", "--experiment", str(experiment), "--name", "faults"]) == 0
    assert main(["validate", "--dataset", "demo", str(workspace.submissions / "faults.csv")]) == 0
    out = capsys.readouterr()
    said = out.out + out.err
    for expected in (f"{train['fname'][0]}: cut to its first 30 s", f"{train['fname'][1]}: shorter than its header",
                     f"{test['fname'][0]}: not a readable audio file", "listed test clip missing",
                     test["fname"][1]):
        assert expected in said, expected
    with (workspace.submissions / "faults.csv").open(newline="") as handle:
        fnames = [row["fname"] for row in csv.DictReader(handle)]
    assert sorted(fnames) == sorted([*test["fname"], "with,comma.wav"])  # every one, once
