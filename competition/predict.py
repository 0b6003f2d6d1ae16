"""Top-3 tags of any audio file from a trained run (`make predict`): the fold models' geometric mean."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from competition.config import FeatureConfig
from competition.ensemble import geometric_mean
from competition.features import features_of_file
from competition.metrics import top_k_indices


def predict_files(run_dir: Path, files: Sequence[Path], k: int = 3) -> list[tuple[Path, list[tuple[str, float]]]]:
    import keras

    from competition.train import RunError, predict_clips

    config_path = Path(run_dir) / "config.json"
    if not config_path.exists():
        raise RunError(f"{run_dir}: not a run folder (config.json missing)")
    config = json.loads(config_path.read_text())
    model_paths = sorted(Path(run_dir).glob("fold-*/model.keras"))
    if not model_paths:
        raise RunError(f"{run_dir}: no trained fold (fold-*/model.keras); run make train first")
    feature_config = FeatureConfig(**config["feature_config"])
    clips = [features_of_file(path, feature_config) for path in files]
    members = [predict_clips(keras.models.load_model(p), clips, config["crop_frames"], config["tta_crops"])
               for p in model_paths]
    probs = geometric_mean(members)
    labels = config["labels"]
    return [(path, [(labels[i], float(row[i])) for i in top])
            for path, row, top in zip(files, probs, top_k_indices(probs, k))]
