"""Tiny trained runs for the tagging tests (`make predict`, `make app`): one fold of one epoch on the
tiny demo competition, trained into a shared workspace the first time a test asks, found there after."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import soundfile

from competition.config import Experiment, FeatureConfig, FoldConfig, ModelConfig, TrainConfig
from competition.workspace import Workspace

# Two runs on different features, so a blend of them makes each run its own features.
TINY_RUNS = {
    "tiny-logmel": Experiment(name="tiny-logmel", features=FeatureConfig(kind="logmel", n_mels=16, hop_length=512),
                              model=ModelConfig(arch="cnn2d", width=4, dropout=0.0),
                              train=TrainConfig(epochs=1, batch_size=16, crop_seconds=1.0, tta_crops=2),
                              folds=FoldConfig(k=2)),
    "tiny-mfcc": Experiment(name="tiny-mfcc", features=FeatureConfig(kind="mfcc", n_mels=16, n_mfcc=12,
                                                                     hop_length=1024),
                            model=ModelConfig(arch="cnn2d", width=4, dropout=0.0),
                            train=TrainConfig(epochs=1, batch_size=16, crop_seconds=1.5, tta_crops=3),
                            folds=FoldConfig(k=2)),
}


def tiny_workspace(root: Path, competition: Path) -> Workspace:
    """A workspace at `root` holding the tiny competition as data/demo (copied once)."""
    if not (root / "data" / "demo").is_dir():
        shutil.copytree(competition, root / "data" / "demo")
    return Workspace(root)


def trained_run(workspace: Workspace, name: str = "tiny-logmel") -> Path:
    """runs/<name>/ with fold 0 trained (training again finds the fold done and skips it)."""
    from competition.datasets.registry import get_dataset
    from competition.modeling.train import train_experiment

    dataset = get_dataset("demo")
    index = dataset.index(workspace.dataset_dir("demo"))
    return train_experiment(workspace, dataset, index, TINY_RUNS[name], run_name=name, only_folds=[0])


def write_blend(workspace: Workspace, name: str, members: dict[str, float]) -> Path:
    """submissions/<name>.csv and the blend record beside it, as `make ensemble` writes them."""
    from competition.submit.submission import write_record

    csv_path = workspace.submissions / f"{name}.csv"
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    csv_path.write_text("fname,label\n")
    write_record(csv_path, {"name": name, "blend": "geometric_mean",
                            "members": [{"run": run, "weight": weight} for run, weight in members.items()]})
    return csv_path


def write_tone(path: Path, seconds: float, *, frequency: float = 440.0, sample_rate: int = 22050,
               seed: int = 0) -> Path:
    """A tone in a little noise: audio with something in it, the same every time."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    noise = np.random.default_rng(seed).standard_normal(len(t))
    samples = 0.4 * np.sin(2 * np.pi * frequency * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.5 * t)) + 0.02 * noise
    soundfile.write(path, samples.astype(np.float32), sample_rate, subtype="PCM_16")
    return path


def kill_after_checkpoint(monkeypatch, epoch: int):
    """FoldTrainer raising KeyboardInterrupt once `epoch` is checkpointed (a kill between two epochs);
    returns what undoes it."""
    from competition.modeling.train import FoldTrainer

    saving = FoldTrainer._save_checkpoint

    def save_then_die(self, model, state):
        saving(self, model, state)
        if state["epoch"] == epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr(FoldTrainer, "_save_checkpoint", save_then_die)
    return lambda: monkeypatch.setattr(FoldTrainer, "_save_checkpoint", saving)
