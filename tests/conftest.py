"""Shared fixtures: a tiny generated demo competition (Kaggle's layout) and an isolated workspace.

The stand-in Kaggle server's fixtures (kaggle_server.py: competition_archive, kaggle_env, kaggle_server,
no_credential_leaks), make_targets.py's no_tensorflow and tiny_models.py's one_conv_arch come from
those modules loaded as plugins; test modules import only their plain helpers and constants. tests/ is
on sys.path because pytest imports this conftest from it (rootdir-relative, no __init__.py), which is
also how the plugins are found.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from competition.onednn import prefer_onednn

pytest_plugins = ["kaggle_server", "make_targets", "tiny_models"]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The kernels the kit's commands train with, in this process as in the commands the tests start.
prefer_onednn()


@pytest.fixture(scope="session")
def tiny_competition(tmp_path_factory) -> Path:
    """A small demo competition rendered once per test session (read-only: copy before changing it)."""
    from competition.datasets.demo_synth import generate_demo

    return generate_demo(tmp_path_factory.mktemp("tiny") / "demo", n_train=84, n_test=24, seed=3)


@pytest.fixture
def workspace(tmp_path, tiny_competition, monkeypatch):
    """An empty kit workspace whose data/demo is a copy of the tiny competition."""
    from competition.workspace import Workspace

    monkeypatch.setenv("KIT_HOME", str(tmp_path))
    shutil.copytree(tiny_competition, tmp_path / "data" / "demo")
    return Workspace(tmp_path)
