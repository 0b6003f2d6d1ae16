"""`python -m benchmarks speed` (`make bench`), `python -m benchmarks quality` (`make bench-quality`) and
`python -m benchmarks scale` (`make bench-scale`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from competition import onednn, quiet_start

    quiet_start.install()
    onednn.prefer_onednn()  # as the kit's own commands train
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="kind")
    speed = kinds.add_parser("speed", help="speed of feature extraction (seed, Zafar, librosa, kit), then of training")
    speed.add_argument("--clips", type=int, help="use only the first N clips of each set (default: all: the shared "
                                                 "ESC-10 rows and UrbanSound8K folds, or 400 generated)")
    speed.add_argument("--workers", type=int, help="processes for the kit's features (default: all cores)")
    speed.add_argument("--generated", action="store_true",
                       help="generated WAV clips even where ../shared/data (ESC-10, UrbanSound8K) is present")
    quality = kinds.add_parser("quality", help="accuracy on real audio (../shared/data): FSDKaggle2018 subset "
                               "repeated CV, UrbanSound8K and the FSD subset fine-tuned from ESC-50 bases vs scratch, "
                               "ESC-50 and ESC-10 5-fold, "
                               "UrbanSound8K fold 1<->2; kit recipe vs the Zafar kernel recipe, ablation")
    quality.add_argument("--quick", action="store_true", help="no ablation retraining (TTA ablation only)")
    scale = kinds.add_parser("scale", help="the FOLDS=all kernels run here on a full-size generated competition "
                             "(features, fold kernels at 1 epoch, blend): wall time, peak memory, cache disk, and a "
                             "projection of the run on Kaggle")
    scale.add_argument("--dir", type=Path, help="where the competition is rendered (once) and the kernels run "
                                                "(default: bench-scale/ in the workspace)")
    scale.add_argument("--all-folds", action="store_true", help="run every fold kernel of the default plan and its "
                       "blend (default: the first experiment's fold kernels and the blend of those)")
    scale.add_argument("--workers", type=int, help="processes rendering the competition (default: all cores)")
    quality.add_argument("--only", metavar="NAMES",
                         help="comma-separated protocols to run, of: fsd-subset, transfer, fsd-transfer, esc50, esc10, "
                              "urbansound8k "
                              "(default: all, in that order)")
    quality.add_argument("--finished-only", action="store_true",
                         help="train nothing: the tables of the runs that finished, naming the others")
    quality.add_argument("--recipes", metavar="NAMES",
                         help="comma-separated experiment names (e.g. logmel-cnn,zafar-mfcc-cnn) whose runs may be "
                              "trained; the others are only read where they finished (default: all)")
    args = parser.parse_args(argv)

    from competition.errors import KitError
    from competition.workspace import Workspace

    workspace = Workspace.from_env()
    try:
        if args.kind == "scale":
            from benchmarks.scale import run_scale_bench

            run_scale_bench(workspace, scale_dir=args.dir, all_folds=args.all_folds, workers=args.workers)
        elif args.kind == "speed":
            from benchmarks.features import run_bench
            from benchmarks.training import run_training_bench

            run_bench(clips=args.clips, workers=args.workers, generated=args.generated, scratch=workspace.features)
            run_training_bench()
        else:
            from benchmarks.quality.runner import parse_only, run_quality_bench

            run_quality_bench(workspace, quick=args.quick, only=parse_only(args.only),
                              finished_only=args.finished_only,
                              train_only={name.strip() for name in args.recipes.split(",")} if args.recipes else None)
    except KitError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
