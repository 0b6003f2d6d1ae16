"""Kaggle kernels: what `make kernel` builds, pushes (to the stand-in server) and fetches, and the
built scripts run offline on a demo competition laid out as Kaggle mounts it (each layout Kaggle
has used), up to a whole `FOLDS=all` plan run through the stand-in server.

The scripts run in fresh processes, outside the repository and without PYTHONPATH, so they can only
use the package embedded in them; /kaggle/input and /kaggle/working are mapped to folders under
tmp_path with KAGGLE_INPUT_DIR and KAGGLE_WORKING_DIR, and KIT_KERNEL_ON_CPU=1 lets a kernel built
for a GPU train on this machine's CPU. The plan's scheduling itself is test_kernel_schedule.py's.
"""

import ast
import base64
import csv
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from kaggle_server import COMPETITION, FAKE_USERNAME
from kaggle_server import Kernel as ServerKernel
from make_targets import run_make

from competition.__main__ import main
from competition.datasets.registry import get_dataset
from competition.kaggle import kernel_build as kernel
from competition.kaggle import kernel_run
from competition.onednn import VARIABLE as ONEDNN_VARIABLE
from competition.onednn import X86_64
from competition.submit.submission import validate_submission
from competition.workspace import Workspace

pytestmark = pytest.mark.usefixtures("no_credential_leaks")
TITLE = "audio tagging kit"
SLUG = "audio-tagging-kit"
REF = f"{FAKE_USERNAME}/{SLUG}"
FOLD_SLUGS = [f"{SLUG}-tiny-fold-0", f"{SLUG}-tiny-fold-1"]
FEATURES_SLUG = f"{SLUG}-features"
BLEND_SLUG = f"{SLUG}-blend"
TINY_EXPERIMENT = """
name = "tiny"
[features]
kind = "logmel"
n_mels = 32
[model]
width = 4
[train]
epochs = 1
batch_size = 8
crop_seconds = 1.0
tta_crops = 2
[folds]
k = 2
"""


@pytest.fixture
def kit(tmp_path, monkeypatch) -> Workspace:
    monkeypatch.setenv("KIT_HOME", str(tmp_path / "kit"))
    experiment = tmp_path / "kit" / "experiments" / "tiny.toml"
    experiment.parent.mkdir(parents=True)
    experiment.write_text(TINY_EXPERIMENT)
    return Workspace(tmp_path / "kit")


def kernel_command(kit: Workspace, *options: str) -> list[str]:
    """`make kernel` for the demo dataset (read where Kaggle mounts the competition) and the tiny experiment."""
    return ["kernel", "--dataset", "demo", "--experiment", str(kit.root / "experiments" / "tiny.toml"),
            "--title", TITLE, *options]


def build(kit: Workspace, *options: str) -> None:
    assert main(kernel_command(kit, "--build-only", "--username", FAKE_USERNAME, *options)) == 0


def metadata_of(folder: Path) -> dict:
    return json.loads((folder / "kernel-metadata.json").read_text())


def settings_and_package(script: str) -> tuple[dict, zipfile.ZipFile]:
    """The SETTINGS and the embedded package zip of a built script, read without running it."""
    module = ast.parse(script)
    values = {node.targets[0].id: ast.literal_eval(node.value) for node in module.body
              if isinstance(node, ast.Assign) and node.targets[0].id in ("SETTINGS", "PACKAGE_ZIP")}
    return values["SETTINGS"], zipfile.ZipFile(io.BytesIO(base64.b64decode(values["PACKAGE_ZIP"])))


# -- building


def test_kernel_folder_holds_the_metadata_and_a_self_contained_script(kit):
    build(kit)

    folder = kit.kernel_builds / SLUG
    assert metadata_of(folder) == {
        "id": REF, "title": TITLE, "code_file": f"{SLUG}.py", "language": "python", "kernel_type": "script",
        "is_private": True, "enable_gpu": True, "machine_shape": "NvidiaTeslaT4", "enable_tpu": False,
        "enable_internet": False, "competition_sources": [COMPETITION], "dataset_sources": [], "kernel_sources": [],
        "model_sources": [],
    }
    assert kernel.slug_of(TITLE) == SLUG  # the id matches the slug Kaggle makes of the title
    script = (folder / f"{SLUG}.py").read_text()
    settings, package = settings_and_package(script)
    assert settings == {"kind": "train", "gpu": "T4x2", "competition": COMPETITION, "dataset": "demo",
                        "experiments": [{"file": "tiny.toml", "toml": TINY_EXPERIMENT}],
                        "slug": SLUG, "hours": kernel.DEFAULT_HOURS}
    modules = set(package.namelist())
    assert {"competition/__init__.py", "competition/kaggle/kernel_run.py", "competition/modeling/train.py",
            "competition/datasets/freesound.py"} <= modules
    embedded = package.read("competition/kaggle/kernel_run.py")
    assert embedded == (kernel.PACKAGE_DIR / "kaggle" / "kernel_run.py").read_bytes()

    build(kit)  # an unchanged kit builds the same bytes, so it is not pushed again
    assert (folder / f"{SLUG}.py").read_text() == script


def test_folds_all_builds_a_features_kernel_a_kernel_per_fold_and_a_blend_reading_them(kit):
    build(kit, "--folds", "all", "--public")

    features = metadata_of(kit.kernel_builds / FEATURES_SLUG)
    assert features["enable_gpu"] is False and features["machine_shape"] is None  # no GPU quota spent on it
    assert features["competition_sources"] == [COMPETITION] and features["kernel_sources"] == []
    settings, _ = settings_and_package((kit.kernel_builds / FEATURES_SLUG / f"{FEATURES_SLUG}.py").read_text())
    assert settings["kind"] == "features" and settings["gpu"] == "none"
    assert settings["experiments"] == [{"file": "tiny.toml", "toml": TINY_EXPERIMENT}]
    for fold, slug in enumerate(FOLD_SLUGS):
        metadata = metadata_of(kit.kernel_builds / slug)
        assert metadata["id"] == f"{FAKE_USERNAME}/{slug}" and metadata["title"] == f"{TITLE} tiny fold {fold}"
        assert metadata["enable_gpu"] is True and metadata["is_private"] is False
        assert metadata["kernel_sources"] == [f"{FAKE_USERNAME}/{FEATURES_SLUG}"]
        settings, _ = settings_and_package((kit.kernel_builds / slug / f"{slug}.py").read_text())
        assert settings["kind"] == "fold" and settings["fold"] == fold and settings["features_kernel"] == FEATURES_SLUG
        assert settings["slug"] == slug and settings["hours"] == kernel.DEFAULT_HOURS
    blend = metadata_of(kit.kernel_builds / BLEND_SLUG)
    assert blend["kernel_sources"] == [f"{FAKE_USERNAME}/{slug}" for slug in FOLD_SLUGS]
    assert blend["competition_sources"] == [COMPETITION] and blend["enable_gpu"] is False
    settings, _ = settings_and_package((kit.kernel_builds / BLEND_SLUG / f"{BLEND_SLUG}.py").read_text())
    assert settings["kind"] == "blend" and settings["fold_kernels"] == {"tiny": FOLD_SLUGS}


@pytest.mark.parametrize("gpu, enable_gpu, machine_shape", [
    ("T4x2", True, "NvidiaTeslaT4"), ("P100", True, "NvidiaTeslaP100"), ("none", False, None)])
def test_kernel_gpu_is_the_metadatas_machine_shape(kaggle_server, kit, gpu, enable_gpu, machine_shape):
    assert main(kernel_command(kit, "--gpu", gpu)) == 0

    metadata = metadata_of(kit.kernel_builds / SLUG)
    assert (metadata["enable_gpu"], metadata["machine_shape"]) == (enable_gpu, machine_shape)
    settings, _ = settings_and_package((kit.kernel_builds / SLUG / f"{SLUG}.py").read_text())
    assert settings["gpu"] == gpu
    pushed = kaggle_server.kernels[REF].metadata
    assert pushed["enableGpu"] is enable_gpu and pushed.get("machineShape") == machine_shape


def test_a_title_kaggle_would_refuse_is_an_error(kit, capfd):
    assert main(kernel_command(kit, "--build-only", "--username", FAKE_USERNAME, "--title", "x" * 51)) == 2
    assert "has 51 characters; Kaggle takes 5 to 50" in capfd.readouterr().err


# -- pushing, status, output (stand-in server)


def test_make_kernel_pushes_once_and_again_only_after_a_failure(kaggle_server, kit, capfd):
    assert main(kernel_command(kit)) == 0  # the username comes from the credentials

    pushed = kaggle_server.kernels[REF]
    folder = kit.kernel_builds / SLUG
    assert pushed.text == (folder / f"{SLUG}.py").read_text()
    assert pushed.metadata["slug"] == REF and pushed.metadata["newTitle"] == TITLE
    assert pushed.metadata["language"] == "python" and pushed.metadata["kernelType"] == "script"
    assert pushed.metadata["isPrivate"] is True and pushed.metadata["enableGpu"] is True
    assert pushed.metadata["enableInternet"] is False
    assert pushed.metadata["competitionDataSources"] == [COMPETITION]
    assert f"{REF}: pushed version 1" in capfd.readouterr().out

    assert main(kernel_command(kit)) == 0
    assert len(kaggle_server.received("SaveKernel")) == 1
    assert "unchanged since version 1 (queued); not pushed again" in capfd.readouterr().out

    kaggle_server.kernels[REF].status = "ERROR"
    assert main(kernel_command(kit)) == 0
    assert kaggle_server.kernels[REF].version == 2


def test_a_kernel_refused_for_the_gpu_session_limit_is_pushed_again(kaggle_server, kaggle_time, kit, capfd):
    kaggle_server.gpu_session_limit = 1
    kaggle_server.kernels[f"{FAKE_USERNAME}/other-work"] = ServerKernel({"enableGpu": True}, "", status="RUNNING")

    assert main(kernel_command(kit)) == 0

    out = capfd.readouterr().out
    assert "Maximum batch GPU session count of 1 reached; pushing again in 60 s" in out
    assert f"{REF}: pushed version 1" in out
    assert len(kaggle_server.received("SaveKernel")) == 2  # the refused push, then the one after the other ended
    assert kaggle_server.max_gpu_sessions == 1


def test_kernel_status_and_output(kaggle_server, kit, capfd):
    assert main(kernel_command(kit)) == 0
    capfd.readouterr()
    assert main(["kernel-output"]) == 0
    assert f"{REF}: queued; its output comes once it completes" in capfd.readouterr().out

    outputs = {"submission.csv": b"fname,label\n", "demo-tiny/fold-0/oof.npz": b"npz", "demo-tiny/scores.json": b"{}"}
    kaggle_server.finish_kernel(REF, outputs, log="trained\n")
    assert main(["kernel-status"]) == 0
    assert capfd.readouterr().out == f"{REF}: complete\n"

    assert main(["kernel-output", SLUG]) == 0

    folder = kit.runs / SLUG
    assert {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()} == {
        **outputs, f"{SLUG}.log": b"trained\n"}
    assert f"make submit SUB={folder / 'submission.csv'}" in capfd.readouterr().out


@pytest.mark.slow  # three fresh `make` processes
def test_make_kernel_targets(kaggle_server, kit, no_tensorflow):
    variables = ["DATASET=demo", f"EXPERIMENTS={kit.root / 'experiments' / 'tiny.toml'}", f"KERNEL_TITLE={TITLE}"]
    result = run_make("kernel", *variables, "KERNEL_GPU=P100", kit_home=kit.root, python_path=no_tensorflow)
    assert result.returncode == 0, result.stderr
    assert kaggle_server.kernels[REF].text == (kit.kernel_builds / SLUG / f"{SLUG}.py").read_text()
    assert kaggle_server.kernels[REF].metadata["machineShape"] == "NvidiaTeslaP100"

    kaggle_server.finish_kernel(REF, {"submission.csv": b"fname,label\n"})
    result = run_make("kernel-status", kit_home=kit.root, python_path=no_tensorflow)
    assert f"{REF}: complete" in result.stdout.splitlines(), result.stderr
    result = run_make("kernel-output", f"KERNEL={SLUG}", kit_home=kit.root, python_path=no_tensorflow)
    assert result.returncode == 0, result.stderr
    assert (kit.runs / SLUG / "submission.csv").read_bytes() == b"fname,label\n"


def test_status_of_an_unknown_kernel_names_the_pushed_ones(kaggle_server, kit, capfd):
    assert main(["kernel-status"]) == 2
    assert "no kernel pushed from" in capfd.readouterr().err
    assert main(kernel_command(kit)) == 0
    assert main(["kernel-status", "no-such-kernel"]) == 2
    assert f"one of: {SLUG}" in capfd.readouterr().err


# -- running the built scripts offline, with Kaggle's folders mapped


@pytest.fixture
def kaggle_input(tmp_path, competition_files) -> Path:
    """/kaggle/input holding the demo competition under the competition's name, as Kaggle mounts it."""
    shutil.copytree(competition_files, tmp_path / "input" / COMPETITION)
    return tmp_path / "input"


def run_kernel_script(script: Path, input_dir: Path, working_dir: Path, tmp_path: Path) -> tuple[int, str]:
    """`python <script>` from an empty folder, with no PYTHONPATH: only the embedded package can serve.
    Returns the exit code and the log (stdout, then stderr)."""
    scratch = tmp_path / "scratch"  # the kernel's temporary folders, under tmp_path for the credential check
    scratch.mkdir(exist_ok=True)
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PYTHON", "KIT_")) and key != ONEDNN_VARIABLE}  # the kernel asks itself
    env.update(KAGGLE_INPUT_DIR=str(input_dir), KAGGLE_WORKING_DIR=str(working_dir), TMPDIR=str(scratch),
               TF_CPP_MIN_LOG_LEVEL="2", **{kernel_run.ON_CPU_VARIABLE: "1"})
    result = subprocess.run([sys.executable, str(script)], cwd=scratch, env=env, capture_output=True, text=True,
                            timeout=300)
    return result.returncode, result.stdout + result.stderr


def run_script(script: Path, input_dir: Path, working_dir: Path, tmp_path: Path) -> str:
    returncode, log = run_kernel_script(script, input_dir, working_dir, tmp_path)
    assert returncode == 0, log
    return log


def fnames_in(csv_path: Path) -> list[str]:
    with open(csv_path, newline="") as handle:
        return [row["fname"] for row in csv.DictReader(handle)]


def assert_valid_submission(working_dir: Path, competition_files: Path, runs: tuple[str, ...] = ("demo-tiny",)) -> None:
    dataset = get_dataset("demo")
    test_fnames = fnames_in(competition_files / "sample_submission.csv")
    assert validate_submission(working_dir / "submission.csv", test_fnames, dataset.labels) == len(test_fnames)
    record = json.loads((working_dir / "submission.json").read_text())
    assert [member["run"] for member in record["members"]] == list(runs)


def assert_complete_run(run_dir: Path, competition_files: Path, folds: int = 2) -> None:
    train_fnames = fnames_in(competition_files / "train.csv")
    oof = np.load(run_dir / "oof.npz")
    assert sorted(oof["fnames"].tolist()) == sorted(train_fnames)  # every train clip predicted once, out of fold
    assert json.loads((run_dir / "scores.json").read_text())["folds"].keys() == {str(k) for k in range(folds)}
    for fold in range(folds):
        assert {p.name for p in (run_dir / f"fold-{fold}").iterdir()} >= {"model.keras", "oof.npz", "test.npz",
                                                                          "done.json"}


@pytest.mark.slow
def test_train_kernel_runs_offline_and_its_output_goes_to_the_leaderboard(
        kaggle_server, kit, kaggle_input, competition_files, tmp_path, capfd):
    build(kit)
    working = tmp_path / "working"

    log = run_script(kit.kernel_builds / SLUG / f"{SLUG}.py", kaggle_input, working, tmp_path)

    assert "libraries: numpy" in log and "demo: 12 train clips, 6 test clips" in log
    assert "built for a GPU (T4x2) but training on the CPU" in log
    if platform.machine().lower() in X86_64:
        assert f"oneDNN CPU kernels ({ONEDNN_VARIABLE}): on" in log
    assert_valid_submission(working, competition_files)
    assert_complete_run(working / "demo-tiny", competition_files)
    assert not list(working.rglob("checkpoint.keras")) and not (working / "features").exists()

    # What Kaggle would serve as the kernel's output, fetched and submitted from the kit.
    assert main(kernel_command(kit)) == 0
    kaggle_server.finish_kernel(REF, {str(p.relative_to(working)): p.read_bytes()
                                      for p in working.rglob("*") if p.is_file()})
    assert main(["kernel-output"]) == 0
    shutil.copytree(kaggle_input / COMPETITION, kit.dataset_dir("demo"))
    assert main(["submit", "--dataset", "demo", str(kit.runs / SLUG / "submission.csv")]) == 0
    [submission] = kaggle_server.submissions
    assert submission.content == (working / "submission.csv").read_bytes()
    assert submission.description.startswith("CV map@3 ") and " demo-tiny exp " in submission.description


@pytest.mark.slow  # four kernel sessions, each a fresh process
def test_a_kernel_out_of_time_saves_its_checkpoints_and_its_next_version_continues_from_them(
        kit, kaggle_input, competition_files, tmp_path):
    build(kit, "--hours", "0.000001")  # a budget spent at once: each session makes one step
    script = kit.kernel_builds / SLUG / f"{SLUG}.py"
    previous = None
    left = []
    for session in range(6):
        working = tmp_path / f"working-{session}"
        if previous is not None:  # the previous version's output, mounted as Kaggle mounts a kernel source
            own_output = kaggle_input / "notebooks" / FAKE_USERNAME / SLUG
            shutil.rmtree(own_output, ignore_errors=True)
            shutil.copytree(previous, own_output)
        log = run_script(script, kaggle_input, working, tmp_path)
        previous = working
        if not (working / kernel.UNFINISHED).exists():
            break
        unfinished = json.loads((working / kernel.UNFINISHED).read_text())
        left.append(unfinished["folds"])
        assert unfinished["run"] == "demo-tiny" and unfinished["hours"] == 0.000001
        assert "the time budget ran out with fold" in log and "this kernel continues from them" in log
        assert not (working / "submission.csv").exists()
        if session:
            assert "demo-tiny: continuing from the output of this kernel's previous version" in log
    # fold 0's epoch, then its predictions, fold 1's epoch, its predictions and the blend.
    assert left == [{"0": 1, "1": 0}, {"1": 0}, {"1": 1}]
    assert "continuing from the output of this kernel's previous version: folds done [0], fold 1 at epoch 1" in log
    assert_valid_submission(previous, competition_files)
    assert_complete_run(previous / "demo-tiny", competition_files)
    assert not list(previous.rglob("checkpoint.keras"))


PLAN_EXPERIMENTS = {  # two experiments of three folds each: a features kernel, six fold kernels, a blend
    "plan-logmel": TINY_EXPERIMENT.replace('name = "tiny"', 'name = "plan-logmel"').replace("k = 2", "k = 3"),
    "plan-mfcc": TINY_EXPERIMENT.replace('name = "tiny"', 'name = "plan-mfcc"').replace("k = 2", "k = 3")
                                .replace('kind = "logmel"', 'kind = "mfcc"\nn_mfcc = 20'),
}


@pytest.mark.slow  # eight kernel scripts, each a fresh process
def test_a_folds_all_plan_runs_through_the_stand_in_kaggle(
        kaggle_server, kaggle_time, kit, competition_files, tmp_path, capfd):
    experiments = []
    for name, text in PLAN_EXPERIMENTS.items():
        experiments += ["--experiment", str(kit.root / "experiments" / f"{name}.toml")]
        (kit.root / "experiments" / f"{name}.toml").write_text(text)
    kaggle_server.run_kernels_with(lambda script, input_dir, working: run_kernel_script(
        script, input_dir, working, tmp_path), tmp_path / "sessions", layout="nested")
    command = ["kernel", "--dataset", "demo", *experiments, "--title", TITLE, "--folds", "all"]

    assert main(command) == 0

    assert kaggle_server.max_gpu_sessions == 2  # KERNEL_SLOTS' default, with six fold kernels to run
    kernels = kaggle_server.kernels
    assert len(kernels) == 8 and {k.status for k in kernels.values()} == {"COMPLETE"}, capfd.readouterr()
    features_ref = f"{FAKE_USERNAME}/{FEATURES_SLUG}"
    for name in PLAN_EXPERIMENTS:
        for fold in range(3):
            fold_kernel = kernels[f"{FAKE_USERNAME}/{SLUG}-{name}-fold-{fold}"]
            assert fold_kernel.pushed_at >= kernels[features_ref].finished_at
            log = "".join(line["data"] for line in json.loads(fold_kernel.log))
            assert f"feature caches {name.split('-')[1]}-" in log and f"from kernel {FEATURES_SLUG}" in log
            assert " train:" not in log  # no feature computing (its progress bar) on the GPU's time
    capfd.readouterr()

    assert main(["kernel-output"]) == 0

    blend_output = kit.runs / BLEND_SLUG
    assert_valid_submission(blend_output, competition_files, runs=("demo-plan-logmel", "demo-plan-mfcc"))
    for name in PLAN_EXPERIMENTS:
        assert_complete_run(blend_output / f"demo-{name}", competition_files, folds=3)
    assert not (kit.runs / FEATURES_SLUG).exists()  # the feature cache is an input, fetched only when named
