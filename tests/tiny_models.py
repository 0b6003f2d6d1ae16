"""A one-convolution backbone for tests that check bookkeeping (which runs, folds, bases and rows a
step makes, what a leakage check refuses), which any model shows: tracing the zoo's deeper graphs
for every fold of every tiny run would be most of those tests' time. Loaded by conftest as a plugin:
a test module imports ONE_CONV_ARCH and asks for the `one_conv_arch` fixture, which registers the
backbone for that test only (the zoo's own tests see just the zoo)."""

from __future__ import annotations

import pytest

ONE_CONV_ARCH = "test-one-conv"


def one_conv_backbone(x, config):
    from keras import layers

    from competition.modeling.models import pool_time

    return pool_time(layers.Conv1D(config.width, 3, padding="same", name="conv")(x))


@pytest.fixture
def one_conv_arch(monkeypatch) -> str:
    from competition.modeling.models import BACKBONES

    monkeypatch.setitem(BACKBONES, ONE_CONV_ARCH, one_conv_backbone)
    return ONE_CONV_ARCH
