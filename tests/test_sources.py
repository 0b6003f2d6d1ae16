"""The leakage guard: source recordings shared between datasets never reach a transfer's scores unsaid."""

from __future__ import annotations

import pandas as pd
import pytest
from layouts import make_esc50, make_urbansound8k
from tiny_models import ONE_CONV_ARCH

from competition.__main__ import main
from competition.datasets.registry import get_dataset
from competition.datasets.sources import describe, shared_sources, source_ids, without_sources
from competition.modeling.runs import Run
from competition.modeling.transfer import LeakageError, check_leakage

TINY = """
name = "{name}"
[features]
n_mels = 32
[model]
arch = "{arch}"
width = 4
[train]
epochs = 1
batch_size = 8
crop_seconds = 0.5
tta_crops = 1
""".replace("{arch}", ONE_CONV_ARCH)


def with_shared_recordings(workspace, shared=(100, 101)) -> pd.DataFrame:
    """ESC-50 and UrbanSound8K copies in the workspace, two UrbanSound8K slices cut from ESC-50 recordings."""
    make_esc50(workspace.root / "esc50-copy")
    make_urbansound8k(workspace.root / "us8k-copy", folds_with_audio=(1, 2), per_fold=4)
    csv_path = workspace.root / "us8k-copy" / "UrbanSound8K" / "metadata" / "UrbanSound8K.csv"
    table = pd.read_csv(csv_path)
    table.loc[table["fold"] == 2, "fsID"] = list(shared) + list(table.loc[table["fold"] == 2, "fsID"][len(shared):])
    table.to_csv(csv_path, index=False)
    assert main(["data", "--dataset", "esc50", "--from", str(workspace.root / "esc50-copy")]) == 0
    assert main(["data", "--dataset", "urbansound8k", "--from", str(workspace.root / "us8k-copy")]) == 0
    return get_dataset("urbansound8k").index(workspace.dataset_dir("urbansound8k")).train


def test_indexes_carry_each_clips_recording(workspace):
    target = with_shared_recordings(workspace)
    esc50 = get_dataset("esc50").index(workspace.dataset_dir("esc50")).train
    assert source_ids(esc50) == {"100", "101", "102", "200"}
    assert shared_sources(esc50, target) == {"100", "101"}
    assert len(without_sources(esc50, {"100"})) == len(esc50) - (esc50["source_id"] == "100").sum()
    assert describe({str(i) for i in range(12)}, shown=3) == "0, 1, 2 and 9 more"
    demo = get_dataset("demo").index(workspace.dataset_dir("demo")).train
    assert source_ids(demo) == set()  # the demo names no recordings


def fake_base(workspace, dataset: str, **extra) -> Run:
    run = Run(workspace.runs / "base")
    run.claim({"dataset": dataset, "hash": "0" * 10, **extra})
    return run


def test_a_base_trained_on_the_targets_recordings_is_refused_naming_how_many(workspace):
    target = with_shared_recordings(workspace)
    esc50 = get_dataset("esc50").index(workspace.dataset_dir("esc50")).train
    clips = int(esc50["source_id"].isin(["100", "101"]).sum())
    with pytest.raises(LeakageError, match=rf"trained on {clips} clip\(s\) of 2 recording\(s\) that urbansound8k "
                                           r"also holds \(100, 101\).*EXCLUDE_SOURCES_OF=urbansound8k"):
        check_leakage(workspace, fake_base(workspace, "esc50"), "urbansound8k", target)


def test_a_base_trained_without_them_or_without_known_recordings_passes_and_says_so(workspace):
    target = with_shared_recordings(workspace)
    clean = fake_base(workspace, "esc50", excluded_sources={"of": "urbansound8k", "clips": 6, "sources": 2})
    assert "trained without urbansound8k's recordings (6 clips left out)" in check_leakage(
        workspace, clean, "urbansound8k", target)
    (workspace.runs / "base" / "config.json").unlink()
    assert check_leakage(workspace, fake_base(workspace, "demo"), "urbansound8k", target) == \
        "not checked: demo names no source recordings"


def test_a_base_of_a_selection_outside_the_registry_is_checked_against_its_own_clips(workspace):
    target = with_shared_recordings(workspace)
    esc50 = get_dataset("esc50").index(workspace.dataset_dir("esc50")).train
    base = fake_base(workspace, "esc50-base")  # a benchmark's name: the registry has no such dataset
    with pytest.raises(LeakageError, match=r"of 2 recording\(s\) that urbansound8k also holds.*DATASET=esc50-base"):
        check_leakage(workspace, base, "urbansound8k", target, base_train=esc50)
    clean = esc50[~esc50["source_id"].isin(["100", "101"])]
    assert check_leakage(workspace, base, "urbansound8k", target, base_train=clean) == \
        "no recording shared with urbansound8k"


@pytest.mark.slow
def test_make_transfer_refuses_leakage_and_a_base_trained_without_it_transfers(workspace, tmp_path, capsys,
                                                                              one_conv_arch):
    with_shared_recordings(workspace)
    base_toml, tune_toml = tmp_path / "base.toml", tmp_path / "tune.toml"
    base_toml.write_text(TINY.format(name="base"))
    tune_toml.write_text(TINY.format(name="tune"))
    assert main(["train", "--dataset", "esc50", "--experiment", str(base_toml)]) == 0
    assert main(["transfer", "--base", "esc50-base", "--experiment", str(tune_toml)]) == 2
    assert "that urbansound8k also holds (100, 101)" in capsys.readouterr().err

    assert main(["train", "--dataset", "esc50", "--experiment", str(base_toml),
                 "--exclude-sources-of", "urbansound8k"]) == 0
    err = capsys.readouterr().err
    assert "left out" in err and "of 2 recording(s) that urbansound8k also holds (100, 101)" in err
    record = Run(workspace.runs / "esc50-base-without-urbansound8k").config()
    assert record["excluded_sources"]["of"] == "urbansound8k" and record["hash"] != Run(
        workspace.runs / "esc50-base").config()["hash"]
    assert main(["transfer", "--base", "esc50-base-without-urbansound8k", "--experiment", str(tune_toml)]) == 0
    assert "leakage check: base trained without urbansound8k's recordings" in capsys.readouterr().out
