"""ESC-50 and its subset ESC-10: 5 s environmental recordings, 5 predefined folds (accuracy).

ESC-50's layout, `meta/esc50.csv` + `audio/<filename>`, from its GitHub archive (about 600 MB) or a
copy the user has. ESC-10 is the 400 rows marked `esc10`, with ESC-50's class ids. The folds are
the dataset's own and are never reshuffled: clips of one source recording share a fold.
"""

from __future__ import annotations

import functools
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

URL = "https://github.com/karolpiczak/ESC-50/archive/master.zip"
# ESC-50's 50 categories in `target` order: five groups of ten (animals, natural soundscapes, human
# non-speech, interior/domestic, exterior/urban).
LABELS = (
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



def index_layout(root: Path, dataset: Dataset, *, esc10_only: bool = False) -> Index:
    """ESC-50's layout: meta/esc50.csv + audio/<filename>; with esc10_only, the rows marked esc10."""
    base = locate_top_folder(root, "meta/esc50.csv", "ESC-50-master")
    csv_path = base / "meta" / "esc50.csv"
    table = read_csv(csv_path, ["filename", "fold", "target", "category", "esc10", "src_file"])
    table = table.rename(columns={"filename": "fname", "category": "label"})
    if esc10_only:
        table = table[table["esc10"].str.lower() == "true"]
        if table.empty:
            raise DatasetError(f"{csv_path}: no row has esc10 True")
    problems = Problems(csv_path)
    check_unique(problems, table, "fname")
    check_labels(problems, table, dataset.labels)
    check_class_ids(problems, table, "target", LABELS)  # ESC-10 rows keep ESC-50's ids
    table["fold"] = predefined_folds(problems, table, 5)
    table["path"] = audio_paths(problems, table, base / "audio")
    check_files(problems, table)
    problems.raise_if_any()
    table["manually_verified"] = 1
    table["source_id"] = table["src_file"]  # the Freesound recording the clip was cut from
    return without_test_split(table)


def download(dest: Path) -> None:
    """The registry's fetcher (ESC-50 and ESC-10): ESC-50's GitHub archive; its ESC-50-master/ becomes dest."""
    from competition.datasets.download import download_and_unpack

    download_and_unpack(URL, dest, archive_folder="ESC-50-master",
                        local_copy="meta/esc50.csv and audio/, e.g. an unzipped ESC-50-master")


DATASET = Dataset(
    name="esc50", labels=LABELS, metric="accuracy", fold_rule="predefined", indexer=index_layout, fetcher=download,
    description="ESC-50, 2,000 environmental sound clips of 5 s, 50 classes, 5 predefined folds, accuracy")
ESC10 = Dataset(
    name="esc10", labels=ESC10_LABELS, metric="accuracy", fold_rule="predefined",
    indexer=functools.partial(index_layout, esc10_only=True), fetcher=download,
    description="ESC-10, the 400 ESC-50 clips marked esc10, 10 classes, 5 predefined folds, accuracy")
