"""`make demo`: every step, offline, on a generated demo competition, with a report at the end.

data -> features -> folds/training (the three default views: log-mel, MFCC, log-mel with bands kept) -> ensemble
-> submission -> score.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path

from competition.workspace import Workspace

# The Makefile's default EXPERIMENTS, blended. logmel-bins-cnn is the demo's best view (OOF MAP@3 0.742
# against 0.693 and 0.689; the blend's test MAP@3 public/private 0.806/0.778 -> 0.844/0.823) at the
# cost of a third of the demo's training time (idle: 197 s of about 540 s).
DEMO_EXPERIMENTS = ("experiments/logmel-cnn.toml", "experiments/mfcc-cnn.toml", "experiments/logmel-bins-cnn.toml")
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
             folds: int | None = None, experiments=DEMO_EXPERIMENTS, kit_root: Path | None = None) -> dict:
    from competition.config import load_experiment
    from competition.datasets import get_dataset
    from competition.demo import generate_demo
    from competition.data import verify
    from competition.ensemble import blend_runs
    from competition.features import build_features
    from competition.scoring import score_submission
    from competition.train import train_experiment

    kit_root = kit_root or Path(__file__).resolve().parent.parent
    timings: dict[str, float] = {}
    dataset = get_dataset("demo")
    root = workspace.dataset_dir("demo")
    with _timed(timings, "data"):
        generate_demo(root, n_train=n_train, n_test=n_test, seed=seed)
        verify(dataset, root)
        index = dataset.index(root)
    overrides = {"train": {"epochs": epochs or DEMO_EPOCHS}, "folds": {"k": folds or DEMO_FOLDS}}
    loaded = [load_experiment(kit_root / path).with_overrides(**overrides) for path in experiments]
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
    report = {"runs": {d.name: json.loads((d / "scores.json").read_text()) for d in run_dirs},
              "blend_cv": json.loads(csv_path.with_suffix(".json").read_text())["cv_score"],
              "test": test_scores, "submission": str(csv_path), "seconds": timings}
    print_report(report)
    return report


def print_report(report: dict) -> None:
    print("\n== demo report")
    for run, scores in report["runs"].items():
        folds = "  ".join(f"fold {k}: {v:.4f}" for k, v in scores["folds"].items())
        print(f"{run}: OOF {scores['metric']} per fold  {folds}  overall {scores['oof']:.4f}")
    print(f"blend (geometric mean, OOF-fitted weights): OOF MAP@3 {report['blend_cv']:.4f}")
    print(f"test MAP@3 against the demo ground truth: public {report['test'].get('public', float('nan')):.4f}  "
          f"private {report['test'].get('private', float('nan')):.4f}")
    print(f"submission: {report['submission']}")
    print("wall time: " + "  ".join(f"{step} {seconds:.1f}s" for step, seconds in report["seconds"].items())
          + f"  total {sum(report['seconds'].values()):.1f}s")
