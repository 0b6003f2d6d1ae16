"""Tests for competition.report: the CV table, per-class table and both figures, from a run folder alone."""

import numpy as np
import pandas as pd
import pytest

from competition.modeling.report import confusion_matrix, write_report
from competition.modeling.runs import Run, RunError

LABELS = ["bark", "rain", "siren"]


def fake_run(root):
    """Two folds of three clips each; fold 0 gets everything right, fold 1 one clip wrong."""
    run = Run(root / "esc-tiny")
    true_ids = np.array([0, 1, 2, 0, 1, 2])
    predicted = np.array([0, 1, 2, 0, 2, 2])
    probs = np.full((6, 3), 0.1)
    probs[np.arange(6), predicted] = 0.8
    probs[4] = [0.05, 0.15, 0.8]  # the wrong clip (rain taken for siren) has rain second
    fnames = np.array([f"c{i}.wav" for i in range(6)])
    run.claim({"experiment": "tiny", "hash": "0123456789", "dataset": "esc10", "labels": LABELS, "metric": "accuracy"})
    for fold, rows in ((0, slice(0, 3)), (1, slice(3, 6))):
        run.fold_dir(fold).mkdir(parents=True)
        run.write_fold_predictions(fold, "oof", fnames[rows], probs[rows])
        run.write_fold_done(fold, {"fold": fold, "best_epoch": 1, "kept_epoch": 2, "epochs_run": 3})
        run.write_history(fold, [{"epoch": e, "loss": loss, "val_accuracy": acc}
                                 for e, loss, acc in ((0, 2.0, 0.3), (1, 1.0, 0.6), (2, 0.5, 0.9))])
    run.write_predictions("oof", fnames, probs, true_ids=true_ids)
    return run.dir


def test_report_files_and_numbers(tmp_path):
    report = write_report(fake_run(tmp_path))
    assert sorted(p.name for p in report.iterdir()) == ["confusion.png", "cv.csv", "cv.md", "learning_curves.png",
                                                        "per_class.csv"]
    for png in ("confusion.png", "learning_curves.png"):
        assert (report / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    cv = pd.read_csv(report / "cv.csv", dtype={"fold": str}).set_index("fold")
    assert cv.loc["0", "accuracy"] == 1.0 and cv.loc["1", "accuracy"] == pytest.approx(2 / 3)
    assert cv.loc["overall", "accuracy"] == pytest.approx(5 / 6) and cv.loc["overall", "clips"] == 6
    assert cv.loc["1", "map@3"] == pytest.approx((1 + 0.5 + 1) / 3)  # rain ranked second
    assert cv.loc["0", "kept_epoch"] == 2
    per_class = pd.read_csv(report / "per_class.csv", keep_default_na=False).set_index("label")
    assert per_class.loc["rain", "accuracy"] == 0.5 and per_class.loc["rain", "most_confused_with"] == "siren"
    assert per_class.loc["siren", "precision"] == pytest.approx(2 / 3)
    assert "| overall | 6 | 0.8333 |" in (report / "cv.md").read_text()


def test_report_is_rebuilt_from_the_run_folder(tmp_path):
    run = fake_run(tmp_path)
    write_report(run)
    (run / "report" / "cv.csv").unlink()
    write_report(run)
    assert (run / "report" / "cv.csv").exists()


def test_confusion_matrix_counts_top1_predictions():
    counts = confusion_matrix(np.array([0, 0, 1]), np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]]), 2)
    assert counts.tolist() == [[1, 1], [0, 1]]


def test_report_of_an_unfinished_run_says_what_is_missing(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(RunError, match="config.json missing"):
        write_report(tmp_path / "run")
