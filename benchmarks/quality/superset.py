"""ESC-10 scored by the ESC-50 protocol's runs. ESC-10's clips are ESC-50 clips on the same predefined folds,
so each view trained there on the other four folds (all 50 classes) has a held-out prediction for every ESC-10
clip; read among ESC-10's ten labels, that is ESC-10's 5-fold CV with ESC-50's other 40 classes as more
training data, learnt jointly rather than as a base to fine-tune. Nothing is trained here: the rows are read
where the ESC-50 protocol's runs finished."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.quality.bench import Bench, recipe_experiment
from benchmarks.quality.data import protocol_dataset, protocol_index
from benchmarks.quality.scores import candidates_blend_name, fitted_name, fold_scores, geometric_blend, train_seconds
from benchmarks.quality.settings import SUPERSETS, Protocol

# Row names: "<superset>'s run: <view>", and the views' blend.
ROW_PREFIX = "trained on {superset}'s classes: "


def in_index_order(fnames: list[str], probs: np.ndarray, index, dataset) -> np.ndarray:
    """A run's rows of probabilities for `index.train`'s clips, in its order; every clip must be there."""
    position = {fname: row for row, fname in enumerate(fnames)}
    absent = [fname for fname in index.train["fname"] if fname not in position]
    if absent:
        raise ValueError(f"{len(absent)} {dataset.name} clip(s) have no held-out prediction in the "
                         f"{len(fnames)}-clip run, e.g. {absent[0]!r}")
    return probs[[position[fname] for fname in index.train["fname"]]]


def narrowed_probs(fnames: list[str], probs: np.ndarray, superset_labels: tuple[str, ...], index,
                   dataset) -> np.ndarray:
    """The rows of `index.train`'s clips (in its order) of probabilities over the superset's labels, kept to
    the dataset's labels and renormalised: the prediction of a model that knows the clip is one of those."""
    columns = [superset_labels.index(label) for label in dataset.labels]
    kept = in_index_order(fnames, probs, index, dataset)[:, columns].astype(np.float64)
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


class Superset:
    """A protocol's clips as the superset protocol's runs predict them (among the protocol's labels), read where
    those runs finished: alone, blended, and beside the protocol's own runs."""

    def __init__(self, bench: Bench, protocol: Protocol, dataset, index, root):
        self.bench, self.protocol, self.dataset, self.index = bench, protocol, dataset, index
        self.superset = bench.plan.protocols[SUPERSETS[protocol.dataset].key]  # the plan's schedule for it
        self.big = protocol_dataset(self.superset, root)
        self.big_index = protocol_index(self.big, root, self.superset)
        self.true_ids = index.train["label"].map(dataset.label_to_id).to_numpy()
        self.folds = index.train["fold"].to_numpy()
        self.prefix = ROW_PREFIX.format(superset=self.superset.dataset)
        self.missing: list[str] = []
        self._views: dict[tuple, dict[str, tuple[np.ndarray, Path]]] = {}  # by train changes: read once

    def views(self, changes: dict) -> dict[str, tuple[np.ndarray, Path]]:
        """Each kit view's superset run with these train changes that finished: its narrowed held-out
        probabilities (in the index's order) and its folder; the others named in `missing`."""
        key = tuple(sorted(changes.items()))
        if key in self._views:
            return self._views[key]
        views = self._views[key] = {}
        for recipe in self.bench.plan.kit:
            experiment = recipe_experiment(recipe, self.superset, **changes)
            read = self.read(experiment)
            if read is not None:
                views[experiment.name] = read
        return views

    def read(self, experiment) -> tuple[np.ndarray, Path] | None:
        """The superset run's narrowed held-out probabilities (in the index's order) and its folder, where it
        finished; else None, and its name in `missing`."""
        from competition.modeling.runs import Run

        run_dir = self.bench.finished(self.big, experiment)
        if run_dir is None:
            self.missing.append(self.bench.run_name(self.big, experiment))
            return None
        oof = Run(run_dir).predictions("oof")
        return narrowed_probs(oof.fnames, oof.probs, self.big.labels, self.index, self.dataset), run_dir

    def scored(self, members: list[np.ndarray], run_dirs: list[Path], fitted: bool = False) -> dict:
        blend = members[0] if len(members) == 1 else geometric_blend(members, self.true_ids, self.folds, fitted)
        return {**fold_scores(self.true_ids, blend, self.folds, self.protocol),
                "train_seconds": train_seconds(run_dirs)}

    def blend_rows(self, name: str, members: dict[str, tuple[np.ndarray, Path]]) -> dict[str, dict]:
        """The members' geometric mean as two rows: equal weights, and weights fitted out of fold."""
        probs, run_dirs = [p for p, _ in members.values()], [d for _, d in members.values()]
        return {(fitted_name(name) if fitted else name): self.scored(probs, run_dirs, fitted)
                for fitted in (False, True)}

    def rows(self) -> dict[str, dict]:
        """Each view's superset run (the protocol's schedule, then each longer one) alone, and every view's blend;
        then each of the superset's own candidates (the default view changed)."""
        rows = {}
        schedules = {"": {}, **{f", {label}": changes for label, changes in self.bench.plan.longer_schedules.items()}}
        for suffix, changes in schedules.items():
            views = self.views(changes)
            for name, (probs, run_dir) in views.items():
                rows[f"{self.prefix}{name}{suffix}"] = self.scored([probs], [run_dir])
            if len(views) == len(self.bench.plan.kit) > 1:
                rows.update(self.blend_rows(f"{self.prefix}{' + '.join(views)}{suffix} (blend)", views))
        candidates = {}
        for label, (features, model, train) in self.candidates().items():
            experiment = recipe_experiment(self.bench.plan.kit[0], self.superset, features=features, model=model,
                                           **train)
            read = self.read(experiment)
            if read is not None:
                candidates[label] = read
                rows[f"{self.prefix}{experiment.name}, {label}"] = self.scored([read[0]], [read[1]])
        if len(candidates) > 1:  # as the superset's table blends them
            rows.update(self.blend_rows(f"{self.prefix}{candidates_blend_name(len(candidates))}", candidates))
        return rows

    def candidates(self) -> dict[str, tuple[dict, dict, dict]]:
        """The superset protocol's candidates: (features, model, train) changes to the default view."""
        return {"esc50": self.bench.plan.esc50_candidates}.get(self.superset.dataset, {})

    def beside(self, label: str, own: dict[str, Path]) -> dict[str, dict]:
        """The protocol's own runs (`own`, by view) blended with the superset's runs of the same views (the
        protocol's schedule), where all of both finished: models trained apart, on other data, err apart."""
        from competition.modeling.runs import Run

        views = self.views({})
        if not own or set(own) - set(views):
            return {}
        members = {}
        for name, run_dir in own.items():
            oof = Run(run_dir).predictions("oof")
            members[f"own {name}"] = in_index_order(oof.fnames, oof.probs, self.index, self.dataset), run_dir
            members[f"superset {name}"] = views[name]
        return self.blend_rows(f"{label} + {self.prefix}{' + '.join(own)}: {len(members)} views (blend)", members)

    def note(self) -> str:
        name, big = self.dataset.name, self.superset.dataset
        text = (f"\n'{self.prefix}...': the {big} protocol's runs (each view trained on the other folds' clips of "
                f"all {len(self.big.labels)} classes), each {name} clip's held-out prediction read among {name}'s "
                f"{len(self.dataset.labels)} labels; {siblings_in_other_folds(self.index, self.big_index)} of "
                f"{len(self.index.train)} {name} clips share a recording with a clip of another {big} fold")
        if self.missing:
            text += (f"\nnot finished, so not scored here (the {self.superset.key} protocol trains them; the longer "
                     f"schedules and its candidates not with --quick): {', '.join(self.missing)}")
        return text
