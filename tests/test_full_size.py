"""The competition of the real size (`demo_synth.generate_full_size`), rendered here from a slice of
FSDKaggle2018's own CSVs (the ones the kit ships), never from ../shared and never at full size."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import soundfile

from competition.datasets import demo_synth, freesound
from competition.datasets.demo_voices import STAND_IN_VOICES, VOICES
from competition.datasets.spec import DatasetError

META = freesound.SHIPPED_META_DIR
EMPTY_CLIP = freesound.EMPTY_TEST_CLIPS[0]


def read(path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@pytest.fixture
def meta_slice(tmp_path):
    """The shipped CSVs cut to 10 train rows and 6 test rows (Public, Private, Ignored, one empty clip)."""
    folder = tmp_path / "meta"
    folder.mkdir()
    train = read(META / "train.csv").head(10)
    test = read(META / "test_post_competition.csv")
    picked = pd.concat([test[test["usage"] == usage].head(2) for usage in ("Public", "Private")]
                       + [test[test["fname"] == EMPTY_CLIP], test[test["usage"] == "Ignored"].head(1)])
    test = test.loc[sorted(picked.index)]
    train.to_csv(folder / "train.csv", index=False)
    read(META / "train_post_competition.csv").head(10).to_csv(folder / "train_post_competition.csv", index=False)
    test.to_csv(folder / "test_post_competition.csv", index=False)
    read(META / "sample_submission.csv").loc[test.index].to_csv(folder / "sample_submission.csv", index=False)
    return folder


def test_the_shipped_csvs_are_the_competitions():
    train, test = read(META / "train.csv"), read(META / "test_post_competition.csv")
    assert (len(train), len(test)) == freesound.DATASET.expected_counts["Kaggle's download"]
    assert set(train["label"]) == set(freesound.LABELS) and set(train["manually_verified"]) == {"0", "1"}
    assert test["usage"].value_counts().to_dict() == {"Ignored": 7800, "Private": 1299, "Public": 301}
    assert read(META / "sample_submission.csv")["fname"].tolist() == test["fname"].tolist()
    assert read(META / "train_post_competition.csv")[["fname", "label", "manually_verified"]].equals(train)
    empty = test[test["fname"].isin(freesound.EMPTY_TEST_CLIPS)]
    assert len(empty) == 3 and set(empty["usage"]) == {"Ignored"}
    assert (META / "README.md").read_text().count("CC BY 4.0") >= 1


def test_every_label_has_a_voice():
    # That each stand-in's keys sound is test_demo's test_every_voice_key_sounds.
    assert set(VOICES) | set(STAND_IN_VOICES) == set(freesound.LABELS)


def test_a_slice_renders_with_exactly_its_fnames_labels_flags_and_usage(meta_slice, tmp_path):
    dest = demo_synth.generate_full_size(tmp_path / "competition", meta_dir=meta_slice, workers=1)

    for name in freesound.KAGGLE_CSVS:  # the CSVs as they are, byte for byte
        assert (dest / name).read_bytes() == (meta_slice / name).read_bytes(), name
    index = freesound.DATASET.index(dest)  # the kit's own entry for the competition indexes it
    train = read(meta_slice / "train.csv")
    assert index.train["fname"].tolist() == train["fname"].tolist()
    assert index.train["label"].tolist() == train["label"].tolist()
    assert index.train["manually_verified"].astype(str).tolist() == train["manually_verified"].tolist()
    assert index.train["source_id"].tolist() == read(meta_slice / "train_post_competition.csv")["freesound_id"].tolist()
    assert index.test["fname"].tolist() == read(meta_slice / "test_post_competition.csv")["fname"].tolist()
    for path in [*index.train["path"], *index.test["path"]]:
        info = soundfile.info(path)
        assert (info.samplerate, info.channels, info.subtype) == (44100, 1, "PCM_16")
        if path.endswith(EMPTY_CLIP):
            assert info.frames == 0
        else:
            assert demo_synth.SHORTEST_CLIP_S <= info.duration <= demo_synth.LONGEST_CLIP_S
            assert np.abs(soundfile.read(path)[0]).max() > 0

    mtime = (dest / "train.csv").stat().st_mtime_ns
    demo_synth.generate_full_size(dest, meta_dir=meta_slice, workers=1)  # the same CSVs and seed: nothing to do
    assert (dest / "train.csv").stat().st_mtime_ns == mtime


def test_lengths_spread_from_the_shortest_to_the_longest_clips():
    seconds = demo_synth._full_size_lengths(20000, np.random.default_rng(0)) / demo_synth.SAMPLE_RATE
    assert seconds.min() == pytest.approx(0.3) and seconds.max() == pytest.approx(30.0)
    assert 3.0 < np.median(seconds) < 4.0 and 5.0 < seconds.mean() < 7.0
    assert 0.05 < np.mean(seconds < 1.0) < 0.25 and 0.01 < np.mean(seconds >= 29.99) < 0.05


def test_a_render_the_disk_cannot_hold_is_refused_before_anything_is_written(meta_slice, tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda path: SimpleNamespace(total=10**12, free=10**6))

    with pytest.raises(DatasetError, match=r"needs \d+\.\d\d GB but the disk has 0\.00 GB free"):
        demo_synth.generate_full_size(tmp_path / "competition", meta_dir=meta_slice, workers=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta"]


def test_csvs_that_disagree_on_the_test_clips_are_refused(meta_slice, tmp_path):
    sample = read(meta_slice / "sample_submission.csv")
    sample.head(3).to_csv(meta_slice / "sample_submission.csv", index=False)
    with pytest.raises(DatasetError, match="list other test fnames"):
        demo_synth.generate_full_size(tmp_path / "competition", meta_dir=meta_slice, workers=1)


@pytest.mark.slow  # worker processes
def test_rendering_in_parallel_gives_the_same_bytes(meta_slice, tmp_path):
    serial = demo_synth.generate_full_size(tmp_path / "serial", meta_dir=meta_slice, workers=1)
    parallel = demo_synth.generate_full_size(tmp_path / "parallel", meta_dir=meta_slice, workers=2)
    files = sorted(p.relative_to(serial) for p in serial.rglob("*.wav"))
    assert files == sorted(p.relative_to(parallel) for p in parallel.rglob("*.wav")) and len(files) == 16
    assert all((serial / f).read_bytes() == (parallel / f).read_bytes() for f in files)
