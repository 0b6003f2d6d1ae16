"""The dataset registry: each dataset is a spec, not a code path.

An entry says how to obtain the data, how to index it into one table, its label vocabulary, its
metric and its fold rule. Every later step works on the index tables:

    train: fname, path, label, manually_verified, fold   (fold is -1 where folds are made by us)
    test:  fname, path                                   (empty when the dataset has no test split)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from competition.labels import FREESOUND_LABELS

TRAIN_COLUMNS = ["fname", "path", "label", "manually_verified", "fold"]
TEST_COLUMNS = ["fname", "path"]


class DatasetError(ValueError):
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
    indexer: Callable[[Path, "Dataset"], Index]
    description: str
    # Places the data can come from when no local copy is given: called with (dest_dir,).
    fetcher: Callable[[Path], None] | None = None
    ground_truth: str | None = None  # file (relative to the data dir) with scored test labels
    # How a FROM=DIR copy becomes data/<name>/, called with (source, dest_dir); None: a symlink to it.
    local_copy: Callable[[Path, Path], None] | None = None
    # (train, test) clip counts of a complete copy, by where the copy comes from; None: not checked.
    expected_counts: dict[str, tuple[int, int]] | None = None

    def index(self, root: Path) -> Index:
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(f"{root}: dataset folder not found; run `make data DATASET={self.name}`")
        return self.indexer(root, self)

    @property
    def label_to_id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}


def _read_csv(path: Path, columns: list[str]) -> pd.DataFrame:
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
        row = int(unknown.to_numpy().argmax())
        raise DatasetError(f"{source}: label {table['label'].iloc[row]!r} at line {row + 2} "
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
    from competition.audio import AudioError, audio_info

    for path in paths:
        try:
            audio_info(path)
        except AudioError as error:
            raise DatasetError(f"{root}: a listed audio file is unreadable: {error}") from None


def index_kaggle_freesound_layout(root: Path, dataset: Dataset) -> Index:
    """Kaggle's layout: train.csv + audio_train/, sample_submission.csv + audio_test/."""
    train_csv = root / "train.csv"
    train = _read_csv(train_csv, ["fname", "label", "manually_verified"])
    check_unique(train, "fname", train_csv)
    check_labels(train, dataset.labels, train_csv)
    train["path"] = [str(root / "audio_train" / f) for f in train["fname"]]
    check_files(train["path"], train_csv)
    train["manually_verified"] = train["manually_verified"].astype(int)
    train["fold"] = -1
    test_csv = root / "sample_submission.csv"
    test = _read_csv(test_csv, ["fname"])
    check_unique(test, "fname", test_csv)
    test["path"] = [str(root / "audio_test" / f) for f in test["fname"]]
    check_files(test["path"], test_csv)
    return Index(train[TRAIN_COLUMNS].reset_index(drop=True), test[TEST_COLUMNS].reset_index(drop=True))


def _fetch_demo(dest: Path) -> None:
    from competition.demo import generate_demo
    generate_demo(dest)


def _fetch_freesound(dest: Path) -> None:
    from competition.kaggle_data import download_freesound
    download_freesound(dest)


def _link_freesound_copy(source: Path, dest: Path) -> None:
    from competition.kaggle_data import link_freesound_copy
    link_freesound_copy(source, dest)


def _demo_labels() -> tuple[str, ...]:
    from competition.demo import DEMO_LABELS
    return DEMO_LABELS


_REGISTRY: dict[str, Callable[[], Dataset]] = {
    "freesound-audio-tagging": lambda: Dataset(
        name="freesound-audio-tagging", labels=FREESOUND_LABELS, metric="map@3", fold_rule="stratified",
        indexer=index_kaggle_freesound_layout, fetcher=_fetch_freesound, local_copy=_link_freesound_copy,
        ground_truth="test_post_competition.csv",
        # Zenodo published only the 1,600 scored test clips of Kaggle's 9,400.
        expected_counts={"Kaggle's download": (9473, 9400), "Zenodo's FSDKaggle2018": (9473, 1600)},
        description="Kaggle Freesound General-Purpose Audio Tagging (FSDKaggle2018), 41 labels, MAP@3"),
    "demo": lambda: Dataset(
        name="demo", labels=_demo_labels(), metric="map@3", fold_rule="stratified",
        indexer=index_kaggle_freesound_layout, fetcher=_fetch_demo,
        ground_truth="test_post_competition.csv",
        description="offline demo competition rendered from General MIDI samples, Kaggle's layout"),
}


def dataset_names() -> list[str]:
    return list(_REGISTRY)


def get_dataset(name: str) -> Dataset:
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(_REGISTRY)}") from None
