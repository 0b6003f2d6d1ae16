"""`make bench-scale`'s own logic on tiny inputs: the 1-epoch experiment copies, the table, the
projection, the measuring of a child process (the full-size run itself is the bench's, not a test's)."""

from __future__ import annotations

import math
import sys

import pytest

from benchmarks import scale
from competition.config import DEFAULT_EXPERIMENTS, load_experiment
from competition.kaggle.gpu_hours import plan_hours
from competition.kaggle.kernel_build import plan_kernels

STEPS = [
    scale.Step("features kernel", "a-features", 1200.0, 2_000_000_000, 5_000_000_000, 3_000_000_000, 2_900_000_000),
    scale.Step("fold kernel logmel-cnn-fold-0", "a-logmel-cnn-fold-0", 600.0, 3_000_000_000, 3_500_000_000,
               40_000_000, fit_seconds=75.78),
    scale.Step("blend kernel (logmel-cnn only)", "a-blend", 90.0, 1_000_000_000, 1_000_000_000, 9_000_000),
]


def test_the_experiments_are_copied_with_one_epoch_and_nothing_else_changed(tmp_path):
    copies = scale.one_epoch_copies(DEFAULT_EXPERIMENTS, tmp_path)

    for original, copy in zip(DEFAULT_EXPERIMENTS, copies):
        before, after = (load_experiment(path, "freesound-audio-tagging") for path in (original, copy))
        assert after.train.epochs == 1 and before.train.epochs > 1
        assert after.features == before.features and after.folds == before.folds and after.name == before.name
    (tmp_path / "odd.toml").write_text('name = "odd"\n')
    with pytest.raises(scale.ScaleBenchError, match="expected one `epochs = N` line, found 0"):
        scale.one_epoch_copies([tmp_path / "odd.toml"], tmp_path / "copies")


def test_the_table_has_a_row_per_step_and_the_disk_of_the_competition_and_the_cache():
    table = scale.format_table(STEPS, competition_bytes=9_800_000_000, render={"seconds": 700.0, "workers": 2})

    lines = table.splitlines()
    assert lines[0].startswith("| step | wall | of which training | peak RSS, largest process |")
    assert lines[2] == "| features kernel | 20.0 min |  | 2.0 GB | 5.0 GB | 3.0 GB |"
    assert lines[3] == "| fold kernel logmel-cnn-fold-0 | 10.0 min | 76 s | 3.0 GB | 3.5 GB | 40.0 MB |"
    assert "the competition's WAVs: 9.8 GB, rendered in 11.7 min on 2 processes" in table
    assert "the feature cache (the features kernel's output/features/): 2.9 GB" in table


def test_the_projection_is_gpu_hours_estimate_of_the_default_plan_and_the_measured_cpu_kernels():
    lines = scale.projection(STEPS, DEFAULT_EXPERIMENTS, local_cores=2, clips=9473)

    kernels = plan_kernels(list(DEFAULT_EXPERIMENTS), title=scale.TITLE, dataset="freesound-audio-tagging",
                           competition="freesound-audio-tagging", per_fold=True, username="u")
    experiments = {path.name: load_experiment(path, "freesound-audio-tagging") for path in DEFAULT_EXPERIMENTS}
    hours = plan_hours(kernels, experiments, 9473)
    text = "\n".join(lines)
    assert f"{len(hours)} fold kernels on T4x2" in text and f"about {sum(hours.values()):.1f} GPU h in all" in text
    assert "features kernel (CPU, no quota): about 10 min" in text  # 20 min on 2 cores, over Kaggle's 4
    rounds = math.ceil(len(hours) / 2)
    wall = 1200 * 2 / 4 / 3600 + rounds * max(hours.values()) + 90 / 3600
    assert f"wall time: about {wall:.1f} h (features, then {rounds} rounds of 2" in text
    assert "a fold kernel trained 100 clips/s on the CPU" in text  # 9473 * 4/5 clips in 75.78 s
    # 15 fold kernels of 30 epochs at 100 clips/s, each with the 524 s besides training measured here
    assert f"would take {15 * (524.22 + 30 * 9473 * 0.8 / 100) / 3600:.1f} h on this CPU" in text


@pytest.mark.slow  # a child process
def test_a_measured_run_sees_the_childs_peak_memory_and_exit_code(tmp_path):
    command = [sys.executable, "-c", "import sys, time; block = bytearray(300 << 20); time.sleep(0.5); sys.exit(3)"]

    seconds, peak_process, peak_tree, code = scale.measured_run(command, {}, cwd=tmp_path, log=tmp_path / "log")

    assert code == 3 and seconds >= 0.5
    assert peak_process >= 300 << 20 and peak_tree >= peak_process
