"""Obtaining datasets (`make data`): `data/<dataset>/`, raw and verified.

A dataset is obtained once: from a local copy (`FROM=DIR`: the entry's own local-copy rule, else a
link, never a copy) or from its public source (the entry's fetcher), then verified by indexing it
(every listed file present, every label in the vocabulary, no duplicate fname) and reading every
file's header. `data/.<dataset>.verified.json` records the result, so a rerun on a verified copy
does nothing; it sits beside the dataset's folder, not in it, because a linked copy may be read-only.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from competition.datasets.registry import get_dataset
from competition.datasets.spec import Dataset, DatasetError, Problems, check_counts, check_readable, missing_files
from competition.workspace import Workspace, atomic_write_text


def marker_path(root: Path) -> Path:
    return root.parent / f".{root.name}.verified.json"


def verify(dataset: Dataset, root: Path) -> dict:
    index = dataset.index(root)
    check_counts(dataset, index, root)
    unreadable_train = Problems(root / "train clips")
    check_readable(unreadable_train, index.train)
    unreadable_train.raise_if_any()
    # A test clip that cannot be read is handled as in every later step: said, a blank input, its row kept.
    unreadable_test = Problems(root / "test clips")
    check_readable(unreadable_test, index.test[~missing_files(index.test)])
    unreadable_test.warn_if_any("they get a blank input and still a row in the submission")
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
