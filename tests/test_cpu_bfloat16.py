"""Mixed bfloat16 on the CPU (`train.cpu_bfloat16`): asked for by an experiment, used only where the CPU
computes bfloat16 itself (AMX-BF16 or AVX-512 BF16 with TensorFlow's oneDNN kernels), out of the hash
when off, and said when asked for on a CPU that cannot. The device is the test's where it matters."""

from __future__ import annotations

import numpy as np
import pytest

from competition import onednn
from competition.config import ConfigError, Experiment, TrainConfig, load_experiment
from competition.modeling import train
from competition.modeling.train import DeviceSettings, device_settings, dtype_policy

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
flags\t\t: fpu sse sse2 avx avx2 {extra}
bugs\t\t: spectre_v1

processor\t: 1
flags\t\t: fpu sse sse2 avx avx2 {extra}
"""


@pytest.mark.parametrize("extra, found", [("", ()), ("avx512f avx512_bf16", ("avx512_bf16",)),
                                          ("amx_tile amx_bf16 amx_int8 avx512_bf16", ("amx_bf16", "avx512_bf16"))])
def test_the_cpus_bfloat16_flags_are_read_from_cpuinfo(tmp_path, extra, found):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(CPUINFO.format(extra=extra))
    assert onednn.cpu_bfloat16_flags(cpuinfo) == found


def test_no_cpuinfo_means_no_bfloat16(tmp_path, monkeypatch):
    assert onednn.cpu_bfloat16_flags(tmp_path / "absent") == ()
    monkeypatch.setattr(onednn.platform, "machine", lambda: "x86_64")
    assert onednn.cpu_computes_bfloat16(tmp_path / "absent") is False


def test_a_bfloat16_cpu_needs_onednn_and_x86(tmp_path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(CPUINFO.format(extra="amx_bf16"))
    monkeypatch.setattr(onednn.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(onednn, "onednn_is_on", lambda: True)
    assert onednn.cpu_computes_bfloat16(cpuinfo) is True
    monkeypatch.setattr(onednn, "onednn_is_on", lambda: False)  # Eigen's bfloat16 is emulated
    assert onednn.cpu_computes_bfloat16(cpuinfo) is False
    monkeypatch.setattr(onednn, "onednn_is_on", lambda: True)
    monkeypatch.setattr(onednn.platform, "machine", lambda: "aarch64")
    assert onednn.cpu_computes_bfloat16(cpuinfo) is False


def test_the_setting_parses_is_checked_and_stays_out_of_the_hash_when_off(tmp_path):
    path = tmp_path / "bf16.toml"
    path.write_text('name = "bf16"\n[train]\ncpu_bfloat16 = true\n')
    assert load_experiment(path).train.cpu_bfloat16 is True
    with pytest.raises(ConfigError, match="cpu_bfloat16 must be true or false"):
        TrainConfig(cpu_bfloat16=1)
    before = Experiment(name="x", train=TrainConfig()).hash
    assert Experiment(name="x", train=TrainConfig(cpu_bfloat16=False)).hash == before
    assert Experiment(name="x", train=TrainConfig(cpu_bfloat16=True)).hash != before


@pytest.mark.parametrize("asked, device, policy", [
    (True, "CPU-bfloat16", "mixed_bfloat16"),
    (True, "CPU", "float32"),            # asked for, but this CPU would emulate it
    (False, "CPU-bfloat16", "float32"),  # not asked for
    (True, "GPU", "float32"),            # a GPU has its own setting
])
def test_the_policy_follows_the_setting_and_the_cpu(asked, device, policy):
    assert device_settings(TrainConfig(batch_size=16, cpu_bfloat16=asked), device) == DeviceSettings(16, policy)


def test_under_bfloat16_the_softmax_head_stays_float32_and_predictions_are_float32():
    from competition.config import ModelConfig
    from competition.modeling.models import build_model

    with dtype_policy("mixed_bfloat16"):
        model = build_model(ModelConfig(width=4), 8, 3, mean=np.zeros(8), std=np.ones(8))
    assert model.get_layer("block1_1_conv").compute_dtype == "bfloat16"
    assert model.get_layer("head_output").dtype_policy.name == "float32"
    probs = np.asarray(model(np.random.default_rng(0).standard_normal((2, 20, 8)).astype(np.float32)))
    assert probs.dtype == np.float32 and np.allclose(probs.sum(axis=1), 1, atol=1e-5)


def test_training_says_its_device_and_policy_and_when_bfloat16_is_not_computed(workspace, monkeypatch, capsys):
    from test_gpu_settings import trained_with

    asked = TrainConfig(batch_size=16, cpu_bfloat16=True)
    assert trained_with(workspace, monkeypatch, "CPU-bfloat16", asked) == {"batch_size": 16,
                                                                          "policy": "mixed_bfloat16"}
    assert "training on the CPU: batch size 16, dtype policy mixed_bfloat16" in capsys.readouterr().err
    assert trained_with(workspace, monkeypatch, "CPU", asked) == {"batch_size": 16, "policy": "float32"}
    err = capsys.readouterr().err
    assert "dtype policy float32 (train.cpu_bfloat16 asks for bfloat16, which this CPU" in err



@pytest.mark.slow
def test_a_fold_trains_in_bfloat16_and_its_done_file_says_so(workspace, monkeypatch):
    import keras
    from test_train import TINY

    from competition.datasets.registry import get_dataset
    from competition.modeling.runs import Run

    monkeypatch.setattr(train, "training_device", lambda: "CPU-bfloat16")
    dataset = get_dataset("demo")
    experiment = TINY.with_overrides(train={"epochs": 1, "cpu_bfloat16": True})
    run_dir = train.train_experiment(workspace, dataset, dataset.index(workspace.dataset_dir("demo")), experiment,
                                     only_folds=[0])
    run = Run(run_dir)
    assert run.fold_summary(0)["dtype_policy"] == "mixed_bfloat16"
    assert keras.config.dtype_policy().name == "float32"  # given back
    model = keras.models.load_model(run.model_path(0))
    assert model.get_layer("block1_1_conv").compute_dtype == "bfloat16"
    oof = run.fold_predictions(0, "oof")
    assert np.isfinite(oof.probs).all() and oof.probs.dtype == np.float32 and len(oof.fnames) > 0
