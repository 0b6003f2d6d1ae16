"""Transfer (`make transfer`): a base run's backbone weights start models for another label set.

The transfer experiment takes its features and model from the base run (the backbone only fits
inputs made the same way) and its training settings from its own TOML file; the target dataset's
fold rule applies (UrbanSound8K: its predefined folds, never reshuffled). Weights are copied layer by
layer, by name, every layer except the `head_*` ones: Keras 3 `.weights.h5` files load by layer order,
which would silently mis-assign weights between models with different heads. The input
standardisation (`input_norm`) is not copied: it holds the target dataset's own feature statistics.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from competition.config import Experiment, FeatureConfig, ModelConfig, load_experiment
from competition.models import HEAD_PREFIX


class TransferError(ValueError):
    pass


def copy_backbone_weights(source, target) -> list[str]:
    """Copy every non-head layer's weights from `source` to the same-named layer of `target`."""
    source_layers = {layer.name: layer for layer in source.layers}
    copied = []
    for layer in target.layers:
        if layer.name.startswith(HEAD_PREFIX) or not layer.weights:
            continue
        if layer.name not in source_layers:
            raise TransferError(f"layer {layer.name!r} of the new model is not in the base model "
                                f"({source.name}); are both built from the same arch?")
        weights = source_layers[layer.name].get_weights()
        shapes = [w.shape for w in weights], [tuple(w.shape) for w in layer.weights]
        if [tuple(s) for s in shapes[0]] != shapes[1]:
            raise TransferError(f"layer {layer.name!r}: base weights {shapes[0]} do not fit {shapes[1]}")
        layer.set_weights(weights)
        copied.append(layer.name)
    if not copied:
        raise TransferError(f"no backbone layer copied from {source.name}")
    return copied


def base_record(base_run: Path) -> dict:
    path = Path(base_run) / "config.json"
    if not path.is_file():
        raise TransferError(f"{base_run}: not a run folder (config.json missing); train the base run first")
    return json.loads(path.read_text())


def base_model_path(base_run: Path) -> Path:
    """The base run's best fold model, by its OOF score."""
    done = sorted(Path(base_run).glob("fold-*/done.json"))
    if not done:
        raise TransferError(f"{base_run}: no finished fold (fold-*/done.json); train the base run first")
    best = max(done, key=lambda p: json.loads(p.read_text())["score"])
    return best.parent / "model.keras"


def transfer_experiment(base_run: Path, experiment_file: Path, dataset: str | None = None) -> Experiment:
    """The TOML's training settings (for `dataset`, with its own values) on the base run's features and model."""
    record = base_record(base_run)
    own = load_experiment(experiment_file, dataset)
    return replace(own, features=FeatureConfig(**record["feature_config"]),
                   model=ModelConfig(**record["params"]["model"]))


def run_transfer(workspace, base_run: Path, dataset_name: str, experiment_file: Path,
                 run_name: str | None = None) -> Path:
    """Train the target dataset's folds, every fold starting from the base run's best backbone."""
    from competition.datasets import get_dataset
    from competition.train import train_experiment

    base_run = Path(base_run)
    dataset = get_dataset(dataset_name)
    experiment = transfer_experiment(base_run, experiment_file, dataset.name)
    index = dataset.index(workspace.dataset_dir(dataset.name))
    return train_experiment(workspace, dataset, index, experiment, base_model=base_model_path(base_run),
                            run_name=run_name or f"{dataset.name}-{experiment.name}-from-{base_run.name}")
