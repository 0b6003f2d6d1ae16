"""Transfer (`make transfer`): a base run's backbone weights start models for another label set.

The transfer experiment takes its features and model from the base run (the backbone only fits
inputs made the same way) and its training settings from its own TOML file; the target dataset's
fold rule applies (UrbanSound8K: its predefined folds, never reshuffled). Weights are copied layer by
layer, by name, every layer except the `head_*` ones: Keras 3 `.weights.h5` files load by layer order,
which would silently mis-assign weights between models with different heads. The input
standardisation (`input_norm`) is not copied: it holds the target dataset's own feature statistics.

A base trained on clips of recordings the target also holds has heard the target's test clips
(datasets.sources): such a base is refused, saying how many clips and recordings it shares, unless
it was trained without them (`make train EXCLUDE_SOURCES_OF=<target>`) or `allow_leakage` is given.
With `train.rehearsal_weight`, the base dataset's own clips (never one of the target's recordings) keep
training the base's head beside the target's (modeling/rehearsal.py).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from competition.config import Experiment, FeatureConfig, ModelConfig, load_experiment
from competition.errors import KitError
from competition.modeling.runs import Run


class LeakageError(KitError, ValueError):
    """A transfer would score the target on recordings its base was trained on."""


def check_leakage(workspace, base: Run, target_name: str, target_train, base_train=None) -> str:
    """Refuse a base that was trained on recordings the target holds; returns what was checked.
    `base_train`: the base's training clips, where its dataset is not one of the registry's (a
    benchmark's selection); by default its dataset's index."""
    from competition.datasets.registry import get_dataset
    from competition.datasets.sources import describe, shared_sources, source_ids

    record = base.config()
    if record.get("excluded_sources", {}).get("of") == target_name:
        return f"base trained without {target_name}'s recordings ({record['excluded_sources']['clips']} clips left out)"
    base_name = record["dataset"]
    if base_train is None:
        base_train = get_dataset(base_name).index(workspace.dataset_dir(base_name)).train
    if not source_ids(base_train) or not source_ids(target_train):
        return f"not checked: {base_name if not source_ids(base_train) else target_name} names no source recordings"
    shared = shared_sources(base_train, target_train)
    if shared:
        clips = int(base_train["source_id"].astype(str).isin(shared).sum())
        raise LeakageError(
            f"{base.dir}: trained on {clips} clip(s) of {len(shared)} recording(s) that {target_name} also holds "
            f"({describe(shared)}); its {target_name} scores would count recordings it has heard. Train the base "
            f"without them (make train DATASET={base_name} EXCLUDE_SOURCES_OF={target_name}), or pass "
            "--allow-leakage")
    return f"no recording shared with {target_name}"


def transfer_experiment(base_run: Path, experiment_file: Path, dataset: str | None = None) -> Experiment:
    """The TOML's training settings (for `dataset`, with its own values) on the base run's features and
    model. Bin shifts and level changes move log-mel bins: on a base of other features they are off."""
    record = Run(base_run).config()
    own = load_experiment(experiment_file, dataset)
    features = FeatureConfig(**record["feature_config"])
    train = own.train if features.kind == "logmel" else replace(own.train, bin_shift=0, gain_db=0.0)
    return replace(own, features=features, model=ModelConfig(**record["params"]["model"]), train=train)


def turned_off(experiment_file: Path, experiment: Experiment, dataset: str | None = None) -> str:
    """What `transfer_experiment` turned off of the file's settings for the base's features ('' if nothing)."""
    own = load_experiment(experiment_file, dataset).train
    off = [name for name in ("bin_shift", "gain_db") if getattr(own, name) != getattr(experiment.train, name)]
    return (f"{', '.join(off)} off: {experiment.features.kind} features (the base's) have no log-mel bins to move"
            if off else "")


def run_transfer(workspace, base_run: Path, dataset_name: str, experiment_file: Path,
                 run_name: str | None = None, *, allow_leakage: bool = False) -> Path:
    """Train the target dataset's folds, every fold starting from the base run's best backbone."""
    from competition.datasets.registry import get_dataset
    from competition.modeling.train import train_experiment

    base = Run(base_run)
    dataset = get_dataset(dataset_name)
    experiment = transfer_experiment(base.dir, experiment_file, dataset.name)
    if note := turned_off(experiment_file, experiment, dataset.name):
        print(f"{experiment_file}: {note}")
    index = dataset.index(workspace.dataset_dir(dataset.name))
    if allow_leakage:
        print(f"leakage check skipped (--allow-leakage): {base.name} may have heard {dataset.name}'s recordings")
    else:
        print(f"leakage check: {check_leakage(workspace, base, dataset.name, index.train)}")
    return train_experiment(workspace, dataset, index, experiment, base_model=base.best_fold_model(),
                            run_name=run_name or f"{dataset.name}-{experiment.name}-from-{base.name}",
                            rehearsal=base_rehearsal(workspace, base, experiment, dataset.name, index.train))


def base_rehearsal(workspace, base: Run, experiment: Experiment, target_name: str, target_train):
    """The base dataset's clips to rehearse where the experiment asks for it (train.rehearsal_weight), on
    the base's features; None where it does not."""
    from competition.datasets.registry import get_dataset
    from competition.modeling.rehearsal import rehearsal_set
    from competition.modeling.train import exclude_sources_of

    if not experiment.train.rehearsal_weight > 0:
        return None
    record = base.config()
    dataset = get_dataset(record["dataset"])
    index = dataset.index(workspace.dataset_dir(dataset.name))
    if excluded := record.get("excluded_sources"):  # the clips the base was trained on, as it was
        index, _, _ = exclude_sources_of(workspace, index, excluded["of"])
    return rehearsal_set(workspace, dataset, index.train, experiment.features, target_name, target_train)
