"""Running make targets from tests, in fresh processes that must not load TensorFlow."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_tensorflow(tmp_path) -> Path:
    """A folder for PYTHONPATH whose tensorflow and keras stop the process if anything imports them."""
    for name in ("tensorflow", "keras"):
        (tmp_path / "guard" / name).mkdir(parents=True)
        (tmp_path / "guard" / name / "__init__.py").write_text(f"raise SystemExit('{name} was imported')\n")
    return tmp_path / "guard"


def run_make(target: str, *variables: str, kit_home: Path, python_path: Path) -> subprocess.CompletedProcess:
    """`make <target> <variables>` in the repository, with the kit's workspace at `kit_home`."""
    env = dict(os.environ, KIT_HOME=str(kit_home), PYTHONPATH=str(python_path))
    # -o: never rebuild the venv from here, whatever the time stamps say.
    return subprocess.run(["make", "--no-print-directory", "-o", ".venv/.installed", target, *variables],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
