"""Tests for train.rehearsal_weight: a transfer's fine-tune that keeps training the base's own head on
the base's own clips (never one of the target's recordings), and hands on a model of the target alone."""

import json
import math

import numpy as np
import pytest
from layouts import make_urbansound8k
from tiny_run import kill_after_checkpoint

from competition.config import ConfigError, FeatureConfig, ModelConfig, TrainConfig, hashed_settings
from competition.datasets.registry import get_dataset
from competition.modeling.rehearsal import (
    BASE_HEAD,
    RehearsalError,
    joint_batches,
    joint_model,
    rehearsal_set,
    target_model,
)


def test_the_setting_is_neutral_at_zero_and_checked():
    assert "rehearsal_weight" not in hashed_settings(TrainConfig())  # old runs keep their hashes
    assert hashed_settings(TrainConfig(rehearsal_weight=0.5))["rehearsal_weight"] == 0.5
    for bad in (-1.0, math.nan):
        with pytest.raises(ConfigError, match="rehearsal_weight"):
            TrainConfig(rehearsal_weight=bad)


def _batches(n_batches, rows, n_classes, value):
    for i in range(n_batches):
        x = np.full((rows, 3, 2), value + i, np.float32)
        y = np.eye(n_classes, dtype=np.float32)[np.arange(rows) % n_classes]
        yield x, y, np.full(rows, 0.5, np.float32)


def test_joint_batches_give_each_head_its_own_rows_and_weigh_the_rehearsed_ones():
    target = _batches(2, 4, 3, 0.0)
    rehearsed = _batches(10, 2, 5, 100.0)  # more than the target's: only as many as the target's are taken
    joint = list(joint_batches(target, rehearsed, n_base_classes=5, weight=0.25))
    assert len(joint) == 2
    for i, (x, (y_target, y_base), (w_target, w_base)) in enumerate(joint):
        assert x.shape == (6, 3, 2) and y_target.shape == (6, 3) and y_base.shape == (6, 5)
        np.testing.assert_array_equal(x[:4], i)  # the target's rows first, then the rehearsed ones
        np.testing.assert_array_equal(x[4:], 100 + i)
        np.testing.assert_array_equal(y_target[4:], 0)  # neither head is scored on the other's rows
        np.testing.assert_array_equal(y_base[:4], 0)
        np.testing.assert_array_equal(w_target, [0.5] * 4 + [0.0] * 2)
        np.testing.assert_array_equal(w_base, [0.0] * 4 + [0.125] * 2)  # their own weight times rehearsal_weight
        assert y_base[4:].sum(axis=1).tolist() == [1.0, 1.0]


def _model(n_classes, seed):
    import keras

    from competition.modeling.models import build_model

    keras.utils.set_random_seed(seed)
    return build_model(ModelConfig(arch="cnn2d", width=4), 16, n_classes, mean=np.zeros(16), std=np.ones(16))


def test_the_joint_model_starts_its_second_head_as_the_base_s_and_hands_on_the_target_s_alone():
    base, target = _model(7, seed=1), _model(5, seed=2)
    joint = joint_model(target, base, 7, dropout=0.3)
    assert [tuple(output.shape) for output in joint.outputs] == [(None, 5), (None, 7)]
    for ours, theirs in zip(joint.get_layer(BASE_HEAD).get_weights(), base.get_layer("head_output").get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    alone = target_model(joint)
    assert len(alone.outputs) == 1 and not any(layer.name.startswith("head_base") for layer in alone.layers)
    x = np.random.default_rng(0).normal(size=(2, 30, 16)).astype("float32")
    np.testing.assert_allclose(np.asarray(alone(x, training=False)), np.asarray(joint(x, training=False)[0]),
                               rtol=1e-6, atol=1e-6)
    assert target_model(target) is target
    with pytest.raises(RehearsalError, match="7 outputs, its dataset 6 labels"):
        joint_model(_model(5, seed=3), base, 6, dropout=0.3)


def test_the_rehearsal_set_never_holds_a_recording_of_the_target_and_cycles_past_one_pass(workspace):
    dataset = get_dataset("demo")
    base_train = dataset.index(workspace.dataset_dir("demo")).train.copy()
    base_train["source_id"] = [str(1000 + i // 2) for i in range(len(base_train))]  # two clips a recording
    target_train = base_train.iloc[[0, 5]][["fname", "source_id"]].assign(fname=["t1.wav", "t2.wav"])
    shared = {base_train["source_id"].iloc[0], base_train["source_id"].iloc[5]}
    features = FeatureConfig(kind="logmel", n_mels=16, hop_length=512)
    rehearsal = rehearsal_set(workspace, dataset, base_train, features, "target", target_train)
    kept = base_train[~base_train["source_id"].isin(shared)]
    assert len(rehearsal.rows) == len(kept) == len(base_train) - 4  # both clips of each shared recording
    rehearsed = set(rehearsal.store.index["fname"].to_numpy()[rehearsal.rows])
    assert rehearsed == set(kept["fname"])
    ids = np.argmax(rehearsal.targets, axis=1)
    assert [rehearsal.labels[i] for i in ids] == kept["label"].tolist()
    assert rehearsal.labels == tuple(dataset.labels)

    settings = TrainConfig(batch_size=16)
    batches = rehearsal.batches(settings, 8, np.random.default_rng(0))
    passes = -(-len(kept) // 16)
    seen = [next(batches) for _ in range(2 * passes + 1)]  # on past its first pass, without end
    assert all(x.shape[1:] == (8, 16) and y.shape[1] == len(dataset.labels) for x, y, _ in seen)

    with pytest.raises(RehearsalError, match="no training clip left"):
        rehearsal_set(workspace, dataset, base_train.iloc[[0, 1]], features, "target", target_train)


TINY = """
name = "{name}"
[features]
n_mels = 16
hop_length = 512
[model]
width = 4
[train]
epochs = {epochs}
batch_size = 8
crop_seconds = 0.5
tta_crops = 1
rehearsal_weight = {weight}
[folds]
k = 2
"""


@pytest.mark.slow
def test_make_transfer_rehearses_the_base_s_clips_and_keeps_the_target_s_model_alone(workspace, tmp_path,
                                                                                     monkeypatch):
    import keras

    import competition.modeling.train as train
    from competition.__main__ import main
    from competition.modeling.runs import Run

    base_toml, tune_toml = tmp_path / "base.toml", tmp_path / "tune.toml"
    base_toml.write_text(TINY.format(name="base", epochs=1, weight=0.0))
    tune_toml.write_text(TINY.format(name="tune", epochs=2, weight=0.5))
    assert main(["train", "--dataset", "demo", "--experiment", str(base_toml), "--run", "base"]) == 0
    make_urbansound8k(workspace.root / "us8k", folds_with_audio=(1, 2), per_fold=12)
    assert main(["data", "--dataset", "urbansound8k", "--from", str(workspace.root / "us8k")]) == 0
    demo = get_dataset("demo")

    batches, heads = [], {}
    original_joint, original_begin, original_end = train.joint_batches, train.FoldTrainer.begin_epoch, \
        train.FoldTrainer.end_epoch

    def counting(target, rehearsed, n_base_classes, weight):
        for x, (y_target, y_base), (w_target, w_base) in original_joint(target, rehearsed, n_base_classes, weight):
            batches.append((len(x), int((w_target > 0).sum()), int((w_base > 0).sum()), n_base_classes, weight))
            yield x, (y_target, y_base), (w_target, w_base)

    def begin(self, model, epoch):
        heads.setdefault((self.fold, "start"), [w.copy() for w in model.get_layer(BASE_HEAD).get_weights()])
        original_begin(self, model, epoch)

    def end(self, model, epoch, loss, state, progress):
        heads[(self.fold, "end")] = [w.copy() for w in model.get_layer(BASE_HEAD).get_weights()]
        original_end(self, model, epoch, loss, state, progress)

    monkeypatch.setattr(train, "joint_batches", counting)
    monkeypatch.setattr(train.FoldTrainer, "begin_epoch", begin)
    monkeypatch.setattr(train.FoldTrainer, "end_epoch", end)
    assert main(["transfer", "--dataset", "urbansound8k", "--base", "base", "--experiment", str(tune_toml)]) == 0
    run = workspace.runs / "urbansound8k-tune-from-base"

    # Every batch: the target's clips (8, the fold's last batch fewer), then 8 of the base's, weighted 0.5.
    assert batches and {(n_base, weight) for *_, n_base, weight in batches} == {(len(demo.labels), 0.5)}
    assert all(total == target + rehearsed and rehearsed == 8 and 0 < target <= 8
               for total, target, rehearsed, _, _ in batches)
    assert sum(target for _, target, _, _, _ in batches) == 2 * 2 * 12  # 2 folds, 2 epochs, 12 clips a fold
    # The second head starts as the base's own head and trains.
    base_head = keras.models.load_model(Run(workspace.runs / "base").best_fold_model()).get_layer("head_output")
    for fold in (1, 2):
        for ours, theirs in zip(heads[(fold, "start")], base_head.get_weights()):
            np.testing.assert_array_equal(ours, theirs)
        assert not all(np.array_equal(a, b) for a, b in zip(heads[(fold, "end")], heads[(fold, "start")]))
    # What the fold keeps is the target's model alone.
    for fold in (1, 2):
        kept = keras.models.load_model(run / f"fold-{fold}" / "model.keras")
        assert len(kept.outputs) == 1 and tuple(kept.outputs[0].shape) == (None, 10)
        assert not any(layer.name.startswith("head_base") for layer in kept.layers)
    record = json.loads((run / "config.json").read_text())
    assert record["params"]["train"]["rehearsal_weight"] == 0.5


@pytest.mark.slow
def test_a_rehearsed_fold_resumes_to_the_same_model_and_asking_without_base_clips_is_refused(workspace, monkeypatch):
    from competition.config import Experiment, FoldConfig
    from competition.modeling.train import train_experiment

    dataset = get_dataset("demo")
    index = dataset.index(workspace.dataset_dir("demo"))
    tiny = Experiment(name="tiny", features=FeatureConfig(kind="logmel", n_mels=16, hop_length=512),
                      model=ModelConfig(arch="cnn2d", width=4, dropout=0.3),
                      train=TrainConfig(epochs=1, batch_size=16, crop_seconds=1.0, mixup_alpha=0.4, tta_crops=2),
                      folds=FoldConfig(k=2))
    base = train_experiment(workspace, dataset, index, tiny, run_name="base", only_folds=[0]) / "fold-0" / "model.keras"
    rehearsal = rehearsal_set(workspace, dataset, index.train, tiny.features, "demo", index.train.iloc[:0])
    tuned = tiny.with_overrides(train={"epochs": 3, "rehearsal_weight": 1.0})
    with pytest.raises(RehearsalError, match="no base clips were given"):
        train_experiment(workspace, dataset, index, tuned, base_model=base, run_name="refused", only_folds=[0])
    assert not (workspace.runs / "refused").exists()

    plain = train_experiment(workspace, dataset, index, tiny.with_overrides(train={"epochs": 3}), base_model=base,
                             run_name="plain", only_folds=[0])
    straight = train_experiment(workspace, dataset, index, tuned, base_model=base, rehearsal=rehearsal,
                                run_name="straight", only_folds=[0])
    # Rehearsal changes what is learnt: the same fine-tune without it predicts otherwise.
    assert not np.allclose(np.load(straight / "fold-0" / "oof.npz")["probs"],
                           np.load(plain / "fold-0" / "oof.npz")["probs"], atol=1e-4)

    undo = kill_after_checkpoint(monkeypatch, epoch=0)
    with pytest.raises(KeyboardInterrupt):
        train_experiment(workspace, dataset, index, tuned, base_model=base, rehearsal=rehearsal, run_name="resumed",
                         only_folds=[0])
    undo()
    import keras

    checkpoint = keras.models.load_model(workspace.runs / "resumed" / "fold-0" / "checkpoint.keras")
    assert len(checkpoint.outputs) == 2  # the joint model, optimizer and both heads, resumes as it was
    resumed = train_experiment(workspace, dataset, index, tuned, base_model=base, rehearsal=rehearsal,
                               run_name="resumed", only_folds=[0])
    for split in ("oof.npz", "test.npz"):
        np.testing.assert_allclose(np.load(resumed / "fold-0" / split)["probs"],
                                   np.load(straight / "fold-0" / split)["probs"], atol=1e-6, err_msg=split)

    # From scratch there is no base to rehearse: the setting does nothing, the model is the target's alone.
    scratch = train_experiment(workspace, dataset, index, tuned.with_overrides(train={"epochs": 1}),
                               rehearsal=rehearsal, run_name="scratch", only_folds=[0])
    assert len(keras.models.load_model(scratch / "fold-0" / "model.keras").outputs) == 1
