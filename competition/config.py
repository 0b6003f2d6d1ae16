"""Experiment and feature settings, read from small TOML files, and the hashes that key caches.

A cache key is a hash of exactly the parameters that change a step's output: feature parameters
key the feature cache; feature and training parameters key a run. Changing `n_mels` recomputes
features; changing the learning rate does not.

A setting added later is declared with `setting(default, neutral=...)`, `neutral` being the value
that does what the kit did before the setting existed: at that value it stays out of the hash, so
runs trained before it keep their hash (and their folders) instead of being refused.

`DEFAULT_EXPERIMENTS` are the experiments every step uses when none is named: `make train`,
`python -m competition train`, `make demo`, `make kernel` and `make bench-quality` alike.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from competition.errors import KitError
from competition.workspace import KIT_ROOT

EXPERIMENTS_DIR = KIT_ROOT / "experiments"
# Three views of one recipe, blended by `make ensemble`: log-mel, MFCC, log-mel keeping every band.
DEFAULT_EXPERIMENTS = tuple(EXPERIMENTS_DIR / f"{name}.toml" for name in ("logmel-cnn", "mfcc-cnn", "logmel-bins-cnn"))
# `make transfer`'s fine-tuning settings (features and model come from the base run).
DEFAULT_TRANSFER_EXPERIMENT = EXPERIMENTS_DIR / "transfer-urbansound8k.toml"

# Bump when feature code changes its output for the same parameters, so old caches are not reused.
FEATURE_CODE_VERSION = 2


def config_hash(params: dict) -> str:
    """Stable short hash of a JSON-able dict (key order does not matter)."""
    blob = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


class ConfigError(KitError, ValueError):
    pass


_NEUTRAL = "neutral"


def setting(default, *, neutral=None):
    """A setting added after runs were trained: left out of the hash at its `neutral` value (the
    behaviour before it existed; by default its default)."""
    return field(default=default, metadata={_NEUTRAL: default if neutral is None else neutral})


def hashed_settings(section) -> dict:
    """A config section's settings as the hash sees them: every one, but those at their neutral value."""
    values = asdict(section)
    return {f.name: values[f.name] for f in fields(section)
            if not (_NEUTRAL in f.metadata and values[f.name] == f.metadata[_NEUTRAL])}


@dataclass(frozen=True)
class FeatureConfig:
    kind: str = "logmel"          # logmel | mfcc | wave
    sample_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 512
    n_mels: int = 64
    n_mfcc: int = 40
    fmin: float = 20.0
    fmax: float | None = None     # None: sample_rate / 2
    max_seconds: float = 30.0     # longer clips are truncated (Freesound clips are at most 30 s)

    def __post_init__(self):
        if self.kind not in ("logmel", "mfcc", "wave"):
            raise ConfigError(f"features.kind must be logmel, mfcc or wave, not {self.kind!r}")

    def output_params(self) -> dict:
        """The parameters this kind of feature actually depends on."""
        params = {"kind": self.kind, "sample_rate": self.sample_rate,
                  "max_seconds": self.max_seconds, "version": FEATURE_CODE_VERSION}
        if self.kind in ("logmel", "mfcc"):
            params.update(n_fft=self.n_fft, hop_length=self.hop_length, n_mels=self.n_mels,
                          fmin=self.fmin, fmax=self.fmax or self.sample_rate / 2)
        if self.kind == "mfcc":
            params["n_mfcc"] = self.n_mfcc
        if self.kind == "wave":
            # Raw waveform stored as frames of hop_length samples, so every cache is (frames, bins).
            params["hop_length"] = self.hop_length
        return params

    @property
    def key(self) -> str:
        return f"{self.kind}-{config_hash(self.output_params())}"

    @property
    def n_bins(self) -> int:
        return {"logmel": self.n_mels, "mfcc": self.n_mfcc, "wave": self.hop_length}[self.kind]

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_length


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "cnn2d"
    width: int = 32               # channels of the first block; later blocks multiply it
    dropout: float = 0.3
    bins_pooling: str = "max"     # 2D backbones, last feature map: max over bins, or "keep" every bin

    def __post_init__(self):
        if self.bins_pooling not in ("max", "keep"):
            raise ConfigError(f"model.bins_pooling must be max or keep, not {self.bins_pooling!r}")


# `train.tta_crops` of this value: each clip predicted whole, in one pass (every backbone pools globally
# over time, so it reads any length), instead of averaged over crops of the training length.
WHOLE_CLIP = 0


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 1e-3
    crop_seconds: float = 3.0
    mixup_alpha: float = 0.0
    time_masks: int = 0
    freq_masks: int = 0
    mask_fraction: float = 0.15   # widest mask as a fraction of the axis
    bin_shift: int = 0            # log-mel only: random shift by up to this many bins (about a pitch shift)
    gain_db: float = 0.0          # log-mel only: random level change of up to this many dB
    unverified_weight: float = 1.0  # loss weight of manually_verified = 0 rows
    unverified_smoothing: float = 0.0  # label smoothing of manually_verified = 0 rows
    label_smoothing: float = 0.0  # label smoothing of the other (verified) rows
    class_balance: bool = False   # weight the loss so every class weighs the same in total
    patience: int = 8             # epochs without OOF metric gain before stopping (keep_epoch = "best")
    keep_epoch: str = "best"      # best: the epoch with the best OOF metric; last: the final epoch, no early stop
    tta_crops: int = 5            # crops averaged per clip at prediction; WHOLE_CLIP (0): the whole clip at once
    seed: int = 0
    # Used only where TensorFlow sees a GPU (train.py's `device_settings`); on the CPU nothing changes.
    # They are hashed like any setting away from its neutral value: on a GPU they change what is
    # trained (another batch size is another recipe; float16 another rounding), and a run's hash must
    # say what trained it wherever it ran.
    gpu_batch_size: int = setting(0)  # 0: batch_size; a GPU keeps busy on larger batches than a CPU
    gpu_mixed_precision: bool = setting(False)  # float16 compute, float32 weights and softmax head
    # On a CPU with bfloat16 instructions (competition/onednn.py), bfloat16 compute with float32 weights
    # and softmax head; on other CPUs and on a GPU it changes nothing. Hashed like the GPU settings.
    cpu_bfloat16: bool = setting(False)
    # Transfer only (a run started from a base model's backbone, `make transfer`): the first this many
    # epochs train the head alone, the backbone's weights and batch statistics kept as the base left
    # them; from scratch there is nothing to keep, and it does nothing.
    freeze_backbone_epochs: int = setting(0)
    # Transfer only: every batch also holds as many of the base's own training clips, scored by a second
    # head started as the base's, their loss weighted by this (modeling/rehearsal.py); 0: off. From
    # scratch there is no base to rehearse, and it does nothing.
    rehearsal_weight: float = setting(0.0)

    def __post_init__(self):
        if self.keep_epoch not in ("best", "last"):
            raise ConfigError(f"train.keep_epoch must be best or last, not {self.keep_epoch!r}")
        if not isinstance(self.gpu_mixed_precision, bool):
            raise ConfigError(f"train.gpu_mixed_precision must be true or false, not {self.gpu_mixed_precision!r}")
        if not isinstance(self.cpu_bfloat16, bool):
            raise ConfigError(f"train.cpu_bfloat16 must be true or false, not {self.cpu_bfloat16!r}")
        if self.tta_crops < 0:
            raise ConfigError(f"train.tta_crops must be 1 or more crops, or {WHOLE_CLIP} (the whole clip at once), "
                              f"not {self.tta_crops}")
        if self.gpu_batch_size < 0:
            raise ConfigError(f"train.gpu_batch_size must be 0 (the batch_size) or more, not {self.gpu_batch_size}")
        if self.freeze_backbone_epochs < 0:
            raise ConfigError(f"train.freeze_backbone_epochs must be 0 or more, not {self.freeze_backbone_epochs}")
        if not self.rehearsal_weight >= 0:  # NaN too
            raise ConfigError(f"train.rehearsal_weight must be 0 (off) or more, not {self.rehearsal_weight}")


@dataclass(frozen=True)
class FoldConfig:
    k: int = 5
    seed: int = 42


@dataclass(frozen=True)
class Experiment:
    name: str
    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    folds: FoldConfig = field(default_factory=FoldConfig)

    def __post_init__(self):
        if self.features.kind != "logmel" and (self.train.bin_shift or self.train.gain_db):
            raise ConfigError(f"{self.name}: train.bin_shift and train.gain_db move log-mel bins and levels; "
                              f"features.kind is {self.features.kind!r}")

    def output_params(self) -> dict:
        return {"features": self.features.output_params(), "model": hashed_settings(self.model),
                "train": hashed_settings(self.train), "folds": hashed_settings(self.folds)}

    @property
    def hash(self) -> str:
        return config_hash(self.output_params())

    def with_overrides(self, **sections: dict) -> Experiment:
        """A copy with some fields of some sections replaced, e.g. train={'epochs': 1}."""
        updated = {name: replace(getattr(self, name), **values) for name, values in sections.items() if values}
        return replace(self, **updated)


def _section(cls, table: dict, source: str, section: str):
    known = {f.name for f in fields(cls)}
    unknown = set(table) - known
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) in [{section}]: {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(sorted(known))}")
    return cls(**table)


SECTIONS = {"features": FeatureConfig, "model": ModelConfig, "train": TrainConfig, "folds": FoldConfig}


def load_experiment(path: Path, dataset: str | None = None) -> Experiment:
    """The experiment of a TOML file; for `dataset`, with its `[datasets.<dataset>.<section>]` values
    over the file's own (e.g. augmentation that suits environmental sounds but not instruments)."""
    path = Path(path)
    try:
        table = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: experiment file not found") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML ({error})") from None
    unknown = set(table) - set(SECTIONS) - {"name", "datasets"}
    if unknown:
        raise ConfigError(f"{path}: unknown section(s): {', '.join(sorted(unknown))}")
    per_dataset = table.get("datasets", {})
    for name, sections in per_dataset.items():
        unknown = set(sections) - set(SECTIONS)
        if unknown:
            raise ConfigError(f"{path}: unknown section(s) in [datasets.{name}]: {', '.join(sorted(unknown))}")
        _experiment_of(table, sections, path, f"datasets.{name}.")  # every dataset's values checked, used or not
    return _experiment_of(table, per_dataset.get(dataset, {}) if dataset else {}, path)


def _experiment_of(table: dict, overrides: dict, path: Path, where: str = "") -> Experiment:
    def section(name, cls):
        label = f"{where}{name}" if name in overrides else name
        return _section(cls, {**table.get(name, {}), **overrides.get(name, {})}, str(path), label)

    try:
        return Experiment(name=table.get("name", path.stem),
                          **{name: section(name, cls) for name, cls in SECTIONS.items()})
    except ConfigError as error:
        if str(error).startswith(str(path)):
            raise
        raise ConfigError(f"{path}{f' [{where[:-1]}]' if where else ''}: {error}") from None
