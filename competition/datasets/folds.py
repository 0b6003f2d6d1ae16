"""Cross-validation folds, fixed once per dataset and saved (`folds/<dataset>/<rule>.csv`).

Every model of an ensemble is scored on the same out-of-fold split, so blend weights can be fitted
on OOF predictions without leakage. Stratified datasets (Freesound) get StratifiedKFold on
label x manually_verified; datasets with predefined folds (UrbanSound8K, ESC-50) keep their own,
never reshuffled.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

from competition.datasets.spec import Dataset
from competition.errors import KitError
from competition.workspace import Workspace, atomic_write_text


class FoldError(KitError, ValueError):
    pass


def folds_path(workspace: Workspace, dataset: Dataset, k: int, seed: int) -> Path:
    name = "predefined" if dataset.fold_rule == "predefined" else f"stratified-k{k}-seed{seed}"
    return workspace.folds / dataset.name / f"{name}.csv"


def stratified_folds(train: pd.DataFrame, k: int, seed: int) -> pd.Series:
    from sklearn.model_selection import StratifiedKFold

    strata = train["label"].astype(str) + "|" + train["manually_verified"].astype(str)
    # A cell too small to spread over every fold is stratified on label alone, and labels rarer
    # than k share one stratum: every clip still lands in exactly one fold.
    small = strata.map(strata.value_counts()) < k
    strata[small] = train["label"][small].astype(str)
    strata[strata.map(strata.value_counts()) < k] = "(rare labels)"
    if len(train) < k:
        raise FoldError(f"{len(train)} train clips cannot make {k} folds")
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    folds = pd.Series(-1, index=train.index, dtype=int)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class")  # handled above
        for fold, (_, held_out) in enumerate(splitter.split(train, strata)):
            folds.iloc[held_out] = fold
    return folds


def load_or_make_folds(workspace: Workspace, dataset: Dataset, train: pd.DataFrame, k: int, seed: int) -> pd.Series:
    """The fold of every train clip (aligned with `train`), made once and then read back."""
    path = folds_path(workspace, dataset, k, seed)
    if dataset.fold_rule == "predefined":
        folds = train["fold"].astype(int)
    elif path.exists():
        saved = pd.read_csv(path, dtype={"fname": str}).set_index("fname")["fold"]
        missing = set(train["fname"]) - set(saved.index)
        if missing:
            raise FoldError(f"{path}: made for another version of the data ({len(missing)} clip(s) absent, "
                            f"e.g. {sorted(missing)[0]!r}); delete it to make new folds")
        return saved.loc[train["fname"]].astype(int).reset_index(drop=True).set_axis(train.index)
    else:
        folds = stratified_folds(train, k, seed)
    table = pd.DataFrame({"fname": train["fname"], "fold": folds})
    atomic_write_text(path, table.to_csv(index=False))
    return folds
