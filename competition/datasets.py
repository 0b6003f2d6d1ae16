"""The dataset registry: each dataset is a spec, not a code path.

An entry says how to obtain the data, how to index it into one table, its label vocabulary, its
metric and its fold rule. Every later step works on the index tables:

    train: fname, path, label, manually_verified, fold   (fold: -1 where folds are made by us, else
                                                          the dataset's own numbers, 1..10 or 1..5)
    test:  fname, path                                   (empty when the dataset has no test split)
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from competition.labels import FREESOUND_LABELS

TRAIN_COLUMNS = ["fname", "path", "label", "manually_verified", "fold"]
TEST_COLUMNS = ["fname", "path"]

# UrbanSound8K's 10 classes in classID order (its CSV's `classID` is the position here).
URBANSOUND8K_LABELS = (
    "air_conditioner", "car_horn", "children_playing", "dog_bark", "drilling", "engine_idling",
    "gun_shot", "jackhammer", "siren", "street_music",
)
# ESC-50's 50 categories in `target` order: five groups of ten (animals, natural soundscapes, human
# non-speech, interior/domestic, exterior/urban).
ESC50_LABELS = (
    "dog", "rooster", "pig", "cow", "frog", "cat", "hen", "insects", "sheep", "crow",
    "rain", "sea_waves", "crackling_fire", "crickets", "chirping_birds", "water_drops", "wind",
    "pouring_water", "toilet_flush", "thunderstorm",
    "crying_baby", "sneezing", "clapping", "breathing", "coughing", "footsteps", "laughing",
    "brushing_teeth", "snoring", "drinking_sipping",
    "door_wood_knock", "mouse_click", "keyboard_typing", "door_wood_creaks", "can_opening",
    "washing_machine", "vacuum_cleaner", "clock_alarm", "clock_tick", "glass_breaking",
    "helicopter", "chainsaw", "siren", "car_horn", "engine", "train", "church_bells", "airplane",
    "fireworks", "hand_saw",
)
# ESC-10: the ESC-50 rows marked `esc10`, ten of its categories (kept in ESC-50's order).
ESC10_LABELS = ("dog", "rooster", "rain", "sea_waves", "crackling_fire", "crying_baby", "sneezing",
                "clock_tick", "helicopter", "chainsaw")


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
    from competition.audio import AudioError, audio_info

    for path in paths:
        try:
            audio_info(path)
        except AudioError as error:
            raise DatasetError(f"{root}: a listed audio file is unreadable: {error}") from None


def index_kaggle_freesound_layout(root: Path, dataset: Dataset) -> Index:
    """Kaggle's layout: train.csv + audio_train/, sample_submission.csv + audio_test/."""
    train_csv = root / "train.csv"
    train = read_csv(train_csv, ["fname", "label", "manually_verified"])
    check_unique(train, "fname", train_csv)
    check_labels(train, dataset.labels, train_csv)
    train["path"] = [str(root / "audio_train" / f) for f in train["fname"]]
    check_files(train["path"], train_csv)
    train["manually_verified"] = train["manually_verified"].astype(int)
    train["fold"] = -1
    test_csv = root / "sample_submission.csv"
    test = read_csv(test_csv, ["fname"])
    check_unique(test, "fname", test_csv)
    test["path"] = [str(root / "audio_test" / f) for f in test["fname"]]
    check_files(test["path"], test_csv)
    return Index(train[TRAIN_COLUMNS].reset_index(drop=True), test[TEST_COLUMNS].reset_index(drop=True))


def _locate(root: Path, csv_relative: str, archive_folder: str) -> Path:
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


def _table_without_test(train: pd.DataFrame) -> Index:
    return Index(train[TRAIN_COLUMNS].reset_index(drop=True), pd.DataFrame(columns=TEST_COLUMNS))


def index_urbansound8k_layout(root: Path, dataset: Dataset) -> Index:
    """UrbanSound8K's own layout: metadata/UrbanSound8K.csv + audio/fold1..fold10/<slice_file_name>.

    Folds whose audio/foldN folder is absent are left out, with a note naming them, so a copy
    of some folds works; in a fold that is present every listed file must be there."""
    base = _locate(root, "metadata/UrbanSound8K.csv", "UrbanSound8K")
    csv_path = base / "metadata" / "UrbanSound8K.csv"
    table = read_csv(csv_path, ["slice_file_name", "fold", "classID", "class"])
    table = table.rename(columns={"slice_file_name": "fname", "class": "label"})
    check_unique(table, "fname", csv_path)
    check_labels(table, dataset.labels, csv_path)
    check_class_ids(table, "classID", dataset.labels, csv_path)
    table["fold"] = predefined_folds(table, 10, csv_path)
    folds = sorted(table["fold"].unique())
    present = [k for k in folds if (base / "audio" / f"fold{k}").is_dir()]
    absent = [k for k in folds if k not in present]
    if not present:
        raise DatasetError(f"{base / 'audio'}: no fold1..fold10 folder found; UrbanSound8K's audio is "
                           f"missing")
    if absent:
        print(f"{dataset.name}: audio of fold(s) {', '.join(map(str, absent))} absent (no "
              f"{base / 'audio'}/fold<N>/); using fold(s) {', '.join(map(str, present))}", file=sys.stderr)
        table = table[table["fold"].isin(present)]
    table["path"] = [str(base / "audio" / f"fold{k}" / f) for k, f in zip(table["fold"], table["fname"])]
    check_files(table["path"], csv_path)
    table["manually_verified"] = 1
    return _table_without_test(table)


def index_esc50_layout(root: Path, dataset: Dataset, *, esc10_only: bool = False) -> Index:
    """ESC-50's layout: meta/esc50.csv + audio/<filename>; with esc10_only, the rows marked esc10."""
    base = _locate(root, "meta/esc50.csv", "ESC-50-master")
    csv_path = base / "meta" / "esc50.csv"
    table = read_csv(csv_path, ["filename", "fold", "target", "category", "esc10"])
    table = table.rename(columns={"filename": "fname", "category": "label"})
    if esc10_only:
        table = table[table["esc10"].str.lower() == "true"]
        if table.empty:
            raise DatasetError(f"{csv_path}: no row has esc10 True")
    check_unique(table, "fname", csv_path)
    check_labels(table, dataset.labels, csv_path)
    check_class_ids(table, "target", ESC50_LABELS, csv_path)  # ESC-10 rows keep ESC-50's ids
    table["fold"] = predefined_folds(table, 5, csv_path)
    table["path"] = [str(base / "audio" / f) for f in table["fname"]]
    check_files(table["path"], csv_path)
    table["manually_verified"] = 1
    return _table_without_test(table)


def _fetch_urbansound8k(dest: Path) -> None:
    from competition.data import download_urbansound8k
    download_urbansound8k(dest)


def _fetch_esc50(dest: Path) -> None:
    from competition.data import download_esc50
    download_esc50(dest)


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
    "urbansound8k": lambda: Dataset(
        name="urbansound8k", labels=URBANSOUND8K_LABELS, metric="accuracy", fold_rule="predefined",
        indexer=index_urbansound8k_layout, fetcher=_fetch_urbansound8k,
        description="UrbanSound8K, 8,732 urban sound slices, 10 classes, 10 predefined folds, accuracy"),
    "esc50": lambda: Dataset(
        name="esc50", labels=ESC50_LABELS, metric="accuracy", fold_rule="predefined",
        indexer=index_esc50_layout, fetcher=_fetch_esc50,
        description="ESC-50, 2,000 environmental sound clips of 5 s, 50 classes, 5 predefined folds, accuracy"),
    "esc10": lambda: Dataset(
        name="esc10", labels=ESC10_LABELS, metric="accuracy", fold_rule="predefined",
        indexer=functools.partial(index_esc50_layout, esc10_only=True), fetcher=_fetch_esc50,
        description="ESC-10, the 400 ESC-50 clips marked esc10, 10 classes, 5 predefined folds, accuracy"),
}


def dataset_names() -> list[str]:
    return list(_REGISTRY)


def get_dataset(name: str) -> Dataset:
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(_REGISTRY)}") from None
