"""Tests for competition.demo: layout, audio format, label noise, determinism, rerun behaviour."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from competition.datasets import demo_synth as demo
from competition.datasets.demo import LABELS as DEMO_LABELS
from competition.datasets.freesound import LABELS as FREESOUND_LABELS

N_TRAIN, N_TEST = 40, 20


def read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames), list(reader)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    return demo.generate_demo(tmp_path_factory.mktemp("demo") / "comp", n_train=N_TRAIN, n_test=N_TEST, seed=3)


def test_demo_labels_are_official_and_enough():
    assert tuple(sorted(demo.VOICES)) == DEMO_LABELS  # every label voiced, nothing else
    assert len(DEMO_LABELS) >= 15
    assert set(DEMO_LABELS) <= set(FREESOUND_LABELS)
    assert list(DEMO_LABELS) == sorted(DEMO_LABELS)


def test_csv_headers_and_row_counts(demo_dir):
    header, train = read_csv(demo_dir / "train.csv")
    assert header == ["fname", "label", "manually_verified"] and len(train) == N_TRAIN
    header, submission = read_csv(demo_dir / "sample_submission.csv")
    assert header == ["fname", "label"] and len(submission) == N_TEST
    assert all(len(row["label"].split(" ")) == 3 for row in submission)
    assert all(set(row["label"].split(" ")) <= set(FREESOUND_LABELS) for row in submission)
    header, solution = read_csv(demo_dir / "test_post_competition.csv")
    assert header == ["fname", "label", "usage"]
    assert [row["fname"] for row in solution] == [row["fname"] for row in submission]


def test_fnames_match_files_and_look_like_kaggle(demo_dir):
    train_fnames = [row["fname"] for row in read_csv(demo_dir / "train.csv")[1]]
    test_fnames = [row["fname"] for row in read_csv(demo_dir / "test_post_competition.csv")[1]]
    assert set(train_fnames) == {p.name for p in (demo_dir / "audio_train").iterdir()}
    assert set(test_fnames) == {p.name for p in (demo_dir / "audio_test").iterdir()}
    all_fnames = train_fnames + test_fnames
    assert len(set(all_fnames)) == len(all_fnames)
    for fname in all_fnames:
        stem, suffix = fname.split(".")
        assert suffix == "wav" and len(stem) == 8 and set(stem) <= set("0123456789abcdef")
    assert not demo_dir.with_name(demo_dir.name + ".partial").exists()


def test_wavs_are_44k_mono_pcm16_and_audible(demo_dir):
    for path in [*(demo_dir / "audio_train").iterdir(), *(demo_dir / "audio_test").iterdir()]:
        info = soundfile.info(path)
        assert (info.format, info.subtype, info.samplerate, info.channels) == ("WAV", "PCM_16", 44100, 1)
        if info.frames:
            audio, _ = soundfile.read(path)
            assert np.sqrt(np.mean(audio**2)) > 1e-4, path.name


def test_empty_test_clip_is_ignored(demo_dir):
    _, solution = read_csv(demo_dir / "test_post_competition.csv")
    empty = [row for row in solution if soundfile.info(demo_dir / "audio_test" / row["fname"]).frames == 0]
    assert len(empty) == 1
    assert empty[0]["usage"] == "Ignored" and empty[0]["label"] in DEMO_LABELS


def test_usage_split_scores_most_rows(demo_dir):
    usages = [row["usage"] for row in read_csv(demo_dir / "test_post_competition.csv")[1]]
    assert set(usages) == {"Public", "Private", "Ignored"}
    assert usages.count("Public") == 6 and usages.count("Private") == 10


def test_labels_and_label_noise(demo_dir):
    _, train = read_csv(demo_dir / "train.csv")
    _, solution = read_csv(demo_dir / "test_post_competition.csv")
    assert {row["label"] for row in train + solution} <= set(DEMO_LABELS)
    assert {row["manually_verified"] for row in train} == {"0", "1"}
    unverified = {row["fname"] for row in train if row["manually_verified"] == "0"}
    assert 0.3 <= len(unverified) / N_TRAIN <= 0.5

    flipped = json.loads((demo_dir / "demo.json").read_text())["flipped_train_labels"]
    assert flipped and set(flipped) <= unverified
    csv_label = {row["fname"]: row["label"] for row in train}
    assert all(csv_label[fname] != true_label for fname, true_label in flipped.items())


def test_durations_span_short_to_long(demo_dir):
    seconds = [soundfile.info(path).duration for path in (demo_dir / "audio_train").iterdir()]
    assert min(seconds) == pytest.approx(0.3, abs=1e-4)
    assert max(seconds) > 3


def test_same_seed_is_identical_and_other_seed_differs(demo_dir, tmp_path):
    again = demo.generate_demo(tmp_path / "again", n_train=N_TRAIN, n_test=N_TEST, seed=3)
    for name in ("train.csv", "sample_submission.csv", "test_post_competition.csv"):
        assert (again / name).read_bytes() == (demo_dir / name).read_bytes()
    for fname in sorted(p.name for p in (demo_dir / "audio_train").iterdir())[:3]:
        assert (again / "audio_train" / fname).read_bytes() == (demo_dir / "audio_train" / fname).read_bytes()

    other = demo.generate_demo(tmp_path / "other", n_train=N_TRAIN, n_test=N_TEST, seed=4)
    assert (other / "train.csv").read_bytes() != (demo_dir / "train.csv").read_bytes()


def test_rerun_with_same_arguments_is_a_no_op(tmp_path):
    dest = demo.generate_demo(tmp_path / "comp", n_train=8, n_test=4, seed=0)
    files = [dest / "train.csv", dest / "demo.json", next((dest / "audio_train").iterdir())]
    mtimes = [path.stat().st_mtime_ns for path in files]
    assert demo.generate_demo(dest, n_train=8, n_test=4, seed=0) == dest
    assert [path.stat().st_mtime_ns for path in files] == mtimes


def test_rerun_with_other_arguments_replaces_the_demo(tmp_path):
    dest = demo.generate_demo(tmp_path / "comp", n_train=8, n_test=4, seed=0)
    demo.generate_demo(dest, n_train=6, n_test=5, seed=0, n_empty_test=2)
    assert len(read_csv(dest / "train.csv")[1]) == 6
    assert sum(soundfile.info(p).frames == 0 for p in (dest / "audio_test").iterdir()) == 2
    assert json.loads((dest / "demo.json").read_text())["n_empty_test"] == 2


def test_refuses_to_replace_a_folder_that_is_not_a_demo(tmp_path):
    (tmp_path / "comp").mkdir()
    (tmp_path / "comp" / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        demo.generate_demo(tmp_path / "comp", n_train=4, n_test=2)


@pytest.mark.parametrize("vocabulary", ["VOICES", "STAND_IN_VOICES"])
def test_every_voice_key_sounds(vocabulary):
    """Each key a voice may play is audible in TimGM6mb (some presets are silent outside their range):
    the demo's voices and the full-size competition's stand-ins for labels General MIDI cannot voice."""
    from competition.datasets import demo_voices

    synth, soundfont_id = demo._load_synth()
    n_samples = demo.SAMPLE_RATE // 5
    for label, voices in getattr(demo_voices, vocabulary).items():
        for voice in voices:
            for kit in demo.DRUM_KITS if voice.is_drums else (None,):
                channel = demo.DRUM_CHANNEL if voice.is_drums else demo.MELODIC_CHANNEL
                preset = kit if voice.is_drums else voice.program
                synth.program_select(channel, soundfont_id, 0, preset, is_drums=voice.is_drums)
                for key in voice.keys:
                    sound = demo._play(synth, channel, [(0.0, 0.1, key, 80)], n_samples)
                    demo._silence(synth, channel)
                    assert np.sqrt(np.mean(sound**2)) > 1e-4, (label, preset, key)
