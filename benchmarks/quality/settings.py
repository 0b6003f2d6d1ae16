"""What `make bench-quality` measures: its protocols (datasets, folds, epochs), the issue's targets,
and the plan of recipes it trains on them (the kit's views, the peer, the candidates, the ablations,
the fine-tuning variants)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from competition.config import DEFAULT_EXPERIMENTS, DEFAULT_TRANSFER_EXPERIMENT, EXPERIMENTS_DIR, WHOLE_CLIP


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
ESC10_TRANSFER = replace(ESC10, name="esc10-transfer",
                         title="ESC-10 (ESC-50 at 16 kHz, Vorbis), 5-fold CV on the predefined folds: every default "
                               "view fine-tuned from a base on ESC-50's other 40 classes (no ESC-10 clip, leakage "
                               "guard on) against the same view from scratch")
# Datasets whose clips another protocol's dataset holds on the same predefined folds, by that protocol:
# its runs also score them (ESC-10's clips are ESC-50's).
SUPERSETS = {"esc10": ESC50}
PROTOCOLS = {p.key: p for p in (FSD_SUBSET, TRANSFER, FSD_TRANSFER, ESC50, ESC10, ESC10_TRANSFER, URBANSOUND8K)}
# Those fine-tuned from ESC-50 bases, by the dataset whose recordings their bases leave out (they need
# its copy and ESC-50's): the FSD subset reuses UrbanSound8K's bases, which share no recording with it.
BASES_WITHOUT = {"transfer": URBANSOUND8K, "fsd-transfer": URBANSOUND8K, "esc10-transfer": ESC10}

# The targets: mean accuracy (predefined folds), mean OOF MAP@3 (the FSD subset).
TARGETS = {"esc10": 0.94, "esc50": 0.86, "urbansound8k": 0.70, "fsd-subset": 0.93}
FSD_MARGIN_OVER_PEER = 0.05   # the FSD subset's blend, MAP@3 points over Zafar's recipe on the same folds
TRANSFER_GAINS = {"urbansound8k": 0.05}  # transfer over scratch, mean accuracy (UrbanSound8K's target)

# The default recipe's fold models re-scored predicting otherwise (no training; every protocol): each way
# that is not the recipe's own (its train.tta_crops), by the row's label.
PREDICTION_ABLATIONS = {"without TTA (1 crop)": 1, "on 5 TTA crops": 5,
                        "on the whole clip in one pass (no crops)": WHOLE_CLIP}
WITHOUT_MASKING = {"time_masks": 0, "freq_masks": 0}
WITHOUT_MIXUP = {"mixup_alpha": 0.0}
# The default recipe retrained without one of its augmentations (not with --quick): on ESC-10, ESC-50 and the FSD
# subset.
TRAINING_ABLATIONS = {"without SpecAugment masking": WITHOUT_MASKING, "without mixup": WITHOUT_MIXUP}
# Every view of the default blend on a longer schedule (its cosine decay over twice the epochs), on
# ESC-50 and ESC-10, where the default's validation accuracy still climbs at the last epochs (not
# with --quick).
LONGER_SCHEDULES = {"120 epochs": {"epochs": 120}}
# Changes to the default recipe scored on ESC-50 beside it (not with --quick): (features, model, train)
# changes, as the FSD subset's candidates. ESC-50's 50 classes may use more width than the FSD subset's
# 10 and ESC-10, where width 32 was level with 16. Width 32 trains in mixed bfloat16 where the CPU
# computes it (train.cpu_bfloat16; `make bench` times what that gives). 200 epochs: the default's cosine
# schedule stretched again, after 120 epochs added more than any other change there; in bfloat16 too, as it
# costs more than three of the protocol's runs. The copy's own rate: the shared copy is 16 kHz, so at the
# default's 22.05 kHz the mel bins above 8 kHz hear nothing; at 16 kHz all 64 cover 0-8 kHz, on 32 ms frames
# (ESC-50 has short events: clicks, knocks, ticks); and so on the 120-epoch schedule, and at width 32 (both
# levers together, and a wider member for the candidates' blend). At the copy's rate, a cheaper lever alone: finer
# frames (24 ms hop, a third more frames than 32 ms; mixup at alpha 1.0, tried beside it, lost and is not here).
# And the 16 kHz 32 ms, 24 ms and 120-epoch candidates in float32: what bfloat16 costs in accuracy, on a CPU that
# computes it, and members for the candidates' blend without that cost; the 24 ms frames on the 120-epoch schedule
# too (a long member that errs apart from the 32 ms one).
COPY_RATE_FEATURES = {"sample_rate": 16000, "n_fft": 1024, "hop_length": 512}
COPY_RATE_FINER_FRAMES = {**COPY_RATE_FEATURES, "hop_length": 384}  # 24 ms at 16 kHz
ESC50_CANDIDATES = {"width 32, bfloat16 where the CPU computes it": ({}, {"width": 32}, {"cpu_bfloat16": True}),
                    "200 epochs, bfloat16 where the CPU computes it": ({}, {}, {"epochs": 200, "cpu_bfloat16": True}),
                    "16 kHz (the copy's rate), 32 ms hop, bfloat16 where the CPU computes it": (
                        {**COPY_RATE_FEATURES}, {}, {"cpu_bfloat16": True}),
                    "16 kHz (the copy's rate), 32 ms hop, 120 epochs, bfloat16 where the CPU computes it": (
                        {**COPY_RATE_FEATURES}, {}, {"epochs": 120, "cpu_bfloat16": True}),
                    "16 kHz (the copy's rate), 32 ms hop, width 32, bfloat16 where the CPU computes it": (
                        {**COPY_RATE_FEATURES}, {"width": 32}, {"cpu_bfloat16": True}),
                    "16 kHz (the copy's rate), 24 ms hop, bfloat16 where the CPU computes it": (
                        {**COPY_RATE_FINER_FRAMES}, {}, {"cpu_bfloat16": True}),
                    "16 kHz (the copy's rate), 32 ms hop, float32 (the bfloat16 candidate's twin)": (
                        {**COPY_RATE_FEATURES}, {}, {}),
                    "16 kHz (the copy's rate), 24 ms hop, float32 (the bfloat16 candidate's twin)": (
                        {**COPY_RATE_FINER_FRAMES}, {}, {}),
                    "16 kHz (the copy's rate), 32 ms hop, 120 epochs, float32 (the bfloat16 candidate's twin)": (
                        {**COPY_RATE_FEATURES}, {}, {"epochs": 120}),
                    "16 kHz (the copy's rate), 24 ms hop, 120 epochs, float32": (
                        {**COPY_RATE_FINER_FRAMES}, {}, {"epochs": 120}),
                    # The same recipe on another training seed: a member that errs apart by its
                    # initialisation, data order, augmentation and dropout alone.
                    "16 kHz (the copy's rate), 24 ms hop, 120 epochs, float32, training seed 1": (
                        {**COPY_RATE_FINER_FRAMES}, {}, {"epochs": 120, "seed": 1}),
                    "16 kHz (the copy's rate), 24 ms hop, 120 epochs, float32, training seed 2": (
                        {**COPY_RATE_FINER_FRAMES}, {}, {"epochs": 120, "seed": 2})}
# The recipe's augmentation for urban sounds (its [datasets.urbansound8k] values), taken away.
WITHOUT_URBAN_AUGMENTATION = {"bin_shift": 0, "gain_db": 0.0}
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
# Fine-tuning variants beside the plain transfer (train changes to the same recipe), on the default view
# only (on every view they would cost three more fine-tunes a view).
TRANSFER_VARIANTS = {
    "backbone frozen for the first 10 epochs": {"freeze_backbone_epochs": 10},
    "learning rate / 4 (0.0005)": {"learning_rate": 0.0005},
    "90 epochs": {"epochs": 90},
    # The base's own clips (never the target's recordings) rehearsed beside the target's, each batch half
    # and half, their loss weighing as much: the backbone keeps learning from the base's larger set.
    "the base's clips rehearsed beside (weight 1)": {"rehearsal_weight": 1.0},
}
# The default recipe on other features, its base, fine-tunes and scratch run alike (their own table, on each
# protocol fine-tuned from ESC-50 bases on predefined folds; not with --quick), by the tag its rows carry:
# (feature changes, base epochs). ESC-50's copy is 16 kHz, so a base on the default's 22.05 kHz features never
# hears the top mel bins that UrbanSound8K's fine-tune does; at the copy's rate with 24 ms frames on 120 epochs
# (ESC-50's best single recipe), the base hears every band it is fine-tuned on.
TRANSFER_FEATURES = {"16 kHz, 24 ms hop, 120-epoch bases": (COPY_RATE_FINER_FRAMES, 120)}
# The default view's scratch run and plain fine-tune again with these training seeds (the recipe's own is
# its first), on the transfer protocols' predefined folds and bases: how far the gain moves with the seed alone
# (its initialisation, data order, augmentation and dropout).
TRAINING_SEEDS = (1,)
# The ESC-50 base of the transfer: the default recipe on every ESC-50 clip but UrbanSound8K's recordings,
# one held-out clip per class (of fold 1) its check; its epochs.
BASE_EPOCHS = 60
# Bases on longer schedules, each view fine-tuned from them too (not with --quick): on ESC-50 the default
# recipe at 60 epochs is still learning.
LONGER_BASE_EPOCHS = (120,)


@dataclass(frozen=True)
class QualityPlan:
    """What the bench trains, and on which protocols: the defaults above; a test or an experiment
    passes its own (`dataclasses.replace(QualityPlan(), ...)`)."""

    # The kit's default experiments, trained by `make train` and blended by `make ensemble`; the
    # first is the default recipe, the one the ablation takes apart.
    kit: tuple[Path, ...] = DEFAULT_EXPERIMENTS
    peer: Path = EXPERIMENTS_DIR / "zafar-mfcc-cnn.toml"  # the recipe of Zafar's Kaggle kernel
    prediction_ablations: dict[str, int] = field(default_factory=lambda: dict(PREDICTION_ABLATIONS))
    training_ablations: dict[str, dict] = field(default_factory=lambda: dict(TRAINING_ABLATIONS))
    longer_schedules: dict[str, dict] = field(default_factory=lambda: dict(LONGER_SCHEDULES))
    urban_ablations: dict[str, dict] = field(
        default_factory=lambda: {"without bin shifts and gain changes": WITHOUT_URBAN_AUGMENTATION})
    fsd_candidates: dict[str, tuple[dict, dict, dict]] = field(default_factory=lambda: dict(FSD_CANDIDATES))
    esc50_candidates: dict[str, tuple[dict, dict, dict]] = field(default_factory=lambda: dict(ESC50_CANDIDATES))
    fsd_extra_views: tuple[Path, ...] = FSD_EXTRA_VIEWS
    transfer_variants: dict[str, dict] = field(default_factory=lambda: dict(TRANSFER_VARIANTS))
    training_seeds: tuple[int, ...] = TRAINING_SEEDS
    transfer_features: dict[str, tuple[dict, int]] = field(default_factory=lambda: dict(TRANSFER_FEATURES))
    # `make transfer`'s own training settings, fine-tuned from the default view's bases beside the variants.
    kit_transfer: Path = DEFAULT_TRANSFER_EXPERIMENT
    base_epochs: int = BASE_EPOCHS
    longer_base_epochs: tuple[int, ...] = LONGER_BASE_EPOCHS
    protocols: dict[str, Protocol] = field(default_factory=lambda: dict(PROTOCOLS))

    def with_protocol(self, protocol: Protocol) -> QualityPlan:
        """This plan with `protocol` in place of the one of its name (a test's shorter schedule)."""
        return replace(self, protocols={**self.protocols, protocol.key: protocol})
