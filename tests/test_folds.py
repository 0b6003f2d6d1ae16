import pandas as pd
import pytest

from competition.datasets.folds import load_or_make_folds, stratified_folds
from competition.datasets.registry import get_dataset
from competition.workspace import Workspace


def table(n_per_label=10, labels=("a", "b", "c")):
    rows = [{"fname": f"{label}{i}.wav", "label": label, "manually_verified": i % 2, "fold": -1}
            for label in labels for i in range(n_per_label)]
    return pd.DataFrame(rows)


def test_stratified_folds_balance_label_and_verified():
    train = table()
    folds = stratified_folds(train, k=5, seed=1)
    assert sorted(folds.unique()) == [0, 1, 2, 3, 4]
    counts = pd.crosstab([train["label"], train["manually_verified"]], folds)
    assert (counts == 1).all().all()  # 5 clips per label x verified cell -> one per fold


def test_rare_labels_still_get_a_fold():
    train = pd.concat([table(), table(n_per_label=1, labels=("rare",))], ignore_index=True)
    folds = stratified_folds(train, k=5, seed=0)
    assert (folds >= 0).all() and len(folds) == len(train)


def test_folds_are_made_once_and_read_back(tmp_path):
    workspace = Workspace(tmp_path)
    dataset = get_dataset("freesound-audio-tagging")
    train = table()
    first = load_or_make_folds(workspace, dataset, train, 5, 42)
    saved = list((tmp_path / "folds" / dataset.name).glob("*.csv"))
    assert [p.name for p in saved] == ["stratified-k5-seed42.csv"]
    shuffled = train.sample(frac=1, random_state=3)
    again = load_or_make_folds(workspace, dataset, shuffled, 5, 42)
    assert (again.to_numpy() == first.loc[shuffled.index].to_numpy()).all()
    assert not load_or_make_folds(workspace, dataset, train, 5, 7).equals(first)


def test_saved_folds_for_other_data_are_refused(tmp_path):
    workspace = Workspace(tmp_path)
    dataset = get_dataset("freesound-audio-tagging")
    load_or_make_folds(workspace, dataset, table(), 5, 42)
    new_row = {"fname": "new.wav", "label": "a", "manually_verified": 1, "fold": -1}
    bigger = pd.concat([table(), pd.DataFrame([new_row])])
    with pytest.raises(ValueError, match="new.wav"):
        load_or_make_folds(workspace, dataset, bigger.reset_index(drop=True), 5, 42)
