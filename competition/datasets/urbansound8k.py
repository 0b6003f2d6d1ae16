"""UrbanSound8K: 8,732 urban sound slices of at most 4 s, 10 classes, 10 predefined folds (accuracy).

Its own layout, `metadata/UrbanSound8K.csv` + `audio/fold1..fold10/<slice_file_name>`, from Zenodo's
archive (about 6 GB) or a copy the user has. The folds are the dataset's own and are never
reshuffled: slices of one recording share a fold.
"""

from __future__ import annotations

import sys
from pathlib import Path

from competition.datasets.spec import (
    Dataset,
    DatasetError,
    Index,
    Problems,
    audio_paths,
    check_class_ids,
    check_files,
    check_labels,
    check_unique,
    locate_top_folder,
    predefined_folds,
    read_csv,
    without_test_split,
)

NAME = "urbansound8k"
URL = "https://zenodo.org/records/1203745/files/UrbanSound8K.tar.gz"
# Its 10 classes in classID order (its CSV's `classID` is the position here).
LABELS = (
    "air_conditioner", "car_horn", "children_playing", "dog_bark", "drilling", "engine_idling",
    "gun_shot", "jackhammer", "siren", "street_music",
)


def index_layout(root: Path, dataset: Dataset) -> Index:
    """UrbanSound8K's own layout: metadata/UrbanSound8K.csv + audio/fold1..fold10/<slice_file_name>.

    Folds whose audio/foldN folder is absent are left out, with a note naming them, so a copy
    of some folds works; in a fold that is present every listed file must be there."""
    base = locate_top_folder(root, "metadata/UrbanSound8K.csv", "UrbanSound8K")
    csv_path = base / "metadata" / "UrbanSound8K.csv"
    table = read_csv(csv_path, ["slice_file_name", "fsID", "fold", "classID", "class"])
    table = table.rename(columns={"slice_file_name": "fname", "class": "label"})
    problems = Problems(csv_path)
    check_unique(problems, table, "fname")
    check_labels(problems, table, dataset.labels)
    check_class_ids(problems, table, "classID", dataset.labels)
    table["fold"] = predefined_folds(problems, table, 10)
    problems.raise_if_any()
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
    plain = audio_paths(problems, table, base / "audio")
    table["path"] = [str(base / "audio" / f"fold{k}" / f) if path else ""
                     for k, f, path in zip(table["fold"], table["fname"], plain)]
    check_files(problems, table)
    problems.raise_if_any()
    table["manually_verified"] = 1
    table["source_id"] = table["fsID"]  # the Freesound recording the slice was cut from
    return without_test_split(table)


def download(dest: Path) -> None:
    """The registry's fetcher: UrbanSound8K from Zenodo; its UrbanSound8K/ becomes dest."""
    from competition.datasets.download import download_and_unpack

    download_and_unpack(URL, dest, archive_folder="UrbanSound8K",
                        local_copy="UrbanSound8K/, or its metadata/ and audio/fold1..fold10/")


DATASET = Dataset(
    name=NAME, labels=LABELS, metric="accuracy", fold_rule="predefined", indexer=index_layout, fetcher=download,
    description="UrbanSound8K, 8,732 urban sound slices, 10 classes, 10 predefined folds, accuracy")
