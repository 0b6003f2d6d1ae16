"""The model zoo: a backbone plus a named head, channels-last, any input length.

Layer names are stable: everything except the layers named `head_*` is the backbone, so base
weights trained on one label set load into a model for another (transfer) layer by layer, by name.
Inputs are (time, bins) feature frames, standardised inside the model (`input_norm`, whose mean and
variance come from the training features) so a saved model predicts from raw cached features.
"""

from __future__ import annotations

import numpy as np

from competition.config import ModelConfig

HEAD_PREFIX = "head_"


def _conv_block(x, filters: int, name: str, *, pool: tuple[int, int] | None):
    from keras import layers

    for j in (1, 2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{j}")(x)
        x = layers.BatchNormalization(name=f"{name}_bn{j}")(x)
        x = layers.Activation("relu", name=f"{name}_relu{j}")(x)
    if pool:
        x = layers.MaxPooling2D(pool, name=f"{name}_pool")(x)
    return x


def cnn2d_backbone(x, config: ModelConfig):
    """VGG-style 2D CNN on log-mel or MFCC frames: 4 blocks, then mean-over-time of max-over-bins."""
    from keras import layers

    x = layers.Reshape((-1, x.shape[-1], 1), name="add_channel")(x)
    width = config.width
    for i, (multiplier, pool) in enumerate([(1, (2, 2)), (2, (2, 2)), (4, (2, 2)), (8, None)], start=1):
        x = _conv_block(x, width * multiplier, f"block{i}", pool=pool)
    x = layers.MaxPooling2D((1, x.shape[2]), name="max_over_bins")(x)
    x = layers.Reshape((-1, x.shape[-1]), name="drop_bins_axis")(x)
    mean = layers.GlobalAveragePooling1D(name="mean_over_time")(x)
    peak = layers.GlobalMaxPooling1D(name="max_over_time")(x)
    return layers.Concatenate(name="embedding")([mean, peak])


BACKBONES = {"cnn2d": cnn2d_backbone}


def build_model(config: ModelConfig, n_bins: int, n_classes: int, *, mean: np.ndarray, std: np.ndarray):
    import keras
    from keras import layers

    if config.arch not in BACKBONES:
        raise ValueError(f"unknown model arch {config.arch!r}; known: {', '.join(BACKBONES)}")
    inputs = keras.Input(shape=(None, n_bins), name="features")
    x = layers.Normalization(axis=-1, mean=np.asarray(mean, np.float32), variance=np.asarray(std, np.float32) ** 2,
                             name="input_norm")(inputs)
    embedding = BACKBONES[config.arch](x, config)
    x = layers.Dropout(config.dropout, name=f"{HEAD_PREFIX}dropout")(embedding)
    outputs = layers.Dense(n_classes, activation="softmax", name=f"{HEAD_PREFIX}output")(x)
    return keras.Model(inputs, outputs, name=config.arch)
