"""The GPU hours a kernel plan will hold, set beside the account's quota before it is pushed
(`make kernel`): a plan whose estimate exceeds what is left this week is refused unless forced.

Kaggle counts every hour a GPU session is held, so a plan that runs out of quota half-way leaves
folds untrained and the week's hours spent. The estimate of a GPU kernel is its start-up allowance
plus, for every fold it trains, epochs x training clips (the other folds' clips) over an assumed
throughput; early stopping can only make it shorter. Kernels without a GPU (features, blend) count
nothing. The number of training clips is the dataset's complete copy's (its `expected_counts`), or
else its local copy's; with neither, no estimate is made and nothing is refused.
"""

from __future__ import annotations

from collections.abc import Callable

from competition.kaggle.kernel_build import Kernel, KernelError

# An assumption, to be replaced by a measured figure (a fold kernel's log on Kaggle's GPU, or
# `make bench-scale`): training clips, one crop each, a Kaggle GPU goes through per second with the
# default recipe.
GPU_TRAINING_CLIPS_PER_SECOND = 250.0
# Also an assumption: what a GPU kernel holds its session for besides training (the session
# starting, the image's libraries loading, the features kernel's output read, per-epoch validation,
# the held-out and test predictions).
KERNEL_STARTUP_SECONDS = 10 * 60.0


class QuotaError(KernelError):
    """A plan's estimated GPU hours exceed the account's quota left this week."""


def training_clips(workspace, dataset) -> int | None:
    """How many train clips the kernels will train on: the dataset's complete copy's, else its local
    copy's; None when neither is known."""
    from competition.datasets.spec import DatasetError

    if dataset.expected_counts:
        return max(train for train, _ in dataset.expected_counts.values())
    root = workspace.dataset_dir(dataset.name)
    if not root.is_dir():
        return None
    try:
        return len(dataset.index(root).train)
    except DatasetError:
        return None


def kernel_hours(kernel: Kernel, experiments: dict, clips: int) -> float:
    """The estimated GPU hours of one kernel; `experiments` maps each experiment file's name (as the
    kernel's settings name it) to its Experiment."""
    if not kernel.enable_gpu:
        return 0.0
    seconds = KERNEL_STARTUP_SECONDS
    for source in kernel.settings["experiments"]:
        experiment = experiments[source["file"]]
        k = experiment.folds.k
        folds = 1 if kernel.kind == "fold" else k
        fit_clips = clips * (k - 1) / k
        seconds += experiment.train.epochs * folds * fit_clips / GPU_TRAINING_CLIPS_PER_SECOND
    return seconds / 3600


def plan_hours(kernels: list[Kernel], experiments: dict, clips: int) -> dict[str, float]:
    """Estimated GPU hours by kernel slug, for the plan's GPU kernels only."""
    return {kernel.slug: kernel_hours(kernel, experiments, clips) for kernel in kernels if kernel.enable_gpu}


def check_plan(hours: dict[str, float] | None, quota: dict | None, *, force: bool,
               say: Callable[[str], None] = print) -> None:
    """Say the plan's estimate (per kernel and in all) beside the quota left; raise QuotaError when it
    exceeds the quota, unless `force`. `hours` None: no estimate could be made."""
    from competition.kaggle.quota import quota_line

    if hours:
        for slug, kernel in hours.items():
            say(f"  {slug}: about {kernel:.1f} GPU h")
        total = sum(hours.values())
        say(f"GPU estimate: about {total:.1f} h for {len(hours)} GPU kernel(s) (assuming "
            f"{GPU_TRAINING_CLIPS_PER_SECOND:g} training clips/s and {KERNEL_STARTUP_SECONDS / 60:g} min of "
            "start-up per kernel; early stopping ends sooner)")
    elif hours is None:
        say("GPU estimate: none (the number of train clips is unknown until the data is here: make data)")
    if quota is not None:
        say(quota_line(quota))
    if not hours or quota is None or sum(hours.values()) <= quota["remaining_hours"]:
        return
    if force:
        say("over the quota left, pushed all the same as --force (FORCE=1) asks")
        return
    renews = f" (it renews {quota['refresh']})" if quota["refresh"] else ""
    raise QuotaError(f"the plan's estimated {sum(hours.values()):.1f} GPU h exceed the {quota['remaining_hours']:.1f} "
                     f"h left this week{renews}: train fewer experiments or folds, wait for the quota, or push "
                     "anyway with FORCE=1 (--force); nothing was pushed")
