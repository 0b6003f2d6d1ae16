"""Command line behind every make target: `python -m competition <step> [options]`.

Each step imports what it needs when it runs, so `--help` and CSV checks never load TensorFlow.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from competition import onednn, quiet_start
from competition.errors import KitError, environment_fault
from competition.workspace import Workspace


def _experiment_paths(args) -> list[Path]:
    """The experiments named with --experiment, else the kit's defaults (config.DEFAULT_EXPERIMENTS)."""
    from competition.config import DEFAULT_EXPERIMENTS

    return [Path(path) for path in args.experiment] if args.experiment else list(DEFAULT_EXPERIMENTS)


def _run_dir(workspace: Workspace, name: str) -> Path:
    """A run given as a folder, or as a name under runs/."""
    return Path(name) if Path(name).exists() else workspace.runs / name


def _competition(args) -> str:
    """--competition, else the Kaggle competition of --dataset."""
    from competition.datasets.registry import get_dataset

    if args.competition:
        return args.competition
    competition = get_dataset(args.dataset).kaggle_competition
    if competition is None:
        raise KitError(f"{args.dataset} is no Kaggle competition's data; name one with --competition")
    return competition


def _experiment(path: Path, args):
    from competition.config import load_experiment

    experiment = load_experiment(Path(path), getattr(args, "dataset", None))
    train = {k: v for k, v in {"epochs": getattr(args, "epochs", None)}.items() if v is not None}
    folds = {"k": args.folds} if getattr(args, "folds", None) else {}
    return experiment.with_overrides(train=train, folds=folds)


def _dataset_and_index(workspace: Workspace, name: str):
    from competition.datasets.registry import get_dataset

    dataset = get_dataset(name)
    return dataset, dataset.index(workspace.dataset_dir(name))


def cmd_data(args, workspace: Workspace) -> None:
    from competition.datasets.obtain import obtain

    path = obtain(workspace, args.dataset, from_dir=Path(args.from_dir) if args.from_dir else None)
    print(f"{args.dataset}: ready in {path}")


def cmd_features(args, workspace: Workspace) -> None:
    from competition.features.cache import build_feature_sets

    dataset, index = _dataset_and_index(workspace, args.dataset)
    configs = [_experiment(path, args).features for path in _experiment_paths(args)]
    started = time.perf_counter()
    # One pass for all experiments: each clip is decoded once, whatever features they ask for.
    caches = build_feature_sets(workspace, dataset.name, {"train": index.train, "test": index.test}, configs,
                                workers=args.workers, verify=args.verify)
    for key, stores in caches.items():
        print(f"{key}: " + ", ".join(f"{split} {len(store)} clips" for split, store in stores.items()))
    print(f"{len(caches)} feature cache(s) of {dataset.name} ready in {time.perf_counter() - started:.1f}s")


def cmd_train(args, workspace: Workspace) -> None:
    from competition.features.cache import build_feature_sets
    from competition.modeling.runs import Run
    from competition.modeling.train import train_experiment

    dataset, index = _dataset_and_index(workspace, args.dataset)
    experiments = [_experiment(path, args) for path in _experiment_paths(args)]
    # Every experiment's features first, in one pass (each clip decoded once), before TensorFlow is
    # loaded by the first training: feature workers are forked from this process.
    build_feature_sets(workspace, dataset.name, {"train": index.train, "test": index.test},
                       [experiment.features for experiment in experiments])
    for experiment in experiments:
        run_dir = train_experiment(workspace, dataset, index, experiment, run_name=args.run,
                                   only_folds=args.fold, exclude_sources=args.exclude_sources_of)
        run = Run(run_dir)
        if run.has_scores():  # all folds trained and assembled
            scores = run.scores()
            print(f"{run_dir}: OOF {scores['metric']} {scores['oof']:.4f}")


def cmd_ensemble(args, workspace: Workspace) -> None:
    from competition.submit.ensemble import blend_runs
    from competition.submit.submission import read_record

    if args.runs:
        runs = [_run_dir(workspace, run) for run in args.runs]
    else:  # the runs `train` makes of the same experiments
        from competition.datasets.registry import get_dataset
        from competition.modeling.train import run_dir_for

        dataset = get_dataset(args.dataset)
        runs = [run_dir_for(workspace, dataset, _experiment(path, args), None) for path in _experiment_paths(args)]
    path = blend_runs(workspace, runs, args.name, weights=args.weights)
    record = read_record(path)
    for member in record["members"]:
        print(f"  {member['run']}: CV {record['metric']} {member['cv_score']:.4f}, weight {member['weight']:.3f}")
    print(f"{path}: CV {record['metric']} {record['cv_score']:.4f} from {len(runs)} run(s) ({record['weights']} "
          f"weights; equal {record['cv_score_equal_weights']:.4f}, fitted {record['cv_score_fitted_weights']:.4f} "
          f"out of fold, {record['cv_score_fitted_weights_in_sample']:.4f} in sample)")


def cmd_report(args, workspace: Workspace) -> None:
    if args.run.endswith(".csv"):  # a submission: the report of its blend
        from competition.submit.blend_report import write_blend_report

        report_dir = write_blend_report(Path(args.run), workspace.runs)
    else:
        from competition.modeling.report import write_report

        report_dir = write_report(_run_dir(workspace, args.run))
    print(f"{report_dir}: " + ", ".join(sorted(p.name for p in report_dir.iterdir())))


def cmd_score(args, workspace: Workspace) -> None:
    from competition.datasets.registry import get_dataset
    from competition.submit.scoring import score_submission

    dataset = get_dataset(args.dataset)
    truth = workspace.dataset_dir(dataset.name) / (dataset.ground_truth or "")
    if dataset.ground_truth and not truth.is_file() and dataset.shipped_csvs:
        print(f"{truth} not here: scoring against {dataset.shipped_csvs / dataset.ground_truth}, shipped with the kit")
        truth = dataset.shipped_csvs / dataset.ground_truth
    if not dataset.ground_truth or not truth.is_file():
        raise KitError(f"no test labels for {dataset.name}: {truth} is missing")
    for usage, value in score_submission(Path(args.sub), truth).items():
        print(f"{usage:8s} MAP@3 {value:.5f}")


def cmd_validate(args, workspace: Workspace) -> None:
    from competition.datasets.registry import get_dataset
    from competition.datasets.spec import read_csv
    from competition.submit.submission import validate_record, validate_submission

    dataset = get_dataset(args.dataset)
    root = workspace.dataset_dir(dataset.name)
    if not root.is_dir() and dataset.shipped_csvs:
        shipped = dataset.shipped_csvs / "sample_submission.csv"
        test_fnames = read_csv(shipped, ["fname"])["fname"].tolist()
        print(f"{root} not here: checking against the {len(test_fnames)} test fnames of {shipped}, "
              "shipped with the kit")
    else:
        test_fnames = dataset.index(root).test["fname"].tolist()
    rows = validate_submission(Path(args.sub), test_fnames, dataset.labels)
    for note in validate_record(Path(args.sub), workspace.runs):
        print(f"note: {note}")
    print(f"{args.sub}: valid ({rows} rows)")


def cmd_submit(args, workspace: Workspace) -> None:
    from competition.kaggle.leaderboard import submit

    competition = _competition(args)
    message = submit(workspace, Path(args.sub), dataset_name=args.dataset, competition=competition,
                     note=args.message)
    print(f"{args.sub}: submitted to {competition} as {message!r}; its score: make submissions")


def cmd_submissions(args, workspace: Workspace) -> None:
    from competition import kaggle_client
    from competition.kaggle.leaderboard import format_submissions

    print(format_submissions(kaggle_client.list_submissions(_competition(args))))


def cmd_kernel(args, workspace: Workspace) -> None:
    from competition import kaggle_client
    from competition.config import load_experiment
    from competition.datasets.registry import get_dataset
    from competition.kaggle.gpu_hours import check_plan, plan_hours, training_clips
    from competition.kaggle.kernel_build import plan_kernels, write_kernel
    from competition.kaggle.kernel_push import push_kernel
    from competition.kaggle.kernel_schedule import run_schedule
    from competition.kaggle.quota import gpu_quota

    username = args.username or kaggle_client.username()
    paths = _experiment_paths(args)
    kernels = plan_kernels(paths, title=args.title,
                           dataset=args.dataset, competition=_competition(args),
                           per_fold=args.fold_kernels == "all", username=username, gpu=args.gpu,
                           hours=args.hours)
    folders = [write_kernel(kernel, username=username, build_dir=workspace.kernel_builds, private=not args.public)
               for kernel in kernels]
    print("built " + ", ".join(str(folder) for folder in folders))
    if args.build_only:
        return
    clips = training_clips(workspace, get_dataset(args.dataset))
    experiments = {Path(path).name: load_experiment(Path(path), args.dataset) for path in paths}
    hours = None if clips is None else plan_hours(kernels, experiments, clips)
    check_plan(hours, gpu_quota(), force=args.force)
    if len(kernels) == 1:
        last = push_kernel(folders[0], kind=kernels[0].kind, workspace=workspace, poll_seconds=args.poll_seconds)
        print(f"follow it with `make kernel-status`; once complete: make kernel-output KERNEL={last['ref']}")
        return
    last = run_schedule(list(zip(kernels, folders)), username=username, workspace=workspace, slots=args.slots,
                        poll_seconds=args.poll_seconds)[-1]
    print(f"its submission: make kernel-output KERNEL={last['ref']}")


def cmd_kernel_status(args, workspace: Workspace) -> None:
    from competition.kaggle.kernel_push import kernel_states, pushed_kernels

    for ref, state in kernel_states(pushed_kernels(workspace, args.kernels)).items():
        print(f"{ref}: {state}")


def cmd_kernel_output(args, workspace: Workspace) -> None:
    from competition.kaggle.kernel_push import (
        FAILED_STATES,
        fetch_output,
        kernel_states,
        output_dir,
        pushed_kernels,
    )

    # The features kernel's output is the feature cache, an input of the others: fetched when named.
    for ref, state in kernel_states(pushed_kernels(workspace, args.kernels, with_inputs=False)).items():
        if state != "complete" and state not in FAILED_STATES:
            print(f"{ref}: {state}; its output comes once it completes")
            continue
        files = fetch_output(workspace, ref)
        folder = output_dir(workspace, ref)
        print(f"{ref} ({state}): {len(files)} file(s) in {folder}")
        if (folder / "submission.csv") in files:
            print(f"  submit it: make submit SUB={folder / 'submission.csv'}")


def cmd_transfer(args, workspace: Workspace) -> None:
    from competition.modeling.runs import Run
    from competition.modeling.transfer import run_transfer

    run_dir = run_transfer(workspace, _run_dir(workspace, args.base), args.dataset, Path(args.experiment),
                           run_name=args.run, allow_leakage=args.allow_leakage)
    scores = Run(run_dir).scores()
    folds = "  ".join(f"fold {k}: {v:.4f}" for k, v in scores["folds"].items())
    print(f"{run_dir}: {scores['metric']} {folds}  OOF {scores['oof']:.4f}")


def cmd_predict(args, workspace: Workspace) -> None:
    from competition.submit.predict import predict_files, resolve_model

    for path, tags in predict_files(resolve_model(workspace, args.run), [Path(f) for f in args.files]):
        print(f"{path}: " + "  ".join(f"{label} {p:.3f}" for label, p in tags), flush=True)


def cmd_app(args, workspace: Workspace) -> None:
    from competition.app.serve import serve

    serve(args.run, args.port, workspace)


def cmd_demo(args, workspace: Workspace) -> None:
    from competition.demo_run import run_demo

    run_demo(workspace, n_train=args.n_train, n_test=args.n_test, seed=args.seed, epochs=args.epochs,
             folds=args.folds)


def build_parser() -> argparse.ArgumentParser:
    from competition.config import DEFAULT_EXPERIMENTS, DEFAULT_TRANSFER_EXPERIMENT
    from competition.datasets.registry import (
        DEFAULT_DATASET,
        DEFAULT_TRANSFER_DATASET,
        dataset_names,
    )
    from competition.kaggle.kernel_build import DEFAULT_GPU, DEFAULT_HOURS, GPU_SHAPES, SESSION_LIMIT_HOURS
    from competition.kaggle.kernel_schedule import DEFAULT_SLOTS

    default_experiments = ", ".join(path.stem for path in DEFAULT_EXPERIMENTS)

    parser = argparse.ArgumentParser(prog="python -m competition", description=__doc__)
    steps = parser.add_subparsers(dest="step", required=True, metavar="step")

    def step(name: str, handler, help: str, *, dataset: bool = True,
             default_dataset: str = DEFAULT_DATASET) -> argparse.ArgumentParser:
        sub = steps.add_parser(name, help=help, description=help)
        sub.set_defaults(handler=handler)
        if dataset:
            sub.add_argument("--dataset", default=default_dataset, choices=dataset_names())
        return sub

    def experiment_files(sub):
        sub.add_argument("--experiment", action="append", help="experiment TOML (repeatable); default: the kit's "
                         f"({default_experiments} in experiments/)")

    def experiments(sub):
        experiment_files(sub)
        sub.add_argument("--epochs", type=int, help="override [train] epochs")
        sub.add_argument("--folds", type=int, help="override [folds] k")

    def competition(sub, help: str = "Kaggle competition (default: the one of --dataset)"):
        sub.add_argument("--competition", help=help)

    sub = step("data", cmd_data, "obtain a dataset into data/<dataset>/ and verify it")
    sub.add_argument("--from", dest="from_dir", help="use a local copy instead of downloading")
    sub = step("features", cmd_features, "cache features under features/<dataset>/<key>/")
    experiments(sub)
    sub.add_argument("--workers", type=int, help="processes (default: all cores)")
    sub.add_argument("--verify", action="store_true", help="also check every cached clip against its CRC-32 "
                     "(training always does); a damaged cache is rebuilt")
    sub = step("train", cmd_train, "train one model per fold into runs/<run>/fold-<k>/")
    experiments(sub)
    sub.add_argument("--run", help="run folder name (default: <dataset>-<experiment>)")
    sub.add_argument("--fold", type=int, action="append", help="train only this fold (repeatable)")
    sub.add_argument("--exclude-sources-of", choices=dataset_names(), metavar="DATASET",
                     help="leave out the clips of recordings DATASET also holds (a base for transfer to it); run "
                     "name <dataset>-<experiment>-without-<DATASET>")
    sub = step("ensemble", cmd_ensemble, "blend runs into submissions/<name>.csv (+ .json)")
    sub.add_argument("runs", nargs="*", help="run folders or names under runs/ (default: the runs `train` makes "
                     "of the experiments on --dataset)")
    experiment_files(sub)
    sub.add_argument("--name", default="submission")
    sub.add_argument("--weights", choices=["fitted", "equal"], default="fitted",
                     help="fitted: minimise the blend's OOF log loss (default); equal: plain geometric mean")
    sub = step("report", cmd_report, "rebuild runs/<run>/report/ (CV table, per-class accuracy, figures), or the "
               "report of a submission's blend", dataset=False)
    sub.add_argument("run", help="run folder or name under runs/, or a submission CSV (its blend's report goes to "
                     "<name>.report/ beside it)")
    sub = step("score", cmd_score, "score a submission against the post-competition test labels")
    sub.add_argument("sub", help="submission CSV")
    sub = step("validate", cmd_validate, "check a submission CSV (header, every test fname, 3 known labels)")
    sub.add_argument("sub", help="submission CSV")
    sub = step("submit", cmd_submit, "validate a submission CSV, then upload it to Kaggle with its CV score "
               "and config hashes")
    sub.add_argument("sub", help="submission CSV (its .json record, if any, describes it)")
    sub.add_argument("--message", help="a note put first in the submission's description")
    competition(sub)
    sub = step("submissions", cmd_submissions, "your recent Kaggle submissions with public/private scores")
    competition(sub)
    sub = step("kernel", cmd_kernel, "build a Kaggle kernel into kernels/build/<slug>/ and push it")
    experiment_files(sub)
    sub.add_argument("--folds", dest="fold_kernels", choices=["all"],
                     help="all: a features kernel (CPU), one kernel per fold (at most --slots at a time), then a "
                     "blend kernel")
    sub.add_argument("--gpu", choices=list(GPU_SHAPES), default=DEFAULT_GPU,
                     help=f"the training kernels' GPU (default {DEFAULT_GPU}); none: on the CPU, no GPU quota")
    sub.add_argument("--slots", type=int, default=DEFAULT_SLOTS,
                     help=f"with --folds all: GPU kernels queued or running at once (default {DEFAULT_SLOTS}, "
                     "Kaggle's limit per account)")
    sub.add_argument("--hours", type=float, default=DEFAULT_HOURS,
                     help=f"a training kernel's time budget (default {DEFAULT_HOURS:g}, under Kaggle's "
                     f"{SESSION_LIMIT_HOURS:g} h session limit): near it the kernel saves its checkpoints and "
                     "stops, and is pushed again to continue from them")
    sub.add_argument("--title", default="audio tagging kit", help="kernel title, its slug the kernel's name")
    competition(sub, "the competition the kernel reads (default: the one of --dataset)")
    sub.add_argument("--username", help="Kaggle username (default: the one of your credentials)")
    sub.add_argument("--public", action="store_true", help="make the kernel public (default: private)")
    sub.add_argument("--build-only", action="store_true", help="build, do not push")
    sub.add_argument("--force", action="store_true", help="push even when the plan's estimated GPU hours exceed "
                     "the quota left this week")
    sub.add_argument("--poll-seconds", type=float, default=60.0,
                     help="with --folds all: how often to ask for the kernels' states")
    for name, handler, help in (("kernel-status", cmd_kernel_status, "state of pushed kernels"),
                                ("kernel-output", cmd_kernel_output, "download pushed kernels' outputs "
                                 "(submission, OOF and test predictions, log) into runs/<slug>/")):
        sub = step(name, handler, help, dataset=False)
        sub.add_argument("kernels", nargs="*", help="slugs or owner/slug refs (default: every kernel pushed "
                         "from kernels/build/)")
    sub = step("transfer", cmd_transfer, "train a dataset's folds from a base run's backbone weights",
               default_dataset=DEFAULT_TRANSFER_DATASET)
    sub.add_argument("--base", required=True, help="base run folder or name under runs/")
    sub.add_argument("--experiment", default=DEFAULT_TRANSFER_EXPERIMENT,
                     help="fine-tuning settings (features and model come from the base run)")
    sub.add_argument("--run", help="run folder name (default: <dataset>-<experiment>-from-<base>)")
    sub.add_argument("--allow-leakage", action="store_true", help="transfer from a base trained on recordings the "
                     "target also holds (refused by default: its scores would count clips it has heard)")
    sub = step("predict", cmd_predict, "top-3 tags of audio files from a trained run or a submission's blend",
               dataset=False)
    sub.add_argument("--run", required=True, help="run folder or name under runs/, or a submission blend (CSV "
                     "with its .json record, or its name under submissions/)")
    sub.add_argument("files", nargs="+")
    sub = step("app", cmd_app, "a local web page (127.0.0.1) that tags any recording with a run or a blend",
               dataset=False)
    sub.add_argument("--run", required=True, help="run folder or name under runs/, or a submission blend")
    sub.add_argument("--port", type=int, help="port on 127.0.0.1 (default: 8765, or a free one if busy)")
    sub = step("demo", cmd_demo, "every step, offline, on a generated demo competition", dataset=False)
    sub.add_argument("--n-train", type=int, default=600)
    sub.add_argument("--n-test", type=int, default=300)
    sub.add_argument("--seed", type=int, default=0)
    sub.add_argument("--epochs", type=int)
    sub.add_argument("--folds", type=int)
    return parser


def main(argv: list[str] | None = None) -> int:
    # TensorFlow's start-up chatter (oneDNN, CPU features) buries the progress bars; errors still show.
    quiet_start.install()
    onednn.prefer_onednn()  # before TensorFlow is imported: its faster CPU kernels
    args = build_parser().parse_args(argv)
    workspace = Workspace.from_env()
    try:
        args.handler(args, workspace)
    except KitError as error:
        # The kit's own errors name the file and the problem: one line, no traceback.
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        message = environment_fault(error)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
