"""The Kaggle Freesound competition (FSDKaggle2018): its labels, its layout, and how its files arrive.

Both end as Kaggle's layout under `data/freesound-audio-tagging/`, the one the registry indexes:

    train.csv                  fname,label,manually_verified
    sample_submission.csv      fname,label  (every test clip)
    test_post_competition.csv  fname,label,usage  (the scored test labels, when the copy has them)
    audio_train/, audio_test/  the WAVs

Kaggle serves the competition as one zip holding the CSVs next to two more zips, `audio_train.zip`
and `audio_test.zip`. `download_freesound` downloads it through `competition.kaggle_client` (an
interrupted download resumes), unpacks everything into a partial folder that is renamed into place
only once complete (an interrupted unpack starts over from the kept archive), then deletes the
archive: zip checks every member's CRC while unpacking, so the folder holds exactly its bytes.

`FROM=DIR` (`link_freesound_copy`) accepts Kaggle's archive, Kaggle's files unpacked (with the audio
zips unpacked or not) or Zenodo's FSDKaggle2018 (`FSDKaggle2018.audio_train/`,
`FSDKaggle2018.audio_test/`, `FSDKaggle2018.meta/`). It links the user's files rather than copying
them; only audio still inside a zip is unpacked. Zenodo's test metadata lists only the 1,600
scored test clips (the 7,800 unscored padding clips were not published), so a Zenodo copy has 1,600
test clips where Kaggle's has 9,400. Verification (counts, headers, labels) is `obtain.verify`'s job.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path, PurePosixPath

import pandas as pd

from competition.datasets.spec import (
    TEST_COLUMNS,
    TRAIN_COLUMNS,
    Dataset,
    DatasetError,
    Index,
    Problems,
    audio_paths,
    check_files,
    check_flags,
    check_labels,
    check_unique,
    missing_files,
    read_csv,
)
from competition.workspace import atomic_write_text, replace_dir

COMPETITION = "freesound-audio-tagging"  # Kaggle's slug, and the dataset's name in the registry
# The 41 labels of Kaggle `freesound-audio-tagging` (FSDKaggle2018), exact spelling, sorted.
LABELS = (
    "Acoustic_guitar", "Applause", "Bark", "Bass_drum", "Burping_or_eructation", "Bus", "Cello",
    "Chime", "Clarinet", "Computer_keyboard", "Cough", "Cowbell", "Double_bass",
    "Drawer_open_or_close", "Electric_piano", "Fart", "Finger_snapping", "Fireworks", "Flute",
    "Glockenspiel", "Gong", "Gunshot_or_gunfire", "Harmonica", "Hi-hat", "Keys_jangling", "Knock",
    "Laughter", "Meow", "Microwave_oven", "Oboe", "Saxophone", "Scissors", "Shatter", "Snare_drum",
    "Squeak", "Tambourine", "Tearing", "Telephone", "Trumpet", "Violin_or_fiddle", "Writing",
)
assert len(LABELS) == 41 and list(LABELS) == sorted(LABELS)
# Kaggle's sample submission gives every row the same three labels.
SAMPLE_SUBMISSION_LABELS = "Acoustic_guitar Hi-hat Flute"
AUDIO_DIRS = ("audio_train", "audio_test")
KAGGLE_CSVS = ("train.csv", "sample_submission.csv", "test_post_competition.csv", "train_post_competition.csv")
# Kaggle's post-competition train CSV: train.csv's rows with the Freesound id of each clip's recording.
TRAIN_SOURCES_CSV = "train_post_competition.csv"
# The competition's own CSVs (no audio), shipped with the kit under CC BY 4.0 (the README beside them).
SHIPPED_META_DIR = Path(__file__).resolve().with_name("fsdkaggle2018_meta")
# The test clips of Kaggle's copy that hold no audio (all three Ignored in scoring).
EMPTY_TEST_CLIPS = ("0b0427e2.wav", "6ea0099f.wav", "b39975f5.wav")
ZENODO_AUDIO_DIRS = {"audio_train": "FSDKaggle2018.audio_train", "audio_test": "FSDKaggle2018.audio_test"}
ZENODO_TRAIN_META = Path("FSDKaggle2018.meta") / "train_post_competition.csv"
ZENODO_TEST_META = Path("FSDKaggle2018.meta") / "test_post_competition_scoring_clips.csv"
# Written into a folder arranged from a FROM copy: which copy, so that a rerun with it does nothing
# and a folder the kit did not arrange (a download) is never replaced.
COPY_RECORD = ".copied-from"


def index_layout(root: Path, dataset: Dataset) -> Index:
    """Kaggle's layout: train.csv + audio_train/, sample_submission.csv + audio_test/."""
    train_csv = root / "train.csv"
    train = read_csv(train_csv, ["fname", "label", "manually_verified"])
    problems = Problems(train_csv)
    check_unique(problems, train, "fname")
    check_labels(problems, train, dataset.labels)
    train["manually_verified"] = check_flags(problems, train, "manually_verified")
    train["path"] = audio_paths(problems, train, root / "audio_train")
    check_files(problems, train)
    train["fold"] = -1
    train["source_id"] = freesound_ids(root, train)
    test_csv = root / "sample_submission.csv"
    test = read_csv(test_csv, ["fname"])
    test_problems = Problems(test_csv)
    check_unique(test_problems, test, "fname")
    test["path"] = audio_paths(test_problems, test, root / "audio_test")
    problems.raise_if_any()
    test_problems.raise_if_any()
    warn_missing_test_clips(test, test_csv)
    return Index(train[TRAIN_COLUMNS].reset_index(drop=True), test[TEST_COLUMNS].reset_index(drop=True))


def freesound_ids(root: Path, train: pd.DataFrame) -> list[str]:
    """Each train clip's Freesound recording id, from train_post_competition.csv when the copy has
    it (Kaggle's post-competition files, Zenodo's meta); "" where unknown."""
    path = root / TRAIN_SOURCES_CSV
    if not path.is_file():
        return [""] * len(train)
    ids = read_csv(path, ["fname", "freesound_id"]).set_index("fname")["freesound_id"]
    ids = ids[~ids.index.duplicated()]
    return [ids.get(fname, "") for fname in train["fname"]]


def warn_missing_test_clips(test: pd.DataFrame, source: Path) -> None:
    """A listed test clip absent from disk is said, then handled as an undecodable one: a blank input
    and still its row in the submission (a submission must list every test fname)."""
    missing = Problems(source)
    missing.add_rows("listed test clip missing", test, missing_files(test), lambda row: repr(row["path"]))
    missing.warn_if_any("they get a blank input and still a row in the submission")


def download_freesound(dest: Path) -> None:
    """The registry's fetcher: download the competition through the Kaggle API, unpack it into `dest`."""
    from competition import kaggle_client

    dest = Path(dest)
    if dest.is_symlink() or dest.exists():
        raise DatasetError(
            f"{dest} exists but was never verified (an earlier `make data` stopped at verification, "
            "or the folder was made by hand); remove it and run `make data` again, or pass a copy "
            "you have: make data FROM=DIR")
    downloads = dest.parent / ".downloads"
    archive = kaggle_client.download_competition(COMPETITION, downloads)
    unpack_competition_archive(archive, dest)
    archive.unlink()
    if not any(downloads.iterdir()):
        downloads.rmdir()


def unpack_competition_archive(archive: Path, dest: Path, *, copied_from: Path | None = None) -> None:
    """Unpack Kaggle's archive, the audio zips inside it included, into `dest` (all or nothing)."""
    partial = _fresh_partial_dir(dest)
    try:
        with zipfile.ZipFile(archive) as outer:
            for member in outer.infolist():
                if member.is_dir():
                    continue
                unpacked = Path(outer.extract(member, partial))
                if unpacked.suffix == ".zip":
                    _unpack_audio_zip(unpacked, unpacked.parent)
                    unpacked.unlink()
    except zipfile.BadZipFile as error:
        raise DatasetError(f"{archive}: not a readable zip archive ({error}); delete it and rerun") from None
    _put_in_place(partial, dest, copied_from)


def link_freesound_copy(source: Path, dest: Path) -> None:
    """The registry's FROM=DIR step: make `dest` Kaggle's layout from the user's copy at `source`."""
    source, dest = Path(source).resolve(), Path(dest)
    if not source.exists():
        raise DatasetError(f"{source}: FROM not found")
    if dest.exists() and dest.resolve() == source:
        return  # the copy already is data/<dataset>
    if dest.is_symlink():
        dest.unlink()  # a link to an earlier FROM copy: nothing of the user's is deleted
    elif dest.exists():
        record = dest / COPY_RECORD
        if not record.is_file():
            raise DatasetError(f"{dest} already exists and was not arranged from a FROM copy; remove it "
                               f"to use {source}")
        if record.read_text() == str(source):
            return
    if source.is_file():
        if not zipfile.is_zipfile(source):
            raise DatasetError(f"{source}: FROM is a file but not a zip archive (Kaggle's "
                               f"{COMPETITION}.zip is the one file accepted)")
        unpack_competition_archive(source, dest, copied_from=source)
    elif (source / "train.csv").is_file():
        _arrange_kaggle_layout(source, dest)
    elif (source / ZENODO_TRAIN_META).is_file():
        _arrange_zenodo_layout(source, dest)
    else:
        raise DatasetError(
            f"{source}: neither Kaggle's {COMPETITION} files (train.csv, sample_submission.csv, "
            f"audio_train/ or audio_train.zip, audio_test/ or audio_test.zip) nor Zenodo's "
            f"FSDKaggle2018 ({ZENODO_TRAIN_META}, {ZENODO_TEST_META}, "
            f"{', '.join(d + '/' for d in ZENODO_AUDIO_DIRS.values())})")


def _arrange_kaggle_layout(source: Path, dest: Path) -> None:
    partial = _fresh_partial_dir(dest)
    for name in KAGGLE_CSVS:
        if (source / name).is_file():
            os.symlink(source / name, partial / name)
    for name in AUDIO_DIRS:
        if (source / name).is_dir():
            os.symlink(_audio_folder(source / name), partial / name, target_is_directory=True)
        elif (source / f"{name}.zip").is_file():
            _unpack_audio_zip(source / f"{name}.zip", partial)
        else:
            raise DatasetError(f"{source}: neither {name}/ nor {name}.zip found next to train.csv")
    _put_in_place(partial, dest, source)


def _arrange_zenodo_layout(source: Path, dest: Path) -> None:
    train_columns, test_columns = ["fname", "label", "manually_verified"], ["fname", "label", "usage"]
    train = read_csv(source / ZENODO_TRAIN_META, train_columns)[train_columns]
    scored_test = read_csv(source / ZENODO_TEST_META, test_columns)[test_columns]
    partial = _fresh_partial_dir(dest)
    atomic_write_text(partial / "train.csv", train.to_csv(index=False))
    os.symlink(source / ZENODO_TRAIN_META, partial / TRAIN_SOURCES_CSV)  # its freesound_id column
    atomic_write_text(partial / "test_post_competition.csv", scored_test.to_csv(index=False))
    sample = pd.DataFrame({"fname": scored_test["fname"], "label": SAMPLE_SUBMISSION_LABELS})
    atomic_write_text(partial / "sample_submission.csv", sample.to_csv(index=False))
    for name, zenodo_name in ZENODO_AUDIO_DIRS.items():
        if not (source / zenodo_name).is_dir():
            raise DatasetError(f"{source}: {zenodo_name}/ not found next to {ZENODO_TRAIN_META.parent}/ "
                               "(unzip Zenodo's archives into this folder)")
        os.symlink(source / zenodo_name, partial / name, target_is_directory=True)
    _put_in_place(partial, dest, source)


def _audio_folder(folder: Path) -> Path:
    """The folder that holds the clips: `audio_train/` itself, or the `audio_train/audio_train/` some
    copies have (Kaggle's unpacked archive as mounted in some kernels) when the outer one holds no file."""
    inner = folder / folder.name
    if inner.is_dir() and not any(path.is_file() for path in folder.iterdir()):
        return inner
    return folder


# Members of an audio zip that are never clips: macOS resource forks and folder metadata.
_SKIPPED_MEMBERS = ("__MACOSX/", ".DS_Store", "Thumbs.db")


def _unpack_audio_zip(audio_zip: Path, dest: Path) -> None:
    """`audio_train.zip` -> `dest/audio_train/<fname>`: a member inside an `audio_train/` folder (at the
    zip's top or one deeper) loses that folder, one at the top stays as it is, so the clips land
    where the CSV expects them whatever stray members (a readme, __MACOSX/) the zip also holds."""
    folder = audio_zip.stem
    target = dest / folder
    try:
        with zipfile.ZipFile(audio_zip) as audio:
            for member in audio.infolist():
                if member.is_dir() or any(part in member.filename for part in _SKIPPED_MEMBERS):
                    continue
                parts = PurePosixPath(member.filename).parts
                if ".." in parts or PurePosixPath(member.filename).is_absolute():
                    raise DatasetError(f"{audio_zip}: member {member.filename!r} points outside the archive")
                while len(parts) > 1 and parts[0] == folder:  # audio_train/x.wav, audio_train/audio_train/x.wav
                    parts = parts[1:]
                path = target.joinpath(*parts)
                path.parent.mkdir(parents=True, exist_ok=True)
                with audio.open(member) as source, open(path, "wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
    except zipfile.BadZipFile as error:
        raise DatasetError(f"{audio_zip}: not a readable zip archive ({error})") from None


def _fresh_partial_dir(dest: Path) -> Path:
    """An empty folder next to `dest`; whatever an interrupted earlier attempt left there is removed."""
    partial = dest.with_name(f".{dest.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    return partial


def _put_in_place(partial: Path, dest: Path, copied_from: Path | None) -> None:
    if copied_from is not None:
        atomic_write_text(partial / COPY_RECORD, str(copied_from))
    replace_dir(partial, dest)


DATASET = Dataset(
    name=COMPETITION, labels=LABELS, metric="map@3", fold_rule="stratified", indexer=index_layout,
    fetcher=download_freesound, local_copy=link_freesound_copy, ground_truth="test_post_competition.csv",
    # Zenodo published only the 1,600 scored test clips of Kaggle's 9,400.
    expected_counts={"Kaggle's download": (9473, 9400), "Zenodo's FSDKaggle2018": (9473, 1600)},
    kaggle_competition=COMPETITION, shipped_csvs=SHIPPED_META_DIR,
    description="Kaggle Freesound General-Purpose Audio Tagging (FSDKaggle2018), 41 labels, MAP@3")
