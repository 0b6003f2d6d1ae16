"""Training (`make train`): one model per fold, writing `runs/<run>/fold-<k>/`.

Each fold writes `model.keras` (the epoch with the best OOF metric, or the last epoch when the
experiment says `keep_epoch = "last"`, which never lets the held-out fold choose), `oof.npz` and `test.npz`
(fnames + class probabilities, test-time augmented), `history.csv` and, last, `done.json`. A rerun
skips folds with `done.json`; a fold that was interrupted restarts from its last epoch checkpoint.
Every epoch's data order, augmentation and dropout are seeded from (seed, fold, epoch), so a
resumed fold ends exactly where an uninterrupted one would. When every fold is done, the run's
`oof.npz`, `test.npz`, `scores.json` and `report/` are written. The folder's files are runs.py's.
With a `deadline` (a kernel's time budget), training stops at an epoch's end once the next step (an
epoch, or the fold's final predictions) would not end before it: every epoch trained is then
checkpointed and TimeBudgetSpent says which folds are left, so a rerun continues from there. Each
call makes progress (at least one epoch, or a fold's final predictions), however close the deadline.
Where TensorFlow sees a GPU, the folds train with the experiment's `gpu_batch_size` and
`gpu_mixed_precision` (`device_settings`); on the CPU those are ignored, and `cpu_bfloat16` asks for
mixed bfloat16 where the CPU computes bfloat16 itself (float32 elsewhere, said either way).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from competition.config import WHOLE_CLIP, Experiment, TrainConfig, config_hash
from competition.datasets.folds import load_or_make_folds
from competition.datasets.spec import Dataset, Index
from competition.errors import KitError
from competition.features.cache import build_features
from competition.features.store import FeatureStore
from competition.metrics import score
from competition.modeling.allocator import keep_freed_memory, tensorflow_thresholds
from competition.modeling.batches import (
    class_balance_weights,
    soft_targets,
    training_batches,
    whole_clip_length,
)
from competition.modeling.inference import geometric_mean, predict_store
from competition.modeling.rehearsal import (
    REHEARSAL_STREAM,
    Rehearsal,
    RehearsalError,
    joint_batches,
    joint_model,
    target_model,
)
from competition.modeling.runs import BEST_MODEL, CHECKPOINT, HISTORY, STATE, Run, model_fingerprint
from competition.onednn import cpu_computes_bfloat16
from competition.workspace import Workspace, atomic_write_text

PREFETCH_BATCHES = 2
WARMUP_EPOCHS = 2


class TrainingError(KitError, RuntimeError):
    """A fold cannot go on (a loss or prediction that is not finite); the message says where."""


class TimeBudgetSpent(KitError, RuntimeError):
    """Training stopped at its deadline with folds left; what was trained is checkpointed in `run_dir`."""

    def __init__(self, run_dir: Path, unfinished: dict[int, int]):
        self.run_dir, self.unfinished = Path(run_dir), dict(unfinished)  # fold -> epochs trained so far
        left = ", ".join(f"fold {fold} ({epochs} epoch{'s' * (epochs != 1)} trained)"
                         for fold, epochs in sorted(self.unfinished.items()))
        super().__init__(f"{self.run_dir.name}: the time budget ran out with {left} left; every epoch trained is "
                         "checkpointed, so training again continues from there")


def check_finite(probs: np.ndarray, what: str) -> None:
    if not np.isfinite(probs).all():
        raise TrainingError(f"{what} are not finite (NaN or inf in {int((~np.isfinite(probs)).any(axis=1).sum())} "
                            "rows); nothing was written from them")


def crop_frames(experiment: Experiment) -> int:
    return max(1, round(experiment.train.crop_seconds * experiment.features.frames_per_second))


def _targets(train: pd.DataFrame, dataset: Dataset,
             experiment: Experiment) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class ids, soft targets and loss weights of every train row, from the experiment's choices
    for unverified labels (smoothing and/or a lower weight) and class balance."""
    settings = experiment.train
    ids = train["label"].map(dataset.label_to_id).to_numpy()
    verified = train["manually_verified"].to_numpy() == 1
    targets = soft_targets(ids, len(dataset.labels),
                           np.where(verified, settings.label_smoothing, settings.unverified_smoothing))
    weights = np.where(verified, 1.0, settings.unverified_weight).astype(np.float32)
    if settings.class_balance:
        weights *= class_balance_weights(ids, len(dataset.labels))
    return ids, targets, weights


def reseed_dropout(model, seed: int) -> None:
    """Set every random-generator state of the model (dropout masks) from `seed`. Keras does not save
    these states in a checkpoint, so each epoch starts them afresh; a resumed fold then draws the
    same masks as an uninterrupted one."""
    import keras

    states = [v for v in model.non_trainable_variables if v.path.endswith("seed_generator_state")]
    for i, state in enumerate(states):
        state.assign(keras.ops.convert_to_tensor([seed, i], dtype=state.dtype))


def input_pipeline(batches, n_batches: int, length: int, n_bins: int, n_classes: int, *,
                   keep_memory: bool = True, n_base_classes: int = 0):
    """tf.data over a Python generator of (x, y, weight) NumPy batches, prefetched so cropping and
    augmentation of the next batches overlap the model's work on this one. `keep_memory`: glibc's
    thresholds raised again once the generator runs (allocator; False only for the bench's comparison).
    `n_base_classes`: a rehearsal's batches, their y and weight pairs for the target's and the base's head."""
    import tensorflow as tf

    def generate():
        if not keep_memory:
            yield from batches()
            return
        keep_freed_memory()  # here, after TensorFlow's generator dataset has set its own
        try:
            yield from batches()
        finally:  # for this input's life only: a server in the same process keeps TensorFlow's
            tensorflow_thresholds()

    x, y, weight = (tf.TensorSpec((None, length, n_bins), tf.float32), tf.TensorSpec((None, n_classes), tf.float32),
                    tf.TensorSpec((None,), tf.float32))
    signature = (x, (y, tf.TensorSpec((None, n_base_classes), tf.float32)), (weight, weight)) if n_base_classes else (
        x, y, weight)
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    # Declaring the length lets Keras end the epoch cleanly instead of warning it ran out of data.
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(n_batches)).prefetch(PREFETCH_BATCHES)
    # tf.data's autotuner stalled fit on 2 cores (`make bench` times fit against the pure train step).
    # A batch takes a small share of a train step to make, so a fixed buffer never runs dry.
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def training_device() -> str:
    """"GPU" when TensorFlow sees one, else "CPU", or "CPU-bfloat16" for a CPU that computes bfloat16
    (competition/onednn.py); tests replace this to take another device's path."""
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return "GPU"
    return "CPU-bfloat16" if cpu_computes_bfloat16() else "CPU"


@dataclass(frozen=True)
class DeviceSettings:
    batch_size: int
    dtype_policy: str  # Keras' global dtype policy while the folds are built and trained


def device_settings(settings: TrainConfig, device: str) -> DeviceSettings:
    """The batch size and dtype policy of training on `device`: the experiment's `gpu_*` settings on
    a GPU; on a CPU its plain `batch_size`, in mixed bfloat16 where the experiment asks for it and the
    CPU computes bfloat16 ("CPU-bfloat16"), else in float32."""
    if device != "GPU":
        bfloat16 = settings.cpu_bfloat16 and device == "CPU-bfloat16"
        return DeviceSettings(settings.batch_size, "mixed_bfloat16" if bfloat16 else "float32")
    return DeviceSettings(settings.gpu_batch_size or settings.batch_size,
                          "mixed_float16" if settings.gpu_mixed_precision else "float32")


@contextlib.contextmanager
def dtype_policy(name: str):
    """Keras' global dtype policy set to `name` inside, and given back after (float32: untouched)."""
    if name == "float32":
        yield
        return
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def compiled_model(experiment: Experiment, n_bins: int, n_classes: int, *, mean: np.ndarray, std: np.ndarray):
    """A new model of the experiment, compiled for training (Adam, cross-entropy on soft targets)."""
    from competition.modeling.models import build_model

    return compiled(build_model(experiment.model, n_bins, n_classes, mean=mean, std=std), experiment.train)


def compiled(model, settings: TrainConfig):
    """`model` compiled for training: Adam, cross-entropy on soft targets, for each of its outputs."""
    import keras

    n_outputs = len(model.outputs)
    model.compile(optimizer=keras.optimizers.Adam(settings.learning_rate),
                  loss=["categorical_crossentropy"] * n_outputs if n_outputs > 1 else "categorical_crossentropy",
                  weighted_metrics=[[]] * n_outputs if n_outputs > 1 else [])
    return model


class FoldTrainer:
    """Trains one fold with checkpoints after every epoch and early stopping on the fold's OOF metric."""

    def __init__(self, run: Run, fold: int, experiment: Experiment, dataset: Dataset,
                 stores: dict[str, FeatureStore], train: pd.DataFrame, folds: pd.Series, test: pd.DataFrame,
                 *, base_model: Path | None = None, deadline: float | None = None,
                 rehearsal: Rehearsal | None = None):
        self.run_folder = run
        self.deadline = deadline  # time.time() by which this call's training must have ended
        self.out_of_time = False
        self.longest_epoch = 0.0  # seconds, over the fold's epochs so far
        self.dir = run.fold_dir(fold)
        self.base_model = base_model
        # The base's clips rehearsed beside the target's: a transfer's, where its settings ask for it.
        self.rehearsal = rehearsal if base_model is not None and experiment.train.rehearsal_weight > 0 else None
        self.fold, self.experiment, self.dataset = fold, experiment, dataset
        self.stores, self.train_table, self.test_table = stores, train, test
        self.ids, self.targets, self.weights = _targets(train, dataset, experiment)
        store_rows = stores["train"].rows_of(train["fname"])
        self.fit_rows = store_rows[(folds != fold).to_numpy()]
        self.fit_positions = np.flatnonzero((folds != fold).to_numpy())
        self.val_positions = np.flatnonzero((folds == fold).to_numpy())
        self.val_rows = store_rows[self.val_positions]
        self.length = crop_frames(experiment)

    def _learning_rate(self, epoch: int) -> float:
        """Linear warm-up over the first epochs, then cosine decay to 1% of the peak."""
        settings = self.experiment.train
        if epoch < WARMUP_EPOCHS:
            return settings.learning_rate * (epoch + 1) / (WARMUP_EPOCHS + 1)
        progress = (epoch - WARMUP_EPOCHS) / max(1, settings.epochs - WARMUP_EPOCHS)
        return settings.learning_rate * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))

    @property
    def batches_per_epoch(self) -> int:
        return -(-len(self.fit_positions) // self.experiment.train.batch_size)

    def training_dataset(self, first_epoch: int):
        """The tf.data input of every epoch from `first_epoch` on, end to end, for one `fit` call (a
        `fit` per epoch costs a pipeline start-up each time). Each epoch's order and augmentation
        depend only on (seed, fold, epoch)."""
        settings = self.experiment.train
        store = self.stores["train"]
        fit = self.fit_positions

        rehearsal = self.rehearsal

        def batches():
            for epoch in range(first_epoch, settings.epochs):
                epoch_batches = training_batches(store, self.fit_rows, self.targets[fit], self.weights[fit],
                                                 settings, self.length,
                                                 np.random.default_rng([settings.seed, self.fold, epoch]))
                if rehearsal is None:
                    yield from epoch_batches
                    continue
                rehearsed = rehearsal.batches(settings, self.length, np.random.default_rng(
                    [settings.seed, self.fold, epoch, REHEARSAL_STREAM]))
                yield from joint_batches(epoch_batches, rehearsed, len(rehearsal.labels), settings.rehearsal_weight)

        return input_pipeline(batches, self.batches_per_epoch * (settings.epochs - first_epoch), self.length,
                              store.frames.shape[1], len(self.dataset.labels),
                              n_base_classes=len(rehearsal.labels) if rehearsal else 0)

    def _new_model(self):
        store = self.stores["train"]
        model = compiled_model(self.experiment, store.frames.shape[1], len(self.dataset.labels),
                               mean=store.mean, std=store.std)
        if self.base_model is not None:
            import keras

            from competition.modeling.models import copy_backbone_weights

            base = keras.models.load_model(self.base_model)
            copy_backbone_weights(base, model)
            if self.rehearsal is not None:
                model = compiled(joint_model(model, base, len(self.rehearsal.labels), self.experiment.model.dropout),
                                 self.experiment.train)
        return model

    def validate(self, model, n_crops: int) -> tuple[np.ndarray, float]:
        probs = predict_store(target_model(model), self.stores["train"], self.val_rows, self.length, n_crops)
        check_finite(probs, f"{self.dir}: held-out predictions")
        return probs, score(self.dataset.metric, self.ids[self.val_positions], probs)

    def run(self, progress) -> dict:
        import keras

        settings = self.experiment.train
        self.dir.mkdir(parents=True, exist_ok=True)
        checkpoint, state_path = self.dir / CHECKPOINT, self.dir / STATE
        if checkpoint.exists() and state_path.exists():
            model = keras.models.load_model(checkpoint)
            state = json.loads(state_path.read_text())
        else:
            keras.utils.set_random_seed(settings.seed * 1000 + self.fold)
            model = self._new_model()
            state = {"epoch": -1, "best_score": -1.0, "best_epoch": -1, "history": []}
        first_epoch = state["epoch"] + 1
        self.longest_epoch = max((record["seconds"] for record in state["history"]), default=0.0)
        if self.more_epochs(state, first_epoch):
            model.fit(self.training_dataset(first_epoch), initial_epoch=first_epoch, epochs=settings.epochs,
                      steps_per_epoch=self.batches_per_epoch, verbose=0, shuffle=False,
                      callbacks=[_epoch_boundaries(self, state, progress)])
        if self.out_of_time:
            return None
        if settings.keep_epoch == "last":
            _save_model(target_model(model), self.dir / BEST_MODEL)
        return self._finish(state)

    def more_epochs(self, state: dict, next_epoch: int) -> bool:
        return next_epoch < self.experiment.train.epochs and not self.should_stop(state, next_epoch)

    def seconds_needed(self, state: dict) -> float:
        """What the fold's next step takes, judged by its epochs so far: the longest epoch if one is
        left, then the final predictions (the held-out and test clips on every TTA crop, against
        one crop of the held-out clips an epoch)."""
        validating = max(record["seconds"] - record["fit_seconds"] for record in state["history"])
        n_test = len(self.test_table) if "test" in self.stores else 0
        finishing = validating * self.crops_per_clip() * (1 + n_test / max(1, len(self.val_rows)))
        return (self.longest_epoch if self.more_epochs(state, state["epoch"] + 1) else 0.0) + finishing

    def crops_per_clip(self) -> float:
        """A final prediction's work per clip, in crops: the TTA crops, or (WHOLE_CLIP) the held-out
        clips' mean length in crops."""
        n_crops = self.experiment.train.tta_crops
        if n_crops != WHOLE_CLIP:
            return float(n_crops)
        frames = self.stores["train"].index["length"].to_numpy()[self.val_rows]
        return float(np.mean([whole_clip_length(int(n), self.length) for n in frames])) / self.length

    def should_stop(self, state: dict, next_epoch: int) -> bool:
        """Early stopping: no OOF gain for `patience` epochs (only when the best epoch is kept)."""
        settings = self.experiment.train
        return settings.keep_epoch == "best" and next_epoch - state["best_epoch"] > settings.patience

    def begin_epoch(self, model, epoch: int) -> None:
        settings = self.experiment.train
        self._freeze_backbone(model, epoch)
        reseed_dropout(model, (settings.seed * 1000 + self.fold) * 1000 + epoch)
        model.optimizer.learning_rate.assign(self._learning_rate(epoch))
        self._epoch_started = time.perf_counter()

    def _freeze_backbone(self, model, epoch: int) -> None:
        """A transfer's first `freeze_backbone_epochs` train the head alone. `fit` reads its train step
        anew at every step, so the step traced again here applies from this epoch on."""
        from competition.modeling.models import backbone_is_frozen, set_backbone_trainable

        frozen = self.base_model is not None and epoch < self.experiment.train.freeze_backbone_epochs
        if frozen == backbone_is_frozen(model):
            return
        if not model.optimizer.built:  # built on every variable, so the unfrozen backbone finds its slots
            model.optimizer.build(model.trainable_variables)
        set_backbone_trainable(model, not frozen)
        model.make_train_function(force=True)

    def end_epoch(self, model, epoch: int, loss: float, state: dict, progress) -> None:
        """Score the held-out fold, keep the best model, checkpoint; `state` records it all."""
        settings = self.experiment.train
        fit_seconds = time.perf_counter() - self._epoch_started
        if not math.isfinite(loss):
            # Stop before this epoch is checkpointed: a rerun resumes from the last finite epoch.
            raise TrainingError(f"{self.dir}: training loss is {loss} at epoch {epoch}; nothing of this epoch was "
                                "kept. Check the features (make features --verify) and the learning rate, then "
                                "rerun: the fold resumes from its last checkpoint")
        _, val_score = self.validate(model, n_crops=1)
        record = {"epoch": epoch, "loss": loss, f"val_{self.dataset.metric}": val_score,
                  "learning_rate": self._learning_rate(epoch), "fit_seconds": round(fit_seconds, 2),
                  "seconds": round(time.perf_counter() - self._epoch_started, 2)}
        state["history"].append(record)
        self.longest_epoch = max(self.longest_epoch, record["seconds"])
        if val_score > state["best_score"]:
            state.update(best_score=val_score, best_epoch=epoch)
            if settings.keep_epoch == "best":
                _save_model(target_model(model), self.dir / BEST_MODEL)
        state["epoch"] = epoch
        self._save_checkpoint(model, state)
        if self.deadline is not None and time.time() + self.seconds_needed(state) > self.deadline:
            self.out_of_time = True
        progress.set_postfix(fold=self.fold, epoch=epoch, loss=f"{loss:.3f}", val=f"{val_score:.3f}",
                             best=f"{state['best_score']:.3f}")
        progress.update()

    def _save_checkpoint(self, model, state: dict) -> None:
        """The model (with optimizer state) first, then the state naming its epoch: a kill between the
        two redoes that epoch, which gives the same model again."""
        _save_model(model, self.dir / CHECKPOINT)
        atomic_write_text(self.dir / STATE, json.dumps(state, indent=1))

    def predict_from(self, twin: Run) -> dict:
        """Finish the fold from a twin run's finished fold, trained as this one would be (the runs differ
        only in how they predict, train.tta_crops): its kept model and history, predictions made anew."""
        summary = twin.fold_summary(self.fold)
        self.dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(twin.model_path(self.fold), self.dir / BEST_MODEL)
        state = {"epoch": summary["epochs_run"] - 1, "best_epoch": summary["best_epoch"],
                 "history": twin.histories()[self.fold].to_dict("records")}
        return self._finish(state, {"dtype_policy": summary["dtype_policy"], "predicted_from": twin.name})

    def _finish(self, state: dict, recorded: dict | None = None) -> dict:
        """The kept model's held-out (and test) predictions, then the fold's summary, `recorded` over it."""
        import keras

        run = self.run_folder
        model = keras.models.load_model(self.dir / BEST_MODEL)
        n_crops = self.experiment.train.tta_crops
        oof, oof_score = self.validate(model, n_crops)
        run.write_fold_predictions(self.fold, "oof", self.train_table["fname"].to_numpy()[self.val_positions], oof)
        if "test" in self.stores:
            test_store = self.stores["test"]
            test_rows = test_store.rows_of(self.test_table["fname"])
            test_probs = predict_store(model, test_store, test_rows, self.length, n_crops)
            check_finite(test_probs, f"{self.dir}: test predictions")
            run.write_fold_predictions(self.fold, "test", self.test_table["fname"], test_probs)
        os.replace(self.dir / BEST_MODEL, run.model_path(self.fold))
        run.write_history(self.fold, state["history"])
        kept_epoch = state["best_epoch"] if self.experiment.train.keep_epoch == "best" else state["epoch"]
        summary = {"fold": self.fold, "score": oof_score, "metric": self.dataset.metric,
                   "kept_epoch": kept_epoch, "best_epoch": state["best_epoch"], "epochs_run": state["epoch"] + 1,
                   "n_train": len(self.fit_rows), "n_val": len(self.val_rows),
                   "dtype_policy": keras.config.dtype_policy().name, **(recorded or {})}
        run.write_fold_done(self.fold, summary)
        (self.dir / CHECKPOINT).unlink(missing_ok=True)
        (self.dir / STATE).unlink(missing_ok=True)
        return summary


def _epoch_boundaries(trainer: FoldTrainer, state: dict, progress):
    """The Keras callback that hands each epoch's start and end to the trainer."""
    import keras

    class EpochBoundaries(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            trainer.begin_epoch(self.model, epoch)

        def on_epoch_end(self, epoch, logs=None):
            trainer.end_epoch(self.model, epoch, float(logs["loss"]), state, progress)
            self.model.stop_training = trainer.out_of_time or trainer.should_stop(state, epoch + 1)

    return EpochBoundaries()


def _save_model(model, path: Path) -> None:
    from competition.modeling.models import backbone_is_frozen, set_backbone_trainable

    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.keras")  # this process's own
    # Saved unfrozen, so a checkpoint of a frozen epoch loads with its optimizer's slots for every
    # variable (the trainer freezes it again for the epochs left frozen).
    frozen = backbone_is_frozen(model)
    set_backbone_trainable(model, True)
    try:
        model.save(tmp)
    finally:
        set_backbone_trainable(model, not frozen)
    os.replace(tmp, path)


def run_dir_for(workspace: Workspace, dataset: Dataset, experiment: Experiment, run_name: str | None) -> Path:
    """runs/<run name>: by default <dataset>-<the experiment's name>."""
    return workspace.runs / (run_name or f"{dataset.name}-{experiment.name}")


def run_hash(params: dict, base: dict | None, excluded_sources_of: str | None) -> str:
    """A run's hash: its experiment's parameters, the base model it started from (`base_identity`), the
    dataset whose recordings it left out."""
    value = config_hash(params)
    if base is not None:
        value = config_hash({"experiment": value, **base})
    if excluded_sources_of is not None:  # trained on fewer clips: another run
        value = config_hash({"run": value, "excluded_sources_of": excluded_sources_of})
    return value


def base_identity(record: dict) -> dict | None:
    """What a fine-tune's hash counts of its base: its file's fingerprint; for a run recorded before
    fingerprints (no `base_model_sha256`), its resolved path, as older kits counted it."""
    if "base_model" not in record:
        return None
    if "base_model_sha256" in record:
        return {"base_model_sha256": record["base_model_sha256"]}
    return {"base_model": str(Path(record["base_model"]).resolve())}


def legacy_run_hash(record: dict) -> str | None:
    """The hash kits before base-model fingerprints gave a fine-tune of `record` (its base by path), so
    that a run they trained is still this one; None for a run without a base."""
    if "base_model" not in record:
        return None
    return run_hash(record["params"], base_identity({"base_model": record["base_model"]}),
                    (record.get("excluded_sources") or {}).get("of"))


def run_record(experiment: Experiment, dataset: Dataset, base_model: Path | None = None,
               excluded_sources: dict | None = None) -> dict:
    """The run's config.json: what it is and what its outputs depend on (the hash). A fine-tune's base
    counts by its file's content, not its path: a base re-predicted as a twin run is the same base."""
    base = None if base_model is None else {"base_model": str(base_model),
                                            "base_model_sha256": model_fingerprint(base_model)}
    record = {"experiment": experiment.name, "dataset": dataset.name,
              "hash": run_hash(experiment.output_params(), base and base_identity(base),
                               (excluded_sources or {}).get("of")),
              "feature_key": experiment.features.key,
              "feature_config": asdict(experiment.features), "crop_frames": crop_frames(experiment),
              "tta_crops": experiment.train.tta_crops, "params": experiment.output_params(),
              "labels": list(dataset.labels), "metric": dataset.metric, **(base or {})}
    if excluded_sources is not None:
        record["excluded_sources"] = excluded_sources
    return record


def training_key(record: dict) -> str:
    """What a run's fold models depend on: its dataset and hash, but for how it predicts (train.tta_crops,
    used only once a fold is trained)."""
    params = record["params"]
    trained = {**params, "train": {k: v for k, v in params["train"].items() if k != "tta_crops"}}
    return config_hash({"dataset": record["dataset"], "labels": record["labels"], "run": run_hash(
        trained, base_identity(record), (record.get("excluded_sources") or {}).get("of"))})


def fold_twins(runs_dir: Path, record: dict, *, besides: Path | None = None) -> dict[int, Run]:
    """Finished folds of the runs in `runs_dir` (but `besides`) trained as a run of `record` (its
    run_record) would be, differing only in how they predict (their training key is its own, their hash
    another: a run of the same hash under another name is trained, as asked): fold -> the run that has it."""
    key, twins = training_key(record), {}
    for other in sorted(path for path in runs_dir.iterdir() if path != besides) if runs_dir.is_dir() else ():
        other_run = Run(other)
        try:
            if (not other_run.exists() or other_run.config()["hash"] == record["hash"]
                    or training_key(other_run.config()) != key):
                continue
        except (ValueError, KeyError, TypeError):  # not a run this kit can read: not a twin
            continue
        for fold in other_run.finished_folds():
            if other_run.model_path(fold).is_file() and other_run.fold_file(fold, HISTORY).is_file():
                twins.setdefault(fold, other_run)
    return twins


def exclude_sources_of(workspace: Workspace, index: Index, other: str) -> tuple[Index, dict, np.ndarray]:
    """The index without the train clips cut from a recording that dataset `other` also holds, what
    was left out, and which train rows were kept."""
    from competition.datasets.registry import get_dataset
    from competition.datasets.sources import describe, shared_sources, without_sources

    other_index = get_dataset(other).index(workspace.dataset_dir(other))
    shared = shared_sources(index.train, other_index.train)
    kept = without_sources(index.train, shared)
    keep = ~index.train["source_id"].astype(str).isin(shared).to_numpy()
    excluded = {"of": other, "clips": len(index.train) - len(kept), "sources": len(shared)}
    print(f"left out {excluded['clips']} train clip(s) of {len(shared)} recording(s) that {other} also holds"
          + (f" ({describe(shared)})" if shared else ""), file=sys.stderr)
    return Index(kept, index.test), excluded, keep


def train_experiment(workspace: Workspace, dataset: Dataset, index: Index, experiment: Experiment, *,
                     run_name: str | None = None, only_folds: list[int] | None = None,
                     base_model: Path | None = None, exclude_sources: str | None = None,
                     deadline: float | None = None, rehearsal: Rehearsal | None = None) -> Path:
    """Train every fold (or `only_folds`) of an experiment; assemble the run's OOF and test predictions.
    With `base_model`, every fold starts from that model's backbone weights (transfer); with
    `exclude_sources`, without the clips of recordings that dataset also holds (a base for it).
    With `deadline` (time.time()), TimeBudgetSpent when it comes before every fold is done. With a base
    and train.rehearsal_weight above 0, `rehearsal` holds the base's clips rehearsed beside the target's."""
    from tqdm import tqdm

    from competition.modeling.report import write_report

    if base_model is not None and experiment.train.rehearsal_weight > 0 and rehearsal is None:
        raise RehearsalError(f"{experiment.name}: train.rehearsal_weight is {experiment.train.rehearsal_weight}, but "
                             "no base clips were given to rehearse (make transfer gives its base's)")
    excluded, full_train = None, index.train
    if exclude_sources:
        index, excluded, keep = exclude_sources_of(workspace, index, exclude_sources)
        run_name = run_name or f"{dataset.name}-{experiment.name}-without-{exclude_sources}"
    run = Run(run_dir_for(workspace, dataset, experiment, run_name))
    record = run_record(experiment, dataset, base_model, excluded)
    run.claim(record, formerly=legacy_run_hash(record))
    # Every clip checked against its CRC before anything is trained on it.
    stores = build_features(workspace, dataset.name, {"train": index.train, "test": index.test}, experiment.features,
                            verify=True)
    import tensorflow as tf  # only now: the feature workers above are forked from a process without it

    tf.config.experimental.enable_op_determinism()
    # The dataset's saved folds, made on all its clips: a run leaving some out keeps the others' folds.
    folds = load_or_make_folds(workspace, dataset, full_train, experiment.folds.k, experiment.folds.seed)
    if excluded is not None:
        folds = pd.Series(folds.to_numpy()[keep], index=index.train.index)
    fold_ids = sorted(folds.unique()) if only_folds is None else only_folds
    todo = [f for f in fold_ids if not run.fold_is_done(int(f))]
    # The run keeps the experiment's hash (claimed above); only what the folds train with follows the device.
    where = training_device()
    device = device_settings(experiment.train, where)
    trained = experiment.with_overrides(train={"batch_size": device.batch_size})
    twins = fold_twins(run.dir.parent, run.config(), besides=run.dir) if todo else {}
    for fold in [f for f in todo if int(f) in twins]:  # trained already, as another run: predicted anew
        twin = twins[int(fold)]
        FoldTrainer(run, int(fold), trained, dataset, stores, index.train, folds, index.test).predict_from(twin)
        print(f"{run.name}: fold {fold} is {twin.name}'s fold model (trained alike; the runs differ only in "
              f"train.tta_crops), predicted anew, not trained again", file=sys.stderr)
        todo.remove(fold)
    if todo:
        print(_device_line(experiment.train, where, device), file=sys.stderr, flush=True)
    with tqdm(total=len(todo) * experiment.train.epochs, desc=f"train {run.name}", unit="epoch",
              file=sys.stderr, dynamic_ncols=True) as progress, dtype_policy(device.dtype_policy):
        last_epoch_seconds = 0.0  # of the fold trained before: a fold begun must train an epoch
        for position, fold in enumerate(todo):
            if deadline is not None and position and time.time() + last_epoch_seconds > deadline:
                raise TimeBudgetSpent(run.dir, {int(f): _epochs_trained(run, int(f)) for f in todo[position:]})
            trainer = FoldTrainer(run, int(fold), trained, dataset, stores, index.train, folds, index.test,
                                  base_model=base_model, deadline=deadline, rehearsal=rehearsal)
            if trainer.run(progress) is None:
                raise TimeBudgetSpent(run.dir, {int(f): _epochs_trained(run, int(f)) for f in todo[position:]})
            last_epoch_seconds = trainer.longest_epoch
            progress.total = progress.n + (len(todo) - position - 1) * experiment.train.epochs
            progress.refresh()
    if only_folds is None:
        assemble_run(run, dataset, index)
        write_report(run.dir)
    return run.dir


def _device_line(settings: TrainConfig, where: str, device: DeviceSettings) -> str:
    """What the folds train on and in which precision; where bfloat16 was asked for and is not computed, why."""
    on = "the GPU" if where == "GPU" else "the CPU"
    line = f"training on {on}: batch size {device.batch_size}, dtype policy {device.dtype_policy}"
    if settings.cpu_bfloat16 and where == "CPU":
        return line + " (train.cpu_bfloat16 asks for bfloat16, which this CPU or TensorFlow's kernels do not compute)"
    return line


def _epochs_trained(run: Run, fold: int) -> int:
    state = run.fold_file(fold, STATE)
    return json.loads(state.read_text())["epoch"] + 1 if state.is_file() else 0


def assemble_run(run: Run, dataset: Dataset, index: Index) -> dict:
    """Collect the folds: `oof.npz` (every train clip), `test.npz` (geometric mean over folds), `scores.json`."""
    folds = run.folds()
    summaries = [run.fold_summary(fold) for fold in folds]
    oof_parts = [run.fold_predictions(fold, "oof") for fold in folds]
    fnames = [f for part in oof_parts for f in part.fnames]
    probs = np.concatenate([part.probs for part in oof_parts])
    order = pd.Series(np.arange(len(fnames)), index=fnames).loc[index.train["fname"]].to_numpy()
    oof = probs[order]
    ids = index.train["label"].map(dataset.label_to_id).to_numpy()
    run.write_predictions("oof", index.train["fname"], oof, true_ids=ids)
    scores = {"metric": dataset.metric, "folds": {s["fold"]: s["score"] for s in summaries},
              "oof": score(dataset.metric, ids, oof)}
    if run.has_fold_predictions(folds[0], "test"):
        test_parts = [run.fold_predictions(fold, "test") for fold in folds]
        run.write_predictions("test", test_parts[0].fnames, geometric_mean([part.probs for part in test_parts]))
    run.write_scores(scores)
    return scores
