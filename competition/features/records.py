"""The record file format: computed clips appended to one file per worker, framed and checksummed.

One clip's features in a record file: header, "fname\nsignature", the decoding error (empty if none),
notes on the decoding (a clip cut to max_seconds, a file shorter than its header says; empty if
none), float16 (frames, bins) data, then a CRC-32 of all of it. One file per worker instead of one per clip,
as creating a file costs as much as decoding a WAV clip (`make bench` measures the build). A record
cut short by a kill, or damaged, fails its length or CRC check and is ignored with everything after
it in its file.
"""

from __future__ import annotations

import io
import os
import secrets
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RECORD_MAGIC = b"KFR2"  # KFR1 records (no notes) are not read: their clips are computed again
_RECORD_HEADER = struct.Struct("<4sIIIII")  # magic, key bytes, error bytes, notes bytes, frames, bins
_RECORD_CRC = struct.Struct("<I")
RECORD_SUFFIX = ".records"


@dataclass(frozen=True)
class ClipRecord:
    """Where one computed clip's features lie: in a record file, or in an earlier packed split."""

    path: str       # the record file or packed frames.npy
    offset: int     # byte offset of the float16 data in it
    frames: int
    bins: int
    error: str      # why the clip could not be decoded (its features are a blank input); "" if it could
    notes: str = ""  # what the user should know about its decoding, one per line; "" if nothing
    crc: int | None = None  # CRC-32 of the float16 bytes, where a packed split recorded it

    def read(self) -> np.ndarray:
        return np.fromfile(self.path, np.float16, count=self.frames * self.bins,
                           offset=self.offset).reshape(self.frames, self.bins)


# This process's open record files: {clips folder: file}. Each process appends to files of its own,
# so no two writers ever share a file.
_record_files: dict[Path, io.BufferedWriter] = {}
_record_files_pid = os.getpid()


def append_record(clips_dir: Path, owner: int, fname: str, signature: str, features: np.ndarray,
                  error: str, notes: str = "") -> ClipRecord:
    """Append one clip's record to this process's record file in clips_dir (created on first use and
    named `<owner pid>-<writer pid>-<nonce>.records`), flushed before returning."""
    global _record_files_pid
    if _record_files_pid != os.getpid():  # a forked worker: its parent's files are not its own
        _record_files.clear()
        _record_files_pid = os.getpid()
    handle = _record_files.get(clips_dir)
    if handle is None:
        name = f"{owner}-{os.getpid()}-{secrets.token_hex(4)}{RECORD_SUFFIX}"
        handle = _record_files[clips_dir] = open(clips_dir / name, "wb")
    data = np.ascontiguousarray(features, dtype=np.float16)
    key, error_bytes, note_bytes = f"{fname}\n{signature}".encode(), error.encode(), notes.encode()
    header = _RECORD_HEADER.pack(RECORD_MAGIC, len(key), len(error_bytes), len(note_bytes), *data.shape)
    offset = handle.tell() + len(header) + len(key) + len(error_bytes) + len(note_bytes)
    handle.write(b"".join((header, key, error_bytes, note_bytes, data.tobytes(),
                           _RECORD_CRC.pack(_record_crc(header, key, error_bytes, note_bytes, data)))))
    handle.flush()
    return ClipRecord(handle.name, offset, data.shape[0], data.shape[1], error, notes)


def _record_crc(*parts) -> int:
    crc = 0
    for part in parts:
        crc = zlib.crc32(part, crc)
    return crc


def close_record_files() -> None:
    for handle in _record_files.values():
        handle.close()
    _record_files.clear()


def read_records(path: Path):
    """(fname, signature, ClipRecord) of every whole record of a record file, in order; stops at the
    first record that is cut short or fails its CRC (a writer killed mid-record)."""
    with open(path, "rb") as handle:
        while True:
            header = handle.read(_RECORD_HEADER.size)
            if len(header) < _RECORD_HEADER.size:
                return
            magic, key_length, error_length, notes_length, frames, bins = _RECORD_HEADER.unpack(header)
            if magic != RECORD_MAGIC:
                return
            key, error, notes = handle.read(key_length), handle.read(error_length), handle.read(notes_length)
            offset = handle.tell()
            data = handle.read(2 * frames * bins)
            crc = handle.read(_RECORD_CRC.size)
            if (len(crc) < _RECORD_CRC.size
                    or _RECORD_CRC.unpack(crc)[0] != _record_crc(header, key, error, notes, data)):
                return
            fname, signature = key.decode().rsplit("\n", 1)
            yield fname, signature, ClipRecord(str(path), offset, frames, bins, error.decode(), notes.decode())
