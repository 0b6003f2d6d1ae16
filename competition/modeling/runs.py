"""The run folder, `runs/<run>/`: the one module that knows its files. Everything else asks it.

    config.json                   what the run is: experiment, dataset, hash, feature config, crop
                                  frames, TTA crops, labels, metric; a fine-tune's base model (path
                                  and SHA-256, which the hash counts) (written once; a changed
                                  experiment is refused rather than mixed in)
    fold-<k>/model.keras          the fold's kept model
    fold-<k>/oof.npz, test.npz    fnames + class probabilities of its held-out and test clips
    fold-<k>/history.csv          one row per epoch
    fold-<k>/done.json            the fold's summary, written last: a fold is finished once it exists
                                  (`predicted_from`: the run whose fold model this is, copied, where
                                  the two differ only in how they predict)
    fold-<k>/checkpoint.keras, state.json, best.keras
                                  while the fold trains: the resume point and the best epoch so far
    oof.npz                       every train clip's OOF probabilities and true class id
    test.npz                      the folds' test predictions, blended
    scores.json                   metric, per-fold scores, OOF score
    report/                       the run's report (report.py)
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from competition.errors import KitError
from competition.workspace import atomic_write_text

CONFIG = "config.json"
SCORES = "scores.json"
DONE = "done.json"
HISTORY = "history.csv"
MODEL = "model.keras"
REPORT_DIR = "report"
# Files only an unfinished fold needs (to resume, or to keep its best epoch so far).
CHECKPOINT, STATE, BEST_MODEL = "checkpoint.keras", "state.json", "best.keras"
RESUME_FILES = (CHECKPOINT, STATE, BEST_MODEL)
SPLITS = ("oof", "test")


class RunError(KitError, RuntimeError):
    """A run folder is missing, unfinished or of another configuration; the message says which."""


@dataclass(frozen=True)
class Predictions:
    fnames: list[str]
    probs: np.ndarray                # (clips, classes) float32
    true_ids: np.ndarray | None      # OOF predictions of an assembled run: each clip's class id


def save_predictions(path: Path, fnames, probs: np.ndarray, *, true_ids: np.ndarray | None = None) -> None:
    # The temporary file is this process's own: two processes writing the same run do not collide.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    extra = {} if true_ids is None else {"true_ids": np.asarray(true_ids, np.int64)}
    try:
        np.savez(tmp, fnames=np.asarray(fnames, dtype=str), probs=np.asarray(probs, np.float32), **extra)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_predictions(path: Path) -> Predictions:
    with np.load(path) as data:
        return Predictions(data["fnames"].tolist(), data["probs"],
                           data["true_ids"] if "true_ids" in data.files else None)


def model_fingerprint(path: Path) -> str:
    """A saved model's identity: the SHA-256 of its file, so that a copy (a twin run's fold model) is the
    same model and a retrained one another."""
    if not Path(path).is_file():
        raise RunError(f"{path}: no model there (is the base run's fold trained?)")
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Run:
    """One run folder. Paths are derived here only; reading checks that what is read is there."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)

    def __repr__(self) -> str:
        return f"Run({str(self.dir)!r})"

    @property
    def name(self) -> str:
        return self.dir.name

    # ---------------------------------------------------------------- config
    @property
    def config_path(self) -> Path:
        return self.dir / CONFIG

    def exists(self) -> bool:
        return self.config_path.is_file()

    def config(self) -> dict:
        if not self.config_path.is_file():
            raise RunError(f"{self.dir}: not a run folder ({CONFIG} missing); train it first (make train)")
        return json.loads(self.config_path.read_text())

    def claim(self, record: dict, *, formerly: str | None = None) -> None:
        """Write the run's config, or check that the one there has the same hash. A config of hash
        `formerly` (this run, hashed as an older kit did) is rewritten with the record."""
        if self.config_path.exists():
            existing = self.config()
            if formerly is not None and existing["hash"] == formerly != record["hash"]:
                atomic_write_text(self.config_path, json.dumps(record, indent=1))
            elif existing["hash"] != record["hash"]:
                raise RunError(f"{self.dir} was trained with another configuration (hash {existing['hash']}, now "
                               f"{record['hash']}); choose another RUN name or delete the folder")
        else:
            atomic_write_text(self.config_path, json.dumps(record, indent=1))

    # ---------------------------------------------------------------- folds
    def fold_dir(self, fold: int) -> Path:
        return self.dir / f"fold-{fold}"

    def fold_file(self, fold: int, name: str) -> Path:
        return self.fold_dir(fold) / name

    def folds(self) -> list[int]:
        """The folds with a folder, in order (finished or not)."""
        return sorted(int(path.name.split("-")[1]) for path in self.dir.glob("fold-*")
                      if path.is_dir() and path.name.split("-")[1].isdigit())

    def fold_is_done(self, fold: int) -> bool:
        return self.fold_file(fold, DONE).is_file()

    def finished_folds(self) -> list[int]:
        return [fold for fold in self.folds() if self.fold_is_done(fold)]

    def write_fold_done(self, fold: int, summary: dict) -> None:
        atomic_write_text(self.fold_file(fold, DONE), json.dumps(summary, indent=1))

    def fold_summary(self, fold: int) -> dict:
        path = self.fold_file(fold, DONE)
        if not path.is_file():
            raise RunError(f"{path} not found: fold {fold} of {self.dir} did not finish; train it (make train)")
        return json.loads(path.read_text())

    def write_history(self, fold: int, rows: list[dict]) -> None:
        atomic_write_text(self.fold_file(fold, HISTORY), pd.DataFrame(rows).to_csv(index=False))

    def histories(self) -> dict[int, pd.DataFrame]:
        """{fold: one row per epoch} of the folds that wrote one."""
        return {fold: pd.read_csv(self.fold_file(fold, HISTORY)) for fold in self.folds()
                if self.fold_file(fold, HISTORY).is_file()}

    def model_path(self, fold: int) -> Path:
        return self.fold_file(fold, MODEL)

    def fold_models(self) -> list[Path]:
        """The kept model of every finished fold."""
        models = [self.model_path(fold) for fold in self.finished_folds()]
        if not models:
            raise RunError(f"{self.dir}: no finished fold (fold-*/{DONE}); train the run first (make train)")
        return models

    def best_fold_model(self) -> Path:
        """The model of the finished fold with the best held-out score."""
        self.fold_models()
        return self.model_path(max(self.finished_folds(), key=lambda fold: self.fold_summary(fold)["score"]))

    def write_fold_predictions(self, fold: int, split: str, fnames, probs: np.ndarray) -> None:
        save_predictions(self.fold_file(fold, f"{split}.npz"), fnames, probs)

    def has_fold_predictions(self, fold: int, split: str) -> bool:
        return self.fold_file(fold, f"{split}.npz").is_file()

    def fold_predictions(self, fold: int, split: str) -> Predictions:
        path = self.fold_file(fold, f"{split}.npz")
        if not path.is_file():
            raise RunError(f"{path} not found: fold {fold} of {self.dir} has no {split} predictions")
        return load_predictions(path)

    # ---------------------------------------------------------------- the assembled run
    def write_predictions(self, split: str, fnames, probs: np.ndarray, *, true_ids: np.ndarray | None = None) -> None:
        save_predictions(self.dir / f"{split}.npz", fnames, probs, true_ids=true_ids)

    def has_predictions(self, split: str) -> bool:
        return (self.dir / f"{split}.npz").is_file()

    def predictions(self, split: str) -> Predictions:
        """The assembled run's OOF (with true class ids) or test predictions."""
        path = self.dir / f"{split}.npz"
        if not path.is_file():
            raise RunError(f"{self.dir}: {path.name} missing; train the run to the end first (make train)")
        predictions = load_predictions(path)
        if split == "oof" and predictions.true_ids is None:
            raise RunError(f"{path} has no true labels (made by an older kit); retrain the run")
        return predictions

    def write_scores(self, scores: dict) -> None:
        atomic_write_text(self.dir / SCORES, json.dumps(scores, indent=1))

    def has_scores(self) -> bool:
        return (self.dir / SCORES).is_file()

    def scores(self) -> dict:
        path = self.dir / SCORES
        if not path.is_file():
            raise RunError(f"{self.dir}: {SCORES} missing; train the run to the end first (make train)")
        return json.loads(path.read_text())

    @property
    def report_dir(self) -> Path:
        return self.dir / REPORT_DIR
