"""The features kernel's output (`make kernel FOLDS=all`): the feature caches and folds of every
experiment, computed once on the CPU and read by every fold kernel, which then starts training at once.

The output is laid out as the kit's workspace is, so the same paths name it on both sides:

    features/<dataset>/<key>/    each feature cache the experiments use (its packed splits)
    folds/<dataset>/<rule>.csv   the folds of every (k, seed) the experiments use

A fold kernel finds it mounted read-only under /kaggle/input and takes it up into its own workspace
(`adopt_features`): every file linked, not copied. A cache records the audio it was computed from
(size and modification time of each clip); this session's mount of the competition may carry
other modification times, so the record is checked against the mounted files, every clip present
with the same size, and written anew for this mount. Left as it was, the feature cache would take
the audio for changed and compute it all again, holding the GPU.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from competition.kaggle.kernel_build import KernelError
from competition.workspace import Workspace, atomic_write_text

MANIFEST = "manifest.json"  # features/cache.py's record of the sources of a packed split
SPLITS = ("train", "test")


def write_features_output(workspace: Workspace, dataset, index, experiments, output_dir: Path) -> list[str]:
    """Compute the experiments' feature caches and folds in `workspace`, copy them to `output_dir`."""
    from competition.datasets.folds import folds_path, load_or_make_folds
    from competition.features.cache import build_feature_sets, cache_dir

    configs = [experiment.features for experiment in experiments]
    caches = build_feature_sets(workspace, dataset.name, _splits(index), configs)
    output = Workspace(Path(output_dir))
    for config in {config.key: config for config in configs}.values():
        # clips/ holds the records of a build in progress, empty once packed.
        shutil.copytree(cache_dir(workspace, dataset.name, config), cache_dir(output, dataset.name, config),
                        ignore=shutil.ignore_patterns("clips", ".*"), dirs_exist_ok=True)
    for experiment in experiments:
        load_or_make_folds(workspace, dataset, index.train, experiment.folds.k, experiment.folds.seed)
        path = folds_path(workspace, dataset, experiment.folds.k, experiment.folds.seed)
        if path.is_file():  # predefined folds are the dataset's own, saved nowhere
            target = folds_path(output, dataset, experiment.folds.k, experiment.folds.seed)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    return list(caches)


def adopt_features(workspace: Workspace, dataset, index, experiments, features_dir: Path,
                   features_kernel: str) -> list[str]:
    """Link the caches and folds of the features kernel's output (mounted at `features_dir`) into
    `workspace`, checked against this session's competition files; returns the cache keys."""
    from competition.datasets.folds import folds_path
    from competition.features.cache import cache_dir, source_signature

    source = Workspace(Path(features_dir))
    keys = []
    for config in {experiment.features.key: experiment.features for experiment in experiments}.values():
        source_cache, cache = cache_dir(source, dataset.name, config), cache_dir(workspace, dataset.name, config)
        if not source_cache.is_dir():
            raise KernelError(f"{source_cache} not found: the output of features kernel {features_kernel} has no "
                              f"{config.key} cache; rebuild and push the kernels together (make kernel FOLDS=all)")
        cache.mkdir(parents=True, exist_ok=True)
        for item in source_cache.iterdir():
            if item.is_file():
                shutil.copyfile(item, cache / item.name)  # params.json: small, and the kit may rewrite it
        for split, table in _splits(index).items():
            signatures = {fname: source_signature(path) for fname, path in zip(table["fname"], table["path"])}
            _link_split(source_cache / split, cache / split, signatures, features_kernel)
        keys.append(config.key)
    for experiment in experiments:
        path = folds_path(source, dataset, experiment.folds.k, experiment.folds.seed)
        if path.is_file():
            target = folds_path(workspace, dataset, experiment.folds.k, experiment.folds.seed)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    return keys


def _splits(index) -> dict:
    return {split: table for split, table in zip(SPLITS, (index.train, index.test)) if not table.empty}


def _link_split(source: Path, dest: Path, signatures: dict[str, str], features_kernel: str) -> None:
    """`dest/` as links to the files of `source/`, its manifest rewritten for `signatures`."""
    manifest_path = source / MANIFEST
    if not manifest_path.is_file():
        raise KernelError(f"{manifest_path} not found: the output of features kernel {features_kernel} is "
                          "incomplete; push it again (make kernel FOLDS=all)")
    recorded = json.loads(manifest_path.read_text())
    differing = sorted(fname for fname in signatures.keys() | recorded.keys()
                       if _size(recorded.get(fname)) != _size(signatures.get(fname)))
    if differing:
        raise KernelError(f"{source}: computed from other audio than this session's ({len(differing)} clip(s) "
                          f"missing or of another size, e.g. {differing[0]}); push the features kernel again")
    dest.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.name != MANIFEST:
            (dest / item.name).symlink_to(item.resolve())
    atomic_write_text(dest / MANIFEST, json.dumps(signatures, sort_keys=True))


def _size(signature: str | None) -> str | None:
    """The size part of features.cache.source_signature's `<size>-<mtime>`."""
    return signature.split("-")[0] if signature else None
