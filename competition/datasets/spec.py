"""What a dataset is: its spec (`Dataset`), its index tables, and the checks every indexer uses.

An entry of the registry (`competition.datasets.registry`) says how to obtain the data, how to
index it into one table, its label vocabulary, its metric and its fold rule. Every later step works
on the index tables:

    train: fname, path, label, manually_verified, fold, source_id
                                                         (fold: -1 where folds are made by us, else
                                                          the dataset's own numbers, 1..10 or 1..5;
                                                          source_id: the Freesound recording a clip
                                                          was cut from, "" where unknown)
    test:  fname, path                                   (empty when the dataset has no test split)

Each source (freesound.py, urbansound8k.py, esc50.py, demo.py) holds its labels, indexer and fetcher.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from competition.errors import KitError

TRAIN_COLUMNS = ["fname", "path", "label", "manually_verified", "fold", "source_id"]
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
    # The dataset's own CSVs, shipped with the kit (its sample_submission.csv of every test fname and
    # its ground_truth file): a submission is validated and scored with them when the data is not here.
    shipped_csvs: Path | None = None

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


# Problems of one kind shown by name and line before "... and N more": a whole file's worth of
# mistakes stays readable, and the count says how many there are.
SHOWN_PER_KIND = 8


class Problems:
    """Every problem found in one file, collected so that one run names them all, grouped by kind."""

    def __init__(self, source: Path):
        self.source = source
        self.by_kind: dict[str, list[tuple[int | None, str]]] = {}

    def add(self, kind: str, line: int | None, detail: str) -> None:
        self.by_kind.setdefault(kind, []).append((line, detail))

    def add_rows(self, kind: str, table: pd.DataFrame, rows: pd.Series, describe) -> None:
        """One problem per row of `table` where `rows` is True; `describe(row)` says what is wrong."""
        for index in table.index[rows.to_numpy()]:
            self.add(kind, line_of(index), describe(table.loc[index]))

    def __bool__(self) -> bool:
        return bool(self.by_kind)

    def report(self, what: str = "problem") -> str:
        """One line for one problem; else a count, then a line per kind with its lines and details."""
        count = sum(len(items) for items in self.by_kind.values())
        if count == 1:
            ((kind, [(line, detail)]),) = self.by_kind.items()
            return f"{self.source}: {_at(line)}{kind}: {detail}"
        lines = [f"{self.source}: {count} {what}s"]
        for kind, items in self.by_kind.items():
            shown = "; ".join(f"{_at(line)}{detail}" for line, detail in items[:SHOWN_PER_KIND])
            more = f"; ... and {len(items) - SHOWN_PER_KIND} more" if len(items) > SHOWN_PER_KIND else ""
            lines.append(f"  {kind} ({len(items)}): {shown}{more}")
        return "\n".join(lines)

    def raise_if_any(self) -> None:
        if self:
            raise DatasetError(self.report())

    def warn_if_any(self, consequence: str) -> None:
        if self:
            print(f"warning: {self.report('warning')}\n  {consequence}", file=sys.stderr)


def _at(line: int | None) -> str:
    return f"line {line}: " if line is not None else ""


def line_of(index) -> int:
    """The CSV line of a row read by read_csv: 1-based, after the header (also in a filtered table)."""
    return int(index) + 2


def check_unique(problems: Problems, table: pd.DataFrame, column: str) -> None:
    problems.add_rows(f"duplicate {column}", table, table[column].duplicated(), lambda row: repr(row[column]))


def check_labels(problems: Problems, table: pd.DataFrame, labels: tuple[str, ...]) -> None:
    problems.add_rows(f"label not in the vocabulary ({len(labels)} labels)", table, ~table["label"].isin(labels),
                      lambda row: repr(row["label"]))


def check_flags(problems: Problems, table: pd.DataFrame, column: str) -> pd.Series:
    """A 0/1 column as integers; any other value (yes, empty, 2, ...) is a problem."""
    valid = table[column].isin(["0", "1"])
    problems.add_rows(f"{column} not 0 or 1", table, ~valid, lambda row: repr(row[column]))
    return table[column].where(valid, "0").astype(int)


def is_plain_name(fname: str) -> bool:
    """A file name with no folder part: what every layout's CSVs list, and nothing that could
    point outside the audio folder (an absolute path, `..`, a separator)."""
    return (bool(fname) and fname not in (".", "..") and "/" not in fname and "\\" not in fname
            and "\0" not in fname)


def audio_paths(problems: Problems, table: pd.DataFrame, folder: Path) -> list[str]:
    """Each row's file inside `folder`; an fname that is not a plain file name is a problem (its path
    is left empty, so nothing outside the dataset is ever read)."""
    plain = table["fname"].map(is_plain_name)
    problems.add_rows("fname not a plain file name inside its audio folder", table, ~plain,
                      lambda row: repr(row["fname"]))
    return [str(folder / fname) if ok else "" for fname, ok in zip(table["fname"], plain)]


def missing_files(table: pd.DataFrame) -> pd.Series:
    """True for the rows whose `path` is not a file."""
    return table["path"].map(lambda path: not path or not Path(path).is_file()).astype(bool)


def check_files(problems: Problems, table: pd.DataFrame) -> None:
    missing = missing_files(table) & (table["path"] != "")  # bad fnames are named already
    problems.add_rows("listed audio file missing", table, missing, lambda row: repr(row["path"]))


def check_counts(dataset: Dataset, index: Index, root: Path) -> None:
    if not dataset.expected_counts:
        return
    found = (len(index.train), len(index.test))
    if found not in dataset.expected_counts.values():
        complete = " or ".join(f"{train:,} and {test:,} ({origin})"
                               for origin, (train, test) in dataset.expected_counts.items())
        raise DatasetError(f"{root}: lists {found[0]:,} train and {found[1]:,} test clips, but a complete "
                           f"copy of {dataset.name} has {complete}; the copy is incomplete or not this dataset")


def check_readable(problems: Problems, table: pd.DataFrame) -> None:
    """Read every listed file's header, so a file that is not audio is named now, not mid-training."""
    from competition.audio import AudioError, audio_info  # soundfile loads only when files are read

    for path in table["path"]:
        try:
            audio_info(path)
        except AudioError as error:
            problems.add("unreadable audio file", None, str(error))  # the message names the file


def locate_top_folder(root: Path, csv_relative: str, archive_folder: str) -> Path:
    """The dataset's own top folder: `root` itself, or `root/<archive_folder>` when the copy keeps
    the folder its archive unpacks to (UrbanSound8K/, ESC-50-master/)."""
    for base in (root, root / archive_folder):
        if (base / csv_relative).is_file():
            return base
    raise DatasetError(f"{root}: neither {csv_relative} nor {archive_folder}/{csv_relative} found; "
                       f"point FROM at the folder that holds {csv_relative} or {archive_folder}/")


def check_class_ids(problems: Problems, table: pd.DataFrame, id_column: str, labels: tuple[str, ...]) -> None:
    """The CSV's numeric class column must agree with its name column (a shifted or edited CSV)."""
    expected = table["label"].map({label: str(i) for i, label in enumerate(labels)})
    problems.add_rows(f"{id_column} does not match its label", table,
                      (table[id_column] != expected) & table["label"].isin(labels),
                      lambda row: f"{id_column} {row[id_column]!r} for label {row['label']!r} "
                                  f"(expected {labels.index(row['label'])})")


def predefined_folds(problems: Problems, table: pd.DataFrame, n_folds: int) -> pd.Series:
    """The dataset's own fold numbers (1..n_folds), kept as they are."""
    valid = table["fold"].isin([str(k) for k in range(1, n_folds + 1)])
    problems.add_rows(f"fold not one of 1..{n_folds}", table, ~valid, lambda row: repr(row["fold"]))
    return table["fold"].where(valid, "1").astype(int)


def without_test_split(train: pd.DataFrame) -> Index:
    """The index of a dataset with no test split; a source that names no recordings gets source_id ""."""
    if "source_id" not in train.columns:
        train = train.assign(source_id="")
    return Index(train[TRAIN_COLUMNS].reset_index(drop=True), pd.DataFrame(columns=TEST_COLUMNS))
