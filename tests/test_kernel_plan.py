"""The plan's estimated GPU hours beside the quota (issue 11, item 4): shown per kernel and in all
before anything is pushed, and a plan over the quota refused unless forced (`make kernel FORCE=1`).
Against the stand-in server, which answers the quota; time is the test's (`kaggle_time`)."""

import shutil
import subprocess

import pytest
from kaggle_server import FAKE_USERNAME
from make_targets import REPO
from test_kernel_schedule import FOLDS, PLAN, SLUG, kit, make_kernel_folds_all, pushes  # noqa: F401

from competition.config import load_experiment
from competition.datasets.registry import get_dataset
from competition.kaggle.gpu_hours import (
    GPU_TRAINING_CLIPS_PER_SECOND,
    KERNEL_STARTUP_SECONDS,
    kernel_hours,
    plan_hours,
    training_clips,
)
from competition.kaggle.kernel_build import plan_kernels

pytestmark = pytest.mark.usefixtures("no_credential_leaks")
TINY_TRAIN_CLIPS = 84  # conftest's tiny competition


@pytest.fixture
def kit_with_data(kit, tiny_competition):  # noqa: F811
    """The workspace with a local copy of the tiny demo competition: its clips are counted."""
    shutil.copytree(tiny_competition, kit.dataset_dir("demo"))
    return kit


def fold_hours(epochs: int, k: int, clips: int, folds: int = 1) -> float:
    return (KERNEL_STARTUP_SECONDS + epochs * folds * clips * (k - 1) / k / GPU_TRAINING_CLIPS_PER_SECOND) / 3600


def test_a_gpu_kernel_is_its_start_up_and_epochs_x_training_clips(kit_with_data):
    path = kit_with_data.root / "experiments" / "tiny.toml"
    experiments = {path.name: load_experiment(path, "demo")}
    plan = plan_kernels([path], title="audio tagging kit", dataset="demo", competition="c", per_fold=True,
                        username=FAKE_USERNAME)
    hours = plan_hours(plan, experiments, clips=9473)
    assert list(hours) == [f"{SLUG}-tiny-fold-{fold}" for fold in range(FOLDS)]  # features and blend hold no GPU
    assert hours[f"{SLUG}-tiny-fold-0"] == pytest.approx(fold_hours(1, FOLDS, 9473))
    (train,) = plan_kernels([path], title="audio tagging kit", dataset="demo", competition="c", per_fold=False,
                            username=FAKE_USERNAME)
    assert kernel_hours(train, experiments, 9473) == pytest.approx(fold_hours(1, FOLDS, 9473, folds=FOLDS))
    on_cpu = plan_kernels([path], title="audio tagging kit", dataset="demo", competition="c", per_fold=True,
                          username=FAKE_USERNAME, gpu="none")
    assert plan_hours(on_cpu, experiments, 9473) == {}


def test_training_clips_are_the_complete_copys_else_the_local_copys(kit, kit_with_data):  # noqa: F811
    assert training_clips(kit, get_dataset("freesound-audio-tagging")) == 9473  # known without the data
    assert training_clips(kit_with_data, get_dataset("demo")) == TINY_TRAIN_CLIPS
    shutil.rmtree(kit_with_data.dataset_dir("demo"))
    assert training_clips(kit_with_data, get_dataset("demo")) is None


def test_the_estimate_is_shown_per_kernel_and_in_all_beside_the_quota(kaggle_server, kaggle_time, kit_with_data,
                                                                       capfd):
    kaggle_server.gpu_quota = (4.5, 30.0)

    assert make_kernel_folds_all(kit_with_data) == 0

    out = capfd.readouterr().out
    per_kernel = fold_hours(1, FOLDS, TINY_TRAIN_CLIPS)
    assert f"  {SLUG}-tiny-fold-0: about {per_kernel:.1f} GPU h" in out
    assert f"GPU estimate: about {FOLDS * per_kernel:.1f} h for {FOLDS} GPU kernel(s) (assuming" in out
    assert out.index("GPU estimate") < out.index("GPU quota: 25.5 of 30.0 h left") < out.index("pushed version")


def test_a_plan_over_the_quota_is_refused_and_nothing_is_pushed(kaggle_server, kaggle_time, kit_with_data, capfd):
    kaggle_server.gpu_quota = (29.5, 30.0)  # half an hour left; five fold kernels want more

    assert make_kernel_folds_all(kit_with_data) == 2

    assert pushes(kaggle_server) == []
    error = capfd.readouterr().err.splitlines()[-1]
    assert error.startswith("error: the plan's estimated ") and "exceed the 0.5 h left this week" in error
    assert "FORCE=1" in error and "nothing was pushed" in error


def test_force_pushes_a_plan_over_the_quota(kaggle_server, kaggle_time, kit_with_data, capfd):
    kaggle_server.gpu_quota = (29.5, 30.0)

    assert make_kernel_folds_all(kit_with_data, "--force") == 0

    assert pushes(kaggle_server) == PLAN
    assert "over the quota left, pushed all the same" in capfd.readouterr().out


def test_without_a_clip_count_or_a_quota_nothing_is_refused(kaggle_server, kaggle_time, kit, capfd):  # noqa: F811
    kaggle_server.gpu_quota = (29.9, 30.0)
    assert make_kernel_folds_all(kit) == 0  # no local copy of the demo: no estimate to refuse on
    assert "GPU estimate: none" in capfd.readouterr().out


def test_make_kernel_force_passes_force():
    def kernel_command(*variables: str) -> str:
        done = subprocess.run(["make", "--no-print-directory", "-n", "-o", ".venv/.installed", "kernel", *variables],
                              cwd=REPO, capture_output=True, text=True, check=True)
        return " ".join(done.stdout.replace("\\\n", " ").split())

    assert kernel_command("FOLDS=all", "FORCE=1") == ".venv/bin/python -m competition kernel --folds all --force"
    assert "--force" not in kernel_command("FOLDS=all")
