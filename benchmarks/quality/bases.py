"""The ESC-50 bases of the transfer protocols, trained with the leakage guard on, and the names of the
runs fine-tuned from them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from benchmarks.quality.bench import Bench, recipe_experiment
from benchmarks.quality.data import protocol_dataset, shared_copy
from benchmarks.quality.scores import train_seconds
from benchmarks.quality.settings import ESC50, Protocol
from competition.modeling.runs import Run


def base_schedules(bench: Bench) -> dict[str, int]:
    """The ESC-50 bases' schedules, by the tag their fine-tuned rows carry: the default's first (no
    tag: its rows keep their plain names), then the longer ones (not with --quick)."""
    plan = bench.plan
    longer = () if bench.quick else [epochs for epochs in plan.longer_base_epochs if epochs != plan.base_epochs]
    return {"": plan.base_epochs, **{f" ({epochs}-epoch bases)": epochs for epochs in longer}}


def esc50_base_index(esc50_index, check_fold: int = 1):
    """Every ESC-50 clip in the base's training set but one clip per class of `check_fold`, held out
    as the base's own check: the predefined folds become 1 (the check) and 2 (the rest)."""
    from competition.datasets.spec import Index

    train = esc50_index.train.copy()
    check = train[train["fold"] == check_fold].groupby("label").head(1).index
    train["fold"] = 2
    train.loc[check, "fold"] = 1
    return Index(train, esc50_index.test)


def check_siblings(base_index) -> tuple[int, int]:
    """How many of the base's check clips share a recording with its training clips, and how many
    training clips they share it with: ESC-50 cuts several clips from one recording, so such a check
    clip is easier than a test clip (the check is a sanity check, not a protocol's score)."""
    train = base_index.train
    check, rest = train[train["fold"] == 1], train[train["fold"] != 1]
    named = check["source_id"].astype(str) != ""
    shared = check["source_id"][named].isin(set(rest["source_id"]))
    return int(shared.sum()), int(rest["source_id"].isin(set(check["source_id"][named][shared])).sum())


class Esc50Bases:
    """The ESC-50 bases of a transfer protocol: each recipe's, trained once on ESC-50's clips (or those of
    `classes` only) but the recordings the target `without` also holds (the kit's exclude-sources
    mechanism) and one check clip per class, on the recipe's features (or with `features` changed), and
    checked against the target before a fine-tune starts from it."""

    def __init__(self, bench: Bench, shared: Path, epochs: int | None = None, *,
                 without: Protocol, classes: tuple[str, ...] | None = None, features: dict | None = None):
        workspace = self.workspace = bench.workspace
        self.bench = bench
        self.epochs = epochs or bench.plan.base_epochs
        self.features = features or {}  # changes to each recipe's features (the fine-tunes' own)
        self.without = without.dataset
        # The leakage guard indexes the target where the kit keeps it: the bench's copy.
        target_dir = workspace.dataset_dir(self.without)
        if not target_dir.exists():
            target_dir.parent.mkdir(parents=True, exist_ok=True)
            target_dir.symlink_to(shared_copy(shared, without, workspace).resolve())
        esc50_root = shared_copy(shared, ESC50, workspace)
        esc50 = protocol_dataset(ESC50, esc50_root)
        index = esc50.index(esc50_root)
        if classes is not None:
            from competition.datasets.spec import Index

            kept = [label for label in esc50.labels if label in classes]
            index = Index(index.train[index.train["label"].isin(kept)].reset_index(drop=True), index.test)
            esc50 = replace(esc50, labels=tuple(kept))
        # Its own name: its features are cached apart from the ESC-50 protocol's (another set of clips).
        self.dataset = replace(esc50, name="esc50-base" if classes is None else f"esc{len(esc50.labels)}-base")
        self.what = "ESC-50" if classes is None else f"ESC-50's {len(esc50.labels)} classes outside {without.dataset}"
        self.index = esc50_base_index(index)

    def train(self, recipe_path: Path):
        """The recipe's base (guard on): its experiment and run folder (None if not finished)."""
        experiment = recipe_experiment(recipe_path, ESC50, epochs=self.epochs, features=self.features)
        return experiment, self.bench.train(self.dataset, self.index, experiment, exclude_sources=self.without,
                                            only_folds=[1], run_name=f"bench-{self.dataset.name}-{experiment.name}-"
                                                                     f"{experiment.hash}-without-{self.without}")

    def trained(self, recipes, target: str, target_train) -> tuple[dict, list[str]]:
        """Each recipe's base, trained unless it finished, and checked against `target`: the finished
        ones by recipe name (their runs), and a line on each (or on its absence)."""
        bases, notes = {}, []
        for recipe in recipes:
            experiment, run_dir = self.train(recipe)
            if not run_dir:
                notes.append(f"base not trained: {experiment.name} ({self.epochs} epochs)")
                continue
            bases[experiment.name] = TrainedBase(run_dir, self)
            notes.append(self.describe(experiment, bases[experiment.name], target, target_train))
        return bases, notes

    def describe(self, experiment, base, target: str, target_train) -> str:
        """The base, its check accuracy and what the leakage guard found for `target` (refusing a base
        that shares a recording with it: LeakageError)."""
        from competition.modeling.transfer import check_leakage

        summary = base.fold_summary(1)
        guard = check_leakage(self.workspace, base, target, target_train, base_train=self.index.train)
        siblings, clips = check_siblings(self.index)
        return (f"base: {experiment.name} on {self.what} (at 16 kHz, Vorbis), {summary['n_train']} clips ({guard}), "
                f"{self.epochs} epochs ({train_seconds([base.dir]):.0f} s), accuracy {summary['score']:.4f} on its "
                f"{summary['n_val']} held-out check "
                f"clips (one per class; {siblings} share a recording with {clips} training clips: optimistic)")


class TrainedBase(Run):
    """A finished base run of `bases`: what a fine-tune rehearsing the base's clips trains on again."""

    def __init__(self, directory: Path, bases: Esc50Bases):
        super().__init__(directory)
        self.bases = bases

    def rehearsal(self, features, target: str, target_train):
        """The clips the base was trained on (its check clips too; but the recordings `target` holds), on
        `features`."""
        from competition.modeling.rehearsal import rehearsal_set
        from competition.modeling.train import exclude_sources_of

        bases = self.bases
        trained_on, _, _ = exclude_sources_of(bases.workspace, bases.index, bases.without)
        return rehearsal_set(bases.workspace, bases.dataset, trained_on.train, features, target, target_train)


def fine_tune(bench: Bench, dataset, index, experiment, base: TrainedBase) -> Path | None:
    """The experiment fine-tuned on the protocol's folds from `base`'s model, trained unless it finished;
    rehearsing the base's clips where the experiment asks for it (train.rehearsal_weight)."""
    rehearsal = (base.rehearsal(experiment.features, dataset.name, index.train)
                 if experiment.train.rehearsal_weight > 0 else None)
    return bench.train(dataset, index, experiment, base_model=base.model_path(1),
                       run_name=fine_tune_name(dataset, experiment, base), rehearsal=rehearsal)


def fine_tune_name(dataset, experiment, base) -> str:
    """A fine-tuned run's folder name: the experiment's and its base's hashes, hashed together."""
    from competition.config import config_hash

    tag = config_hash({"experiment": experiment.hash, "base": base.config()["hash"]})
    return f"bench-{dataset.name}-{experiment.name}-transfer-{tag}"
