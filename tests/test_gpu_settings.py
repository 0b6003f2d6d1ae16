"""The GPU settings of `[train]` (issue 11, item 3): a batch size and mixed precision used only where
TensorFlow sees a GPU, out of the hash at their neutral values, ignored on the CPU. The device is the
test's (train.training_device replaced): no GPU is needed, and no real GPU training happens."""

import numpy as np
import pytest

from competition.config import DEFAULT_EXPERIMENTS, ConfigError, Experiment, TrainConfig, load_experiment
from competition.modeling import train
from competition.modeling.train import DeviceSettings, device_settings, dtype_policy

GPU_TRAIN = TrainConfig(batch_size=32, gpu_batch_size=128, gpu_mixed_precision=True)


def test_the_gpu_settings_parse_from_toml(tmp_path):
    path = tmp_path / "gpu.toml"
    path.write_text('name = "gpu"\n[train]\nbatch_size = 32\ngpu_batch_size = 128\ngpu_mixed_precision = true\n')
    settings = load_experiment(path).train
    assert (settings.batch_size, settings.gpu_batch_size, settings.gpu_mixed_precision) == (32, 128, True)


def test_a_negative_gpu_batch_size_or_a_non_boolean_precision_is_refused():
    with pytest.raises(ConfigError, match="gpu_batch_size must be 0"):
        TrainConfig(gpu_batch_size=-1)
    with pytest.raises(ConfigError, match="gpu_mixed_precision must be true or false"):
        TrainConfig(gpu_mixed_precision=1)


def test_neutral_values_keep_the_hash_and_others_change_it():
    before = Experiment(name="x", train=TrainConfig()).hash
    assert Experiment(name="x", train=TrainConfig(gpu_batch_size=0, gpu_mixed_precision=False)).hash == before
    assert Experiment(name="x", train=TrainConfig(gpu_batch_size=128)).hash != before
    assert Experiment(name="x", train=TrainConfig(gpu_mixed_precision=True)).hash != before
    for path in DEFAULT_EXPERIMENTS:  # the default files leave them neutral: their runs keep their hashes
        params = load_experiment(path).output_params()["train"]
        assert "gpu_batch_size" not in params and "gpu_mixed_precision" not in params


def test_on_a_gpu_the_gpu_settings_are_used():
    assert device_settings(GPU_TRAIN, "GPU") == DeviceSettings(128, "mixed_float16")
    # gpu_batch_size 0: the plain batch size; no mixed precision unless asked
    assert device_settings(TrainConfig(batch_size=32), "GPU") == DeviceSettings(32, "float32")


def test_on_the_cpu_the_gpu_settings_are_ignored():
    assert device_settings(GPU_TRAIN, "CPU") == DeviceSettings(32, "float32")


def test_the_policy_is_set_while_training_and_given_back():
    import keras

    before = keras.config.dtype_policy().name
    with dtype_policy("mixed_float16"):
        assert keras.config.dtype_policy().name == "mixed_float16"
    assert keras.config.dtype_policy().name == before


def test_under_mixed_precision_the_softmax_head_stays_float32():
    from competition.config import ModelConfig
    from competition.modeling.models import build_model

    with dtype_policy("mixed_float16"):
        model = build_model(ModelConfig(width=4), 8, 3, mean=np.zeros(8), std=np.ones(8))
    assert model.get_layer("block1_1_conv").dtype_policy.name == "mixed_float16"
    assert model.get_layer("head_output").dtype_policy.name == "float32"
    probs = np.asarray(model(np.zeros((2, 20, 8), np.float32)))
    assert probs.dtype == np.float32


def trained_with(workspace, monkeypatch, device: str, settings: TrainConfig) -> dict:
    """The batch size and dtype policy the fold trainer saw on `device` (instead of training)."""
    import keras
    from test_train import TINY

    from competition.datasets.registry import get_dataset
    from competition.modeling.runs import Run

    seen = {}

    def record_instead_of_training(trainer, progress):
        seen.update(batch_size=trainer.experiment.train.batch_size, policy=keras.config.dtype_policy().name)
        return {}

    monkeypatch.setattr(train, "training_device", lambda: device)
    monkeypatch.setattr(train.FoldTrainer, "run", record_instead_of_training)
    dataset = get_dataset("demo")
    experiment = TINY.with_overrides(train={"batch_size": settings.batch_size,
                                            "gpu_batch_size": settings.gpu_batch_size,
                                            "gpu_mixed_precision": settings.gpu_mixed_precision,
                                            "cpu_bfloat16": settings.cpu_bfloat16})
    run_dir = train.train_experiment(workspace, dataset, dataset.index(workspace.dataset_dir("demo")), experiment,
                                     run_name=device, only_folds=[0])
    assert Run(run_dir).config()["hash"] == experiment.hash  # the experiment's own, on any device
    return seen


def test_training_on_a_gpu_takes_the_gpu_batch_size_and_policy(workspace, monkeypatch):
    import keras

    assert trained_with(workspace, monkeypatch, "GPU", GPU_TRAIN) == {"batch_size": 128, "policy": "mixed_float16"}
    assert keras.config.dtype_policy().name == "float32"  # given back after training
    assert trained_with(workspace, monkeypatch, "CPU", GPU_TRAIN) == {"batch_size": 32, "policy": "float32"}
