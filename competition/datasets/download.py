"""Public downloads of a dataset's archive (ESC-50's GitHub archive, UrbanSound8K on Zenodo).

An archive goes to `data/.<dataset>.download/` and its folder moves into place only once downloaded
and unpacked (a complete archive from an interrupted run is reused); offline a download fails within
seconds, saying how to pass a local copy instead.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from competition.datasets.spec import DatasetError

NETWORK_TIMEOUT_SECONDS = 10  # for the host name lookup, the connection and each read


def download_and_unpack(url: str, dest: Path, *, archive_folder: str, local_copy: str) -> None:
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
