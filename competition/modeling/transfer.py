"""Transfer (`make transfer`): a base run's backbone weights start models for another label set.

The transfer experiment takes its features and model from the base run (the backbone only fits
inputs made the same way) and its training settings from its own TOML file; the target dataset's
fold rule applies (UrbanSound8K: its predefined folds, never reshuffled). Weights are copied layer by
layer, by name, every layer except the `head_*` ones: Keras 3 `.weights.h5` files load by layer order,
which would silently mis-assign weights between models with different heads. The input
standardisation (`input_norm`) is not copied: it holds the target dataset's own feature statistics.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from competition.config import Experiment, FeatureConfig, ModelConfig, load_experiment
from competition.modeling.runs import Run


def transfer_experiment(base_run: Path, experiment_file: Path, dataset: str | None = None) -> Experiment:
    """The TOML's training settings (for `dataset`, with its own values) on the base run's features and model."""
    record = Run(base_run).config()
    own = load_experiment(experiment_file, dataset)
    return replace(own, features=FeatureConfig(**record["feature_config"]),
                   model=ModelConfig(**record["params"]["model"]))


def run_transfer(workspace, base_run: Path, dataset_name: str, experiment_file: Path,
                 run_name: str | None = None) -> Path:
    """Train the target dataset's folds, every fold starting from the base run's best backbone."""
    from competition.datasets.registry import get_dataset
    from competition.modeling.train import train_experiment

    base = Run(base_run)
    dataset = get_dataset(dataset_name)
    experiment = transfer_experiment(base.dir, experiment_file, dataset.name)
    index = dataset.index(workspace.dataset_dir(dataset.name))
    return train_experiment(workspace, dataset, index, experiment, base_model=base.best_fold_model(),
                            run_name=run_name or f"{dataset.name}-{experiment.name}-from-{base.name}")
