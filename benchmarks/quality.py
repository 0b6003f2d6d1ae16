"""Quality on real recordings (`make bench-quality`): the kit's default recipe against a peer baseline.

Protocols, on the copies in ../shared/data beside the kit (skipped, with a message, when absent), by
the names `--only` (`make bench-quality ONLY=...`) takes, in the order they run:

    fsd-subset     the 200 real FSDKaggle2018 clips (10 instrument labels x 20, all verified): repeated
                   stratified 5-fold CV (two repeats, fold seeds 42 and 7), out-of-fold MAP@3 and
                   accuracy over the 200 clips per repeat, their mean and spread; every recipe on the
                   same folds. The recipe candidates for the competition's sound are scored here too,
                   alone and in the default recipe's place in the blend, and the zoo's other views
                   alone and as one more member of the blend.
    transfer       UrbanSound8K fold 1 -> 2 and 2 -> 1 fine-tuned from a base trained on ESC-50 with
                   the leakage guard on (the base never sees a clip of a recording UrbanSound8K holds:
                   the kit's exclude-sources mechanism), beside the same recipe from scratch (same
                   epochs, same folds): the transfer gain in points per fold; then what a practitioner
                   would try (the backbone frozen for the first epochs, a lower learning rate, longer
                   fine-tuning); and the default blend with every view fine-tuned from its own ESC-50
                   base against the blend from scratch
    fsd-transfer   the FSD subset's default views, each fine-tuned from its ESC-50 base (the transfer
                   protocol's; the guard checks them against the subset's Freesound ids, from the
                   competition's post-competition CSV) on the fsd-subset protocol's repeated folds,
                   beside the same views from scratch (its runs): the gain in MAP@3 points per repeat,
                   and the blend of the transferred views and of all six
    esc50          ESC-50 (at 16 kHz, Vorbis), 5-fold CV on the predefined folds (2,000 clips, 50 classes);
                   the default recipe on a longer schedule too (not with --quick)
    esc10          the same, on the rows marked esc10 of the shared ESC-50 copy (400 clips, 10 classes),
                   read in place as the kit's `esc10` dataset
    urbansound8k   train on fold 1, test on fold 2, and the reverse (the folds we have; 10 classes)

Recipes, each trained by the kit's own `train_experiment` on the same folds:

    kit    the Makefile's default EXPERIMENTS (KIT_RECIPES below; the first is the default recipe),
           alone and blended by a geometric mean: with equal weights, and with the weights
           `make ensemble` fits by default, fitted out of fold (each held-out fold's weights fitted
           on the other folds' out-of-fold predictions only, never on the clips they score)
    peer   experiments/zafar-mfcc-cnn.toml, the recipe of Zafar's Kaggle kernel

Every model is the one of its last epoch (`keep_epoch = "last"`), so the test fold never picks an
epoch or stops training: the numbers are test numbers, not validation numbers. Each protocol sets
its epochs and prints them.

Each recipe is loaded for its dataset, with the experiment file's `[datasets.<name>]` values (the
log-mel views shift bins and levels on UrbanSound8K only). The ablation takes the default recipe
apart: its fold models re-scored on one centre crop instead of TTA (every protocol; no training),
each member alone against the blend, and on the FSD subset, ESC-50 and ESC-10 retrained without
SpecAugment masking and without mixup, on UrbanSound8K without its bin shifts and level changes. --quick skips
those retrainings. An FSD-subset candidate ahead of the default there is also trained on ESC-10 (but
with --quick), where the default was shaped: a candidate becomes the default only if it does not
lose there. Runs land in
runs/bench-<dataset>-<recipe>-<hash>/ of the workspace, reports included, so a rerun reuses
whatever finished; --finished-only trains nothing and prints the tables of what finished (a recipe
not finished is named); --recipes NAMES trains only those experiments' runs (two processes can
share a protocol). The tables go to runs/bench-quality.txt/.json after each
protocol, a protocol run again replacing its own table and keeping the others'.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from benchmarks import SHARED_DATA
from competition.config import DEFAULT_EXPERIMENTS, EXPERIMENTS_DIR
from competition.workspace import Workspace, atomic_write_text

# The kit's default experiments: trained by `make train`, blended by `make ensemble`. The first is
# the recipe the ablation takes apart.
KIT_RECIPES = DEFAULT_EXPERIMENTS
PEER_RECIPE = EXPERIMENTS_DIR / "zafar-mfcc-cnn.toml"
WITHOUT_MASKING = {"time_masks": 0, "freq_masks": 0}
WITHOUT_MIXUP = {"mixup_alpha": 0.0}
# The default recipe retrained without one of its augmentations (not with --quick): on ESC-10, ESC-50 and the FSD
# subset.
TRAINING_ABLATIONS = {"without SpecAugment masking": WITHOUT_MASKING, "without mixup": WITHOUT_MIXUP}
# The default recipe on a longer schedule (its cosine decay over twice the epochs), on ESC-50, where
# its validation accuracy still climbs at the last epochs (not with --quick).
ESC50_CANDIDATES = {"120 epochs": {"epochs": 120}}
# The recipe's augmentation for urban sounds (its [datasets.urbansound8k] values), taken away.
WITHOUT_URBAN_AUGMENTATION = {"bin_shift": 0, "gain_db": 0.0}
# The targets: mean accuracy (predefined folds), mean OOF MAP@3 (the FSD subset).
TARGETS = {"esc10": 0.94, "esc50": 0.86, "urbansound8k": 0.70, "fsd-subset": 0.93}
FSD_MARGIN_OVER_PEER = 0.05   # the FSD subset's blend, MAP@3 points over Zafar's recipe on the same folds
TRANSFER_GAIN = 0.05          # UrbanSound8K: transfer over scratch, mean accuracy
# Recipe candidates for the competition's sound (the item 5), changes to the default recipe,
# scored on the FSD subset beside it: (features, model, train) changes.
FSD_CANDIDATES = {
    "44.1 kHz, 128 mel bins, 23 ms hop": ({"sample_rate": 44100, "n_fft": 2048, "hop_length": 1024, "n_mels": 128},
                                          {}, {}),
    "width 32": ({}, {"width": 32}, {}),
    "8 s crops": ({}, {}, {"crop_seconds": 8.0}),
    "128 mel bins (22.05 kHz, 46 ms hop)": ({"n_mels": 128}, {}, {}),
    # 160 training clips a fold make 5 steps an epoch: 60 epochs are 300 steps, a tenth of ESC-50's.
    "120 epochs": ({}, {}, {"epochs": 120}),
}
# Other members of the zoo, scored alone on the FSD subset and as one more view of the default blend:
# candidates for the blend.
FSD_EXTRA_VIEWS = (EXPERIMENTS_DIR / "wave-cnn1d.toml",)
# Fine-tuning variants beside the plain transfer (train changes to the same recipe).
TRANSFER_VARIANTS = {
    "backbone frozen for the first 10 epochs": {"freeze_backbone_epochs": 10},
    "learning rate / 4 (0.0005)": {"learning_rate": 0.0005},
    "90 epochs": {"epochs": 90},
}


@dataclass(frozen=True)
class Protocol:
    dataset: str
    title: str
    epochs: int              # per recipe run on this dataset
    folds: tuple[int, ...]   # the folds used (UrbanSound8K: the two we have)
    seeds: tuple[int, ...] = ()  # stratified folds: one repeat of folds.k folds per fold seed
    name: str = ""           # --only's name; the dataset's by default

    @property
    def key(self) -> str:
        return self.name or self.dataset

    def fold_name(self, fold: int) -> str:
        """How a held-out fold reads in the tables: its number, or train->test for two folds."""
        if len(self.folds) == 2:
            (other,) = [f for f in self.folds if f != fold]
            return f"{other}->{fold}"
        return f"fold {fold}"


ESC10 = Protocol("esc10", "ESC-10 (ESC-50 at 16 kHz, Vorbis), 5-fold CV on the predefined folds", epochs=60,
                 folds=(1, 2, 3, 4, 5))
ESC50 = Protocol("esc50", "ESC-50 (at 16 kHz, Vorbis), 5-fold CV on the predefined folds", epochs=60,
                 folds=(1, 2, 3, 4, 5))
URBANSOUND8K = Protocol("urbansound8k", "UrbanSound8K, train on one fold, test on the other", epochs=60, folds=(1, 2))
FSD_SUBSET = Protocol("fsd-subset", "FSDKaggle2018 subset (200 real clips, 10 instrument labels, 44.1 kHz, from "
                      "Vorbis), repeated stratified 5-fold CV", epochs=60, folds=(0, 1, 2, 3, 4), seeds=(42, 7))
TRANSFER = Protocol("urbansound8k", "UrbanSound8K, train on one fold, test on the other: transfer from an ESC-50 "
                    "base (leakage guard on) against the same recipe from scratch", epochs=60, folds=(1, 2),
                    name="transfer")
FSD_TRANSFER = replace(FSD_SUBSET, name="fsd-transfer",
                       title="FSDKaggle2018 subset, repeated stratified 5-fold CV: every default view fine-tuned "
                             "from its ESC-50 base (leakage guard: checked) against the same view from scratch")
PROTOCOLS = {p.key: p for p in (FSD_SUBSET, TRANSFER, FSD_TRANSFER, ESC50, ESC10, URBANSOUND8K)}
# Those fine-tuned from the ESC-50 bases: they need the ESC-50 copy too.
FROM_ESC50_BASES = ("transfer", "fsd-transfer")
# The ESC-50 base of the transfer: the default recipe on every ESC-50 clip but UrbanSound8K's recordings,
# one held-out clip per class (of fold 1) its check; its epochs.
BASE_EPOCHS = 60


def parse_only(text: str | None) -> list[str]:
    """--only's comma-separated protocol names, in the order they run; every protocol when empty."""
    if not text:
        return list(PROTOCOLS)
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in PROTOCOLS]
    if unknown:
        from competition.errors import KitError

        raise KitError(f"--only: unknown protocol(s) {', '.join(unknown)}; known: {', '.join(PROTOCOLS)}")
    return [name for name in PROTOCOLS if name in names]


def _shared_source(shared: Path, protocol: Protocol) -> Path:
    """Where under `shared` the protocol's clips are: ESC-10 is the esc10 rows of the ESC-50 copy."""
    return shared / {"esc10": "esc50", "fsd-subset": "fsdkaggle2018-subset"}.get(protocol.dataset, protocol.dataset)


def _shared_copy(shared: Path, protocol: Protocol, workspace: Workspace) -> Path | None:
    """The dataset's folder in the kit's layout, or None when ../shared does not hold it."""
    source = _shared_source(shared, protocol)
    if protocol.dataset in ("esc10", "esc50"):
        # ESC-50's layout, read in place (the kit's esc10 entry keeps only the esc10 rows).
        return source if (source / "meta" / "esc50.csv").is_file() else None
    if not source.is_dir():
        return None
    # The shared copies are FLAC / Vorbis; their own scripts write the datasets' WAV layouts (files
    # already there are kept).
    wav = workspace.data / f"bench-{protocol.dataset}"
    script = {"urbansound8k": "urbansound8k-wav", "fsd-subset": "fsdkaggle2018-subset-wav"}[protocol.dataset]
    subprocess.run([sys.executable, str(shared.parent / "bin" / script), str(wav)], check=True,
                   stdout=subprocess.DEVNULL)
    if protocol.dataset == "fsd-subset":
        _link_freesound_ids(shared, wav)
    return wav


def _link_freesound_ids(shared: Path, wav: Path) -> None:
    """The competition's post-competition train CSV beside the subset's train.csv: the index then
    names each clip's Freesound recording (`source_id`), which the leakage guard checks."""
    from competition.datasets.freesound import TRAIN_SOURCES_CSV

    meta = shared / "fsdkaggle2018-meta" / TRAIN_SOURCES_CSV
    link = wav / TRAIN_SOURCES_CSV
    if meta.is_file() and not link.exists():
        link.symlink_to(meta.resolve())


def _dataset(protocol: Protocol, root: Path):
    """The registry's entry; the FSD subset is the `demo` entry (Kaggle's layout) renamed, on its 10 labels."""
    from competition.datasets.registry import get_dataset

    if protocol.dataset != "fsd-subset":
        return get_dataset(protocol.dataset)
    demo = get_dataset("demo")
    present = set(demo.index(root).train["label"])
    return replace(demo, name="fsd-subset", labels=tuple(label for label in demo.labels if label in present),
                   fetcher=None, ground_truth=None, kaggle_competition=None,
                   description="200 real FSDKaggle2018 train clips, 10 instrument labels")


def _index(dataset, root: Path, protocol: Protocol):
    from competition.datasets.spec import Index

    index = dataset.index(root)
    if protocol.seeds:
        return index
    train = index.train[index.train["fold"].isin(protocol.folds)].reset_index(drop=True)
    return Index(train, index.test)


def _experiment(recipe: Path, protocol: Protocol, *, seed: int | None = None, features: dict | None = None,
                model: dict | None = None, **train_changes):
    from competition.config import load_experiment

    experiment = load_experiment(recipe, protocol.dataset)
    changes = {"epochs": protocol.epochs, "keep_epoch": "last", **train_changes}
    folds = {"k": len(protocol.folds), "seed": seed} if seed is not None else None
    return experiment.with_overrides(train=changes, features=features, model=model, folds=folds)


class Bench:
    """The protocols' shared state: the workspace, and whether to train what has not finished."""

    def __init__(self, workspace: Workspace, *, quick: bool, finished_only: bool, recipes: set[str] | None = None):
        self.workspace, self.quick, self.finished_only = workspace, quick, finished_only
        self.recipes = recipes  # experiment names that may be trained (None: all); the others only read
        self.missing: list[str] = []

    def train(self, dataset, index, experiment, *, run_name: str | None = None, **kwargs) -> Path | None:
        """The run's folder, trained unless it finished before; None (and named) with --finished-only,
        or when --recipes leaves its recipe out."""
        from competition.modeling.runs import Run
        from competition.modeling.train import train_experiment

        name = run_name or f"bench-{dataset.name}-{experiment.name}-{experiment.hash}"
        run_dir = self.workspace.runs / name
        read_only = self.finished_only or (self.recipes is not None and experiment.name not in self.recipes)
        if read_only and not (run_dir / "scores.json").is_file() and not (
                kwargs.get("only_folds") and all(Run(run_dir).fold_is_done(f) for f in kwargs["only_folds"])):
            self.missing.append(name)
            return None
        if read_only:  # finished: read as it is (another process may be reading or training beside)
            return run_dir
        return train_experiment(self.workspace, dataset, index, experiment, run_name=name, **kwargs)


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


def _train_seconds(run_dirs: list[Path]) -> float:
    from competition.modeling.runs import Run

    return float(sum(h["seconds"].sum() for run_dir in run_dirs for h in Run(run_dir).histories().values()))


def _run_scores(run_dir: Path, index, protocol: Protocol) -> dict:
    from competition.modeling.runs import Run

    oof = Run(run_dir).predictions("oof")
    folds = index.train.set_index("fname").loc[oof.fnames, "fold"].to_numpy()
    scores = fold_scores(oof.true_ids, oof.probs, folds, protocol)
    scores["train_seconds"] = _train_seconds([run_dir])
    return scores


def _fold_probs(run_dir: Path, workspace: Workspace, dataset, index, experiment, protocol: Protocol,
                n_crops: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Every clip's held-out probabilities from the run's fold models (on `n_crops` crops; its TTA
    when None), and the fold of every clip, in `index.train`'s order."""
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
        probs[trainer.val_positions], _ = trainer.validate(keras.models.load_model(run.model_path(fold)),
                                                           n_crops or experiment.train.tta_crops)
    return probs, folds.to_numpy()


def _without_tta(run_dir: Path, workspace: Workspace, dataset, index, experiment, protocol: Protocol) -> dict:
    """The run's fold models re-scored on one centre crop per clip instead of its TTA crops."""
    true_ids = index.train["label"].map(dataset.label_to_id).to_numpy()
    probs, _ = _fold_probs(run_dir, workspace, dataset, index, experiment, protocol, n_crops=1)
    return fold_scores(true_ids, probs, index.train["fold"].to_numpy(), protocol)


# A blend row's name with fitted weights: `make ensemble`'s default, scored out of sample.
FITTED = "(blend, weights fitted out of fold)"


def fitted_name(blend_row: str) -> str:
    return blend_row.replace("(blend)", FITTED)


def _geometric_blend(members: list[np.ndarray], true_ids: np.ndarray, folds: np.ndarray, fitted: bool) -> np.ndarray:
    """The members' geometric mean: equal weights, or (`fitted`) each held-out fold's weights fitted on
    the other folds' out-of-fold rows only, as `make ensemble` fits them."""
    from competition.modeling.inference import geometric_mean
    from competition.submit.ensemble import out_of_fold_blend

    return out_of_fold_blend(members, true_ids, folds) if fitted else geometric_mean(members)


def _blend(run_dirs: list[Path], index, protocol: Protocol, *, fitted: bool = False) -> dict:
    """The runs' geometric mean (equal weights, or fitted out of fold) scored per held-out fold, with
    their training seconds."""
    from competition.modeling.runs import Run

    members = [Run(run_dir).predictions("oof") for run_dir in run_dirs]
    folds = index.train.set_index("fname").loc[members[0].fnames, "fold"].to_numpy()
    blend = _geometric_blend([m.probs for m in members], members[0].true_ids, folds, fitted)
    return {**fold_scores(members[0].true_ids, blend, folds, protocol), "train_seconds": _train_seconds(run_dirs)}


def _table(rows: dict[str, dict], protocol: Protocol) -> str:
    columns = [protocol.fold_name(f) for f in protocol.folds] + ["mean"]
    width = max([56, *map(len, rows)])
    lines = [f"{'recipe':<{width}}" + "".join(f"{c:>9}" for c in columns) + f"{'MAP@3':>9}{'train s':>9}"]
    for name, scores in rows.items():
        seconds = scores.get("train_seconds")
        lines.append(f"{name:<{width}}" + "".join(f"{scores[c]['accuracy']:>9.4f}" for c in columns)
                     + f"{scores['mean']['map@3']:>9.4f}"
                     + (f"{seconds:>9.0f}" if seconds is not None else f"{'-':>9}"))
    return "\n".join(lines)


def _met(value: float, target: float) -> str:
    # Accuracies are counts over clips: 0.9200 summed and divided in floating point reads 0.91999...
    return "met" if round(value, 9) >= target else "NOT met"


def _predefined_protocol(bench: Bench, protocol: Protocol, dataset, index) -> tuple[dict, str]:
    """ESC-10, ESC-50, UrbanSound8K: the kit's views, their blend, the peer and the ablation."""
    workspace = bench.workspace
    kit = [_experiment(recipe, protocol) for recipe in KIT_RECIPES]
    peer = _experiment(PEER_RECIPE, protocol)
    # The default recipe and the peer first: what a partial run most wants.
    runs = {e.name: bench.train(dataset, index, e) for e in (kit[0], peer, *kit[1:])}
    rows = {}
    blend_name = f"kit: {' + '.join(e.name for e in kit)} (blend)"
    if all(runs[e.name] for e in kit):
        rows[blend_name] = _blend([runs[e.name] for e in kit], index, protocol)
        rows[fitted_name(blend_name)] = _blend([runs[e.name] for e in kit], index, protocol, fitted=True)
    rows.update({f"kit: {e.name}": _run_scores(runs[e.name], index, protocol) for e in kit if runs[e.name]})
    if runs[peer.name]:
        rows[f"peer: Zafar kernel ({peer.name})"] = _run_scores(runs[peer.name], index, protocol)
    if runs[kit[0].name]:
        rows[f"ablation: {kit[0].name} without TTA (1 crop)"] = _without_tta(runs[kit[0].name], workspace, dataset,
                                                                            index, kit[0], protocol)
    variants = {"esc10": TRAINING_ABLATIONS, "esc50": TRAINING_ABLATIONS,
                "urbansound8k": {"without bin shifts and gain changes": WITHOUT_URBAN_AUGMENTATION}}
    for label, changes in ({} if bench.quick else variants.get(protocol.dataset, {})).items():
        run_dir = bench.train(dataset, index, _experiment(KIT_RECIPES[0], protocol, **changes))
        if run_dir:
            rows[f"ablation: {kit[0].name} {label}"] = _run_scores(run_dir, index, protocol)
    for label, changes in ({} if bench.quick or protocol.dataset != "esc50" else ESC50_CANDIDATES).items():
        run_dir = bench.train(dataset, index, _experiment(KIT_RECIPES[0], protocol, **changes))
        if run_dir:
            rows[f"candidate: {kit[0].name}, {label}"] = _run_scores(run_dir, index, protocol)
    candidates_note = ""
    if protocol.dataset == "esc10" and not bench.quick:  # the FSD subset's candidates, where the default was shaped
        fsd_rows = _previous_rows(workspace, FSD_SUBSET.key)
        ahead = candidates_ahead(fsd_rows, f"kit: {kit[0].name}", FSD_CANDIDATES)
        for label, (features, model, train) in FSD_CANDIDATES.items():
            if label not in ahead:
                continue
            run_dir = bench.train(dataset, index, _experiment(KIT_RECIPES[0], protocol, features=features, model=model,
                                                              **train))
            if run_dir:
                rows[f"candidate: {kit[0].name}, {label}"] = _run_scores(run_dir, index, protocol)
        behind = [label for label in FSD_CANDIDATES if label not in ahead]
        for recipe in FSD_EXTRA_VIEWS:  # a zoo view that added to the blend there: alone and in the blend here
            label = f"the blend + {recipe.stem}"
            if not rows_ahead(fsd_rows, blend_name, [f"candidate blend: {label}"]):
                behind.append(label)
                continue
            view = _experiment(recipe, protocol)
            run_dir = bench.train(dataset, index, view)
            if run_dir:
                rows[f"zoo: {view.name}"] = _run_scores(run_dir, index, protocol)
                if all(runs[e.name] for e in kit):
                    members = [*(runs[e.name] for e in kit), run_dir]
                    rows[f"candidate blend: {label}"] = _blend(members, index, protocol)
        if behind:
            candidates_note = (f"\nnot trained here, not ahead of {kit[0].name} on the FSD subset's finished repeats "
                               f"(or not scored there yet): {'; '.join(behind)}")
    target = TARGETS[protocol.dataset]
    verdicts = "; ".join(f"{name.split(': ')[1]} {rows[name]['mean']['accuracy']:.4f} "
                         f"{_met(rows[name]['mean']['accuracy'], target)}"
                         for name in (blend_name, fitted_name(blend_name), f"kit: {kit[0].name}") if name in rows)
    text = (f"\n{protocol.title}: accuracy per held-out fold, mean over folds ({protocol.epochs} epochs, "
            f"last epoch kept)\n{_table(rows, protocol)}\n"
            f"target mean accuracy >= {target:.2f}: {verdicts or 'nothing finished'}{candidates_note}")
    return rows, text


def _previous_rows(workspace: Workspace, protocol_key: str) -> dict[str, dict]:
    """A protocol's rows as the last call that ran it wrote them to runs/bench-quality.json ({} if none)."""
    path = workspace.runs / "bench-quality.json"
    return json.loads(path.read_text()).get(protocol_key, {}) if path.is_file() else {}


def candidates_ahead(fsd_rows: dict[str, dict], default_row: str, candidates: dict) -> list[str]:
    """The FSD subset's candidates whose mean MAP@3 over every repeat is above the default recipe's:
    the only ones worth confirming where the default was shaped (a row of some repeats only, its
    name saying so, does not count)."""
    prefix = default_row.replace("kit: ", "candidate: ", 1)
    ahead = rows_ahead(fsd_rows, default_row, [f"{prefix}, {label}" for label in candidates])
    return [label for label in candidates if f"{prefix}, {label}" in ahead]


def rows_ahead(rows: dict[str, dict], reference: str, names: list[str]) -> list[str]:
    """Those of `names` that are rows with a mean MAP@3 above the `reference` row's (none without it)."""
    if reference not in rows:
        return []
    return [name for name in names if name in rows and rows[name]["mean"]["map@3"] > rows[reference]["mean"]["map@3"]]


def repeat_table(rows: dict[str, dict], seeds: tuple[int, ...]) -> str:
    columns = [f"seed {seed}" for seed in seeds]
    width = max([56, *map(len, rows)])
    lines = [f"{'recipe':<{width}}" + "".join(f"{c:>9}" for c in columns)
             + f"{'mean':>9}{'spread':>9}{'fold sd':>9}{'accuracy':>9}{'train s':>9}"]
    for name, scores in rows.items():
        seconds = scores.get("train_seconds")
        lines.append(f"{name:<{width}}" + "".join(f"{scores[c]['map@3']:>9.4f}" if c in scores else f"{'-':>9}"
                                                   for c in columns)
                     + f"{scores['mean']['map@3']:>9.4f}{scores['spread']:>9.4f}{scores['fold std']:>9.4f}"
                     + f"{scores['mean']['accuracy']:>9.4f}"
                     + (f"{seconds:>9.0f}" if seconds is not None else f"{'-':>9}"))
    return "\n".join(lines)


def _repeat_oof(run_dir: Path, workspace: Workspace, dataset, index, protocol: Protocol,
                seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A repeat's out-of-fold probabilities, in `index.train`'s order, and the fold of every clip."""
    from competition.datasets.folds import load_or_make_folds
    from competition.modeling.runs import Run

    predictions = Run(run_dir).predictions("oof")
    assert (predictions.fnames == index.train["fname"].to_numpy()).all(), run_dir
    folds = load_or_make_folds(workspace, dataset, index.train, len(protocol.folds), seed).to_numpy()
    return predictions.probs, folds


def _repeat_blend(members: list[dict[int, Path]], workspace: Workspace, dataset, index, protocol: Protocol,
                  fitted: bool = False) -> dict:
    """Repeat scores of the members' geometric mean (equal weights, or fitted out of fold; one member:
    the run itself), with their training seconds. `members`: fold seed -> run, per member."""
    true_ids = index.train["label"].map(dataset.label_to_id).to_numpy()
    repeats = {}
    for seed in protocol.seeds:
        oofs = [_repeat_oof(by_seed[seed], workspace, dataset, index, protocol, seed) for by_seed in members]
        folds = oofs[0][1]
        repeats[seed] = (_geometric_blend([probs for probs, _ in oofs], true_ids, folds, fitted), folds)
    scores = repeat_scores(true_ids, repeats)
    scores["train_seconds"] = _train_seconds([by_seed[seed] for by_seed in members for seed in protocol.seeds])
    return scores


def _repeated_protocol(bench: Bench, protocol: Protocol, dataset, index) -> tuple[dict, str]:
    """The FSD subset: every recipe on the same repeated stratified folds; OOF MAP@3 per repeat."""

    workspace = bench.workspace
    true_ids = index.train["label"].map(dataset.label_to_id).to_numpy()
    # The default recipe and the peer first, then the other views, then the candidates.
    recipes = {f"kit: {KIT_RECIPES[0].stem}": KIT_RECIPES[0], f"peer: Zafar kernel ({PEER_RECIPE.stem})": PEER_RECIPE,
               **{f"kit: {recipe.stem}": recipe for recipe in KIT_RECIPES[1:]}}
    runs: dict[str, dict[int, Path | None]] = {}
    experiments: dict[str, dict] = {}
    for name, recipe in recipes.items():
        experiments[name] = {seed: _experiment(recipe, protocol, seed=seed) for seed in protocol.seeds}
    candidates = {}
    for label, (features, model, train) in FSD_CANDIDATES.items():
        candidates[f"candidate: {KIT_RECIPES[0].stem}, {label}"] = {
            seed: _experiment(KIT_RECIPES[0], protocol, seed=seed, features=features, model=model, **train)
            for seed in protocol.seeds}
    for recipe in FSD_EXTRA_VIEWS:
        candidates[f"zoo: {recipe.stem}"] = {seed: _experiment(recipe, protocol, seed=seed) for seed in protocol.seeds}
    for label, changes in ({} if bench.quick else TRAINING_ABLATIONS).items():
        candidates[f"ablation: {KIT_RECIPES[0].stem} {label}"] = {
            seed: _experiment(KIT_RECIPES[0], protocol, seed=seed, **changes) for seed in protocol.seeds}
    # One repeat of every recipe before the next, the candidates last (the zoo's views and the ablations
    # before the recipe candidates): a partial run has whole repeats.
    later = dict(sorted(candidates.items(), key=lambda item: item[0].startswith("candidate: ")))
    for group in (experiments, later):
        for seed in protocol.seeds:
            for name, by_seed in group.items():
                runs.setdefault(name, {})[seed] = bench.train(dataset, index, by_seed[seed])
    experiments.update(candidates)

    def oof(run_dir: Path, seed: int) -> tuple[np.ndarray, np.ndarray]:
        return _repeat_oof(run_dir, workspace, dataset, index, protocol, seed)

    done = {name: by_seed for name, by_seed in runs.items() if all(by_seed.values())}
    # A candidate (or zoo view, or ablation) with some repeats finished is shown on those (its row says which).
    partial = {name: {seed: run for seed, run in by_seed.items() if run} for name, by_seed in runs.items()
               if name in candidates and name not in done and any(by_seed.values())}
    rows = {}
    kit_names = [f"kit: {recipe.stem}" for recipe in KIT_RECIPES]
    blend_name = f"kit: {' + '.join(recipe.stem for recipe in KIT_RECIPES)} (blend)"

    def blend(names: list[str], fitted: bool = False) -> dict:
        return _repeat_blend([done[name] for name in names], workspace, dataset, index, protocol, fitted)

    blend_candidates = {}
    if all(name in done for name in kit_names):
        rows[blend_name] = blend(kit_names)
        rows[fitted_name(blend_name)] = blend(kit_names, fitted=True)
        # A candidate for the default recipe in its place in the blend; another view of the zoo beside it.
        for name in candidates:
            if name in done and name.startswith("candidate: "):
                label = f"candidate blend: {name.split(', ', 1)[1]} in place of {kit_names[0].split(': ')[1]}"
                blend_candidates[label] = blend([name, *kit_names[1:]])
            elif name in done and name.startswith("zoo: "):
                blend_candidates[f"candidate blend: the blend + {name.split(': ')[1]}"] = blend([*kit_names, name])
    for name in experiments:
        by_seed = done.get(name) or partial.get(name)
        if by_seed:
            label = name if name in done else f"{name} (seed {', '.join(map(str, by_seed))} only)"
            rows[label] = repeat_scores(true_ids, {seed: oof(run, seed) for seed, run in by_seed.items()})
            rows[label]["train_seconds"] = _train_seconds(list(by_seed.values()))
    rows.update(blend_candidates)
    default = kit_names[0]
    if default in done:
        rows[f"ablation: {KIT_RECIPES[0].stem} without TTA (1 crop)"] = repeat_scores(true_ids, {
            seed: _fold_probs(done[default][seed], workspace, dataset, index, experiments[default][seed], protocol,
                              n_crops=1) for seed in protocol.seeds})
    target, peer = TARGETS["fsd-subset"], f"peer: Zafar kernel ({PEER_RECIPE.stem})"
    verdicts = []
    for name in (blend_name, fitted_name(blend_name), default):
        if name in rows:
            value = rows[name]["mean"]["map@3"]
            verdict = f"{name.split(': ')[1]} {value:.4f} {_met(value, target)}"
            if peer in rows:
                margin = value - rows[peer]["mean"]["map@3"]
                verdict += (f", {100 * margin:+.1f} points over Zafar's recipe (>= {100 * FSD_MARGIN_OVER_PEER:+.0f}: "
                            f"{_met(margin, FSD_MARGIN_OVER_PEER)})")
            verdicts.append(verdict)
    seeds = " and ".join(str(seed) for seed in protocol.seeds)
    text = (f"\n{protocol.title}: out-of-fold MAP@3 over the 200 clips per repeat (fold seeds {seeds}), their mean, "
            f"spread (max - min) and the standard deviation of the {len(protocol.folds) * len(protocol.seeds)} fold "
            f"MAP@3s; accuracy: mean over repeats ({protocol.epochs} epochs, last epoch kept)\n"
            f"{repeat_table(rows, protocol.seeds)}\n"
            f"target mean MAP@3 >= {target:.2f} and >= {100 * FSD_MARGIN_OVER_PEER:.0f} points over Zafar's recipe: "
            f"{'; '.join(verdicts) or 'nothing finished'}")
    return rows, text


def transfer_gains(rows: dict[str, dict], scratch: str, protocol: Protocol) -> dict[str, dict]:
    """Each row's accuracy gain over the scratch row, per held-out fold and on the mean (points: 0.05 = 5)."""
    columns = [protocol.fold_name(f) for f in protocol.folds] + ["mean"]
    return {name: {c: scores[c]["accuracy"] - rows[scratch][c]["accuracy"] for c in columns}
            for name, scores in rows.items()}


def transfer_table(rows: dict[str, dict], scratch: str, protocol: Protocol) -> str:
    columns = [protocol.fold_name(f) for f in protocol.folds] + ["mean"]
    gains = transfer_gains(rows, scratch, protocol)
    width = max([60, *map(len, rows)])
    lines = [f"{'recipe':<{width}}" + "".join(f"{c:>8}" for c in columns) + "".join(f"{'+' + c:>9}" for c in columns)
             + f"{'epochs':>7}{'train s':>9}"]
    for name, scores in rows.items():
        lines.append(f"{name:<{width}}" + "".join(f"{scores[c]['accuracy']:>8.4f}" for c in columns)
                     + "".join(f"{100 * gains[name][c]:>+9.1f}" for c in columns)
                     + f"{scores.get('epochs', protocol.epochs):>7}{scores.get('train_seconds', 0):>9.0f}")
    return "\n".join(lines)


def esc50_base_index(esc50_index, check_fold: int = 1):
    """Every ESC-50 clip in the base's training set but one clip per class of `check_fold`, held out
    as the base's own check: the predefined folds become 1 (the check) and 2 (the rest)."""
    from competition.datasets.spec import Index

    train = esc50_index.train.copy()
    check = train[train["fold"] == check_fold].groupby("label").head(1).index
    train["fold"] = 2
    train.loc[check, "fold"] = 1
    return Index(train, esc50_index.test)


class Esc50Bases:
    """The ESC-50 bases of the transfer protocols: each recipe's, trained once on every ESC-50 clip but
    UrbanSound8K's recordings and one check clip per class (the kit's exclude-sources mechanism), and
    checked against each target before a fine-tune starts from it."""

    def __init__(self, bench: Bench, shared: Path):
        workspace = self.workspace = bench.workspace
        self.bench = bench
        # The leakage guard indexes UrbanSound8K where the kit keeps it: the bench's WAV copy.
        us8k_dir = workspace.dataset_dir("urbansound8k")
        if not us8k_dir.exists():
            us8k_dir.parent.mkdir(parents=True, exist_ok=True)
            us8k_dir.symlink_to(_shared_copy(shared, URBANSOUND8K, workspace).resolve())
        # Its own name: its features are cached apart from the ESC-50 protocol's (another set of clips).
        esc50_root = _shared_copy(shared, ESC50, workspace)
        self.dataset = replace(_dataset(ESC50, esc50_root), name="esc50-base")
        self.index = esc50_base_index(self.dataset.index(esc50_root))

    def train(self, recipe_path: Path):
        """The recipe's ESC-50 base (guard on): its experiment and run folder (None if not finished)."""
        experiment = _experiment(recipe_path, ESC50, epochs=BASE_EPOCHS)
        return experiment, self.bench.train(self.dataset, self.index, experiment, exclude_sources="urbansound8k",
                                            only_folds=[1], run_name=f"bench-esc50-base-{experiment.name}-"
                                                                     f"{experiment.hash}-without-urbansound8k")

    def describe(self, experiment, base, target: str, target_train) -> str:
        """The base, its check accuracy and what the leakage guard found for `target` (refusing a base
        that shares a recording with it: LeakageError)."""
        from competition.modeling.transfer import check_leakage

        summary = base.fold_summary(1)
        guard = check_leakage(self.workspace, base, target, target_train, base_train=self.index.train)
        return (f"base: {experiment.name} on ESC-50 (at 16 kHz, Vorbis), {summary['n_train']} clips ({guard}), "
                f"{BASE_EPOCHS} epochs, accuracy {summary['score']:.4f} on its {summary['n_val']} held-out check "
                f"clips (one per class)")


def _fine_tune_name(dataset, experiment, base) -> str:
    from competition.config import config_hash

    tag = config_hash({"experiment": experiment.hash, "base": base.config()["hash"]})
    return f"bench-{dataset.name}-{experiment.name}-transfer-{tag}"


def _transfer_protocol(bench: Bench, protocol: Protocol, dataset, index, shared: Path) -> tuple[dict, str]:
    """The ESC-50 base (leakage guard on), then UrbanSound8K 1 <-> 2 from it and from scratch."""
    from competition.modeling.runs import Run

    bases = Esc50Bases(bench, shared)
    train_base = bases.train

    def describe_base(experiment, base) -> str:
        return bases.describe(experiment, base, dataset.name, index.train)

    def fine_tune(experiment, base) -> Path | None:
        return bench.train(dataset, index, experiment, base_model=base.model_path(1),
                           run_name=_fine_tune_name(dataset, experiment, base))

    base_experiment, base_dir = train_base(KIT_RECIPES[0])
    recipe = _experiment(KIT_RECIPES[0], protocol)
    scratch_dir = bench.train(dataset, index, recipe)
    scratch = f"scratch: {recipe.name}"
    rows = {}
    if scratch_dir:
        rows[scratch] = _run_scores(scratch_dir, index, protocol)
    base_notes = [f"base not trained: {base_experiment.name}"]
    transferred = {}  # each view's fine-tuned run (the same recipe), for the blend
    if base_dir:
        base = Run(base_dir)
        base_notes = [describe_base(base_experiment, base)]
        for label, changes in {"same recipe": {}, **TRANSFER_VARIANTS}.items():
            experiment = recipe.with_overrides(train=changes)
            run_dir = fine_tune(experiment, base)
            if run_dir:
                name = f"transfer: {label}"
                rows[name] = _run_scores(run_dir, index, protocol)
                rows[name]["epochs"] = experiment.train.epochs
                if not changes:
                    transferred[recipe.name] = run_dir
    # The default blend's other views, each from its own ESC-50 base: the blend transferred against the
    # blend from scratch.
    scratch_views = {recipe.name: scratch_dir}
    for recipe_path in KIT_RECIPES[1:]:
        view_base_experiment, view_base_dir = train_base(recipe_path)
        view = _experiment(recipe_path, protocol)
        scratch_views[view.name] = bench.train(dataset, index, view)
        if view_base_dir:
            view_base = Run(view_base_dir)
            base_notes.append(describe_base(view_base_experiment, view_base))
            transferred[view.name] = fine_tune(view, view_base)
        else:
            base_notes.append(f"base not trained: {view_base_experiment.name}")
    blend_rows = {}
    names = [path.stem for path in KIT_RECIPES]
    for kind, views in (("scratch", scratch_views), ("transfer", transferred)):
        if all(views.get(name) for name in names) and (kind == "scratch" or blend_rows):
            members = [views[name] for name in names]
            blend_rows[f"{kind}: {' + '.join(names)} (blend)"] = _blend(members, index, protocol)
    if len(blend_rows) == 2:  # started apart, the scratch and the transferred views may err apart: all blended
        six = [*(scratch_views[name] for name in names), *(transferred[name] for name in names)]
        blend_rows[f"scratch + transfer: {len(six)} views (blend)"] = _blend(six, index, protocol)
        blend_rows[f"scratch + transfer: {len(six)} views {FITTED}"] = _blend(six, index, protocol, fitted=True)
    view_notes = []
    for name, run_dir in transferred.items():  # each view alone, transferred against from scratch
        if run_dir and scratch_views.get(name):
            alone = {kind: _run_scores(run, index, protocol)["mean"]["accuracy"]
                     for kind, run in (("scratch", scratch_views[name]), ("transfer", run_dir))}
            view_notes.append(f"{name} alone: scratch {alone['scratch']:.4f}, transfer {alone['transfer']:.4f} "
                              f"({100 * (alone['transfer'] - alone['scratch']):+.1f})")
    base_note = "\n".join(base_notes)
    text = (f"\n{protocol.title}: accuracy per held-out fold, mean over folds, and the gain over scratch in "
            f"points ({protocol.epochs} epochs unless the row says, last epoch kept)\n{base_note}\n")
    if scratch in rows:
        text += transfer_table(rows, scratch, protocol) + "\n"
        gains = transfer_gains(rows, scratch, protocol)
        verdicts = [f"{name.split(': ')[1]} {rows[name]['mean']['accuracy']:.4f} "
                    f"{_met(rows[name]['mean']['accuracy'], TARGETS['urbansound8k'])}, gain "
                    f"{100 * gains[name]['mean']:+.1f} {_met(gains[name]['mean'], TRANSFER_GAIN)}"
                    for name in rows if name != scratch]
        text += (f"target transfer mean accuracy >= {TARGETS['urbansound8k']:.2f} and gain >= "
                 f"{100 * TRANSFER_GAIN:+.0f} points: {'; '.join(verdicts) or 'nothing finished'}")
        if blend_rows:
            scratch_blend = next(iter(blend_rows))
            text += (f"\nthe default blend, every view from its own ESC-50 base, against the blend from scratch "
                     f"(gains over the scratch blend)\n{transfer_table(blend_rows, scratch_blend, protocol)}")
            rows.update(blend_rows)
            for transfer_blend in list(blend_rows)[1:]:
                gain = transfer_gains(blend_rows, scratch_blend, protocol)[transfer_blend]["mean"]
                accuracy = blend_rows[transfer_blend]["mean"]["accuracy"]
                text += (f"\ntarget: {transfer_blend} {accuracy:.4f} {_met(accuracy, TARGETS['urbansound8k'])}, "
                         f"gain {100 * gain:+.1f} {_met(gain, TRANSFER_GAIN)}")
        if view_notes:
            text += "\n" + "; ".join(view_notes)
    else:
        text += "scratch run not finished"
    return rows, text


def _fsd_transfer_protocol(bench: Bench, protocol: Protocol, dataset, index, shared: Path) -> tuple[dict, str]:
    """The FSD subset: each default view fine-tuned from its ESC-50 base on the fsd-subset protocol's
    repeated folds, beside the same view from scratch (its runs, reused); the blends of both."""
    from competition.modeling.runs import Run

    workspace = bench.workspace
    bases = Esc50Bases(bench, shared)
    names = [recipe.stem for recipe in KIT_RECIPES]
    scratch: dict[str, dict[int, Path | None]] = {}
    transferred: dict[str, dict[int, Path | None]] = {}
    view_bases: dict[str, Run] = {}
    base_notes = []
    for recipe in KIT_RECIPES:  # the bases first: a fine-tune needs its base finished
        base_experiment, base_dir = bases.train(recipe)
        if not base_dir:
            base_notes.append(f"base not trained: {base_experiment.name}")
            continue
        base = Run(base_dir)
        base_notes.append(bases.describe(base_experiment, base, dataset.name, index.train))
        view_bases[recipe.stem] = base
    peer = {seed: bench.train(dataset, index, _experiment(PEER_RECIPE, protocol, seed=seed)) for seed in protocol.seeds}
    for seed in protocol.seeds:  # a whole repeat of every view before the next
        for recipe in KIT_RECIPES:
            experiment = _experiment(recipe, protocol, seed=seed)
            scratch.setdefault(recipe.stem, {})[seed] = bench.train(dataset, index, experiment)
            if recipe.stem in view_bases:
                base = view_bases[recipe.stem]
                transferred.setdefault(recipe.stem, {})[seed] = bench.train(
                    dataset, index, experiment, base_model=base.model_path(1),
                    run_name=_fine_tune_name(dataset, experiment, base))
    default = KIT_RECIPES[0].stem
    variants: dict[str, dict[int, Path | None]] = {}  # what a practitioner would try, on the default view
    for label, changes in (TRANSFER_VARIANTS.items() if default in view_bases else ()):
        for seed in protocol.seeds:
            experiment = _experiment(KIT_RECIPES[0], protocol, seed=seed).with_overrides(train=changes)
            variants.setdefault(label, {})[seed] = bench.train(
                dataset, index, experiment, base_model=view_bases[default].model_path(1),
                run_name=_fine_tune_name(dataset, experiment, view_bases[default]))

    def finished(by_seed: dict) -> bool:
        return all(by_seed.get(seed) for seed in protocol.seeds)

    def row(members: list[dict[int, Path]], fitted: bool = False) -> dict:
        return _repeat_blend(members, workspace, dataset, index, protocol, fitted)

    rows, pairs = {}, {}  # pairs: a transferred row -> the scratch row it is set against
    peer_name = f"peer: Zafar kernel ({PEER_RECIPE.stem})"
    if finished(peer):
        rows[peer_name] = row([peer])
    for name in names:
        if finished(scratch[name]):
            rows[f"scratch: {name}"] = row([scratch[name]])
        if name in transferred and finished(transferred[name]):
            rows[f"transfer: {name}"] = row([transferred[name]])
            pairs[f"transfer: {name}"] = f"scratch: {name}"
        if name == default:
            for label, by_seed in variants.items():
                if finished(by_seed):
                    rows[f"transfer: {name}, {label}"] = row([by_seed])
                    pairs[f"transfer: {name}, {label}"] = f"scratch: {name}"
    blend = f"{' + '.join(names)} (blend)"
    if all(finished(scratch[name]) for name in names):
        rows[f"scratch: {blend}"] = row([scratch[name] for name in names])
        if all(name in transferred and finished(transferred[name]) for name in names):
            rows[f"transfer: {blend}"] = row([transferred[name] for name in names])
            pairs[f"transfer: {blend}"] = f"scratch: {blend}"
            # Started apart, the scratch and the transferred views may err apart: all six blended.
            six = [*(scratch[name] for name in names), *(transferred[name] for name in names)]
            for name, fitted in ((f"scratch + transfer: {len(six)} views (blend)", False),
                                 (f"scratch + transfer: {len(six)} views {FITTED}", True)):
                rows[name] = row(six, fitted)
                pairs[name] = f"scratch: {blend}"
    text = (f"\n{protocol.title}: out-of-fold MAP@3 per repeat (the fsd-subset protocol's folds, fold seeds "
            f"{' and '.join(map(str, protocol.seeds))}; {protocol.epochs} epochs, last epoch kept)\n"
            + "\n".join(base_notes) + "\n" + (repeat_table(rows, protocol.seeds) if rows else "nothing finished"))
    for name, reference in pairs.items():
        gains = [rows[name][f"seed {seed}"]["map@3"] - rows[reference][f"seed {seed}"]["map@3"]
                 for seed in protocol.seeds]
        text += (f"\n{name}: {100 * (rows[name]['mean']['map@3'] - rows[reference]['mean']['map@3']):+.1f} MAP@3 "
                 f"points over {reference} ("
                 + ", ".join(f"seed {seed} {100 * gain:+.1f}" for seed, gain in zip(protocol.seeds, gains)) + ")")
    verdicts = []
    for name in pairs:
        value = rows[name]["mean"]["map@3"]
        verdict = f"{name} {value:.4f} {_met(value, TARGETS['fsd-subset'])}"
        if peer_name in rows:
            margin = value - rows[peer_name]["mean"]["map@3"]
            verdict += f", {100 * margin:+.1f} over Zafar's recipe {_met(margin, FSD_MARGIN_OVER_PEER)}"
        verdicts.append(verdict)
    if verdicts:
        text += (f"\ntarget mean MAP@3 >= {TARGETS['fsd-subset']:.2f} and >= {100 * FSD_MARGIN_OVER_PEER:.0f} points "
                 f"over Zafar's recipe: {'; '.join(verdicts)}")
    return rows, text


def _write(workspace: Workspace, results: dict, tables: dict[str, str], seconds: dict[str, float]) -> None:
    """runs/bench-quality.json/.txt: this run's protocols over the ones written before."""
    path = workspace.runs / "bench-quality.json"
    previous = json.loads(path.read_text()) if path.is_file() else {}
    merged = {**{k: v for k, v in previous.items() if k not in ("tables", "seconds")}, **results}
    merged["tables"] = {**previous.get("tables", {}), **tables}
    merged["seconds"] = {**previous.get("seconds", {}), **seconds}
    order = [name for name in PROTOCOLS if name in merged["tables"]]
    atomic_write_text(path, json.dumps(merged, indent=1))
    atomic_write_text(workspace.runs / "bench-quality.txt", "\n".join(merged["tables"][name] for name in order) + "\n")


def run_quality_bench(workspace: Workspace, *, quick: bool = False, shared: Path = SHARED_DATA,
                      only: list[str] | None = None, finished_only: bool = False,
                      recipes: set[str] | None = None) -> dict:
    """Train, score and print every protocol (or `only` those) present under `shared`; returns the
    numbers. With `recipes`, only runs of those experiment names are trained (two processes can then
    share one protocol's recipes); the others are read where they finished."""
    if not shared.is_dir():
        print(f"bench-quality skipped: {shared} not found (the shared ESC-50 copy, whose esc10 rows are ESC-10, "
              f"and the UrbanSound8K and FSDKaggle2018-subset copies live in ../shared/data beside the kit's checkout)")
        return {}
    bench = Bench(workspace, quick=quick, finished_only=finished_only, recipes=recipes)
    started = time.perf_counter()
    results: dict = {}
    for name in only or list(PROTOCOLS):
        protocol = PROTOCOLS[name]
        protocol_started = time.perf_counter()
        root = _shared_copy(shared, protocol, workspace)
        # The ESC-50 bases leave UrbanSound8K's recordings out: they need both copies.
        bases_need = (ESC50, URBANSOUND8K) if name in FROM_ESC50_BASES else ()
        needs = [root] + [_shared_copy(shared, other, workspace) for other in bases_need]
        if any(path is None for path in needs):
            print(f"{protocol.title}: skipped, {_shared_source(shared, protocol)} "
                  + "".join(f"or {_shared_source(shared, other)} " for other in bases_need) + "not found")
            continue
        dataset = _dataset(protocol, root)
        index = _index(dataset, root, protocol)
        if name == "transfer":
            rows, text = _transfer_protocol(bench, protocol, dataset, index, shared)
        elif name == "fsd-transfer":
            rows, text = _fsd_transfer_protocol(bench, protocol, dataset, index, shared)
        elif protocol.seeds:
            rows, text = _repeated_protocol(bench, protocol, dataset, index)
        else:
            rows, text = _predefined_protocol(bench, protocol, dataset, index)
        seconds = time.perf_counter() - protocol_started
        text += f"\n({name}: {seconds:.0f}s wall, this call)"
        print(text, flush=True)
        results[name] = rows
        _write(workspace, {name: rows}, {name: text}, {name: seconds})
    if bench.missing:
        print(f"\nnot finished, left out (--finished-only or --recipes): {', '.join(bench.missing)}")
    if results:
        print(f"\nbench-quality: {time.perf_counter() - started:.0f}s wall")
    return results
