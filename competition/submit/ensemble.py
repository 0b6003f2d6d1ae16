"""Blending runs into a submission (`make ensemble`): `submissions/<name>.csv` plus `<name>.json`.

A blend is a weighted geometric mean of the members' class probabilities. Runs share the saved
folds, so their OOF predictions line up clip for clip and a blend is scored, and its weights are
fitted, on predictions no member saw in training: the weights minimise the OOF log loss of the
blend over the simplex (a convex problem for a geometric mean, so the optimum is global).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from competition.errors import KitError
from competition.modeling.inference import EPS, geometric_mean
from competition.modeling.runs import Run
from competition.workspace import Workspace


class EnsembleError(KitError, ValueError):
    pass


def fit_blend_weights(members: Sequence[np.ndarray], true_ids: np.ndarray) -> np.ndarray:
    """Simplex weights minimising the log loss of the weighted geometric mean of `members` on `true_ids`.

    The blend's log-probabilities are sum_m w_m log p_m minus a log-sum-exp: the loss is convex in w,
    so SLSQP from equal weights reaches the global optimum."""
    from scipy.optimize import minimize

    logs = np.stack([np.log(np.clip(m, EPS, 1.0)).astype(np.float64) for m in members])  # (members, rows, classes)
    rows = np.arange(logs.shape[1])
    true_logs = logs[:, rows, true_ids]  # (members, rows)

    def loss_and_gradient(weights: np.ndarray) -> tuple[float, np.ndarray]:
        z = np.tensordot(weights, logs, axes=1)
        z -= z.max(axis=1, keepdims=True)
        log_blend = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        blend = np.exp(log_blend)
        loss = -log_blend[rows, true_ids].mean()
        gradient = -(true_logs - (logs * blend).sum(axis=2)).mean(axis=1)
        return float(loss), gradient

    n = len(members)
    result = minimize(loss_and_gradient, np.full(n, 1.0 / n), jac=True, method="SLSQP", bounds=[(0.0, 1.0)] * n,
                      constraints={"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones(n)})
    weights = np.clip(result.x, 0.0, None)
    return weights / weights.sum()


def check_probabilities(probs: np.ndarray, source: Path) -> None:
    """Blend only what is a probability per class: finite, in [0, 1], each row summing to 1."""
    bad = ~np.isfinite(probs).all(axis=1)
    if bad.any():
        raise EnsembleError(f"{source}: {int(bad.sum())} row(s) are not finite (NaN or inf), first row "
                            f"{int(np.flatnonzero(bad)[0])}; retrain the run (make train)")
    if len(probs) and ((probs < 0).any() or (probs > 1).any()
                       or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3)):
        raise EnsembleError(f"{source}: rows are not class probabilities (outside [0, 1] or not summing to 1)")


def load_run(run_dir: Path) -> dict:
    """A finished run's config, scores, OOF (with true class ids) and test predictions."""
    run = Run(run_dir)
    oof, test = run.predictions("oof"), run.predictions("test")
    for split, predictions in (("oof", oof), ("test", test)):
        check_probabilities(predictions.probs, run.dir / f"{split}.npz")
    return {"dir": run.dir, "config": run.config(), "scores": run.scores(), "oof_fnames": oof.fnames,
            "oof": oof.probs, "true_ids": oof.true_ids, "test_fnames": test.fnames, "test": test.probs}


def blend_runs(workspace: Workspace, run_dirs: Sequence[Path], name: str, *, weights: str = "fitted") -> Path:
    """Blend the runs' test predictions with OOF-fitted (or equal) weights -> validated submission
    CSV and its JSON record: each member's CV score and weight, the blend's CV with both weightings."""
    from competition.datasets.registry import get_dataset
    from competition.metrics import score
    from competition.submit.submission import validate_submission, write_record, write_submission

    if weights not in ("fitted", "equal"):
        raise EnsembleError(f"weights must be fitted or equal, not {weights!r}")
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
    true_ids = first["true_ids"]
    oofs = [r["oof"] for r in runs]
    candidates = {"equal": np.full(len(runs), 1.0 / len(runs)), "fitted": fit_blend_weights(oofs, true_ids)}
    cv = {kind: score(dataset.metric, true_ids, geometric_mean(oofs, w)) for kind, w in candidates.items()}
    chosen = candidates[weights]
    blend_test = geometric_mean([r["test"] for r in runs], chosen)
    index = dataset.index(workspace.dataset_dir(dataset.name))
    csv_path = workspace.submissions / f"{name}.csv"
    write_submission(csv_path, first["test_fnames"], blend_test, labels)
    validate_submission(csv_path, index.test["fname"].tolist(), labels)
    record = {"name": name, "dataset": dataset.name, "metric": dataset.metric, "cv_score": cv[weights],
              "blend": "geometric_mean", "weights": weights,
              "cv_score_equal_weights": cv["equal"], "cv_score_fitted_weights": cv["fitted"],
              "members": [{"run": r["dir"].name, "experiment_hash": r["config"]["hash"],
                           "feature_key": r["config"]["feature_key"], "cv_score": r["scores"]["oof"],
                           "weight": float(w)} for r, w in zip(runs, chosen)]}
    write_record(csv_path, record)
    return csv_path
