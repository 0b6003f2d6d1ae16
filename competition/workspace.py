"""Where each step reads and writes: one folder per step, under one root; and the kit's own files.

The root is the current directory, or `$KIT_HOME` when set (tests and kernels point it elsewhere).
`KIT_ROOT` is the kit's checkout, which holds `experiments/` and the `kernels/` templates.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

KIT_ROOT = Path(__file__).resolve().parent.parent

@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def from_env(cls) -> Workspace:
        return cls(Path(os.environ.get("KIT_HOME") or Path.cwd()).resolve())

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def features(self) -> Path:
        return self.root / "features"

    @property
    def folds(self) -> Path:
        return self.root / "folds"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def submissions(self) -> Path:
        return self.root / "submissions"

    @property
    def kernel_builds(self) -> Path:
        return self.root / "kernels" / "build"

    def dataset_dir(self, dataset: str) -> Path:
        return self.data / dataset


def atomic_write_text(path: Path, text: str) -> None:
    """Write a whole file or nothing: a crash leaves the old file (or none), never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk or a kill leaves nothing half-written behind
        raise


def replace_dir(tmp_dir: Path, final_dir: Path) -> None:
    """Move a finished temporary folder into place, replacing an older one."""
    if final_dir.exists():
        old = final_dir.with_name(f".{final_dir.name}.old.{os.getpid()}")
        os.replace(final_dir, old)
        os.replace(tmp_dir, final_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        final_dir.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp_dir, final_dir)
