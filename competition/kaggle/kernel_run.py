"""What a kernel built by `make kernel` runs: on Kaggle, or locally with Kaggle's folders mapped.

Kaggle mounts the competition's files and the outputs of source kernels read-only under
/kaggle/input and keeps what a kernel writes to /kaggle/working as its output. KAGGLE_INPUT_DIR
and KAGGLE_WORKING_DIR put them elsewhere (the tests run built kernels on the demo competition
so). Where under /kaggle/input a source sits has changed over the years (`find_input`): the
competition at `<slug>/` or `competitions/<slug>/`, sometimes with its audio one folder deeper
(`audio_train/audio_train/`); a kernel's output at `<slug>/` or `notebooks/<owner>/<slug>/`.
The kit's workspace (linked data, feature cache, folds) lives in a scratch folder, so the output
holds only what is worth downloading:

    <run>/config.json, <run>/fold-<k>/   model.keras, oof.npz, test.npz, history.csv, done.json
    <run>/oof.npz, test.npz, scores.json  the assembled run (train and blend kernels)
    submission.csv, submission.json       the blend of the runs (train and blend kernels)
    features/, folds/                     the features kernel's (kernel_features.py)
    unfinished.json                       a training kernel's, when its time budget ran out first

A training kernel (train, fold) has a time budget (`hours`, under Kaggle's session limit). Near it,
training stops at an epoch's end (modeling/train.py), and the output holds the runs as they are,
checkpoints included, the finished folds' predictions and `unfinished.json` saying what is left.
Pushed again with its own output among its sources (kernel_schedule.py does so), the kernel finds
that output under its own slug and continues from it.

A fold kernel trains one fold on the features kernel's caches and folds, so the blend kernel's
assembled OOF predictions cover each train clip once. A kernel built for a GPU stops at once
when its session has none (Kaggle without phone verification, or a CPU session) rather than
spend hours training on the CPU; KIT_KERNEL_ON_CPU=1 lets it go on (the tests run kernels so).
Only what the kit needs at the top is imported here: the rest loads after the versions of the
image's libraries are printed, so a failing import shows next to them in the log.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from competition.onednn import VARIABLE, prefer_onednn

INPUT_DIR_VARIABLE = "KAGGLE_INPUT_DIR"
WORKING_DIR_VARIABLE = "KAGGLE_WORKING_DIR"
ON_CPU_VARIABLE = "KIT_KERNEL_ON_CPU"
SUBMISSION_NAME = "submission"
KINDS = ("train", "features", "fold", "blend")
REPORTED_DISTRIBUTIONS = ("numpy", "pandas", "scipy", "scikit-learn", "tensorflow", "tensorflow-cpu", "keras",
                          "librosa", "soundfile", "soxr", "numba")


def main(settings: dict) -> None:
    from competition.kaggle.kernel_build import KernelError
    from competition.modeling.runs import RESUME_FILES
    from competition.workspace import Workspace

    started = time.time()
    # What a finished fold no longer needs (an interrupted one's resume state) stays out of the output.
    left_out_of_output = shutil.ignore_patterns(*RESUME_FILES, ".*")
    input_dir = Path(os.environ.get(INPUT_DIR_VARIABLE, "/kaggle/input"))
    working_dir = Path(os.environ.get(WORKING_DIR_VARIABLE, "/kaggle/working"))
    print_versions()
    # Before TensorFlow is imported; the log says which CPU kernels it got.
    print(f"oneDNN CPU kernels ({VARIABLE}): {'on' if prefer_onednn() else 'off'}", flush=True)
    kind = settings["kind"]
    if kind not in KINDS:
        raise KernelError(f"unknown kernel kind {kind!r} in SETTINGS")
    if kind in ("train", "fold"):
        check_devices(settings.get("gpu", "none"))
    workspace = Workspace(Path(tempfile.mkdtemp(prefix="kit-workspace-")))
    dataset, index = prepare_data(workspace, settings, input_dir)
    experiments = load_experiments(workspace, settings["experiments"], dataset.name)
    working_dir.mkdir(parents=True, exist_ok=True)
    if kind == "features":
        from competition.kaggle.kernel_features import write_features_output

        keys = write_features_output(workspace, dataset, index, experiments, working_dir)
        print(f"feature caches {', '.join(keys)} and folds in {working_dir}")
        return
    if kind == "blend":
        run_dirs = [collect_folds(workspace, dataset, index, experiment, settings["fold_kernels"][experiment.name],
                                  input_dir) for experiment in experiments]
    else:
        from competition.modeling.train import TimeBudgetSpent, train_experiment

        continue_from_previous_output(workspace, dataset, experiments, input_dir, settings["slug"])
        if kind == "fold" and settings.get("features_kernel"):
            from competition.kaggle.kernel_features import adopt_features

            source = settings["features_kernel"]
            keys = adopt_features(workspace, dataset, index, experiments, find_input(input_dir, source), source)
            print(f"feature caches {', '.join(keys)} and folds from kernel {source}", flush=True)
        else:
            from competition.features.cache import build_feature_sets

            # All experiments' features first, before TensorFlow is loaded by the first training:
            # the feature workers are forked from this process.
            build_feature_sets(workspace, dataset.name, {"train": index.train, "test": index.test},
                               [experiment.features for experiment in experiments])
        only_folds = [settings["fold"]] if kind == "fold" else None
        deadline = started + settings["hours"] * 3600
        try:
            run_dirs = [train_experiment(workspace, dataset, index, experiment, only_folds=only_folds,
                                         deadline=deadline) for experiment in experiments]
        except TimeBudgetSpent as spent:
            save_unfinished(workspace, dataset, experiments, working_dir, spent, settings["hours"])
            return
    for run_dir in run_dirs:
        shutil.copytree(run_dir, working_dir / run_dir.name, ignore=left_out_of_output, dirs_exist_ok=True)
    if kind != "fold":
        from competition.submit.ensemble import blend_runs

        csv_path = blend_runs(workspace, run_dirs, SUBMISSION_NAME)
        from competition.submit.submission import read_record, record_path

        for path in (csv_path, record_path(csv_path)):
            shutil.copyfile(path, working_dir / path.name)
        record = read_record(csv_path)
        print(f"{working_dir / csv_path.name}: CV {record['metric']} {record['cv_score']:.4f}")
    print(f"outputs in {working_dir}: " + ", ".join(sorted(p.name for p in working_dir.iterdir())))


def print_versions() -> None:
    """The versions of the libraries this image has, so a difference from the kit's pins shows in the log."""
    versions = []
    for name in REPORTED_DISTRIBUTIONS:
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    print("libraries: " + ", ".join(versions), flush=True)


def check_devices(gpu: str) -> None:
    """Print the GPUs this session has; stop when the kernel was built for one and has none."""
    import tensorflow as tf

    from competition.kaggle.kernel_build import KernelError

    gpus = tf.config.list_physical_devices("GPU")
    print("GPUs: " + (", ".join(gpu.name for gpu in gpus) if gpus else "none"), flush=True)
    if gpus or gpu == "none":
        return
    if os.environ.get(ON_CPU_VARIABLE) == "1":
        print(f"built for a GPU ({gpu}) but training on the CPU, as {ON_CPU_VARIABLE}=1 asks", flush=True)
        return
    raise KernelError(f"this kernel was built for a GPU ({gpu}) but its session has none, so it stops rather "
                      "than spend hours on the CPU: Kaggle gives GPUs only to phone-verified accounts "
                      "(Settings > Phone verification) and within the weekly quota; or build it with KERNEL_GPU=none")


def mounted(input_dir: Path, name: str) -> Path | None:
    """Where Kaggle mounted the source `name`: input/<name>, or one or two folders further down
    (input/competitions/<name>, input/notebooks/<owner>/<name>); None when it is not there."""
    for pattern in (name, f"*/{name}", f"*/*/{name}"):
        for candidate in sorted(input_dir.glob(pattern)):
            if candidate.is_dir():
                return candidate
    return None


def find_input(input_dir: Path, name: str) -> Path:
    """`mounted`, or a KernelError naming what the input folder holds."""
    found = mounted(input_dir, name)
    if found is not None:
        return found
    from competition.kaggle.kernel_build import KernelError

    present = sorted(p.name for p in input_dir.iterdir()) if input_dir.is_dir() else []
    raise KernelError(f"{name} not found under {input_dir} (which holds: {', '.join(present) or 'nothing'}); "
                      "is it among the kernel's sources in kernel-metadata.json?")


def continue_from_previous_output(workspace, dataset, experiments, input_dir: Path, slug: str) -> None:
    """Take up the runs an earlier version of this kernel left unfinished, when its output is mounted
    (a re-push lists the kernel among its own sources); runs of another configuration are left."""
    from competition.kaggle.kernel_build import UNFINISHED
    from competition.modeling.runs import STATE, Run
    from competition.modeling.train import run_dir_for

    previous = mounted(input_dir, slug)
    if previous is None or not (previous / UNFINISHED).is_file():
        return
    for experiment in experiments:
        run = Run(run_dir_for(workspace, dataset, experiment, None))
        earlier = Run(previous / run.name)
        if not earlier.config_path.is_file():
            continue
        if earlier.config()["hash"] != experiment.hash:
            print(f"{earlier.dir}: trained with another configuration (hash {earlier.config()['hash']}); "
                  "starting afresh", flush=True)
            continue
        shutil.copytree(earlier.dir, run.dir, dirs_exist_ok=True)
        done = run.finished_folds()
        left = {fold: json.loads(run.fold_file(fold, STATE).read_text())["epoch"] + 1
                for fold in run.folds() if fold not in done and run.fold_file(fold, STATE).is_file()}
        print(f"{run.name}: continuing from the output of this kernel's previous version: folds done "
              f"{done or 'none'}" + "".join(f", fold {fold} at epoch {epochs}" for fold, epochs in left.items()),
              flush=True)


def save_unfinished(workspace, dataset, experiments, working_dir: Path, spent, hours: float) -> None:
    """The runs as they are, checkpoints included, and `unfinished.json`, as the kernel's output."""
    from competition.kaggle.kernel_build import UNFINISHED
    from competition.modeling.train import run_dir_for
    from competition.workspace import atomic_write_text

    for experiment in experiments:
        run_dir = run_dir_for(workspace, dataset, experiment, None)
        if run_dir.is_dir():
            shutil.copytree(run_dir, working_dir / run_dir.name, ignore=shutil.ignore_patterns(".*"),
                            dirs_exist_ok=True)
    record = {"run": spent.run_dir.name, "folds": {str(fold): epochs for fold, epochs in spent.unfinished.items()},
              "hours": hours, "message": str(spent)}
    atomic_write_text(working_dir / UNFINISHED, json.dumps(record, indent=1))
    print(f"{spent} (budget {hours:g} h); its checkpoints are in this output: pushed again (make kernel does), "
          "this kernel continues from them", flush=True)
    print(f"outputs in {working_dir}: " + ", ".join(sorted(p.name for p in working_dir.iterdir())))


def competition_files(workspace, folder: Path) -> Path:
    """The competition's files as the dataset's indexer expects them: `folder` itself, or, where
    Kaggle mounts each audio folder inside one of the same name (audio_train/audio_train/), a
    folder of links to the CSVs and the inner audio folders."""
    from competition.datasets.freesound import AUDIO_DIRS

    if not all((folder / name / name).is_dir() for name in AUDIO_DIRS):
        return folder
    flattened = workspace.root / "mounted-competition"
    flattened.mkdir(parents=True, exist_ok=True)
    for item in folder.iterdir():
        inner = item / item.name if item.name in AUDIO_DIRS else item
        (flattened / item.name).symlink_to(inner.resolve(), target_is_directory=inner.is_dir())
    return flattened


def prepare_data(workspace, settings: dict, input_dir: Path):
    """The competition's mounted files as the dataset's copy in the workspace (by the dataset's own
    local-copy rule, as `make data FROM=DIR`), verified and indexed."""
    from competition.datasets.obtain import obtain
    from competition.datasets.registry import get_dataset

    dataset = get_dataset(settings["dataset"])
    files = competition_files(workspace, find_input(input_dir, settings["competition"]))
    root = obtain(workspace, dataset.name, from_dir=files)
    return dataset, dataset.index(root)


def load_experiments(workspace, sources: list[dict], dataset: str) -> list:
    """The experiments embedded in SETTINGS, each written back to its TOML file and loaded from it
    (with the dataset's own values, if it has any)."""
    from competition.config import load_experiment
    from competition.workspace import atomic_write_text

    experiments = []
    for source in sources:
        path = workspace.root / "experiments" / source["file"]
        atomic_write_text(path, source["toml"])
        experiments.append(load_experiment(path, dataset))
    return experiments


def collect_folds(workspace, dataset, index, experiment, fold_kernel_slugs: list[str], input_dir: Path) -> Path:
    """Copy fold k of the run from the output of fold kernel k, check they agree, assemble the run."""
    from competition.kaggle.kernel_build import KernelError
    from competition.modeling.runs import RESUME_FILES, Run
    from competition.modeling.train import assemble_run, run_dir_for

    run = Run(run_dir_for(workspace, dataset, experiment, None))
    for fold, slug in enumerate(fold_kernel_slugs):
        source = Run(find_input(input_dir, slug) / run.name)
        if not source.fold_is_done(fold):
            raise KernelError(f"{source.fold_dir(fold)} holds no finished fold: kernel {slug} did not finish fold "
                              f"{fold} of {run.name}; check it with `make kernel-status`")
        trained_with = source.config()["hash"]
        if trained_with != experiment.hash:
            raise KernelError(f"{source.dir}: trained with experiment hash {trained_with}, this blend expects "
                              f"{experiment.hash}; rebuild and push the kernels together (make kernel FOLDS=all)")
        shutil.copytree(source.fold_dir(fold), run.fold_dir(fold), ignore=shutil.ignore_patterns(*RESUME_FILES, ".*"))
        shutil.copyfile(source.config_path, run.config_path)
    scores = assemble_run(run, dataset, index)
    print(f"{run.name}: OOF {scores['metric']} {scores['oof']:.4f} from {len(fold_kernel_slugs)} fold kernels")
    return run.dir
