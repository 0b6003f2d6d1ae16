import numpy as np
import pytest

from competition.config import ModelConfig
from competition.models import build_model
from competition.transfer import TransferError, copy_backbone_weights


def model(arch="cnn2d", n_classes=5, n_bins=16, seed=0, width=4):
    import keras

    keras.utils.set_random_seed(seed)
    return build_model(ModelConfig(arch=arch, width=width), n_bins, n_classes, mean=np.zeros(n_bins), std=np.ones(n_bins))


def test_backbone_weights_copy_by_name_and_the_head_stays_new():
    base, target = model(n_classes=41, seed=1), model(n_classes=10, seed=2)
    head_before = [w.copy() for w in target.get_layer("head_output").get_weights()]
    copied = copy_backbone_weights(base, target)
    assert any("conv" in name for name in copied) and any("bn" in name for name in copied)
    for name in copied:
        for a, b in zip(base.get_layer(name).get_weights(), target.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    assert target.get_layer("head_output").get_weights()[0].shape == (head_before[0].shape[0], 10)
    np.testing.assert_array_equal(target.get_layer("head_output").get_weights()[0], head_before[0])
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
