"""What a kernel finds under /kaggle/input, in every layout Kaggle has mounted it in; the features
kernel's caches taken up by a fold kernel without computing anything; a GPU kernel without a GPU.

These call competition.kaggle.kernel_run's parts in this process (test_kernel.py runs whole scripts).
"""

import os
import shutil
from pathlib import Path

import pytest
from kaggle_server import COMPETITION, FAKE_USERNAME

from competition.config import load_experiment
from competition.features import cache
from competition.kaggle import kernel_run
from competition.kaggle.kernel_build import KernelError
from competition.kaggle.kernel_features import adopt_features, write_features_output
from competition.workspace import Workspace

SETTINGS = {"dataset": "demo", "competition": COMPETITION}
EXPERIMENT = """
name = "tiny"
[features]
kind = "logmel"
n_mels = 32
[folds]
k = 3
"""


def mount(competition_files: Path, input_dir: Path, layout: str) -> Path:
    """The competition under `input_dir` as Kaggle has mounted it: at <slug>/, at competitions/<slug>/, or
    at <slug>/ with each audio folder inside one of the same name."""
    root = input_dir / ("competitions" if layout == "competitions" else "") / COMPETITION
    shutil.copytree(competition_files, root)
    if layout == "nested-audio":
        for name in ("audio_train", "audio_test"):
            os.replace(root / name, root / f"{name}.tmp")
            (root / name).mkdir()
            os.replace(root / f"{name}.tmp", root / name / name)
    return root


@pytest.mark.parametrize("layout", ["flat", "competitions", "nested-audio"])
def test_the_competition_is_found_in_every_layout_kaggle_mounts(competition_files, tmp_path, layout):
    mount(competition_files, tmp_path / "input", layout)

    dataset, index = kernel_run.prepare_data(Workspace(tmp_path / "scratch"), SETTINGS, tmp_path / "input")

    assert (dataset.name, len(index.train), len(index.test)) == ("demo", 12, 6)
    assert all(Path(path).is_file() for path in [*index.train["path"], *index.test["path"]])
    assert all(Path(path).parent.name == "audio_train" for path in index.train["path"])


@pytest.mark.parametrize("where", ["{slug}", "notebooks/{owner}/{slug}"])
def test_a_source_kernels_output_is_found_where_kaggle_mounts_it(competition_files, tmp_path, where):
    mount(competition_files, tmp_path / "input", "competitions")
    slug = "audio-tagging-kit-tiny-fold-0"
    output = tmp_path / "input" / where.format(owner=FAKE_USERNAME, slug=slug)
    (output / "demo-tiny").mkdir(parents=True)

    assert kernel_run.find_input(tmp_path / "input", slug) == output
    assert kernel_run.find_input(tmp_path / "input", COMPETITION) == tmp_path / "input" / "competitions" / COMPETITION
    with pytest.raises(KernelError, match=r"audio-tagging-kit-blend not found under .* \(which holds: .*competitions"):
        kernel_run.find_input(tmp_path / "input", "audio-tagging-kit-blend")


@pytest.fixture
def experiment(tmp_path):
    (tmp_path / "tiny.toml").write_text(EXPERIMENT)
    return load_experiment(tmp_path / "tiny.toml", "demo")


def session(competition_files: Path, root: Path):
    """A kernel session: the competition mounted afresh, a scratch workspace; (workspace, dataset, index)."""
    mount(competition_files, root / "input", "competitions")
    workspace = Workspace(root / "scratch")
    return (workspace, *kernel_run.prepare_data(workspace, SETTINGS, root / "input"))


def test_a_fold_kernel_takes_up_the_features_kernels_output_and_computes_nothing(
        competition_files, tmp_path, experiment, monkeypatch):
    features_workspace, dataset, index = session(competition_files, tmp_path / "features-session")
    output = tmp_path / "features-output"
    assert write_features_output(features_workspace, dataset, index, [experiment], output) == [experiment.features.key]
    assert not list(output.rglob("clips"))
    # A later session: the same audio mounted again, with other modification times.
    workspace, dataset, index = session(competition_files, tmp_path / "fold-session")
    for path in index.train["path"]:
        os.utime(path, (1_000_000_000, 1_000_000_000))

    keys = adopt_features(workspace, dataset, index, [experiment], output, "features-kernel")

    def no_computing(*args, **kwargs):
        raise AssertionError("features computed again")

    monkeypatch.setattr(cache, "compute_clips", no_computing)
    stores = cache.build_features(workspace, dataset.name, {"train": index.train, "test": index.test},
                                  experiment.features)
    assert keys == [experiment.features.key] and len(stores["train"]) == 12 and len(stores["test"]) == 6
    assert (stores["train"].frames.shape == cache.FeatureStore.open(
        cache.cache_dir(Workspace(output), "demo", experiment.features) / "train").frames.shape)
    folds = list((workspace.folds / "demo").glob("*.csv"))
    assert [path.read_text() for path in folds] == [(output / "folds" / "demo" / folds[0].name).read_text()]


def test_features_of_other_audio_are_refused(competition_files, tmp_path, experiment):
    features_workspace, dataset, index = session(competition_files, tmp_path / "features-session")
    write_features_output(features_workspace, dataset, index, [experiment], tmp_path / "features-output")
    workspace, dataset, index = session(competition_files, tmp_path / "fold-session")
    with open(index.train["path"].iloc[0], "ab") as clip:
        clip.write(b"\0\0")

    with pytest.raises(KernelError, match=r"computed from other audio than this session's \(1 clip"):
        adopt_features(workspace, dataset, index, [experiment], tmp_path / "features-output", "features-kernel")


def test_a_gpu_kernel_without_a_gpu_stops_before_reading_anything(tmp_path, monkeypatch, capfd):
    import tensorflow as tf

    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])  # as on a CPU session
    monkeypatch.delenv(kernel_run.ON_CPU_VARIABLE, raising=False)
    monkeypatch.setenv(kernel_run.INPUT_DIR_VARIABLE, str(tmp_path / "input"))  # empty: nothing to read
    monkeypatch.setenv(kernel_run.WORKING_DIR_VARIABLE, str(tmp_path / "working"))

    with pytest.raises(KernelError, match=r"built for a GPU \(P100\) but its session has none.*KERNEL_GPU=none"):
        kernel_run.main({**SETTINGS, "kind": "fold", "gpu": "P100", "experiments": [], "fold": 0})

    assert "GPUs: none" in capfd.readouterr().out and not (tmp_path / "working").exists()
    kernel_run.check_devices("none")  # a kernel built for the CPU goes on
    monkeypatch.setenv(kernel_run.ON_CPU_VARIABLE, "1")
    kernel_run.check_devices("T4x2")  # and so does one told to
    assert "built for a GPU (T4x2) but training on the CPU, as KIT_KERNEL_ON_CPU=1 asks" in capfd.readouterr().out
