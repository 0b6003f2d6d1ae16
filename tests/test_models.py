"""Tests for competition.models: every backbone builds, reads any length, and keeps the backbone/head split."""

import numpy as np
import pytest

from competition.config import ModelConfig
from competition.modeling.models import BACKBONES, HEAD_PREFIX, build_model

# (arch, bins): the 1D CNN reads waveform frames (hop_length samples a frame), the others spectral bins.
ZOO = [("cnn2d", 32), ("resnet2d", 32), ("zafar2d", 20), ("cnn1d", 64)]


def test_the_zoo_is_tested_whole():
    assert sorted(arch for arch, _ in ZOO) == sorted(BACKBONES)


@pytest.mark.parametrize("arch, bins", ZOO)
def test_backbone_predicts_any_length_and_names_its_head(arch, bins):
    model = build_model(ModelConfig(arch=arch, width=4), bins, 7, mean=np.zeros(bins), std=np.ones(bins))
    for frames in (40, 97):
        probs = np.asarray(model(np.random.default_rng(0).standard_normal((3, frames, bins)).astype(np.float32)))
        assert probs.shape == (3, 7)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    head = [layer.name for layer in model.layers if layer.name.startswith(HEAD_PREFIX)]
    assert head == ["head_dropout", "head_output"]
    assert model.get_layer("input_norm") is not None


def test_backbone_weights_transfer_by_name_to_another_label_set():
    import keras

    config = ModelConfig(arch="cnn2d", width=4)
    source = build_model(config, 16, 5, mean=np.zeros(16), std=np.ones(16))
    target = build_model(config, 16, 9, mean=np.zeros(16), std=np.ones(16))
    for layer in target.layers:
        if layer.weights and not layer.name.startswith(HEAD_PREFIX):
            layer.set_weights(source.get_layer(layer.name).get_weights())
    x = np.random.default_rng(1).standard_normal((2, 30, 16)).astype(np.float32)

    def embedding(model):
        return np.asarray(keras.Model(model.input, model.get_layer("embedding").output)(x))

    np.testing.assert_allclose(embedding(source), embedding(target), rtol=1e-6)


def test_normalisation_uses_the_cache_statistics():
    mean, std = np.arange(8, dtype=np.float32), np.full(8, 2.0, np.float32)
    model = build_model(ModelConfig(width=4), 8, 3, mean=mean, std=std)
    norm = model.get_layer("input_norm")
    out = np.asarray(norm(np.broadcast_to(mean + std, (1, 5, 8)).astype(np.float32)))
    np.testing.assert_allclose(out, 1.0, rtol=1e-5)


def test_unknown_arch_is_named():
    with pytest.raises(ValueError, match="unknown model arch 'vgg99'"):
        build_model(ModelConfig(arch="vgg99"), 8, 3, mean=np.zeros(8), std=np.ones(8))
