"""Tests for train.freeze_backbone_epochs: a transfer's first epochs train the head alone."""

import json

import numpy as np
import pytest
from tiny_run import kill_after_checkpoint

from competition.config import Experiment, FeatureConfig, FoldConfig, ModelConfig, TrainConfig, hashed_settings
from competition.datasets.registry import get_dataset
from competition.modeling.train import FoldTrainer, train_experiment

TINY = Experiment(
    name="tiny",
    features=FeatureConfig(kind="logmel", n_mels=16, hop_length=512),
    model=ModelConfig(arch="cnn2d", width=4, dropout=0.3),
    train=TrainConfig(epochs=1, batch_size=16, crop_seconds=1.0, mixup_alpha=0.4, time_masks=1, freq_masks=1,
                      tta_crops=2),
    folds=FoldConfig(k=2),
)


def test_the_setting_is_neutral_at_zero_and_checked():
    from competition.config import ConfigError

    assert "freeze_backbone_epochs" not in hashed_settings(TrainConfig())  # old runs keep their hashes
    assert hashed_settings(TrainConfig(freeze_backbone_epochs=3))["freeze_backbone_epochs"] == 3
    with pytest.raises(ConfigError, match="freeze_backbone_epochs"):
        TrainConfig(freeze_backbone_epochs=-1)


def _weights(model, names):
    return {name: [np.array(w) for w in model.get_layer(name).get_weights()] for name in names}


def _same(a, b):
    return all(np.array_equal(x, y) for name in a for x, y in zip(a[name], b[name]))


@pytest.mark.slow
def test_a_frozen_backbone_stays_the_base_s_during_the_frozen_epochs_and_trains_after(workspace, monkeypatch):
    import keras

    from competition.modeling.models import backbone_layers

    dataset = get_dataset("demo")
    index = dataset.index(workspace.dataset_dir("demo"))
    base_run = train_experiment(workspace, dataset, index, TINY, run_name="base", only_folds=[0])
    base = keras.models.load_model(base_run / "fold-0" / "model.keras")
    # input_norm holds the target's own statistics, not copied; every other backbone layer is the base's.
    names = [layer.name for layer in backbone_layers(base) if layer.name != "input_norm"]
    assert any("bn" in name for name in names)  # batch statistics are weights too: they must stay
    base_weights = _weights(base, names)

    seen = []
    original = FoldTrainer.end_epoch

    def record(self, model, epoch, loss, state, progress):
        seen.append((epoch, _weights(model, names), _weights(model, ["head_output"])))
        original(self, model, epoch, loss, state, progress)

    monkeypatch.setattr(FoldTrainer, "end_epoch", record)
    tuned = TINY.with_overrides(train={"epochs": 4, "freeze_backbone_epochs": 2})
    straight = train_experiment(workspace, dataset, index, tuned, base_model=base_run / "fold-0" / "model.keras",
                                run_name="tuned", only_folds=[0])
    assert [epoch for epoch, _, _ in seen] == [0, 1, 2, 3]
    assert _same(seen[0][1], base_weights) and _same(seen[1][1], base_weights)  # frozen: not one value moved
    assert not _same(seen[0][2], seen[1][2])  # while the head trains
    assert not _same(seen[2][1], base_weights) and not _same(seen[3][1], seen[2][1])  # unfrozen: it trains
    saved = keras.models.load_model(straight / "fold-0" / "model.keras")
    assert all(layer.trainable for layer in saved.layers)

    # Killed in the frozen epochs, it resumes frozen from its checkpoint, to the same model.
    monkeypatch.setattr(FoldTrainer, "end_epoch", original)
    undo = kill_after_checkpoint(monkeypatch, epoch=0)
    with pytest.raises(KeyboardInterrupt):
        train_experiment(workspace, dataset, index, tuned, base_model=base_run / "fold-0" / "model.keras",
                         run_name="resumed", only_folds=[0])
    undo()
    checkpoint = keras.models.load_model(workspace.runs / "resumed" / "fold-0" / "checkpoint.keras")
    assert all(layer.trainable for layer in checkpoint.layers)  # saved whole, optimizer slots and all
    resumed = train_experiment(workspace, dataset, index, tuned, base_model=base_run / "fold-0" / "model.keras",
                               run_name="resumed", only_folds=[0])
    for split in ("oof.npz", "test.npz"):
        np.testing.assert_allclose(np.load(resumed / "fold-0" / split)["probs"],
                                   np.load(straight / "fold-0" / split)["probs"], atol=1e-6, err_msg=split)
    assert json.loads((resumed / "fold-0" / "done.json").read_text())["epochs_run"] == 4


@pytest.mark.slow
def test_from_scratch_nothing_is_frozen(workspace, monkeypatch):
    dataset = get_dataset("demo")
    index = dataset.index(workspace.dataset_dir("demo"))
    frozen_flags = []
    original = FoldTrainer.end_epoch

    def record(self, model, epoch, loss, state, progress):
        from competition.modeling.models import backbone_is_frozen

        frozen_flags.append(backbone_is_frozen(model))
        original(self, model, epoch, loss, state, progress)

    monkeypatch.setattr(FoldTrainer, "end_epoch", record)
    train_experiment(workspace, dataset, index, TINY.with_overrides(train={"epochs": 2, "freeze_backbone_epochs": 2}),
                     run_name="scratch", only_folds=[0])
    assert frozen_flags == [False, False]
