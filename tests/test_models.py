"""Tests for competition.models: every backbone builds, reads any length, and keeps the backbone/head split."""

import numpy as np
import pytest

from competition.config import ModelConfig
from competition.errors import KitError
from competition.modeling.models import (
    BACKBONES,
    HEAD_PREFIX,
    ModelError,
    TransferError,
    build_model,
    copy_backbone_weights,
)

# Input bins per backbone where the default does not fit: zafar2d's 4x10 kernels and four 2x2 poolings
# want MFCC-sized inputs, the 1D CNN reads waveform frames (hop_length samples a frame).
DEFAULT_BINS = 32
INPUT_BINS = {"zafar2d": 20, "cnn1d": 64}
# Every registered backbone, so a new one is tested without editing this file.
ZOO = [(arch, INPUT_BINS.get(arch, DEFAULT_BINS)) for arch in sorted(BACKBONES)]


def model(arch="cnn2d", n_bins=16, n_classes=5, seed=0, width=4):
    import keras

    keras.utils.set_random_seed(seed)
    return build_model(ModelConfig(arch=arch, width=width), n_bins, n_classes,
                       mean=np.zeros(n_bins), std=np.ones(n_bins))


def test_input_bins_name_only_registered_backbones():
    # ZOO covers BACKBONES by construction; a bins entry for a renamed or removed backbone is stale,
    # and the documented zoo must be registered by the time the tests are collected (else ZOO is empty).
    assert set(INPUT_BINS) <= set(BACKBONES)
    assert {"cnn2d", "resnet2d", "cnn1d", "zafar2d"} <= set(BACKBONES)


@pytest.mark.parametrize("arch, bins", ZOO)
def test_backbone_predicts_any_length_and_names_its_head(arch, bins):
    import keras
    from keras import layers

    model = build_model(ModelConfig(arch=arch, width=4), bins, 7, mean=np.zeros(bins), std=np.ones(bins))
    for frames in (40, 97):
        probs = np.asarray(model(np.random.default_rng(0).standard_normal((3, frames, bins)).astype(np.float32)))
        assert probs.shape == (3, 7)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    head = [layer.name for layer in model.layers if layer.name.startswith(HEAD_PREFIX)]
    assert head == ["head_dropout", "head_output"]
    # The standardisation is the first layer after the input, and the only one that reads it.
    inputs, norm = model.layers[:2]
    assert isinstance(inputs, layers.InputLayer) and isinstance(norm, layers.Normalization)
    assert norm.name == "input_norm" and norm.input is model.inputs[0]
    readers = [layer.name for layer in model.layers[1:]
               if any(tensor is model.inputs[0] for tensor in keras.tree.flatten(layer.input))]
    assert readers == ["input_norm"]


def test_backbone_weights_transfer_by_name_to_another_label_set():
    import keras

    source, target = model(n_classes=5, seed=1), model(n_classes=9, seed=2)
    x = np.random.default_rng(1).standard_normal((2, 30, 16)).astype(np.float32)

    def embedding(model):
        return np.asarray(keras.Model(model.input, model.get_layer("embedding").output)(x))

    assert not np.allclose(embedding(source), embedding(target))  # differently initialised
    head_before = target.get_layer("head_output").get_weights()

    copied = copy_backbone_weights(source, target)

    # Every backbone layer with weights, in the target's order; no head layer.
    assert copied == [layer.name for layer in target.layers
                      if layer.weights and not layer.name.startswith(HEAD_PREFIX)]
    assert "block1_1_conv" in copied and "block4_2_bn" in copied
    np.testing.assert_allclose(embedding(source), embedding(target), rtol=1e-6)
    for before, after in zip(head_before, target.get_layer("head_output").get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)


def test_backbone_transfer_refuses_another_arch_naming_the_missing_layer():
    with pytest.raises(TransferError, match="layer 'conv1_conv' of the new model is not in the base model"):
        copy_backbone_weights(model(arch="cnn2d"), model(arch="zafar2d"))


@pytest.mark.parametrize("source, target, layer", [
    (dict(width=4), dict(width=8), "block1_1_conv"),  # other width: every conv's shape differs
    (dict(arch="zafar2d", n_bins=20), dict(arch="zafar2d", n_bins=40), "dense"),  # bins reach zafar2d's Dense
], ids=["width", "zafar2d-bins"])
def test_backbone_transfer_refuses_weights_of_another_shape(source, target, layer):
    with pytest.raises(TransferError, match=rf"layer '{layer}': base weights .* do not fit"):
        copy_backbone_weights(model(**source), model(**target))


def test_normalisation_uses_the_cache_statistics():
    mean, std = np.arange(8, dtype=np.float32), np.full(8, 2.0, np.float32)
    model = build_model(ModelConfig(width=4), 8, 3, mean=mean, std=std)
    norm = model.get_layer("input_norm")
    out = np.asarray(norm(np.broadcast_to(mean + std, (1, 5, 8)).astype(np.float32)))
    np.testing.assert_allclose(out, 1.0, rtol=1e-5)


def test_unknown_arch_is_a_model_error_naming_the_known_ones():
    with pytest.raises(ModelError, match=r"unknown model arch 'vgg99'; known: .*cnn2d") as raised:
        build_model(ModelConfig(arch="vgg99"), 8, 3, mean=np.zeros(8), std=np.ones(8))
    assert isinstance(raised.value, KitError)  # so the command line shows it as one line, exit code 2
