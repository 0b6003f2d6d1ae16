"""ESC-10 scored by the ESC-50 protocol's runs. ESC-10's clips are ESC-50 clips on the same predefined folds,
so each view trained there on the other four folds (all 50 classes) has a held-out prediction for every ESC-10
clip; read among ESC-10's ten labels, that is ESC-10's 5-fold CV with ESC-50's other 40 classes as more
training data, learnt jointly rather than as a base to fine-tune. Nothing is trained here: the rows are read
where the ESC-50 protocol's runs finished."""

from __future__ import annotations

import numpy as np

from benchmarks.quality.bench import Bench, recipe_experiment
from benchmarks.quality.data import protocol_dataset, protocol_index
from benchmarks.quality.scores import fitted_name, fold_scores, geometric_blend, train_seconds
from benchmarks.quality.settings import SUPERSETS, Protocol

# Row names: "<superset>'s run: <view>", and the views' blend.
ROW_PREFIX = "trained on {superset}'s classes: "


def narrowed_probs(fnames: list[str], probs: np.ndarray, superset_labels: tuple[str, ...], index,
                   dataset) -> np.ndarray:
    """The rows of `index.train`'s clips (in its order) of probabilities over the superset's labels, kept to
    the dataset's labels and renormalised: the prediction of a model that knows the clip is one of those."""
    position = {fname: row for row, fname in enumerate(fnames)}
    absent = [fname for fname in index.train["fname"] if fname not in position]
    if absent:
        raise ValueError(f"{len(absent)} {dataset.name} clip(s) have no held-out prediction in the "
                         f"{len(fnames)}-clip run, e.g. {absent[0]!r}")
    rows = [position[fname] for fname in index.train["fname"]]
    columns = [superset_labels.index(label) for label in dataset.labels]
    kept = probs[np.ix_(rows, columns)].astype(np.float64)
    return kept / np.maximum(kept.sum(axis=1, keepdims=True), np.finfo(np.float64).tiny)


def siblings_in_other_folds(index, superset_index) -> int:
    """Clips of `index` cut from a recording that a superset clip of another fold was also cut from: what
    its run heard of them when they were held out (ESC-50's predefined folds keep a few such pairs, of
    other classes)."""
    others = superset_index.train.assign(source_id=superset_index.train["source_id"].astype(str))
    count = 0
    for fold, held_out in index.train.groupby("fold"):
        heard = set(others["source_id"][others["fold"] != fold]) - {""}
        count += int(held_out["source_id"].astype(str).isin(heard).sum())
    return count


def superset_rows(bench: Bench, protocol: Protocol, dataset, index, root) -> tuple[dict[str, dict], str]:
    """Each kit view's superset run (the protocol's schedule, then each longer one), where it finished,
    scored on the protocol's clips among its labels; every view's blend, equal and fitted out of fold."""
    from competition.modeling.runs import Run

    superset = bench.plan.protocols[SUPERSETS[protocol.dataset].key]  # the plan's schedule for it
    big = protocol_dataset(superset, root)
    big_index = protocol_index(big, root, superset)
    true_ids = index.train["label"].map(dataset.label_to_id).to_numpy()
    folds = index.train["fold"].to_numpy()
    prefix = ROW_PREFIX.format(superset=superset.dataset)
    rows, missing = {}, []
    schedules = {"": {}, **{f", {label}": changes for label, changes in bench.plan.longer_schedules.items()}}
    for suffix, changes in schedules.items():
        views: dict[str, tuple[np.ndarray, object]] = {}
        for recipe in bench.plan.kit:
            experiment = recipe_experiment(recipe, superset, **changes)
            run_dir = bench.finished(big, experiment)
            if run_dir is None:
                missing.append(bench.run_name(big, experiment))
                continue
            oof = Run(run_dir).predictions("oof")
            views[experiment.name] = narrowed_probs(oof.fnames, oof.probs, big.labels, index, dataset), run_dir
            rows[f"{prefix}{experiment.name}{suffix}"] = {
                **fold_scores(true_ids, views[experiment.name][0], folds, protocol),
                "train_seconds": train_seconds([run_dir])}
        if len(views) == len(bench.plan.kit) > 1:
            name = f"{prefix}{' + '.join(views)}{suffix} (blend)"
            seconds = train_seconds([run_dir for _, run_dir in views.values()])
            for fitted in (False, True):
                blend = geometric_blend([probs for probs, _ in views.values()], true_ids, folds, fitted)
                rows[fitted_name(name) if fitted else name] = {**fold_scores(true_ids, blend, folds, protocol),
                                                               "train_seconds": seconds}
    text = (f"\n'{prefix}...': the {superset.dataset} protocol's runs (each view trained on the other folds' clips "
            f"of all {len(big.labels)} classes), each {dataset.name} clip's held-out prediction read among "
            f"{dataset.name}'s {len(dataset.labels)} labels; {siblings_in_other_folds(index, big_index)} of "
            f"{len(index.train)} {dataset.name} clips share a recording with a {superset.dataset} clip of another fold")
    if missing:
        text += (f"\nnot finished, so not scored here (the {superset.key} protocol trains them; the longer schedules "
                 f"not with --quick): {', '.join(missing)}")
    return rows, text
