"""The feature cache (`make features`): every clip of a split computed once, packed, kept current.

Layout of one cache, `features/<dataset>/<kind>-<hash>/`, the hash covering exactly the parameters
that change the output (`FeatureConfig.output_params`):

    params.json                 the parameters
    <split>/frames.npy          all clips of a split packed end to end, float16 (frames, bins), memory-mappable
    <split>/index.csv           fname, start, length (rows of frames.npy), failed (1 = blank input), crc
    <split>/failures.json       {fname: why it could not be decoded} for the failed clips
    <split>/notes.json          {fname: what to know about its decoding} (cut, shorter than its header)
    <split>/integrity.json      what the split's files were when written (store.py checks them)
    <split>/manifest.json       {fname: source size+mtime} the pack was built from (a warm rerun compares only this)
    train/stats.npz             per-bin mean and std over all train frames (input normalisation)
    clips/<split>/*.records     while a build runs: the clips computed so far, one file per worker

Clips are computed in worker processes (one BLAS/OpenMP thread each), each decoded once for all the
caches a run builds (`make features` builds one per experiment). A worker appends each clip's
features to a record file of its own (records.py), framed with a length and a CRC-32. A run killed
at any moment leaves whole records and at most one torn one per file, which the CRC rejects. A rerun
takes every clip still current from the packed split and the whole records, computes the rest, and
repacks (each split moved into place at once), giving byte for byte the cache an uninterrupted run
gives; then the record files are deleted. Packing streams clip by clip into a memory-mapped file, so
memory does not grow with the dataset.
A clip that cannot be decoded (or whose features are not finite) is an error in the train split; in
the test split it gets a blank (silent) input, is listed in a warning, and still gets a row in the
submission. Every split is checked when opened (sizes, shape, small files); with `verify` (training,
`make features --verify`) every clip's CRC too. A damaged split is named and rebuilt, never used.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from competition.config import FeatureConfig
from competition.errors import KitError
from competition.features.band import below_rate_notes
from competition.features.dsp import blank_features, compute_features, decode
from competition.features.records import (
    RECORD_SUFFIX,
    ClipRecord,
    append_record,
    close_record_files,
    read_records,
)
from competition.features.store import (
    INTEGRITY,
    CacheDamaged,
    FeatureStore,
    check_integrity,
    decoding_notes,
    failure_reasons,
    file_crc,
    npy_header,
    verify_clips,
)
from competition.features.workers import available_cores, prepare_worker
from competition.workspace import Workspace, atomic_write_text, replace_dir

MISSING_SIGNATURE = "0-missing"
# Values converted to float64 at a time for the input statistics (1 MB).
STATS_CHUNK_VALUES = 1 << 17


class FeatureError(KitError, RuntimeError):
    pass


def source_signature(path: str) -> str:
    """Size and modification time: what a warm rerun compares. A missing file (a test clip the
    dataset lists but lacks) has its own signature, so it is computed again once it appears."""
    try:
        stat = os.stat(path)
    except OSError:
        return MISSING_SIGNATURE
    return f"{stat.st_size}-{stat.st_mtime_ns}"


def cache_dir(workspace: Workspace, dataset: str, config: FeatureConfig) -> Path:
    return workspace.features / dataset / config.key


def _compute_clip(job: tuple) -> list[tuple[Path, str, ClipRecord]]:
    """Features of one file for every cache that lacks them, decoding it once per sample rate; each
    appended to this process's record file of that cache. Returns [(clips_dir, fname, record)]."""
    from competition.audio import AudioError

    fname, source, signature, targets, owner = job
    decoded: dict[tuple, tuple[np.ndarray | None, str, list[str]]] = {}
    written = []
    for clips_dir, params in targets:
        config = FeatureConfig(**params)
        decoding = (config.sample_rate, config.max_seconds)
        if decoding not in decoded:
            notes: list[str] = []
            try:
                decoded[decoding] = (decode(source, config, notes), "", notes)
            except AudioError as problem:
                decoded[decoding] = (None, str(problem), notes)
        signal_, error, notes = decoded[decoding]
        features = blank_features(config) if error else compute_features(signal_, config)
        if not error and not np.isfinite(features.astype(np.float16)).all():
            # Never cache what training cannot use: the clip is handled as one that cannot be decoded.
            error = f"{source}: features are not finite (NaN or inf) in float16"
            features = blank_features(config)
        written.append((clips_dir, fname, append_record(clips_dir, owner, fname, signature, features, error,
                                                        "\n".join(f"{source}: {note}" for note in notes))))
    return written


def compute_clips(table: pd.DataFrame, caches: dict[Path, FeatureConfig], found: dict[Path, dict[str, ClipRecord]],
                  *, signatures: dict[str, str], workers: int, desc: str) -> None:
    """Compute every clip missing from `found` ({clips_dir: {fname: record}}) for the caches
    ({clips_dir: config}), each source decoded once for all of them; adds the new records to `found`."""
    from tqdm import tqdm

    owner = os.getpid()
    jobs = []
    for fname, source in zip(table["fname"], table["path"]):
        targets = [(clips_dir, config.__dict__) for clips_dir, config in caches.items()
                   if fname not in found[clips_dir]]
        if targets:
            size = int(signatures[fname].split("-")[0])
            jobs.append((size, (fname, source, signatures[fname], targets, owner)))
    # Longest first (file size, the signature's first part, stands for length), so no long clip is
    # left alone on one core at the end.
    jobs = [job for _, job in sorted(jobs, key=lambda sized: -sized[0])]
    if not jobs:
        return
    for clips_dir in caches:
        clips_dir.mkdir(parents=True, exist_ok=True)
    progress = tqdm(total=len(jobs), desc=desc, unit="clip", file=sys.stderr, dynamic_ncols=True)

    def collect(written):
        for clips_dir, fname, record in written:
            found[clips_dir][fname] = record
        progress.update()

    if workers > 1 and len(jobs) > 1:
        import multiprocessing

        # Import the decoder and build the filterbanks once here, so forked workers start warm.
        import competition.audio  # noqa: F401

        for config in caches.values():
            blank_features(config)
        import gc

        # fork: workers inherit the imported modules instead of importing them again. Everything the
        # parent holds is frozen out of the workers' garbage collection first: a worker that collected
        # an inherited TensorFlow object (when this runs after TensorFlow was loaded) could abort.
        gc.freeze()
        try:
            with multiprocessing.get_context("fork").Pool(workers, initializer=prepare_worker) as pool:
                for written in pool.imap_unordered(_compute_clip, jobs, chunksize=4):
                    collect(written)
        finally:
            gc.unfreeze()
    else:
        from threadpoolctl import threadpool_limits

        # In this process only for the loop: the variables stay as they are for what runs next
        # (training sets its own threads).
        try:
            with threadpool_limits(1):
                for job in jobs:
                    collect(_compute_clip(job))
        finally:
            close_record_files()
    progress.close()


def _packed_clips(split_dir: Path, signatures: dict[str, str]) -> dict[str, ClipRecord]:
    """The clips of an earlier packed split (from a build before some audio changed) still current."""
    if not _has_current_layout(split_dir):
        return {}
    try:
        check_integrity(split_dir)
    except CacheDamaged:
        return {}  # nothing of a damaged pack is reused
    manifest = json.loads((split_dir / "manifest.json").read_text())
    failures = json.loads((split_dir / "failures.json").read_text())
    notes = json.loads((split_dir / "notes.json").read_text())
    index = pd.read_csv(split_dir / "index.csv", dtype={"fname": str})
    (_, bins), _, _, data_offset = npy_header(split_dir / "frames.npy")
    frames_path = str(split_dir / "frames.npy")
    return {fname: ClipRecord(frames_path, data_offset + 2 * bins * int(start), int(length), bins,
                              failures.get(fname, ""), notes.get(fname, ""), int(crc))
            for fname, start, length, crc in zip(index["fname"], index["start"], index["length"], index["crc"])
            if signatures.get(fname) == manifest.get(fname)}


def cached_clips(split_dir: Path, clips_dir: Path, signatures: dict[str, str]) -> dict[str, ClipRecord]:
    """{fname: record} of every clip already computed for these sources: in the packed split, or in
    record files that interrupted builds left in clips_dir."""
    found = _packed_clips(split_dir, signatures)
    for path in sorted(clips_dir.glob(f"*{RECORD_SUFFIX}")) if clips_dir.is_dir() else []:
        for fname, signature, record in read_records(path):
            if signatures.get(fname) == signature:
                found[fname] = record
    return found


def _bin_stats(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin mean and std of (frames, bins) in float64, a bounded chunk at a time."""
    total = np.zeros(frames.shape[1], np.float64)
    total_sq = np.zeros(frames.shape[1], np.float64)
    rows = max(1, STATS_CHUNK_VALUES // max(frames.shape[1], 1))
    for start in range(0, len(frames), rows):
        chunk = frames[start:start + rows].astype(np.float64)
        total += chunk.sum(axis=0)
        total_sq += np.einsum("ij,ij->j", chunk, chunk)
    count = max(len(frames), 1)
    mean = total / count
    return mean, np.sqrt(np.maximum(total_sq / count - mean ** 2, 1e-8))


def _save_npz_reproducibly(path: Path, **arrays: np.ndarray) -> None:
    """np.savez stamps each member with the current time; a fixed stamp makes reruns byte-identical."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            with archive.open(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), "w") as member:
                np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)


def pack_split(table: pd.DataFrame, records: dict[str, ClipRecord], split_dir: Path, signatures: dict[str, str],
               *, with_stats: bool) -> None:
    """Concatenate the clips of a split, in the table's order, into one memory-mappable array, atomically."""
    clips = [records[f] for f in table["fname"]]
    lengths = np.array([clip.frames for clip in clips], dtype=np.int64)
    bins = clips[0].bins
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    tmp_dir = split_dir.with_name(f".{split_dir.name}.tmp.{os.getpid()}")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    tmp_dir.mkdir(parents=True)
    try:
        _write_pack(table, clips, lengths, starts, bins, tmp_dir, split_dir, signatures, with_stats=with_stats)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)  # a full disk leaves no half-written pack behind
        raise
    replace_dir(tmp_dir, split_dir)


def _write_pack(table: pd.DataFrame, clips: list[ClipRecord], lengths: np.ndarray, starts: np.ndarray, bins: int,
                tmp_dir: Path, split_dir: Path, signatures: dict[str, str], *, with_stats: bool) -> None:
    frames = np.lib.format.open_memmap(tmp_dir / "frames.npy", mode="w+", dtype=np.float16,
                                       shape=(int(lengths.sum()), bins))
    crcs = []
    for fname, clip, start, length in zip(table["fname"], clips, starts, lengths):
        data = clip.read()
        crc = zlib.crc32(data.data)
        if clip.crc is not None and crc != clip.crc:
            shutil.rmtree(split_dir, ignore_errors=True)  # the earlier pack it came from: rebuilt next time
            raise FeatureError(f"{clip.path}: clip {fname!r} differs from what was written (CRC-32); the damaged "
                               f"pack {split_dir} was removed, run the step again to rebuild it")
        frames[start:start + length] = data
        crcs.append(crc)
    if with_stats:
        mean, std = _bin_stats(frames)
        _save_npz_reproducibly(tmp_dir / "stats.npz", mean=mean.astype(np.float32), std=std.astype(np.float32))
    frames.flush()
    del frames
    pd.DataFrame({"fname": table["fname"].to_numpy(), "start": starts, "length": lengths,
                  "failed": [int(bool(clip.error)) for clip in clips], "crc": crcs}
                 ).to_csv(tmp_dir / "index.csv", index=False)
    failures = {f: clip.error for f, clip in zip(table["fname"], clips) if clip.error}
    (tmp_dir / "failures.json").write_text(json.dumps(failures, indent=1, sort_keys=True))
    notes = {f: clip.notes for f, clip in zip(table["fname"], clips) if clip.notes}
    (tmp_dir / "notes.json").write_text(json.dumps(notes, indent=1, sort_keys=True))
    (tmp_dir / "manifest.json").write_text(json.dumps(signatures, sort_keys=True))
    # What training reads besides frames.npy (the JSON files name paths, so differ between workspaces).
    small_files = ["index.csv"] + (["stats.npz"] if with_stats else [])
    integrity = {"frames_bytes": (tmp_dir / "frames.npy").stat().st_size, "rows": int(lengths.sum()), "bins": bins,
                 "crc": {name: file_crc(tmp_dir / name) for name in small_files}}
    (tmp_dir / INTEGRITY).write_text(json.dumps(integrity, indent=1, sort_keys=True))


def _pid_is_running(pid: int) -> bool:
    """True for a live process; a killed worker can linger as a zombie until something reaps it."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _remove_leftovers(directory: Path) -> None:
    """Remove temporary files and folders of killed runs (their names end in the writer's pid);
    those of a run still going, e.g. `make train` building the same cache, are left alone."""
    for path in directory.glob(".*"):
        match = re.search(r"\.(?:tmp|old)\.(\d+)$", path.name)
        if match and not _pid_is_running(int(match.group(1))):
            shutil.rmtree(path, ignore_errors=True)
    for path in directory.glob("*.tmp"):
        match = re.search(r"\.(\d+)\.tmp$", path.name)
        if match and not _pid_is_running(int(match.group(1))):
            path.unlink(missing_ok=True)


def _remove_packed_records(clips_dir: Path) -> None:
    """Delete what a pack has consumed: this run's record files and those of runs no longer alive (and
    anything else there, such as an earlier layout's files). A run still going (e.g. `make train`
    building the same cache) keeps its own, named by its pid."""
    for path in clips_dir.iterdir():
        owner = path.name.split("-")[0]
        if (path.name.endswith(RECORD_SUFFIX) and owner.isdigit() and int(owner) != os.getpid()
                and _pid_is_running(int(owner))):
            continue
        path.unlink(missing_ok=True)


def build_features(workspace: Workspace, dataset: str, splits: dict[str, pd.DataFrame],
                   config: FeatureConfig, *, workers: int | None = None, verify: bool = False
                   ) -> dict[str, FeatureStore]:
    """Make sure every split's cache is complete, current and undamaged; return the opened stores."""
    return build_feature_sets(workspace, dataset, splits, [config], workers=workers, verify=verify)[config.key]


def build_feature_sets(workspace: Workspace, dataset: str, splits: dict[str, pd.DataFrame],
                       configs: list[FeatureConfig], *, workers: int | None = None, verify: bool = False
                       ) -> dict[str, dict[str, FeatureStore]]:
    """The caches of several feature configs in one pass, each clip decoded once for all of them
    (`make features` with a log-mel and an MFCC experiment decodes the audio once, not twice).
    With `verify`, every clip of a current cache is checked against its CRC. Returns
    {config.key: {split: store}}."""
    configs = list({config.key: config for config in configs}.values())
    workers = workers or available_cores()
    roots = {config.key: cache_dir(workspace, dataset, config) for config in configs}
    for config in configs:
        params = roots[config.key] / "params.json"
        if not params.exists():
            atomic_write_text(params, json.dumps(config.output_params(), indent=1, sort_keys=True))
    stores: dict[str, dict[str, FeatureStore]] = {config.key: {} for config in configs}
    for split in ("train", *[name for name in splits if name != "train"]):  # train first: its stats serve all
        table = splits.get(split)
        if table is None or table.empty:
            continue
        signatures = {f: source_signature(p) for f, p in zip(table["fname"], table["path"])}
        for config in configs:
            _discard_if_damaged(roots[config.key] / split, signatures, verify)
        stale = [config for config in configs if not _pack_is_current(roots[config.key] / split, signatures)]
        if stale:
            for note in below_rate_notes(table, dataset, split, stale):
                print(note, file=sys.stderr)
            for config in stale:
                _remove_leftovers(roots[config.key])
            caches = {roots[config.key] / "clips" / split: config for config in stale}
            kinds = "+".join(dict.fromkeys(config.kind for config in stale))
            _compute_and_pack(table, split, caches, signatures, workers, desc=f"{dataset} {kinds} {split}")
        for config in configs:
            # Also after a run killed between packing and this clean-up, whose pack is current.
            clips_dir = roots[config.key] / "clips" / split
            if clips_dir.is_dir():
                _remove_packed_records(clips_dir)
        failed, notes = {}, {}
        for config in configs:
            store = stores[config.key][split] = FeatureStore.open(roots[config.key] / split)
            failed.update(failure_reasons(store))
            notes.update(decoding_notes(store))
        if failed:
            listing = "\n".join(f"  {error}" for error in failed.values())
            print(f"warning: {len(failed)} {split} clip(s) could not be decoded; they get a blank input "
                  f"and still a row in the submission:\n{listing}", file=sys.stderr)
        if notes:
            lines = [line for text in notes.values() for line in text.splitlines()]
            listing = "\n".join(f"  {line}" for line in lines[:NOTES_SHOWN])
            more = f"\n  ... and {len(lines) - NOTES_SHOWN} more" if len(lines) > NOTES_SHOWN else ""
            print(f"note: {len(notes)} {split} clip(s) were not decoded whole:\n{listing}{more}", file=sys.stderr)
    return stores


NOTES_SHOWN = 20  # decoding notes listed by name; the rest are counted


def _discard_if_damaged(split_dir: Path, signatures: dict[str, str], verify: bool) -> None:
    """A current pack that fails its checks is said and removed, so it is computed again."""
    if not _pack_is_current(split_dir, signatures):
        return
    try:
        check_integrity(split_dir)
        if verify:
            verify_clips(split_dir)
    except CacheDamaged as damage:
        print(f"warning: damaged feature cache, rebuilding it: {damage}", file=sys.stderr)
        shutil.rmtree(split_dir)


# Tries at computing and packing a split: another build of the same cache running beside this one
# (`make train` while `make features` runs) may pack first and delete record files this one meant to
# read; the next try finds those clips in its pack.
PACK_ATTEMPTS = 3


def _compute_and_pack(table: pd.DataFrame, split: str, caches: dict[Path, FeatureConfig],
                      signatures: dict[str, str], workers: int, desc: str) -> None:
    """Compute the clips the caches ({clips_dir: config}) lack, then pack each cache's split."""
    for attempt in range(PACK_ATTEMPTS):
        caches = {clips_dir: config for clips_dir, config in caches.items()
                  if not _pack_is_current(clips_dir.parent.parent / split, signatures)}
        found = {clips_dir: cached_clips(clips_dir.parent.parent / split, clips_dir, signatures)
                 for clips_dir in caches}
        compute_clips(table, caches, found, signatures=signatures, workers=workers, desc=desc)
        try:
            for clips_dir in caches:
                failed = [record.error for record in found[clips_dir].values() if record.error]
                if failed and split == "train":
                    listing = "\n".join(f"  {error}" for error in failed[:20])
                    raise FeatureError(f"{len(failed)} train clip(s) could not be decoded; fix them or remove "
                                       f"them from the dataset's CSV:\n{listing}")
                pack_split(table, found[clips_dir], clips_dir.parent.parent / split, signatures,
                           with_stats=(split == "train"))
            return
        except FileNotFoundError:
            if attempt == PACK_ATTEMPTS - 1:
                raise


def _has_current_layout(split_dir: Path) -> bool:
    # A pack without these is from one of the kit's earlier cache layouts: rebuilt once.
    return all((split_dir / name).exists() for name in ("failures.json", "notes.json", INTEGRITY, "manifest.json"))


def _pack_is_current(split_dir: Path, signatures: dict[str, str]) -> bool:
    return _has_current_layout(split_dir) and json.loads((split_dir / "manifest.json").read_text()) == signatures
