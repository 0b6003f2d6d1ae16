"""The shared copies of the real recordings (../shared/data) as the kit's datasets and indexes, per protocol."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from benchmarks.quality.settings import Protocol
from competition.workspace import Workspace


def shared_source(shared: Path, protocol: Protocol) -> Path:
    """Where under `shared` the protocol's clips are: ESC-10 is the esc10 rows of the ESC-50 copy."""
    return shared / {"esc10": "esc50", "fsd-subset": "fsdkaggle2018-subset"}.get(protocol.dataset, protocol.dataset)


def shared_copy(shared: Path, protocol: Protocol, workspace: Workspace) -> Path | None:
    """The dataset's folder in the kit's layout, or None when ../shared does not hold it."""
    source = shared_source(shared, protocol)
    if protocol.dataset in ("esc10", "esc50"):
        # ESC-50's layout, read in place (the kit's esc10 entry keeps only the esc10 rows).
        return source if (source / "meta" / "esc50.csv").is_file() else None
    if not source.is_dir():
        return None
    # The shared copies are FLAC / Vorbis; their own scripts write the datasets' WAV layouts (files
    # already there are kept).
    wav = workspace.data / f"bench-{protocol.dataset}"
    script = {"urbansound8k": "urbansound8k-wav", "fsd-subset": "fsdkaggle2018-subset-wav"}[protocol.dataset]
    subprocess.run([sys.executable, str(shared.parent / "bin" / script), str(wav)], check=True,
                   stdout=subprocess.DEVNULL)
    if protocol.dataset == "fsd-subset":
        _link_freesound_ids(shared, wav)
    return wav


def _link_freesound_ids(shared: Path, wav: Path) -> None:
    """The competition's post-competition train CSV beside the subset's train.csv: the index then
    names each clip's Freesound recording (`source_id`), which the leakage guard checks."""
    from competition.datasets.freesound import TRAIN_SOURCES_CSV

    meta = shared / "fsdkaggle2018-meta" / TRAIN_SOURCES_CSV
    link = wav / TRAIN_SOURCES_CSV
    if meta.is_file() and not link.exists():
        link.symlink_to(meta.resolve())


def protocol_dataset(protocol: Protocol, root: Path):
    """The registry's entry; the FSD subset is the `demo` entry (Kaggle's layout) renamed, on its 10 labels."""
    from competition.datasets.registry import get_dataset

    if protocol.dataset != "fsd-subset":
        return get_dataset(protocol.dataset)
    demo = get_dataset("demo")
    present = set(demo.index(root).train["label"])
    return replace(demo, name="fsd-subset", labels=tuple(label for label in demo.labels if label in present),
                   fetcher=None, ground_truth=None, kaggle_competition=None,
                   description="200 real FSDKaggle2018 train clips, 10 instrument labels")


def protocol_index(dataset, root: Path, protocol: Protocol):
    from competition.datasets.spec import Index

    index = dataset.index(root)
    if protocol.seeds:
        return index
    train = index.train[index.train["fold"].isin(protocol.folds)].reset_index(drop=True)
    return Index(train, index.test)
