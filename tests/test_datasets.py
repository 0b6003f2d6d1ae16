"""The dataset registry: every entry indexes its official layout, rejects bad CSVs with a clear
message, and `make data` links a local copy or downloads (offline: fails fast, saying FROM=DIR)."""

from __future__ import annotations

import http.server
import io
import os
import socket
import stat
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from layouts import make_esc50, make_kaggle_layout, make_urbansound8k

from competition.datasets import esc50, urbansound8k
from competition.datasets import obtain as data
from competition.datasets.esc50 import ESC10_LABELS
from competition.datasets.esc50 import LABELS as ESC50_LABELS
from competition.datasets.freesound import LABELS as FREESOUND_LABELS
from competition.datasets.registry import dataset_names, get_dataset
from competition.datasets.spec import TEST_COLUMNS, TRAIN_COLUMNS, DatasetError
from competition.datasets.urbansound8k import LABELS as URBANSOUND8K_LABELS
from competition.workspace import Workspace


def _demo_labels():
    from competition.datasets.demo import LABELS as DEMO_LABELS
    return DEMO_LABELS


# Per entry: how to write a small copy, and its train CSV with the columns that hold fname and label.
LAYOUTS = {
    "freesound-audio-tagging": (lambda root: make_kaggle_layout(root, FREESOUND_LABELS), "train.csv",
                                "fname", "label"),
    "demo": (lambda root: make_kaggle_layout(root, _demo_labels()), "train.csv", "fname", "label"),
    "urbansound8k": (make_urbansound8k, "UrbanSound8K/metadata/UrbanSound8K.csv", "slice_file_name", "class"),
    "esc50": (make_esc50, "meta/esc50.csv", "filename", "category"),
    "esc10": (make_esc50, "meta/esc50.csv", "filename", "category"),
}


def test_every_registry_entry_has_a_layout_test():
    assert set(dataset_names()) == set(LAYOUTS)


@pytest.mark.parametrize("name", LAYOUTS)
def test_entry_indexes_its_layout_into_the_common_table(name, tmp_path):
    make, *_ = LAYOUTS[name]
    dataset = get_dataset(name)
    index = dataset.index(make(tmp_path / name))
    assert list(index.train.columns) == TRAIN_COLUMNS and list(index.test.columns) == TEST_COLUMNS
    assert len(index.train) > 0 and index.train["fname"].is_unique
    assert index.train["label"].isin(dataset.labels).all()
    assert all(Path(p).is_file() for p in index.train["path"])
    assert len(set(dataset.labels)) == len(dataset.labels)
    assert dataset.metric in ("map@3", "accuracy") and dataset.fold_rule in ("stratified", "predefined")


def test_urbansound8k_keeps_its_folds_and_skips_the_absent_ones(tmp_path, capsys):
    root = make_urbansound8k(tmp_path, folds_with_audio=(1, 2, 5))
    dataset = get_dataset("urbansound8k")
    index = dataset.index(root)
    assert dataset.metric == "accuracy" and dataset.fold_rule == "predefined"
    assert sorted(index.train["fold"].unique()) == [1, 2, 5]  # the dataset's own numbers, not 0..k-1
    assert len(index.train) == 6 and index.test.empty
    assert "fold(s) 3, 4, 6, 7, 8, 9, 10 absent" in capsys.readouterr().err
    row = index.train.iloc[0]
    assert Path(row["path"]) == root / "UrbanSound8K" / "audio" / f"fold{row['fold']}" / row["fname"]
    assert row["label"] == URBANSOUND8K_LABELS[int(row["fname"].split("-")[1])]


def test_urbansound8k_accepts_its_own_folder_or_the_one_holding_it(tmp_path):
    root = make_urbansound8k(tmp_path, folds_with_audio=(1,))
    dataset = get_dataset("urbansound8k")
    outer, inner = dataset.index(root).train, dataset.index(root / "UrbanSound8K").train
    pd.testing.assert_frame_equal(outer, inner)


def test_urbansound8k_without_any_fold_audio_is_an_error(tmp_path):
    root = make_urbansound8k(tmp_path, folds_with_audio=())
    with pytest.raises(DatasetError, match="no fold1..fold10 folder"):
        get_dataset("urbansound8k").index(root)


def test_a_folder_without_the_metadata_names_what_it_looked_for(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="meta/esc50.csv nor ESC-50-master/meta/esc50.csv"):
        get_dataset("esc50").index(tmp_path / "empty")


def test_esc50_and_esc10(tmp_path):
    root = make_esc50(tmp_path / "ESC-50-master")
    table = pd.read_csv(root / "meta" / "esc50.csv")
    esc50, esc10 = get_dataset("esc50").index(tmp_path).train, get_dataset("esc10").index(root).train
    assert len(esc50) == len(table) and len(esc10) == int(table["esc10"].sum()) < len(table)
    assert set(esc10["label"]) <= set(ESC10_LABELS) and set(esc10["fname"]) < set(esc50["fname"])
    assert sorted(esc50["fold"].unique()) == [1, 2, 3, 4, 5] and sorted(esc10["fold"].unique()) == [1, 2, 3, 4, 5]
    assert get_dataset("esc10").labels == ESC10_LABELS and get_dataset("esc50").labels == ESC50_LABELS
    assert list(ESC10_LABELS) == [label for label in ESC50_LABELS if label in ESC10_LABELS]


# ---------------------------------------------------------------- bad CSVs, every entry

def _edit_csv(csv_path: Path, edit) -> None:
    table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    edit(table)
    table.to_csv(csv_path, index=False)


def _first_row(name: str, table: pd.DataFrame) -> int:
    """The row the edits change: for esc10 one that is an ESC-10 row (others are filtered out)."""
    if name == "esc10":
        return int(table.index[table["esc10"] == "True"][0])
    return 0


@pytest.mark.parametrize("name", LAYOUTS)
def test_missing_audio_file_listed_in_the_csv(name, tmp_path):
    make, csv_name, fname_column, _ = LAYOUTS[name]
    root = make(tmp_path / name)
    table = pd.read_csv(root / csv_name, dtype=str)
    missing = next(root.rglob(table[fname_column].iloc[_first_row(name, table)]))
    missing.unlink()
    with pytest.raises(DatasetError, match=rf"{csv_name}: line \d+: listed audio file missing: '.*{missing.name}'"):
        get_dataset(name).index(root)


@pytest.mark.parametrize("name", LAYOUTS)
def test_label_not_in_the_vocabulary(name, tmp_path):
    make, csv_name, _, label_column = LAYOUTS[name]
    root = make(tmp_path / name)
    row = _first_row(name, pd.read_csv(root / csv_name, dtype=str))
    _edit_csv(root / csv_name, lambda table: table.__setitem__(label_column, table[label_column].where(
        table.index != row, "Theremin")))
    with pytest.raises(DatasetError,
                       match=rf"{csv_name}: line {row + 2}: label not in the vocabulary \(\d+ labels\): 'Theremin'"):
        get_dataset(name).index(root)


@pytest.mark.parametrize("name", LAYOUTS)
def test_duplicate_fname(name, tmp_path):
    make, csv_name, fname_column, _ = LAYOUTS[name]
    root = make(tmp_path / name)

    def duplicate_first_row(table):
        row = table.loc[[_first_row(name, table)]]
        table.loc[len(table)] = row.iloc[0]

    _edit_csv(root / csv_name, duplicate_first_row)
    with pytest.raises(DatasetError, match=rf"{csv_name}: line \d+: duplicate fname: '.+'"):
        get_dataset(name).index(root)


@pytest.mark.parametrize("name,id_column", [("urbansound8k", "classID"), ("esc50", "target"), ("esc10", "target")])
def test_class_id_that_contradicts_the_class_name(name, id_column, tmp_path):
    make, csv_name, _, _ = LAYOUTS[name]
    root = make(tmp_path / name)
    row = _first_row(name, pd.read_csv(root / csv_name, dtype=str))
    _edit_csv(root / csv_name, lambda table: table.__setitem__(id_column, table[id_column].where(
        table.index != row, "9" if table[id_column].iloc[row] != "9" else "8")))
    with pytest.raises(DatasetError,
                       match=rf"line {row + 2}: {id_column} does not match its label: {id_column} '\d' for label"):
        get_dataset(name).index(root)


@pytest.mark.parametrize("name,bad_fold", [("urbansound8k", "11"), ("esc50", "0"), ("esc10", "x")])
def test_fold_outside_the_dataset_folds(name, bad_fold, tmp_path):
    make, csv_name, _, _ = LAYOUTS[name]
    root = make(tmp_path / name)
    row = _first_row(name, pd.read_csv(root / csv_name, dtype=str))
    _edit_csv(root / csv_name, lambda table: table.__setitem__("fold", table["fold"].where(table.index != row,
                                                                                             bad_fold)))
    with pytest.raises(DatasetError, match=rf"line {row + 2}: fold not one of 1\.\.(10|5): '{bad_fold}'"):
        get_dataset(name).index(root)


# ---------------------------------------------------------------- make data

def test_make_data_links_a_read_only_copy_and_verifies_it(tmp_path, capsys):
    copy = make_urbansound8k(tmp_path / "downloads", folds_with_audio=(1, 2))
    for path in [copy, *copy.rglob("*")]:
        if path.is_dir():
            path.chmod(stat.S_IRUSR | stat.S_IXUSR)
    workspace = Workspace(tmp_path / "kit")
    try:
        dest = data.obtain(workspace, "urbansound8k", from_dir=copy)
        assert dest.is_symlink() and dest.resolve() == copy.resolve()
        assert data.is_verified(dest) and not list(copy.rglob("*.json"))  # marker beside, not inside
        assert "urbansound8k: 4 train clips, 0 test clips" in capsys.readouterr().out
        assert data.obtain(workspace, "urbansound8k") == dest  # verified: nothing to do
    finally:
        for path in [copy, *copy.rglob("*")]:
            if path.is_dir():
                path.chmod(stat.S_IRWXU)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("name,source", [("esc50", esc50), ("esc10", esc50), ("urbansound8k", urbansound8k)])
def test_offline_download_fails_fast_naming_the_local_copy_option(name, source, tmp_path, monkeypatch):
    monkeypatch.setattr(source, "URL", f"http://127.0.0.1:{_closed_port()}/archive.zip")
    started = time.monotonic()
    with pytest.raises(DatasetError, match=rf"cannot download .*; .*make data DATASET={name} FROM=DIR"):
        data.obtain(Workspace(tmp_path), name)
    assert time.monotonic() - started < 5
    assert not (tmp_path / "data" / name).exists()


def test_unresolvable_host_fails_with_the_same_advice(tmp_path, monkeypatch):
    monkeypatch.setattr(esc50, "URL", "https://no-such-host.invalid/master.zip")
    advice = r"(cannot resolve|no answer for) no-such-host.invalid.*make data DATASET=esc50 FROM=DIR"
    with pytest.raises(DatasetError, match=advice):
        data.obtain(Workspace(tmp_path), "esc50")


class _Archives(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}

    def do_GET(self):  # noqa: N802 (the handler's API)
        body = self.files.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args):
        pass


@pytest.fixture
def archive_server():
    """(base URL, {path: body}) of a local server; each test gets its own, empty, set of files."""
    handler = type("Archives", (_Archives,), {"files": {}})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler.files
    server.shutdown()
    server.server_close()


def test_download_esc50_from_its_archive(tmp_path, monkeypatch, archive_server):
    url, files = archive_server
    source = make_esc50(tmp_path / "src" / "ESC-50-master")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in source.rglob("*"):
            archive.write(path, path.relative_to(source.parent))
    files["/master.zip"] = buffer.getvalue()
    monkeypatch.setattr(esc50, "URL", f"{url}/master.zip")
    dest = data.obtain(Workspace(tmp_path / "kit"), "esc10")
    assert (dest / "meta" / "esc50.csv").is_file() and data.is_verified(dest)
    assert sorted(os.listdir(dest.parent)) == [".esc10.verified.json", "esc10"]  # download folder removed


def test_download_urbansound8k_from_its_archive(tmp_path, monkeypatch, archive_server):
    url, files = archive_server
    source = make_urbansound8k(tmp_path / "src", folds_with_audio=(1,))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(source / "UrbanSound8K", "UrbanSound8K")
    files["/UrbanSound8K.tar.gz"] = buffer.getvalue()
    monkeypatch.setattr(urbansound8k, "URL", f"{url}/UrbanSound8K.tar.gz")
    dest = data.obtain(Workspace(tmp_path / "kit"), "urbansound8k")
    assert (dest / "metadata" / "UrbanSound8K.csv").is_file() and data.is_verified(dest)
    assert len(get_dataset("urbansound8k").index(dest).train) == 2


def test_missing_archive_on_the_server_is_a_clear_error(tmp_path, monkeypatch, archive_server):
    url, _ = archive_server
    monkeypatch.setattr(esc50, "URL", f"{url}/gone.zip")
    with pytest.raises(DatasetError, match=r"cannot download .*gone.zip \(Not Found\)"):
        data.obtain(Workspace(tmp_path), "esc50")


@pytest.mark.realdata
@pytest.mark.parametrize("name,folder,clips", [("esc10", "esc50", 400), ("esc50", "esc50", 2000)])
def test_shared_esc10_copy_indexes(name, folder, clips):
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / folder
    if not shared.is_dir():
        pytest.skip(f"{shared} is absent (real data lives beside the checkout, not in it)")
    index = get_dataset(name).index(shared)
    assert len(index.train) == clips and sorted(index.train["fold"].unique()) == [1, 2, 3, 4, 5]
    assert index.train["source_id"].astype(bool).all()  # every clip names its Freesound recording
