import numpy as np
import pytest
from layouts import make_urbansound8k

from competition.config import ModelConfig
from competition.modeling.models import TransferError, build_model, copy_backbone_weights


def model(arch="cnn2d", n_classes=5, n_bins=16, seed=0, width=4):
    import keras

    keras.utils.set_random_seed(seed)
    return build_model(ModelConfig(arch=arch, width=width), n_bins, n_classes,
                       mean=np.zeros(n_bins), std=np.ones(n_bins))


def test_backbone_weights_copy_by_name_and_the_head_stays_new():
    base, target = model(n_classes=41, seed=1), model(n_classes=10, seed=2)
    head_before = [w.copy() for w in target.get_layer("head_output").get_weights()]
    copied = copy_backbone_weights(base, target)
    assert any("conv" in name for name in copied) and any("bn" in name for name in copied)
    for name in copied:
        for a, b in zip(base.get_layer(name).get_weights(), target.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    assert not any(name.startswith("head_") for name in copied)
    np.testing.assert_array_equal(target.get_layer("head_output").get_weights()[0], head_before[0])  # 10 classes
    # Same inputs, same backbone: the embeddings agree although the heads differ.
    import keras

    x = np.random.default_rng(0).normal(size=(2, 40, 16)).astype("float32")
    embed = lambda m: keras.Model(m.input, m.get_layer("head_dropout").input)(x, training=False)
    np.testing.assert_allclose(np.asarray(embed(base)), np.asarray(embed(target)), rtol=1e-5, atol=1e-5)


def test_mismatched_architectures_are_refused():
    with pytest.raises(TransferError, match="not in the base model"):
        copy_backbone_weights(model(arch="cnn2d"), model(arch="resnet2d"))
    with pytest.raises(TransferError, match="do not fit"):
        copy_backbone_weights(model(width=4), model(width=8))


TINY = """
name = "{name}"
[features]
n_mels = 32
[model]
width = 4
[train]
epochs = {epochs}
batch_size = 8
crop_seconds = 0.5
tta_crops = 1
[folds]
k = 2
"""


@pytest.mark.slow
def test_transfer_trains_urbansound8k_folds_from_a_demo_base(workspace, tmp_path):
    import json

    from competition.__main__ import main

    base_toml, transfer_toml = tmp_path / "base.toml", tmp_path / "transfer.toml"
    base_toml.write_text(TINY.format(name="base", epochs=1))
    transfer_toml.write_text(TINY.format(name="tune", epochs=1))
    assert main(["train", "--dataset", "demo", "--experiment", str(base_toml), "--run", "base"]) == 0
    make_urbansound8k(workspace.root / "us8k", folds_with_audio=(1, 2), per_fold=6)
    assert main(["data", "--dataset", "urbansound8k", "--from", str(workspace.root / "us8k")]) == 0
    assert main(["transfer", "--dataset", "urbansound8k", "--base", "base", "--experiment", str(transfer_toml)]) == 0
    run = workspace.runs / "urbansound8k-tune-from-base"
    record = json.loads((run / "config.json").read_text())
    base_record = json.loads((workspace.runs / "base" / "config.json").read_text())
    assert record["feature_key"] == base_record["feature_key"]  # features come from the base run
    assert record["base_model"].endswith("model.keras") and len(record["labels"]) == 10
    # UrbanSound8K's own folds, 1 and 2 (the ones with audio), never reshuffled.
    assert sorted(p.parent.name for p in run.glob("fold-*/done.json")) == ["fold-1", "fold-2"]
    scores = json.loads((run / "scores.json").read_text())
    assert scores["metric"] == "accuracy" and set(scores["folds"]) == {"1", "2"}


def _base_run(tmp_path, kind: str):
    """A base run's folder as transfer reads it: its features and model."""
    import json
    from dataclasses import asdict

    from competition.config import FeatureConfig

    run_dir = tmp_path / f"base-{kind}"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({
        "feature_config": asdict(FeatureConfig(kind=kind)), "params": {"model": {"arch": "cnn2d", "width": 16}}}))
    return run_dir


def test_make_transfer_s_settings_are_the_default_recipe_s_training_on_the_bench_s_schedule(tmp_path):
    """The settings file is what bench-quality measured: the default view's plain fine-tune (its own
    training, urban sounds' augmentation included, the protocol's epochs, the last epoch kept)."""
    from benchmarks.quality.bench import recipe_experiment
    from benchmarks.quality.settings import TRANSFER
    from competition.config import DEFAULT_EXPERIMENTS, DEFAULT_TRANSFER_EXPERIMENT
    from competition.modeling.transfer import transfer_experiment

    measured = recipe_experiment(DEFAULT_EXPERIMENTS[0], TRANSFER)
    kit = transfer_experiment(_base_run(tmp_path, "logmel"), DEFAULT_TRANSFER_EXPERIMENT, "urbansound8k")
    assert kit.train == measured.train and kit.train.bin_shift > 0 and kit.train.keep_epoch == "last"


def test_a_base_on_other_features_fine_tunes_without_moving_log_mel_bins_and_says_so(tmp_path):
    from competition.config import DEFAULT_TRANSFER_EXPERIMENT
    from competition.modeling.transfer import transfer_experiment, turned_off

    logmel = transfer_experiment(_base_run(tmp_path, "logmel"), DEFAULT_TRANSFER_EXPERIMENT, "urbansound8k")
    mfcc = transfer_experiment(_base_run(tmp_path, "mfcc"), DEFAULT_TRANSFER_EXPERIMENT, "urbansound8k")
    assert (logmel.train.bin_shift, logmel.train.gain_db) == (4, 6.0)
    assert (mfcc.features.kind, mfcc.train.bin_shift, mfcc.train.gain_db) == ("mfcc", 0, 0.0)
    assert mfcc.train.learning_rate == logmel.train.learning_rate and mfcc.model.width == 16
    assert turned_off(DEFAULT_TRANSFER_EXPERIMENT, logmel, "urbansound8k") == ""
    assert turned_off(DEFAULT_TRANSFER_EXPERIMENT, mfcc, "urbansound8k") == (
        "bin_shift, gain_db off: mfcc features (the base's) have no log-mel bins to move")
    # Where the file moves no bins (another target), nothing is turned off and nothing said.
    other = transfer_experiment(tmp_path / "base-mfcc", DEFAULT_TRANSFER_EXPERIMENT, "esc10")
    assert other.train.bin_shift == 0 and turned_off(DEFAULT_TRANSFER_EXPERIMENT, other, "esc10") == ""
