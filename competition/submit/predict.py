"""Top-3 tags of any audio file from a trained run (`make predict`): its fold models' geometric mean,
each over the run's TTA crops, from features made exactly as the run's were."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from competition.config import FeatureConfig
from competition.features.dsp import features_of_file
from competition.metrics import top_k_indices
from competition.modeling.inference import geometric_mean, predict_clips
from competition.modeling.runs import Run


def predict_files(run_dir: Path, files: Sequence[Path], k: int = 3) -> list[tuple[Path, list[tuple[str, float]]]]:
    import keras

    run = Run(run_dir)
    config = run.config()
    model_paths = run.fold_models()
    feature_config = FeatureConfig(**config["feature_config"])
    clips = [features_of_file(path, feature_config) for path in files]
    members = [predict_clips(keras.models.load_model(p), clips, config["crop_frames"], config["tta_crops"])
               for p in model_paths]
    probs = geometric_mean(members)
    labels = config["labels"]
    return [(path, [(labels[i], float(row[i])) for i in top])
            for path, row, top in zip(files, probs, top_k_indices(probs, k))]
