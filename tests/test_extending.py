"""The README's recipes hold: a new dataset is one module plus its registry line, a new model one
backbone function plus one experiment file, and a new setting at its default keeps old runs' hashes.

The dataset and model recipes are followed as the README writes them (its code blocks are copied
into a copy of the kit) and the copy then obtains the new dataset and trains the new model through
the command line, as a user would.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from competition.config import Experiment, TrainConfig, setting

REPO = Path(__file__).resolve().parents[1]


def readme_blocks() -> dict[str, str]:
    """{path: code} of the README's code blocks whose first line is a comment naming a file."""
    blocks = {}
    for code in re.findall(r"```(?:python|toml)\n(.*?)```", (REPO / "README.md").read_text(), re.S):
        first, _, rest = code.partition("\n")
        match = re.fullmatch(r"# (\S+)( \(appended\))?", first)
        if match:
            blocks[match.group(1)] = (rest, bool(match.group(2)))
    return blocks


def test_the_readme_holds_both_recipes():
    assert set(readme_blocks()) == {"competition/datasets/tones.py", "competition/modeling/models.py",
                                    "experiments/tiny-mlp.toml"}


def test_a_new_setting_at_its_default_keeps_the_hash_and_changes_it_otherwise():
    @dataclasses.dataclass(frozen=True)
    class WithNewSetting(TrainConfig):
        new_knob: float = setting(0.0)

    @dataclasses.dataclass(frozen=True)
    class WithPlainField(TrainConfig):
        plain_knob: float = 0.0

    before = Experiment(name="x", train=TrainConfig()).hash
    assert Experiment(name="x", train=WithNewSetting()).hash == before
    assert Experiment(name="x", train=WithNewSetting(new_knob=0.5)).hash != before
    assert Experiment(name="x", train=WithPlainField()).hash != before  # why new settings use setting()


def write_tones(root: Path) -> Path:
    """tones.csv + audio/: 12 one-second tones, low (220 Hz) or high (1760 Hz), folds 1 and 2."""
    (root / "audio").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = ["fname,label,fold"]
    for i in range(12):
        label, hz = ("low", 220.0) if i % 2 else ("high", 1760.0)
        t = np.arange(22050) / 22050
        pitch = hz * (1 + 0.02 * rng.standard_normal())
        tone = 0.5 * np.sin(2 * np.pi * pitch * t) + 0.01 * rng.standard_normal(len(t))
        soundfile.write(root / "audio" / f"t{i}.wav", tone.astype(np.float32), 22050, subtype="PCM_16")
        rows.append(f"t{i}.wav,{label},{i % 4 // 2 + 1}")
    (root / "tones.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.mark.slow
def test_the_recipes_add_a_dataset_and_a_model_that_train_end_to_end(tmp_path):
    kit = tmp_path / "kit"
    shutil.copytree(REPO / "competition", kit / "competition", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "experiments", kit / "experiments")
    shutil.copytree(REPO / "kernels", kit / "kernels")
    for path, (code, appended) in readme_blocks().items():
        target = kit / path
        target.write_text((target.read_text() + "\n\n" if appended else "") + code)
    registry = kit / "competition" / "datasets" / "registry.py"
    text = registry.read_text()
    text = text.replace("from competition.datasets import demo,", "from competition.datasets import demo, tones,", 1)
    text = text.replace("    esc50.ESC10,\n", "    esc50.ESC10,\n    tones.DATASET,\n", 1)
    registry.write_text(text)

    sys.path.insert(0, str(REPO / "tests"))
    try:
        from test_imports import backward_imports, cycles, import_graph
    finally:
        sys.path.remove(str(REPO / "tests"))
    graph = import_graph(kit / "competition")
    assert "competition.datasets.tones" in graph["competition.datasets.registry"]
    assert cycles(graph) == [] and backward_imports(graph) == []

    env = {**os.environ, "PYTHONPATH": str(kit), "KIT_HOME": str(tmp_path / "home"), "TF_CPP_MIN_LOG_LEVEL": "2"}

    def kit_command(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "competition", *args], cwd=kit, env=env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    assert "tones: 12 train clips, 0 test clips, 2 labels" in kit_command(
        "data", "--dataset", "tones", "--from", str(write_tones(tmp_path / "tones-copy")))
    out = kit_command("train", "--dataset", "tones", "--experiment", "experiments/tiny-mlp.toml")
    assert re.search(r"tones-tiny-mlp: OOF accuracy \d\.\d{4}", out), out
    run = tmp_path / "home" / "runs" / "tones-tiny-mlp"
    assert sorted(p.name for p in run.glob("fold-*/model.keras")) == ["model.keras", "model.keras"]
    assert '"arch": "tiny-mlp"' in (run / "config.json").read_text()
