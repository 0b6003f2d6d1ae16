"""Obtaining datasets (`make data`): `data/<dataset>/`, raw and verified.

A dataset is obtained once: from a local copy (`FROM=DIR`, linked, not copied) or from its public
source (the registry entry's fetcher), then verified by indexing it (every listed file present,
every label in the vocabulary, no duplicate fname). `data/.<dataset>.verified.json` records the
result, so a rerun on a verified copy does nothing; it sits beside the dataset's folder, not in
it, because a linked copy may be read-only.

Public downloads (ESC-50's GitHub archive, UrbanSound8K on Zenodo) go to `data/.<dataset>.download/`
and move into place only once downloaded and unpacked; offline they fail within seconds, saying how
to pass a local copy instead.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from competition.datasets import Dataset, DatasetError, check_counts, check_readable, get_dataset
from competition.workspace import Workspace, atomic_write_text

ESC50_URL = "https://github.com/karolpiczak/ESC-50/archive/master.zip"
URBANSOUND8K_URL = "https://zenodo.org/records/1203745/files/UrbanSound8K.tar.gz"
NETWORK_TIMEOUT_SECONDS = 10  # for the host name lookup, the connection and each read


def marker_path(root: Path) -> Path:
    return root.parent / f".{root.name}.verified.json"


def verify(dataset: Dataset, root: Path) -> dict:
    index = dataset.index(root)
    check_counts(dataset, index, root)
    check_readable([*index.train["path"], *index.test["path"]], root)
    summary = {"dataset": dataset.name, "train_clips": len(index.train), "test_clips": len(index.test),
               "labels": int(index.train["label"].nunique()), "verified_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    atomic_write_text(marker_path(root), json.dumps(summary, indent=1))
    return summary


def is_verified(root: Path) -> bool:
    return marker_path(root).is_file()


def link_local_copy(source: Path, dest: Path) -> None:
    """Point data/<dataset> at a copy the user already has (a symlink: no duplicate gigabytes)."""
    source = source.resolve()
    if not source.is_dir():
        raise DatasetError(f"{source}: FROM folder not found")
    if dest.is_symlink() or dest.exists():
        if dest.resolve() == source:
            return
        raise DatasetError(f"{dest} already exists and is not {source}; remove it to use the new copy")
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(source, dest, target_is_directory=True)


def download_esc50(dest: Path) -> None:
    """ESC-50 (and so ESC-10) from its GitHub archive, about 600 MB; its ESC-50-master/ becomes dest."""
    _download_and_unpack(ESC50_URL, dest, archive_folder="ESC-50-master",
                         local_copy="meta/esc50.csv and audio/, e.g. an unzipped ESC-50-master")


def download_urbansound8k(dest: Path) -> None:
    """UrbanSound8K from Zenodo, about 6 GB; its UrbanSound8K/ becomes dest."""
    _download_and_unpack(URBANSOUND8K_URL, dest, archive_folder="UrbanSound8K",
                         local_copy="UrbanSound8K/, or its metadata/ and audio/fold1..fold10/")


def _download_and_unpack(url: str, dest: Path, *, archive_folder: str, local_copy: str) -> None:
    if dest.is_symlink() or dest.exists():
        raise DatasetError(f"{dest} exists but did not verify; fix it, or remove it to download afresh")
    hint = (f"to use a copy downloaded elsewhere: make data DATASET={dest.name} FROM=DIR "
            f"(DIR holds {local_copy})")
    work = dest.with_name(f".{dest.name}.download")
    archive = work / url.rsplit("/", 1)[-1]
    if not archive.is_file():  # a complete archive from an interrupted earlier run is reused
        _download(url, archive, hint)
    unpacked = work / "unpacked"
    shutil.rmtree(unpacked, ignore_errors=True)
    print(f"unpacking {archive}", flush=True)
    if archive.name.endswith(".zip"):
        import zipfile

        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(unpacked)
    else:
        import tarfile

        with tarfile.open(archive) as tarred:
            tarred.extractall(unpacked, filter="data")
    if not (unpacked / archive_folder).is_dir():
        raise DatasetError(f"{archive}: holds no {archive_folder}/ folder; delete it and rerun, or {hint}")
    os.replace(unpacked / archive_folder, dest)
    shutil.rmtree(work)


def _download(url: str, target: Path, hint: str) -> None:
    """Stream url to target (via target.part, renamed when complete), with a progress bar."""
    import urllib.error
    import urllib.request

    from tqdm import tqdm

    _resolve_host(url, hint)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    print(f"downloading {url}", flush=True)
    try:
        with urllib.request.urlopen(url, timeout=NETWORK_TIMEOUT_SECONDS) as response, open(part, "wb") as out:
            size = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=size, unit="B", unit_scale=True, desc=target.name) as progress:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    progress.update(len(chunk))
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", None) or error
        raise DatasetError(f"cannot download {url} ({reason}); {hint}") from None
    if size is not None and part.stat().st_size != size:
        raise DatasetError(f"{url}: download ended after {part.stat().st_size} of {size} bytes; rerun, or {hint}")
    os.replace(part, target)


def _resolve_host(url: str, hint: str) -> None:
    """Look the host up in a thread: urllib's timeout does not cover name lookup, which a blocked
    resolver can stretch to minutes."""
    import socket
    import threading
    import urllib.parse

    host = urllib.parse.urlsplit(url).hostname
    outcome: dict[str, BaseException | None] = {}

    def look_up():
        try:
            socket.getaddrinfo(host, None)
            outcome["error"] = None
        except OSError as error:
            outcome["error"] = error

    thread = threading.Thread(target=look_up, daemon=True)
    thread.start()
    thread.join(NETWORK_TIMEOUT_SECONDS)
    if "error" not in outcome:
        raise DatasetError(f"cannot download {url} (no answer for {host} within {NETWORK_TIMEOUT_SECONDS} s); {hint}")
    if outcome["error"] is not None:
        raise DatasetError(f"cannot download {url} (cannot resolve {host}: {outcome['error']}); {hint}")


def obtain(workspace: Workspace, name: str, *, from_dir: Path | None = None) -> Path:
    dataset = get_dataset(name)
    dest = workspace.dataset_dir(name)
    if from_dir is not None:
        (dataset.local_copy or link_local_copy)(Path(from_dir), dest)
    elif is_verified(dest):
        return dest
    elif dataset.fetcher is None:
        raise DatasetError(f"{name} has no public download; pass a local copy: make data DATASET={name} FROM=DIR")
    else:
        dataset.fetcher(dest)
    summary = verify(dataset, dest)
    print(f"{name}: {summary['train_clips']} train clips, {summary['test_clips']} test clips, "
          f"{summary['labels']} labels")
    return dest
