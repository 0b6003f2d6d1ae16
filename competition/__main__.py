"""Command line behind every make target: `python -m competition <step> [options]`.

Each step imports what it needs when it runs, so `--help` and CSV checks never load TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from competition.workspace import Workspace

DEFAULT_EXPERIMENTS = ["experiments/logmel-cnn.toml"]
KAGGLE_COMPETITION = "freesound-audio-tagging"


def _experiment(path: str, args):
    from competition.config import load_experiment

    experiment = load_experiment(Path(path), getattr(args, "dataset", None))
    train = {k: v for k, v in {"epochs": getattr(args, "epochs", None)}.items() if v is not None}
    folds = {"k": args.folds} if getattr(args, "folds", None) else {}
    return experiment.with_overrides(train=train, folds=folds)


def _dataset_and_index(workspace: Workspace, name: str):
    from competition.datasets import get_dataset

    dataset = get_dataset(name)
    return dataset, dataset.index(workspace.dataset_dir(name))


def cmd_data(args, workspace: Workspace) -> None:
    from competition.data import obtain

    path = obtain(workspace, args.dataset, from_dir=Path(args.from_dir) if args.from_dir else None)
    print(f"{args.dataset}: ready in {path}")


def cmd_features(args, workspace: Workspace) -> None:
    from competition.features import build_feature_sets

    dataset, index = _dataset_and_index(workspace, args.dataset)
    configs = [_experiment(path, args).features for path in args.experiment or DEFAULT_EXPERIMENTS]
    started = time.perf_counter()
    # One pass for all experiments: each clip is decoded once, whatever features they ask for.
    caches = build_feature_sets(workspace, dataset.name, {"train": index.train, "test": index.test}, configs,
                                workers=args.workers)
    for key, stores in caches.items():
        print(f"{key}: " + ", ".join(f"{split} {len(store)} clips" for split, store in stores.items()))
    print(f"{len(caches)} feature cache(s) of {dataset.name} ready in {time.perf_counter() - started:.1f}s")


def cmd_train(args, workspace: Workspace) -> None:
    from competition.train import train_experiment

    dataset, index = _dataset_and_index(workspace, args.dataset)
    for path in args.experiment or DEFAULT_EXPERIMENTS:
        run_dir = train_experiment(workspace, dataset, index, _experiment(path, args), run_name=args.run,
                                   only_folds=args.fold)
        scores_path = run_dir / "scores.json"
        if scores_path.exists():
            scores = json.loads(scores_path.read_text())
            print(f"{run_dir}: OOF {scores['metric']} {scores['oof']:.4f}")


def cmd_ensemble(args, workspace: Workspace) -> None:
    from competition.ensemble import blend_runs

    runs = [Path(r) if Path(r).exists() else workspace.runs / r for r in args.runs]
    path = blend_runs(workspace, runs, args.name, weights=args.weights)
    record = json.loads(path.with_suffix(".json").read_text())
    for member in record["members"]:
        print(f"  {member['run']}: CV {record['metric']} {member['cv_score']:.4f}, weight {member['weight']:.3f}")
    print(f"{path}: CV {record['metric']} {record['cv_score']:.4f} from {len(runs)} run(s) ({record['weights']} "
          f"weights; equal {record['cv_score_equal_weights']:.4f}, fitted {record['cv_score_fitted_weights']:.4f})")


def cmd_report(args, workspace: Workspace) -> None:
    from competition.report import write_report

    run = Path(args.run) if Path(args.run).exists() else workspace.runs / args.run
    report_dir = write_report(run)
    print(f"{report_dir}: " + ", ".join(sorted(p.name for p in report_dir.iterdir())))


def cmd_bench_quality(args, workspace: Workspace) -> None:
    from competition.bench_quality import run_quality_bench

    run_quality_bench(workspace, quick=args.quick)


def cmd_score(args, workspace: Workspace) -> None:
    from competition.datasets import get_dataset
    from competition.scoring import score_submission

    dataset = get_dataset(args.dataset)
    truth = workspace.dataset_dir(dataset.name) / (dataset.ground_truth or "")
    if not dataset.ground_truth or not truth.is_file():
        sys.exit(f"no test labels for {dataset.name}: {truth} is missing")
    for usage, value in score_submission(Path(args.sub), truth).items():
        print(f"{usage:8s} MAP@3 {value:.5f}")


def cmd_validate(args, workspace: Workspace) -> None:
    from competition.submission import validate_submission

    dataset, index = _dataset_and_index(workspace, args.dataset)
    rows = validate_submission(Path(args.sub), index.test["fname"].tolist(), dataset.labels)
    print(f"{args.sub}: valid ({rows} rows)")


def cmd_submit(args, workspace: Workspace) -> None:
    from competition.leaderboard import submit

    message = submit(workspace, Path(args.sub), dataset_name=args.dataset, competition=args.competition,
                     note=args.message)
    print(f"{args.sub}: submitted to {args.competition} as {message!r}; its score: make submissions")


def cmd_submissions(args, workspace: Workspace) -> None:
    from competition import kaggle_api
    from competition.leaderboard import format_submissions

    print(format_submissions(kaggle_api.list_submissions(args.competition)))


def cmd_kernel(args, workspace: Workspace) -> None:
    from competition import kaggle_api
    from competition.kernel import plan_kernels, push_kernels, write_kernel

    username = args.username or kaggle_api.username()
    kernels = plan_kernels([Path(p) for p in args.experiment or DEFAULT_EXPERIMENTS], title=args.title,
                           dataset=args.dataset, competition=args.competition,
                           per_fold=args.fold_kernels == "all", username=username)
    folders = [write_kernel(kernel, username=username, build_dir=workspace.kernel_builds, private=not args.public)
               for kernel in kernels]
    print("built " + ", ".join(str(folder) for folder in folders))
    if not args.build_only:
        last = push_kernels(folders, poll_seconds=args.poll_seconds)[-1]
        print(f"follow it with `make kernel-status`; once complete: make kernel-output KERNEL={last['ref']}")


def cmd_kernel_status(args, workspace: Workspace) -> None:
    from competition.kernel import kernel_states, pushed_kernels

    for ref, state in kernel_states(pushed_kernels(workspace, args.kernels)).items():
        print(f"{ref}: {state}")


def cmd_kernel_output(args, workspace: Workspace) -> None:
    from competition.kernel import FAILED_STATES, fetch_output, kernel_states, pushed_kernels

    for ref, state in kernel_states(pushed_kernels(workspace, args.kernels)).items():
        if state != "complete" and state not in FAILED_STATES:
            print(f"{ref}: {state}; its output comes once it completes")
            continue
        files = fetch_output(workspace, ref)
        folder = workspace.runs / ref.split("/")[-1]
        print(f"{ref} ({state}): {len(files)} file(s) in {folder}")
        if (folder / "submission.csv") in files:
            print(f"  submit it: make submit SUB={folder / 'submission.csv'}")


def cmd_transfer(args, workspace: Workspace) -> None:
    from competition.transfer import run_transfer

    base = Path(args.base) if Path(args.base).exists() else workspace.runs / args.base
    run_dir = run_transfer(workspace, base, args.dataset, Path(args.experiment), run_name=args.run)
    scores = json.loads((run_dir / "scores.json").read_text())
    folds = "  ".join(f"fold {k}: {v:.4f}" for k, v in scores["folds"].items())
    print(f"{run_dir}: {scores['metric']} {folds}  OOF {scores['oof']:.4f}")


def cmd_predict(args, workspace: Workspace) -> None:
    from competition.predict import predict_files

    for path, tags in predict_files(Path(args.run) if Path(args.run).exists() else workspace.runs / args.run,
                                    [Path(f) for f in args.files]):
        print(f"{path}: " + "  ".join(f"{label} {p:.3f}" for label, p in tags))


def cmd_demo(args, workspace: Workspace) -> None:
    from competition.demo_pipeline import run_demo

    run_demo(workspace, n_train=args.n_train, n_test=args.n_test, seed=args.seed, epochs=args.epochs,
             folds=args.folds)


def cmd_bench(args, workspace: Workspace) -> None:
    """Features part, then the training part."""
    from competition.bench_features import run_bench
    from competition.bench_training import run_training_bench

    run_bench(clips=args.clips, workers=args.workers, generated=args.generated, scratch=workspace.features)
    run_training_bench()


def build_parser() -> argparse.ArgumentParser:
    from competition.datasets import dataset_names

    parser = argparse.ArgumentParser(prog="python -m competition", description=__doc__)
    steps = parser.add_subparsers(dest="step", required=True, metavar="step")

    def step(name: str, handler, help: str, *, dataset: bool = True) -> argparse.ArgumentParser:
        sub = steps.add_parser(name, help=help, description=help)
        sub.set_defaults(handler=handler)
        if dataset:
            sub.add_argument("--dataset", default="freesound-audio-tagging", choices=dataset_names())
        return sub

    def experiments(sub):
        sub.add_argument("--experiment", action="append", help="experiment TOML (repeatable); default: "
                         + ", ".join(DEFAULT_EXPERIMENTS))
        sub.add_argument("--epochs", type=int, help="override [train] epochs")
        sub.add_argument("--folds", type=int, help="override [folds] k")

    sub = step("data", cmd_data, "obtain a dataset into data/<dataset>/ and verify it")
    sub.add_argument("--from", dest="from_dir", help="use a local copy instead of downloading")
    sub = step("features", cmd_features, "cache features under features/<dataset>/<key>/")
    experiments(sub)
    sub.add_argument("--workers", type=int, help="processes (default: all cores)")
    sub = step("train", cmd_train, "train one model per fold into runs/<run>/fold-<k>/")
    experiments(sub)
    sub.add_argument("--run", help="run folder name (default: <dataset>-<experiment>)")
    sub.add_argument("--fold", type=int, action="append", help="train only this fold (repeatable)")
    sub = step("ensemble", cmd_ensemble, "blend runs into submissions/<name>.csv (+ .json)", dataset=False)
    sub.add_argument("runs", nargs="+", help="run folders or names under runs/")
    sub.add_argument("--name", default="submission")
    sub.add_argument("--weights", choices=["fitted", "equal"], default="fitted",
                     help="fitted: minimise the blend's OOF log loss (default); equal: plain geometric mean")
    sub = step("report", cmd_report, "rebuild runs/<run>/report/ (CV table, per-class accuracy, figures)",
               dataset=False)
    sub.add_argument("run", help="run folder or name under runs/")
    sub = step("bench-quality", cmd_bench_quality, "accuracy on real audio (../shared/data): ESC-10 5-fold CV, "
               "UrbanSound8K fold 1<->2, kit recipe vs the Zafar kernel recipe, ablation", dataset=False)
    sub.add_argument("--quick", action="store_true", help="no ablation retraining (TTA ablation only)")
    sub = step("score", cmd_score, "score a submission against the post-competition test labels")
    sub.add_argument("sub", help="submission CSV")
    sub = step("validate", cmd_validate, "check a submission CSV (header, every test fname, 3 known labels)")
    sub.add_argument("sub", help="submission CSV")
    sub = step("submit", cmd_submit, "validate a submission CSV, then upload it to Kaggle with its CV score "
               "and config hashes")
    sub.add_argument("sub", help="submission CSV (its .json record, if any, describes it)")
    sub.add_argument("--message", help="a note put first in the submission's description")
    sub.add_argument("--competition", default=KAGGLE_COMPETITION)
    sub = step("submissions", cmd_submissions, "your recent Kaggle submissions with public/private scores",
               dataset=False)
    sub.add_argument("--competition", default=KAGGLE_COMPETITION)
    sub = step("kernel", cmd_kernel, "build a Kaggle kernel into kernels/build/<slug>/ and push it")
    sub.add_argument("--experiment", action="append", help="experiment TOML (repeatable); default: "
                     + ", ".join(DEFAULT_EXPERIMENTS))
    sub.add_argument("--folds", dest="fold_kernels", choices=["all"],
                     help="all: one kernel per fold, run in parallel, then a blend kernel")
    sub.add_argument("--title", default="audio tagging kit", help="kernel title, its slug the kernel's name")
    sub.add_argument("--competition", default=KAGGLE_COMPETITION, help="the competition the kernel reads")
    sub.add_argument("--username", help="Kaggle username (default: the one of your credentials)")
    sub.add_argument("--public", action="store_true", help="make the kernel public (default: private)")
    sub.add_argument("--build-only", action="store_true", help="build, do not push")
    sub.add_argument("--poll-seconds", type=float, default=60.0,
                     help="with --folds all: how often to ask whether the fold kernels completed")
    for name, handler, help in (("kernel-status", cmd_kernel_status, "state of pushed kernels"),
                                ("kernel-output", cmd_kernel_output, "download pushed kernels' outputs "
                                 "(submission, OOF and test predictions, log) into runs/<slug>/")):
        sub = step(name, handler, help, dataset=False)
        sub.add_argument("kernels", nargs="*", help="slugs or owner/slug refs (default: every kernel pushed "
                         "from kernels/build/)")
    sub = step("transfer", cmd_transfer, "train a dataset's folds from a base run's backbone weights")
    sub.add_argument("--base", required=True, help="base run folder or name under runs/")
    sub.add_argument("--experiment", default="experiments/transfer-urbansound8k.toml",
                     help="fine-tuning settings (features and model come from the base run)")
    sub.add_argument("--run", help="run folder name (default: <dataset>-<experiment>-from-<base>)")
    sub = step("predict", cmd_predict, "top-3 tags of audio files from a trained run", dataset=False)
    sub.add_argument("--run", required=True, help="run folder or name under runs/")
    sub.add_argument("files", nargs="+")
    sub = step("demo", cmd_demo, "every step, offline, on a generated demo competition", dataset=False)
    sub.add_argument("--n-train", type=int, default=600)
    sub.add_argument("--n-test", type=int, default=300)
    sub.add_argument("--seed", type=int, default=0)
    sub.add_argument("--epochs", type=int)
    sub.add_argument("--folds", type=int)
    sub = step("bench", cmd_bench, "speed of feature extraction (seed, Zafar, librosa, kit), then of training",
               dataset=False)
    sub.add_argument("--clips", type=int, help="use only the first N clips of each set (default: all: 400 ESC-10, "
                                               "the shared UrbanSound8K folds, 400 generated)")
    sub.add_argument("--workers", type=int, help="processes for the kit's features (default: all cores)")
    sub.add_argument("--generated", action="store_true",
                     help="generated WAV clips even where ../shared/data (ESC-10, UrbanSound8K) is present")
    return parser


def main(argv: list[str] | None = None) -> int:
    # TensorFlow's C++ start-up chatter (oneDNN, CPU features) buries the progress bars; errors still show.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    workspace = Workspace.from_env()
    try:
        args.handler(args, workspace)
    except (ValueError, RuntimeError, FileNotFoundError) as error:
        # Our own errors name the file and the problem: show them without a traceback.
        if type(error).__module__.startswith("competition"):
            print(f"error: {error}", file=sys.stderr)
            return 2
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
