"""The ESC-50 bases of the transfer protocols, trained with the leakage guard on, and the names of the
runs fine-tuned from them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from benchmarks.quality.bench import Bench, recipe_experiment
from benchmarks.quality.data import protocol_dataset, shared_copy
from benchmarks.quality.settings import ESC50, URBANSOUND8K


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
    """The ESC-50 bases of the transfer protocols: each recipe's, trained once on every ESC-50 clip but
    UrbanSound8K's recordings and one check clip per class (the kit's exclude-sources mechanism), and
    checked against each target before a fine-tune starts from it."""

    def __init__(self, bench: Bench, shared: Path, epochs: int | None = None):
        workspace = self.workspace = bench.workspace
        self.bench = bench
        self.epochs = epochs or bench.plan.base_epochs
        # The leakage guard indexes UrbanSound8K where the kit keeps it: the bench's WAV copy.
        us8k_dir = workspace.dataset_dir("urbansound8k")
        if not us8k_dir.exists():
            us8k_dir.parent.mkdir(parents=True, exist_ok=True)
            us8k_dir.symlink_to(shared_copy(shared, URBANSOUND8K, workspace).resolve())
        # Its own name: its features are cached apart from the ESC-50 protocol's (another set of clips).
        esc50_root = shared_copy(shared, ESC50, workspace)
        self.dataset = replace(protocol_dataset(ESC50, esc50_root), name="esc50-base")
        self.index = esc50_base_index(self.dataset.index(esc50_root))

    def train(self, recipe_path: Path):
        """The recipe's ESC-50 base (guard on): its experiment and run folder (None if not finished)."""
        experiment = recipe_experiment(recipe_path, ESC50, epochs=self.epochs)
        return experiment, self.bench.train(self.dataset, self.index, experiment, exclude_sources="urbansound8k",
                                            only_folds=[1], run_name=f"bench-esc50-base-{experiment.name}-"
                                                                     f"{experiment.hash}-without-urbansound8k")

    def trained(self, recipes, target: str, target_train) -> tuple[dict, list[str]]:
        """Each recipe's base, trained unless it finished, and checked against `target`: the finished
        ones by recipe name (their runs), and a line on each (or on its absence)."""
        from competition.modeling.runs import Run

        bases, notes = {}, []
        for recipe in recipes:
            experiment, run_dir = self.train(recipe)
            if not run_dir:
                notes.append(f"base not trained: {experiment.name} ({self.epochs} epochs)")
                continue
            bases[experiment.name] = Run(run_dir)
            notes.append(self.describe(experiment, bases[experiment.name], target, target_train))
        return bases, notes

    def describe(self, experiment, base, target: str, target_train) -> str:
        """The base, its check accuracy and what the leakage guard found for `target` (refusing a base
        that shares a recording with it: LeakageError)."""
        from competition.modeling.transfer import check_leakage

        summary = base.fold_summary(1)
        guard = check_leakage(self.workspace, base, target, target_train, base_train=self.index.train)
        siblings, clips = check_siblings(self.index)
        return (f"base: {experiment.name} on ESC-50 (at 16 kHz, Vorbis), {summary['n_train']} clips ({guard}), "
                f"{self.epochs} epochs, accuracy {summary['score']:.4f} on its {summary['n_val']} held-out check "
                f"clips (one per class; {siblings} share a recording with {clips} training clips: optimistic)")


def fine_tune_name(dataset, experiment, base) -> str:
    """A fine-tuned run's folder name: the experiment's and its base's hashes, hashed together."""
    from competition.config import config_hash

    tag = config_hash({"experiment": experiment.hash, "base": base.config()["hash"]})
    return f"bench-{dataset.name}-{experiment.name}-transfer-{tag}"
