"""`make demo`: every step, offline, on a generated demo competition, with a report at the end.

data -> features -> folds/training (the default experiments, config.DEFAULT_EXPERIMENTS) -> ensemble
-> submission -> score. `make bench-quality` and the demo's own report give the numbers.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

from competition.config import DEFAULT_EXPERIMENTS
from competition.workspace import Workspace

# Fewer folds and epochs than the recipe files (made for 9,473 Freesound clips), so the demo's
# 600 clips train in minutes on two CPU cores.
DEMO_FOLDS = 3
DEMO_EPOCHS = 30


@contextmanager
def _timed(timings: dict, step: str):
    print(f"\n== {step}", flush=True)
    started = time.perf_counter()
    yield
    timings[step] = time.perf_counter() - started


def run_demo(workspace: Workspace, *, n_train: int, n_test: int, seed: int, epochs: int | None = None,
             folds: int | None = None, experiments=None) -> dict:
    from competition.config import load_experiment
    from competition.datasets.demo_synth import generate_demo
    from competition.datasets.obtain import verify
    from competition.datasets.registry import get_dataset
    from competition.features.cache import build_features
    from competition.modeling.runs import Run
    from competition.modeling.train import train_experiment
    from competition.submit.ensemble import blend_runs
    from competition.submit.scoring import score_submission
    from competition.submit.submission import read_record

    timings: dict[str, float] = {}
    dataset = get_dataset("demo")
    root = workspace.dataset_dir("demo")
    with _timed(timings, "data"):
        generate_demo(root, n_train=n_train, n_test=n_test, seed=seed)
        verify(dataset, root)
        index = dataset.index(root)
    overrides = {"train": {"epochs": epochs or DEMO_EPOCHS}, "folds": {"k": folds or DEMO_FOLDS}}
    loaded = [load_experiment(path).with_overrides(**overrides) for path in experiments or DEFAULT_EXPERIMENTS]
    with _timed(timings, "features"):
        for experiment in loaded:
            build_features(workspace, dataset.name, {"train": index.train, "test": index.test}, experiment.features)
    run_dirs = []
    with _timed(timings, "train"):
        for experiment in loaded:
            # The hash in the name: a rerun with other settings trains anew instead of refusing the old run.
            run_dirs.append(train_experiment(workspace, dataset, index, experiment,
                                             run_name=f"demo-{experiment.name}-{experiment.hash}"))
    with _timed(timings, "ensemble"):
        csv_path = blend_runs(workspace, run_dirs, "demo")
    with _timed(timings, "score"):
        test_scores = score_submission(csv_path, root / dataset.ground_truth)
    report = {"runs": {d.name: Run(d).scores() for d in run_dirs},
              "blend_cv": read_record(csv_path)["cv_score"],
              "test": test_scores, "submission": str(csv_path), "seconds": timings}
    print_report(report)
    return report


def print_report(report: dict) -> None:
    print("\n== demo report")
    for run, scores in report["runs"].items():
        folds = "  ".join(f"fold {k}: {v:.4f}" for k, v in scores["folds"].items())
        print(f"{run}: OOF {scores['metric']} per fold  {folds}  overall {scores['oof']:.4f}")
    print(f"blend (geometric mean, OOF-fitted weights, scored out of fold): OOF MAP@3 {report['blend_cv']:.4f}")
    print(f"test MAP@3 against the demo ground truth: public {report['test'].get('public', float('nan')):.4f}  "
          f"private {report['test'].get('private', float('nan')):.4f}")
    print(f"submission: {report['submission']}")
    print("wall time: " + "  ".join(f"{step} {seconds:.1f}s" for step, seconds in report["seconds"].items())
          + f"  total {sum(report['seconds'].values()):.1f}s")
