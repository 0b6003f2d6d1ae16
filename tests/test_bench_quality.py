"""Tests for benchmarks.quality's bookkeeping (the benchmark itself trains for minutes: make bench-quality)."""

import numpy as np
import pytest

from benchmarks.quality import ESC10, SHARED_DATA, URBANSOUND8K, fold_scores, run_quality_bench
from competition.workspace import Workspace


def test_without_shared_data_it_says_so_and_trains_nothing(tmp_path, capsys):
    assert run_quality_bench(Workspace(tmp_path), shared=tmp_path / "no-such-shared" / "data") == {}
    assert "bench-quality skipped" in capsys.readouterr().out
    assert not (tmp_path / "runs").exists()


def test_fold_scores_name_train_test_directions_and_average_over_folds():
    true_ids = np.array([0, 1, 0, 1])
    probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.3, 0.6, 0.1], [0.3, 0.6, 0.1]])
    folds = np.array([1, 1, 2, 2])
    scores = fold_scores(true_ids, probs, folds, URBANSOUND8K)
    assert list(scores) == ["2->1", "1->2", "mean"]  # fold 1 held out: trained on fold 2
    assert scores["2->1"]["accuracy"] == 1.0 and scores["1->2"]["accuracy"] == 0.5
    assert scores["mean"]["accuracy"] == 0.75 and scores["1->2"]["map@3"] == 0.75
    assert ESC10.fold_name(3) == "fold 3"


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.skipif(not (SHARED_DATA / "esc50").is_dir(), reason="needs ../shared/data/esc50 beside the checkout")
def test_the_shared_esc10_copy_has_the_protocol_folds():
    from benchmarks.quality import _index
    from competition.datasets.registry import get_dataset

    dataset = get_dataset("esc10")
    index = _index(dataset, SHARED_DATA / "esc50", ESC10)
    assert len(index.train) == 400 and sorted(index.train["fold"].unique()) == list(ESC10.folds)
