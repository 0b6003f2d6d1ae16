"""`make data` for freesound-audio-tagging: download through the real Kaggle client from the stand-in
server, unpack the nested audio zips, verify; FROM=DIR in Kaggle's and Zenodo's layouts.

The stand-in archive holds a tiny demo competition, so most tests give the registry entry the
archive's own clip counts (`stand_in_counts`); one checks that the real counts are enforced.
"""

import csv
import dataclasses
import io
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from kaggle_server import COMPETITION, DROP, credential_leaks

from competition.__main__ import main
from competition.datasets import freesound as kaggle_data
from competition.datasets import obtain as data
from competition.datasets import registry
from competition.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("no_credential_leaks")


def csv_rows(path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def error_line(err: str) -> str:
    """The one `error: ...` line the command line ends with (a progress bar may come before it)."""
    assert "Traceback" not in err
    *_, last = err.rstrip("\n").split("\n")
    assert last.startswith("error: "), err
    return last


def archived_rows(archive: Path, name: str) -> list[dict]:
    with zipfile.ZipFile(archive) as outer:
        return list(csv.DictReader(io.TextIOWrapper(outer.open(name), newline="")))


@pytest.fixture
def stand_in_counts(monkeypatch, competition_archive):
    """The freesound entry, expecting the stand-in archive's clip counts instead of 9,473 and 9,400."""
    counts = (len(archived_rows(competition_archive, "train.csv")),
              len(archived_rows(competition_archive, "sample_submission.csv")))
    monkeypatch.setitem(registry.REGISTRY, COMPETITION, dataclasses.replace(
        registry.REGISTRY[COMPETITION], expected_counts={"the stand-in archive": counts}))
    return counts


@pytest.fixture
def kit(tmp_path, monkeypatch) -> Workspace:
    monkeypatch.setenv("KIT_HOME", str(tmp_path / "kit"))
    return Workspace(tmp_path / "kit")


@pytest.fixture
def unpacked_competition(competition_archive) -> Path:
    """The demo competition the stand-in archive was packed from (Kaggle's layout; read-only)."""
    return competition_archive.with_name(competition_archive.stem + "-unpacked")


def dest_of(kit: Workspace) -> Path:
    return kit.dataset_dir(COMPETITION)


def assert_kaggle_layout(dest: Path, counts: tuple[int, int]) -> None:
    assert len(csv_rows(dest / "train.csv")) == counts[0]
    assert len(csv_rows(dest / "sample_submission.csv")) == counts[1]
    assert len(list((dest / "audio_train").glob("*.wav"))) == counts[0]
    assert len(list((dest / "audio_test").glob("*.wav"))) == counts[1]
    assert data.is_verified(dest)


# -- download


def test_make_data_downloads_unpacks_and_verifies(kaggle_server, stand_in_counts, kit, capfd):
    assert main(["data"]) == 0

    dest = dest_of(kit)
    assert_kaggle_layout(dest, stand_in_counts)
    assert (dest / "test_post_competition.csv").is_file()
    assert not list(kit.data.rglob("*.zip"))  # nested archives unpacked, the download deleted
    assert not (kit.data / ".downloads").exists() and not list(kit.data.glob(".*partial"))
    assert f"{stand_in_counts[0]} train clips, {stand_in_counts[1]} test clips" in capfd.readouterr().out
    assert len(kaggle_server.received("DownloadDataFiles")) == 1


def test_rerun_on_a_verified_copy_does_nothing(kaggle_server, stand_in_counts, kit, monkeypatch):
    assert main(["data"]) == 0
    kaggle_server.requests.clear()
    monkeypatch.delenv("KAGGLE_KEY")  # not even credentials are needed
    monkeypatch.setattr(data, "verify", lambda *args: pytest.fail("verified again"))

    assert main(["data"]) == 0
    assert kaggle_server.requests == []


def test_interrupted_unpack_restarts_cleanly_from_the_kept_archive(kaggle_server, stand_in_counts, kit, monkeypatch):
    real_unpack = kaggle_data._unpack_audio_zip

    def unpack_then_interrupt(audio_zip, dest):
        real_unpack(audio_zip, dest)
        raise KeyboardInterrupt

    monkeypatch.setattr(kaggle_data, "_unpack_audio_zip", unpack_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        main(["data"])
    assert not dest_of(kit).exists() and (kit.data / f".{COMPETITION}.partial").is_dir()
    monkeypatch.setattr(kaggle_data, "_unpack_audio_zip", real_unpack)
    kaggle_server.requests.clear()

    assert main(["data"]) == 0
    assert_kaggle_layout(dest_of(kit), stand_in_counts)
    assert kaggle_server.requests == []  # the complete archive was not downloaded again
    assert not (kit.data / f".{COMPETITION}.partial").exists()


def test_the_real_competitions_clip_counts_are_enforced(kaggle_server, kit, capfd):
    assert main(["data"]) == 2

    err = error_line(capfd.readouterr().err)
    assert "lists 12 train and 6 test clips" in err
    assert "9,473 and 9,400 (Kaggle's download) or 9,473 and 1,600 (Zenodo's FSDKaggle2018)" in err
    assert not data.is_verified(dest_of(kit))


FAILURES = {
    "no credentials": (None, "No Kaggle credentials found"),
    "rules not accepted": (403, f"accept the rules at https://www.kaggle.com/competitions/{COMPETITION}/rules"),
    "not found": (404, f"Competition '{COMPETITION}' was not found"),
    "network unreachable": (DROP, "machine looks offline"),
}


@pytest.mark.parametrize("failure", FAILURES)
def test_kaggle_failures_print_one_clear_line(kaggle_server, kit, monkeypatch, capfd, failure):
    how, advice = FAILURES[failure]
    if how is None:
        monkeypatch.delenv("KAGGLE_KEY")
        monkeypatch.delenv("KAGGLE_USERNAME")
    else:
        kaggle_server.fail("DownloadDataFiles", how)

    assert main(["data"]) == 2

    out, err = capfd.readouterr()
    assert advice in error_line(err)
    assert credential_leaks([out, err]) == []
    assert not dest_of(kit).exists()
    other_advice = [text for name, (_, text) in FAILURES.items() if name != failure]
    assert not any(text in err for text in other_advice)


def test_fresh_process_without_credentials_exits_with_the_message(kaggle_server, tmp_path):
    home = tmp_path / "fresh-home"
    home.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith("KAGGLE_")}
    env.update(HOME=str(home), KIT_HOME=str(tmp_path / "kit"), KAGGLE_API_ENVIRONMENT="TEST", PYTHONPATH=str(REPO))

    result = subprocess.run([sys.executable, "-m", "competition", "data"], env=env, capture_output=True, text=True,
                            timeout=120)

    assert result.returncode == 2
    assert result.stderr.startswith("error: No Kaggle credentials found") and "Traceback" not in result.stderr
    assert result.stdout == "" and list(home.iterdir()) == []


# -- FROM=DIR


def kaggle_files_without_audio_folders(archive: Path, dest: Path) -> Path:
    """Kaggle's download with only the outer zip unpacked: the CSVs next to audio_train.zip, audio_test.zip."""
    with zipfile.ZipFile(archive) as outer:
        outer.extractall(dest)
    return dest


FROM_KAGGLE = {
    "unpacked": lambda archive, unpacked, tmp: unpacked,
    "audio-zips": lambda archive, unpacked, tmp: kaggle_files_without_audio_folders(archive, tmp / "outer-only"),
    "archive": lambda archive, unpacked, tmp: archive,
}


@pytest.mark.parametrize("form", FROM_KAGGLE)
def test_from_accepts_kaggles_files(stand_in_counts, kit, competition_archive, unpacked_competition, tmp_path, form):
    source = FROM_KAGGLE[form](competition_archive, unpacked_competition, tmp_path)
    assert main(["data", "--from", str(source)]) == 0

    dest = dest_of(kit)
    assert_kaggle_layout(dest, stand_in_counts)
    if form == "unpacked":  # linked, not copied
        assert all((dest / name).is_symlink() for name in ("train.csv", "audio_train", "audio_test"))
        assert (dest / "audio_train").resolve() == unpacked_competition / "audio_train"
    assert (dest / kaggle_data.COPY_RECORD).read_text() == str(source.resolve())

    listing = sorted(str(p.relative_to(dest)) for p in dest.rglob("*"))
    assert main(["data", "--from", str(source)]) == 0  # the same copy again: nothing to arrange
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*")) == listing


def make_zenodo_copy(unpacked: Path, dest: Path) -> tuple[Path, int]:
    """Zenodo's FSDKaggle2018 from the demo: its folders, its meta CSVs, only the scored test clips."""
    meta = dest / "FSDKaggle2018.meta"
    meta.mkdir(parents=True)
    shutil.copytree(unpacked / "audio_train", dest / "FSDKaggle2018.audio_train")
    (dest / "FSDKaggle2018.audio_test").mkdir()
    with open(meta / "train_post_competition.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["fname", "label", "manually_verified", "freesound_id", "license"])
        for i, row in enumerate(csv_rows(unpacked / "train.csv")):
            writer.writerow([row["fname"], row["label"], row["manually_verified"], 1000 + i, "CC0"])
    scored = [row for row in csv_rows(unpacked / "test_post_competition.csv") if row["usage"] != "Ignored"]
    with open(meta / "test_post_competition_scoring_clips.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["fname", "label", "usage", "freesound_id", "license"])
        for i, row in enumerate(scored):
            writer.writerow([row["fname"], row["label"], row["usage"], 2000 + i, "CC-BY"])
            shutil.copy(unpacked / "audio_test" / row["fname"], dest / "FSDKaggle2018.audio_test")
    return dest, len(scored)


def test_from_accepts_zenodos_fsdkaggle2018(kit, unpacked_competition, tmp_path, monkeypatch):
    source, n_scored = make_zenodo_copy(unpacked_competition, tmp_path / "zenodo")
    n_train = len(csv_rows(unpacked_competition / "train.csv"))
    monkeypatch.setitem(registry.REGISTRY, COMPETITION, dataclasses.replace(
        registry.REGISTRY[COMPETITION],
        expected_counts={"stand-in Kaggle": (n_train, 6), "stand-in Zenodo": (n_train, n_scored)}))

    assert main(["data", "--from", str(source)]) == 0

    dest = dest_of(kit)
    assert_kaggle_layout(dest, (n_train, n_scored))
    assert list(csv_rows(dest / "train.csv")[0]) == ["fname", "label", "manually_verified"]
    truth = csv_rows(dest / "test_post_competition.csv")
    assert list(truth[0]) == ["fname", "label", "usage"] and {row["usage"] for row in truth} <= {"Public", "Private"}
    assert [row["fname"] for row in csv_rows(dest / "sample_submission.csv")] == [row["fname"] for row in truth]
    assert (dest / "audio_test").resolve() == source / "FSDKaggle2018.audio_test"


def test_from_never_replaces_a_downloaded_copy(kaggle_server, stand_in_counts, kit, unpacked_competition, capfd):
    assert main(["data"]) == 0
    assert main(["data", "--from", str(unpacked_competition)]) == 2
    assert "was not arranged from a FROM copy; remove it" in error_line(capfd.readouterr().err)
    assert not (dest_of(kit) / "audio_train").is_symlink()


def test_from_a_folder_in_neither_layout_names_both(kit, tmp_path, capfd):
    (tmp_path / "elsewhere").mkdir()
    assert main(["data", "--from", str(tmp_path / "elsewhere")]) == 2
    err = error_line(capfd.readouterr().err)
    assert "neither Kaggle's" in err and "nor Zenodo's FSDKaggle2018" in err


# -- verification


def break_first_train_clip(copy: Path) -> str:
    fname = csv_rows(copy / "train.csv")[0]["fname"]
    (copy / "audio_train" / fname).write_bytes(b"this is not a WAV file")
    return f"{fname}: not a readable audio file"


def relabel_first_train_row(copy: Path) -> str:
    text = (copy / "train.csv").read_text().splitlines()
    fname, label, verified = text[1].split(",")
    text[1] = f"{fname},Kazoo,{verified}"
    (copy / "train.csv").write_text("\n".join(text) + "\n")
    return "line 2: label not in the vocabulary (41 labels): 'Kazoo'"


@pytest.mark.parametrize("damage", [break_first_train_clip, relabel_first_train_row],
                         ids=lambda damage: damage.__name__)
def test_a_damaged_copy_is_not_declared_ready(stand_in_counts, kit, unpacked_competition, tmp_path, capfd, damage):
    copy = shutil.copytree(unpacked_competition, tmp_path / "copy")
    problem = damage(copy)

    assert main(["data", "--from", str(copy)]) == 2

    assert problem in error_line(capfd.readouterr().err)
    assert not data.is_verified(dest_of(kit))


def test_a_missing_test_clip_is_a_warning_and_keeps_its_row(stand_in_counts, kit, unpacked_competition, tmp_path,
                                                            capfd):
    copy = shutil.copytree(unpacked_competition, tmp_path / "copy")
    fname = csv_rows(copy / "sample_submission.csv")[0]["fname"]
    (copy / "audio_test" / fname).unlink()

    assert main(["data", "--from", str(copy)]) == 0  # a submission can still be made

    err = capfd.readouterr().err
    assert f"line 2: listed test clip missing: '{dest_of(kit) / 'audio_test' / fname}'" in err
    assert "they get a blank input and still a row in the submission" in err
    assert data.is_verified(dest_of(kit))
