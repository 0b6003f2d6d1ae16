"""`python -m benchmarks speed` (`make bench`) and `python -m benchmarks quality` (`make bench-quality`)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from competition import quiet_start

    quiet_start.install()
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="kind")
    speed = kinds.add_parser("speed", help="speed of feature extraction (seed, Zafar, librosa, kit), then of training")
    speed.add_argument("--clips", type=int, help="use only the first N clips of each set (default: all: the shared "
                                                 "ESC-10 rows and UrbanSound8K folds, or 400 generated)")
    speed.add_argument("--workers", type=int, help="processes for the kit's features (default: all cores)")
    speed.add_argument("--generated", action="store_true",
                       help="generated WAV clips even where ../shared/data (ESC-10, UrbanSound8K) is present")
    quality = kinds.add_parser("quality", help="accuracy on real audio (../shared/data): ESC-10 5-fold CV, "
                               "UrbanSound8K fold 1<->2, kit recipe vs the Zafar kernel recipe, ablation")
    quality.add_argument("--quick", action="store_true", help="no ablation retraining (TTA ablation only)")
    args = parser.parse_args(argv)

    from competition.errors import KitError
    from competition.workspace import Workspace

    workspace = Workspace.from_env()
    try:
        if args.kind == "speed":
            from benchmarks.features import run_bench
            from benchmarks.training import run_training_bench

            run_bench(clips=args.clips, workers=args.workers, generated=args.generated, scratch=workspace.features)
            run_training_bench()
        else:
            from benchmarks.quality import run_quality_bench

            run_quality_bench(workspace, quick=args.quick)
    except KitError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
