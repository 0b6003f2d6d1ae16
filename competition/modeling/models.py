"""The model zoo: a backbone plus a named head, channels-last, any input length.

Layer names are stable: everything except the layers named `head_*` is the backbone, so base
weights trained on one label set load into a model for another (transfer) layer by layer, by name.
Inputs are (time, bins) feature frames, standardised inside the model (`input_norm`, whose mean and
variance come from the training features) so a saved model predicts from raw cached features.
Every backbone ends in global pooling over time, so a model trained on crops predicts any length;
the 2D ones first pool over bins (max, or `bins_pooling = "keep"` to keep every bin's channels).

    cnn2d     VGG-style 2D CNN on log-mel or MFCC frames (the default recipe)
    resnet2d  residual 2D CNN: cheap strided stem, then most of the depth at low resolution
    cnn1d     1D CNN on the raw waveform (features kind "wave": frames of hop_length samples)
    zafar2d   the peer baseline: Zafar's Kaggle kernel CNN (4 conv layers, 4x10 kernels, Dense 64)
"""

from __future__ import annotations

import numpy as np

from competition.config import ModelConfig
from competition.errors import KitError

HEAD_PREFIX = "head_"
# Keras' default of 0.99 leaves 0.99**300 = 5% of the initial variance in the moving statistics after
# 300 steps, which is a whole training run on a small dataset: inference then normalises with wrong
# statistics. 0.9 forgets the start within 50 steps (0.9**50 < 0.01).
BN_MOMENTUM = 0.9


class TransferError(KitError, ValueError):
    """Base weights do not fit a new model's backbone."""


class ModelError(KitError, ValueError):
    pass


# Every backbone by its `arch` name in experiment files; @backbone("name") adds one.
BACKBONES: dict = {}


def backbone(arch: str):
    """Register a backbone function `(x, ModelConfig) -> embedding` under `arch`."""
    def register(function):
        if arch in BACKBONES:
            raise ModelError(f"two backbones named {arch!r}")
        BACKBONES[arch] = function
        return function
    return register


def _batch_norm(name: str):
    from keras import layers

    return layers.BatchNormalization(momentum=BN_MOMENTUM, name=name)


def _conv_bn_relu(x, filters: int, name: str, *, kernel=3, strides=1, relu: bool = True):
    from keras import layers

    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = _batch_norm(f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x) if relu else x


def _add_channel(x):
    from keras import layers

    return layers.Reshape((-1, x.shape[-1], 1), name="add_channel")(x)


def _pool_bins_then_time(x, config: ModelConfig):
    """(time, bins, channels) maps -> embedding: over bins, max ("max"), or every bin's channels side
    by side ("keep": where in frequency a pattern sits stays visible); then mean and max over time."""
    from keras import layers

    if config.bins_pooling == "max":
        x = layers.MaxPooling2D((1, x.shape[2]), name="max_over_bins")(x)
    x = layers.Reshape((-1, x.shape[2] * x.shape[3]), name="drop_bins_axis")(x)
    return pool_time(x)


def pool_time(x):
    """(time, channels) -> mean and max over time, concatenated: the average sound and its peak."""
    from keras import layers

    mean = layers.GlobalAveragePooling1D(name="mean_over_time")(x)
    peak = layers.GlobalMaxPooling1D(name="max_over_time")(x)
    return layers.Concatenate(name="embedding")([mean, peak])


@backbone("cnn2d")
def cnn2d_backbone(x, config: ModelConfig):
    """VGG-style: 4 blocks of two 3x3 convolutions, widths w, 2w, 4w, 8w, 2x2 max-pooling between."""
    from keras import layers

    x = _add_channel(x)
    for i, (multiplier, pool) in enumerate([(1, True), (2, True), (4, True), (8, False)], start=1):
        for j in (1, 2):
            x = _conv_bn_relu(x, config.width * multiplier, f"block{i}_{j}")
        if pool:
            x = layers.MaxPooling2D((2, 2), name=f"block{i}_pool")(x)
    return _pool_bins_then_time(x, config)


@backbone("resnet2d")
def resnet2d_backbone(x, config: ModelConfig):
    """Residual CNN: a 2x2-strided stem keeps full-resolution work small, and three residual stages
    (widths 2w, 4w, 8w; two blocks each, the first of each later stage strided) put the depth where
    a multiply-add is cheap. Twice cnn2d's depth and about twice its multiply-adds at the same width."""
    from keras import layers

    x = _add_channel(x)
    x = _conv_bn_relu(x, config.width, "stem1")
    x = _conv_bn_relu(x, config.width * 2, "stem2", strides=2)
    for stage, multiplier in enumerate((2, 4, 8), start=1):
        for block in (1, 2):
            name = f"stage{stage}_{block}"
            strides = 2 if stage > 1 and block == 1 else 1
            shortcut = x
            if strides > 1 or x.shape[-1] != config.width * multiplier:
                shortcut = _conv_bn_relu(x, config.width * multiplier, f"{name}_shortcut", kernel=1,
                                         strides=strides, relu=False)
            y = _conv_bn_relu(x, config.width * multiplier, f"{name}_a", strides=strides)
            y = _conv_bn_relu(y, config.width * multiplier, f"{name}_b", relu=False)
            x = layers.Activation("relu", name=f"{name}_out")(layers.Add(name=f"{name}_add")([shortcut, y]))
    return _pool_bins_then_time(x, config)


@backbone("cnn1d")
def cnn1d_backbone(x, config: ModelConfig):
    """Raw waveform: a strided 1D convolution learns a filterbank, then 1D blocks with 4x pooling."""
    from keras import layers

    x = layers.Reshape((-1, 1), name="waveform")(x)
    x = layers.Conv1D(config.width, 11, strides=4, padding="same", use_bias=False, name="frontend_conv")(x)
    x = _batch_norm("frontend_bn")(x)
    x = layers.Activation("relu", name="frontend_relu")(x)
    for i, multiplier in enumerate((1, 2, 4, 8), start=1):
        x = layers.Conv1D(config.width * multiplier, 3, padding="same", use_bias=False, name=f"block{i}_conv")(x)
        x = _batch_norm(f"block{i}_bn")(x)
        x = layers.Activation("relu", name=f"block{i}_relu")(x)
        if i < 4:
            x = layers.MaxPooling1D(4, name=f"block{i}_pool")(x)
    return pool_time(x)


@backbone("zafar2d")
def zafar2d_backbone(x, config: ModelConfig):
    """Zafar's kernel ("Beginner's Guide to Audio Data", Freesound 2018): four 32-filter 4x10 convs
    with BN, ReLU and 2x2 max-pooling, then Dense 64. Its Flatten needs one fixed input length;
    mean and max over time take its place so the model reads any length like the rest of the zoo."""
    from keras import layers

    x = layers.Permute((2, 1), name="bins_first")(x)  # the kernel's layout: (coefficients, frames)
    x = layers.Reshape((x.shape[1], -1, 1), name="add_channel")(x)
    for i in range(1, 5):
        x = _conv_bn_relu(x, 32, f"conv{i}", kernel=(4, 10))
        x = layers.MaxPooling2D((2, 2), name=f"conv{i}_pool")(x)
    x = layers.Permute((2, 1, 3), name="frames_first")(x)
    x = layers.Reshape((-1, x.shape[2] * x.shape[3]), name="flatten_bins")(x)
    x = pool_time(x)
    x = layers.Dense(64, use_bias=False, name="dense")(x)
    x = _batch_norm("dense_bn")(x)
    return layers.Activation("relu", name="dense_relu")(x)


def build_model(config: ModelConfig, n_bins: int, n_classes: int, *, mean: np.ndarray, std: np.ndarray):
    import keras
    from keras import layers

    if config.arch not in BACKBONES:
        raise ModelError(f"unknown model arch {config.arch!r}; known: {', '.join(BACKBONES)}")
    inputs = keras.Input(shape=(None, n_bins), name="features")
    x = layers.Normalization(axis=-1, mean=np.asarray(mean, np.float32), variance=np.asarray(std, np.float32) ** 2,
                             name="input_norm")(inputs)
    embedding = BACKBONES[config.arch](x, config)
    x = layers.Dropout(config.dropout, name=f"{HEAD_PREFIX}dropout")(embedding)
    # float32 whatever the global policy: under mixed precision a float16 softmax rounds small
    # probabilities to 0, and the loss and the saved predictions want them.
    outputs = layers.Dense(n_classes, activation="softmax", dtype="float32", name=f"{HEAD_PREFIX}output")(x)
    return keras.Model(inputs, outputs, name=config.arch)


def copy_backbone_weights(source, target) -> list[str]:
    """Copy every non-head layer's weights from `source` to the same-named layer of `target`."""
    source_layers = {layer.name: layer for layer in source.layers}
    copied = []
    for layer in target.layers:
        if layer.name.startswith(HEAD_PREFIX) or not layer.weights:
            continue
        if layer.name not in source_layers:
            raise TransferError(f"layer {layer.name!r} of the new model is not in the base model "
                                f"({source.name}); are both built from the same arch?")
        weights = source_layers[layer.name].get_weights()
        shapes = [w.shape for w in weights], [tuple(w.shape) for w in layer.weights]
        if [tuple(s) for s in shapes[0]] != shapes[1]:
            raise TransferError(f"layer {layer.name!r}: base weights {shapes[0]} do not fit {shapes[1]}")
        layer.set_weights(weights)
        copied.append(layer.name)
    if not copied:
        raise TransferError(f"no backbone layer copied from {source.name}")
    return copied


def backbone_layers(model) -> list:
    """The layers a transfer copies (and may freeze): every layer with weights but the `head_*` ones."""
    return [layer for layer in model.layers if layer.weights and not layer.name.startswith(HEAD_PREFIX)]


def set_backbone_trainable(model, trainable: bool) -> None:
    """Freeze (False) or unfreeze the backbone. A frozen batch normalisation also runs in inference
    mode, so its moving statistics stay too. A compiled model's train step must be traced again."""
    for layer in backbone_layers(model):
        layer.trainable = trainable


def backbone_is_frozen(model) -> bool:
    return any(not layer.trainable for layer in backbone_layers(model))
