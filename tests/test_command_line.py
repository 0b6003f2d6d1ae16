"""The command line: every make target is its step with the same defaults, and the kit's errors
read as one line with exit code 2 while anything else keeps its traceback."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import pytest

from competition import __main__ as command_line
from competition.config import DEFAULT_EXPERIMENTS
from competition.errors import KitError

REPO = Path(__file__).resolve().parents[1]


def make_dry_run(*args: str) -> list[str]:
    """The commands `make -n` would run, without running them."""
    done = subprocess.run(["make", "--no-print-directory", "-n", "-o", ".venv/.installed", *args], cwd=REPO,
                          capture_output=True, text=True, check=True)
    return [" ".join(line.split()) for line in done.stdout.splitlines() if " -m competition " in line]


@pytest.mark.parametrize("target", ["features", "train", "ensemble", "data"])
def test_a_make_target_without_variables_is_its_step_with_the_kits_defaults(target):
    assert make_dry_run(target) == [f".venv/bin/python -m competition {target}"]


def test_make_passes_on_the_variables_it_is_given():
    assert make_dry_run("train", "DATASET=esc10", "EXPERIMENTS=a.toml b.toml") == [
        ".venv/bin/python -m competition train --dataset esc10 --experiment a.toml --experiment b.toml"]
    assert make_dry_run("ensemble", "RUNS=r1 r2", "NAME=x") == [
        ".venv/bin/python -m competition ensemble r1 r2 --name x"]


def test_the_steps_default_to_the_configs_experiments():
    args = command_line.build_parser().parse_args(["train"])
    assert command_line._experiment_paths(args) == list(DEFAULT_EXPERIMENTS)
    assert [p.name for p in DEFAULT_EXPERIMENTS] == ["logmel-cnn.toml", "mfcc-cnn.toml", "logmel-bins-cnn.toml"]
    assert all(path.is_file() for path in DEFAULT_EXPERIMENTS)


def run_with_handler(monkeypatch, handler) -> int:
    parser = argparse.ArgumentParser()
    parser.set_defaults(handler=handler)
    monkeypatch.setattr(command_line, "build_parser", lambda: parser)
    return command_line.main([])


def test_a_kit_error_is_one_line_and_exit_code_2(monkeypatch, capsys):
    class SomeStepError(KitError, ValueError):
        pass

    def fails(args, workspace):
        raise SomeStepError("data/x/train.csv: label 'Bark ' at line 7 is not in the vocabulary")

    assert run_with_handler(monkeypatch, fails) == 2
    captured = capsys.readouterr()
    assert captured.err == "error: data/x/train.csv: label 'Bark ' at line 7 is not in the vocabulary\n"
    assert "Traceback" not in captured.err


def test_any_other_error_keeps_its_traceback(monkeypatch):
    def bug(args, workspace):
        raise ValueError("a bug, not a message for the user")

    with pytest.raises(ValueError, match="a bug"):
        run_with_handler(monkeypatch, bug)


def test_every_error_class_of_the_kit_is_a_kit_error():
    import importlib
    import inspect
    import pkgutil

    import competition

    classes = []
    for module in pkgutil.walk_packages(competition.__path__, "competition."):
        for _, value in inspect.getmembers(importlib.import_module(module.name), inspect.isclass):
            if issubclass(value, Exception) and value.__module__.startswith("competition"):
                classes.append(value)
    assert len(classes) >= 12
    assert [c.__qualname__ for c in classes if not issubclass(c, KitError)] == []
