"""Tests for competition.train: label handling, seeded dropout, and a killed run resuming to the same result."""

import json

import numpy as np
import pandas as pd
import pytest
from tiny_run import kill_after_checkpoint

from competition.config import Experiment, FeatureConfig, FoldConfig, ModelConfig, TrainConfig
from competition.datasets.registry import get_dataset
from competition.modeling.train import _targets, reseed_dropout, train_experiment

TINY = Experiment(
    name="tiny",
    features=FeatureConfig(kind="logmel", n_mels=16, hop_length=512),
    model=ModelConfig(arch="cnn2d", width=4, dropout=0.3),
    train=TrainConfig(epochs=3, batch_size=16, crop_seconds=1.0, mixup_alpha=0.4, time_masks=1, freq_masks=1,
                      unverified_smoothing=0.1, class_balance=True, tta_crops=2),
    folds=FoldConfig(k=2),
)


def test_targets_smooth_and_weight_unverified_rows_and_balance_classes():
    dataset = get_dataset("demo")
    a, b = dataset.labels[:2]
    train = pd.DataFrame({"label": [a, a, a, b], "manually_verified": [1, 0, 1, 1]})
    experiment = TINY.with_overrides(train={"unverified_weight": 0.5, "unverified_smoothing": 0.2,
                                            "label_smoothing": 0.0, "class_balance": False})
    ids, targets, weights = _targets(train, dataset, experiment)
    assert ids.tolist() == [0, 0, 0, 1]
    assert targets[0, 0] == 1.0 and targets[1, 0] == pytest.approx(0.8 + 0.2 / len(dataset.labels))
    assert weights.tolist() == [1.0, 0.5, 1.0, 1.0]
    _, _, balanced = _targets(train, dataset, experiment.with_overrides(train={"class_balance": True}))
    # class balance multiplies each row by rows / (classes x rows of its class): a 4/6, b 4/2
    np.testing.assert_allclose(balanced / weights, [2 / 3, 2 / 3, 2 / 3, 2.0], rtol=1e-6)


def test_spectral_augmentation_is_refused_for_other_features():
    from competition.config import ConfigError

    with pytest.raises(ConfigError, match="bin_shift and train.gain_db"):
        TINY.with_overrides(features={"kind": "mfcc"}, train={"bin_shift": 2})


def test_reseeding_makes_dropout_masks_repeat():
    from competition.modeling.models import build_model

    model = build_model(ModelConfig(width=4, dropout=0.5), 8, 3, mean=np.zeros(8), std=np.ones(8))
    x = np.random.default_rng(0).standard_normal((4, 20, 8)).astype(np.float32)
    reseed_dropout(model, 11)
    first = np.asarray(model(x, training=True))
    second = np.asarray(model(x, training=True))
    reseed_dropout(model, 11)
    np.testing.assert_array_equal(np.asarray(model(x, training=True)), first)
    assert not np.array_equal(first, second)


def fold_outputs(run_dir, fold=0):
    fold_dir = run_dir / f"fold-{fold}"
    return {name: np.load(fold_dir / name)["probs"] for name in ("oof.npz", "test.npz")}, \
        pd.read_csv(fold_dir / "history.csv")


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_result(workspace, monkeypatch):
    dataset = get_dataset("demo")
    index = dataset.index(workspace.dataset_dir("demo"))
    straight = train_experiment(workspace, dataset, index, TINY, run_name="straight", only_folds=[0])

    undo = kill_after_checkpoint(monkeypatch, epoch=1)  # killed after epoch 1 was checkpointed, before epoch 2
    with pytest.raises(KeyboardInterrupt):
        train_experiment(workspace, dataset, index, TINY, run_name="resumed", only_folds=[0])
    fold_dir = workspace.runs / "resumed" / "fold-0"
    assert json.loads((fold_dir / "state.json").read_text())["epoch"] == 1 and not (fold_dir / "done.json").exists()
    undo()
    resumed = train_experiment(workspace, dataset, index, TINY, run_name="resumed", only_folds=[0])

    (straight_predictions, straight_history), (resumed_predictions, resumed_history) = \
        fold_outputs(straight), fold_outputs(resumed)
    for name, probs in straight_predictions.items():
        np.testing.assert_allclose(resumed_predictions[name], probs, atol=1e-6, err_msg=name)
    columns = ["epoch", "loss", "val_map@3"]
    pd.testing.assert_frame_equal(resumed_history[columns], straight_history[columns], atol=1e-6)
    assert not (fold_dir / "checkpoint.keras").exists() and (fold_dir / "model.keras").exists()


@pytest.mark.slow
def test_a_spent_time_budget_stops_at_an_epoch_and_training_again_continues_to_the_same_result(workspace):
    import time

    from competition.modeling.train import TimeBudgetSpent

    dataset = get_dataset("demo")
    index = dataset.index(workspace.dataset_dir("demo"))
    experiment = TINY.with_overrides(train={"epochs": 2})
    straight = train_experiment(workspace, dataset, index, experiment, run_name="straight")
    fold_dir = workspace.runs / "budgeted" / "fold-0"
    # A deadline already past: each call still makes one step, an epoch or a fold's final predictions.
    left_after_each_call = []
    for _ in range(10):
        try:
            budgeted = train_experiment(workspace, dataset, index, experiment, run_name="budgeted",
                                        deadline=time.time() - 1)
            break
        except TimeBudgetSpent as spent:
            left_after_each_call.append(spent.unfinished)
            assert spent.run_dir == workspace.runs / "budgeted"
            assert "budgeted: the time budget ran out with fold " in str(spent) and "checkpointed" in str(spent)
            assert not (workspace.runs / "budgeted" / "oof.npz").exists()
    # fold 0: epoch 0, epoch 1, its predictions (fold 1 not begun: its first epoch would end too late);
    # fold 1 likewise; then the run is assembled.
    assert left_after_each_call == [{0: 1, 1: 0}, {0: 2, 1: 0}, {1: 0}, {1: 1}, {1: 2}]
    assert (fold_dir / "done.json").exists() and not (fold_dir / "checkpoint.keras").exists()
    for fold in (0, 1):
        (straight_predictions, straight_history), (budgeted_predictions, budgeted_history) = \
            fold_outputs(straight, fold), fold_outputs(budgeted, fold)
        for name, probs in straight_predictions.items():
            np.testing.assert_allclose(budgeted_predictions[name], probs, atol=1e-6, err_msg=name)
        columns = ["epoch", "loss", "val_map@3"]
        pd.testing.assert_frame_equal(budgeted_history[columns], straight_history[columns], atol=1e-6)
    assert np.load(budgeted / "oof.npz")["probs"].shape == np.load(straight / "oof.npz")["probs"].shape
    # With time to spare, nothing stops early.
    assert train_experiment(workspace, dataset, index, experiment, run_name="ample",
                            deadline=time.time() + 3600).name == "ample"


@pytest.mark.slow
def test_a_finished_run_has_scores_predictions_and_a_report(workspace):
    dataset = get_dataset("demo")
    index = dataset.index(workspace.dataset_dir("demo"))
    experiment = TINY.with_overrides(train={"epochs": 1, "keep_epoch": "last"})
    run_dir = train_experiment(workspace, dataset, index, experiment, run_name="whole")
    scores = json.loads((run_dir / "scores.json").read_text())
    assert scores["metric"] == "map@3" and set(scores["folds"]) == {"0", "1"}
    oof = np.load(run_dir / "oof.npz")
    assert oof["probs"].shape == (len(index.train), len(dataset.labels))
    assert oof["true_ids"].tolist() == index.train["label"].map(dataset.label_to_id).tolist()
    assert np.load(run_dir / "test.npz")["probs"].shape == (len(index.test), len(dataset.labels))
    assert json.loads((run_dir / "fold-0" / "done.json").read_text())["kept_epoch"] == 0
    assert (run_dir / "report" / "cv.csv").exists()


def test_a_run_differing_only_in_tta_predicts_its_twin_s_fold_models_anew_on_whole_clips(workspace, capfd):
    import keras

    from competition.config import WHOLE_CLIP
    from competition.features.cache import build_features
    from competition.modeling.batches import fit_length
    from competition.modeling.runs import Run

    dataset = get_dataset("demo")
    index = dataset.index(workspace.dataset_dir("demo"))
    crops = TINY.with_overrides(train={"epochs": 2, "keep_epoch": "last"})
    whole = crops.with_overrides(train={"tta_crops": WHOLE_CLIP})
    first = Run(train_experiment(workspace, dataset, index, crops, run_name="two-crops", only_folds=[0]))
    capfd.readouterr()
    run = Run(train_experiment(workspace, dataset, index, whole, run_name="whole-clips", only_folds=[0]))
    assert "whole-clips: fold 0 is two-crops's fold model" in capfd.readouterr().err
    assert run.config()["hash"] != first.config()["hash"]
    assert run.model_path(0).read_bytes() == first.model_path(0).read_bytes()
    pd.testing.assert_frame_equal(run.histories()[0], first.histories()[0])
    summary = run.fold_summary(0)
    assert summary["predicted_from"] == "two-crops" and summary["epochs_run"] == 2 and summary["kept_epoch"] == 1
    # Its held-out clips predicted whole: each in one pass, a short one tiled to one crop.
    store = build_features(workspace, dataset.name, {"train": index.train}, whole.features)["train"]
    model, crop = keras.models.load_model(run.model_path(0)), run.config()["crop_frames"]
    oof = np.load(run.dir / "fold-0" / "oof.npz")
    clips = [store.clip(int(row)) for row in store.rows_of(oof["fnames"])]
    assert any(len(clip) > crop for clip in clips), "no held-out clip longer than a crop: nothing to tell apart"
    for clip, probs in zip(clips, oof["probs"]):
        np.testing.assert_allclose(np.asarray(model(fit_length(clip, max(len(clip), crop))[None], training=False))[0],
                                   probs, atol=1e-5)
    assert not np.allclose(oof["probs"], np.load(first.dir / "fold-0" / "oof.npz")["probs"], atol=1e-4)
    # Trained otherwise (one epoch more): not a twin, trained.
    longer = Run(train_experiment(workspace, dataset, index, whole.with_overrides(train={"epochs": 3}),
                                  run_name="longer", only_folds=[0]))
    assert "predicted_from" not in longer.fold_summary(0) and longer.fold_summary(0)["epochs_run"] == 3


def test_a_fine_tune_counts_its_base_by_content_not_by_path(workspace, tmp_path):
    import hashlib

    from competition.config import WHOLE_CLIP
    from competition.modeling.runs import Run
    from competition.modeling.train import run_record

    dataset = get_dataset("demo")
    index = dataset.index(workspace.dataset_dir("demo"))
    short = TINY.with_overrides(train={"epochs": 1, "keep_epoch": "last"})
    base = Run(train_experiment(workspace, dataset, index, short, run_name="base", only_folds=[0])).model_path(0)
    tuned = Run(train_experiment(workspace, dataset, index, short, run_name="tuned", only_folds=[0],
                                 base_model=base))
    record = tuned.config()
    assert record["base_model"] == str(base)
    assert record["base_model_sha256"] == hashlib.sha256(base.read_bytes()).hexdigest()
    # The same bytes elsewhere (a twin base run's copied fold model): the same run.
    copied = tmp_path / "elsewhere" / "model.keras"
    copied.parent.mkdir()
    copied.write_bytes(base.read_bytes())
    assert run_record(short, dataset, copied)["hash"] == record["hash"]
    whole = Run(train_experiment(workspace, dataset, index, short.with_overrides(train={"tta_crops": WHOLE_CLIP}),
                                 run_name="tuned-whole", only_folds=[0], base_model=copied))
    assert whole.fold_summary(0)["predicted_from"] == "tuned"
    assert whole.model_path(0).read_bytes() == tuned.model_path(0).read_bytes()
    # Other weights at the same path: another base, another run.
    copied.write_bytes(base.read_bytes() + b"\0")
    assert run_record(short, dataset, copied)["hash"] != record["hash"]
    # From scratch: no base in the record, and another hash again.
    assert "base_model_sha256" not in run_record(short, dataset) and run_record(short, dataset)["hash"] not in {
        record["hash"], run_record(short, dataset, copied)["hash"]}


def test_a_fine_tune_an_older_kit_hashed_by_its_base_s_path_is_kept_and_rehashed(workspace, tmp_path):
    from competition.config import config_hash
    from competition.modeling.runs import Run, RunError
    from competition.modeling.train import legacy_run_hash, run_record

    dataset = get_dataset("demo")
    base = tmp_path / "base.keras"
    base.write_bytes(b"weights")
    record = run_record(TINY, dataset, base)
    # What kits before base fingerprints wrote: the base by its resolved path.
    formerly = config_hash({"experiment": config_hash(record["params"]), "base_model": str(base.resolve())})
    assert legacy_run_hash(record) == formerly != record["hash"]
    assert legacy_run_hash(run_record(TINY, dataset)) is None
    old = {key: value for key, value in record.items() if key != "base_model_sha256"} | {"hash": formerly}
    run = Run(workspace.runs / "old-fine-tune")
    run.dir.mkdir(parents=True)
    run.config_path.write_text(json.dumps(old))
    run.claim(record, formerly=legacy_run_hash(record))
    assert run.config() == record
    # Any other configuration there is still refused, and left as it was.
    other = Run(workspace.runs / "other")
    other.dir.mkdir()
    other.config_path.write_text(json.dumps(old | {"hash": "0123456789"}))
    with pytest.raises(RunError, match="another configuration"):
        other.claim(record, formerly=legacy_run_hash(record))
    assert other.config()["hash"] == "0123456789"
    # A config without a base is never rewritten as one.
    with pytest.raises(RunError, match="another configuration"):
        run.claim(run_record(TINY, dataset), formerly=legacy_run_hash(run_record(TINY, dataset)))
