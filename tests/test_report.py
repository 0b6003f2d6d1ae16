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
    assert sorted(p.name for p in report.iterdir()) == ["confused_pairs.csv", "confusion.png", "cv.csv", "cv.md",
                                                        "learning_curves.png",
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


def test_the_most_confused_pairs_are_named_worst_first():
    from competition.modeling.report import worst_confusions

    counts = np.array([[5, 3, 0], [1, 6, 0], [0, 2, 4]])
    pairs = worst_confusions(counts, LABELS)
    assert pairs["pair"].tolist() == ["bark / rain", "rain / siren"]
    assert pairs.iloc[0].tolist() == ["bark / rain", 4, 3, 1]


def test_a_blends_report_is_made_from_its_record_and_members(workspace):
    import json as json_module

    from competition.datasets.registry import get_dataset
    from competition.submit.blend_report import write_blend_report
    from competition.submit.ensemble import blend_runs

    dataset = get_dataset("demo")
    index = dataset.index(workspace.dataset_dir("demo"))
    labels = list(dataset.labels)
    ids = index.train["label"].map(dataset.label_to_id).to_numpy()
    runs = []
    for name, right in (("good", 0.9), ("poor", 0.3)):
        rng = np.random.default_rng(len(name))
        hit = rng.random(len(ids)) < right
        predicted = np.where(hit, ids, (ids + 1) % len(labels))
        oof = np.full((len(ids), len(labels)), 0.1 / (len(labels) - 1))
        oof[np.arange(len(ids)), predicted] = 0.9
        run = Run(workspace.runs / name)
        run.claim({"dataset": "demo", "labels": labels, "hash": name.rjust(10, "0"), "feature_key": "k"})
        run.write_scores({"metric": "map@3", "oof": right})
        run.write_predictions("oof", index.train["fname"], oof, true_ids=ids)
        run.write_predictions("test", index.test["fname"], np.full((len(index.test), len(labels)), 1 / len(labels)))
        for fold in (0, 1):
            rows = np.arange(len(ids)) % 2 == fold
            run.fold_dir(fold).mkdir(parents=True)
            run.write_fold_predictions(fold, "oof", index.train["fname"][rows], oof[rows])
            run.write_fold_done(fold, {"fold": fold, "score": right})
        runs.append(run.dir)
    csv_path = blend_runs(workspace, runs, "pair")
    folder = write_blend_report(csv_path, workspace.runs)
    assert sorted(p.name for p in folder.iterdir()) == ["confused_pairs.csv", "confusion.png", "members.csv",
                                                        "per_class.csv", "report.md"]
    members = pd.read_csv(folder / "members.csv").set_index("member")
    assert members.loc["good", "accuracy"] > members.loc["poor", "accuracy"]
    record = json_module.loads(csv_path.with_suffix(".json").read_text())
    assert members.loc["blend", "map@3"] == pytest.approx(record["cv_score"])  # the report shows what CV scored
    first_pair = pd.read_csv(folder / "confused_pairs.csv")["pair"][0]
    assert " / " in first_pair and first_pair in (folder / "report.md").read_text()
