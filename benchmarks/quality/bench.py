"""The bench's training: a recipe's experiment under a protocol, trained by the kit's own
`train_experiment` unless it finished before."""

from __future__ import annotations

from pathlib import Path

from benchmarks.quality.settings import Protocol, QualityPlan
from competition.workspace import Workspace


def recipe_experiment(recipe: Path, protocol: Protocol, *, fold_seed: int | None = None, features: dict | None = None,
                      model: dict | None = None, **train_changes):
    """The recipe for the protocol's dataset on the protocol's epochs, its last epoch kept; on the
    fold seed's stratified folds where the protocol repeats its folds. A `seed` among the train
    changes is the training seed (initialisation, data order, augmentation, dropout)."""
    from competition.config import load_experiment

    if fold_seed is not None and not protocol.seeds:
        # Predefined folds do not move with a fold seed: it would only rename a run that trains the same.
        raise ValueError(f"{protocol.key} uses its predefined folds; a fold seed ({fold_seed}) changes nothing there")
    experiment = load_experiment(recipe, protocol.dataset)
    changes = {"epochs": protocol.epochs, "keep_epoch": "last", **train_changes}
    folds = {"k": len(protocol.folds), "seed": fold_seed} if fold_seed is not None else None
    return experiment.with_overrides(train=changes, features=features, model=model, folds=folds)


class Bench:
    """The protocols' shared state: the workspace, the plan, and whether to train what has not finished."""

    def __init__(self, workspace: Workspace, *, quick: bool, finished_only: bool, plan: QualityPlan,
                 train_only: set[str] | None = None):
        self.workspace, self.quick, self.finished_only, self.plan = workspace, quick, finished_only, plan
        self.train_only = train_only  # experiment names that may be trained (None: all); the others only read
        self.missing: list[str] = []

    @staticmethod
    def run_name(dataset, experiment) -> str:
        return f"bench-{dataset.name}-{experiment.name}-{experiment.hash}"

    def finished(self, dataset, experiment) -> Path | None:
        """The run's folder where it finished before (another protocol's run, read and never trained)."""
        from competition.modeling.runs import Run

        run_dir = self.workspace.runs / self.run_name(dataset, experiment)
        return run_dir if Run(run_dir).has_scores() else None

    def train(self, dataset, index, experiment, *, run_name: str | None = None, **kwargs) -> Path | None:
        """The run's folder, trained unless it finished before; None (and named) with --finished-only,
        or when --recipes leaves its recipe out."""
        from competition.modeling.runs import Run
        from competition.modeling.train import train_experiment

        name = run_name or self.run_name(dataset, experiment)
        run_dir = self.workspace.runs / name
        read_only = self.finished_only or (self.train_only is not None and experiment.name not in self.train_only)
        if read_only and not Run(run_dir).has_scores() and not (
                kwargs.get("only_folds") and all(Run(run_dir).fold_is_done(f) for f in kwargs["only_folds"])):
            if self.twin_finished(dataset, experiment, kwargs):  # its folds' models predict anew, nothing trains
                return train_experiment(self.workspace, dataset, index, experiment, run_name=name, **kwargs)
            self.missing.append(name)
            return None
        if read_only:  # finished: read as it is (another process may be reading or training beside)
            return run_dir
        return train_experiment(self.workspace, dataset, index, experiment, run_name=name, **kwargs)

    def twin_finished(self, dataset, experiment, kwargs: dict) -> bool:
        """Whether a finished run was trained as this one would be, differing only in how it predicts (so
        running it trains nothing): from the same base model (by content), without the same dataset's
        recordings."""
        from competition.modeling.train import fold_twins, run_record

        excluded = {"of": kwargs["exclude_sources"]} if kwargs.get("exclude_sources") else None
        record = run_record(experiment, dataset, kwargs.get("base_model"), excluded)
        wanted = set(kwargs.get("only_folds") or ())
        return any(twin.has_scores() and wanted <= set(twin.finished_folds())
                   for twin in fold_twins(self.workspace.runs, record).values())
