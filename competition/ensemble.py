"""Blending runs into a submission (`make ensemble`): `submissions/<name>.csv` plus `<name>.json`.

Runs share the saved folds, so their OOF predictions line up clip for clip and a blend is scored
(and its weights fitted) on predictions no member saw in training.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from competition.workspace import Workspace, atomic_write_text

EPS = 1e-7


class EnsembleError(ValueError):
    pass


def geometric_mean(members: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """Weighted geometric mean of probability matrices, renormalised to sum to 1 per row."""
    if not members:
        raise EnsembleError("nothing to blend")
    weights = np.ones(len(members)) if weights is None else np.asarray(weights, np.float64)
    weights = weights / weights.sum()
    log_blend = sum(w * np.log(np.clip(m, EPS, 1.0)) for w, m in zip(weights, members))
    blend = np.exp(log_blend - log_blend.max(axis=1, keepdims=True))
    return (blend / blend.sum(axis=1, keepdims=True)).astype(np.float32)


def load_run(run_dir: Path) -> dict:
    from competition.train import load_predictions

    run_dir = Path(run_dir)
    for name in ("config.json", "scores.json", "oof.npz", "test.npz"):
        if not (run_dir / name).exists():
            raise EnsembleError(f"{run_dir}: {name} missing; train the run to the end first (make train)")
    config = json.loads((run_dir / "config.json").read_text())
    oof_fnames, oof = load_predictions(run_dir / "oof.npz")
    test_fnames, test = load_predictions(run_dir / "test.npz")
    return {"dir": run_dir, "config": config, "scores": json.loads((run_dir / "scores.json").read_text()),
            "oof_fnames": oof_fnames, "oof": oof, "test_fnames": test_fnames, "test": test}


def blend_runs(workspace: Workspace, run_dirs: Sequence[Path], name: str) -> Path:
    """Geometric mean of the runs' test predictions -> validated submission CSV and its JSON record."""
    from competition.datasets import get_dataset
    from competition.metrics import score
    from competition.submission import validate_submission, write_submission

    runs = [load_run(d) for d in run_dirs]
    first = runs[0]
    for run in runs[1:]:
        for key in ("dataset", "labels"):
            if run["config"][key] != first["config"][key]:
                raise EnsembleError(f"{run['dir']}: {key} differs from {first['dir']}; runs cannot be blended")
        if run["oof_fnames"] != first["oof_fnames"] or run["test_fnames"] != first["test_fnames"]:
            raise EnsembleError(f"{run['dir']}: clips differ from {first['dir']}; were they trained on the same data?")
    dataset = get_dataset(first["config"]["dataset"])
    labels = first["config"]["labels"]
    blend_oof = geometric_mean([r["oof"] for r in runs])
    blend_test = geometric_mean([r["test"] for r in runs])
    index = dataset.index(workspace.dataset_dir(dataset.name))
    ids = index.train.set_index("fname").loc[first["oof_fnames"], "label"].map({l: i for i, l in enumerate(labels)})
    cv = score(dataset.metric, ids.to_numpy(), blend_oof)
    csv_path = workspace.submissions / f"{name}.csv"
    write_submission(csv_path, first["test_fnames"], blend_test, labels)
    validate_submission(csv_path, index.test["fname"].tolist(), labels)
    record = {"name": name, "dataset": dataset.name, "metric": dataset.metric, "cv_score": cv,
              "members": [{"run": r["dir"].name, "experiment_hash": r["config"]["hash"],
                           "feature_key": r["config"]["feature_key"], "cv_score": r["scores"]["oof"]} for r in runs],
              "blend": "geometric_mean"}
    atomic_write_text(csv_path.with_suffix(".json"), json.dumps(record, indent=1))
    return csv_path
