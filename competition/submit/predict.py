"""Tagging any audio file with a trained run or a submission blend: `make predict` and `make app` both
tag through `Tagger`, so a file gets the same answer from either.

A run's answer is its fold models' geometric mean, each over the run's TTA crops (or of the whole
clip in one pass, where the run predicts so: `tta_crops = 0`), from features made exactly as the
run's were (the cache's decode + compute_features). A blend (`submissions/<name>.csv`,
whose `.json` record names its member runs and their weights) is the weighted geometric mean of its
runs, each over its own features. Beside the answer, each model also sees a row of crops laid across
the clip, which shows over time which part of the clip the answer comes from.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from competition.config import FeatureConfig
from competition.errors import KitError
from competition.features.dsp import compute_features, decode, log_mel
from competition.metrics import top_k_indices
from competition.modeling.batches import fit_length, tta_starts
from competition.modeling.inference import geometric_mean, predict_clips
from competition.modeling.runs import Run
from competition.workspace import Workspace

# The crops laid across a clip for its timeline: side by side (overlapping a little where the clip
# is not a whole number of crops long), and at most this many, which bounds the extra work of a long
# clip; each costs as much as a TTA crop, in every model of the run or blend.
MAX_TIMELINE_CROPS = 16


class PredictError(KitError, ValueError):
    """A run or blend cannot tag, or some files could not be tagged; the message names which."""


@dataclass(frozen=True)
class Tags:
    """What a run or blend makes of one file."""
    path: Path
    labels: list[str]
    probs: np.ndarray              # (classes,) the answer
    top: list[tuple[str, float]]   # the k most probable labels, best first
    crop_starts: np.ndarray        # (crops,) seconds: where each timeline crop starts
    crop_seconds: float            # how long a timeline crop is
    crop_probs: np.ndarray         # (crops, classes) each timeline crop's probabilities
    logmel: np.ndarray             # (frames, mels) log-mel power in dB, for display
    frames_per_second: float       # of `logmel`
    seconds: float                 # of audio tagged (the start of a longer file, at most max_seconds)
    notes: list[str]               # what decoding cut or found missing (a file over max_seconds, ...)


class RunModels:
    """One run's fold models, loaded once, and how its features and crops are made."""

    def __init__(self, run_dir: Path):
        import keras

        run = Run(run_dir)
        config = run.config()
        self.dir = run.dir
        self.labels: list[str] = list(config["labels"])
        self.features = FeatureConfig(**config["feature_config"])
        self.crop_frames: int = config["crop_frames"]
        self.tta_crops: int = config["tta_crops"]
        self.models = [keras.models.load_model(path) for path in run.fold_models()]

    def predict(self, clip: np.ndarray, timeline: list[np.ndarray]) -> np.ndarray:
        """(1 + crops, classes): the clip's answer (TTA), then each timeline crop's probabilities.

        Timeline crops are exactly one crop long, so predict_clips takes each as it is."""
        return geometric_mean([predict_clips(model, [clip, *timeline], self.crop_frames, self.tta_crops)
                               for model in self.models])


def timeline_starts(n_frames: int, length: int) -> np.ndarray:
    """Frames where the timeline crops start: at most a crop apart across the clip, at most MAX_TIMELINE_CROPS."""
    n_crops = min(MAX_TIMELINE_CROPS, 1 + -(-max(0, n_frames - length) // max(1, length)))
    return tta_starts(n_frames, length, n_crops)


def blend_members(csv_path: Path, runs_dir: Path) -> list[tuple[Path, float]]:
    """(run folder, weight) of each member of a submission blend, from the record beside the CSV."""
    from competition.submit.submission import read_record, record_path

    record = read_record(csv_path)
    members = record.get("members")
    if not members:
        raise PredictError(f"{record_path(csv_path)}: no members listed; is it a record from `make ensemble`?")
    found = []
    for member in members:
        name = member["run"]
        # A kernel's downloaded output holds its runs beside its submission.
        places = [runs_dir / name, Path(csv_path).parent / name, Path(csv_path).parent / "runs" / name]
        run_dir = next((place for place in places if Run(place).exists()), None)
        if run_dir is None:
            raise PredictError(f"{record_path(csv_path)}: member run {name!r} not found in {runs_dir} "
                               f"or beside the CSV")
        found.append((run_dir, float(member.get("weight", 1.0))))
    return found


def resolve_model(workspace: Workspace, name: str | Path) -> Path:
    """A run folder or submission CSV given as a path (from here or from the workspace's root), a run
    name under runs/, or a submission name under submissions/."""
    candidates = [Path(name), workspace.root / name, workspace.runs / str(name), workspace.submissions / str(name),
                  workspace.submissions / f"{name}.csv"]
    for candidate in candidates:
        if (candidate.is_dir() and Run(candidate).exists()) or (candidate.is_file() and candidate.suffix == ".csv"):
            return candidate
    raise PredictError(f"{name}: neither a run (folder, or name under {workspace.runs}) nor a submission blend "
                       f"(CSV, or name under {workspace.submissions})")


class Tagger:
    """A run's or a blend's models, loaded once, tagging one file at a time."""

    def __init__(self, members: Sequence[RunModels], weights: Sequence[float] | None = None, *, name: str):
        self.members = list(members)
        self.weights = [1.0] * len(self.members) if weights is None else list(weights)
        self.name = name
        self.labels = self.members[0].labels
        for member in self.members[1:]:
            if member.labels != self.labels:
                raise PredictError(f"{member.dir}: labels differ from {self.members[0].dir}; runs cannot be blended")

    @classmethod
    def load(cls, model: Path, runs_dir: Path | None = None) -> Tagger:
        """A run folder, or a submission CSV whose blend record names runs under `runs_dir`
        (default: the workspace's runs/)."""
        model = Path(model)
        if model.suffix == ".csv":
            members = blend_members(model, runs_dir or Workspace.from_env().runs)
            return cls([RunModels(run_dir) for run_dir, _ in members], [weight for _, weight in members],
                       name=model.stem)
        return cls([RunModels(model)], name=Run(model).name)

    @property
    def max_seconds(self) -> float:
        """How much of the start of a file is tagged: what the members' features keep."""
        return min(member.features.max_seconds for member in self.members)

    def tag(self, path: Path, k: int = 3) -> Tags:
        """Raises AudioError (a KitError naming the file) for a file the kit cannot decode."""
        path = Path(path)
        signals: dict[tuple, np.ndarray] = {}
        clips, notes = [], []
        for member in self.members:
            decoding = (member.features.sample_rate, member.features.max_seconds)
            if decoding not in signals:
                # Notes of the first decoding only: another sample rate would say the same things again.
                signals[decoding] = decode(path, member.features, notes if not signals else None)
            clips.append(compute_features(signals[decoding], member.features))

        # The timeline's crops are placed by the first member; the others centre theirs at the same times.
        first, first_clip = self.members[0], clips[0]
        fps = first.features.frames_per_second
        crop_seconds = first.crop_frames / fps
        starts = timeline_starts(len(first_clip), first.crop_frames) / fps
        centres = starts + crop_seconds / 2
        rows = []
        for member, clip in zip(self.members, clips):
            length, member_fps = member.crop_frames, member.features.frames_per_second
            crop_at = np.clip(np.round(centres * member_fps - length / 2), 0, max(0, len(clip) - length)).astype(int)
            rows.append(member.predict(clip, [fit_length(clip, length, int(start)) for start in crop_at]))
        blend = geometric_mean(rows, self.weights) if len(rows) > 1 else rows[0]

        probs = blend[0]
        signal = signals[(first.features.sample_rate, first.features.max_seconds)]
        logmel = first_clip if first.features.kind == "logmel" else log_mel(signal, first.features)
        return Tags(path=path, labels=self.labels, probs=probs,
                    top=[(self.labels[i], float(probs[i])) for i in top_k_indices(probs[None], k)[0]],
                    crop_starts=starts, crop_seconds=crop_seconds, crop_probs=blend[1:], logmel=logmel,
                    frames_per_second=fps, seconds=len(signal) / first.features.sample_rate, notes=notes)


def print_error_line(path: Path, error: KitError) -> None:
    print(f"error: {error}", file=sys.stderr, flush=True)


def predict_files(model: Path, files: Sequence[Path], k: int = 3, *,
                  on_error: Callable[[Path, KitError], None] = print_error_line
                  ) -> Iterator[tuple[Path, list[tuple[str, float]]]]:
    """(file, top-k tags) of every file that can be tagged, in order, as each is done.

    A file that cannot be tagged is passed to `on_error` (by default an `error: <file>: <problem>`
    line on stderr) and the rest are still tagged; a PredictError at the end says how many failed."""
    tagger = Tagger.load(Path(model))
    failed = 0
    for path in files:
        try:
            tags = tagger.tag(Path(path), k)
        except KitError as error:
            failed += 1
            on_error(Path(path), error if str(error).startswith(str(path)) else PredictError(f"{path}: {error}"))
            continue
        for note in tags.notes:  # a clip cut to max_seconds, a file shorter than its header: said
            print(f"note: {path}: {note}", file=sys.stderr, flush=True)
        yield Path(path), tags.top
    if failed:
        raise PredictError(f"{failed} of {len(files)} file(s) could not be tagged")
