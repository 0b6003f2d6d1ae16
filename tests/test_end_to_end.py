"""The whole pipeline on a tiny generated competition: data -> features -> folds/train -> blend -> CSV."""

import json

import pandas as pd
import pytest

from competition.__main__ import main

TINY_RECIPE = """
name = "{name}"
[features]
kind = "{kind}"
n_mels = 32
n_mfcc = 20
hop_length = 512
[model]
width = 4
[train]
epochs = 1
batch_size = 16
crop_seconds = 1.0
tta_crops = 2
[folds]
k = 2
"""


@pytest.fixture
def tiny_experiments(tmp_path):
    paths = []
    for name, kind in (("tiny-logmel", "logmel"), ("tiny-mfcc", "mfcc")):
        path = tmp_path / f"{name}.toml"
        path.write_text(TINY_RECIPE.format(name=name, kind=kind))
        paths.append(str(path))
    return paths


def clip_files(workspace):
    return {p: p.stat().st_mtime_ns for p in (workspace.root / "features").rglob("*.npy")}


@pytest.mark.slow
def test_pipeline_writes_a_valid_submission_and_reruns_from_cache(workspace, tiny_experiments, capsys):
    experiment_args = [a for path in tiny_experiments for a in ("--experiment", path)]
    assert main(["data", "--dataset", "demo", "--from", str(workspace.root / "data" / "demo")]) == 0
    assert main(["train", "--dataset", "demo", *experiment_args]) == 0
    assert "demo logmel+mfcc train" in capsys.readouterr().err  # one feature pass for both experiments
    runs = [workspace.runs / "demo-tiny-logmel", workspace.runs / "demo-tiny-mfcc"]
    for run in runs:
        assert sorted(p.parent.name for p in run.glob("fold-*/done.json")) == ["fold-0", "fold-1"]
        for fold in ("fold-0", "fold-1"):
            assert (run / fold / "model.keras").exists() and (run / fold / "history.csv").exists()
    assert main(["ensemble", *map(str, runs), "--name", "tiny"]) == 0
    csv_path = workspace.submissions / "tiny.csv"
    assert main(["validate", "--dataset", "demo", str(csv_path)]) == 0
    submission = pd.read_csv(csv_path)
    test_fnames = pd.read_csv(workspace.root / "data" / "demo" / "sample_submission.csv")["fname"]
    assert sorted(submission["fname"]) == sorted(test_fnames)  # the empty clip included
    record = json.loads(csv_path.with_suffix(".json").read_text())
    assert [m["run"] for m in record["members"]] == [r.name for r in runs]
    assert 0 <= record["cv_score"] <= 1 and all(len(m["experiment_hash"]) == 10 for m in record["members"])
    assert main(["score", "--dataset", "demo", str(csv_path)]) == 0
    assert "private  MAP@3" in capsys.readouterr().out

    # A second run recomputes nothing: no feature file is rewritten and no fold retrains.
    cached = clip_files(workspace)
    models = {p: p.stat().st_mtime_ns for p in workspace.runs.rglob("model.keras")}
    capsys.readouterr()
    assert main(["train", "--dataset", "demo", *experiment_args]) == 0
    assert clip_files(workspace) == cached
    assert {p: p.stat().st_mtime_ns for p in workspace.runs.rglob("model.keras")} == models
    err = capsys.readouterr().err
    assert not any(bar in err for bar in ("logmel+mfcc train", "logmel train", "mfcc train"))  # no feature bar
