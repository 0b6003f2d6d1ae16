"""The kit's processes ask TensorFlow for its oneDNN CPU kernels on x86-64, before it is imported, and
keep a setting the user made; make bench's CPU-kernel rows really run each setting."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from competition import onednn
from competition.onednn import VARIABLE, prefer_onednn

ROOT = Path(__file__).resolve().parents[1]
ON_X86 = pytest.mark.skipif(platform.machine().lower() not in onednn.X86_64,
                            reason="oneDNN is asked for on x86-64 only")


@pytest.fixture
def before_tensorflow(monkeypatch):
    """This process as it is before TensorFlow is imported (pytest's may have imported it already)."""
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)


def test_asked_for_on_x86_64(before_tensorflow):
    environ: dict[str, str] = {}
    assert prefer_onednn(environ, machine="x86_64") is True
    assert environ == {VARIABLE: "1"}
    environ = {}
    assert prefer_onednn(environ, machine="AMD64") is True and environ[VARIABLE] == "1"


@pytest.mark.parametrize("chosen, on", [("0", False), ("false", False), ("1", True), ("true", True)])
def test_the_users_setting_is_kept(before_tensorflow, chosen, on):
    environ = {VARIABLE: chosen}
    assert prefer_onednn(environ, machine="x86_64") is on
    assert environ == {VARIABLE: chosen}


def test_left_alone_on_other_machines_and_once_tensorflow_is_imported(before_tensorflow, monkeypatch):
    environ: dict[str, str] = {}
    assert prefer_onednn(environ, machine="aarch64") is False and environ == {}
    monkeypatch.setitem(sys.modules, "tensorflow", object())  # too late: TensorFlow has read the variable
    assert prefer_onednn(environ, machine="x86_64") is False and environ == {}


def test_the_command_line_asks_before_anything_runs(before_tensorflow, monkeypatch):
    from competition.__main__ import main

    monkeypatch.setattr(onednn.platform, "machine", lambda: "x86_64")
    monkeypatch.setenv("VERBOSE", "1")  # no start-up finder installed in this process
    monkeypatch.delenv(VARIABLE, raising=False)
    with pytest.raises(SystemExit):
        main(["--help"])
    assert os.environ[VARIABLE] == "1"


def _python(code: str, **env: str) -> str:
    environ = {key: value for key, value in os.environ.items() if key != VARIABLE}
    environ.update(PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3", **env)
    result = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


TENSORFLOW_SAYS = ("from tensorflow.python.util import _pywrap_util_port; "
                   "print(_pywrap_util_port.IsMklEnabled())")


@pytest.mark.slow
@ON_X86
def test_tensorflow_runs_with_oneDNN_when_the_kit_asked_and_without_when_the_user_said_no():
    ask = "from competition.onednn import prefer_onednn; prefer_onednn(); "
    assert _python(ask + TENSORFLOW_SAYS) == "True"
    assert _python(ask + TENSORFLOW_SAYS, **{VARIABLE: "0"}) == "False"


@pytest.mark.slow
@ON_X86
def test_the_bench_times_each_setting_in_its_own_process():
    from benchmarks.training import DEFAULT_RECIPE, _cpu_kernel_rounds

    rounds = _cpu_kernel_rounds(DEFAULT_RECIPE, length=16, n_bins=16, n_classes=3, n_batches=1, rounds=1, seed=0)
    # mixed bfloat16 too where the CPU computes it (the round checks the model computed in bfloat16)
    assert set(rounds) == {"onednn", "eigen"} | ({"bfloat16"} if onednn.cpu_bfloat16_flags() else set())
    for (wall, cpu, faults), in rounds.values():
        assert wall > 0 and cpu > 0 and faults >= 0


@pytest.mark.slow
@ON_X86
def test_the_bench_times_the_wider_recipe_in_the_settings_it_names():
    from benchmarks.training import WIDER_RECIPE, _cpu_kernel_rounds
    from competition.config import load_experiment

    assert load_experiment(WIDER_RECIPE).train.cpu_bfloat16  # the recipe whose bfloat16 gain the bench shows
    rounds = _cpu_kernel_rounds(WIDER_RECIPE, length=16, n_bins=16, n_classes=3, n_batches=1, rounds=2, seed=0,
                                kernels=("bfloat16",))
    assert list(rounds) == ["bfloat16"] and len(rounds["bfloat16"]) == 2  # and it computed in bfloat16 (checked)
