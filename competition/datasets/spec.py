"""What a dataset is: its spec (`Dataset`), its index tables, and the checks every indexer uses.

An entry of the registry (`competition.datasets.registry`) says how to obtain the data, how to
index it into one table, its label vocabulary, its metric and its fold rule. Every later step works
on the index tables:

    train: fname, path, label, manually_verified, fold   (fold: -1 where folds are made by us, else
                                                          the dataset's own numbers, 1..10 or 1..5)
    test:  fname, path                                   (empty when the dataset has no test split)

Each source (freesound.py, urbansound8k.py, esc50.py, demo.py) holds its labels, indexer and fetcher.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from competition.errors import KitError

TRAIN_COLUMNS = ["fname", "path", "label", "manually_verified", "fold"]
TEST_COLUMNS = ["fname", "path"]


class DatasetError(KitError, ValueError):
    """A dataset on disk does not match its spec; the message names the file and the problem."""


@dataclass(frozen=True)
class Index:
    train: pd.DataFrame
    test: pd.DataFrame


@dataclass(frozen=True)
class Dataset:
    name: str
    labels: tuple[str, ...]
    metric: str                    # "map@3" or "accuracy"
    fold_rule: str                 # "stratified" (we make K folds) or "predefined" (the dataset's own)
    indexer: Callable[[Path, Dataset], Index]
    description: str
    # Places the data can come from when no local copy is given: called with (dest_dir,).
    fetcher: Callable[[Path], None] | None = None
    ground_truth: str | None = None  # file (relative to the data dir) with scored test labels
    # How a FROM=DIR copy becomes data/<name>/, called with (source, dest_dir); None: a symlink to it.
    local_copy: Callable[[Path, Path], None] | None = None
    # (train, test) clip counts of a complete copy, by where the copy comes from; None: not checked.
    expected_counts: dict[str, tuple[int, int]] | None = None
    # The Kaggle competition whose files it is (or stands in for): kernels read its mount, submissions go to it.
    kaggle_competition: str | None = None

    def index(self, root: Path) -> Index:
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(f"{root}: dataset folder not found; run `make data DATASET={self.name}`")
        return self.indexer(root, self)

    @property
    def label_to_id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}


def read_csv(path: Path, columns: list[str]) -> pd.DataFrame:
    """A CSV as text columns, refused with a clear error when it or one of `columns` is missing."""
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DatasetError(f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(table.columns)}")
    return table


def check_unique(table: pd.DataFrame, column: str, source: Path) -> None:
    duplicated = table[column][table[column].duplicated()]
    if len(duplicated):
        row = duplicated.index[0] + 2  # 1-based, after the header line
        raise DatasetError(f"{source}: duplicate {column} {duplicated.iloc[0]!r} at line {row}")


def check_labels(table: pd.DataFrame, labels: tuple[str, ...], source: Path) -> None:
    unknown = ~table["label"].isin(labels)
    if unknown.any():
        row = unknown.idxmax()  # the CSV's own row number, also in a filtered table
        raise DatasetError(f"{source}: label {table['label'].loc[row]!r} at line {row + 2} "
                           f"is not in the vocabulary ({len(labels)} labels)")


def check_files(paths: pd.Series, source: Path) -> None:
    exists = paths.map(lambda p: Path(p).is_file())
    if not exists.all():
        missing = paths[~exists]
        raise DatasetError(f"{source}: {len(missing)} listed audio file(s) missing, first: {missing.iloc[0]}")


def check_counts(dataset: Dataset, index: Index, root: Path) -> None:
    if not dataset.expected_counts:
        return
    found = (len(index.train), len(index.test))
    if found not in dataset.expected_counts.values():
        complete = " or ".join(f"{train:,} and {test:,} ({origin})"
                               for origin, (train, test) in dataset.expected_counts.items())
        raise DatasetError(f"{root}: lists {found[0]:,} train and {found[1]:,} test clips, but a complete "
                           f"copy of {dataset.name} has {complete}; the copy is incomplete or not this dataset")


def check_readable(paths: list[str], root: Path) -> None:
    """Read every listed file's header, so a file that is not audio fails now, not mid-training."""
    from competition.audio import (  # soundfile loads only when files are read
        AudioError,
        audio_info,
    )

    for path in paths:
        try:
            audio_info(path)
        except AudioError as error:
            raise DatasetError(f"{root}: a listed audio file is unreadable: {error}") from None


def locate_top_folder(root: Path, csv_relative: str, archive_folder: str) -> Path:
    """The dataset's own top folder: `root` itself, or `root/<archive_folder>` when the copy keeps
    the folder its archive unpacks to (UrbanSound8K/, ESC-50-master/)."""
    for base in (root, root / archive_folder):
        if (base / csv_relative).is_file():
            return base
    raise DatasetError(f"{root}: neither {csv_relative} nor {archive_folder}/{csv_relative} found; "
                       f"point FROM at the folder that holds {csv_relative} or {archive_folder}/")


def check_class_ids(table: pd.DataFrame, id_column: str, labels: tuple[str, ...], source: Path) -> None:
    """The CSV's numeric class column must agree with its name column (a shifted or edited CSV)."""
    expected = table["label"].map({label: str(i) for i, label in enumerate(labels)})
    wrong = table[id_column] != expected
    if wrong.any():
        row = wrong.idxmax()
        raise DatasetError(f"{source}: {id_column} {table[id_column].loc[row]!r} at line {row + 2} does not "
                           f"match label {table['label'].loc[row]!r} (expected {expected.loc[row]})")


def predefined_folds(table: pd.DataFrame, n_folds: int, source: Path) -> pd.Series:
    """The dataset's own fold numbers (1..n_folds), kept as they are."""
    valid = table["fold"].isin([str(k) for k in range(1, n_folds + 1)])
    if not valid.all():
        row = (~valid).idxmax()
        raise DatasetError(f"{source}: fold {table['fold'].loc[row]!r} at line {row + 2} is not one of "
                           f"1..{n_folds}")
    return table["fold"].astype(int)


def without_test_split(train: pd.DataFrame) -> Index:
    return Index(train[TRAIN_COLUMNS].reset_index(drop=True), pd.DataFrame(columns=TEST_COLUMNS))


