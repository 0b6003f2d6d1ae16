"""Scores of the bench's runs: per held-out fold (predefined folds), per repeat (repeated stratified
folds), of one run, of a run re-scored predicting otherwise, and of a blend of runs (equal weights, or
`make ensemble`'s weights fitted out of fold)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.quality.settings import Protocol
from competition.workspace import Workspace


def fold_scores(true_ids: np.ndarray, probs: np.ndarray, folds: np.ndarray, protocol: Protocol) -> dict:
    """Accuracy and MAP@3 per held-out fold, and their means over folds."""
    from competition.metrics import accuracy, map_at_k

    scores = {protocol.fold_name(f): {"accuracy": accuracy(true_ids[folds == f], probs[folds == f]),
                                      "map@3": map_at_k(true_ids[folds == f], probs[folds == f])}
              for f in protocol.folds}
    scores["mean"] = {metric: float(np.mean([s[metric] for s in scores.values()])) for metric in ("accuracy", "map@3")}
    return scores


def repeat_scores(true_ids: np.ndarray, repeats: dict[int, tuple[np.ndarray, np.ndarray]]) -> dict:
    """Repeated CV: per fold seed, out-of-fold MAP@3 and accuracy over every clip, and each fold's
    MAP@3; their mean over repeats, the spread between repeats (max - min) and the standard deviation
    of the fold MAP@3s. `repeats`: fold seed -> (probs, fold of every clip)."""
    from competition.metrics import accuracy, map_at_k

    scores = {}
    for seed, (probs, folds) in repeats.items():
        scores[f"seed {seed}"] = {"map@3": map_at_k(true_ids, probs), "accuracy": accuracy(true_ids, probs),
                                  "fold map@3": [map_at_k(true_ids[folds == f], probs[folds == f])
                                                 for f in sorted(set(folds.tolist()))]}
    per_repeat = list(scores.values())
    scores["mean"] = {metric: float(np.mean([s[metric] for s in per_repeat])) for metric in ("map@3", "accuracy")}
    scores["spread"] = float(max(s["map@3"] for s in per_repeat) - min(s["map@3"] for s in per_repeat))
    scores["fold std"] = float(np.std([m for s in per_repeat for m in s["fold map@3"]]))
    return scores


def train_seconds(run_dirs: list[Path]) -> float:
    from competition.modeling.runs import Run

    return float(sum(h["seconds"].sum() for run_dir in run_dirs for h in Run(run_dir).histories().values()))


def run_scores(run_dir: Path, index, protocol: Protocol) -> dict:
    from competition.modeling.runs import Run

    oof = Run(run_dir).predictions("oof")
    folds = index.train.set_index("fname").loc[oof.fnames, "fold"].to_numpy()
    scores = fold_scores(oof.true_ids, oof.probs, folds, protocol)
    scores["train_seconds"] = train_seconds([run_dir])
    return scores


def fold_probs(run_dir: Path, workspace: Workspace, dataset, index, experiment, protocol: Protocol,
               n_crops: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Every clip's held-out probabilities from the run's fold models (on `n_crops` crops, WHOLE_CLIP
    for each clip whole; its own TTA when None), and the fold of every clip, in `index.train`'s order."""
    import keras

    from competition.datasets.folds import load_or_make_folds
    from competition.features.cache import build_features
    from competition.modeling.runs import Run
    from competition.modeling.train import FoldTrainer

    stores = build_features(workspace, dataset.name, {"train": index.train}, experiment.features)
    folds = load_or_make_folds(workspace, dataset, index.train, experiment.folds.k, experiment.folds.seed)
    probs = np.zeros((len(index.train), len(dataset.labels)), np.float32)
    run = Run(run_dir)
    for fold in protocol.folds:
        trainer = FoldTrainer(run, fold, experiment, dataset, stores, index.train, folds, index.test)
        probs[trainer.val_positions], _ = trainer.validate(
            keras.models.load_model(run.model_path(fold)), experiment.train.tta_crops if n_crops is None else n_crops)
    return probs, folds.to_numpy()


def prediction_ablations(plan, experiment) -> dict[str, int]:
    """The plan's ways of predicting (n_crops by label) other than the experiment's own."""
    return {label: n_crops for label, n_crops in plan.prediction_ablations.items()
            if n_crops != experiment.train.tta_crops}


def rescored(run_dir: Path, workspace: Workspace, dataset, index, experiment, protocol: Protocol, n_crops: int) -> dict:
    """The run's fold models re-scored on `n_crops` crops per clip (WHOLE_CLIP: each clip whole)."""
    true_ids = index.train["label"].map(dataset.label_to_id).to_numpy()
    probs, _ = fold_probs(run_dir, workspace, dataset, index, experiment, protocol, n_crops=n_crops)
    return fold_scores(true_ids, probs, index.train["fold"].to_numpy(), protocol)


# A blend row's name with fitted weights: `make ensemble`'s default, scored out of sample.
FITTED = "(blend, weights fitted out of fold)"


def fitted_name(blend_row: str) -> str:
    return blend_row.replace("(blend)", FITTED)


def candidates_blend_name(count: int) -> str:
    """The row of the default view's finished candidates blended (a protocol's own, or read by a subset)."""
    return f"the {count} finished candidates (blend)"


def geometric_blend(members: list[np.ndarray], true_ids: np.ndarray, folds: np.ndarray, fitted: bool) -> np.ndarray:
    """The members' geometric mean: equal weights, or (`fitted`) each held-out fold's weights fitted on
    the other folds' out-of-fold rows only, as `make ensemble` fits them."""
    from competition.modeling.inference import geometric_mean
    from competition.submit.ensemble import out_of_fold_blend

    return out_of_fold_blend(members, true_ids, folds) if fitted else geometric_mean(members)


def blend_scores(run_dirs: list[Path], index, protocol: Protocol, *, fitted: bool = False) -> dict:
    """The runs' geometric mean (equal weights, or fitted out of fold) scored per held-out fold, with
    their training seconds."""
    from competition.modeling.runs import Run

    members = [Run(run_dir).predictions("oof") for run_dir in run_dirs]
    folds = index.train.set_index("fname").loc[members[0].fnames, "fold"].to_numpy()
    blend = geometric_blend([m.probs for m in members], members[0].true_ids, folds, fitted)
    return {**fold_scores(members[0].true_ids, blend, folds, protocol), "train_seconds": train_seconds(run_dirs)}


def repeat_oof(run_dir: Path, workspace: Workspace, dataset, index, protocol: Protocol,
               seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A repeat's out-of-fold probabilities, in `index.train`'s order, and the fold of every clip."""
    from competition.datasets.folds import load_or_make_folds
    from competition.modeling.runs import Run

    predictions = Run(run_dir).predictions("oof")
    assert (predictions.fnames == index.train["fname"].to_numpy()).all(), run_dir
    folds = load_or_make_folds(workspace, dataset, index.train, len(protocol.folds), seed).to_numpy()
    return predictions.probs, folds


def repeat_blend(members: list[dict[int, Path]], workspace: Workspace, dataset, index, protocol: Protocol,
                 fitted: bool = False) -> dict:
    """Repeat scores of the members' geometric mean (equal weights, or fitted out of fold; one member:
    the run itself), with their training seconds. `members`: fold seed -> run, per member."""
    true_ids = index.train["label"].map(dataset.label_to_id).to_numpy()
    repeats = {}
    for seed in protocol.seeds:
        oofs = [repeat_oof(by_seed[seed], workspace, dataset, index, protocol, seed) for by_seed in members]
        folds = oofs[0][1]
        repeats[seed] = (geometric_blend([probs for probs, _ in oofs], true_ids, folds, fitted), folds)
    scores = repeat_scores(true_ids, repeats)
    scores["train_seconds"] = train_seconds([by_seed[seed] for by_seed in members for seed in protocol.seeds])
    return scores
