"""Blending runs into a submission (`make ensemble`): `submissions/<name>.csv` plus `<name>.json`.

A blend is a weighted geometric mean of the members' class probabilities. Runs share the saved
folds, so their OOF predictions line up clip for clip and a blend is scored, and its weights are
fitted, on predictions no member saw in training: the weights minimise the OOF log loss of the
blend over the simplex (a convex problem for a geometric mean, so the optimum is global).

Weights fitted on the very predictions they are scored on flatter the blend, so the fitted blend's
CV is scored out of sample: for each fold, weights fitted on the other folds' OOF predictions blend
the held-out fold's. That score is the record's `cv_score` (what `make submit` quotes); the
in-sample one is kept beside it (`cv_score_fitted_weights_in_sample`) to show the difference.
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


def clip_folds(run_dir: Path, fnames: Sequence[str]) -> np.ndarray:
    """The fold that held out each clip, from the run's fold predictions."""
    from competition.modeling.runs import Run

    run = Run(run_dir)
    fold_of = {fname: fold for fold in run.finished_folds() for fname in run.fold_predictions(fold, "oof").fnames}
    missing = [fname for fname in fnames if fname not in fold_of]
    if missing:
        raise EnsembleError(f"{run.dir}: {len(missing)} clip(s) are in no fold's held-out predictions, first "
                            f"{missing[0]!r}; the run is incomplete (make train)")
    return np.array([fold_of[fname] for fname in fnames])


def out_of_fold_blend(members: Sequence[np.ndarray], true_ids: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Each fold's rows blended with weights fitted on the other folds' rows only."""
    blend = np.zeros_like(members[0], dtype=np.float32)
    for fold in np.unique(folds):
        held = folds == fold
        weights = fit_blend_weights([m[~held] for m in members], true_ids[~held])
        blend[held] = geometric_mean([m[held] for m in members], weights)
    return blend


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
    folds = clip_folds(first["dir"], first["oof_fnames"])
    for run in runs[1:]:
        if not np.array_equal(clip_folds(run["dir"], run["oof_fnames"]), folds):
            raise EnsembleError(f"{run['dir']}: its folds differ from {first['dir']}'s; blends need the saved folds")
    candidates = {"equal": np.full(len(runs), 1.0 / len(runs)), "fitted": fit_blend_weights(oofs, true_ids)}
    cv = {kind: score(dataset.metric, true_ids, geometric_mean(oofs, w)) for kind, w in candidates.items()}
    in_sample = cv["fitted"]
    cv["fitted"] = score(dataset.metric, true_ids, out_of_fold_blend(oofs, true_ids, folds))
    chosen = candidates[weights]
    blend_test = geometric_mean([r["test"] for r in runs], chosen)
    index = dataset.index(workspace.dataset_dir(dataset.name))
    csv_path = workspace.submissions / f"{name}.csv"
    write_submission(csv_path, first["test_fnames"], blend_test, labels)
    validate_submission(csv_path, index.test["fname"].tolist(), labels)
    record = {"name": name, "dataset": dataset.name, "metric": dataset.metric, "cv_score": cv[weights],
              "blend": "geometric_mean", "weights": weights,
              "cv_score_equal_weights": cv["equal"], "cv_score_fitted_weights": cv["fitted"],
              "cv_score_fitted_weights_in_sample": in_sample,
              "members": [{"run": r["dir"].name, "experiment_hash": r["config"]["hash"],
                           "feature_key": r["config"]["feature_key"], "cv_score": r["scores"]["oof"],
                           "weight": float(w)} for r, w in zip(runs, chosen)]}
    write_record(csv_path, record)
    return csv_path
